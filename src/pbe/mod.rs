//! Password-based cryptography shared by the formats: the key derivations (PBKDF2 and the
//! PKCS#12 KDF, RFC 8018 §5.2 and RFC 7292 appendix B), the encryption schemes (PBES1 with the
//! PKCS#12 PBE algorithms, PBES2; RFC 8018 §6), and the MACs (the classic PKCS#12 MAC and
//! PBMAC1, RFC 9579).
//!
//! PKCS#12 uses all of it; PKCS#8 `ENCRYPTED PRIVATE KEY` (PEM) uses the schemes; JCEKS uses its
//! own key protection (`jks::protect`). The derivations charge their work to the caller's
//! work budget (see [`limits::work`](crate::limits::work)) before they run.

pub(crate) mod fastkdf;
pub mod kdf;
pub(crate) mod mac;
pub mod oids;
pub(crate) mod scheme;
