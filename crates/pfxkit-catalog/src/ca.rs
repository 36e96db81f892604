//! The embedded CA: key generation, certificate encoding (RFC 5280) and signing.
//!
//! Certificates are encoded with pfxkit's own small DER writer, field by field as RFC 5280 §4.1
//! lists them, and parsed back through [`Certificate::from_der`] before anything uses them.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::Encode;
use der::asn1::ObjectIdentifier as Oid;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use pfxkit::asn1::{enc, tag};
use pfxkit::cert::Certificate;
use pfxkit::secret::{Curve, KeyAlgorithm, PrivateKey, oids as key_oids};

/// Key types the CA generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// Ed25519.
    Ed25519,
}

const KEY_TYPES: [KeyType; 6] = [
    KeyType::Rsa2048,
    KeyType::Rsa3072,
    KeyType::Rsa4096,
    KeyType::EcP256,
    KeyType::EcP384,
    KeyType::Ed25519,
];

impl KeyType {
    /// Every key type.
    pub fn all() -> &'static [KeyType] {
        &KEY_TYPES
    }

    /// The CLI name: `rsa-2048`, `ec-p256`, `ed25519`, …
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Ed25519 => "ed25519",
        }
    }

    /// The key type of an existing key, when the CA can generate that type.
    pub fn of(key: &PrivateKey) -> Option<KeyType> {
        match key.algorithm() {
            KeyAlgorithm::Rsa { bits: 2048 } => Some(KeyType::Rsa2048),
            KeyAlgorithm::Rsa { bits: 3072 } => Some(KeyType::Rsa3072),
            KeyAlgorithm::Rsa { bits: 4096 } => Some(KeyType::Rsa4096),
            KeyAlgorithm::Ec(Some(Curve::P256)) => Some(KeyType::EcP256),
            KeyAlgorithm::Ec(Some(Curve::P384)) => Some(KeyType::EcP384),
            KeyAlgorithm::Ed25519 => Some(KeyType::Ed25519),
            _ => None,
        }
    }

    /// Generates a fresh key from the OS generator.
    ///
    /// # Errors
    /// [`Error::Codec`] (I/O) when the OS generator fails.
    pub fn generate(self) -> Result<PrivateKey> {
        let rng_err = |e: String| Error::io_other(e);
        let der: Zeroizing<Vec<u8>> = match self {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let bits = match self {
                    KeyType::Rsa2048 => 2048,
                    KeyType::Rsa3072 => 3072,
                    _ => 4096,
                };
                let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
                    .map_err(|e| rng_err(e.to_string()))?;
                let doc = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
                    .map_err(|e| rng_err(e.to_string()))?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
            KeyType::EcP256 | KeyType::EcP384 => {
                let curve = if self == KeyType::EcP256 {
                    Curve::P256
                } else {
                    Curve::P384
                };
                // Rejection sampling: a random string is a valid scalar with overwhelming
                // probability; retry on the negligible rest.
                loop {
                    let mut scalar =
                        Zeroizing::new(vec![0u8; if curve == Curve::P256 { 32 } else { 48 }]);
                    getrandom::fill(&mut scalar).map_err(|e| rng_err(e.to_string()))?;
                    let point = match curve {
                        Curve::P256 => p256::SecretKey::from_slice(&scalar).ok().map(|k| {
                            p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(
                                &k.public_key(),
                                false,
                            )
                            .as_bytes()
                            .to_vec()
                        }),
                        _ => p384::SecretKey::from_slice(&scalar).ok().map(|k| {
                            p384::elliptic_curve::sec1::ToSec1Point::to_sec1_point(
                                &k.public_key(),
                                false,
                            )
                            .as_bytes()
                            .to_vec()
                        }),
                    };
                    if let Some(point) = point {
                        break Zeroizing::new(ec_pkcs8(curve, &scalar, &point));
                    }
                }
            }
            KeyType::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut_slice()).map_err(|e| rng_err(e.to_string()))?;
                Zeroizing::new(enc::seq(&[
                    &enc::uint(0),
                    &enc::algorithm(&key_oids::ED25519, None),
                    &enc::octets(&enc::octets(seed.as_slice())),
                ]))
            }
        };
        Ok(PrivateKey::from_pkcs8_der(&der)?)
    }
}

impl FromStr for KeyType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        KEY_TYPES
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown key type '{s}' (expected one of: {})",
                    KEY_TYPES.map(KeyType::name).join(", ")
                ))
            })
    }
}

