//! The PKCS#12 (RFC 7292) codec: reading every archive found in the wild, writing archives
//! every consumer accepts.
//!
//! Reading: [`read`] turns bytes into an [`Archive`]; [`Archive::identities`] pairs keys with
//! certificates by proof, never by file order.

pub mod oids;
mod profile;
mod read;
mod write;

pub use crate::pbe::kdf::HashAlg;
pub use crate::pbe::mac::MacAlgorithm;
pub use crate::pbe::scheme::{EncryptionScheme, Pbes1Cipher, Pbes2Cipher};
pub use profile::{Profile, detect as detect_profile};
pub use read::{
    Archive, BagAttributes, CertBag, KeyBag, MacInfo, OtherBag, OtherBagKind, UnparsedCertificate,
    read, read_with_key_password,
};
pub use write::Builder;
