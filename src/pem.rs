//! PEM bundles and DER files of certificates and private keys, and encrypted PKCS#8.
//!
//! Reads certificates (`CERTIFICATE`, or one DER certificate) and private keys in PKCS#8
//! (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) and
//! SEC1 (`EC PRIVATE KEY`), or DER in any of those forms. Writes certificates and PKCS#8 keys, encrypted with
//! PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) unless a plain key is asked for explicitly.

use zeroize::Zeroizing;

use crate::asn1::{DerReader, enc, tag};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::limits::{Limits, WorkBudget, work};
use crate::pbe::kdf::HashAlg;
use crate::pbe::scheme::{EncryptionScheme, Pbes2Cipher, parse_encrypted_private_key_info};
use crate::random::{RandomSource, bytes};
use crate::secret::{Curve, Password, PrivateKey, oids as key_oids};

/// PBKDF2 iterations for keys pfxkit encrypts in PEM (OpenSSL 3 uses 2048; more is cheap here).
pub const PEM_KEY_ITERATIONS: u32 = 10_000;

/// Everything found in a PEM (or DER) file.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Bundle {
    /// Certificates, in file order.
    pub certificates: Vec<Certificate>,
    /// Private keys, in file order.
    pub keys: Vec<PrivateKey>,
}

impl Bundle {
    /// Keys paired with their certificates by public key, each with its chain from the
    /// bundle's other certificates.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a key has no certificate in the bundle;
    /// [`Error::LimitExceeded`] when proving the keys would exceed [`Limits::max_work`].
    pub fn identities(&self, limits: &Limits) -> Result<Vec<crate::Identity>> {
        let keys: Vec<_> = self.keys.iter().map(|k| (k, None)).collect();
        let certs: Vec<_> = self.certificates.iter().map(|c| (c, None)).collect();
        let pairings = crate::identity::pair_keys(&keys, &certs, limits)?;
        let keys: Vec<&PrivateKey> = self.keys.iter().collect();
        crate::identity::assemble_all(&keys, &pairings, &self.certificates, limits.max_chain_len)
            .into_iter()
            .zip(&self.keys)
            .map(|(identity, key)| {
                identity.ok_or_else(|| {
                    Error::Invalid(format!(
                        "no certificate in the bundle matches the {} private key",
                        key.algorithm().name()
                    ))
                })
            })
            .collect()
    }
}

/// What [`scan`] finds in a PEM file.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Scan {
    /// Certificates in file order, each with the `friendlyName` of the OpenSSL-style
    /// `Bag Attributes` text before it, if any.
    pub certificates: Vec<(Certificate, Option<String>)>,
    /// Whether a private key block is present (it is not decrypted).
    pub has_key: bool,
    /// The `friendlyName` before the key block, if any.
    pub key_alias: Option<String>,
}

/// The certificates of a PEM file, their aliases, and whether it holds a private key, without
/// decrypting anything.
///
/// # Errors
/// [`Error::Malformed`] for bad PEM or certificates; [`Error::Unsupported`] for unknown blocks.
pub fn scan(input: &[u8], limits: &Limits) -> Result<Scan> {
    limits.check_input_size(input.len())?;
    let mut out = Scan::default();
    if input.trim_ascii().is_empty() {
        return Ok(out);
    }
    let blocks = pem::parse_many(input).map_err(|e| Error::malformed("PEM", e.to_string()))?;
    if blocks.is_empty() {
        return Err(Error::malformed("PEM", "no PEM blocks found"));
    }
    check_no_dropped_blocks(input, blocks.len())?;
    let aliases = preceding_aliases(input);
    for (i, block) in blocks.iter().enumerate() {
        let alias = aliases.get(i).cloned().flatten();
        match block.tag() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                out.certificates
                    .push((Certificate::from_der_with(block.contents(), limits)?, alias));
            }
            "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                out.has_key = true;
                out.key_alias = out.key_alias.or(alias);
            }
            "EC PARAMETERS" => {}
            other => {
                return Err(Error::Unsupported {
                    what: format!("PEM block '{other}'"),
                    oid: None,
                });
            }
        }
    }
    Ok(out)
}

