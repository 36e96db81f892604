//! Private-key protection in Java keystores: Sun's JKS key protector and JCEKS
//! `PBEWithMD5AndTripleDES`, both wrapped in a PKCS#8 `EncryptedPrivateKeyInfo`.
//!
//! The algorithms are Sun's own (OpenJDK `sun/security/provider/KeyProtector.java` and
//! `com/sun/crypto/provider/KeyProtector.java`, `PBES1Core.java`); they are described byte by byte
//! in `specs/jks.md`. Both are weak by modern standards (SHA-1 keystream; MD5 and 3DES): pfxkit
//! writes them only because Java's JKS and JCEKS formats know nothing else.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode, Sequence};
use md5::Md5;
use sha1::{Digest, Sha1};
use spki::AlgorithmIdentifierRef;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, LimitKind, Result};
use crate::limits::Limits;
use crate::secret::{Password, PrivateKey};

/// Sun's JKS key protector, `1.3.6.1.4.1.42.2.17.1.1`.
pub(crate) const JKS_KEY_PROTECTOR: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.42.2.17.1.1");

/// Sun's `PBEWithMD5AndTripleDES`, `1.3.6.1.4.1.42.2.19.1`.
pub(crate) const PBE_MD5_TRIPLE_DES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.42.2.19.1");

/// The largest `PBEWithMD5AndTripleDES` iteration count Java accepts
/// (`com.sun.crypto.provider.KeyProtector.MAX_ITERATION_COUNT`); pfxkit refuses more, too.
pub const JCEKS_MAX_ITERATIONS: u32 = 5_000_000;

/// Salt length of the JKS key protector (the SHA-1 output size).
const JKS_SALT_LEN: usize = 20;
/// Length of the JKS integrity check (SHA-1) appended to the ciphertext.
const JKS_CHECK_LEN: usize = 20;
/// `PBEWithMD5AndTripleDES` requires exactly 8 bytes of salt (`PBES1Core`).
pub(crate) const JCEKS_SALT_LEN: usize = 8;

/// How a key entry's private key is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProtection {
    /// Sun's JKS key protector (OID 1.3.6.1.4.1.42.2.17.1.1): a SHA-1 keystream with a SHA-1
    /// integrity check over the password (UTF-16BE) and the key.
    Jks,
    /// `PBEWithMD5AndTripleDES` (OID 1.3.6.1.4.1.42.2.19.1): Sun's MD5-based key derivation and
    /// DES-EDE3-CBC, as JCEKS writes it.
    PbeWithMd5AndTripleDes {
        /// The key-derivation iteration count.
        iterations: u32,
    },
    /// Any other algorithm: the entry is listed, but its key cannot be decrypted.
    Other {
        /// The algorithm's OID in dotted form.
        oid: String,
    },
}

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier,
/// encryptedData OCTET STRING }` (RFC 5208 §6).
#[derive(Sequence)]
struct EncryptedPrivateKeyInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    data: &'a OctetStringRef,
}

/// `PBEParameter ::= SEQUENCE { salt OCTET STRING, iterationCount INTEGER }`
/// (RFC 8018 §A.3); Java's `PBEParameters` encoding, with Java's `int` iteration count.
#[derive(Sequence)]
struct PbeParameter<'a> {
    salt: &'a OctetStringRef,
    iterations: u32,
}

/// A parsed `EncryptedPrivateKeyInfo`.
pub(crate) struct Parsed<'a> {
    pub(crate) protection: KeyProtection,
    /// The JCEKS salt (empty for the JKS protector, whose salt is inside `data`).
    salt: &'a [u8],
    data: &'a [u8],
}

