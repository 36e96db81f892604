//! The catalog's error type, grouped by what a caller (the CLI, the HTTP API) does about it.
//!
//! Failures of the codec and store layer arrive unchanged as [`Error::Codec`], so a wrong
//! password stays a wrong password however deep it happened; the catalog adds what only it can
//! say: the database failed, the request cannot be carried out, the thing asked for does not
//! exist, or the principal may not do it.

use std::path::PathBuf;

/// Result alias used throughout the catalog.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure of the codec or store layer: wrong password, malformed file, limit exceeded,
    /// unsupported algorithm, key mismatch, alias conflicts, store I/O.
    #[error(transparent)]
    Codec(#[from] pfxkit::Error),

    /// The catalog database failed or cannot be reached; retrying later may succeed.
    #[error("catalog database: {0}")]
    Database(String),

    /// The catalog database cannot be reached right now (a shared PostgreSQL restarting, the
    /// network down, every pooled connection busy): nothing was changed, and the same request
    /// may succeed later. The HTTP API answers 503.
    #[error("catalog database unavailable: {0}")]
    Unavailable(String),

    /// A request that cannot be carried out as asked (a missing option, a conflicting id, a
    /// value out of range).
    #[error("{0}")]
    Invalid(String),

    /// What the request names does not exist (a certificate, store, container, job, user).
    #[error("{0}")]
    NotFound(String),

    /// The acting principal lacks the permission the operation needs.
    #[error("permission denied: {0}")]
    Forbidden(String),
}

impl Error {
    /// A malformed-input error without a known offset.
    pub(crate) fn malformed(context: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Codec(pfxkit::Error::malformed(context, reason))
    }

    /// An integrity or decryption failure.
    pub(crate) fn wrong_password(context: impl Into<String>) -> Self {
        Error::Codec(pfxkit::Error::wrong_password(context))
    }

    /// Converts a `der` decoding error, keeping its byte position.
    pub(crate) fn from_der(context: impl Into<String>, err: der::Error) -> Self {
        Error::Codec(pfxkit::Error::from_der(context, err))
    }

    /// An unsupported algorithm or feature, named by `what` and its OID when there is one.
    pub(crate) fn unsupported(what: impl Into<String>, oid: Option<String>) -> Self {
        Error::Codec(pfxkit::Error::Unsupported {
            what: what.into(),
            oid,
        })
    }

    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Codec(pfxkit::Error::io(path, source))
    }

    /// An I/O error with no path (randomness, a pipe).
    pub(crate) fn io_other(message: impl std::fmt::Display) -> Self {
        Error::Codec(pfxkit::Error::Io {
            path: None,
            source: std::io::Error::other(message.to_string()),
        })
    }

    /// Whether this is a wrong password or integrity failure of the layer below.
    pub fn is_wrong_password(&self) -> bool {
        matches!(self, Error::Codec(pfxkit::Error::WrongPassword { .. }))
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Codec(pfxkit::Error::from(source))
    }
}
