//! Command API throughput and latency, through the real router (API Gateway
//! v2 events converted by lambda_http, as in Lambda).
//!
//!     cargo run --release -p command-api --example command_bench -- [memory|postgres] [requests] [concurrency]
//!
//! Each request is a deposit with its own Idempotency-Key on one of 64
//! accounts, so requests contend a little, as real traffic does. Against
//! PostgreSQL it uses LEDGERLINE_TEST_DATABASE_URL (migrated first).
//! Results and the machine they ran on go in docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use command_api::{AppState, CommandSettings, router};
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{EventStore, InMemoryEventStore, PostgresEventStore, StoreSettings};
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

fn event(method: &str, path: &str, body: &serde_json::Value, key: &str) -> String {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "idempotency-key": key},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": key, "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"sub": "bench", "scope": "openid"}, "scopes": null}}
        },
        "body": body.to_string(), "isBase64Encoded": false
    })
    .to_string()
}

async fn send(app: &axum::Router, method: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let request = lambda_http::request::from_str(&event(method, path, &body, &Uuid::new_v4().to_string())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map(String::as_str).unwrap_or("memory");
    let requests: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5_000);
    let concurrency: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(16);

    let store: Arc<dyn EventStore> = match backend {
        "postgres" => {
            let url = std::env::var("LEDGERLINE_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test".into());
            ledgerline_shared::migrate::run(&url).await.unwrap();
            let pool = ledgerline_shared::db::pool(&DatabaseSettings {
                url,
                pool_size: concurrency.max(2),
                connect_timeout: Duration::from_secs(5),
                ca_file: None,
            })
            .unwrap();
            Arc::new(PostgresEventStore::new(pool, StoreSettings::default()))
        }
        _ => Arc::new(InMemoryEventStore::new(StoreSettings::default())),
    };
    let app = router(AppState::with_settings(AccountRepository::new(store, 50), CommandSettings::default()));

    let mut accounts = Vec::new();
    for _ in 0..64 {
        let (status, body) = send(&app, "POST", "/accounts", json!({"currency": "EUR"})).await;
        assert_eq!(status, 201);
        accounts.push(body["account_id"].as_str().unwrap().to_owned());
    }

    let accounts = Arc::new(accounts);
    let started = Instant::now();
    let per_worker = requests / concurrency;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (app, accounts) = (app.clone(), accounts.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_worker);
                let mut conflicts = 0;
                for i in 0..per_worker {
                    let account = &accounts[(w * 7 + i) % accounts.len()];
                    let t = Instant::now();
                    let (status, _) = send(&app, "POST", &format!("/accounts/{account}/deposits"), json!({"amount": 1})).await;
                    latencies.push(t.elapsed());
                    match status {
                        200 => {}
                        409 => conflicts += 1,
                        other => panic!("unexpected status {other}"),
                    }
                }
                (latencies, conflicts)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut conflicts = 0;
    for worker in workers {
        let (l, c) = worker.await.unwrap();
        latencies.extend(l);
        conflicts += c;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{backend}: {} deposits, concurrency {concurrency}: {:.0} req/s; latency p50 {:?} p99 {:?} max {:?}; 409 after retries: {conflicts}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().unwrap()
    );
}
