//! Cold start and memory of the Lambda binaries, measured the way Lambda
//! runs them: each `target/lambda/<function>/bootstrap` (from
//! scripts/build-lambdas.sh) is started against a stand-in for the Lambda
//! Runtime API on localhost, and handed the function's sample event from
//! `events/`.
//!
//! ```text
//! scripts/build-lambdas.sh && scripts/services.sh
//! cargo run -p ledgerline-tests --example cold_start   # the harness needs no optimising
//! ```
//!
//! Per function, over RUNS fresh processes: **ready** (process start to its
//! first `GET /invocation/next`) and **first answer** (process start to the
//! first invocation's answer, the real work included: the database, the
//! emulated DynamoDB, Redis), p50 and max. The projector gets its sample
//! batch with new account ids each time, so it projects new events rather
//! than duplicates. Then one process answers
//! LOAD_INVOCATIONS invocations back to back and its peak RSS (`VmHWM`) is
//! read. The services are the local ones (scripts/services.sh), with a
//! fresh database of the benchmark's own; the first
//! answer includes connecting to them, as a cold Lambda container does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use ledgerline_shared::read_model::tables::TableNames;
use tokio::sync::Notify;

const RUNS: usize = 15;
const LOAD_INVOCATIONS: usize = 300;

/// The stand-in Runtime API: hands out queued events, records answers.
#[derive(Default)]
struct Runtime {
    events: Mutex<VecDeque<String>>,
    /// When the process first asked for work, and each answer's arrival.
    first_poll: Mutex<Option<Instant>>,
    answers: Mutex<Vec<(Instant, bool)>>,
    answered: Notify,
    event_ready: Notify,
}

async fn next(State(runtime): State<Arc<Runtime>>) -> impl IntoResponse {
    runtime.first_poll.lock().unwrap().get_or_insert_with(Instant::now);
    let event = loop {
        // Registered before the look, so a notification in between is not lost.
        let notified = runtime.event_ready.notified();
        if let Some(event) = runtime.events.lock().unwrap().pop_front() {
            break event;
        }
        notified.await;
    };
    let mut headers = HeaderMap::new();
    let id = uuid::Uuid::new_v4().to_string();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let deadline = now_ms + 60_000;
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline.to_string()).unwrap());
    headers.insert("lambda-runtime-invoked-function-arn", HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"));
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    (StatusCode::OK, headers, event)
}

