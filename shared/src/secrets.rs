//! Secrets fetched at cold start, never held in the function configuration.
//!
//! In AWS a function gets the ARN of a Secrets Manager secret
//! (`LEDGERLINE_DATABASE_SECRET_ARN`, `LEDGERLINE_CURSOR_SECRET_ARN`) and
//! asks the AWS Parameters and Secrets Lambda Extension for its value once,
//! while it starts: `GET http://localhost:2773/secretsmanager/get?secretId=ARN`
//! with the header `X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN`
//! (the port is `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` when set). The
//! answer is Secrets Manager's `GetSecretValue` JSON; its `SecretString` is
//! either the value itself or, for a JSON secret such as RDS's, an object
//! whose `key` field holds it (`url` for the database).
//!
//! Why the extension and not the Secrets Manager SDK: it is one plain HTTP
//! call on localhost (hyper, already built for the Lambda runtime), where
//! the SDK crate would add megabytes to every binary that holds a secret;
//! and the extension caches for the other containers' cold starts.
//!
//! Without an ARN the plain variable is read, as on a developer's machine
//! (`DATABASE_URL`, `LEDGERLINE_CURSOR_SECRET`). Setting both is refused: a
//! deployment must not leave the plaintext copy behind by mistake.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use thiserror::Error;

/// The extension's default port.
pub const DEFAULT_EXTENSION_PORT: u16 = 2773;

/// How long the extension may take to come up and answer: it starts beside
/// the function, so the first call may find it not yet listening.
const EXTENSION_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("set either {plain} or {arn}, not both: the ARN is the deployed way, the plain variable the local one")]
    Both { plain: &'static str, arn: &'static str },
    #[error("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT={0:?} is not a port number")]
    BadPort(String),
    #[error("AWS_SESSION_TOKEN is not set: the secrets extension needs it to answer")]
    NoSessionToken,
    #[error("the secrets extension did not answer for {secret}: {reason}")]
    Unreachable { secret: String, reason: String },
    #[error("the secrets extension answered {status} for {secret}: {body}")]
    Refused { secret: String, status: u16, body: String },
    #[error("secret {secret}: {reason}")]
    Malformed { secret: String, reason: String },
}

/// One secret setting: the plain variable read locally and the variable
/// holding the ARN in AWS; `json_key` picks a field of a JSON secret.
#[derive(Debug, Clone, Copy)]
pub struct SecretSetting {
    pub plain: &'static str,
    pub arn: &'static str,
    pub json_key: Option<&'static str>,
}

/// The database URL: `DATABASE_URL`, or field `url` of the secret
/// `LEDGERLINE_DATABASE_SECRET_ARN` names.
pub const DATABASE_URL: SecretSetting =
    SecretSetting { plain: "DATABASE_URL", arn: "LEDGERLINE_DATABASE_SECRET_ARN", json_key: Some("url") };

/// The query API's cursor key: `LEDGERLINE_CURSOR_SECRET`, or the plain
/// string secret `LEDGERLINE_CURSOR_SECRET_ARN` names.
pub const CURSOR_SECRET: SecretSetting =
    SecretSetting { plain: "LEDGERLINE_CURSOR_SECRET", arn: "LEDGERLINE_CURSOR_SECRET_ARN", json_key: None };

impl SecretSetting {
    /// The value, from the extension when the ARN variable is set, else
    /// from the plain variable; `None` when neither is set.
    pub async fn load(&self) -> Result<Option<String>, SecretError> {
        let plain = non_empty(self.plain);
        let Some(arn) = non_empty(self.arn) else {
            return Ok(plain);
        };
        if plain.is_some() {
            return Err(SecretError::Both { plain: self.plain, arn: self.arn });
        }
        let port = match non_empty("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") {
            None => DEFAULT_EXTENSION_PORT,
            Some(raw) => raw.trim().parse().map_err(|_| SecretError::BadPort(raw))?,
        };
        let token = non_empty("AWS_SESSION_TOKEN").ok_or(SecretError::NoSessionToken)?;
        let answer = fetch_from_extension(port, &token, &arn).await?;
        pick(&arn, &answer, self.json_key).map(Some)
    }
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `GetSecretValue`'s JSON from the extension, retrying while it is not yet
/// listening (up to [`EXTENSION_DEADLINE`]).
async fn fetch_from_extension(port: u16, token: &str, secret_id: &str) -> Result<Vec<u8>, SecretError> {
    let deadline = tokio::time::Instant::now() + EXTENSION_DEADLINE;
    let backoff = crate::resilience::Backoff { base: Duration::from_millis(10), max: Duration::from_millis(200) };
    let mut failed = 0;
    loop {
        match get_once(port, token, secret_id).await {
            Ok(answer) => return Ok(answer),
            Err(GetError::Connect(reason)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%reason, "the secrets extension is not listening yet");
                failed += 1;
                tokio::time::sleep(backoff.delay(failed)).await;
            }
            Err(GetError::Connect(reason) | GetError::Http(reason)) => {
                return Err(SecretError::Unreachable { secret: secret_id.to_owned(), reason });
            }
            Err(GetError::Status(status, body)) => return Err(SecretError::Refused { secret: secret_id.to_owned(), status, body }),
        }
    }
}

