//! A client of the Lambda Invoke API (`POST /2015-03-31/functions/<name>/invocations`),
//! as `cargo lambda watch` serves it on 127.0.0.1:9000, and the gateway
//! [`Backend`] built on it.
//!
//! Everything the local stack does to a function goes through here: HTTP
//! requests from the gateway, the outbox publisher's schedule and the Kafka
//! event source mapping's batches. So the functions run exactly the code and
//! event parsing they run in AWS.
//!
//! hyper's client is used because hyper is already in the build (the AWS SDK
//! and the Lambda runtime use it): plain HTTP/1 to 127.0.0.1, no TLS, no
//! extra crates.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::gateway::{Backend, Function};

/// Invokes functions through a Lambda Invoke API endpoint.
#[derive(Clone)]
pub struct LambdaInvoker {
    endpoint: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl LambdaInvoker {
    /// `endpoint` is like `http://127.0.0.1:9000`. `timeout` bounds one
    /// invocation; under `cargo lambda watch` the first invocation of a
    /// function also compiles it, which takes minutes on a small machine.
    pub fn new(endpoint: impl Into<String>, timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self { endpoint: endpoint.into().trim_end_matches('/').to_owned(), client, timeout }
    }

    /// Sends `payload` to `function` and returns what the function returned.
    ///
    /// A function error is an `Err`, however the endpoint reports it: a
    /// non-2xx status, the `X-Amz-Function-Error` header AWS sets, or a body
    /// that is only the runtime's `{"errorType", "errorMessage"}` document.
    pub async fn invoke(&self, function: &str, payload: &Value) -> anyhow::Result<Value> {
        let uri = format!("{}/2015-03-31/functions/{function}/invocations", self.endpoint);
        let request = hyper::Request::post(&uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(payload)?)))?;
        let exchange = async {
            let response = self.client.request(request).await.with_context(|| format!("POST {uri}"))?;
            let status = response.status();
            let function_error = response.headers().get("x-amz-function-error").map(|v| v.to_str().unwrap_or("error").to_owned());
            let body = response.into_body().collect().await.with_context(|| format!("reading the answer of {uri}"))?.to_bytes();
            anyhow::Ok((status, function_error, body))
        };
        let (status, function_error, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| anyhow!("{function} did not answer within {:?}", self.timeout))??;
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            bail!("{function} failed (HTTP {status}): {}", truncate(&text));
        }
        if let Some(kind) = function_error {
            bail!("{function} failed ({kind}): {}", truncate(&text));
        }
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).with_context(|| format!("{function} answered non-JSON: {}", truncate(&text)))?
        };
        if is_error_document(&value) {
            bail!("{function} failed: {}", truncate(&text));
        }
        Ok(value)
    }
}

/// The runtime's error document: `{"errorType": ..., "errorMessage": ...}`
/// and nothing else (a real answer never has exactly these two fields).
fn is_error_document(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.len() == 2 && o.contains_key("errorType") && o.contains_key("errorMessage"))
}

fn truncate(text: &str) -> String {
    const MAX: usize = 2_000;
    if text.len() <= MAX { text.to_owned() } else { format!("{}…", &text[..text.floor_char_boundary(MAX)]) }
}

/// The gateway's backend for `ledgerline serve`: each API Gateway v2 event
/// is posted to the real function under `cargo lambda watch`.
pub struct InvokeBackend {
    invoker: LambdaInvoker,
}

impl InvokeBackend {
    pub fn new(invoker: LambdaInvoker) -> Self {
        Self { invoker }
    }
}

#[async_trait]
impl Backend for InvokeBackend {
    async fn invoke(&self, function: Function, event: ApiGatewayV2httpRequest) -> anyhow::Result<ApiGatewayV2httpResponse> {
        let answer = self.invoker.invoke(function.name(), &serde_json::to_value(&event)?).await?;
        serde_json::from_value(answer).with_context(|| format!("{} did not answer with an API Gateway v2 response", function.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_runtime_error_document_counts_as_an_error() {
        assert!(is_error_document(&serde_json::json!({"errorType": "X", "errorMessage": "boom"})));
        assert!(!is_error_document(&serde_json::json!({"errorType": "X", "errorMessage": "boom", "statusCode": 200})));
        assert!(!is_error_document(&serde_json::json!({"batchItemFailures": []})));
    }
}
