//! Format detection and a format-neutral view of a key/certificate file, for tools that convert
//! between formats.

use crate::cert::Certificate;
use crate::error::Result;
use crate::identity::Identity;
use crate::limits::Limits;
use crate::secret::Password;

/// The file formats pfxkit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// PKCS#12 (DER, BER, or PEM-armoured).
    Pkcs12,
    /// Java KeyStore.
    Jks,
    /// Java Cryptography Extension KeyStore.
    Jceks,
    /// A PEM bundle (or a lone DER certificate or key).
    Pem,
}

impl Format {
    /// The name used in reports: `pkcs12`, `jks`, `jceks`, `pem`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pkcs12 => "pkcs12",
            Format::Jks => "jks",
            Format::Jceks => "jceks",
            Format::Pem => "pem",
        }
    }

    /// Detects the format by content: Java magic numbers, PKCS#12 PEM armour, other PEM text,
    /// then DER (a DER certificate or key counts as PEM-bundle input; anything else is tried as
    /// PKCS#12).
    pub fn detect(bytes: &[u8]) -> Format {
        match bytes.get(..4) {
            Some([0xfe, 0xed, 0xfe, 0xed]) => return Format::Jks,
            Some([0xce, 0xce, 0xce, 0xce]) => return Format::Jceks,
            _ => {}
        }
        let text = bytes.trim_ascii_start();
        if text.starts_with(b"-----BEGIN PKCS12-----") {
            Format::Pkcs12
        } else if crate::pem::is_pem(bytes)
            || Certificate::from_der(bytes).is_ok()
            || crate::PrivateKey::from_pkcs8_der(bytes).is_ok()
        {
            Format::Pem
        } else {
            Format::Pkcs12
        }
    }
}

/// A certificate that belongs to no key entry.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LooseCertificate {
    /// The certificate.
    pub certificate: Certificate,
    /// Its alias, if the format has one.
    pub alias: Option<String>,
    /// Marked trusted (a Java trusted-certificate entry or PKCS#12 bag with the trust attribute).
    pub trusted: bool,
}

/// The key entries and loose certificates of a file, whatever its format.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Contents {
    /// Key entries with their chains.
    pub identities: Vec<Identity>,
    /// Certificates that are in no identity's chain.
    pub certificates: Vec<LooseCertificate>,
}

/// Reads any supported file into [`Contents`].
///
/// `password` is the PKCS#12 or store password; `key_password` the JKS/JCEKS key password or
/// the PEM key's (both default to `password`).
///
/// # Errors
/// Those of the format's reader.
pub fn load(
    bytes: &[u8],
    password: Option<&Password>,
    key_password: Option<&Password>,
    limits: &Limits,
) -> Result<(Format, Contents)> {
    let format = Format::detect(bytes);
    let contents = match format {
        Format::Pkcs12 => {
            let archive = crate::pkcs12::read(bytes, password, limits)?;
            let identities = archive.identities();
            let certificates = archive
                .certificates()
                .iter()
                .filter(|c| !in_chains(&identities, &c.certificate))
                .map(|c| LooseCertificate {
                    certificate: c.certificate.clone(),
                    alias: c.attributes.friendly_name.clone(),
                    trusted: c.attributes.java_trusted,
                })
                .collect();
            Contents {
                identities,
                certificates,
            }
        }
        Format::Pem => {
            let bundle = crate::pem::read_bundle(bytes, key_password.or(password), limits)?;
            let identities = bundle.identities(limits)?;
            let certificates = bundle
                .certificates
                .iter()
                .filter(|c| !in_chains(&identities, c))
                .map(|c| LooseCertificate {
                    certificate: c.clone(),
                    alias: None,
                    trusted: false,
                })
                .collect();
            Contents {
                identities,
                certificates,
            }
        }
        Format::Jks | Format::Jceks => {
            let store_password = password.ok_or_else(|| {
                crate::Error::Invalid(
                    "a Java keystore needs its store password (its digest is checked before anything is trusted)".into(),
                )
            })?;
            let store = crate::jks::read(bytes, store_password, limits)?;
            let key_password = key_password.unwrap_or(store_password);
            let mut contents = Contents {
                identities: store.identities(key_password, limits)?,
                ..Contents::default()
            };
            for entry in store.entries() {
                match entry {
                    crate::jks::Entry::PrivateKey(_) => {}
                    crate::jks::Entry::Trusted(t) => contents.certificates.push(LooseCertificate {
                        certificate: t.certificate().clone(),
                        alias: Some(t.alias().to_string()),
                        trusted: true,
                    }),
                }
            }
            contents
        }
    };
    Ok((format, contents))
}

fn in_chains(identities: &[Identity], cert: &Certificate) -> bool {
    identities.iter().any(|i| i.chain().contains(cert))
}
