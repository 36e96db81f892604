//! Secret values: passwords and private keys.
//!
//! Both are zeroized on drop, print `[redacted]` in `Debug`, and have no `Deref`/`AsRef`: the
//! only way to the bytes is an explicitly named accessor, so every use can be found with grep.

use std::fmt;

use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Reader, SliceReader};
use spki::SubjectPublicKeyInfoRef;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A password, or the explicit absence of one.
///
/// The empty password `""` and the absent password are different keys in PKCS#12: the empty one
/// is the BMPString terminator `00 00`, the absent one is zero bytes. Files in the wild use both.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Option<Zeroizing<String>>);

impl Password {
    /// A password from its text.
    pub fn new(text: impl Into<String>) -> Self {
        Password(Some(Zeroizing::new(text.into())))
    }

    /// The absent (NULL) password, distinct from the empty one.
    pub fn absent() -> Self {
        Password(None)
    }

    /// Whether this is the absent password.
    pub fn is_absent(&self) -> bool {
        self.0.is_none()
    }

    /// Whether this is the empty (but present) password.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_empty())
    }

    /// The text of the password (`None` when absent). Named so every use can be audited.
    pub fn expose_secret(&self) -> Option<&str> {
        self.0.as_deref().map(String::as_str)
    }

    /// UTF-8 bytes, as PBES2 and PBMAC1 use them (absent and empty are both no bytes).
    pub(crate) fn utf8_bytes(&self) -> &[u8] {
        self.0.as_deref().map(String::as_bytes).unwrap_or_default()
    }

    /// BMPString (UTF-16BE) with a two-byte NUL terminator, as PBES1 and the classic MAC use it;
    /// characters outside the BMP become surrogate pairs, as OpenSSL and `cryptography` do. The
    /// absent password is zero bytes.
    pub(crate) fn bmp_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        if let Some(text) = self.0.as_deref() {
            out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
            out.extend([0, 0]);
        }
        out
    }

    /// UTF-16BE code units without a terminator, as Java keystores use them.
    pub(crate) fn utf16be_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        if let Some(text) = self.0.as_deref() {
            out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        }
        out
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Password([redacted])"),
            None => f.write_str("Password(absent)"),
        }
    }
}

/// Elliptic curves pfxkit knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

impl Curve {
    /// The curve's size in bits.
    pub fn bits(self) -> u32 {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }

    /// The named-curve OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::P256 => oids::P256,
            Curve::P384 => oids::P384,
            Curve::P521 => oids::P521,
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [Curve::P256, Curve::P384, Curve::P521]
            .into_iter()
            .find(|c| c.oid() == *oid)
    }
}

/// The algorithm of a private key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA (rsaEncryption or RSASSA-PSS), with its modulus size in bits.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// ECDSA/ECDH on a named curve; `None` for a curve pfxkit does not know.
    Ec(Option<Curve>),
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
    /// DSA, with the size of its prime p in bits.
    Dsa {
        /// Size of p in bits.
        bits: u32,
    },
    /// Any other algorithm: kept opaque, never lost.
    Other(ObjectIdentifier),
}

impl KeyAlgorithm {
    /// The short name used in JSON output: `rsa`, `ec`, `ed25519`, `ed448`, `dsa`; for keys
    /// pfxkit has no arithmetic for, the algorithm's name when it is a known one (`ml-kem-768`,
    /// `ml-dsa-65`, `slh-dsa-…`, `x25519`, `x448`, `dh`, `gost2001`, `gost2012-256`, …),
    /// otherwise the OID in dotted form.
    pub fn name(&self) -> String {
        match self {
            KeyAlgorithm::Rsa { .. } => "rsa".into(),
            KeyAlgorithm::Ec(_) => "ec".into(),
            KeyAlgorithm::Ed25519 => "ed25519".into(),
            KeyAlgorithm::Ed448 => "ed448".into(),
            KeyAlgorithm::Dsa { .. } => "dsa".into(),
            KeyAlgorithm::Other(oid) => other_algorithm_name(oid)
                .map(str::to_string)
                .unwrap_or_else(|| oid.to_string()),
        }
    }

    /// The key size in bits (curve size for EC), when known.
    pub fn bits(&self) -> Option<u32> {
        match self {
            KeyAlgorithm::Rsa { bits } | KeyAlgorithm::Dsa { bits } => Some(*bits),
            KeyAlgorithm::Ec(curve) => curve.map(Curve::bits),
            KeyAlgorithm::Ed25519 => Some(256),
            KeyAlgorithm::Ed448 => Some(456),
            KeyAlgorithm::Other(_) => None,
        }
    }
}

