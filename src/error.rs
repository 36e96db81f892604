//! The one error type of pfxkit, grouped by what a caller does about it.
//!
//! Wrong password, malformed input, a limit exceeded and an unsupported algorithm are distinct
//! variants because callers act differently on each: ask for another password, reject the file,
//! raise a limit on purpose, or use another tool.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout pfxkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pfxkit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The password is wrong or the data was altered: a MAC or keystore digest mismatch, or an
    /// encrypted item that does not decrypt. The two causes cannot be told apart.
    #[error("wrong password or tampered file: {context}")]
    WrongPassword {
        /// What failed to verify or decrypt (e.g. "PKCS#12 MAC", "key entry 'web'").
        context: String,
    },

    /// The input is not well-formed.
    #[error("malformed {context}{}: {reason}", offset_suffix(*.offset))]
    Malformed {
        /// What was being decoded (e.g. "PKCS#12 MacData").
        context: String,
        /// Byte offset in the decoded buffer, when known.
        offset: Option<u64>,
        /// What is wrong.
        reason: String,
    },

    /// An algorithm or feature pfxkit does not implement.
    #[error("unsupported {what}{}", oid_suffix(.oid.as_deref()))]
    Unsupported {
        /// What is unsupported (e.g. "PKCS#12 encryption scheme").
        what: String,
        /// The object identifier, when there is one.
        oid: Option<String>,
    },

    /// A safety limit from [`Limits`](crate::Limits) was exceeded.
    #[error("limit exceeded: {limit} is {value}, the bound is {bound}")]
    LimitExceeded {
        /// Which limit.
        limit: LimitKind,
        /// The value found in the input.
        value: u64,
        /// The bound it exceeded.
        bound: u64,
    },

    /// A private key does not belong to the certificate it was paired with.
    #[error("private key does not match certificate {certificate_sha256}")]
    KeyMismatch {
        /// SHA-256 thumbprint (lowercase hex) of the certificate.
        certificate_sha256: String,
    },

    /// A store already holds an entry under this alias (and overwriting was not asked for).
    #[error("alias '{alias}' already exists in the store")]
    AliasExists {
        /// The alias.
        alias: String,
    },

    /// A store holds no entry under this alias.
    #[error("alias '{alias}' is not in the store")]
    AliasNotFound {
        /// The alias.
        alias: String,
    },

    /// A store's file does not exist (and creating it was not asked for).
    #[error("store {} does not exist", .path.display())]
    StoreNotFound {
        /// The store's file.
        path: PathBuf,
    },

    /// A file or directory a store (or an output file) depends on is not safe to use: it could
    /// have been written or swapped by another user (a foreign or world-writable journal, lock
    /// or temporary, a directory anyone can write, a symbolic link where none is followed).
    /// Nothing was changed; a person has to look at the path named.
    #[error("refusing {}: {reason}", .path.display())]
    UnsafePath {
        /// The file or directory concerned.
        path: PathBuf,
        /// Why it is not safe, and what to do about it.
        reason: String,
    },

    /// Another process held the store's lock for longer than the caller would wait.
    #[error("store is locked by another process: {} (waited {} ms)", .path.display(), .waited.as_millis())]
    StoreLocked {
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited: std::time::Duration,
    },

    /// A request that cannot be carried out as asked (a missing alias, a forbidden option).
    #[error("{0}")]
    Invalid(String),

    /// An I/O error, with the file it concerned when known.
    #[error("I/O error{}: {source}", path_suffix(.path.as_ref()))]
    Io {
        /// The file concerned.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The safety limit an [`Error::LimitExceeded`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// Size of the whole input in bytes.
    InputSize,
    /// Iteration count of one key derivation.
    Iterations,
    /// Iteration counts summed over the whole archive.
    TotalIterations,
    /// Number of bags or entries.
    EntryCount,
    /// Nesting depth of ASN.1 or safeContents bags.
    NestingDepth,
    /// Length of a salt in bytes.
    SaltLength,
    /// PBMAC1 derived key length in bytes.
    MacKeyLength,
    /// Length of a certificate chain.
    ChainLength,
    /// Length of one field (alias, certificate, key) in bytes.
    FieldLength,
    /// CPU work of the whole file, in [work units](crate::limits::work).
    Work,
    /// Attributes (RDN components) in one certificate name.
    NameAttributes,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::InputSize => "input size",
            LimitKind::Iterations => "iteration count",
            LimitKind::TotalIterations => "total iteration count",
            LimitKind::EntryCount => "entry count",
            LimitKind::NestingDepth => "nesting depth",
            LimitKind::SaltLength => "salt length",
            LimitKind::MacKeyLength => "PBMAC1 key length",
            LimitKind::ChainLength => "chain length",
            LimitKind::FieldLength => "field length",
            LimitKind::Work => "work (KDFs, decryption, certificates and key proofs)",
            LimitKind::NameAttributes => "attributes in a certificate name",
        })
    }
}

fn offset_suffix(offset: Option<u64>) -> String {
    offset.map(|o| format!(" at byte {o}")).unwrap_or_default()
}

fn oid_suffix(oid: Option<&str>) -> String {
    oid.map(|o| format!(" (OID {o})")).unwrap_or_default()
}

fn path_suffix(path: Option<&PathBuf>) -> String {
    path.map(|p| format!(" on {}", p.display()))
        .unwrap_or_default()
}

impl Error {
    /// A malformed-input error without a known offset.
    pub fn malformed(context: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Malformed {
            context: context.into(),
            offset: None,
            reason: reason.into(),
        }
    }

    /// A malformed-input error at a byte offset.
    pub fn malformed_at(
        context: impl Into<String>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Malformed {
            context: context.into(),
            offset: Some(offset),
            reason: reason.into(),
        }
    }

    /// An unsupported algorithm named by its OID.
    pub fn unsupported_oid(what: impl Into<String>, oid: impl fmt::Display) -> Self {
        Error::Unsupported {
            what: what.into(),
            oid: Some(oid.to_string()),
        }
    }

    /// An integrity or decryption failure.
    pub fn wrong_password(context: impl Into<String>) -> Self {
        Error::WrongPassword {
            context: context.into(),
        }
    }

    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }

    /// Converts a `der` decoding error, keeping its byte position.
    pub fn from_der(context: impl Into<String>, err: der::Error) -> Self {
        Error::Malformed {
            context: context.into(),
            offset: err.position().map(|p| u64::from(u32::from(p))),
            reason: err.kind().to_string(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io { path: None, source }
    }
}
