//! The router as a Lambda service that may run several invocations at once.
//!
//! `lambda_http::run_concurrent` (Lambda's multi-concurrency mode, driven by
//! `AWS_LAMBDA_MAX_CONCURRENCY`; sequential when it is unset) needs a `Sync`
//! response, and axum's streaming body is not. The answers here are small
//! JSON documents, so the body is buffered first, with lambda_http's own
//! conversion (text for JSON and problem+json, binary otherwise).

use std::convert::Infallible;

use axum::Router;
use lambda_http::{Body, IntoResponse, Request, Response, Service};
use tower::ServiceExt;

/// `router` with its responses buffered into lambda_http bodies.
pub fn service(
    router: Router,
) -> impl Service<Request, Response = Response<Body>, Error = Infallible, Future: Send + 'static> + Clone + Send + 'static {
    ServiceExt::<Request>::map_future(router, |answer| async move {
        let response: axum::response::Response = answer.await?;
        Ok(response.into_response().await)
    })
}