/// Rejects input where the parser found fewer blocks than there are `-----BEGIN` lines: the
/// `pem` crate skips a block without its `-----END` line, so a truncated file would otherwise
/// read as a shorter, valid one (a key-entry store without its key, a trust store that a rewrite
/// silently shrinks).
fn check_no_dropped_blocks(input: &[u8], parsed: usize) -> Result<()> {
    let begins = input
        .split(|b| *b == b'\n')
        .filter(|line| line.trim_ascii_start().starts_with(b"-----BEGIN "))
        .count();
    if begins > parsed {
        return Err(Error::malformed(
            "PEM",
            format!(
                "{} of {begins} blocks have no matching END line (truncated file?)",
                begins - parsed
            ),
        ));
    }
    Ok(())
}

/// For each PEM block, the `friendlyName:` found in the text between the previous block's end
/// and its own BEGIN line (OpenSSL writes `Bag Attributes` there; PEM parsers ignore it).
fn preceding_aliases(input: &[u8]) -> Vec<Option<String>> {
    let text = String::from_utf8_lossy(input);
    let mut out = Vec::new();
    let mut rest: &str = &text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let (before, after) = rest.split_at(begin);
        let preamble = before.rsplit("-----END ").next().unwrap_or(before);
        out.push(preamble.lines().find_map(|l| {
            l.trim()
                .strip_prefix("friendlyName:")
                .map(|n| n.trim().to_string())
        }));
        rest = match after.find("-----END ") {
            Some(end) => after.get(end + 9..).unwrap_or_default(),
            None => "",
        };
    }
    out
}

/// Encodes a certificate as PEM, preceded by OpenSSL-style `Bag Attributes` naming `alias`.
///
/// # Errors
/// [`Error::Invalid`] when the alias holds a line break or other control character.
pub fn encode_certificate_with_alias(cert: &Certificate, alias: Option<&str>) -> Result<String> {
    Ok(format!(
        "{}{}",
        alias_header(alias)?,
        encode_certificate(cert)
    ))
}

/// The `Bag Attributes` text naming `alias` (empty for `None`).
///
/// # Errors
/// [`Error::Invalid`] when the alias holds a line break or other control character.
pub fn alias_header(alias: Option<&str>) -> Result<String> {
    match alias {
        None => Ok(String::new()),
        Some(a) if a.chars().any(char::is_control) || a.trim() != a || a.is_empty() => {
            Err(Error::Invalid(format!(
                "alias {a:?} cannot be kept in a PEM file (control characters or surrounding spaces)"
            )))
        }
        Some(a) => Ok(format!("Bag Attributes\n    friendlyName: {a}\n")),
    }
}

/// Whether `bytes` look like PEM text: a `-----BEGIN ` line, possibly after explanatory text
/// such as the `Bag Attributes` OpenSSL (and the `pem` store) writes before each block (RFC 7468
/// §2: "Data before the encapsulation boundaries are permitted"). Input starting with a DER
/// SEQUENCE tag is never PEM.
pub fn is_pem(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii_start();
    text.starts_with(b"-----BEGIN ")
        || (text.first() != Some(&0x30) && text.windows(11).any(|w| w == b"-----BEGIN "))
}

