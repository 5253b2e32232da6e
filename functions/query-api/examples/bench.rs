//! Latency and throughput of `GET /accounts/{id}` through the router, for
//! the three paths: L1 hit, L2 (Redis) hit, DynamoDB read.
//!
//! Needs the DynamoDB emulator and Redis (scripts/services.sh):
//!
//! ```sh
//! cargo run --release -p query-api --example bench -- [requests per path, default 2000]
//! ```
//!
//! Each request is an API Gateway v2 event parsed by lambda_http, as in
//! Lambda. Sequential requests give the latency; 16 concurrent clients give
//! the throughput one container could sustain in multi-concurrency mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use chrono::Utc;
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::domain::AccountEvent;
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, create_tables, local_client};
use ledgerline_shared::read_model::tables::TableNames;
use ledgerline_shared::read_model::{ReadModelStore, change_for};
use query_api::metrics::{Metrics, NullSink};
use query_api::{AppState, QuerySettings, router};
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

fn event(account: Uuid) -> String {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": format!("/accounts/{account}"), "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": "GET", "path": format!("/accounts/{account}"), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "bench", "routeKey": "$default", "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"sub": "bench-owner", "scope": "openid"}, "scopes": null}}
        },
        "isBase64Encoded": false
    })
    .to_string()
}

async fn once(router: &Router, event: &str) -> Duration {
    let started = Instant::now();
    let request = lambda_http::request::from_str(event).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
    started.elapsed()
}

async fn measure(name: &str, router: Router, event: String, requests: usize, expected_layer: &str) {
    let request = lambda_http::request::from_str(&event).unwrap();
    let warm = router.clone().oneshot(request).await.unwrap();
    assert_eq!(warm.status(), 200);
    let check = router.clone().oneshot(lambda_http::request::from_str(&event).unwrap()).await.unwrap();
    assert_eq!(check.headers()[query_api::routes::CACHE_HEADER], expected_layer, "{name} is served by {expected_layer}");

    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        latencies.push(once(&router, &event).await);
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;

    let clients = 16;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (router, event) = (router.clone(), event.clone());
            tokio::spawn(async move {
                for _ in 0..requests / clients {
                    once(&router, &event).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let throughput = (requests / clients * clients) as f64 / started.elapsed().as_secs_f64();
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.0} |",
        mean.as_secs_f64() * 1e6,
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        throughput
    );
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let endpoint = std::env::var("LEDGERLINE_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let redis_url = std::env::var("LEDGERLINE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = local_client(&endpoint);
    let tables = TableNames::prefixed(&format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]));
    create_tables(&client, &tables).await.expect("the DynamoDB emulator is running (scripts/services.sh)");
    let store = Arc::new(DynamoReadModel::new(client, tables));
    let account = Uuid::new_v4();
    let opened = AccountEvent::Opened {
        account_id: account,
        owner_id: "bench-owner".into(),
        currency: "EUR".parse().unwrap(),
        overdraft_limit: 0,
        at: Utc::now(),
    };
    store.apply(&change_for(account, 1, &opened)).await.unwrap();
    let redis = || {
        let settings = CacheSettings { url: redis_url.clone(), ttl: Duration::from_secs(600), timeout: Duration::from_millis(100) };
        Arc::new(AccountCache::with_namespace(settings, &format!("bench-{}:", Uuid::new_v4().simple())).unwrap())
    };
    let metrics = || Metrics::new(Arc::new(NullSink));
    let event = event(account);

    println!("{requests} requests per path; latency in microseconds; throughput with 16 concurrent clients\n");
    println!("| path | mean µs | p50 µs | p99 µs | requests/s |");
    println!("| --- | --- | --- | --- | --- |");
    let l1 = AppState::new(
        store.clone(),
        Some(redis()),
        &QuerySettings { l1_ttl: Duration::from_secs(600), ..QuerySettings::default() },
        metrics(),
    );
    measure("L1 hit (in-process)", router(l1), event.clone(), requests, "l1").await;
    let l2 = AppState::new(store.clone(), Some(redis()), &QuerySettings { l1_capacity: 0, ..QuerySettings::default() }, metrics());
    measure("L2 hit (Redis)", router(l2), event.clone(), requests, "l2").await;
    let source = AppState::new(store.clone(), None, &QuerySettings { l1_capacity: 0, ..QuerySettings::default() }, metrics());
    measure("DynamoDB (emulator)", router(source), event, requests / 4, "dynamodb").await;
}