/// Object identifiers of key algorithms.
pub mod oids {
    use der::asn1::ObjectIdentifier as Oid;
    /// `rsaEncryption` (RFC 8017).
    pub const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// `id-RSASSA-PSS` (RFC 4055).
    pub const RSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    /// `id-ecPublicKey` (RFC 5480).
    pub const EC: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// `secp256r1` / P-256.
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// `secp384r1` / P-384.
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    /// `secp521r1` / P-521.
    pub const P521: Oid = Oid::new_unwrap("1.3.132.0.35");
    /// `id-Ed25519` (RFC 8410).
    pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    /// `id-Ed448` (RFC 8410).
    pub const ED448: Oid = Oid::new_unwrap("1.3.101.113");
    /// `id-dsa` (RFC 3279).
    pub const DSA: Oid = Oid::new_unwrap("1.2.840.10040.4.1");
}

/// DSA primes above this size are refused before any modular exponentiation: a hostile key
/// could otherwise make the public-key check arbitrarily slow.
const MAX_DSA_BITS: u32 = 8192;

/// Largest DSA subgroup order q accepted, in bits. FIPS 186-4 uses 160, 224 and 256; the bound
/// keeps the private exponent (x < q) and so the key proof's cost small.
const MAX_DSA_Q_BITS: u32 = 512;

/// Largest RSA modulus accepted, in bits (OpenSSL's `OPENSSL_RSA_MAX_MODULUS_BITS`): bounds
/// the arithmetic of the consistency check every key gets when it is parsed.
const MAX_RSA_BITS: u32 = 16_384;

/// Most primes of one (multi-prime) RSA key; OpenSSL allows 5.
const MAX_RSA_PRIMES: usize = 16;

/// A private key as PKCS#8 `PrivateKeyInfo` DER, zeroized on drop.
#[derive(Clone)]
pub struct PrivateKey {
    der: Zeroizing<Vec<u8>>,
    algorithm: KeyAlgorithm,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("der", &"[redacted]")
            .finish()
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.der.as_slice().ct_eq(other.der.as_slice()))
    }
}
impl Eq for PrivateKey {}

impl PrivateKey {
    /// Parses PKCS#8 `PrivateKeyInfo` (or v2 `OneAsymmetricKey`) DER and detects its algorithm.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the bytes are not PKCS#8 or the inner key of a known algorithm
    /// does not parse.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let der = Zeroizing::new(der.to_vec());
        let algorithm = {
            let info = pkcs8::PrivateKeyInfoRef::from_der(&der)
                .map_err(|e| Error::from_der("PKCS#8 private key", e))?;
            detect_algorithm(&info)?
        };
        Ok(PrivateKey { der, algorithm })
    }

    /// The key's algorithm and size.
    pub fn algorithm(&self) -> &KeyAlgorithm {
        &self.algorithm
    }

    /// The PKCS#8 DER bytes. Named so every place a key leaves its wrapper can be audited.
    pub fn expose_pkcs8_der(&self) -> &[u8] {
        &self.der
    }

    /// Whether this key's public half equals the given SubjectPublicKeyInfo.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the key's inner structure is broken, [`Error::Unsupported`] for
    /// algorithms whose public half pfxkit cannot compute (the key is still kept).
    pub fn matches_public_key(&self, spki: &SubjectPublicKeyInfoRef<'_>) -> Result<bool> {
        if !self.algorithm.may_match(&spki.algorithm.oid) {
            return Ok(false);
        }
        Ok(self.public_half()?.matches(spki))
    }

    /// [Work units](crate::limits::work) of computing this key's public half once.
    pub(crate) fn proof_work(&self) -> u64 {
        use crate::limits::work;
        match &self.algorithm {
            // The public half is part of the private key: comparing is the whole proof.
            KeyAlgorithm::Rsa { .. } | KeyAlgorithm::Other(_) | KeyAlgorithm::Ec(None) => 1,
            KeyAlgorithm::Ec(Some(Curve::P256)) => work::P256_PROOF,
            KeyAlgorithm::Ec(Some(Curve::P384)) => work::P384_PROOF,
            KeyAlgorithm::Ec(Some(Curve::P521)) => work::P521_PROOF,
            KeyAlgorithm::Ed25519 => work::ED25519_PROOF,
            KeyAlgorithm::Ed448 => work::ED448_PROOF,
            KeyAlgorithm::Dsa { bits } => work::dsa_proof(*bits, self.dsa_exponent_bits()),
        }
    }

    /// The length of a DSA key's private exponent x in bits (0 when it does not parse, which
    /// the proof then reports).
    fn dsa_exponent_bits(&self) -> u32 {
        pkcs8::PrivateKeyInfoRef::from_der(&self.der)
            .ok()
            .and_then(|info| UintRef::from_der(info.private_key.as_bytes()).ok())
            .map_or(0, |x| bit_len(x.as_bytes()))
    }

    /// Computes the public half (a scalar multiplication or modular exponentiation for all but
    /// RSA), once, so that it can be compared with any number of certificates.
    ///
    /// # Errors
    /// As [`PrivateKey::matches_public_key`]; also [`Error::Unsupported`] for a DSA prime above
    /// 8192 bits.
    pub(crate) fn public_half(&self) -> Result<PublicHalf> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(&self.der)
            .map_err(|e| Error::from_der("PKCS#8 private key", e))?;
        let inner = info.private_key.as_bytes();
        Ok(match &self.algorithm {
            KeyAlgorithm::Rsa { .. } => {
                let (n, e) = rsa_private_public_half(inner)?;
                PublicHalf::Rsa {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }
            }
            KeyAlgorithm::Ec(curve) => {
                let curve = curve.ok_or_else(|| Error::Unsupported {
                    what: "public key check for this elliptic curve".into(),
                    oid: None,
                })?;
                let scalar = Zeroizing::new(ec_private_scalar(inner)?);
                PublicHalf::Ec(ec_public_point(curve, &scalar)?)
            }
            KeyAlgorithm::Ed25519 => {
                let seed = Zeroizing::new(octet_string_content(inner, "Ed25519 private key")?);
                let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
                    seed.as_slice()
                        .try_into()
                        .map_err(|_| Error::malformed("Ed25519 private key", "not 32 bytes"))?,
                );
                let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
                PublicHalf::Eddsa(signing.verifying_key().as_bytes().to_vec())
            }
            KeyAlgorithm::Ed448 => {
                let seed = Zeroizing::new(octet_string_content(inner, "Ed448 private key")?);
                let signing = ed448_goldilocks::SigningKey::try_from(seed.as_slice())
                    .map_err(|_| Error::malformed("Ed448 private key", "not 57 bytes"))?;
                PublicHalf::Eddsa(signing.verifying_key().as_bytes().to_vec())
            }
            KeyAlgorithm::Dsa { bits } => {
                if *bits > MAX_DSA_BITS {
                    return Err(Error::Unsupported {
                        what: format!("public key check for a {bits}-bit DSA key"),
                        oid: Some(oids::DSA.to_string()),
                    });
                }
                dsa_public_half(&info, inner)?
            }
            KeyAlgorithm::Other(_) => {
                // No arithmetic for these: the v2 PKCS#8 public key, when present, is only a
                // claim, so it is not taken as proof.
                return Err(Error::Unsupported {
                    what: format!("public key check for {} keys", self.algorithm.name()),
                    oid: Some(info.algorithm.oid.to_string()),
                });
            }
        })
    }
}

