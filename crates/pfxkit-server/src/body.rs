//! Request bodies: JSON objects whose property names match case-insensitively (one official
//! client sends PascalCase, the other camelCase), unknown properties ignored, every wrong type a
//! 400 that names the property.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A request body: hyper's from a connection, or the fuzzing harness's from memory.
pub(crate) type ReqBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why a request body could not be read (a concrete type: a boxed trait object as the body's
/// error makes the request futures' `Send` unprovable to the compiler).
#[derive(Debug)]
pub(crate) struct BodyError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {}

/// Any body as a [`ReqBody`].
pub(crate) fn req_body<B>(body: B) -> ReqBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    body.map_err(|e| BodyError(e.into())).boxed_unsync()
}

/// Reads a JSON object body of at most `max` bytes.
pub(crate) async fn read_json(
    headers: &HeaderMap,
    body: ReqBody,
    max: usize,
) -> Result<Fields, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
    }
    let bytes: Bytes = match Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {max} bytes"),
            ));
        }
        Err(_) => return Err(ApiError::bad_request("the request body could not be read")),
    };
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(Fields(map)),
        _ => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
    }
}

/// A JSON object read case-insensitively.
#[derive(Debug, Default)]
pub(crate) struct Fields(pub(crate) Map<String, Value>);

fn type_error(name: &str, want: &str) -> ApiError {
    ApiError::bad_request(format!("property '{name}' must be {want}"))
}

impl Fields {
    /// The value of property `name` (any case); `null` counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(type_error(name, "a string")),
        }
    }

    pub(crate) fn required_str(&self, name: &str) -> Result<&str, ApiError> {
        self.str(name)?
            .ok_or_else(|| ApiError::bad_request(format!("property '{name}' is required")))
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| type_error(name, "an integer")),
            Some(_) => Err(type_error(name, "an integer")),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(type_error(name, "true or false")),
        }
    }

    pub(crate) fn array(&self, name: &str) -> Result<&[Value], ApiError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(type_error(name, "an array")),
        }
    }

    pub(crate) fn object(&self, name: &str) -> Result<Option<Fields>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields(m.clone()))),
            Some(_) => Err(type_error(name, "an object")),
        }
    }

    /// A string array (each element a string).
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, ApiError> {
        self.array(name)?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| type_error(name, "an array of strings"))
            })
            .collect()
    }

    /// Each element of an object array.
    pub(crate) fn objects(&self, name: &str) -> Result<Vec<Fields>, ApiError> {
        self.array(name)?
            .iter()
            .map(|v| match v {
                Value::Object(m) => Ok(Fields(m.clone())),
                _ => Err(type_error(name, "an array of objects")),
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn matches_property_names_in_any_case() {
        let Value::Object(m) =
            serde_json::json!({"certificateId": 7, "STOREIDS": ["a"], "Password": null})
        else {
            unreachable!()
        };
        let f = Fields(m);
        assert_eq!(f.int("CertificateId").unwrap(), Some(7));
        assert_eq!(f.strings("StoreIds").unwrap(), vec!["a".to_string()]);
        assert_eq!(f.str("password").unwrap(), None);
        assert!(f.str("certificateid").is_err());
    }
}
