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

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyper::StatusCode;
use ledgerline_tests::http::HttpClient;
use ledgerline_tests::process::{Served, ledgerline_binary};
use ledgerline_tests::scenario;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

async fn wait_port(port: u16, up: bool, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() != up {
        assert!(Instant::now() < deadline, "{what} on port {port} did not {} within {limit:?}", if up { "listen" } else { "stop" });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn on_path(name: &str, fallback: PathBuf) -> PathBuf {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file())).unwrap_or(fallback)
}

/// A server process of the test's own (tansu or redis-server) that can be
/// stopped and started again on the same port and data directory.
struct OwnServer {
    name: &'static str,
    port: u16,
    dir: PathBuf,
    command: Box<dyn Fn(u16) -> Command + Send>,
    child: Option<Child>,
}

impl OwnServer {
    async fn start(name: &'static str, command: Box<dyn Fn(u16) -> Command + Send>) -> Self {
        let dir = std::env::temp_dir().join(format!("ledgerline-e2e-{name}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { name, port: free_port(), dir, command, child: None };
        server.restart().await;
        server
    }

    async fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::options().create(true).append(true).open(self.dir.join("log")).unwrap();
        let child = (self.command)(self.port)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} ({e}); scripts/services.sh installs it", self.name));
        self.child = Some(child);
        wait_port(self.port, true, self.name, Duration::from_secs(30)).await;
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_port(self.port, false, self.name, Duration::from_secs(30)).await;
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn own_tansu() -> OwnServer {
    let binary = on_path("tansu", PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu"));
    OwnServer::start(
        "tansu",
        Box::new(move |port| {
            let url = format!("tcp://127.0.0.1:{port}");
            let mut command = Command::new(&binary);
            // SQLite storage (relative path: tansu refuses an absolute one) keeps
            // records and committed offsets across the restart.
            command.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "sqlite://tansu.db"]);
            command
        }),
    )
    .await
}

async fn own_redis() -> OwnServer {
    let binary = on_path("redis-server", PathBuf::from("/usr/bin/redis-server"));
    OwnServer::start(
        "redis-server",
        Box::new(move |port| {
            let mut command = Command::new(&binary);
            command.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
            command
        }),
    )
    .await
}

/// A fresh, empty database (the publisher claims every pending row of its
/// database, so the stack must not share one).
async fn fresh_database() -> String {
    let url = std::env::var("LEDGERLINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test".into());
    let server = url.rsplit_once('/').unwrap().0.to_owned();
    let (admin, connection) = tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL ({e}); start the services with scripts/services.sh"));
    tokio::spawn(connection);
    let name = format!("ledgerline_e2e_{}", Uuid::new_v4().simple());
    admin.execute(&format!("CREATE DATABASE {name}"), &[]).await.unwrap();
    format!("{server}/{name}")
}

/// Drops a database made by [`fresh_database`] (after the stack stopped).
async fn drop_database(url: &str) {
    let (server, name) = url.rsplit_once('/').unwrap();
    let (admin, connection) = tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    admin.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[]).await.unwrap();
}