/// Names of key algorithms pfxkit lists but has no arithmetic for (NIST FIPS 203/204/205 OIDs
/// from the NIST CSOR registry, RFC 8410, PKCS#3, RFC 4491 and RFC 9215 for GOST).
fn other_algorithm_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    const NAMES: &[(&str, &str)] = &[
        ("2.16.840.1.101.3.4.4.1", "ml-kem-512"),
        ("2.16.840.1.101.3.4.4.2", "ml-kem-768"),
        ("2.16.840.1.101.3.4.4.3", "ml-kem-1024"),
        ("2.16.840.1.101.3.4.3.17", "ml-dsa-44"),
        ("2.16.840.1.101.3.4.3.18", "ml-dsa-65"),
        ("2.16.840.1.101.3.4.3.19", "ml-dsa-87"),
        ("2.16.840.1.101.3.4.3.20", "slh-dsa-sha2-128s"),
        ("2.16.840.1.101.3.4.3.21", "slh-dsa-sha2-128f"),
        ("2.16.840.1.101.3.4.3.22", "slh-dsa-sha2-192s"),
        ("2.16.840.1.101.3.4.3.23", "slh-dsa-sha2-192f"),
        ("2.16.840.1.101.3.4.3.24", "slh-dsa-sha2-256s"),
        ("2.16.840.1.101.3.4.3.25", "slh-dsa-sha2-256f"),
        ("2.16.840.1.101.3.4.3.26", "slh-dsa-shake-128s"),
        ("2.16.840.1.101.3.4.3.27", "slh-dsa-shake-128f"),
        ("2.16.840.1.101.3.4.3.28", "slh-dsa-shake-192s"),
        ("2.16.840.1.101.3.4.3.29", "slh-dsa-shake-192f"),
        ("2.16.840.1.101.3.4.3.30", "slh-dsa-shake-256s"),
        ("2.16.840.1.101.3.4.3.31", "slh-dsa-shake-256f"),
        ("1.3.101.110", "x25519"),
        ("1.3.101.111", "x448"),
        ("1.2.840.113549.1.3.1", "dh"),
        ("1.2.840.10046.2.1", "dh"),
        ("1.2.643.2.2.19", "gost2001"),
        ("1.2.643.2.2.20", "gost94"),
        ("1.2.643.7.1.1.1.1", "gost2012-256"),
        ("1.2.643.7.1.1.1.2", "gost2012-512"),
        ("1.2.156.10197.1.301", "sm2"),
    ];
    let dotted = oid.to_string();
    NAMES
        .iter()
        .find(|(o, _)| *o == dotted)
        .map(|(_, name)| *name)
}

impl KeyAlgorithm {
    /// Whether a certificate key of algorithm `spki_oid` can be this key's public half.
    fn may_match(&self, spki_oid: &ObjectIdentifier) -> bool {
        match self {
            KeyAlgorithm::Rsa { .. } => *spki_oid == oids::RSA || *spki_oid == oids::RSA_PSS,
            KeyAlgorithm::Ec(_) => *spki_oid == oids::EC,
            KeyAlgorithm::Ed25519 => *spki_oid == oids::ED25519,
            KeyAlgorithm::Ed448 => *spki_oid == oids::ED448,
            KeyAlgorithm::Dsa { .. } => *spki_oid == oids::DSA,
            KeyAlgorithm::Other(_) => false,
        }
    }
}

