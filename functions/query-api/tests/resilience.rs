//! Redis stopped and restarted mid-test, DynamoDB unreachable, a flaky
//! read model, load shedding, and the metrics they leave.

mod support;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, local_client};
use ledgerline_shared::read_model::memory::InMemoryReadModel;
use ledgerline_shared::read_model::tables::TableNames;
use ledgerline_shared::read_model::{AccountView, ApplyOutcome, Change, ReadModelError, ReadModelStore, TransactionPage, TransactionView};
use ledgerline_shared::resilience::{BreakerSettings, BreakerState};
use query_api::QuerySettings;
use serde_json::Value;
use support::*;
use uuid::Uuid;

/// Our own redis-server, so stopping it disturbs no other test.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn breaker_lines(api: &Api, dependency: &str, metric: &str) -> usize {
    api.metric_lines().iter().filter(|l| l["Dependency"] == dependency && l.get(metric).is_some()).count()
}

#[tokio::test]
async fn redis_stopped_mid_test_answers_stay_correct_the_breaker_opens_and_closes_again() {
    let mut redis = OwnRedis::start();
    let store = dynamo_store().await;
    let settings = QuerySettings {
        l1_capacity: 0, // every read goes to Redis, so its outage shows
        redis_breaker: BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_millis(300),
            call_timeout: Duration::from_millis(150),
        },
        ..settings()
    };
    let api = Api::new(store.clone(), Some(redis_cache(&redis.url())), &settings);
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 1).await;
    let path = format!("/accounts/{id}");
    assert_eq!(api.get(&owner, &path).await.layer(), "dynamodb");
    assert_eq!(api.get(&owner, &path).await.layer(), "l2");

    redis.stop();
    deposit(store.as_ref(), id, 3, 5, 15).await;
    // Every answer is right while Redis is down; the breaker opens.
    eventually("the Redis breaker opens", Duration::from_secs(10), || async {
        let response = api.get(&owner, &path).await;
        response.assert_ok();
        assert_eq!((response.body["version"].as_u64(), response.layer()), (Some(3), "dynamodb"));
        api.state.reader().redis_breaker_state() == Some(BreakerState::Open)
    })
    .await;
    assert_eq!(breaker_lines(&api, "redis", "BreakerOpened"), 1);
    let open = api.get(&owner, &path).await;
    assert_eq!((open.status, open.body["version"].as_u64()), (200, Some(3)));
    assert_eq!(api.last_request_metric("L2Error"), 1.0);

    redis.restart();
    // After the cool-down a probe reaches the new (empty) Redis, closes the
    // breaker and fills it; then Redis answers again.
    eventually("Redis serves again", Duration::from_secs(15), || async {
        let response = api.get(&owner, &path).await;
        response.assert_ok();
        assert_eq!(response.body["version"], 3);
        response.layer() == "l2"
    })
    .await;
    assert_eq!(api.state.reader().redis_breaker_state(), Some(BreakerState::Closed));
    assert!(breaker_lines(&api, "redis", "BreakerClosed") >= 1);
    assert!(breaker_lines(&api, "redis", "BreakerHalfOpened") >= 1);
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_and_opens_its_breaker() {
    let unreachable = Arc::new(DynamoReadModel::new(local_client("http://127.0.0.1:1"), TableNames::prefixed("unreachable")));
    let settings = QuerySettings {
        dynamodb_breaker: BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_secs(60),
            call_timeout: Duration::from_secs(3),
        },
        ..settings()
    };
    let api = Api::new(unreachable, Some(redis_cache(&redis_url())), &settings);
    let owner = user();
    let id = Uuid::new_v4();
    for path in [format!("/accounts/{id}"), "/accounts".to_owned(), format!("/accounts/{id}/transactions")] {
        api.get(&owner, &path).await.assert_problem(503, "service_unavailable");
    }
    assert_eq!(api.state.reader().dynamodb_breaker_state(), BreakerState::Open);
    assert_eq!(breaker_lines(&api, "dynamodb", "BreakerOpened"), 1);
    // Open: refused without calling (the answer is the same 503).
    api.get(&owner, &format!("/accounts/{id}?min_version=2")).await.assert_problem(503, "service_unavailable");
}

/// The in-memory read model with a switch that makes it unavailable and a
/// gate that can hold reads.
struct Flaky {
    inner: InMemoryReadModel,
    down: AtomicBool,
    gate: tokio::sync::Semaphore,
    gated: AtomicBool,
}