enum GetError {
    Connect(String),
    Http(String),
    Status(u16, String),
}

async fn get_once(port: u16, token: &str, secret_id: &str) -> Result<Vec<u8>, GetError> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| GetError::Connect(e.to_string()))?;
    let http = |e: hyper::Error| GetError::Http(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(http)?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(format!("/secretsmanager/get?secretId={}", query_escape(secret_id)))
        .header(hyper::header::HOST, format!("localhost:{port}"))
        .header("X-Aws-Parameters-Secrets-Token", token)
        .body(Empty::<Bytes>::new())
        .map_err(|e| GetError::Http(e.to_string()))?;
    let response = tokio::time::timeout(EXTENSION_DEADLINE, sender.send_request(request))
        .await
        .map_err(|_| GetError::Http("no answer in time".into()))?
        .map_err(http)?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(http)?.to_bytes().to_vec();
    connection.abort();
    if status != 200 {
        // The body is the extension's error message; it holds no secret.
        return Err(GetError::Status(status, String::from_utf8_lossy(&body).chars().take(300).collect()));
    }
    Ok(body)
}

/// Percent-encodes everything but unreserved characters (an ARN holds `:`
/// and `/`, a name may hold `+`, `=`, `@`).
fn query_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// The value out of `GetSecretValue`'s answer.
fn pick(secret: &str, answer: &[u8], json_key: Option<&str>) -> Result<String, SecretError> {
    let malformed = |reason: &str| SecretError::Malformed { secret: secret.to_owned(), reason: reason.to_owned() };
    let answer: serde_json::Value = serde_json::from_slice(answer).map_err(|_| malformed("the extension's answer is not JSON"))?;
    let text = answer["SecretString"].as_str().ok_or_else(|| malformed("it has no SecretString (a binary secret?)"))?;
    let value = match json_key {
        None => text.to_owned(),
        Some(key) => {
            let fields: serde_json::Value =
                serde_json::from_str(text).map_err(|_| malformed(&format!("it is not a JSON object with a {key:?} field")))?;
            fields[key].as_str().ok_or_else(|| malformed(&format!("it has no string field {key:?}")))?.to_owned()
        }
    };
    if value.trim().is_empty() {
        return Err(malformed("the value is empty"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_comes_from_the_secret_string_or_its_json_field() {
        let plain = br#"{"ARN":"arn:x","Name":"n","SecretString":"s3cret"}"#;
        assert_eq!(pick("n", plain, None).unwrap(), "s3cret");
        let json = br#"{"SecretString":"{\"url\":\"postgres://u:p@h/db\",\"username\":\"u\"}"}"#;
        assert_eq!(pick("n", json, Some("url")).unwrap(), "postgres://u:p@h/db");
        assert!(matches!(pick("n", json, Some("password")), Err(SecretError::Malformed { .. })));
        assert!(matches!(pick("n", plain, Some("url")), Err(SecretError::Malformed { .. })));
        assert!(matches!(pick("n", br#"{"SecretBinary":"AAAA"}"#, None), Err(SecretError::Malformed { .. })));
        assert!(matches!(pick("n", br#"{"SecretString":" "}"#, None), Err(SecretError::Malformed { .. })));
    }

    #[test]
    fn an_arn_is_escaped_for_the_query_string() {
        assert_eq!(
            query_escape("arn:aws:secretsmanager:eu-west-1:1:secret:db/main-AbC+1="),
            "arn%3Aaws%3Asecretsmanager%3Aeu-west-1%3A1%3Asecret%3Adb%2Fmain-AbC%2B1%3D"
        );
    }
}