/// A private key's public half, computed once (see [`PrivateKey::public_half`]).
pub(crate) enum PublicHalf {
    /// Modulus and public exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed SEC1 point `04 ‖ X ‖ Y`.
    Ec(Vec<u8>),
    /// The Ed25519 or Ed448 public key.
    Eddsa(Vec<u8>),
    /// The DSA domain parameters as encoded in the key, and y = g^x mod p (big-endian, no
    /// leading zeros).
    Dsa { params: Vec<u8>, y: Vec<u8> },
}

impl PublicHalf {
    /// Every value [`certificate_key_digest`] gives for a certificate holding this public
    /// key, in each encoding a certificate may use (an EC point compressed or not, DSA
    /// parameters present or inherited). The digests are exact: a certificate that shares one
    /// holds this key, so pairing many keys with many certificates is a lookup per key, and no
    /// crafted near-miss (same modulus, other exponent) can make it a scan.
    pub(crate) fn digests(&self) -> Vec<Vec<u8>> {
        match self {
            PublicHalf::Rsa { n, e } => vec![rsa_digest(n, e)],
            PublicHalf::Ec(point) => {
                let mut digests = vec![tagged(b'e', point)];
                if let (Some(x), Some(y_last)) = (ec_x(point), point.last()) {
                    let mut compressed = vec![2 | (y_last & 1)];
                    compressed.extend_from_slice(x);
                    digests.push(tagged(b'e', &compressed));
                }
                digests
            }
            PublicHalf::Eddsa(key) => vec![tagged(b'd', key)],
            PublicHalf::Dsa { params, y } => {
                vec![dsa_digest(y, Some(params)), dsa_digest(y, None)]
            }
        }
    }

    /// Whether `spki` holds this public key.
    pub(crate) fn matches(&self, spki: &SubjectPublicKeyInfoRef<'_>) -> bool {
        let cert_key = spki.subject_public_key.raw_bytes();
        match self {
            PublicHalf::Rsa { n, e } => rsa_public_key(cert_key)
                .is_ok_and(|(cn, ce)| cn == n.as_slice() && ce == e.as_slice()),
            PublicHalf::Ec(point) => ec_point_matches(point, cert_key),
            PublicHalf::Eddsa(key) => key.as_slice() == cert_key,
            PublicHalf::Dsa { params, y } => {
                // The certificate may omit the parameters (inherited from its issuer); when it
                // has them they must be the key's.
                if let Some(cert_params) = spki.algorithm.parameters
                    && cert_params.value() != params.as_slice()
                {
                    return false;
                }
                UintRef::from_der(cert_key).is_ok_and(|cy| cy.as_bytes() == y.as_slice())
            }
        }
    }
}

/// The lookup value of a certificate's public key (see [`PublicHalf::digests`]): algorithm tag
/// and the key as the certificate encodes it; `None` when the key does not parse.
pub(crate) fn certificate_key_digest(spki: &SubjectPublicKeyInfoRef<'_>) -> Option<Vec<u8>> {
    let oid = spki.algorithm.oid;
    let key = spki.subject_public_key.as_bytes()?;
    if oid == oids::RSA || oid == oids::RSA_PSS {
        rsa_public_key(key).ok().map(|(n, e)| rsa_digest(n, e))
    } else if oid == oids::EC {
        Some(tagged(b'e', key))
    } else if oid == oids::ED25519 || oid == oids::ED448 {
        Some(tagged(b'd', key))
    } else if oid == oids::DSA {
        let y = UintRef::from_der(key).ok()?;
        let params = spki.algorithm.parameters.map(|p| p.value());
        Some(dsa_digest(y.as_bytes(), params))
    } else {
        None
    }
}

fn tagged(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(tag);
    out.extend_from_slice(bytes);
    out
}

/// Modulus and exponent, the modulus length-prefixed so that no two pairs run together.
fn rsa_digest(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut out = tagged(b'r', &(n.len() as u64).to_be_bytes());
    out.extend_from_slice(n);
    out.extend_from_slice(e);
    out
}

/// y, then the parameters' encoding when the certificate carries them.
fn dsa_digest(y: &[u8], params: Option<&[u8]>) -> Vec<u8> {
    let mut out = tagged(b's', &(y.len() as u64).to_be_bytes());
    out.extend_from_slice(y);
    if let Some(params) = params {
        out.push(1);
        out.extend_from_slice(params);
    }
    out
}

/// The X coordinate of a compressed (`02`/`03 ‖ X`) or uncompressed (`04 ‖ X ‖ Y`) SEC1 point.
fn ec_x(point: &[u8]) -> Option<&[u8]> {
    let (&form, rest) = point.split_first()?;
    match form {
        2 | 3 => Some(rest),
        4 if rest.len() % 2 == 0 => rest.get(..rest.len() / 2),
        _ => None,
    }
}

