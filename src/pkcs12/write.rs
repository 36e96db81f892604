//! Writing PKCS#12 archives.
//!
//! Layout, as OpenSSL writes it and every consumer expects: an AuthenticatedSafe with one
//! encryptedData (or, for the `none` profile, data) holding every certificate bag, then one data
//! holding the key bags (each shrouded on its own), then the MAC over it all.

use std::collections::{HashMap, HashSet};

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::oids;
use super::profile::Profile;
use super::read::{Archive, OtherBag, OtherBagKind};
use crate::asn1::{enc, tag};
use crate::cert::Certificate;
use crate::error::{Error, LimitKind, Result};
use crate::identity::Identity;
use crate::limits::Limits;
use crate::parallel::{Job, run_all};
use crate::random::{OsRandom, RandomSource};
use crate::secret::Password;

/// Builds a PKCS#12 archive from identities, extra certificates and trusted certificates.
///
/// ```no_run
/// # fn demo(identity: pfxkit::Identity) -> pfxkit::Result<()> {
/// use pfxkit::pkcs12::{Builder, Profile};
/// use pfxkit::{Limits, Password};
/// let der = Builder::new(Profile::Modern)
///     .identity(identity, Some("web"))
///     .build(&Password::new("secret"), &Limits::default())?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Builder {
    profile: Profile,
    iterations: Option<u32>,
    identities: Vec<(Identity, Option<String>)>,
    extra: Vec<(Certificate, Option<String>)>,
    trusted: Vec<(Certificate, String)>,
    other: Vec<OtherBag>,
    /// friendlyNames of chain certificates (by SHA-256), carried from a read archive.
    chain_aliases: HashMap<[u8; 32], String>,
    allow_empty: bool,
    rng: Box<dyn RandomSource>,
}

impl Builder {
    /// A builder for `profile`, drawing salts and IVs from the OS generator.
    pub fn new(profile: Profile) -> Self {
        Builder {
            profile,
            iterations: None,
            identities: Vec::new(),
            extra: Vec::new(),
            trusted: Vec::new(),
            other: Vec::new(),
            chain_aliases: HashMap::new(),
            allow_empty: false,
            rng: Box::new(OsRandom),
        }
    }

    /// Adds a key with its chain under `alias` (friendlyName); without one, the identity's own
    /// alias is used, if any.
    #[must_use]
    pub fn identity(mut self, identity: Identity, alias: Option<&str>) -> Self {
        let alias = alias
            .map(str::to_string)
            .or_else(|| identity.alias().map(str::to_string));
        self.identities.push((identity, alias));
        self
    }

    /// A builder that carries every entry of `archive` across: each key with its chain and
    /// alias, each certificate that belongs to no key's chain (with its alias), each Java trusted
    /// certificate as a trusted entry (even when it also sits in a key's chain: it is an entry of
    /// its own to Java), and each CRL, secret or unknown bag with its value unchanged.
    ///
    /// Bag attributes other than friendlyName, localKeyId and the Java trust attribute are not
    /// carried: the reader keeps only their OIDs ([`BagAttributes::other`](super::BagAttributes)).
    /// Keys whose certificate is not in the archive cannot form an identity and are not carried
    /// either; [`Archive::identities`] tells how many did.
    pub fn from_archive(profile: Profile, archive: &Archive) -> Self {
        let mut builder = Builder::new(profile);
        let mut in_chains: HashSet<[u8; 32]> = HashSet::new();
        for identity in archive.identities() {
            in_chains.extend(identity.chain().iter().map(|c| *c.sha256()));
            builder = builder.identity(identity, None);
        }
        for bag in archive.certificates() {
            let alias = bag.attributes.friendly_name.as_deref();
            if bag.attributes.java_trusted {
                let alias = alias.map_or_else(|| bag.certificate.subject(), str::to_string);
                builder = builder.trusted_certificate(bag.certificate.clone(), &alias);
            } else if in_chains.insert(*bag.certificate.sha256()) {
                builder = builder.extra_certificate(bag.certificate.clone(), alias);
            } else if let Some(alias) = alias {
                // A CA certificate of some key's chain: keep the name its producer gave it
                // (keytool names them by subject).
                builder
                    .chain_aliases
                    .entry(*bag.certificate.sha256())
                    .or_insert_with(|| alias.to_string());
            }
        }
        for bag in archive.other_bags() {
            builder.other.push(bag.clone());
        }
        builder
    }

    /// Adds a certificate that belongs to no key.
    #[must_use]
    pub fn extra_certificate(mut self, certificate: Certificate, alias: Option<&str>) -> Self {
        self.extra.push((certificate, alias.map(str::to_string)));
        self
    }

    /// Adds a certificate marked trusted for Java (a keytool "trustedCertEntry").
    #[must_use]
    pub fn trusted_certificate(mut self, certificate: Certificate, alias: &str) -> Self {
        self.trusted.push((certificate, alias.to_string()));
        self
    }

    /// Overrides the profile's iteration count (checked against [`Limits::max_iterations`]).
    #[must_use]
    pub fn iterations(mut self, iterations: u32) -> Self {
        self.iterations = Some(iterations);
        self
    }

