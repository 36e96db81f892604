//! Object identifiers of PKCS#5 (RFC 8018), PBMAC1 (RFC 9579), the PKCS#12 PBE schemes
//! (RFC 7292 appendix C), and the ciphers and hashes they name.

use der::asn1::ObjectIdentifier as Oid;

/// PKCS#7 `data` content type: the type of the plaintext that the schemes encrypt.
pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");

/// PBE-SHA1-RC4-128.
pub const PBE_SHA1_RC4_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.1");
/// PBE-SHA1-RC4-40.
pub const PBE_SHA1_RC4_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.2");
/// PBE-SHA1-3DES (three-key).
pub const PBE_SHA1_3DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.3");
/// PBE-SHA1-2DES (two-key).
pub const PBE_SHA1_2DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.4");
/// PBE-SHA1-RC2-128.
pub const PBE_SHA1_RC2_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.5");
/// PBE-SHA1-RC2-40.
pub const PBE_SHA1_RC2_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.6");

/// PBES2 (RFC 8018 §6.2).
pub const PBES2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.13");
/// PBKDF2 (RFC 8018 §5.2).
pub const PBKDF2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.12");
/// PBMAC1 (RFC 8018 §7.1, RFC 9579).
pub const PBMAC1: Oid = Oid::new_unwrap("1.2.840.113549.1.5.14");
/// scrypt (RFC 7914).
pub const SCRYPT: Oid = Oid::new_unwrap("1.3.6.1.4.1.11591.4.11");

/// AES-128-CBC.
pub const AES_128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
/// AES-192-CBC.
pub const AES_192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
/// AES-256-CBC.
pub const AES_256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
/// DES-EDE3-CBC.
pub const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");

/// SHA-1.
pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
/// SHA-256.
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// SHA-384.
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
/// SHA-512.
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
/// SHA-224.
pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
/// SHA-512/224.
pub const SHA512_224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.5");
/// SHA-512/256.
pub const SHA512_256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.6");

/// HMAC-SHA1.
pub const HMAC_SHA1: Oid = Oid::new_unwrap("1.2.840.113549.2.7");
/// HMAC-SHA224.
pub const HMAC_SHA224: Oid = Oid::new_unwrap("1.2.840.113549.2.8");
/// HMAC-SHA256.
pub const HMAC_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.2.9");
/// HMAC-SHA384.
pub const HMAC_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.2.10");
/// HMAC-SHA512.
pub const HMAC_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.2.11");
/// HMAC-SHA512/224.
pub const HMAC_SHA512_224: Oid = Oid::new_unwrap("1.2.840.113549.2.12");
/// HMAC-SHA512/256.
pub const HMAC_SHA512_256: Oid = Oid::new_unwrap("1.2.840.113549.2.13");
