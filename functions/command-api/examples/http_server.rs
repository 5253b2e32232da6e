//! The command API's router on a plain HTTP socket, PostgreSQL behind it:
//! the same code path as in Lambda minus API Gateway, so anyone can load it
//! with wrk, oha or similar and compare it with other servers.
//!
//!     scripts/services.sh
//!     cargo run --release -p command-api --example http_server
//!     # ledgerline_http_server: listening on 127.0.0.1:3000
//!
//! **A benchmark harness, not a server to deploy**: there is no token check.
//! The caller is whoever the `x-bench-caller` header names (`bench` when
//! absent), put where API Gateway's JWT authorizer puts verified claims. So
//! it only listens on a loopback address (`LEDGERLINE_HTTP_ADDR`, default
//! `127.0.0.1:3000`) and refuses any other. The database is `DATABASE_URL`
//! (default: the tests' `ledgerline_test`), migrated at start.
//!
//! A wrk script for deposits, each with its own Idempotency-Key, on an
//! account opened first with `curl -s -XPOST localhost:3000/accounts -H
//! 'content-type: application/json' -d '{"currency":"EUR"}'`:
//!
//! ```lua
//! -- deposit.lua: wrk -t2 -c16 -d10s -s deposit.lua http://127.0.0.1:3000
//! local id = os.getenv("ACCOUNT")
//! local n = 0
//! request = function()
//!   n = n + 1
//!   local headers = {["content-type"] = "application/json",
//!                    ["idempotency-key"] = string.format("%d-%d-%d", os.time(), math.random(1e9), n)}
//!   return wrk.format("POST", "/accounts/" .. id .. "/deposits", headers, '{"amount":1}')
//! end
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use command_api::{AppState, CommandSettings, router};
use lambda_http::request::RequestContext;
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use serde_json::json;

/// Puts the caller where API Gateway's authorizer would.
async fn bench_identity(mut request: Request, next: Next) -> Response {
    let caller = request.headers().get("x-bench-caller").and_then(|v| v.to_str().ok()).unwrap_or("bench").to_owned();
    let context = json!({
        "accountId": "000000000000", "apiId": "bench", "domainName": "localhost", "domainPrefix": "localhost",
        "http": {"method": request.method().as_str(), "path": request.uri().path(), "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": "bench"},
        "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0,
        "authorizer": {"jwt": {"claims": {"sub": caller}, "scopes": null}}
    });
    let context = serde_json::from_value(context).expect("a valid API Gateway v2 request context");
    request.extensions_mut().insert(RequestContext::ApiGatewayV2(context));
    next.run(request).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ledgerline_shared::telemetry::init();
    let address: SocketAddr = std::env::var("LEDGERLINE_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into()).parse()?;
    anyhow::ensure!(address.ip().is_loopback(), "{address} is not a loopback address: this harness has no authentication");
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test".into());
    ledgerline_shared::migrate::run(&url).await?;
    let pool =
        ledgerline_shared::db::pool(&DatabaseSettings { url, pool_size: 16, connect_timeout: Duration::from_secs(5), ca_file: None })?;
    let store = Arc::new(PostgresEventStore::new(pool, StoreSettings::default()));
    let app = router(AppState::with_settings(AccountRepository::new(store, 50), CommandSettings::default()))
        .layer(middleware::from_fn(bench_identity));
    let listener = tokio::net::TcpListener::bind(address).await?;
    println!("ledgerline_http_server: listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
