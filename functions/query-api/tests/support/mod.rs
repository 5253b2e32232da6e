//! Test harness: a query API over the real DynamoDB emulator (one pair of
//! tables per test) and real Redis (one key namespace per test), with
//! requests sent as API Gateway HTTP API (v2) event JSON converted by
//! `lambda_http` exactly as in Lambda.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono::{TimeZone, Utc};
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::domain::{AccountEvent, Amount, Reference};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, create_tables, local_client};
use ledgerline_shared::read_model::tables::TableNames;
use ledgerline_shared::read_model::{ApplyOutcome, ReadModelStore, change_for};
use query_api::metrics::{MemorySink, Metrics};
use query_api::{AppState, QuerySettings, router};
use serde_json::Value;
use uuid::Uuid;

pub use ledgerline_tests::services::dynamodb_endpoint;

pub fn redis_url() -> String {
    std::env::var("LEDGERLINE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Fresh tables in the emulator.
pub async fn dynamo_store() -> Arc<DynamoReadModel> {
    let endpoint = dynamodb_endpoint();
    let client = local_client(&endpoint);
    let tables = TableNames::prefixed(&format!("qa{}", &Uuid::new_v4().simple().to_string()[..12]));
    create_tables(&client, &tables).await.unwrap_or_else(|e| panic!("cannot create tables at {endpoint}: {e}; run scripts/services.sh"));
    Arc::new(DynamoReadModel::new(client, tables))
}

pub fn cache_settings(url: &str) -> CacheSettings {
    CacheSettings { url: url.into(), ttl: Duration::from_secs(60), timeout: Duration::from_millis(200) }
}

/// A Redis cache in its own namespace.
pub fn redis_cache(url: &str) -> Arc<AccountCache> {
    Arc::new(AccountCache::with_namespace(cache_settings(url), &format!("test-{}:", Uuid::new_v4().simple())).unwrap())
}

/// Settings for tests: a long L1 TTL (tests control what is cached), a
/// dedicated cursor secret.
pub fn settings() -> QuerySettings {
    QuerySettings { l1_ttl: Duration::from_secs(60), cursor_secret: b"test-cursor-secret".to_vec(), ..QuerySettings::default() }
}

pub struct Api {
    pub router: Router,
    pub state: AppState,
    pub sink: Arc<MemorySink>,
}

impl Api {
    pub fn new(source: Arc<dyn ReadModelStore>, redis: Option<Arc<AccountCache>>, settings: &QuerySettings) -> Self {
        let sink = Arc::new(MemorySink::default());
        let state = AppState::new(source, redis, settings, Metrics::new(sink.clone()));
        Self { router: router(state.clone()), state, sink }
    }

    pub async fn send(&self, request: TestRequest) -> TestResponse {
        let answer = ledgerline_tests::gateway_event::call_router(&self.router, &request.gateway_event()).await;
        let body = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        TestResponse { status: answer.status, headers: answer.headers, body, raw: answer.body }
    }

    /// GET as `owner`.
    pub async fn get(&self, owner: &str, path: &str) -> TestResponse {
        self.send(get(path).by(owner)).await
    }

    /// The EMF lines emitted so far.
    pub fn metric_lines(&self) -> Vec<Value> {
        self.sink.lines()
    }

    /// The last request line's value of `metric`.
    pub fn last_request_metric(&self, metric: &str) -> f64 {
        let lines = self.metric_lines();
        let line = lines.iter().rev().find(|l| l.get("Requests").is_some()).expect("a request line");
        line[metric].as_f64().unwrap_or_else(|| panic!("no {metric} in {line}"))
    }
}

pub fn user() -> String {
    format!("user-{}", Uuid::new_v4().simple())
}

pub fn at(second: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(i64::from(second))
}

/// Opens an account (version 1) in the read model.
pub async fn open(store: &dyn ReadModelStore, owner: &str) -> Uuid {
    let id = Uuid::new_v4();
    let event =
        AccountEvent::Opened { account_id: id, owner_id: owner.into(), currency: "EUR".parse().unwrap(), overdraft_limit: 0, at: at(0) };
    assert_eq!(store.apply(&change_for(id, 1, &event)).await.unwrap(), ApplyOutcome::Applied);
    id
}

/// Deposits `amount` as the account's `version`-th event; `balance_after` given.
pub async fn deposit(store: &dyn ReadModelStore, id: Uuid, version: u64, amount: i64, balance_after: i64) {
    let event = AccountEvent::Deposited {
        amount: Amount::new(amount).unwrap(),
        balance_after,
        reference: Some(Reference::new(format!("d{version}")).unwrap()),
        at: at(version as u32),
    };
    assert_eq!(store.apply(&change_for(id, version, &event)).await.unwrap(), ApplyOutcome::Applied);
}

/// Opens an account and makes `deposits` deposits of 10 each: versions 2..=deposits+1.
pub async fn account_with_deposits(store: &dyn ReadModelStore, owner: &str, deposits: u64) -> Uuid {
    let id = open(store, owner).await;
    for n in 1..=deposits {
        deposit(store, id, n + 1, 10, 10 * n as i64).await;
    }
    id
}

pub struct TestRequest {
    method: String,
    path: String,
    query: String,
    caller: Option<(String, bool)>,
    headers: Vec<(String, String)>,
}

/// A request; `path` may carry a query string.
pub fn request(method: &str, path: &str) -> TestRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    TestRequest { method: method.into(), path: path.into(), query: query.into(), caller: None, headers: vec![] }
}

pub fn get(path: &str) -> TestRequest {
    request("GET", path)
}

impl TestRequest {
    pub fn by(mut self, sub: &str) -> Self {
        self.caller = Some((sub.into(), false));
        self
    }

    pub fn by_admin(mut self, sub: &str) -> Self {
        self.caller = Some((sub.into(), true));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The event API Gateway would send to the function.
    pub fn gateway_event(&self) -> Value {
        let caller = self.caller.as_ref().map(|(sub, admin)| (sub.as_str(), *admin));
        ledgerline_tests::gateway_event::api_gateway_v2_event(&self.method, &self.path, &self.query, caller, &self.headers, None)
    }
}

pub struct TestResponse {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl TestResponse {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn layer(&self) -> &str {
        self.header(query_api::routes::CACHE_HEADER).unwrap_or("")
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.status, 200, "body: {}", self.body);
        self
    }

    /// Asserts a problem+json refusal with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].as_str().is_some_and(|t| t.ends_with(code)));
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        if status == 503 || code == "not_yet_consistent" {
            assert!(self.header("retry-after").is_some_and(|v| v.parse::<u32>().is_ok()), "Retry-After on {status}");
        }
    }
}

/// Waits until `condition` holds, polling; panics after `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    ledgerline_tests::services::eventually(what, deadline, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}