impl Default for Flaky {
    fn default() -> Self {
        Self {
            inner: InMemoryReadModel::default(),
            down: AtomicBool::new(false),
            gate: tokio::sync::Semaphore::new(0),
            gated: AtomicBool::new(false),
        }
    }
}

impl Flaky {
    async fn check(&self) -> Result<(), ReadModelError> {
        if self.gated.load(Ordering::SeqCst) {
            let _ = self.gate.acquire().await.unwrap();
        }
        if self.down.load(Ordering::SeqCst) { Err(ReadModelError::Unavailable("switched off".into())) } else { Ok(()) }
    }
}

#[async_trait]
impl ReadModelStore for Flaky {
    async fn apply(&self, change: &Change) -> Result<ApplyOutcome, ReadModelError> {
        self.inner.apply(change).await
    }
    async fn account(&self, account_id: Uuid, consistent: bool) -> Result<Option<AccountView>, ReadModelError> {
        self.check().await?;
        self.inner.account(account_id, consistent).await
    }
    async fn accounts_of_owner(&self, owner_id: &str) -> Result<Vec<AccountView>, ReadModelError> {
        self.check().await?;
        self.inner.accounts_of_owner(owner_id).await
    }
    async fn transactions(
        &self,
        account_id: Uuid,
        limit: usize,
        before_version: Option<u64>,
        consistent: bool,
    ) -> Result<TransactionPage, ReadModelError> {
        self.check().await?;
        self.inner.transactions(account_id, limit, before_version, consistent).await
    }

    async fn last_movement_before(
        &self,
        account_id: uuid::Uuid,
        before: chrono::DateTime<chrono::Utc>,
        consistent: bool,
    ) -> Result<Option<ledgerline_shared::read_model::BalanceMark>, ReadModelError> {
        self.check().await?;
        self.inner.last_movement_before(account_id, before, consistent).await
    }

    async fn movements_between(
        &self,
        account_id: uuid::Uuid,
        after_version: u64,
        up_to_version: u64,
        limit: usize,
        consistent: bool,
    ) -> Result<Vec<ledgerline_shared::read_model::TransactionView>, ReadModelError> {
        self.check().await?;
        self.inner.movements_between(account_id, after_version, up_to_version, limit, consistent).await
    }

    async fn movements_of(
        &self,
        id: ledgerline_shared::read_model::MovementId,
    ) -> Result<Vec<(uuid::Uuid, ledgerline_shared::read_model::TransactionView)>, ReadModelError> {
        self.check().await?;
        self.inner.movements_of(id).await
    }
    async fn accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>, ReadModelError> {
        self.check().await?;
        self.inner.accounts(ids).await
    }
    async fn replace(
        &self,
        view: &AccountView,
        rows: &[TransactionView],
        holds: &[ledgerline_shared::read_model::HoldChange],
    ) -> Result<bool, ReadModelError> {
        self.inner.replace(view, rows, holds).await
    }

    async fn hold(
        &self,
        account_id: uuid::Uuid,
        hold_id: uuid::Uuid,
        consistent: bool,
    ) -> Result<Option<ledgerline_shared::read_model::HoldView>, ReadModelError> {
        self.inner.hold(account_id, hold_id, consistent).await
    }

    async fn holds(
        &self,
        account_id: uuid::Uuid,
        filter: ledgerline_shared::read_model::HoldFilter,
        limit: usize,
        before: Option<uuid::Uuid>,
        consistent: bool,
    ) -> Result<ledgerline_shared::read_model::HoldPage, ReadModelError> {
        self.inner.holds(account_id, filter, limit, before, consistent).await
    }

    async fn due_holds(&self, at: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>, ReadModelError> {
        self.inner.due_holds(at, limit).await
    }
}

#[tokio::test]
async fn the_dynamodb_breaker_recovers_after_its_cool_down() {
    let store = Arc::new(Flaky::default());
    let settings = QuerySettings {
        l1_capacity: 0,
        dynamodb_breaker: BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_millis(200),
            call_timeout: Duration::from_secs(1),
        },
        ..settings()
    };
    let api = Api::new(store.clone(), None, &settings);
    let owner = user();
    let id = open(store.as_ref(), &owner).await;
    let path = format!("/accounts/{id}");
    api.get(&owner, &path).await.assert_ok();
    store.down.store(true, Ordering::SeqCst);
    api.get(&owner, &path).await.assert_problem(503, "service_unavailable");
    api.get(&owner, &path).await.assert_problem(503, "service_unavailable");
    assert_eq!(api.state.reader().dynamodb_breaker_state(), BreakerState::Open);
    store.down.store(false, Ordering::SeqCst);
    eventually("the breaker lets a probe through and closes", Duration::from_secs(5), || async {
        api.get(&owner, &path).await.status == 200
    })
    .await;
    assert_eq!(api.state.reader().dynamodb_breaker_state(), BreakerState::Closed);
    assert_eq!(breaker_lines(&api, "dynamodb", "BreakerClosed"), 1);
}