/// Parses the `EncryptedPrivateKeyInfo` of a key entry. OIDs are matched exactly; the JKS
/// protector's parameters must be absent or NULL (JDK ≤ 17 writes NULL, JDK 21+ omits it).
///
/// # Errors
/// [`Error::Malformed`] (context `context`, offsets within `der`) for bad DER, parameters of
/// the wrong form, or a JCEKS salt that is not 8 bytes.
pub(crate) fn parse<'a>(der: &'a [u8], context: &str) -> Result<Parsed<'a>> {
    let epki = EncryptedPrivateKeyInfo::from_der(der).map_err(|e| Error::from_der(context, e))?;
    let data = epki.data.as_bytes();
    let oid = epki.algorithm.oid;
    let params = epki.algorithm.parameters;
    if oid == JKS_KEY_PROTECTOR {
        if params.is_some_and(|p| p != AnyRef::NULL) {
            return Err(Error::malformed(
                context,
                "JKS key protector parameters must be absent or NULL",
            ));
        }
        Ok(Parsed {
            protection: KeyProtection::Jks,
            salt: &[],
            data,
        })
    } else if oid == PBE_MD5_TRIPLE_DES {
        let params = params.ok_or_else(|| {
            Error::malformed(context, "PBEWithMD5AndTripleDES parameters are missing")
        })?;
        let pbe: PbeParameter<'a> = params
            .decode_as()
            .map_err(|e| Error::from_der(format!("{context} (PBE parameters)"), e))?;
        let salt = pbe.salt.as_bytes();
        if salt.len() != JCEKS_SALT_LEN {
            return Err(Error::malformed(
                context,
                format!(
                    "PBEWithMD5AndTripleDES salt is {} bytes, must be {JCEKS_SALT_LEN}",
                    salt.len()
                ),
            ));
        }
        Ok(Parsed {
            protection: KeyProtection::PbeWithMd5AndTripleDes {
                iterations: pbe.iterations,
            },
            salt,
            data,
        })
    } else {
        Ok(Parsed {
            protection: KeyProtection::Other {
                oid: oid.to_string(),
            },
            salt: &[],
            data,
        })
    }
}

/// Decrypts a key entry's `EncryptedPrivateKeyInfo` with the key password: UTF-16BE code units
/// for the JKS protector, the password's UTF-8 bytes for `PBEWithMD5AndTripleDES` (JDK 17
/// accepts only printable ASCII there, JDK 25 uses UTF-8; the two agree on ASCII).
///
/// # Errors
/// [`Error::WrongPassword`] when the JKS integrity check fails or the JCEKS plaintext is not
/// PKCS#8 (JCEKS has no integrity check, so a wrong password shows up only as garbage);
/// [`Error::LimitExceeded`] for an iteration count above [`JCEKS_MAX_ITERATIONS`] or
/// [`Limits::max_iterations`]; [`Error::Unsupported`] for another algorithm;
/// [`Error::Malformed`] for impossible lengths or a JKS key that verifies but is not PKCS#8.
pub(crate) fn decrypt(
    der: &[u8],
    password: &Password,
    limits: &Limits,
    context: &str,
) -> Result<PrivateKey> {
    let parsed = parse(der, context)?;
    match parsed.protection {
        KeyProtection::Jks => {
            let plain = jks_decrypt(parsed.data, &password.utf16be_bytes(), context)?;
            PrivateKey::from_pkcs8_der(&plain)
        }
        KeyProtection::PbeWithMd5AndTripleDes { iterations } => {
            if iterations == 0 {
                return Err(Error::malformed(
                    context,
                    "iteration count must be at least 1",
                ));
            }
            Limits::check(
                LimitKind::Iterations,
                u64::from(iterations),
                u64::from(JCEKS_MAX_ITERATIONS),
            )?;
            Limits::check(
                LimitKind::Iterations,
                u64::from(iterations),
                limits.max_iterations,
            )?;
            let salt: &[u8; JCEKS_SALT_LEN] = parsed
                .salt
                .try_into()
                .map_err(|_| Error::malformed(context, "salt must be 8 bytes"))?;
            let plain = jceks_decrypt(
                parsed.data,
                password.utf8_bytes(),
                salt,
                iterations,
                context,
            )?;
            PrivateKey::from_pkcs8_der(&plain).map_err(|_| Error::wrong_password(context))
        }
        KeyProtection::Other { oid } => Err(Error::Unsupported {
            what: format!("key protection algorithm of {context}"),
            oid: Some(oid),
        }),
    }
}

