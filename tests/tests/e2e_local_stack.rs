//! The full local stack end to end: the real `ledgerline serve` binary, the
//! four functions under `cargo lambda watch`, PostgreSQL (a database of the
//! test's own), the DynamoDB emulator (tables of the test's own), and a
//! Kafka broker (tansu, SQLite storage) and a Redis of the test's own on
//! free ports, so stopping them disturbs no other test.
//!
//! 1. The shared scenario (`ledgerline_tests::scenario`) over HTTP.
//! 2. The broker is stopped (its data kept) while money moves, then started
//!    again: every event reaches the read side, exactly once.
//! 3. The same with Redis.
//!
//! Exactly once is checked on what a client sees: the account at the final
//! version and balance, and its history holding versions 2..=N once each
//! (version 1 opens the account; it is not a movement).
//! Nothing may land in the projector's on-failure file.
//!
//! Needs `scripts/services.sh` (PostgreSQL, the DynamoDB emulator, tansu and
//! redis-server installed, cargo-lambda in .local/tools-venv). The first
//! invocation of each function compiles it under cargo lambda watch, which
//! can take minutes: deadlines here are generous.

use std::time::Duration;

use hyper::StatusCode;
use ledgerline_tests::http::HttpClient;
use ledgerline_tests::process::Served;
use ledgerline_tests::scenario;
use ledgerline_tests::stack::{Own, Stack, drop_database, history, wait_port};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

/// `GET /accounts/{id}?min_version=` until 200, within `limit`.
async fn read_at(http: &HttpClient, token: &str, id: &str, version: u64, limit: Duration) -> Value {
    let path = format!("/accounts/{id}?min_version={version}");
    let deadline = Instant::now() + limit;
    loop {
        let answer = http.get(&path, Some(token)).await;
        match answer.status {
            StatusCode::OK => return answer.body,
            StatusCode::CONFLICT | StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => panic!("GET {path}: not at version {version} within {limit:?}: {answer:?}"),
        }
    }
}

/// Deposits `count` times `amount` (one idempotency key each); returns the
/// account's version and balance after the last one.
async fn deposits(http: &HttpClient, token: &str, id: &str, count: usize, amount: i64) -> (u64, i64) {
    let mut last = (0, 0);
    for _ in 0..count {
        let key = Uuid::new_v4().to_string();
        let answer =
            http.post(&format!("/accounts/{id}/deposits"), Some(token), Some(&key), &json!({"amount": amount, "reference": "e2e"})).await;
        assert!(answer.status.is_success(), "{answer:?}");
        let account = if answer.body.get("account").is_some() { &answer.body["account"] } else { &answer.body };
        last = (account["version"].as_u64().expect("version"), account["balance"].as_i64().expect("balance"));
    }
    last
}

/// The read side shows exactly `version` events: the account at that
/// version and balance, and versions 2..=version in its history, once each.
async fn exactly(http: &HttpClient, token: &str, id: &str, (version, balance): (u64, i64), limit: Duration) {
    let view = read_at(http, token, id, version, limit).await;
    assert_eq!((view["version"].as_u64(), view["balance"].as_i64()), (Some(version), Some(balance)), "{view}");
    let versions: Vec<u64> = history(http, token, id, version).await.iter().map(|i| i["version"].as_u64().unwrap()).collect();
    // Version 1 opened the account: not a movement, so not in the history.
    assert_eq!(versions, (2..=version).collect::<Vec<_>>(), "every movement once, in order");
}