/// Whether a certificate's SEC1 point (either form) is `uncompressed`.
fn ec_point_matches(uncompressed: &[u8], cert_point: &[u8]) -> bool {
    let Some((&form, rest)) = cert_point.split_first() else {
        return false;
    };
    match form {
        4 => uncompressed == cert_point,
        // Compressed: X, and the parity of Y in the form byte.
        2 | 3 => {
            ec_x(uncompressed) == Some(rest)
                && uncompressed
                    .last()
                    .is_some_and(|y_last| (y_last & 1) == (form & 1))
        }
        _ => false,
    }
}

fn detect_algorithm(info: &pkcs8::PrivateKeyInfoRef<'_>) -> Result<KeyAlgorithm> {
    let oid = info.algorithm.oid;
    let inner = info.private_key.as_bytes();
    Ok(match oid {
        o if o == oids::RSA || o == oids::RSA_PSS => {
            let (n, _) = rsa_private_public_half(inner)?;
            rsa_check_private_half(inner)?;
            KeyAlgorithm::Rsa { bits: bit_len(n) }
        }
        o if o == oids::EC => {
            // Decoded even when the curve is in the algorithm parameters: a key that does not
            // parse is malformed, not merely unpaired.
            ec_private_scalar(inner)?;
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .or_else(|| ec_inner_curve(inner))
                .and_then(|c| Curve::from_oid(&c));
            KeyAlgorithm::Ec(curve)
        }
        o if o == oids::ED25519 => {
            eddsa_seed_len(inner, 32, "Ed25519 private key")?;
            KeyAlgorithm::Ed25519
        }
        o if o == oids::ED448 => {
            eddsa_seed_len(inner, 57, "Ed448 private key")?;
            KeyAlgorithm::Ed448
        }
        o if o == oids::DSA => {
            let (p, q, g) = dsa_params(info)?;
            let x = UintRef::from_der(inner).map_err(decode_err("DSA private key"))?;
            dsa_check_ranges(p, q, g, x.as_bytes())?;
            KeyAlgorithm::Dsa { bits: bit_len(p) }
        }
        other => KeyAlgorithm::Other(other),
    })
}

/// `CurvePrivateKey ::= OCTET STRING` (RFC 8410 §7) of exactly `len` bytes.
fn eddsa_seed_len(inner: &[u8], len: usize, ctx: &'static str) -> Result<()> {
    let seed = Zeroizing::new(octet_string_content(inner, ctx)?);
    if seed.len() != len {
        return Err(Error::malformed(ctx, format!("not {len} bytes")));
    }
    Ok(())
}

