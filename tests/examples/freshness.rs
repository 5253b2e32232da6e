//! How fresh the read side is: from a deposit's answer (its events are
//! committed) to the first `GET /accounts/{id}?min_version=` that answers
//! 200 with that version, over HTTP through `ledgerline serve`.
//!
//!     scripts/services.sh
//!     cargo run --release -p ledgerline-tests --example freshness -- embedded [deposits]
//!     cargo run --release -p ledgerline-tests --example freshness -- full [deposits]
//!
//! `full` starts the whole local stack (the functions under cargo lambda
//! watch, a broker and Redis of its own, the machine's PostgreSQL and
//! DynamoDB emulator) like the chaos test; the first run compiles the
//! functions. Four clients each deposit into an account of their own, one
//! deposit at a time, and poll every 5 ms. Results go in docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use ledgerline_tests::http::HttpClient;
use ledgerline_tests::process::{Served, ledgerline_binary};
use ledgerline_tests::scenario;
use ledgerline_tests::stack::{Own, Stack};
use serde_json::json;

const CLIENTS: usize = 4;

async fn client(http: HttpClient, token: String, deposits: usize) -> Vec<Duration> {
    let opened = http.post("/accounts", Some(&token), Some(&uuid::Uuid::new_v4().to_string()), &json!({"currency": "EUR"})).await;
    assert_eq!(opened.status.as_u16(), 201, "{opened:?}");
    let id = opened.body["account_id"].as_str().expect("an id").to_owned();
    let mut lags = Vec::with_capacity(deposits);
    for _ in 0..deposits {
        let key = uuid::Uuid::new_v4().to_string();
        let answer = http.post(&format!("/accounts/{id}/deposits"), Some(&token), Some(&key), &json!({"amount": 1})).await;
        assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
        let committed = Instant::now();
        let version = answer.body["version"].as_u64().expect("a version");
        let deadline = committed + Duration::from_secs(60);
        loop {
            let read = http.get(&format!("/accounts/{id}?min_version={version}"), Some(&token)).await;
            if read.status.as_u16() == 200 {
                lags.push(committed.elapsed());
                break;
            }
            assert!(read.status.as_u16() == 409, "{read:?}");
            assert!(Instant::now() < deadline, "version {version} of {id} never became readable");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    lags
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "embedded".into());
    let deposits: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(100);
    let binary = ledgerline_binary();
    // Keep whichever server runs alive until the end.
    let (_embedded, _stack, base_url, secret) = match mode.as_str() {
        "full" => {
            let stack = Stack::start(Own::default(), &[]).await;
            let (url, secret) = (stack.served.base_url.clone(), stack.secret.clone());
            (None, Some(stack), url, secret)
        }
        _ => {
            let secret = uuid::Uuid::new_v4().to_string();
            let env = [("LEDGERLINE_HTTP_ADDR", "127.0.0.1:0"), ("LEDGERLINE_JWT_SECRET", secret.as_str()), ("RUST_LOG", "warn")];
            let served = Served::start(&binary, &["serve", "--embedded"], &env, Duration::from_secs(30));
            let url = served.base_url.clone();
            (Some(served), None, url, secret)
        }
    };
    let token = scenario::binary_minter(&binary, &secret).mint("freshness", false);
    let http = HttpClient::new(&base_url).with_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS).map(|_| tokio::spawn(client(http.clone(), token.clone(), deposits))).collect();
    let mut lags = Vec::new();
    for client in clients {
        lags.extend(client.await.expect("a client"));
    }
    lags.sort();
    let pct = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];
    println!(
        "{mode}: {} deposits by {CLIENTS} clients in {:.1?}; deposit answered -> readable with ?min_version=: p50 {:.1?} p99 {:.1?} max {:.1?}",
        lags.len(),
        started.elapsed(),
        pct(0.5),
        pct(0.99),
        lags.last().unwrap()
    );
}