/// Invokes a function through cargo lambda watch's Invoke API, waiting as
/// long as its first compilation takes; returns the HTTP status.
async fn invoke(lambda_port: u16, function: &str, event: &Value) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", lambda_port)).await.expect("the Invoke API");
    let body = serde_json::to_vec(event).unwrap();
    let head = format!(
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(1200), stream.read_to_end(&mut answer))
        .await
        .expect("compiled and answered within 20 minutes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

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

/// The account's whole history, oldest first.
async fn history(http: &HttpClient, token: &str, id: &str, version: u64) -> Vec<Value> {
    let mut items = Vec::new();
    let mut query = format!("limit=50&min_version={version}");
    loop {
        let answer = http.get(&format!("/accounts/{id}/transactions?{query}"), Some(token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        items.extend(answer.body["items"].as_array().expect("items").iter().cloned());
        match answer.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=50&cursor={cursor}"),
            None => break,
        }
    }
    items.reverse();
    items
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

/// `ledgerline serve` on free ports with a broker, a Redis, a database and
/// tables of its own, every function started (compiled if need be).
struct Stack {
    served: Served,
    broker: OwnServer,
    redis: OwnServer,
    binary: PathBuf,
    secret: String,
    lambda_port: u16,
    failures: PathBuf,
    database_url: String,
}

impl Stack {
    async fn start() -> Stack {
        let binary = ledgerline_binary();
        let broker = own_tansu().await;
        let redis = own_redis().await;
        let database_url = fresh_database().await;
        let run = Uuid::new_v4().simple().to_string();
        let secret = Uuid::new_v4().to_string();
        let lambda_port = free_port();
        let failures = std::env::temp_dir().join(format!("ledgerline-e2e-failures-{run}.jsonl"));
        let brokers = format!("127.0.0.1:{}", broker.port);
        let redis_url = format!("redis://127.0.0.1:{}", redis.port);
        let (accounts_table, transactions_table) = (format!("e2e{run}-accounts"), format!("e2e{run}-transactions"));
        let env = [
            ("LEDGERLINE_HTTP_ADDR", "127.0.0.1:0"),
            ("LEDGERLINE_JWT_SECRET", secret.as_str()),
            ("LEDGERLINE_LAMBDA_PORT", &lambda_port.to_string()),
            ("DATABASE_URL", &database_url),
            ("LEDGERLINE_KAFKA_BROKERS", &brokers),
            ("REDIS_URL", &redis_url),
            ("LEDGERLINE_ACCOUNTS_TABLE", &accounts_table),
            ("LEDGERLINE_TRANSACTIONS_TABLE", &transactions_table),
            ("LEDGERLINE_PROJECTOR_FAILURES_FILE", failures.to_str().unwrap()),
            // Quick retries after the broker comes back.
            ("LEDGERLINE_OUTBOX_BACKOFF_BASE_MS", "200"),
            ("LEDGERLINE_OUTBOX_BACKOFF_MAX_MS", "2000"),
            ("LEDGERLINE_KAFKA_MESSAGE_TIMEOUT_MS", "5000"),
            ("RUST_LOG", "warn"),
        ]
        .map(|(k, v)| (k, v.to_owned()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let served = Served::start(&binary, &["serve"], &env, Duration::from_secs(120));

        // Compile (if need be) and start each function before the scenario's
        // 30-second HTTP timeouts apply.
        for function in ["command-api", "query-api", "projector", "outbox-publisher"] {
            let event = match function {
                "projector" => json!({"eventSource": "SelfManagedKafka", "bootstrapServers": brokers, "records": {}}),
                "outbox-publisher" => serde_json::from_str(include_str!("../../events/scheduled.json")).unwrap(),
                _ => serde_json::from_str(include_str!("../../events/query-api/get-account.json")).unwrap(),
            };
            let (status, answer) = invoke(lambda_port, function, &event).await;
            assert_eq!(status, 200, "{function} under cargo lambda watch: {answer}");
        }
        Stack { served, broker, redis, binary, secret, lambda_port, failures, database_url }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_through_the_real_functions_and_takes_them_down_when_it_dies() {
    let stack = Stack::start().await;
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
    let Stack { served, mut broker, mut redis, binary, secret, failures, database_url, .. } = Stack::start().await;
    let mut served = served;

    // 1. The scenario, over HTTP, through the gateway and the real functions.
    let minter = scenario::binary_minter(&binary, &secret);
    let settings = scenario::Settings { converge_within: Duration::from_secs(180), ..scenario::Settings::default() };
    let report = scenario::run_with(&served.base_url, minter.as_ref(), &settings).await;
    assert_eq!(report.alice_final.0 + report.bob_final.0, 14_007);
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