/// PKCS#8 for an EC key: `ECPrivateKey { 1, scalar, [1] publicKey }` under id-ecPublicKey.
fn ec_pkcs8(curve: Curve, scalar: &[u8], point: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let ec = enc::seq(&[
        &enc::uint(1),
        &enc::octets(scalar),
        &enc::tlv(0xa1, &enc::tlv(0x03, &bits)),
    ]);
    enc::seq(&[
        &enc::uint(0),
        &enc::algorithm(&key_oids::EC, Some(&enc::oid(&curve.oid()))),
        &enc::octets(&ec),
    ])
}

/// A subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// An e-mail address.
    Email(String),
}

impl FromStr for San {
    type Err = Error;

    /// `dns:NAME`, `ip:ADDR` or `email:ADDR`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "SAN '{s}': expected dns:NAME, ip:ADDR or email:ADDR"
            ))
        };
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        if value.is_empty() || !value.is_ascii() {
            return Err(bad());
        }
        match kind {
            "dns" => Ok(San::Dns(value.to_string())),
            "ip" => value.parse().map(San::Ip).map_err(|_| bad()),
            "email" => Ok(San::Email(value.to_string())),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => write!(f, "dns:{d}"),
            San::Ip(ip) => write!(f, "ip:{ip}"),
            San::Email(e) => write!(f, "email:{e}"),
        }
    }
}

/// The SANs of an existing certificate (for renewal).
pub fn sans_of(cert: &Certificate) -> Vec<San> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(Some((_, sans))) = cert
        .x509()
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
    else {
        return Vec::new();
    };
    sans.0
        .iter()
        .filter_map(|n| match n {
            GeneralName::DnsName(d) => Some(San::Dns(d.to_string())),
            GeneralName::Rfc822Name(e) => Some(San::Email(e.to_string())),
            GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                4 => <[u8; 4]>::try_from(ip.as_bytes())
                    .ok()
                    .map(|b| San::Ip(IpAddr::from(b))),
                16 => <[u8; 16]>::try_from(ip.as_bytes())
                    .ok()
                    .map(|b| San::Ip(IpAddr::from(b))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// What a new certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Usage {
    /// A CA certificate (keyCertSign, cRLSign; basicConstraints CA).
    Ca,
    /// A TLS server/client certificate (digitalSignature [+ keyEncipherment for RSA];
    /// serverAuth, clientAuth).
    Tls,
}

/// The key a certificate certifies: a key the catalog holds, or only the public half a CSR
/// brought (an agent keeps its private key).
#[derive(Clone, Copy)]
pub(crate) enum SubjectKey<'a> {
    /// A private key (its public half is certified).
    Private(&'a PrivateKey),
    /// A SubjectPublicKeyInfo, DER.
    Public(&'a [u8]),
}

impl<'a> From<&'a PrivateKey> for SubjectKey<'a> {
    fn from(key: &'a PrivateKey) -> Self {
        SubjectKey::Private(key)
    }
}

/// Everything needed to issue one certificate.
pub(crate) struct Request<'a> {
    pub subject_der: Vec<u8>,
    pub sans: &'a [San],
    pub subject_key: SubjectKey<'a>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub usage: Usage,
}

/// The issuer: its certificate (absent for a self-signed root) and signing key.
pub(crate) struct Issuer<'a> {
    pub certificate: Option<&'a Certificate>,
    pub key: &'a PrivateKey,
}

/// Encodes an RFC 4514 DN string as a DER Name.
///
/// # Errors
/// [`Error::Invalid`] when the string is not a DN.
pub fn name_der(dn: &str) -> Result<Vec<u8>> {
    let name = x509_cert::name::Name::from_str(dn)
        .map_err(|e| Error::Invalid(format!("subject '{dn}': {e}")))?;
    if name.as_ref().is_empty() {
        return Err(Error::Invalid("the subject DN is empty".into()));
    }
    name.to_der()
        .map_err(|e| Error::Invalid(format!("subject '{dn}': {e}")))
}