/// Unseals the content of a JCEKS secret-key entry: `PBEWithMD5AndTripleDES` under the key
/// password's bytes, with the DER `PBEParameter` Java stores beside the ciphertext
/// (`SealedObject.encodedParams`). Returns the plaintext (a serialization stream).
///
/// # Errors
/// As [`decrypt`]: [`Error::WrongPassword`] for bad padding, [`Error::LimitExceeded`] for the
/// iteration count, [`Error::Malformed`] for bad parameters.
pub(crate) fn unseal(
    params_der: &[u8],
    ciphertext: &[u8],
    password: &Password,
    limits: &Limits,
    context: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    let (salt, iterations) = parse_pbe_parameter(params_der, context)?;
    check_iterations(iterations, limits, context)?;
    jceks_decrypt(
        ciphertext,
        password.utf8_bytes(),
        &salt,
        iterations,
        context,
    )
}

/// The salt and iteration count of a DER `PBEParameter`.
///
/// # Errors
/// [`Error::Malformed`] for bad DER or a salt that is not 8 bytes.
pub(crate) fn parse_pbe_parameter(
    der: &[u8],
    context: &str,
) -> Result<([u8; JCEKS_SALT_LEN], u32)> {
    let pbe = PbeParameter::from_der(der)
        .map_err(|e| Error::from_der(format!("{context} (PBE parameters)"), e))?;
    let salt =
        pbe.salt.as_bytes().try_into().map_err(|_| {
            Error::malformed(context, "PBEWithMD5AndTripleDES salt must be 8 bytes")
        })?;
    Ok((salt, pbe.iterations))
}

fn check_iterations(iterations: u32, limits: &Limits, context: &str) -> Result<()> {
    if iterations == 0 {
        return Err(Error::malformed(
            context,
            "iteration count must be at least 1",
        ));
    }
    Limits::check(
        LimitKind::Iterations,
        u64::from(iterations),
        u64::from(JCEKS_MAX_ITERATIONS),
    )?;
    Limits::check(
        LimitKind::Iterations,
        u64::from(iterations),
        limits.max_iterations,
    )
}

/// Protects a PKCS#8 key with the JKS key protector and wraps it in an
/// `EncryptedPrivateKeyInfo` with the NULL parameter (which every Java version reads).
///
/// # Errors
/// [`Error::Invalid`] only if DER encoding fails (it does not for in-memory keys).
pub(crate) fn jks_protect(
    pkcs8: &[u8],
    password: &Password,
    salt: &[u8; JKS_SALT_LEN],
) -> Result<Vec<u8>> {
    let pw16 = password.utf16be_bytes();
    let keystream = jks_keystream(&pw16, salt, pkcs8.len());
    let mut data = Vec::with_capacity(JKS_SALT_LEN + pkcs8.len() + JKS_CHECK_LEN);
    data.extend_from_slice(salt);
    data.extend(pkcs8.iter().zip(keystream.iter()).map(|(p, k)| p ^ k));
    data.extend_from_slice(&jks_check(&pw16, pkcs8));
    encode_epki(JKS_KEY_PROTECTOR, Some(AnyRef::NULL), &data)
}

