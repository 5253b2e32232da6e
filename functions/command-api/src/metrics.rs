//! The command API's request metrics, through the one writer
//! (`ledgerline_shared::metrics`: namespace `Ledgerline`, dimension
//! `Function=command-api`): one line per request with `Latency` (ms),
//! `Requests`, `Refused` (a 4xx answer), `Conflicts` (409: a key taken, a
//! limit reached, an account that kept changing) and `Errors` (5xx), and the
//! route template and status as properties.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use ledgerline_shared::metrics::{MetricsWriter, Unit};
use serde_json::json;

/// The `Function` dimension's value.
pub const FUNCTION: &str = "command-api";

/// `router` with one metrics line written per request through `writer`.
pub fn with_metrics(router: Router, writer: MetricsWriter) -> Router {
    router.layer(middleware::from_fn_with_state(writer, record))
}

async fn record(State(writer): State<MetricsWriter>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    writer.emit(
        &[],
        &[
            ("Latency", Unit::Milliseconds, started.elapsed().as_secs_f64() * 1000.0),
            ("Requests", Unit::Count, 1.0),
            ("Refused", Unit::Count, flag(status.is_client_error())),
            ("Conflicts", Unit::Count, flag(status.as_u16() == 409)),
            ("Errors", Unit::Count, flag(status.is_server_error())),
        ],
        &[("Route", json!(route)), ("Status", json!(status.as_u16()))],
    );
    response
}