/// The SubjectPublicKeyInfo DER of a private key's public half.
///
/// # Errors
/// [`Error::Codec`] (unsupported) for algorithms the CA does not use.
pub fn public_key_info(key: &PrivateKey) -> Result<Vec<u8>> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let der = key.expose_pkcs8_der();
    let fail = |e: String| Error::malformed("private key", e);
    match key.algorithm() {
        KeyAlgorithm::Rsa { .. } => {
            let k = rsa::PrivateKey::from_pkcs8_der(der).map_err(|e| fail(e.to_string()))?;
            let doc = k
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| fail(e.to_string()))?;
            Ok(doc.as_bytes().to_vec())
        }
        KeyAlgorithm::Ec(Some(Curve::P256)) => {
            let k = p256::SecretKey::from_pkcs8_der(der).map_err(|e| fail(e.to_string()))?;
            Ok(k.public_key()
                .to_public_key_der()
                .map_err(|e| fail(e.to_string()))?
                .as_bytes()
                .to_vec())
        }
        KeyAlgorithm::Ec(Some(Curve::P384)) => {
            let k = p384::SecretKey::from_pkcs8_der(der).map_err(|e| fail(e.to_string()))?;
            Ok(k.public_key()
                .to_public_key_der()
                .map_err(|e| fail(e.to_string()))?
                .as_bytes()
                .to_vec())
        }
        KeyAlgorithm::Ed25519 => {
            let seed = ed25519_seed(key)?;
            let vk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
            let mut bits = vec![0u8];
            bits.extend_from_slice(vk.as_bytes());
            Ok(enc::seq(&[
                &enc::algorithm(&key_oids::ED25519, None),
                &enc::tlv(tag::BIT_STRING_TAG, &bits),
            ]))
        }
        other => Err(Error::unsupported(
            format!("{} keys in the embedded CA", other.name()),
            None,
        )),
    }
}

fn ed25519_seed(key: &PrivateKey) -> Result<Zeroizing<[u8; 32]>> {
    use der::Decode;
    let info = pkcs8::PrivateKeyInfoRef::from_der(key.expose_pkcs8_der())
        .map_err(|e| Error::from_der("Ed25519 private key", e))?;
    let inner = <&der::asn1::OctetStringRef>::from_der(info.private_key.as_bytes())
        .map_err(|e| Error::from_der("Ed25519 private key", e))?;
    let seed: [u8; 32] = inner
        .as_bytes()
        .try_into()
        .map_err(|_| Error::malformed("Ed25519 private key", "not 32 bytes"))?;
    Ok(Zeroizing::new(seed))
}

/// The signatureAlgorithm DER a key signs with.
fn signature_algorithm(key: &PrivateKey) -> Result<Vec<u8>> {
    match key.algorithm() {
        KeyAlgorithm::Rsa { .. } => Ok(enc::algorithm(&SHA256_WITH_RSA, Some(&enc::null()))),
        KeyAlgorithm::Ec(Some(Curve::P256)) => Ok(enc::algorithm(&ECDSA_SHA256, None)),
        KeyAlgorithm::Ec(Some(Curve::P384)) => Ok(enc::algorithm(&ECDSA_SHA384, None)),
        KeyAlgorithm::Ed25519 => Ok(enc::algorithm(&key_oids::ED25519, None)),
        other => Err(Error::unsupported(
            format!("signing with {} keys", other.name()),
            None,
        )),
    }
}

/// The signature of `tbs` under `key`, with the algorithm of [`signature_algorithm`].
fn sign(key: &PrivateKey, tbs: &[u8]) -> Result<Vec<u8>> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let der = key.expose_pkcs8_der();
    let fail = |e: String| Error::malformed("signing key", e);
    match key.algorithm() {
        KeyAlgorithm::Rsa { .. } => {
            let k = rsa::PrivateKey::from_pkcs8_der(der).map_err(|e| fail(e.to_string()))?;
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k);
            let sig = signer.try_sign(tbs).map_err(|e| fail(e.to_string()))?;
            Ok(sig.to_vec())
        }
        KeyAlgorithm::Ec(Some(Curve::P256)) => {
            let k =
                p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| fail(e.to_string()))?;
            let sig: p256::ecdsa::Signature = k.try_sign(tbs).map_err(|e| fail(e.to_string()))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        KeyAlgorithm::Ec(Some(Curve::P384)) => {
            let k =
                p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| fail(e.to_string()))?;
            let sig: p384::ecdsa::Signature = k.try_sign(tbs).map_err(|e| fail(e.to_string()))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        KeyAlgorithm::Ed25519 => {
            let k = ed25519_dalek::SigningKey::from_bytes(&*ed25519_seed(key)?);
            let sig = k.try_sign(tbs).map_err(|e| fail(e.to_string()))?;
            Ok(sig.to_bytes().to_vec())
        }
        other => Err(Error::unsupported(
            format!("signing with {} keys", other.name()),
            None,
        )),
    }
}

const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
const SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
const SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
const CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");

