//! # pfxkit
//!
//! PKCS#12/PFX archives and Java keystores, read safely and written so that every consumer
//! accepts them.
//!
//! The crate is layered: codecs ([`pkcs12`]) know bytes; the model types ([`Certificate`],
//! [`PrivateKey`], [`Identity`], [`Password`]) are shared by every layer; nothing lower imports
//! anything higher. Every input is bounded by [`Limits`]; every failure is an [`Error`] variant
//! that says what to do about it.
//!
//! ```no_run
//! use pfxkit::{Limits, Password, pkcs12};
//!
//! let bytes = std::fs::read("server.p12")?;
//! let archive = pkcs12::read(&bytes, Some(&Password::new("secret")), &Limits::default())?;
//! for identity in archive.identities() {
//!     println!("{}: {}", identity.alias().unwrap_or("-"), identity.leaf().subject());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod asn1;
pub mod cert;
pub mod contents;
pub mod error;
pub mod identity;
pub mod jks;
pub mod limits;
mod parallel;
pub mod pbe;
pub mod pem;
pub mod pkcs12;
pub mod random;
pub mod secret;
pub mod store;

pub use cert::Certificate;
pub use error::{Error, Result};
pub use identity::Identity;
pub use limits::Limits;
pub use secret::{Password, PasswordSource, PrivateKey};
