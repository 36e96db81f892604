//! Errors: the server's own ([`ServerError`]) and the one mapping from any failure of a request
//! to a status and Keyfactor's `{"ErrorCode", "Message"}` body ([`ApiError`]).

use http::StatusCode;
use pfxkit_catalog::Error;

/// What can stop the server from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A configuration that cannot be served (plain HTTP off loopback, bad TLS files).
    #[error("{0}")]
    Config(String),
    /// The socket could not be bound or read.
    #[error("{0}")]
    Io(String),
    /// The catalog failed while preparing (issuing the server certificate).
    #[error(transparent)]
    Catalog(#[from] Error),
}

/// A request's failure: the status and a message safe to show the caller (no secret, no
/// internal detail beyond what the catalog's errors say, which never carry secrets).
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// Keyfactor-style error code: `0xA0` and the status, e.g. `0xA0000190` for 400.
    pub fn code(&self) -> String {
        format!(
            "0x{:08X}",
            0xA000_0000_u32 | u32::from(self.status.as_u16())
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"ErrorCode": self.code(), "Message": self.message})
    }
}

impl From<pfxkit::Error> for ApiError {
    fn from(e: pfxkit::Error) -> Self {
        Error::Codec(e).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            // A database that answered with an error, or one that cannot be reached now (the
            // PostgreSQL backend's `Unavailable`): the caller may retry later.
            Error::Database(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Codec(pfxkit::Error::Io { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            // Wrong password, malformed input, limits, unsupported algorithms, alias conflicts:
            // all about what the caller sent.
            Error::Codec(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The detail (a path, an OS error) goes to the log, not to the caller.
            tracing::error!(error = %e, "internal error");
            return ApiError::new(status, "internal error; see the server log");
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "catalog unavailable");
            return ApiError::new(status, "the catalog is unavailable; retry later");
        }
        ApiError::new(status, e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_catalog_is_a_503_that_does_not_echo_the_connection_detail() {
        // Threat: a connection error can carry the server's address or a connection string;
        // the caller learns only that the catalog is unavailable.
        let e = ApiError::from(Error::Unavailable(
            "connection refused: postgres://pfxkit:secret@db:5432/pfxkit".into(),
        ));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "0xA00001F7");
        assert!(!e.message.contains("secret"), "{}", e.message);
        assert!(!e.message.contains("db:5432"), "{}", e.message);
        let e = ApiError::from(Error::Database("disk I/O error".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn bad_input_is_a_4xx_and_never_a_500() {
        assert_eq!(
            ApiError::from(Error::Invalid("x".into())).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::from(Error::NotFound("x".into())).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::from(Error::Forbidden("x".into())).status,
            StatusCode::FORBIDDEN
        );
    }
}