fn extension(oid: &Oid, critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        enc::seq(&[&enc::oid(oid), &[0x01, 0x01, 0xff], &enc::octets(value)])
    } else {
        enc::seq(&[&enc::oid(oid), &enc::octets(value)])
    }
}

/// A DER BIT STRING of KeyUsage bits (bit 0 = digitalSignature), minimal encoding.
fn key_usage_bits(bits: &[u8]) -> Vec<u8> {
    let mut value: u16 = 0;
    for b in bits {
        value |= 1 << (15 - b);
    }
    let [high, low] = value.to_be_bytes();
    let used: &[u8] = if low == 0 { &[high] } else { &[high, low] };
    let last = if low == 0 { high } else { low };
    let unused = last.trailing_zeros().min(7) as u8;
    let mut content = vec![unused];
    content.extend_from_slice(used);
    enc::tlv(tag::BIT_STRING_TAG, &content)
}

/// Key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1).
fn key_id(spki_der: &[u8]) -> Result<Vec<u8>> {
    use der::Decode;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| Error::from_der("public key", e))?;
    Ok(Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
}

/// X.509 Time: UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
fn time_der(t: SystemTime) -> Result<Vec<u8>> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Invalid("time before 1970".into()))?
        .as_secs();
    let text = pfxkit::cert::rfc3339(secs);
    // "YYYY-MM-DDTHH:MM:SSZ" → digits
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let year: u32 = digits.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
    if year < 2050 {
        Ok(enc::tlv(
            0x17,
            format!("{}Z", digits.get(2..).unwrap_or_default()).as_bytes(),
        ))
    } else {
        Ok(enc::tlv(0x18, format!("{digits}Z").as_bytes()))
    }
}

