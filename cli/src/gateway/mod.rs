//! The local gateway: what API Gateway's HTTP API and its JWT authorizer do
//! in AWS, for both `serve` modes.
//!
//! It verifies `Authorization: Bearer` HS256 tokens ([`auth`]), turns each
//! request into the API Gateway HTTP API (payload v2) event AWS would send,
//! with the token's claims in `requestContext.authorizer.jwt.claims`
//! ([`event`]), and hands it to a [`Backend`]: the routers in this process
//! (`serve --embedded`) or the real functions under `cargo lambda watch`
//! (`serve`). POST routes go to the command API, GET routes to the query
//! API ([`routes`]); the answer goes back as an HTTP response ([`response`]).
//!
//! As in API Gateway, the route is matched first (no route: 404), then the
//! token is checked (401), then the function is invoked. Refusals made here
//! are problem+json with the functions' codes.

pub mod auth;
pub mod event;
pub mod response;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use axum::response::{IntoResponse, Response};
use ledgerline_shared::http::problem::ApiError;

use self::auth::TokenVerifier;

/// The variable naming the address the gateway listens on.
pub const ADDR_VAR: &str = "LEDGERLINE_HTTP_ADDR";
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// API Gateway's payload limit (10 MB); the functions refuse far less.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Which function serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    CommandApi,
    QueryApi,
}

impl Function {
    /// The function's package (and cargo-lambda) name.
    pub fn name(self) -> &'static str {
        match self {
            Function::CommandApi => "command-api",
            Function::QueryApi => "query-api",
        }
    }
}

/// Delivers an API Gateway v2 event to a function and returns its answer.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn invoke(&self, function: Function, event: ApiGatewayV2httpRequest) -> anyhow::Result<ApiGatewayV2httpResponse>;
}

struct Gateway {
    verifier: TokenVerifier,
    backend: Arc<dyn Backend>,
}

/// The gateway as an axum router (serve it with connect info, see [`serve`]).
pub fn router(verifier: TokenVerifier, backend: Arc<dyn Backend>) -> Router {
    Router::new().fallback(handle).with_state(Arc::new(Gateway { verifier, backend }))
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    verifier: TokenVerifier,
    backend: Arc<dyn Backend>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(verifier, backend).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// `LEDGERLINE_HTTP_ADDR`, or 127.0.0.1:3000.
pub fn address_from_env() -> String {
    std::env::var(ADDR_VAR).ok().filter(|a| !a.trim().is_empty()).unwrap_or_else(|| DEFAULT_ADDR.into())
}

async fn handle(State(gateway): State<Arc<Gateway>>, ConnectInfo(source): ConnectInfo<SocketAddr>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(route) = routes::find(parts.method.as_str(), parts.uri.path()) else {
        // A path some route serves, with another method: 405 and `Allow`.
        let allowed = routes::allowed_methods(parts.uri.path());
        if !allowed.is_empty() {
            let detail = format!("{} is not allowed on {}; allowed: {}", parts.method, parts.uri.path(), allowed.join(", "));
            let mut response = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail).into_response();
            if let Ok(value) = axum::http::HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(axum::http::header::ALLOW, value);
            }
            return response;
        }
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {} {}", parts.method, parts.uri.path()))
            .into_response();
    };
    let header = parts.headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let claims = match gateway.verifier.verify_header(header) {
        Ok(claims) => claims,
        Err(error) => return unauthorized(&error),
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body exceeds 10 MB").into_response(),
    };
    let event = match event::build(&parts, &body, &route, &claims, source, chrono::Utc::now()) {
        Ok(event) => event,
        Err(error) => return bad_gateway(format!("cannot build the event: {error}")),
    };
    let answer = match gateway.backend.invoke(route.function, event).await {
        Ok(answer) => answer,
        Err(error) => return bad_gateway(format!("{} failed: {error:#}", route.function.name())),
    };
    response::into_http(answer).unwrap_or_else(|error| bad_gateway(format!("{} answered badly: {error}", route.function.name())))
}

/// 401 problem+json with RFC 6750's challenge, as API Gateway's JWT
/// authorizer sends it: `invalid_token` when a token was there but refused.
fn unauthorized(error: &auth::AuthError) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string()).into_response();
    let challenge = match error {
        auth::AuthError::MissingHeader | auth::AuthError::NotBearer => HeaderValue::from_static("Bearer"),
        _ => HeaderValue::from_static("Bearer error=\"invalid_token\""),
    };
    response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    response
}

/// The integration failed. API Gateway answers 500/502 with a bare
/// message; locally the reason is more useful, so it is in the detail too.
fn bad_gateway(detail: String) -> Response {
    tracing::error!(%detail, "the function could not answer");
    ApiError::new(StatusCode::BAD_GATEWAY, "bad_gateway", detail).into_response()
}

#[cfg(test)]
mod tests;