fn bit_len(be: &[u8]) -> u32 {
    let trimmed: &[u8] = match be.iter().position(|b| *b != 0) {
        Some(i) => be.get(i..).unwrap_or_default(),
        None => &[],
    };
    match trimmed.first() {
        Some(first) => (trimmed.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
        None => 0,
    }
}

fn decode_err(context: &'static str) -> impl Fn(der::Error) -> Error {
    move |e| Error::from_der(context, e)
}

/// `RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, privateExponent, prime1,
/// prime2, exponent1, exponent2, coefficient, otherPrimeInfos OPTIONAL }` (RFC 8017 §A.1.2):
/// returns (n, e). Every field is decoded, so a key whose private half is broken is refused
/// here rather than accepted and passed on.
fn rsa_private_public_half(inner: &[u8]) -> Result<(&[u8], &[u8])> {
    let ctx = "RSA private key";
    let mut r = SliceReader::new(inner).map_err(decode_err(ctx))?;
    let out = r
        .sequence(|seq| {
            let _version = UintRef::decode(seq)?;
            let n = UintRef::decode(seq)?;
            let e = UintRef::decode(seq)?;
            // d, p, q, d mod (p-1), d mod (q-1), q^-1 mod p: not needed, but must be there.
            for _ in 0..6 {
                UintRef::decode(seq)?;
            }
            // Multi-prime keys (version 1) end with otherPrimeInfos.
            if !seq.is_finished() {
                der::asn1::AnyRef::decode(seq)?;
            }
            Ok((n.as_bytes(), e.as_bytes()))
        })
        .map_err(decode_err(ctx))?;
    r.finish().map_err(decode_err(ctx))?;
    Ok(out)
}

/// Checks that an `RSAPrivateKey`'s private half belongs to its modulus: n is the product of
/// its primes, d·e ≡ 1 modulo each prime less one (so modulo λ(n)), and the CRT exponents and
/// coefficients are what d and the primes make them. Pairing with a certificate compares n and e
/// only, so without this a "key" with the certificate's n and e and d = p = q = 1 was taken as
/// the certificate's key: it signs nothing, and a key with wrong CRT values leaks its primes on
/// the first signature (Boneh–DeMillo–Lipton). The cost is a few multiplications and divisions
/// of numbers no longer than n, which is capped at [`MAX_RSA_BITS`]; num-bigint cannot zeroize
/// its limbs, so the copies made here live only for this call.
fn rsa_check_private_half(inner: &[u8]) -> Result<()> {
    use num_bigint::BigUint;
    let ctx = "RSA private key";
    let mut r = SliceReader::new(inner).map_err(decode_err(ctx))?;
    let (fields, others) = r
        .sequence(|seq| {
            let _version = UintRef::decode(seq)?;
            let mut fields = [&[][..]; 8];
            for field in &mut fields {
                *field = UintRef::decode(seq)?.as_bytes();
            }
            // otherPrimeInfos: SEQUENCE OF { prime, exponent, coefficient }.
            let mut others: Vec<[&[u8]; 3]> = Vec::new();
            if !seq.is_finished() {
                seq.sequence(|infos| {
                    while !infos.is_finished() {
                        others.push(infos.sequence(|info| {
                            Ok::<_, der::Error>([
                                UintRef::decode(info)?.as_bytes(),
                                UintRef::decode(info)?.as_bytes(),
                                UintRef::decode(info)?.as_bytes(),
                            ])
                        })?);
                        if others.len() + 2 > MAX_RSA_PRIMES {
                            break;
                        }
                    }
                    Ok::<_, der::Error>(())
                })?;
            }
            Ok((fields, others))
        })
        .map_err(decode_err(ctx))?;
    let [n, e, d, p, q, dp, dq, qinv] = fields.map(BigUint::from_bytes_be);
    let bits = u32::try_from(n.bits()).unwrap_or(u32::MAX);
    if bits > MAX_RSA_BITS || others.len() + 2 > MAX_RSA_PRIMES {
        return Err(Error::Unsupported {
            what: format!(
                "RSA key of {bits} bits with {} primes (at most {MAX_RSA_BITS} bits and \
                 {MAX_RSA_PRIMES} primes)",
                others.len() + 2
            ),
            oid: Some(oids::RSA.to_string()),
        });
    }
    let bad = |what: &str| {
        Err(Error::malformed(
            ctx,
            format!("{what}: its private half does not belong to its modulus"),
        ))
    };
    let one = BigUint::from(1u8);
    if e <= one {
        return bad("public exponent ≤ 1");
    }
    // RFC 8017 §3.2: qInv·q ≡ 1 (mod p) …
    if p > one && (&q * &qinv) % &p != one {
        return bad("the CRT coefficient is not q⁻¹ mod p");
    }
    // … and each further prime's coefficient inverts the product of the primes before it.
    let mut primes = vec![(p, dp, None), (q, dq, None)];
    for [prime, exponent, coefficient] in &others {
        primes.push((
            BigUint::from_bytes_be(prime),
            BigUint::from_bytes_be(exponent),
            Some(BigUint::from_bytes_be(coefficient)),
        ));
    }
    let de = &d * &e;
    let mut product = one.clone();
    for (prime, exponent, coefficient) in &primes {
        if *prime <= one || prime.bits() > n.bits() {
            return bad("a prime factor out of range");
        }
        let less_one = prime - &one;
        if &de % &less_one != one {
            return bad("d·e is not 1 modulo p−1 for each prime p");
        }
        // What signing needs of a CRT exponent is that it inverts e modulo p−1, as d does;
        // checked that way, an exponent a producer left unreduced is still accepted.
        if (exponent * &e) % &less_one != one {
            return bad("a CRT exponent is not d mod (p−1)");
        }
        if let Some(coefficient) = coefficient
            && (&product * coefficient) % prime != one
        {
            return bad("a CRT coefficient is not the inverse it must be");
        }
        product *= prime;
        if product.bits() > n.bits() {
            return bad("the primes' product is not n");
        }
    }
    if product != n {
        return bad("the primes' product is not n");
    }
    Ok(())
}

/// The modulus size in bits of a DER `RSAPublicKey` (a certificate's RSA key), or `None` when it
/// does not parse.
pub fn rsa_modulus_bits(public_key: &[u8]) -> Option<u32> {
    rsa_public_key(public_key).ok().map(|(n, _)| bit_len(n))
}

/// `RSAPublicKey ::= SEQUENCE { modulus, publicExponent }` (RFC 8017 §A.1.1).
fn rsa_public_key(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let ctx = "RSA public key";
    let mut r = SliceReader::new(bytes).map_err(decode_err(ctx))?;
    let out = r
        .sequence(|seq| {
            let n = UintRef::decode(seq)?;
            let e = UintRef::decode(seq)?;
            Ok((n.as_bytes(), e.as_bytes()))
        })
        .map_err(decode_err(ctx))?;
    r.finish().map_err(decode_err(ctx))?;
    Ok(out)
}

/// `ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] parameters, [1] publicKey }`
/// (RFC 5915): returns the scalar bytes.
fn ec_private_scalar(inner: &[u8]) -> Result<Vec<u8>> {
    let key = sec1::EcPrivateKey::from_der(inner).map_err(|e| Error::Malformed {
        context: "EC private key".into(),
        offset: None,
        reason: e.to_string(),
    })?;
    Ok(key.private_key.to_vec())
}

fn ec_inner_curve(inner: &[u8]) -> Option<ObjectIdentifier> {
    let key = sec1::EcPrivateKey::from_der(inner).ok()?;
    key.parameters.and_then(|p| p.named_curve())
}

/// The uncompressed SEC1 point of `scalar` times the curve's generator.
fn ec_public_point(curve: Curve, scalar: &[u8]) -> Result<Vec<u8>> {
    use p256::elliptic_curve::sec1::ToSec1Point;
    let bad = || Error::malformed("EC private key", "scalar out of range for its curve");
    Ok(match curve {
        Curve::P256 => p256::SecretKey::from_slice(scalar)
            .map_err(|_| bad())?
            .public_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec(),
        Curve::P384 => p384::SecretKey::from_slice(scalar)
            .map_err(|_| bad())?
            .public_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec(),
        Curve::P521 => p521::SecretKey::from_slice(scalar)
            .map_err(|_| bad())?
            .public_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec(),
    })
}

fn octet_string_content(inner: &[u8], ctx: &'static str) -> Result<Vec<u8>> {
    let os = <&der::asn1::OctetStringRef>::from_der(inner).map_err(decode_err(ctx))?;
    Ok(os.as_bytes().to_vec())
}

/// `Dss-Parms ::= SEQUENCE { p, q, g }` (RFC 3279 §2.3.2) from the algorithm parameters.
fn dsa_params<'a>(info: &pkcs8::PrivateKeyInfoRef<'a>) -> Result<(&'a [u8], &'a [u8], &'a [u8])> {
    let ctx = "DSA parameters";
    let params = info
        .algorithm
        .parameters
        .ok_or_else(|| Error::malformed(ctx, "missing"))?;
    let mut r = SliceReader::new(params.value()).map_err(decode_err(ctx))?;
    let p = UintRef::decode(&mut r).map_err(decode_err(ctx))?;
    let q = UintRef::decode(&mut r).map_err(decode_err(ctx))?;
    let g = UintRef::decode(&mut r).map_err(decode_err(ctx))?;
    r.finish().map_err(decode_err(ctx))?;
    Ok((p.as_bytes(), q.as_bytes(), g.as_bytes()))
}