/// Reads every certificate and key of a PEM file, or one DER certificate or PKCS#8 key.
/// Encrypted keys need `key_password`.
///
/// # Errors
/// [`Error::Malformed`] for bad PEM/DER, [`Error::WrongPassword`] when an encrypted key does not
/// decrypt, [`Error::Invalid`] when an encrypted key has no password, [`Error::Unsupported`] for
/// legacy `Proc-Type` PEM encryption or unknown block types.
pub fn read_bundle(
    input: &[u8],
    key_password: Option<&Password>,
    limits: &Limits,
) -> Result<Bundle> {
    limits.check_input_size(input.len())?;
    let mut budget = WorkBudget::new(limits);
    let mut bundle = Bundle::default();
    if !is_pem(input) {
        budget.charge_work(work::certificate(input.len()))?;
        match Certificate::from_der_with(input, limits) {
            Ok(cert) => bundle.certificates.push(cert),
            Err(e @ Error::LimitExceeded { .. }) => return Err(e),
            Err(_) => bundle
                .keys
                .push(decode_der_key(input, key_password, &mut budget)?),
        }
        return Ok(bundle);
    }
    let blocks = pem::parse_many(input).map_err(|e| Error::malformed("PEM", e.to_string()))?;
    if blocks.is_empty() {
        return Err(Error::malformed("PEM", "no PEM blocks found"));
    }
    check_no_dropped_blocks(input, blocks.len())?;
    if blocks.len() > limits.max_entries {
        return Err(Error::LimitExceeded {
            limit: crate::error::LimitKind::EntryCount,
            value: blocks.len() as u64,
            bound: limits.max_entries as u64,
        });
    }
    // Every encrypted key's KDF, and every certificate's decoding, is charged before the first
    // one runs.
    for block in &blocks {
        match block.tag() {
            "ENCRYPTED PRIVATE KEY" => charge_encrypted_key(block.contents(), &mut budget)?,
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                budget.charge_work(work::certificate(block.contents().len()))?
            }
            _ => {}
        }
    }
    for block in blocks {
        if block.headers().get("Proc-Type").is_some() {
            return Err(Error::Unsupported {
                what: "legacy PEM encryption (Proc-Type: 4,ENCRYPTED); convert the key to PKCS#8 first".into(),
                oid: None,
            });
        }
        let contents = Zeroizing::new(block.contents().to_vec());
        match block.tag() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                bundle
                    .certificates
                    .push(Certificate::from_der_with(&contents, limits)?);
            }
            "PRIVATE KEY" => bundle.keys.push(PrivateKey::from_pkcs8_der(&contents)?),
            "ENCRYPTED PRIVATE KEY" => {
                bundle
                    .keys
                    .push(decrypt_charged(&contents, key_password, limits)?);
            }
            "RSA PRIVATE KEY" => bundle
                .keys
                .push(PrivateKey::from_pkcs8_der(&wrap_pkcs1(&contents))?),
            "EC PRIVATE KEY" => bundle
                .keys
                .push(PrivateKey::from_pkcs8_der(&wrap_sec1(&contents)?)?),
            // Parameters written by `openssl ecparam` next to a key carry nothing we need.
            "EC PARAMETERS" => {}
            other => {
                return Err(Error::Unsupported {
                    what: format!("PEM block '{other}'"),
                    oid: None,
                });
            }
        }
    }
    Ok(bundle)
}

/// A DER key in any of the encodings `build --help` promises, told apart by the first two
/// fields of the outer SEQUENCE: PKCS#8 `PrivateKeyInfo { INTEGER, AlgorithmIdentifier
/// SEQUENCE, … }`, `EncryptedPrivateKeyInfo { AlgorithmIdentifier SEQUENCE, OCTET STRING }`,
/// PKCS#1 `RSAPrivateKey { INTEGER 0, INTEGER n, … }` and SEC1 `ECPrivateKey { INTEGER 1,
/// OCTET STRING, … }`.
fn decode_der_key(
    der: &[u8],
    key_password: Option<&Password>,
    budget: &mut WorkBudget<'_>,
) -> Result<PrivateKey> {
    const CTX: &str = "DER private key";
    let mut r = DerReader::new(der, CTX);
    let outer = r.read(tag::SEQUENCE, "private key SEQUENCE")?;
    r.finish()?;
    let mut fields = outer.reader(CTX);
    let first = fields.read_any()?.tag;
    let second = fields.peek_tag();
    match (first, second) {
        (tag::SEQUENCE, _) => {
            charge_encrypted_key(der, budget)?;
            decrypt_charged(der, key_password, budget.limits())
        }
        (tag::INTEGER, Some(tag::INTEGER)) => PrivateKey::from_pkcs8_der(&wrap_pkcs1(der)),
        (tag::INTEGER, Some(tag::OCTET_STRING)) => PrivateKey::from_pkcs8_der(&wrap_sec1(der)?),
        _ => PrivateKey::from_pkcs8_der(der),
    }
}

/// Decrypts a DER `EncryptedPrivateKeyInfo`.
///
/// # Errors
/// As [`read_bundle`].
pub fn decrypt_pkcs8(
    der: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<PrivateKey> {
    charge_encrypted_key(der, &mut WorkBudget::new(limits))?;
    decrypt_charged(der, password, limits)
}

/// The scheme and ciphertext of a DER `EncryptedPrivateKeyInfo`.
fn encrypted_key_parts<'a>(der: &'a [u8], limits: &Limits) -> Result<(EncryptionScheme, &'a [u8])> {
    const CTX: &str = "EncryptedPrivateKeyInfo";
    let mut r = DerReader::new(der, CTX);
    let epki = r.read(tag::SEQUENCE, "EncryptedPrivateKeyInfo")?;
    r.finish()?;
    parse_encrypted_private_key_info(&epki, limits)
}