async fn answer(State(runtime): State<Arc<Runtime>>, UrlPath((_id, kind)): UrlPath<(String, String)>, body: String) -> StatusCode {
    let ok = kind == "response";
    if !ok {
        eprintln!("  an invocation failed: {body}");
    }
    runtime.answers.lock().unwrap().push((Instant::now(), ok));
    runtime.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(body: String) -> StatusCode {
    eprintln!("  init error: {body}");
    StatusCode::ACCEPTED
}

async fn serve_runtime(runtime: Arc<Runtime>) -> SocketAddr {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

struct Function {
    name: &'static str,
    event: &'static str,
    env: Vec<(&'static str, String)>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn functions(database: &str, tables: &TableNames) -> Vec<Function> {
    let dynamodb = ledgerline_tests::services::dynamodb_endpoint();
    let aws = || {
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "local".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
            ("LEDGERLINE_ACCOUNTS_TABLE", tables.accounts.clone()),
            ("LEDGERLINE_TRANSACTIONS_TABLE", tables.transactions.clone()),
        ]
    };
    let with_db = |mut env: Vec<(&'static str, String)>| {
        env.push(("DATABASE_URL", database.to_owned()));
        env
    };
    vec![
        Function { name: "command-api", event: "events/command-api/open-account.json", env: with_db(vec![]) },
        Function { name: "query-api", event: "events/query-api/list-accounts.json", env: aws() },
        Function { name: "projector", event: "events/projector/kafka-batch.json", env: with_db(aws()) },
        Function {
            name: "outbox-publisher",
            event: "events/scheduled.json",
            env: with_db(vec![("LEDGERLINE_OUTBOX_RUN_FOR_MS", "0".into())]),
        },
        Function { name: "reconciler", event: "events/scheduled.json", env: with_db(aws()) },
    ]
}

/// The projector's sample batch with its accounts renamed to new ones, so
/// every run projects new events, as a cold container mostly does (a
/// second run of the same batch would be all duplicates).
fn with_fresh_accounts(event: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use ledgerline_shared::event_store::EventEnvelope;
    let mut json: serde_json::Value = serde_json::from_str(event).expect("the sample batch is JSON");
    let mut renamed = std::collections::HashMap::new();
    for records in json["records"].as_object_mut().expect("records by partition").values_mut() {
        for record in records.as_array_mut().expect("a partition's records") {
            let value = STANDARD.decode(record["value"].as_str().expect("a value")).expect("base64");
            let mut envelope = EventEnvelope::decode(&value).expect("an envelope");
            let fresh = *renamed.entry(envelope.stream_id).or_insert_with(uuid::Uuid::new_v4);
            envelope.stream_id = fresh;
            record["value"] = STANDARD.encode(envelope.encode()).into();
            record["key"] = STANDARD.encode(fresh.to_string()).into();
        }
    }
    json.to_string()
}

fn start(function: &Function, runtime: SocketAddr) -> Child {
    let binary = repo().join("target/lambda").join(function.name).join("bootstrap");
    assert!(binary.is_file(), "{} is missing: run scripts/build-lambdas.sh first", binary.display());
    Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("RUST_LOG", "warn")
        .envs(function.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bootstrap starts")
}

/// Waits until `count` answers arrived (or 30 s).
async fn answers(runtime: &Runtime, count: usize) -> Vec<(Instant, bool)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let notified = runtime.answered.notified();
        let answers = runtime.answers.lock().unwrap().clone();
        if answers.len() >= count {
            return answers;
        }
        assert!(Instant::now() < deadline, "only {} of {count} answers in 30 s", answers.len());
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    println!(
        "{:<18} {:>11} {:>11} {:>13} {:>13} {:>10} {:>13}",
        "function", "ready p50", "ready max", "answer p50", "answer max", "size MB", "peak RSS MiB"
    );
    // A database of its own, so the publisher finds no one else's rows.
    let database = ledgerline_tests::services::FreshDatabase::create("coldstart").await;
    // Tables of its own too: the emulator answers a query by scanning its
    // table, so one that earlier tests filled would slow the read side down.
    let dynamodb = ledgerline_shared::read_model::dynamo::local_client(&ledgerline_tests::services::dynamodb_endpoint());
    let tables = TableNames::prefixed(&format!("coldstart-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    ledgerline_shared::read_model::dynamo::create_tables(&dynamodb, &tables).await.expect("create the benchmark's tables");
    ledgerline_shared::migrate::run(&database.url).await.expect("migrate the benchmark's database");
    for function in functions(&database.url, &tables) {
        let event = std::fs::read_to_string(repo().join(function.event)).expect("the sample event");
        let mut ready = Vec::new();
        let mut first = Vec::new();
        for _ in 0..RUNS {
            let runtime = Arc::new(Runtime::default());
            let event = if function.name == "projector" { with_fresh_accounts(&event) } else { event.clone() };
            runtime.events.lock().unwrap().push_back(event);
            let address = serve_runtime(runtime.clone()).await;
            let started = Instant::now();
            let mut child = start(&function, address);
            let answered = answers(&runtime, 1).await;
            assert!(answered[0].1, "{}'s first invocation failed", function.name);
            ready.push(runtime.first_poll.lock().unwrap().expect("it polled") - started);
            first.push(answered[0].0 - started);
            let _ = child.kill();
            let _ = child.wait();
        }
        ready.sort();
        first.sort();

        // Load: one process, invocations back to back.
        let runtime = Arc::new(Runtime::default());
        let address = serve_runtime(runtime.clone()).await;
        let mut child = start(&function, address);
        for _ in 0..LOAD_INVOCATIONS {
            let event = if function.name == "projector" { with_fresh_accounts(&event) } else { event.clone() };
            runtime.events.lock().unwrap().push_back(event);
        }
        runtime.event_ready.notify_waiters();
        let answered = answers(&runtime, LOAD_INVOCATIONS).await;
        let failed = answered.iter().filter(|(_, ok)| !ok).count();
        let rss = peak_rss_kib(child.id());
        let _ = child.kill();
        let _ = child.wait();

        let size = std::fs::metadata(repo().join("target/lambda").join(function.name).join("bootstrap")).map(|m| m.len()).unwrap_or(0);
        println!(
            "{:<18} {:>9.1}ms {:>9.1}ms {:>11.1}ms {:>11.1}ms {:>10.1} {:>13.1}{}",
            function.name,
            millis(ready[RUNS / 2]),
            millis(ready[RUNS - 1]),
            millis(first[RUNS / 2]),
            millis(first[RUNS - 1]),
            size as f64 / 1_048_576.0,
            rss as f64 / 1024.0,
            if failed > 0 { format!("  ({failed} of {LOAD_INVOCATIONS} invocations failed)") } else { String::new() }
        );
    }
    database.drop_database().await;
    for table in [&tables.accounts, &tables.transactions] {
        let _ = dynamodb.delete_table().table_name(table).send().await;
    }
}