    /// Allows an archive with no entries (an emptied store); otherwise that is an error, since
    /// it is usually a caller's mistake.
    #[must_use]
    pub fn allow_empty(mut self) -> Self {
        self.allow_empty = true;
        self
    }

    /// Replaces the random source (for reproducible test output).
    #[must_use]
    pub fn random(mut self, rng: impl RandomSource + 'static) -> Self {
        self.rng = Box::new(rng);
        self
    }

    /// Encodes the archive.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for an iteration count the reader would refuse, [`Error::Invalid`]
    /// for an archive with nothing in it, [`Error::Io`] when the random source fails.
    pub fn build(mut self, password: &Password, limits: &Limits) -> Result<Vec<u8>> {
        let iterations = self.iterations.unwrap_or(self.profile.default_iterations());
        if self.profile != Profile::None {
            if iterations == 0 {
                return Err(Error::Invalid(
                    "the iteration count must be at least 1".into(),
                ));
            }
            Limits::check(
                LimitKind::Iterations,
                u64::from(iterations),
                limits.max_iterations,
            )?;
        }
        if !self.allow_empty
            && self.identities.is_empty()
            && self.extra.is_empty()
            && self.trusted.is_empty()
            && self.other.is_empty()
        {
            return Err(Error::Invalid(
                "nothing to write: no key, certificate or trusted certificate".into(),
            ));
        }
        let rng = self.rng.as_mut();

        // Draw every salt and IV first, in a fixed order, so output is reproducible with a
        // deterministic source; then run the independent derivations side by side.
        let mut cert_bags = Vec::new();
        let mut keys = Vec::new();
        let mut written: HashSet<[u8; 32]> = HashSet::new();
        for (identity, alias) in &self.identities {
            let leaf = identity.leaf();
            let local_key_id: [u8; 20] = Sha1::digest(leaf.der()).into();
            let attrs = attributes(alias.as_deref(), Some(&local_key_id), false);
            keys.push((
                identity.key().expose_pkcs8_der(),
                self.profile.key_scheme(iterations, rng)?,
                attrs.clone(),
            ));
            cert_bags.push(cert_bag(leaf, &attrs));
            written.insert(*leaf.sha256());
            // CA certificates shared by several chains are written once.
            for ca in identity.chain().iter().skip(1) {
                if written.insert(*ca.sha256()) {
                    let alias = self.chain_aliases.get(ca.sha256()).map(String::as_str);
                    cert_bags.push(cert_bag(ca, &attributes(alias, None, false)));
                }
            }
        }
        for (cert, alias) in &self.extra {
            cert_bags.push(cert_bag(cert, &attributes(alias.as_deref(), None, false)));
        }
        for (cert, alias) in &self.trusted {
            cert_bags.push(cert_bag(cert, &attributes(Some(alias), None, true)));
        }
        // CRL, secret and unknown bags travel with the certificates, so they get the
        // certificates' protection; a secret bag's value carries its own encryption when its
        // producer gave it one.
        for bag in &self.other {
            let bag_id = match &bag.kind {
                OtherBagKind::Crl => oids::CRL_BAG,
                OtherBagKind::Secret => oids::SECRET_BAG,
                OtherBagKind::Certificate(_) => oids::CERT_BAG,
                OtherBagKind::Unknown(oid) => *oid,
            };
            let attrs = attributes(
                bag.attributes.friendly_name.as_deref(),
                bag.attributes.local_key_id.as_deref(),
                bag.attributes.java_trusted,
            );
            cert_bags.push(safe_bag(&bag_id, &bag.value, &attrs));
        }
        let cert_safe = (!cert_bags.is_empty())
            .then(|| enc::seq(&cert_bags.iter().map(Vec::as_slice).collect::<Vec<_>>()));
        let cert_scheme = match &cert_safe {
            Some(_) => self.profile.cert_scheme(iterations, rng)?,
            None => None,
        };
        let mac = self.profile.mac(iterations, rng)?;

        // The MAC key, the certificates' encryption and each key's are independent KDFs: run
        // them side by side. Each job owns copies of its inputs (the key copies are zeroized).
        enum Derived {
            MacKey(Option<Zeroizing<Vec<u8>>>),
            Ciphertext(Result<Option<Vec<u8>>>),
        }
        let mut jobs: Vec<Job<Derived>> = Vec::with_capacity(keys.len() + 2);
        {
            let (mac, password) = (mac.clone(), password.clone());
            jobs.push(Box::new(move || {
                Derived::MacKey(mac.as_ref().map(|m| m.derive_key(&password)))
            }));
        }
        {
            let (scheme, safe, password) =
                (cert_scheme.clone(), cert_safe.clone(), password.clone());
            jobs.push(Box::new(move || {
                Derived::Ciphertext(match (&scheme, &safe) {
                    (Some(scheme), Some(safe)) => scheme.encrypt(&password, safe).map(Some),
                    _ => Ok(None),
                })
            }));
        }
        for (pkcs8, scheme, _) in &keys {
            let (pkcs8, scheme, password) = (
                Zeroizing::new(pkcs8.to_vec()),
                scheme.clone(),
                password.clone(),
            );
            jobs.push(Box::new(move || {
                Derived::Ciphertext(
                    scheme
                        .as_ref()
                        .map(|s| s.encrypt(&password, &pkcs8))
                        .transpose(),
                )
            }));
        }
        let worker = || Error::Invalid("a key derivation job failed".into());
        let mut derived = run_all(jobs).into_iter();
        let Some(Some(Derived::MacKey(mac_key))) = derived.next() else {
            return Err(worker());
        };
        let Some(Some(Derived::Ciphertext(cert_ciphertext))) = derived.next() else {
            return Err(worker());
        };
        let cert_ciphertext = cert_ciphertext?;
        let key_ciphertexts = derived.map(|d| match d {
            Some(Derived::Ciphertext(ct)) => ct,
            _ => Err(worker()),
        });

        let mut key_bags = Vec::with_capacity(keys.len());
        for ((pkcs8, scheme, attrs), ciphertext) in keys.iter().zip(key_ciphertexts) {
            key_bags.push(match (scheme, ciphertext?) {
                (Some(scheme), Some(ct)) => {
                    let epki = enc::seq(&[&scheme.to_der(), &enc::octets(&ct)]);
                    safe_bag(&oids::SHROUDED_KEY_BAG, &epki, attrs)
                }
                _ => safe_bag(&oids::KEY_BAG, pkcs8, attrs),
            });
        }
        let mut contents = Vec::new();
        if let Some(safe) = &cert_safe {
            contents.push(match (&cert_scheme, cert_ciphertext) {
                (Some(scheme), Some(ct)) => encrypted_data(&scheme.to_der(), &ct),
                _ => data(safe),
            });
        }
        if !key_bags.is_empty() {
            contents.push(data(&enc::seq(
                &key_bags.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            )));
        }
        let auth_safe = enc::seq(&contents.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let mac_data = match (&mac, &mac_key) {
            (Some(mac), Some(key)) => mac.mac_data_der(&mac.mac_with_key(key, &auth_safe)),
            _ => Vec::new(),
        };
        Ok(enc::seq(&[&enc::uint(3), &data(&auth_safe), &mac_data]))
    }
}

/// `ContentInfo { data, [0] EXPLICIT OCTET STRING }`.
fn data(content: &[u8]) -> Vec<u8> {
    enc::seq(&[
        &enc::oid(&oids::DATA),
        &enc::explicit0(&enc::octets(content)),
    ])
}

/// `ContentInfo { encryptedData, [0] EXPLICIT EncryptedData { 0, EncryptedContentInfo { data,
/// algorithm, [0] IMPLICIT OCTET STRING } } }`.
fn encrypted_data(algorithm: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let eci = enc::seq(&[
        &enc::oid(&oids::DATA),
        algorithm,
        &enc::tlv(tag::CONTEXT_0_PRIMITIVE, ciphertext),
    ]);
    let ed = enc::seq(&[&enc::uint(0), &eci]);
    enc::seq(&[&enc::oid(&oids::ENCRYPTED_DATA), &enc::explicit0(&ed)])
}

/// `SafeBag { bagId, [0] EXPLICIT value, attributes }`.
fn safe_bag(bag_id: &der::asn1::ObjectIdentifier, value: &[u8], attrs: &[u8]) -> Vec<u8> {
    enc::seq(&[&enc::oid(bag_id), &enc::explicit0(value), attrs])
}

fn cert_bag(cert: &Certificate, attrs: &[u8]) -> Vec<u8> {
    let value = enc::seq(&[
        &enc::oid(&oids::X509_CERTIFICATE),
        &enc::explicit0(&enc::octets(cert.der())),
    ]);
    safe_bag(&oids::CERT_BAG, &value, attrs)
}

/// The bag attributes SET (empty bytes when there are none), sorted as DER requires.
fn attributes(
    friendly_name: Option<&str>,
    local_key_id: Option<&[u8]>,
    java_trusted: bool,
) -> Vec<u8> {
    let mut attrs = Vec::new();
    if let Some(name) = friendly_name {
        attrs.push(enc::seq(&[
            &enc::oid(&oids::FRIENDLY_NAME),
            &enc::set(&[&enc::bmp_string(name)]),
        ]));
    }
    if let Some(id) = local_key_id {
        attrs.push(enc::seq(&[
            &enc::oid(&oids::LOCAL_KEY_ID),
            &enc::set(&[&enc::octets(id)]),
        ]));
    }
    if java_trusted {
        // keytool marks trusted certificates with this attribute holding anyExtendedKeyUsage.
        attrs.push(enc::seq(&[
            &enc::oid(&oids::JAVA_TRUSTED),
            &enc::set(&[&enc::oid(&oids::ANY_EXTENDED_KEY_USAGE)]),
        ]));
    }
    if attrs.is_empty() {
        return Vec::new();
    }
    attrs.sort();
    enc::set(&attrs.iter().map(Vec::as_slice).collect::<Vec<_>>())
}
