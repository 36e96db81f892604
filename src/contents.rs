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
    /// then DER by the shape of its outer SEQUENCE (a certificate, a PKCS#8 key or an encrypted
    /// one counts as PEM-bundle input; anything else is tried as PKCS#12). Nothing is parsed
    /// beyond the first element: the reader that follows does that once.
    pub fn detect(bytes: &[u8]) -> Format {
        match bytes.get(..4) {
            Some([0xfe, 0xed, 0xfe, 0xed]) => return Format::Jks,
            Some([0xce, 0xce, 0xce, 0xce]) => return Format::Jceks,
            _ => {}
        }
        let text = bytes.trim_ascii_start();
        if text.starts_with(b"-----BEGIN PKCS12-----") {
            Format::Pkcs12
        } else if crate::pem::is_pem(bytes) {
            Format::Pem
        } else {
            match first_element(bytes) {
                // Certificate { tbsCertificate SEQUENCE, … }, EncryptedPrivateKeyInfo {
                // AlgorithmIdentifier SEQUENCE, … }, PrivateKeyInfo { version 0 or 1, … }.
                Some((0x30, _)) | Some((0x02, [0 | 1])) => Format::Pem,
                // PFX { version 3, … }, and whatever is not DER at all.
                _ => Format::Pkcs12,
            }
        }
    }
}

/// The tag and content of the first element inside an outer SEQUENCE (definite or BER
/// indefinite length); `None` when the bytes do not start that way.
fn first_element(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let (&outer, rest) = bytes.split_first()?;
    if outer != 0x30 {
        return None;
    }
    let rest = skip_length(rest)?.1;
    let (&tag, rest) = rest.split_first()?;
    let (len, rest) = skip_length(rest)?;
    Some((tag, rest.get(..len?)?))
}

/// Reads a length: `(Some(n), rest)` for a definite one, `(None, rest)` for BER's indefinite.
fn skip_length(bytes: &[u8]) -> Option<(Option<usize>, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    match first {
        0x80 => Some((None, rest)),
        n if n < 0x80 => Some((Some(usize::from(n)), rest)),
        n => {
            let count = usize::from(n & 0x7f);
            if count > std::mem::size_of::<usize>() {
                return None;
            }
            let (digits, rest) = rest.split_at_checked(count)?;
            let len = digits
                .iter()
                .fold(0usize, |acc, d| (acc << 8) | usize::from(*d));
            Some((Some(len), rest))
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
    /// What the file held that this view leaves out (e.g. JCEKS secret keys, which no other
    /// format pfxkit writes can carry), one sentence each.
    pub not_converted: Vec<String>,
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
            let archive =
                crate::pkcs12::read_with_key_password(bytes, password, key_password, limits)?;
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
                not_converted: Vec::new(),
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
                not_converted: Vec::new(),
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
                    crate::jks::Entry::SecretKey(s) => contents.not_converted.push(format!(
                        "secret key '{}' (JCEKS secret keys are kept only by a JCEKS store)",
                        s.alias()
                    )),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_der(text: &[u8]) -> Vec<u8> {
        pem::parse(text)
            .map(pem::Pem::into_contents)
            .unwrap_or_default()
    }

    #[test]
    fn detects_each_format_by_its_first_bytes() {
        let p12 = include_bytes!("../tests/data/p12/openssl-default.p12");
        let ber = include_bytes!("../tests/data/p12/ber-indefinite.p12");
        let cert = include_bytes!("../tests/data/pki/certs/leaf-rsa.pem");
        let key = include_bytes!("../tests/data/pki/keys/leaf-ec256.pem");
        assert_eq!(Format::detect(p12), Format::Pkcs12);
        assert_eq!(Format::detect(ber), Format::Pkcs12);
        assert_eq!(Format::detect(cert), Format::Pem);
        assert_eq!(
            Format::detect(&pem_der(cert)),
            Format::Pem,
            "DER certificate"
        );
        assert_eq!(Format::detect(&pem_der(key)), Format::Pem, "DER PKCS#8 key");
        let encrypted = crate::PrivateKey::from_pkcs8_der(&pem_der(key))
            .and_then(|k| {
                crate::pem::encode_private_key(
                    &k,
                    Some(&Password::new("x")),
                    &mut crate::random::DeterministicRandom::new(7),
                )
            })
            .map(|text| pem_der(text.as_bytes()))
            .unwrap_or_default();
        assert_eq!(Format::detect(&encrypted), Format::Pem, "DER encrypted key");
        assert_eq!(Format::detect(b"\xfe\xed\xfe\xed\0\0\0\x02"), Format::Jks);
        assert_eq!(Format::detect(b"\xce\xce\xce\xce"), Format::Jceks);
        for junk in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x89",
            b"hello",
        ] {
            assert_eq!(Format::detect(junk), Format::Pkcs12, "{junk:?}");
        }
    }
}