/// Checks a DSA key's numbers before anything is computed with them (FIPS 186-4 §4.1, §4.5):
/// 1 < g < p, q < p with q at most [`MAX_DSA_Q_BITS`] bits, and 0 < x < q. An unbounded x made
/// the key proof (g^x mod p) cost time in proportion to its length: a 66 KB file cost 15 s.
fn dsa_check_ranges(p: &[u8], q: &[u8], g: &[u8], x: &[u8]) -> Result<()> {
    use std::cmp::Ordering;
    let bad = |what: &str| Err(Error::malformed("DSA private key", what.to_string()));
    // Big-endian without leading zeros (as UintRef gives them): longer is larger.
    let cmp = |a: &[u8], b: &[u8]| a.len().cmp(&b.len()).then_with(|| a.cmp(b));
    let q_bits = bit_len(q);
    if q_bits > MAX_DSA_Q_BITS {
        return Err(Error::Unsupported {
            what: format!("DSA key with a {q_bits}-bit q (at most {MAX_DSA_Q_BITS})"),
            oid: Some(oids::DSA.to_string()),
        });
    }
    if bit_len(g) < 2 || cmp(g, p) != Ordering::Less {
        return bad("g is not between 1 and p");
    }
    if bit_len(q) < 2 || cmp(q, p) != Ordering::Less {
        return bad("q is not between 1 and p");
    }
    if bit_len(x) == 0 || cmp(x, q) != Ordering::Less {
        return bad("the private exponent x is not between 0 and q");
    }
    Ok(())
}

/// y = g^x mod p for a DSA private key x, with the parameters it was computed under.
fn dsa_public_half(info: &pkcs8::PrivateKeyInfoRef<'_>, inner: &[u8]) -> Result<PublicHalf> {
    use num_bigint::BigUint;
    let (p, _q, g) = dsa_params(info)?;
    let params = info
        .algorithm
        .parameters
        .map(|a| a.value().to_vec())
        .unwrap_or_default();
    let x = UintRef::from_der(inner).map_err(decode_err("DSA private key"))?;
    let p = BigUint::from_bytes_be(p);
    if p.bits() < 2 {
        return Err(Error::malformed("DSA parameters", "p is too small"));
    }
    // num-bigint cannot zeroize its limbs; the private exponent's copy lives only for this call.
    let x = BigUint::from_bytes_be(x.as_bytes());
    let y = BigUint::from_bytes_be(g).modpow(&x, &p);
    let mut y = y.to_bytes_be();
    // UintRef strips leading zeros; so does to_bytes_be, except that zero is one zero byte.
    if y == [0] {
        y.clear();
    }
    Ok(PublicHalf::Dsa { params, y })
}

