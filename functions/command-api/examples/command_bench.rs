//! The command path side by side with the database's raw commit rate, in
//! one run (issue 11; results in docs/BENCHMARKS.md).
//!
//!     scripts/services.sh
//!     cargo run --release -p command-api --example command_bench -- [requests]
//!
//! Against a fresh database of its own on the server of
//! LEDGERLINE_TEST_DATABASE_URL (created, migrated, dropped at the end),
//! with one pool of 16 connections for everything:
//!
//! 1. **raw**: one `INSERT` of a small row per transaction (autocommit,
//!    prepared), the cheapest durable write there is: the baseline.
//! 2. **deposits**: the command API's router (API Gateway v2 events through
//!    lambda_http, as in Lambda), each a deposit with its own
//!    Idempotency-Key on one of 64 accounts.
//!
//! both at 16 and at 1 request at a time, printing the ratio of 2 to 1.
//! Then **one hot account**: 32 writers at once on ONE account, as deposits
//! and as transfers from 32 other accounts into it, with the accounts locked
//! after a conflict and then first for 10 s (the default) and on every
//! attempt, counting 409s.
//! Finally the in-memory store (the embedded mode) for reference.
//!
//! The machine is shared and noisy: compare the ratios, not the rates, and
//! run it twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use command_api::{AppState, CommandSettings, router};
use deadpool_postgres::Pool;
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::{DatabaseSettings, WriteSettings};
use ledgerline_shared::event_store::{EventStore, InMemoryEventStore, PostgresEventStore, StoreSettings};
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

const POOL_SIZE: usize = 16;
const HOT_WRITERS: usize = 32;

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

/// What one measured run saw.
struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
    conflicts: usize,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>7.0}/s  p50 {:>9.2?}  p99 {:>9.2?}  409s {}", self.rate, self.p50, self.p99, self.conflicts)
    }
}

/// Runs `requests` calls of `op` (given the worker and its call number) on
/// `concurrency` workers; `op` answers whether it met a 409.
async fn measure<F, Fut>(requests: usize, concurrency: usize, op: F) -> Run
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let per_worker = (requests / concurrency).max(1);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_worker);
                let mut conflicts = 0;
                for i in 0..per_worker {
                    let t = Instant::now();
                    conflicts += usize::from(op(w, i).await);
                    latencies.push(t.elapsed());
                }
                (latencies, conflicts)
            })
        })
        .collect();
    let (mut latencies, mut conflicts) = (Vec::new(), 0);
    for worker in workers {
        let (l, c) = worker.await.unwrap();
        latencies.extend(l);
        conflicts += c;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Run { rate: latencies.len() as f64 / elapsed.as_secs_f64(), p50: pct(0.50), p99: pct(0.99), conflicts }
}

/// The baseline: one prepared INSERT per transaction, a pool checkout each.
async fn raw_inserts(pool: &Pool, requests: usize, concurrency: usize) -> Run {
    let client = pool.get().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_raw_inserts ( \
               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id uuid NOT NULL, \
               amount bigint NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now()); \
             TRUNCATE bench_raw_inserts",
        )
        .await
        .unwrap();
    drop(client);
    let pool = pool.clone();
    measure(requests, concurrency, move |w, _| {
        let pool = pool.clone();
        async move {
            let client = pool.get().await.unwrap();
            let insert = client.prepare_cached("INSERT INTO bench_raw_inserts (account_id, amount) VALUES ($1, $2)").await.unwrap();
            let (account, amount) = (Uuid::from_u128(w as u128), 1i64);
            client.execute(&insert, &[&account, &amount]).await.unwrap();
            false
        }
    })
    .await
}

async fn open_accounts(app: &axum::Router, count: usize) -> Arc<Vec<String>> {
    let mut accounts = Vec::new();
    for _ in 0..count {
        let (status, body) = send(app, "POST", "/accounts", json!({"currency": "EUR"})).await;
        assert_eq!(status, 201, "{body}");
        accounts.push(body["account_id"].as_str().unwrap().to_owned());
    }
    Arc::new(accounts)
}