/// Issues a certificate: encodes the TBSCertificate, signs it, and parses the result back.
pub(crate) fn issue(req: &Request<'_>, issuer: &Issuer<'_>) -> Result<Certificate> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| Error::io_other(e.to_string()))?;
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x40; // 16 significant bytes, never a leading zero
    let (spki, rsa) = match req.subject_key {
        SubjectKey::Private(key) => (
            public_key_info(key)?,
            matches!(key.algorithm(), KeyAlgorithm::Rsa { .. }),
        ),
        SubjectKey::Public(spki) => {
            use der::Decode;
            let info = spki::SubjectPublicKeyInfoRef::from_der(spki)
                .map_err(|e| Error::from_der("public key", e))?;
            (spki.to_vec(), info.algorithm.oid == RSA_ENCRYPTION)
        }
    };
    let ski = key_id(&spki)?;
    let (issuer_name, aki) = match issuer.certificate {
        Some(c) => (
            c.x509()
                .tbs_certificate()
                .subject()
                .to_der()
                .map_err(|e| Error::from_der("issuer name", e))?,
            c.with_public_key(|k| Ok(Sha1::digest(k.subject_public_key.raw_bytes()).to_vec()))?,
        ),
        None => (req.subject_der.clone(), ski.clone()),
    };
    let sig_alg = signature_algorithm(issuer.key)?;

    let mut exts = Vec::new();
    match req.usage {
        Usage::Ca => {
            exts.push(extension(
                &BASIC_CONSTRAINTS,
                true,
                &enc::seq(&[&[0x01, 0x01, 0xff]]),
            ));
            exts.push(extension(&KEY_USAGE, true, &key_usage_bits(&[5, 6])));
        }
        Usage::Tls => {
            exts.push(extension(&BASIC_CONSTRAINTS, true, &enc::seq(&[])));
            let bits: &[u8] = if rsa { &[0, 2] } else { &[0] };
            exts.push(extension(&KEY_USAGE, true, &key_usage_bits(bits)));
            exts.push(extension(
                &EXT_KEY_USAGE,
                false,
                &enc::seq(&[&enc::oid(&SERVER_AUTH), &enc::oid(&CLIENT_AUTH)]),
            ));
        }
    }
    if !req.sans.is_empty() {
        let names: Vec<Vec<u8>> = req
            .sans
            .iter()
            .map(|s| match s {
                San::Email(e) => enc::tlv(0x81, e.as_bytes()),
                San::Dns(d) => enc::tlv(0x82, d.as_bytes()),
                San::Ip(IpAddr::V4(v4)) => enc::tlv(0x87, &v4.octets()),
                San::Ip(IpAddr::V6(v6)) => enc::tlv(0x87, &v6.octets()),
            })
            .collect();
        exts.push(extension(
            &SUBJECT_ALT_NAME,
            false,
            &enc::seq(&names.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        ));
    }
    exts.push(extension(&SUBJECT_KEY_ID, false, &enc::octets(&ski)));
    exts.push(extension(
        &AUTHORITY_KEY_ID,
        false,
        &enc::seq(&[&enc::tlv(0x80, &aki)]),
    ));

    let tbs = enc::seq(&[
        &enc::tlv(0xa0, &enc::uint(2)),
        &enc::tlv(tag::INTEGER, &serial),
        &sig_alg,
        &issuer_name,
        &enc::seq(&[&time_der(req.not_before)?, &time_der(req.not_after)?]),
        &req.subject_der,
        &spki,
        &enc::tlv(
            0xa3,
            &enc::seq(&exts.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        ),
    ]);
    let signature = sign(issuer.key, &tbs)?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    let der = enc::seq(&[&tbs, &sig_alg, &enc::tlv(tag::BIT_STRING_TAG, &bits)]);
    Ok(Certificate::from_der(&der)?)
}

/// A PKCS#10 certification request (RFC 2986) for `key` with `subject` (an RFC 4514 DN),
/// signed by `key` (its proof of possession), DER. No attributes.
///
/// # Errors
/// [`Error::Invalid`] for a bad DN; [`Error::Codec`] (unsupported) for key types the CA does
/// not sign with.
pub fn csr(key: &PrivateKey, subject: &str) -> Result<Vec<u8>> {
    let info = enc::seq(&[
        &enc::uint(0),
        &name_der(subject)?,
        &public_key_info(key)?,
        &enc::tlv(0xa0, &[]),
    ]);
    let signature = sign(key, &info)?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    Ok(enc::seq(&[
        &info,
        &signature_algorithm(key)?,
        &enc::tlv(tag::BIT_STRING_TAG, &bits),
    ]))
}

/// Checks a PKCS#10 request's signature with the key it carries (ECDSA P-256 with SHA-256,
/// or Ed25519 — what agents generate) and returns that key's SubjectPublicKeyInfo, DER.
/// The request's subject is not returned: the CA names the certificate itself.
///
/// # Errors
/// [`Error::Invalid`] for a request that does not parse, another algorithm, or a signature
/// that does not verify (the sender does not hold the key).
pub fn verify_csr(der_bytes: &[u8]) -> Result<Vec<u8>> {
    use der::Decode;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let bad = |why: &str| Error::Invalid(format!("certificate signing request: {why}"));
    let req = x509_cert::request::CertReq::from_der(der_bytes).map_err(|e| bad(&e.to_string()))?;
    let info = req.info.to_der().map_err(|e| bad(&e.to_string()))?;
    let spki = req
        .info
        .public_key
        .to_der()
        .map_err(|e| bad(&e.to_string()))?;
    let signature = req
        .signature
        .as_bytes()
        .ok_or_else(|| bad("the signature is not whole bytes"))?;
    let alg = req.algorithm.oid;
    if alg == ECDSA_SHA256 {
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
            .map_err(|_| bad("an ECDSA request must carry a P-256 key"))?;
        let sig =
            p256::ecdsa::Signature::from_der(signature).map_err(|_| bad("malformed signature"))?;
        key.verify(&info, &sig)
            .map_err(|_| bad("the signature does not verify: the sender does not hold the key"))?;
    } else if alg == key_oids::ED25519 {
        let point: [u8; 32] = req
            .info
            .public_key
            .subject_public_key
            .as_bytes()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("malformed Ed25519 key"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&point)
            .map_err(|_| bad("malformed Ed25519 key"))?;
        let sig = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| bad("malformed signature"))?;
        key.verify_strict(&info, &sig)
            .map_err(|_| bad("the signature does not verify: the sender does not hold the key"))?;
    } else {
        return Err(bad(&format!(
            "signature algorithm {alg} (ECDSA P-256 with SHA-256 or Ed25519 expected)"
        )));
    }
    Ok(spki)
}

/// `now` and `now + days`, with the start set back a minute for clock skew.
pub(crate) fn validity(days: u32) -> (SystemTime, SystemTime) {
    validity_from(SystemTime::now(), u64::from(days) * 86_400)
}

/// `start` and `start + secs`, with the start set back a minute for clock skew.
pub(crate) fn validity_from(start: SystemTime, secs: u64) -> (SystemTime, SystemTime) {
    let not_before = start.checked_sub(Duration::from_secs(60)).unwrap_or(start);
    (not_before, start + Duration::from_secs(secs))
}
