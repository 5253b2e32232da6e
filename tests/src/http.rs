//! The smallest HTTP client the scenario needs: JSON in, status, headers and
//! JSON out, against any base URL. hyper is already in the build (axum, the
//! AWS SDK), so this costs no new crates.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// One answer: status, headers, and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body as text (lossy UTF-8): for answers that are not JSON, such as CSV.
    pub text: String,
}

impl Answer {
    /// The problem+json `code`, if the body is a problem.
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }
}

#[derive(Clone)]
pub struct HttpClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// `base_url` like `http://127.0.0.1:3000` (no trailing slash needed).
    pub fn new(base_url: &str) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { base: base_url.trim_end_matches('/').to_owned(), client, timeout: Duration::from_secs(30) }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one request; `headers` are extra (name, value) pairs. Panics
    /// on transport errors and timeouts: the scenario cannot go on.
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<&Value>) -> Answer {
        self.try_send(method.clone(), path, token, headers, body).await.unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// Like [`Self::send`], but a transport error or a timeout is an `Err`
    /// (a client under faults retries those).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut request = Request::builder().method(method.clone()).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(body).expect("JSON"))
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).expect("a valid request");
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| error.to_string())?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.into_body().collect().await.map_err(|error| format!("body: {error}"))?.to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Ok(Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), text })
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// The same client with another time limit per request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::GET, path, token, &[], None).await
    }

    /// A GET with extra (name, value) headers, such as `accept`.
    pub async fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, token, headers, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, idempotency_key: Option<&str>, body: &Value) -> Answer {
        let headers: Vec<(&str, &str)> = idempotency_key.map(|key| ("idempotency-key", key)).into_iter().collect();
        self.send(Method::POST, path, token, &headers, Some(body)).await
    }
}