/// Waits until the stack's output has a line containing `needle`.
async fn output_line(served: &Served, seen: &mut Vec<String>, needles: &[&str], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        seen.extend(served.output());
        if seen.iter().any(|l| needles.iter().any(|n| l.contains(n))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no line with any of {needles:?} within {limit:?}; output:\n{}",
            seen[seen.len().saturating_sub(60)..].join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_through_the_real_functions_and_takes_them_down_when_it_dies() {
    let stack = Stack::start(Own::default(), &[]).await;
    let minter = scenario::binary_minter(&stack.binary, &stack.secret);
    let http = HttpClient::new(&stack.served.base_url);
    let token = minter.mint("carol", false);

    // The command API, through the gateway and cargo lambda watch.
    let opened = http.post("/accounts", Some(&token), Some(&Uuid::new_v4().to_string()), &json!({"currency": "EUR"})).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{opened:?}");
    assert_eq!(opened.body["owner_id"], "carol");
    // The query API: carol's list (whatever the read side holds yet).
    let listed = http.get("/accounts", Some(&token)).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    assert!(listed.body["items"].is_array(), "{listed:?}");
    // The gateway's authorizer: no token, no function.
    assert_eq!(http.get("/accounts", None).await.status, StatusCode::UNAUTHORIZED);

    // serve killed outright (SIGKILL, as the test harness does): the
    // cargo lambda watch child and its functions go too, freeing the port.
    let Stack { served, lambda_port, database_url, .. } = stack;
    drop(served);
    wait_port(lambda_port, false, "cargo lambda watch", Duration::from_secs(30)).await;
    drop_database(&database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_stack_passes_the_scenario_and_survives_broker_and_redis_restarts() {
    let Stack { served, mut broker, mut redis, binary, secret, failures, database_url, .. } = Stack::start(Own::default(), &[]).await;
    let mut served = served;

    // 1. The scenario, over HTTP, through the gateway and the real functions.
    let minter = scenario::binary_minter(&binary, &secret);
    let settings = scenario::Settings { converge_within: Duration::from_secs(180), ..scenario::Settings::default() };
    let report = scenario::run_with(&served.base_url, minter.as_ref(), &settings).await;
    assert_eq!(report.alice_final.0 + report.bob_final.0, 14_007);
    // Entries run while the holds scenario waits for its hold to expire.
    tokio::join!(
        scenario::holds(&served.base_url, minter.as_ref(), &settings),
        scenario::entries(&served.base_url, minter.as_ref(), &settings)
    );
    let http = HttpClient::new(&served.base_url);
    let token = minter.mint(&report.alice, false);
    let id = report.alice_account.clone();
    let mut seen = Vec::new();
    let _earlier = served.output(); // only failures from here on count below

    // 2. The broker stops (its data kept) while deposits are accepted; the
    //    publisher fails meanwhile; everything arrives once it is back.
    broker.stop().await;
    let during = deposits(&http, &token, &id, 5, 7).await;
    // The outage is seen: the publisher's own warning, or serve's line
    // about the failed invocation.
    let outage = ["publishing an outbox row failed", "outbox-publisher failed"];
    output_line(&served, &mut seen, &outage, Duration::from_secs(120)).await;
    broker.restart().await;
    let after = deposits(&http, &token, &id, 2, 11).await;
    assert_eq!(after.0, during.0 + 2);
    exactly(&http, &token, &id, after, Duration::from_secs(240)).await;

    // 3. Redis stops: commands and reads go on (the query API reads
    //    DynamoDB, the projector counts cache errors); then it comes back.
    redis.stop().await;
    let without_redis = deposits(&http, &token, &id, 3, 13).await;
    exactly(&http, &token, &id, without_redis, Duration::from_secs(120)).await;
    redis.restart().await;
    let with_redis = deposits(&http, &token, &id, 2, 17).await;
    exactly(&http, &token, &id, with_redis, Duration::from_secs(120)).await;
    assert_eq!(with_redis.1, report.alice_final.0 + 5 * 7 + 2 * 11 + 3 * 13 + 2 * 17);

    // Nothing was given up on.
    let given_up = std::fs::read_to_string(&failures).unwrap_or_default();
    assert!(given_up.is_empty(), "batches in the on-failure file: {given_up}");
    assert!(served.is_running(), "the stack is still up: {:?}", served.output());
    drop(served);
    drop_database(&database_url).await;
}