/// Charges the KDF and decryption of an encrypted key to the file's budget.
fn charge_encrypted_key(der: &[u8], budget: &mut WorkBudget<'_>) -> Result<()> {
    let (scheme, ciphertext) = encrypted_key_parts(der, budget.limits())?;
    budget.charge_kdf(
        u64::from(scheme.iterations()),
        scheme.work(ciphertext.len()),
    )
}

/// Decrypts an encrypted key whose work [`charge_encrypted_key`] has already charged.
fn decrypt_charged(der: &[u8], password: Option<&Password>, limits: &Limits) -> Result<PrivateKey> {
    let (scheme, ciphertext) = encrypted_key_parts(der, limits)?;
    let password = password.ok_or_else(|| {
        Error::Invalid("the private key is encrypted: a key password is needed".into())
    })?;
    let plain = scheme.decrypt(password, ciphertext)?;
    PrivateKey::from_pkcs8_der(&plain).map_err(|_| Error::wrong_password("encrypted private key"))
}

/// Encodes a key as PEM: `ENCRYPTED PRIVATE KEY` under `password` (PBES2, PBKDF2-HMAC-SHA256,
/// AES-256-CBC), or plain `PRIVATE KEY` when `password` is `None`.
///
/// # Errors
/// [`Error::Invalid`] for the absent password (an encrypted key needs one); [`Error::Io`] when
/// the random source fails.
pub fn encode_private_key(
    key: &PrivateKey,
    password: Option<&Password>,
    rng: &mut dyn RandomSource,
) -> Result<Zeroizing<String>> {
    let Some(password) = password else {
        return Ok(Zeroizing::new(pem_text(
            "PRIVATE KEY",
            key.expose_pkcs8_der(),
        )));
    };
    if password.is_absent() {
        return Err(Error::Invalid(
            "an encrypted PEM key needs a password".into(),
        ));
    }
    Ok(Zeroizing::new(pem_text(
        "ENCRYPTED PRIVATE KEY",
        &encrypt_pkcs8(key, password, rng)?,
    )))
}

/// DER `EncryptedPrivateKeyInfo` with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC).
///
/// # Errors
/// [`Error::Io`] when the random source fails.
pub fn encrypt_pkcs8(
    key: &PrivateKey,
    password: &Password,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>> {
    let scheme = EncryptionScheme::Pbes2 {
        prf: HashAlg::Sha256,
        salt: bytes(rng, 16)?,
        iterations: PEM_KEY_ITERATIONS,
        cipher: Pbes2Cipher::Aes256Cbc,
        iv: bytes(rng, 16)?,
    };
    let ciphertext = scheme.encrypt(password, key.expose_pkcs8_der())?;
    Ok(enc::seq(&[&scheme.to_der(), &enc::octets(&ciphertext)]))
}

/// Encodes a certificate as PEM.
pub fn encode_certificate(cert: &Certificate) -> String {
    pem_text("CERTIFICATE", cert.der())
}

fn pem_text(tag: &str, der: &[u8]) -> String {
    let block = pem::Pem::new(tag, der.to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// PKCS#1 `RSAPrivateKey` → PKCS#8 `PrivateKeyInfo { 0, rsaEncryption NULL, OCTET STRING }`.
fn wrap_pkcs1(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(enc::seq(&[
        &enc::uint(0),
        &enc::algorithm(&key_oids::RSA, Some(&enc::null())),
        &enc::octets(pkcs1),
    ]))
}

/// SEC1 `ECPrivateKey` → PKCS#8 with the curve taken from the SEC1 parameters.
fn wrap_sec1(sec1_der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use der::Decode;
    let key = sec1::EcPrivateKey::from_der(sec1_der)
        .map_err(|e| Error::malformed("EC private key", e.to_string()))?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or_else(|| {
            Error::malformed("EC private key", "no named curve in the key's parameters")
        })?;
    if ![Curve::P256, Curve::P384, Curve::P521]
        .iter()
        .any(|c| c.oid() == curve)
    {
        return Err(Error::unsupported_oid("elliptic curve", curve));
    }
    Ok(Zeroizing::new(enc::seq(&[
        &enc::uint(0),
        &enc::algorithm(&key_oids::EC, Some(&enc::oid(&curve))),
        &enc::octets(sec1_der),
    ])))
}