/// Deposits spread over 64 accounts.
async fn deposits(app: &axum::Router, requests: usize, concurrency: usize) -> Run {
    let accounts = open_accounts(app, 64).await;
    let app = app.clone();
    measure(requests, concurrency, move |w, i| {
        let (app, accounts) = (app.clone(), accounts.clone());
        async move {
            let account = &accounts[(w * 7 + i) % accounts.len()];
            let (status, body) = send(&app, "POST", &format!("/accounts/{account}/deposits"), json!({"amount": 1})).await;
            assert!(status == 200 || status == 409, "{status} {body}");
            status == 409
        }
    })
    .await
}

/// 32 writers on one account: deposits into it, or transfers into it from
/// each writer's own account.
async fn hot_account(app: &axum::Router, requests: usize, transfers: bool) -> Run {
    let hot = open_accounts(app, 1).await[0].clone();
    let sources = open_accounts(app, HOT_WRITERS).await;
    for source in sources.iter() {
        let (status, _) = send(app, "POST", &format!("/accounts/{source}/deposits"), json!({"amount": 1_000_000_000})).await;
        assert_eq!(status, 200);
    }
    let app = app.clone();
    measure(requests, HOT_WRITERS, move |w, _| {
        let (app, hot, sources) = (app.clone(), hot.clone(), sources.clone());
        async move {
            let (status, body) = if transfers {
                send(&app, "POST", "/transfers", json!({"from_account_id": sources[w], "to_account_id": hot, "amount": 1})).await
            } else {
                send(&app, "POST", &format!("/accounts/{hot}/deposits"), json!({"amount": 1})).await
            };
            assert!(status == 200 || status == 201 || status == 409, "{status} {body}");
            status == 409
        }
    })
    .await
}

/// The command API's router over `store`, snapshotting as the function does
/// (`LEDGERLINE_SNAPSHOT_EVERY`, default 50).
fn app_over(store: Arc<dyn EventStore>, lock_first: bool) -> axum::Router {
    let snapshot_every = WriteSettings::from_env().expect("the write settings").snapshot_every;
    let repository = AccountRepository::new(store, snapshot_every);
    router(AppState::with_settings(repository, CommandSettings { lock_first, ..CommandSettings::default() }))
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(4_000);
    // A database of its own, created and migrated for this run: a
    // long-lived one collects dead rows, and where autovacuum is off (this
    // project's CI machine) they would slow every later run.
    let database = ledgerline_tests::services::FreshDatabase::create("commandbench").await;
    ledgerline_shared::migrate::run(&database.url).await.unwrap();
    let url = database.url.clone();
    let pool = ledgerline_shared::db::pool(&DatabaseSettings {
        url,
        pool_size: POOL_SIZE,
        connect_timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap();
    let store: Arc<dyn EventStore> = Arc::new(PostgresEventStore::new(pool.clone(), StoreSettings::default()));
    let (app, locking_app) = (app_over(store.clone(), false), app_over(store.clone(), true));

    println!("PostgreSQL, pool of {POOL_SIZE}, {requests} requests per line");
    for concurrency in [16, 1] {
        let requests = if concurrency == 1 { requests / 4 } else { requests };
        let raw = raw_inserts(&pool, requests, concurrency).await;
        let commands = deposits(&app, requests, concurrency).await;
        let locking = deposits(&locking_app, requests, concurrency).await;
        println!("concurrency {concurrency:>2}  raw INSERT      {raw}");
        println!("concurrency {concurrency:>2}  deposit command {commands}  = {:.2}x raw", commands.rate / raw.rate);
        println!("concurrency {concurrency:>2}  ... lock first  {locking}  = {:.2}x raw", locking.rate / raw.rate);
    }
    for (lock_first, shape) in [(false, "the default"), (true, "lock every attempt")] {
        let app = app_over(store.clone(), lock_first);
        let deposits = hot_account(&app, requests, false).await;
        let transfers = hot_account(&app, requests, true).await;
        println!("hot account, {HOT_WRITERS} writers, {shape:<21}  deposits  {deposits}");
        println!("hot account, {HOT_WRITERS} writers, {shape:<21}  transfers {transfers}");
    }
    let memory = app_over(Arc::new(InMemoryEventStore::new(StoreSettings::default())), false);
    println!("in memory, concurrency 16  deposit command {}", deposits(&memory, requests * 4, 16).await);
    drop((app, locking_app, store, pool));
    database.drop_database().await;
}