/// Where a password comes from, in the form OpenSSL users know: `pass:TEXT`, `env:VAR`,
/// `file:PATH` (first line, without its line ending) or `stdin` (first line of standard input).
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The literal text (visible in `ps`; for tests and demos).
    Literal(Password),
    /// An environment variable.
    Env(String),
    /// The first line of a file.
    File(std::path::PathBuf),
    /// The first line of standard input.
    Stdin,
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Literal(_) => f.write_str("pass:[redacted]"),
            PasswordSource::Env(v) => write!(f, "env:{v}"),
            PasswordSource::File(p) => write!(f, "file:{}", p.display()),
            PasswordSource::Stdin => f.write_str("stdin"),
        }
    }
}

impl std::str::FromStr for PasswordSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(text) = s.strip_prefix("pass:") {
            Ok(PasswordSource::Literal(Password::new(text)))
        } else if let Some(var) = s.strip_prefix("env:") {
            Ok(PasswordSource::Env(var.to_string()))
        } else if let Some(path) = s.strip_prefix("file:") {
            Ok(PasswordSource::File(path.into()))
        } else if s == "stdin" {
            Ok(PasswordSource::Stdin)
        } else {
            Err(Error::Invalid(
                "a password source is pass:TEXT, env:VAR, file:PATH or stdin".into(),
            ))
        }
    }
}

impl PasswordSource {
    /// Reads the password.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unset or non-Unicode variable, [`Error::Io`] when the file or
    /// standard input cannot be read.
    pub fn resolve(&self) -> Result<Password> {
        match self {
            PasswordSource::Literal(p) => Ok(p.clone()),
            PasswordSource::Env(var) => std::env::var(var)
                .map(Password::new)
                .map_err(|_| Error::Invalid(format!("environment variable {var} is not set"))),
            PasswordSource::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                let line = bounded_first_line(std::io::BufReader::new(file))
                    .map_err(|e| Error::io(path, e))?;
                Ok(Password::new(first_line(&line)))
            }
            PasswordSource::Stdin => {
                let line = bounded_first_line(std::io::stdin().lock())?;
                Ok(Password::new(first_line(&line)))
            }
        }
    }
}

/// Longest first line read from a password file or standard input: a password source such as
/// `file:/dev/zero` must not read until memory runs out.
const MAX_PASSWORD_LINE: u64 = 64 * 1024;

/// The first line of `input` (with its line ending), read no further than
/// [`MAX_PASSWORD_LINE`] bytes.
fn bounded_first_line(input: impl std::io::BufRead) -> std::io::Result<Zeroizing<String>> {
    use std::io::BufRead;
    let mut bytes = Zeroizing::new(Vec::new());
    input
        .take(MAX_PASSWORD_LINE + 1)
        .read_until(b'\n', &mut bytes)?;
    if bytes.len() as u64 > MAX_PASSWORD_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the password's line is longer than {MAX_PASSWORD_LINE} bytes"),
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))?;
    Ok(Zeroizing::new(text.to_string()))
}

fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    fn leaf_ec256() -> PrivateKey {
        let pem = pem::parse(include_bytes!("../tests/data/pki/keys/leaf-ec256.pem"))
            .map(pem::Pem::into_contents)
            .unwrap_or_default();
        PrivateKey::from_pkcs8_der(&pem).unwrap_or_else(|e| panic!("{e}"))
    }

    /// DER SubjectPublicKeyInfo for a P-256 point in the given encoding.
    fn ec_spki(point: &[u8]) -> Vec<u8> {
        let spki = spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: oids::EC,
                parameters: Some(der::asn1::AnyRef::from(&oids::P256)),
            },
            subject_public_key: der::asn1::BitStringRef::from_bytes(point)
                .unwrap_or_else(|e| panic!("{e}")),
        };
        spki.to_der().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn ec_key_matches_its_point_compressed_or_not_and_nothing_else() {
        let key = leaf_ec256();
        let Ok(PublicHalf::Ec(uncompressed)) = key.public_half() else {
            panic!("an EC public half");
        };
        let parity = uncompressed.last().copied().unwrap_or(0) & 1;
        let mut compressed = vec![2 | parity];
        compressed.extend_from_slice(ec_x(&uncompressed).unwrap_or_default());
        let mut other_parity = compressed.clone();
        other_parity[0] ^= 1;
        let mut other_y = uncompressed.clone();
        if let Some(last) = other_y.last_mut() {
            *last ^= 2;
        }
        let half = key.public_half().unwrap_or_else(|e| panic!("{e}"));
        for (point, expected) in [
            (&uncompressed, true),
            (&compressed, true),
            (&other_parity, false),
            (&other_y, false),
        ] {
            let der = ec_spki(point);
            let spki = SubjectPublicKeyInfoRef::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(half.matches(&spki), expected, "{point:02x?}");
            assert_eq!(key.matches_public_key(&spki).ok(), Some(expected));
            // The lookup finds exactly the matching encodings.
            let digest = certificate_key_digest(&spki);
            assert_eq!(
                digest.is_some_and(|d| half.digests().contains(&d)),
                expected
            );
        }
    }
}
