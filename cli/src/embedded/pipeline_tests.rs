//! The embedded pipeline in-process: commands through the backend, the
//! outbox schedule, the bus, the projector's retries and dead letters, and a
//! consistent read through the query API.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::Request;
use ledgerline_shared::read_model::{
    AccountView, ApplyOutcome, Change, HoldChange, HoldFilter, HoldPage, HoldView, ReadModelError, TransactionPage, TransactionView,
};
use outbox_publisher::{Record, RecordSink};
use projector::dead_letter::DeadLetterSource;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::*;
use crate::gateway::{Backend, event, routes};

/// The in-memory read model, refusing the first `failures_left` applies of
/// version 2 as if DynamoDB were throttling. Version 2 is the last event of
/// the test, so nothing later can heal it by filling a gap: only a
/// redelivery of the failed record can.
struct Flaky {
    inner: InMemoryReadModel,
    failures_left: AtomicU32,
    failed: AtomicU32,
}

#[async_trait]
impl ReadModelStore for Flaky {
    async fn apply(&self, change: &Change) -> Result<ApplyOutcome, ReadModelError> {
        if change.version() == 2 && self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(ReadModelError::Unavailable("throttled (test)".into()));
        }
        self.inner.apply(change).await
    }

    async fn account(&self, account_id: Uuid, consistent: bool) -> Result<Option<AccountView>, ReadModelError> {
        self.inner.account(account_id, consistent).await
    }

    async fn accounts_of_owner(&self, owner_id: &str) -> Result<Vec<AccountView>, ReadModelError> {
        self.inner.accounts_of_owner(owner_id).await
    }

    async fn transactions(
        &self,
        account_id: Uuid,
        limit: usize,
        before_version: Option<u64>,
        consistent: bool,
    ) -> Result<TransactionPage, ReadModelError> {
        self.inner.transactions(account_id, limit, before_version, consistent).await
    }

    async fn last_movement_before(
        &self,
        account_id: uuid::Uuid,
        before: chrono::DateTime<chrono::Utc>,
        consistent: bool,
    ) -> Result<Option<ledgerline_shared::read_model::BalanceMark>, ReadModelError> {
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
        self.inner.movements_between(account_id, after_version, up_to_version, limit, consistent).await
    }

    async fn movements_of(
        &self,
        id: ledgerline_shared::read_model::MovementId,
    ) -> Result<Vec<(uuid::Uuid, ledgerline_shared::read_model::TransactionView)>, ReadModelError> {
        self.inner.movements_of(id).await
    }

    async fn accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>, ReadModelError> {
        self.inner.accounts(ids).await
    }

    async fn replace(&self, view: &AccountView, rows: &[TransactionView], holds: &[HoldChange]) -> Result<bool, ReadModelError> {
        self.inner.replace(view, rows, holds).await
    }

    async fn hold(&self, account_id: Uuid, hold_id: Uuid, consistent: bool) -> Result<Option<HoldView>, ReadModelError> {
        self.inner.hold(account_id, hold_id, consistent).await
    }

    async fn holds(
        &self,
        account_id: Uuid,
        filter: HoldFilter,
        limit: usize,
        before: Option<Uuid>,
        consistent: bool,
    ) -> Result<HoldPage, ReadModelError> {
        self.inner.holds(account_id, filter, limit, before, consistent).await
    }

    async fn due_holds(&self, at: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<(Uuid, Uuid)>, ReadModelError> {
        self.inner.due_holds(at, limit).await
    }
}

/// Calls a function as the gateway would, for caller `alice`.
async fn call(backend: &backend::InProcess, method: &str, path_and_query: &str, key: Option<&str>, body: &str) -> (i64, Value) {
    let mut request = Request::builder().method(method).uri(path_and_query).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let (parts, ()) = request.body(()).unwrap().into_parts();
    let route = routes::find(method, parts.uri.path()).expect("a route");
    let mut claims = Map::new();
    claims.insert("sub".into(), "alice".into());
    claims.insert("exp".into(), json!(4_102_444_800u64));
    let event = event::build(&parts, body.as_bytes(), &route, &claims, "127.0.0.1:9".parse().unwrap(), chrono::Utc::now()).unwrap();
    let answer = backend.invoke(route.function, event).await.unwrap();
    let body = match answer.body {
        Some(lambda_http::Body::Text(text)) => serde_json::from_str(&text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (answer.status_code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_batches_are_delivered_again_and_poison_is_dead_lettered() {
    let flaky = Arc::new(Flaky { inner: InMemoryReadModel::default(), failures_left: AtomicU32::new(2), failed: AtomicU32::new(0) });
    let write = WriteSettings::from_env().unwrap();
    let (stack, backend) = Stack::start(&write, flaky.clone(), Duration::from_millis(10)).unwrap();

    let (status, opened) = call(&backend, "POST", "/accounts", Some("open"), r#"{"currency":"EUR"}"#).await;
    assert_eq!(status, 201, "{opened}");
    let id = opened["account_id"].as_str().unwrap().to_owned();
    let (status, deposited) = call(&backend, "POST", &format!("/accounts/{id}/deposits"), Some("dep"), r#"{"amount":250}"#).await;
    assert_eq!((status, deposited["version"].as_u64()), (200, Some(2)), "{deposited}");

    // A record no envelope decoder accepts, on the account's partition.
    let poison = Record { topic: "ledgerline.account-events", key: &id, payload: b"not an envelope", headers: &[] };
    stack.bus.as_ref().unwrap().enqueue(poison).unwrap().await.unwrap();

    // The read side catches up despite the refused applies.
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let (status, body) = call(&backend, "GET", &format!("/accounts/{id}?min_version=2"), None, "").await;
        if status == 200 {
            break body;
        }
        assert!(matches!(status, 404 | 409) && Instant::now() < deadline, "{status}: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!((view["balance"].as_i64(), view["version"].as_u64()), (Some(250), Some(2)), "{view}");
    assert_eq!(flaky.failed.load(Ordering::SeqCst), 2, "both refusals happened and were retried");

    let letters = ledgerline_tests::services::eventually("the poison record dead-lettered", Duration::from_secs(10), || {
        let letters = stack.dead_letters.letters();
        std::future::ready((!letters.is_empty()).then_some(letters))
    })
    .await;
    assert_eq!(letters.len(), 1);
    let DeadLetterSource::KafkaRecord { key, .. } = &letters[0].source else { panic!("{:?}", letters[0]) };
    assert_eq!(
        key.as_deref().map(|k| String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, k).unwrap()).unwrap()),
        Some(id.clone())
    );
    assert!(letters[0].error.contains("envelope"), "{:?}", letters[0]);

    let (status, history) = call(&backend, "GET", &format!("/accounts/{id}/transactions"), None, "").await;
    assert_eq!(status, 200);
    assert_eq!(history["items"].as_array().map(Vec::len), Some(1), "the deposit once, despite the retries: {history}");

    assert!(stack.stop(Duration::from_secs(5)).await, "the schedule and the consumers stop");
}
