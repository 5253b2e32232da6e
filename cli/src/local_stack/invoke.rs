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

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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
#[cfg(test)]
use serde_json::json;

use super::template::FunctionLimits;
use crate::gateway::{Backend, Function};

/// Invokes functions through a Lambda Invoke API endpoint.
#[derive(Clone)]
pub struct LambdaInvoker {
    endpoint: String,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Until a function has answered once (it may still be compiling).
    first_timeout: Duration,
    /// After that, each function's `Timeout` from template.yaml, as in AWS.
    limits: Option<Arc<FunctionLimits>>,
    answered: Arc<Mutex<HashSet<String>>>,
}

impl LambdaInvoker {
    /// `endpoint` is like `http://127.0.0.1:9000`. `timeout` bounds every
    /// invocation; under `cargo lambda watch` the first invocation of a
    /// function also compiles it, which takes minutes on a small machine.
    pub fn new(endpoint: impl Into<String>, timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            client,
            first_timeout: timeout,
            limits: None,
            answered: Arc::default(),
        }
    }

    /// Bounds every invocation after a function's first answer by its
    /// `Timeout` in `limits`: a function process that died mid-invocation
    /// (or hangs) then fails the invocation in that time, as in AWS,
    /// instead of holding the schedule or the event source for the long
    /// first-compilation allowance.
    pub fn with_limits(mut self, limits: FunctionLimits) -> Self {
        self.limits = Some(Arc::new(limits));
        self
    }

    fn timeout_for(&self, function: &str) -> Duration {
        match &self.limits {
            Some(limits) if self.answered.lock().unwrap_or_else(|p| p.into_inner()).contains(function) => {
                // A little slack for the Invoke API's own hop.
                limits.timeout(function) + Duration::from_secs(1)
            }
            _ => self.first_timeout,
        }
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
        let timeout = self.timeout_for(function);
        let (status, function_error, body) =
            tokio::time::timeout(timeout, exchange).await.map_err(|_| anyhow!("{function} did not answer within {timeout:?}"))??;
        self.answered.lock().unwrap_or_else(|p| p.into_inner()).insert(function.to_owned());
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
        let mut answer = self.invoker.invoke(function.name(), &serde_json::to_value(&event)?).await?;
        // API Gateway accepts an answer without `cookies`; aws_lambda_events'
        // type insists on the field.
        if let Some(fields) = answer.as_object_mut() {
            fields.entry("cookies").or_insert_with(|| Value::Array(Vec::new()));
        }
        serde_json::from_value(answer).with_context(|| format!("{} did not answer with an API Gateway v2 response", function.name()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use super::*;

    /// A fake Invoke API: `answer` gets the function name and event.
    pub(crate) async fn fake_invoke_api<F>(answer: F) -> String
    where
        F: Fn(String, Value) -> (StatusCode, HeaderMap, String) + Clone + Send + Sync + 'static,
    {
        let app = axum::Router::new().route(
            "/2015-03-31/functions/{function}/invocations",
            post(move |axum::extract::Path(function): axum::extract::Path<String>, axum::Json(event): axum::Json<Value>| {
                let answer = answer.clone();
                async move { answer(function, event) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn the_backend_posts_the_event_and_reads_the_functions_answer() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let endpoint = fake_invoke_api(move |function, event| {
            counter.fetch_add(1, Ordering::SeqCst);
            let path = event["rawPath"].as_str().unwrap_or_default().to_owned();
            let mut headers = HeaderMap::new();
            match path.as_str() {
                "/ok" => {
                    let body = json!({"statusCode": 201, "headers": {"x-function": function}, "body": "{}", "isBase64Encoded": false});
                    (StatusCode::OK, headers, body.to_string())
                }
                "/unhandled" => {
                    headers.insert("x-amz-function-error", "Unhandled".parse().unwrap());
                    (StatusCode::OK, headers, json!({"errorType": "Panic", "errorMessage": "boom"}).to_string())
                }
                "/document" => (StatusCode::OK, headers, json!({"errorType": "Panic", "errorMessage": "boom"}).to_string()),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, headers, "no".into()),
            }
        })
        .await;
        let backend = InvokeBackend::new(LambdaInvoker::new(endpoint, Duration::from_secs(5)));
        let event = |path: &str| {
            let mut event = ApiGatewayV2httpRequest::default();
            event.raw_path = Some(path.into());
            event
        };

        let answer = backend.invoke(Function::QueryApi, event("/ok")).await.unwrap();
        assert_eq!(answer.status_code, 201);
        assert_eq!(answer.headers.get("x-function").unwrap(), "query-api");
        for path in ["/unhandled", "/document", "/500"] {
            let error = backend.invoke(Function::CommandApi, event(path)).await.unwrap_err();
            assert!(format!("{error:#}").contains("command-api failed"), "{path}: {error:#}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_function_slower_than_the_timeout_is_an_error() {
        let endpoint = fake_invoke_api(|_, _| {
            std::thread::sleep(Duration::from_millis(500));
            (StatusCode::OK, HeaderMap::new(), "{}".into())
        })
        .await;
        let error = LambdaInvoker::new(endpoint, Duration::from_millis(100)).invoke("projector", &json!({})).await.unwrap_err();
        assert!(error.to_string().contains("did not answer within"), "{error}");
    }

    #[tokio::test]
    async fn after_its_first_answer_a_function_is_bounded_by_its_template_timeout() {
        // The first answer is slow (compiling), later ones hang like a dead
        // process. (An async pause: a blocking one could hold up the client.)
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().route(
            "/2015-03-31/functions/{function}/invocations",
            post(move || {
                let counter = counter.clone();
                async move {
                    let pause = if counter.fetch_add(1, Ordering::SeqCst) == 0 { 300 } else { 60_000 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let template = "Resources:\n  F:\n    Metadata:\n      BuildProperties:\n        Binary: slow\n    Properties:\n      Timeout: 1\n";
        let invoker = LambdaInvoker::new(endpoint, Duration::from_secs(10)).with_limits(FunctionLimits::from_template(template));
        invoker.invoke("slow", &json!({})).await.expect("the first invocation may take the long allowance");
        let started = tokio::time::Instant::now();
        let error = invoker.invoke("slow", &json!({})).await.unwrap_err();
        assert!(error.to_string().contains("did not answer within 2s"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(9), "failed at the template's Timeout, not the long allowance");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_the_runtime_error_document_counts_as_an_error() {
        assert!(is_error_document(&serde_json::json!({"errorType": "X", "errorMessage": "boom"})));
        assert!(!is_error_document(&serde_json::json!({"errorType": "X", "errorMessage": "boom", "statusCode": 200})));
        assert!(!is_error_document(&serde_json::json!({"batchItemFailures": []})));
    }
}