/// Protects a PKCS#8 key with `PBEWithMD5AndTripleDES`, as JCEKS does.
///
/// # Errors
/// [`Error::Invalid`] when the password is not printable ASCII (JDK 17 cannot use any other
/// JCEKS key password) or `iterations` is outside 1..=[`JCEKS_MAX_ITERATIONS`].
pub(crate) fn jceks_protect(
    pkcs8: &[u8],
    password: &Password,
    salt: &[u8; JCEKS_SALT_LEN],
    iterations: u32,
) -> Result<Vec<u8>> {
    let pw = password.utf8_bytes();
    if !pw.iter().all(|b| (0x20..=0x7E).contains(b)) {
        return Err(Error::Invalid(
            "JCEKS key passwords must be printable ASCII: Java 17 refuses any other".into(),
        ));
    }
    if iterations == 0 || iterations > JCEKS_MAX_ITERATIONS {
        return Err(Error::Invalid(format!(
            "JCEKS iteration count {iterations} is outside 1..={JCEKS_MAX_ITERATIONS}"
        )));
    }
    let material = jceks_derive(pw, salt, iterations);
    let (key, iv) = split_key_iv(&material)?;
    let cipher = cbc::Encryptor::<des::TdesEde3>::new_from_slices(key, iv)
        .map_err(|_| Error::Invalid("DES-EDE3 key or IV length".into()))?;
    let mut buf = Zeroizing::new(pkcs8.to_vec());
    // PKCS#5 padding adds 1..=8 bytes.
    buf.extend_from_slice(&[0u8; 8]);
    let ciphertext = cipher
        .encrypt_padded::<Pkcs7>(&mut buf, pkcs8.len())
        .map_err(|_| Error::Invalid("PKCS#5 padding".into()))?
        .to_vec();
    let params = PbeParameter {
        salt: OctetStringRef::new(salt).map_err(|e| Error::Invalid(e.to_string()))?,
        iterations,
    }
    .to_der()
    .map_err(|e| Error::Invalid(e.to_string()))?;
    let params = AnyRef::try_from(params.as_slice()).map_err(|e| Error::Invalid(e.to_string()))?;
    encode_epki(PBE_MD5_TRIPLE_DES, Some(params), &ciphertext)
}

fn encode_epki(
    oid: ObjectIdentifier,
    parameters: Option<AnyRef<'_>>,
    data: &[u8],
) -> Result<Vec<u8>> {
    EncryptedPrivateKeyInfo {
        algorithm: AlgorithmIdentifierRef { oid, parameters },
        data: OctetStringRef::new(data).map_err(|e| Error::Invalid(e.to_string()))?,
    }
    .to_der()
    .map_err(|e| Error::Invalid(e.to_string()))
}

/// `D1 = SHA-1(k ‖ salt)`, `Di = SHA-1(k ‖ Di-1)`; the keystream is `D1 ‖ D2 ‖ …` cut to `len`.
fn jks_keystream(pw16: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut stream = Zeroizing::new(Vec::with_capacity(len.saturating_add(20)));
    let mut block = Zeroizing::new([0u8; 20]);
    let mut first = true;
    while stream.len() < len {
        let mut h = Sha1::new();
        h.update(pw16);
        h.update(if first { salt } else { block.as_slice() });
        first = false;
        block.copy_from_slice(&h.finalize());
        stream.extend_from_slice(block.as_slice());
    }
    stream.truncate(len);
    stream
}

/// The JKS integrity check `SHA-1(k ‖ P)`.
fn jks_check(pw16: &[u8], plain: &[u8]) -> [u8; JKS_CHECK_LEN] {
    let mut h = Sha1::new();
    h.update(pw16);
    h.update(plain);
    h.finalize().into()
}

/// `data = salt ‖ (P XOR keystream) ‖ SHA-1(k ‖ P)`; returns P after checking the SHA-1.
fn jks_decrypt(data: &[u8], pw16: &[u8], context: &str) -> Result<Zeroizing<Vec<u8>>> {
    let min = JKS_SALT_LEN + JKS_CHECK_LEN;
    if data.len() < min {
        return Err(Error::malformed(
            context,
            format!(
                "JKS-protected key data is {} bytes, must be at least {min}",
                data.len()
            ),
        ));
    }
    let (salt, rest) = data
        .split_at_checked(JKS_SALT_LEN)
        .ok_or_else(|| Error::malformed(context, "JKS-protected key data too short"))?;
    let (ciphertext, check) = rest
        .split_at_checked(rest.len() - JKS_CHECK_LEN)
        .ok_or_else(|| Error::malformed(context, "JKS-protected key data too short"))?;
    let keystream = jks_keystream(pw16, salt, ciphertext.len());
    let plain = Zeroizing::new(
        ciphertext
            .iter()
            .zip(keystream.iter())
            .map(|(c, k)| c ^ k)
            .collect::<Vec<u8>>(),
    );
    let expected = Zeroizing::new(jks_check(pw16, &plain));
    if bool::from(expected.as_slice().ct_eq(check)) {
        Ok(plain)
    } else {
        Err(Error::wrong_password(context))
    }
}