#[tokio::test]
async fn beyond_the_in_flight_limit_requests_are_shed_with_503() {
    let store = Arc::new(Flaky::default());
    let settings = QuerySettings { l1_capacity: 0, max_in_flight: 1, queue_wait: Duration::from_millis(20), ..settings() };
    let api = Arc::new(Api::new(store.clone(), None, &settings));
    let owner = user();
    let id = open(store.as_ref(), &owner).await;
    let path = format!("/accounts/{id}");

    // One slow request holds the only slot.
    store.gated.store(true, Ordering::SeqCst);
    let slow = tokio::spawn({
        let (api, owner, path) = (api.clone(), owner.clone(), path.clone());
        async move { api.get(&owner, &path).await.status }
    });
    eventually("the slow request is in flight", Duration::from_secs(5), || async { api.state.shedder().in_flight() == 1 }).await;
    let shed = api.get(&owner, &path).await;
    shed.assert_problem(503, "service_unavailable");
    assert_eq!(api.last_request_metric("Shed"), 1.0);

    // Released, the slow one finishes and the next request is served.
    store.gated.store(false, Ordering::SeqCst);
    store.gate.add_permits(1);
    assert_eq!(slow.await.unwrap(), 200);
    api.get(&owner, &path).await.assert_ok();
    assert_eq!(api.last_request_metric("Shed"), 0.0);
}

#[tokio::test]
async fn every_request_leaves_one_emf_line_with_its_route_template() {
    let store = Arc::new(InMemoryReadModel::default());
    let api = Api::new(store.clone(), None, &settings());
    let owner = user();
    let id = open(store.as_ref(), &owner).await;
    api.get(&owner, &format!("/accounts/{id}")).await.assert_ok();
    api.get(&owner, &format!("/accounts/{id}/transactions")).await.assert_ok();
    api.get(&owner, "/accounts").await.assert_ok();
    api.send(get(&format!("/accounts/{id}"))).await.assert_problem(401, "unauthorized");
    let lines: Vec<Value> = api.metric_lines();
    let routes: Vec<(&str, u64)> = lines.iter().map(|l| (l["Route"].as_str().unwrap(), l["Status"].as_u64().unwrap())).collect();
    assert_eq!(routes, vec![("/accounts/{id}", 200), ("/accounts/{id}/transactions", 200), ("/accounts", 200), ("/accounts/{id}", 401)]);
    for line in &lines {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        ledgerline_shared::metrics::assert_emf(line);
        assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
        assert_eq!(line["Function"], "query-api");
        assert!(line["_aws"]["Timestamp"].is_i64());
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(line[metric["Name"].as_str().unwrap()].is_number(), "{line}");
        }
        assert!(line["Latency"].as_f64().unwrap() >= 0.0);
    }
}

#[tokio::test]
async fn a_dynamodb_read_slower_than_its_timeout_is_503_not_a_hang() {
    let store = Arc::new(Flaky::default());
    let settings = QuerySettings {
        l1_capacity: 0,
        dynamodb_breaker: BreakerSettings {
            failure_threshold: 5,
            cool_down: Duration::from_secs(60),
            call_timeout: Duration::from_millis(100),
        },
        ..settings()
    };
    let api = Api::new(store.clone(), None, &settings);
    let owner = user();
    let id = open(store.as_ref(), &owner).await;
    store.gated.store(true, Ordering::SeqCst); // reads now wait forever
    for path in [format!("/accounts/{id}"), "/accounts".to_owned()] {
        api.get(&owner, &path).await.assert_problem(503, "service_unavailable");
    }
    assert_eq!(api.state.reader().dynamodb_breaker_state(), BreakerState::Closed, "two failures are under the threshold of five");
    assert_eq!(api.state.shedder().in_flight(), 0, "timed-out requests gave their slots back");
}
