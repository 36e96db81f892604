//! Object identifiers of PKCS#12 (RFC 7292): content types, bags and attributes; the password-based
//! schemes' identifiers are re-exported from [`crate::pbe::oids`].

use der::asn1::ObjectIdentifier as Oid;

/// PKCS#7 `signedData` (public-key integrity mode).
pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// PKCS#7 `envelopedData` (public-key privacy mode).
pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
/// PKCS#7 `encryptedData` (password privacy mode).
pub const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");

/// `keyBag`: a plain PKCS#8 PrivateKeyInfo.
pub const KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.1");
/// `pkcs8ShroudedKeyBag`: an EncryptedPrivateKeyInfo.
pub const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
/// `certBag`.
pub const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
/// `crlBag`.
pub const CRL_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.4");
/// `secretBag`.
pub const SECRET_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.5");
/// `safeContentsBag`: nested SafeContents.
pub const SAFE_CONTENTS_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.6");

/// `x509Certificate` cert type.
pub const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");

/// `friendlyName` attribute (BMPString).
pub const FRIENDLY_NAME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.20");
/// `localKeyId` attribute (OCTET STRING).
pub const LOCAL_KEY_ID: Oid = Oid::new_unwrap("1.2.840.113549.1.9.21");
/// Oracle/Java "trusted key usage" attribute marking a trusted certificate entry.
pub const JAVA_TRUSTED: Oid = Oid::new_unwrap("2.16.840.1.113894.746875.1.1");
/// `anyExtendedKeyUsage`, the value keytool writes in the Java trust attribute.
pub const ANY_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37.0");

pub use crate::pbe::oids::*;