/// Sun's `PBEWithMD5AndTripleDES` key derivation (`PBES1Core.deriveCipherKey`): split the salt
/// into halves (reversing the first if both are equal); for each half `h = MD5(half ‖ pw)`,
/// then `iterations − 1` times `h = MD5(h ‖ pw)`; the 32 bytes `h0 ‖ h1` are the DES-EDE3 key
/// (24) and the CBC IV (8).
fn jceks_derive(
    password: &[u8],
    salt: &[u8; JCEKS_SALT_LEN],
    iterations: u32,
) -> Zeroizing<[u8; 32]> {
    let mut salt = *salt;
    if salt[..4] == salt[4..] {
        salt[..4].reverse();
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (half, dest) in salt.chunks_exact(4).zip(out.chunks_exact_mut(16)) {
        let mut h = Zeroizing::new([0u8; 16]);
        let mut md = Md5::new();
        md.update(half);
        md.update(password);
        h.copy_from_slice(&md.finalize());
        for _ in 1..iterations {
            let mut md = Md5::new();
            md.update(h.as_slice());
            md.update(password);
            h.copy_from_slice(&md.finalize());
        }
        dest.copy_from_slice(h.as_slice());
    }
    out
}

fn split_key_iv(material: &[u8; 32]) -> Result<(&[u8], &[u8])> {
    material
        .split_at_checked(24)
        .ok_or_else(|| Error::Invalid("DES-EDE3 key material".into()))
}

fn jceks_decrypt(
    ciphertext: &[u8],
    password: &[u8],
    salt: &[u8; JCEKS_SALT_LEN],
    iterations: u32,
    context: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(8) {
        return Err(Error::malformed(
            context,
            format!(
                "DES-EDE3-CBC ciphertext is {} bytes, not a positive multiple of 8",
                ciphertext.len()
            ),
        ));
    }
    let material = jceks_derive(password, salt, iterations);
    let (key, iv) = split_key_iv(&material)?;
    let cipher = cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv)
        .map_err(|_| Error::Invalid("DES-EDE3 key or IV length".into()))?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = cipher
        .decrypt_padded::<Pkcs7>(&mut buf)
        .map_err(|_| Error::wrong_password(context))?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jks_keystream_starts_with_sha1_of_password_and_salt() {
        let ks = jks_keystream(b"\0a", &[7u8; 20], 45);
        let mut h = Sha1::new();
        h.update(b"\0a");
        h.update([7u8; 20]);
        let d1: [u8; 20] = h.finalize().into();
        assert_eq!(ks.get(..20), Some(d1.as_slice()));
        let mut h = Sha1::new();
        h.update(b"\0a");
        h.update(d1);
        let d2: [u8; 20] = h.finalize().into();
        assert_eq!(ks.get(20..40), Some(d2.as_slice()));
        assert_eq!(ks.len(), 45);
    }

    #[test]
    fn jks_decrypt_rejects_short_data_as_malformed() {
        let err = jks_decrypt(&[0u8; 39], b"", "key").err();
        assert!(matches!(err, Some(Error::Malformed { .. })), "{err:?}");
    }

    #[test]
    fn jks_decrypt_detects_wrong_password() {
        let salt = [1u8; 20];
        let der =
            jks_protect(b"plaintext key bytes", &Password::new("right"), &salt).unwrap_or_default();
        let parsed = parse(&der, "key")
            .map(|p| p.data.to_vec())
            .unwrap_or_default();
        let pw16 = Password::new("right").utf16be_bytes();
        assert_eq!(
            jks_decrypt(&parsed, &pw16, "key").map(|p| p.to_vec()).ok(),
            Some(b"plaintext key bytes".to_vec())
        );
        let wrong = Password::new("wrong").utf16be_bytes();
        assert!(matches!(
            jks_decrypt(&parsed, &wrong, "key"),
            Err(Error::WrongPassword { .. })
        ));
    }

    #[test]
    fn jks_protector_writes_null_parameter() {
        let der = jks_protect(b"k", &Password::new("p"), &[0u8; 20]).unwrap_or_default();
        // SEQ { SEQ { OID(11 bytes) NULL } ... }
        assert_eq!(
            der.get(4..19),
            Some(
                [
                    0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01, 0x05,
                    0x00, 0x04
                ]
                .as_slice()
            )
        );
    }

    #[test]
    fn jceks_round_trips_and_reverses_equal_salt_halves() {
        let salt = [1, 2, 3, 4, 1, 2, 3, 4];
        let derived = jceks_derive(b"pw", &salt, 3);
        let reversed = jceks_derive(b"pw", &[4, 3, 2, 1, 1, 2, 3, 4], 3);
        assert_eq!(*derived, *reversed);
        let der = jceks_protect(b"0123456789", &Password::new("pw"), &salt, 3).unwrap_or_default();
        let parsed = parse(&der, "key");
        let Ok(parsed) = parsed else {
            unreachable!("parse failed")
        };
        assert_eq!(
            parsed.protection,
            KeyProtection::PbeWithMd5AndTripleDes { iterations: 3 }
        );
        let salt8: &[u8; 8] = parsed.salt.try_into().unwrap_or(&[0; 8]);
        let plain = jceks_decrypt(parsed.data, b"pw", salt8, 3, "key").map(|p| p.to_vec());
        assert_eq!(plain.ok(), Some(b"0123456789".to_vec()));
    }

    #[test]
    fn jceks_derivation_matches_md5_chain() {
        // h = MD5(s0 ‖ pw); h = MD5(h ‖ pw) for iterations 2.
        let pw = b"secret";
        let salt = [9, 8, 7, 6, 5, 4, 3, 2];
        let mut expected = Vec::new();
        for half in [[9u8, 8, 7, 6], [5, 4, 3, 2]] {
            let h1 = Md5::new().chain_update(half).chain_update(pw).finalize();
            let h2 = Md5::new().chain_update(h1).chain_update(pw).finalize();
            expected.extend_from_slice(&h2);
        }
        assert_eq!(jceks_derive(pw, &salt, 2).as_slice(), expected.as_slice());
    }

    #[test]
    fn jceks_protect_refuses_non_ascii_password() {
        let err = jceks_protect(b"k", &Password::new("pässword"), &[1; 8], 1).err();
        assert!(matches!(err, Some(Error::Invalid(_))), "{err:?}");
    }

    #[test]
    fn parse_rejects_non_null_jks_parameters_and_keeps_unknown_oids() {
        let data = [0u8; 40];
        let with_int = encode_epki(
            JKS_KEY_PROTECTOR,
            AnyRef::try_from([0x02u8, 0x01, 0x00].as_slice()).ok(),
            &data,
        )
        .unwrap_or_default();
        assert!(matches!(
            parse(&with_int, "k"),
            Err(Error::Malformed { .. })
        ));
        let absent = encode_epki(JKS_KEY_PROTECTOR, None, &data).unwrap_or_default();
        assert!(matches!(
            parse(&absent, "k").map(|p| p.protection),
            Ok(KeyProtection::Jks)
        ));
        let other =
            encode_epki(ObjectIdentifier::new_unwrap("1.2.3.4"), None, &data).unwrap_or_default();
        assert!(matches!(
            parse(&other, "k").map(|p| p.protection),
            Ok(KeyProtection::Other { .. })
        ));
    }
}
