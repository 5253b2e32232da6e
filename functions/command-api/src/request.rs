//! Reading what a command request carries besides identity: the account id
//! in the path, the JSON body (bounded, strict), the `Idempotency-Key`, and
//! the correlation id. Every refusal is a problem+json [`ApiError`], never
//! one of axum's plain-text rejections.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ledgerline_shared::http::caller::Caller;
use ledgerline_shared::http::correlation::CorrelationId;
use ledgerline_shared::idempotency::IdempotencyKey;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::problem::ApiError;

/// What every command handler reads from a request besides its path, in an
/// order that answers 401 before 413 before anything else.
pub struct Inbound {
    pub caller: Caller,
    pub correlation_id: CorrelationId,
    /// The request path, part of what makes two requests "the same" for idempotency.
    pub path: String,
    pub headers: HeaderMap,
    /// The body, at most [`MAX_BODY_BYTES`].
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Inbound {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let correlation_id = parts.extensions.get::<CorrelationId>().cloned().unwrap_or_else(|| CorrelationId::from_parts(&parts));
        let body = read_body(body).await?;
        Ok(Self { caller, correlation_id, path: parts.uri.path().to_owned(), headers: parts.headers, body })
    }
}

/// Command bodies are small; anything larger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Reads the body, up to [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body exceeds {MAX_BODY_BYTES} bytes"))
    })
}

/// Parses a JSON body strictly: an object (never an array of its fields),
/// the types use `deny_unknown_fields`, and a declared content type other
/// than JSON is refused.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let is_json = content_type.to_str().is_ok_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        });
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
    }
    // serde reads a struct from an array of its fields too (`["EUR"]`);
    // a body is an object, as docs/openapi.json says.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation("the body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::validation(format!("invalid JSON body: {e}")))
}

/// An integer field of a body (`#[serde(deserialize_with = "request::integer")]`).
/// JSON does not tell `1000` from `1000.0` or `1e3`, and JSON Schema's
/// `integer`, which docs/openapi.json declares, is any number without a
/// fractional part, so each of them is the integer 1000. The number's text
/// is read exactly, never through a float: `1000.00000000000001` is refused,
/// not rounded, and so is anything outside `i64`.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    exact_integer(raw.get()).ok_or_else(|| D::Error::custom(format!("{} is not an integer", raw.get())))
}

/// An optional integer field (`#[serde(default, deserialize_with = "request::optional_integer")]`):
/// absent is `None`; present, it follows [`integer`] (`null` is refused).
pub fn optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    integer(deserializer).map(Some)
}

/// The integer a JSON number's text (`-?digits[.digits][e[+-]digits]`) is
/// exactly, if it is one and fits in `i64`.
fn exact_integer(text: &str) -> Option<i64> {
    let (negative, unsigned) = text.strip_prefix('-').map_or((false, text), |rest| (true, rest));
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let is_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) {
        return None;
    }
    let mut digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).skip_while(|&b| b == b'0').collect();
    if digits.is_empty() {
        return Some(0); // zero, whatever its exponent
    }
    let exponent: i64 = match exponent {
        Some(text) => text.parse().ok().filter(|e: &i64| e.abs() <= 1_000_000)?,
        None => 0,
    };
    // The value is digits × 10^scale: a negative scale must only drop zeros.
    let mut scale = exponent - fraction.len() as i64;
    while scale < 0 {
        if digits.pop() != Some(b'0') {
            return None;
        }
        scale += 1;
    }
    if digits.len() as i64 + scale > 19 {
        return None;
    }
    let magnitude = digits.iter().fold(0i128, |n, d| n * 10 + i128::from(d - b'0')) * 10i128.pow(scale as u32);
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// The body in a canonical form (parsed and re-serialized, keys sorted), so
/// a retry that only differs in whitespace or key order is the same request.
pub fn canonical_body(bytes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec()),
        Err(_) => bytes.to_vec(),
    }
}

/// The `Idempotency-Key` header, validated when present.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::validation("Idempotency-Key must be printable ASCII"))?;
    IdempotencyKey::new(text).map(Some).map_err(|e| ApiError::validation(e.to_string()))
}

pub fn required_idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    idempotency_key(headers)?.ok_or_else(|| ApiError::validation("this request needs an Idempotency-Key header"))
}

/// The `{id}` path segment as text, parsed by [`account_id`] once the
/// caller is known (so a request without claims is 401 whatever its path).
/// A segment that does not percent-decode to UTF-8 is refused here already.
pub struct RawAccountId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RawAccountId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::validation("the account id must be a UUID"))?;
        Ok(Self(text))
    }
}

/// Parses an account id from the path.
pub fn account_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::validation(format!("{text:?} is not an account id (a UUID)")))
}

/// The `{id}` and `{hold_id}` path segments as text, like [`RawAccountId`].
pub struct RawHoldPath(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for RawHoldPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((account, hold)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::validation("the account id and the hold id must be UUIDs"))?;
        Ok(Self(account, hold))
    }
}

/// Parses a hold id from the path.
pub fn hold_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::validation(format!("{text:?} is not a hold id (a UUID)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bodies_ignore_whitespace_and_key_order() {
        assert_eq!(canonical_body(br#"{"b":1, "a":2}"#), canonical_body(br#"{"a":2,"b":1}"#));
        assert_ne!(canonical_body(br#"{"a":2}"#), canonical_body(br#"{"a":3}"#));
        assert_eq!(canonical_body(b"not json"), b"not json");
    }

    #[test]
    fn every_spelling_of_an_integer_is_that_integer_and_nothing_else_is() {
        for (text, value) in [("1000", 1000), ("1000.0", 1000), ("1e3", 1000), ("1.5e1", 15), ("10E+2", 1000), ("-0.0", 0)] {
            assert_eq!(exact_integer(text), Some(value), "{text}");
        }
        assert_eq!(exact_integer("0e999999999999"), Some(0));
        assert_eq!(exact_integer("9223372036854775807"), Some(i64::MAX));
        assert_eq!(exact_integer("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(exact_integer("25000e-1"), Some(2500));
        for text in
            ["1.5", "1000.00000000000001", "1e-1", "9223372036854775808", "1e19", "\"5\"", "null", "true", "", "-", "1e", ".5", "[1]"]
        {
            assert_eq!(exact_integer(text), None, "{text}");
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(deserialize_with = "integer")]
            amount: i64,
        }
        assert_eq!(serde_json::from_str::<Body>(r#"{"amount": 380.0}"#).unwrap().amount, 380);
        assert!(serde_json::from_str::<Body>(r#"{"amount": 380.5}"#).is_err());
    }

    #[test]
    fn a_content_type_other_than_json_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(parse_json::<serde_json::Value>(&headers, b"{}").unwrap_err().code, "unsupported_media_type");
        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert!(parse_json::<serde_json::Value>(&headers, b"{}").is_ok());
    }

    #[test]
    fn a_body_is_an_object_never_an_array_of_fields() {
        #[derive(Debug, Deserialize)]
        struct Body {
            #[allow(dead_code)]
            currency: String,
        }
        let headers = HeaderMap::new();
        assert!(parse_json::<Body>(&headers, br#" {"currency":"EUR"}"#).is_ok());
        for body in [&br#"["EUR"]"#[..], b"[]", b"null", b"\"x\"", b""] {
            assert_eq!(parse_json::<Body>(&headers, body).unwrap_err().code, "validation_failed", "{body:?}");
        }
    }
}
