//! Correlation ids: one id ties a request's logs and the events it caused.

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use uuid::Uuid;

/// Ties logs and event metadata to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

impl CorrelationId {
    pub const HEADER: &'static str = "x-correlation-id";

    /// The caller's `x-correlation-id` when it is sane, else API Gateway's
    /// request id, else a new one.
    pub fn from_parts(parts: &Parts) -> Self {
        let from_header = parts
            .headers
            .get(Self::HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)));
        if let Some(id) = from_header {
            return Self(id.to_owned());
        }
        let from_gateway = parts.extensions.get::<RequestContext>().and_then(|context| match context {
            RequestContext::ApiGatewayV2(v2) => v2.request_id.clone().filter(|id| !id.is_empty()),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        Self(from_gateway.unwrap_or_else(|| Uuid::new_v4().to_string()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// Middleware: gives each request a correlation id (echoed in the
/// response), runs it inside a log span carrying the id, and logs how it ended.
pub async fn correlate(mut request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let correlation_id = CorrelationId::from_parts(&parts);
    parts.extensions.insert(correlation_id.clone());
    request = Request::from_parts(parts, body);
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), correlation_id = %correlation_id.0);
    let started = std::time::Instant::now();
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), latency_ms = started.elapsed().as_millis() as u64, "request finished")
    });
    if let Ok(value) = HeaderValue::from_str(&correlation_id.0) {
        response.headers_mut().insert(CorrelationId::HEADER, value);
    }
    response
}
