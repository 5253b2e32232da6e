//! Every route and every error, with the in-memory store (fast). The same
//! flows against real PostgreSQL are in `postgres.rs`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use command_api::CommandSettings;
use command_api::metrics::with_metrics;
use ledgerline_shared::event_store::{
    AppendBatch, AppendOutcome, CommandRead, CommandState, EventStore, HeadQuery, InMemoryEventStore, LockedStreams, OutboxMessage,
    RecordedEvent, Snapshot, StoreError, StoreSettings, StreamHead,
};
use ledgerline_shared::idempotency::IdempotencyRecord;
use ledgerline_shared::metrics::{MemorySink, MetricsWriter};
use serde_json::json;
use support::{Api, fresh_key, post, request, user};
use uuid::Uuid;

// ---- identity ----

#[tokio::test]
async fn a_request_without_claims_is_unauthorized() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    for path in
        ["/accounts".to_string(), format!("/accounts/{account}/deposits"), "/transfers".into(), format!("/accounts/{account}/close")]
    {
        let response = api.send(post(&path).key("k").json(json!({"amount": 1}))).await;
        response.assert_problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn a_caller_id_in_a_header_or_body_is_ignored() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    api.deposit("alice", account, 100).await;
    let response = api
        .send(
            post(&format!("/accounts/{account}/withdrawals"))
                .by("mallory")
                .header("x-caller-id", "alice")
                .key("k")
                .json(json!({"amount": 1})),
        )
        .await;
    response.assert_problem(404, "account_not_found");
}

// ---- open ----

#[tokio::test]
async fn opening_an_account_answers_201_with_the_account_and_its_location() {
    let api = Api::memory();
    let response = api.send(post("/accounts").by("alice").json(json!({"currency": "EUR"}))).await;
    assert_eq!(response.status, 201);
    let id = response.id("account_id");
    assert_eq!(response.header("location"), Some(format!("/accounts/{id}").as_str()));
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.body,
        json!({"account_id": id, "owner_id": "alice", "currency": "EUR", "balance": 0, "held": 0, "available_balance": 0,
               "overdraft_limit": 0, "status": "open", "version": 1})
    );
}

#[tokio::test]
async fn only_an_administrator_may_grant_an_overdraft() {
    let api = Api::memory();
    let refused = api.send(post("/accounts").by("alice").json(json!({"currency": "EUR", "overdraft_limit": 500}))).await;
    refused.assert_problem(403, "forbidden");
    let granted = api.send(post("/accounts").by_admin("bank").json(json!({"currency": "EUR", "overdraft_limit": 500}))).await;
    assert_eq!((granted.status, granted.body["overdraft_limit"].as_i64()), (201, Some(500)));
    // Explicitly zero is fine for anyone.
    let zero = api.send(post("/accounts").by("alice").json(json!({"currency": "EUR", "overdraft_limit": 0}))).await;
    assert_eq!(zero.status, 201);
}

#[tokio::test]
async fn bad_account_openings_are_validation_errors() {
    let api = Api::memory();
    let cases = [
        json!({"currency": "XYZ"}),
        json!({"currency": "eur"}),
        json!({"currency": "EUR", "overdraft_limit": -1}),
        json!({"currency": "EUR", "overdraft_limit": 1.5}),
        json!({"currency": "EUR", "colour": "blue"}),
        json!({}),
        json!([]),
    ];
    for body in cases {
        api.send(post("/accounts").by_admin("bank").json(body.clone())).await.assert_problem(400, "validation_failed");
    }
    api.send(post("/accounts").by("alice").raw_body("{not json")).await.assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn a_body_that_is_not_json_or_too_large_is_refused() {
    let api = Api::memory();
    let response = api.send(post("/accounts").by("alice").header("content-type", "text/plain").raw_body("{\"currency\":\"EUR\"}")).await;
    response.assert_problem(415, "unsupported_media_type");
    let huge = format!("{{\"currency\":\"EUR\",\"pad\":\"{}\"}}", "x".repeat(20_000));
    api.send(post("/accounts").by("alice").raw_body(&huge)).await.assert_problem(413, "payload_too_large");
}

// ---- deposits and withdrawals ----

#[tokio::test]
async fn deposits_and_withdrawals_move_the_balance() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let deposited = api.deposit("alice", account, 1000).await;
    assert_eq!(
        (deposited.status, deposited.body.clone()),
        (200, json!({"account_id": account, "balance": 1000, "held": 0, "available_balance": 1000, "version": 2}))
    );
    let withdrawn = api
        .send(
            post(&format!("/accounts/{account}/withdrawals"))
                .by("alice")
                .key(&fresh_key())
                .json(json!({"amount": 300, "reference": "rent"})),
        )
        .await;
    assert_eq!(
        (withdrawn.status, withdrawn.body.clone()),
        (200, json!({"account_id": account, "balance": 700, "held": 0, "available_balance": 700, "version": 3}))
    );
}

#[tokio::test]
async fn every_event_is_written_with_its_outbox_row_and_the_correlation_id() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let response = api
        .send(
            post(&format!("/accounts/{account}/deposits"))
                .by("alice")
                .key("k")
                .header("x-correlation-id", "trace-42")
                .json(json!({"amount": 5})),
        )
        .await;
    assert_eq!(response.header("x-correlation-id"), Some("trace-42"));
    let events = api.store.read_stream(account, 0).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].metadata.correlation_id, "trace-42");
    assert_eq!(events[1].metadata.actor, "alice");
    assert_eq!(api.store.outbox_for_stream(account).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_withdrawal_beyond_the_overdraft_limit_is_refused_with_422() {
    let api = Api::memory();
    let opened = api.send(post("/accounts").by_admin("bank").json(json!({"currency": "EUR", "overdraft_limit": 100}))).await;
    let account = opened.id("account_id");
    let ok = api.send(post(&format!("/accounts/{account}/withdrawals")).by_admin("bank").key("a").json(json!({"amount": 100}))).await;
    assert_eq!((ok.status, ok.body["balance"].as_i64()), (200, Some(-100)));
    let refused = api.send(post(&format!("/accounts/{account}/withdrawals")).by_admin("bank").key("b").json(json!({"amount": 1}))).await;
    refused.assert_problem(422, "insufficient_funds");
    assert_eq!(api.balance(account).await, -100);
}

#[tokio::test]
async fn money_requests_need_an_idempotency_key_of_sane_shape() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let path = format!("/accounts/{account}/deposits");
    api.send(post(&path).by("alice").json(json!({"amount": 1}))).await.assert_problem(400, "validation_failed");
    api.send(post(&path).by("alice").key(&"k".repeat(256)).json(json!({"amount": 1}))).await.assert_problem(400, "validation_failed");
    api.send(post("/transfers").by("alice").json(json!({"from_account_id": account, "to_account_id": account, "amount": 1})))
        .await
        .assert_problem(400, "validation_failed");
    assert_eq!(api.balance(account).await, 0);
}

#[tokio::test]
async fn bad_amounts_are_validation_errors() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let path = format!("/accounts/{account}/deposits");
    for amount in [json!(0), json!(-5), json!(1_000_000_000_001i64), json!(10.5), json!("10"), json!(null)] {
        api.send(post(&path).by("alice").key(&fresh_key()).json(json!({"amount": amount}))).await.assert_problem(400, "validation_failed");
    }
    let long_reference = "r".repeat(141);
    api.send(post(&path).by("alice").key(&fresh_key()).json(json!({"amount": 1, "reference": long_reference})))
        .await
        .assert_problem(400, "validation_failed");
    // The largest amount is fine.
    assert_eq!(api.deposit("alice", account, 1_000_000_000_000).await.status, 200);
}

#[tokio::test]
async fn acting_on_a_missing_or_malformed_account_id() {
    let api = Api::memory();
    let missing = Uuid::new_v4();
    api.deposit("alice", missing, 1).await.assert_problem(404, "account_not_found");
    api.send(post("/accounts/not-a-uuid/deposits").by("alice").key("k").json(json!({"amount": 1})))
        .await
        .assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn someone_elses_account_is_answered_exactly_like_a_missing_one() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let missing = Uuid::new_v4();
    for (route, body) in
        [("deposits", json!({"amount": 1})), ("withdrawals", json!({"amount": 1})), ("close", json!({})), ("freeze", json!({}))]
    {
        let theirs = api.send(post(&format!("/accounts/{account}/{route}")).by("bob").key(&fresh_key()).json(body.clone())).await;
        let nobodys = api.send(post(&format!("/accounts/{missing}/{route}")).by("bob").key(&fresh_key()).json(body)).await;
        // (Freezing is for administrators: refused before any account is read.)
        if route == "freeze" {
            theirs.assert_problem(403, "forbidden")
        } else {
            theirs.assert_problem(404, "account_not_found")
        }
        assert_eq!(theirs.body, nobodys.body, "{route}: nothing tells the two apart");
    }
    assert_eq!(
        api.send(post(&format!("/accounts/{account}/deposits")).by_admin("ops").key("k").json(json!({"amount": 7}))).await.status,
        200
    );
    assert_eq!(api.balance(account).await, 7);
}

#[tokio::test]
async fn the_admin_scope_without_the_admin_group_makes_no_administrator() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    api.deposit("alice", account, 100).await;
    let withdraw = post(&format!("/accounts/{account}/withdrawals")).by_admin_scope_only("mallory").key("k").json(json!({"amount": 100}));
    api.send(withdraw).await.assert_problem(404, "account_not_found");
    let transfer = post("/transfers")
        .by_admin_scope_only("mallory")
        .key("t")
        .json(json!({"from_account_id": account, "to_account_id": api.open("mallory", "EUR").await, "amount": 100}));
    api.send(transfer).await.assert_problem(404, "account_not_found");
    api.send(post(&format!("/accounts/{account}/freeze")).by_admin_scope_only("alice")).await.assert_problem(403, "forbidden");
    assert_eq!(api.balance(account).await, 100);
}

// ---- transfers ----

#[tokio::test]
async fn a_transfer_moves_money_between_two_accounts() {
    let api = Api::memory();
    let (from, to) = (api.open("alice", "EUR").await, api.open("bob", "EUR").await);
    api.deposit("alice", from, 500).await;
    let response = api
        .send(
            post("/transfers")
                .by("alice")
                .key("t1")
                .json(json!({"from_account_id": from, "to_account_id": to, "amount": 200, "reference": "lunch"})),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    assert!(response.body["transfer_id"].as_str().is_some_and(|id| id.parse::<Uuid>().is_ok()));
    assert_eq!(response.body["from"], json!({"account_id": from, "balance": 300, "held": 0, "available_balance": 300, "version": 3}));
    // Of the recipient, only its id: not its balance, version or state.
    assert_eq!(response.body["to"], json!({"account_id": to}));
    assert_eq!((api.balance(from).await, api.balance(to).await), (300, 200));
}

#[tokio::test]
async fn transfers_that_break_a_rule_are_refused() {
    let api = Api::memory();
    let (from, to) = (api.open("alice", "EUR").await, api.open("bob", "EUR").await);
    let dollars = api.open("bob", "USD").await;
    api.deposit("alice", from, 100).await;
    let send = |to: Uuid, amount: i64| {
        post("/transfers").by("alice").key(&fresh_key()).json(json!({"from_account_id": from, "to_account_id": to, "amount": amount}))
    };
    api.send(send(from, 1)).await.assert_problem(422, "same_account");
    api.send(send(to, 101)).await.assert_problem(422, "insufficient_funds");
    // A recipient that cannot receive: one refusal, whatever the reason,
    // with the same words each time.
    let closed = api.open("bob", "EUR").await;
    api.send(post(&format!("/accounts/{closed}/close")).by("bob")).await;
    let frozen = api.open("bob", "EUR").await;
    api.send(post(&format!("/accounts/{frozen}/freeze")).by_admin("ops")).await;
    let mut refusals = Vec::new();
    for recipient in [dollars, Uuid::new_v4(), closed, frozen] {
        let refused = api.send(send(recipient, 1)).await;
        refused.assert_problem(422, "recipient_cannot_receive");
        refusals.push(refused.body);
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "{refusals:?}");
    // Someone else's source account: as if it did not exist.
    api.send(post("/transfers").by("bob").key("x").json(json!({"from_account_id": from, "to_account_id": to, "amount": 1})))
        .await
        .assert_problem(404, "account_not_found");
    assert_eq!((api.balance(from).await, api.balance(to).await), (100, 0));
}

// ---- freeze, unfreeze, close ----

#[tokio::test]
async fn administrators_freeze_and_unfreeze_and_nothing_moves_meanwhile() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    api.send(post(&format!("/accounts/{account}/freeze")).by("alice")).await.assert_problem(403, "forbidden");
    let frozen = api.send(post(&format!("/accounts/{account}/freeze")).by_admin("ops")).await;
    assert_eq!((frozen.status, frozen.body.clone()), (200, json!({"account_id": account, "status": "frozen", "version": 2})));
    api.deposit("alice", account, 1).await.assert_problem(422, "account_frozen");
    // Freezing again changes nothing and says so.
    let again = api.send(post(&format!("/accounts/{account}/freeze")).by_admin("ops").json(json!({}))).await;
    assert_eq!((again.status, again.body["version"].as_u64()), (200, Some(2)));
    let unfrozen = api.send(post(&format!("/accounts/{account}/unfreeze")).by_admin("ops")).await;
    assert_eq!((unfrozen.status, unfrozen.body["status"].as_str()), (200, Some("open")));
    assert_eq!(api.deposit("alice", account, 1).await.status, 200);
}

#[tokio::test]
async fn closing_needs_a_zero_balance_and_a_closed_account_takes_nothing() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    api.deposit("alice", account, 10).await;
    api.send(post(&format!("/accounts/{account}/close")).by("alice")).await.assert_problem(422, "nonzero_balance");
    api.send(post(&format!("/accounts/{account}/withdrawals")).by("alice").key("w").json(json!({"amount": 10}))).await;
    let closed = api.send(post(&format!("/accounts/{account}/close")).by("alice")).await;
    assert_eq!((closed.status, closed.body["status"].as_str()), (200, Some("closed")));
    api.deposit("alice", account, 1).await.assert_problem(422, "account_closed");
    api.send(post(&format!("/accounts/{account}/close")).by("alice")).await.assert_problem(422, "account_closed");
    api.send(post(&format!("/accounts/{account}/unfreeze")).by_admin("ops")).await.assert_problem(422, "account_closed");
    api.send(post(&format!("/accounts/{account}/close")).by("alice").json(json!({"now": true})))
        .await
        .assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn an_owner_opens_up_to_the_limit_and_closing_one_frees_a_place() {
    let api = Api::with_open_account_limit(Arc::new(InMemoryEventStore::new(StoreSettings::default())), 2);
    let open = |key: &str| post("/accounts").by("alice").key(key).json(json!({"currency": "EUR"}));
    let first = api.send(open("a-1")).await;
    api.send(open("a-2")).await;
    let refused = api.send(open("a-3")).await;
    refused.assert_problem(409, "account_limit_reached");
    assert!(refused.body["detail"].as_str().unwrap().contains("maximum of 2"), "{}", refused.body);
    // A replay of an answered open is still its first answer; others are not limited by alice.
    assert_eq!(api.send(open("a-1")).await.raw, first.raw);
    api.open("bob", "EUR").await;
    // The refusal was not stored: once alice closes one, the same key opens.
    let closed = api.send(post(&format!("/accounts/{}/close", first.id("account_id"))).by("alice")).await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    assert_eq!(api.send(open("a-3")).await.status, 201);
    api.send(open("a-4")).await.assert_problem(409, "account_limit_reached");
}

// ---- metrics ----

#[tokio::test]
async fn every_request_writes_one_metrics_line_in_the_one_scheme() {
    let sink = Arc::new(MemorySink::default());
    let mut api = Api::memory();
    api.router = with_metrics(api.router, MetricsWriter::new(command_api::metrics::FUNCTION, sink.clone()));
    let account = api.open("alice", "EUR").await;
    api.send(post(&format!("/accounts/{account}/deposits")).by("alice").json(json!({"amount": 5})))
        .await
        .assert_problem(400, "validation_failed");
    api.send(post("/accounts").json(json!({"currency": "EUR"}))).await.assert_problem(401, "unauthorized");
    let lines = sink.lines();
    lines.iter().for_each(ledgerline_shared::metrics::assert_emf);
    let seen: Vec<(&str, u64, f64)> =
        lines.iter().map(|l| (l["Route"].as_str().unwrap(), l["Status"].as_u64().unwrap(), l["Refused"].as_f64().unwrap())).collect();
    assert_eq!(seen, vec![("/accounts", 201, 0.0), ("/accounts/{id}/deposits", 400, 1.0), ("/accounts", 401, 1.0)]);
    assert!(lines.iter().all(|l| l["Function"] == "command-api" && l["Requests"] == 1.0 && l["Errors"] == 0.0));
}

// ---- idempotency ----

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_returns_the_first_answer_and_changes_nothing() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let deposit = || post(&format!("/accounts/{account}/deposits")).by("alice").key("pay-1").json(json!({"amount": 250}));
    let first = api.send(deposit()).await;
    let retry = api.send(deposit()).await;
    assert_eq!((retry.status, &retry.raw), (first.status, &first.raw));
    // Whitespace and key order do not make it another request.
    let reordered =
        api.send(post(&format!("/accounts/{account}/deposits")).by("alice").key("pay-1").raw_body("{ \"amount\" : 250 }")).await;
    assert_eq!(reordered.raw, first.raw);
    assert_eq!(api.balance(account).await, 250);
    assert_eq!(api.store.read_stream(account, 0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn opening_with_a_key_twice_opens_one_account() {
    let api = Api::memory();
    let open = || post("/accounts").by("alice").key("open-1").json(json!({"currency": "EUR"}));
    let (first, second) = (api.send(open()).await, api.send(open()).await);
    assert_eq!(first.id("account_id"), second.id("account_id"));
    assert_eq!(first.header("location"), second.header("location"));
    assert_eq!(second.status, 201);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let path = format!("/accounts/{account}/deposits");
    api.send(post(&path).by("alice").key("k").json(json!({"amount": 1}))).await;
    api.send(post(&path).by("alice").key("k").json(json!({"amount": 2}))).await.assert_problem(422, "idempotency_key_reused");
    // Another path is another request too.
    api.send(post(&format!("/accounts/{account}/withdrawals")).by("alice").key("k").json(json!({"amount": 1})))
        .await
        .assert_problem(422, "idempotency_key_reused");
    assert_eq!(api.balance(account).await, 1);
}

#[tokio::test]
async fn a_business_refusal_is_remembered_with_its_key() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let withdraw = || post(&format!("/accounts/{account}/withdrawals")).by("alice").key("w-1").json(json!({"amount": 50}));
    let refused = api.send(withdraw()).await;
    refused.assert_problem(422, "insufficient_funds");
    api.deposit("alice", account, 100).await;
    // The money is there now, but this key's answer was already given.
    let retried = api.send(withdraw()).await;
    assert_eq!((retried.status, &retried.raw), (422, &refused.raw));
    assert_eq!(api.balance(account).await, 100);
}

#[tokio::test]
async fn errors_that_are_not_final_are_not_remembered() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let path = format!("/accounts/{account}/deposits");
    // 400, 403 and 404 with a key: the key stays free.
    api.send(post(&path).by("alice").key("k").json(json!({"amount": 0}))).await.assert_problem(400, "validation_failed");
    api.send(post(&format!("/accounts/{account}/freeze")).by("alice").key("k")).await.assert_problem(403, "forbidden");
    api.send(post(&path).by("bob").key("k").json(json!({"amount": 5}))).await.assert_problem(404, "account_not_found");
    api.send(post(&format!("/accounts/{}/deposits", Uuid::new_v4())).by("alice").key("k").json(json!({"amount": 5})))
        .await
        .assert_problem(404, "account_not_found");
    assert_eq!(api.send(post(&path).by("alice").key("k").json(json!({"amount": 5}))).await.status, 200);
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let api = Api::memory();
    let (alice, bob) = (user(), user());
    let a = api.open(&alice, "EUR").await;
    let b = api.open(&bob, "EUR").await;
    assert_eq!(api.send(post(&format!("/accounts/{a}/deposits")).by(&alice).key("same").json(json!({"amount": 1}))).await.status, 200);
    assert_eq!(api.send(post(&format!("/accounts/{b}/deposits")).by(&bob).key("same").json(json!({"amount": 2}))).await.status, 200);
    assert_eq!((api.balance(a).await, api.balance(b).await), (1, 2));
}

// ---- routing ----

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems_too() {
    let api = Api::memory();
    api.send(post("/nowhere").by("alice")).await.assert_problem(404, "not_found");
    api.send(request("GET", "/transfers").by("alice")).await.assert_problem(405, "method_not_allowed");
    api.send(request("DELETE", "/accounts").by("alice")).await.assert_problem(405, "method_not_allowed");
}

// ---- conflicts ----

/// A store whose appends to existing accounts clash, as if another writer
/// always won; with `even_locked`, also after locking (which a real store
/// never does: this stands for deadlocks that keep coming back).
struct AlwaysConflicting {
    inner: InMemoryEventStore,
    even_locked: bool,
    appends: AtomicU32,
    locked_appends: AtomicU32,
}

impl AlwaysConflicting {
    fn new(even_locked: bool) -> Self {
        let inner = InMemoryEventStore::new(StoreSettings::default());
        Self { inner, even_locked, appends: AtomicU32::new(0), locked_appends: AtomicU32::new(0) }
    }

    fn clash(&self, batch: &AppendBatch) -> Option<StoreError> {
        let stream = batch.streams.iter().find(|s| s.expected_version > 0)?;
        Some(StoreError::ConcurrencyConflict {
            stream_id: stream.stream_id,
            expected: stream.expected_version,
            actual: stream.expected_version + 1,
        })
    }
}

struct CountedLock<'a> {
    store: &'a AlwaysConflicting,
    inner: Box<dyn LockedStreams + 'a>,
}

#[async_trait]
impl LockedStreams for CountedLock<'_> {
    async fn append(self: Box<Self>, batch: AppendBatch) -> Result<AppendOutcome, StoreError> {
        self.store.locked_appends.fetch_add(1, Ordering::SeqCst);
        if self.store.even_locked
            && let Some(clash) = self.store.clash(&batch)
        {
            self.inner.release().await;
            return Err(clash);
        }
        self.inner.append(batch).await
    }
    async fn read_stream(&self, id: Uuid, after: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(id, after).await
    }
    async fn release(self: Box<Self>) {
        self.inner.release().await
    }
}

#[async_trait]
impl EventStore for AlwaysConflicting {
    async fn append(&self, batch: AppendBatch) -> Result<AppendOutcome, StoreError> {
        if let Some(clash) = self.clash(&batch) {
            self.appends.fetch_add(1, Ordering::SeqCst);
            return Err(clash);
        }
        self.inner.append(batch).await
    }
    async fn read_for_command(&self, read: CommandRead) -> Result<CommandState, StoreError> {
        self.inner.read_for_command(read).await
    }
    async fn lock_for_command(&self, read: CommandRead) -> Result<(CommandState, Box<dyn LockedStreams + '_>), StoreError> {
        let (state, inner) = self.inner.lock_for_command(read).await?;
        Ok((state, Box::new(CountedLock { store: self, inner })))
    }
    async fn read_stream(&self, id: Uuid, after: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(id, after).await
    }
    async fn stream_version(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(id).await
    }
    async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn head_position(&self) -> Result<i64, StoreError> {
        self.inner.head_position().await
    }
    async fn load_snapshot(&self, id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(id).await
    }
    async fn find_idempotency(&self, caller: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.find_idempotency(caller, key).await
    }
    async fn purge_expired_idempotency(&self) -> Result<u64, StoreError> {
        self.inner.purge_expired_idempotency().await
    }
    async fn outbox_for_stream(&self, id: Uuid) -> Result<Vec<OutboxMessage>, StoreError> {
        self.inner.outbox_for_stream(id).await
    }
    async fn stream_heads(&self, query: HeadQuery) -> Result<Vec<StreamHead>, StoreError> {
        self.inner.stream_heads(query).await
    }
    async fn stream_count(&self, upto: Option<Uuid>) -> Result<u64, StoreError> {
        self.inner.stream_count(upto).await
    }
}

#[tokio::test]
async fn after_a_conflict_the_command_locks_the_account_and_succeeds() {
    let store = Arc::new(AlwaysConflicting::new(false));
    let api = Api::with_store(store.clone(), CommandSettings { max_attempts: 4, ..CommandSettings::default() });
    let account = api.open("alice", "EUR").await;
    let response = api.deposit("alice", account, 5).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!((store.appends.load(Ordering::SeqCst), store.locked_appends.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(api.balance(account).await, 5, "deposited once");
}

#[tokio::test]
async fn after_a_conflict_the_accounts_next_commands_lock_from_their_first_attempt() {
    let store = Arc::new(AlwaysConflicting::new(false));
    let api = Api::with_store(store.clone(), CommandSettings { max_attempts: 4, ..CommandSettings::default() });
    let (hot, calm) = (api.open("alice", "EUR").await, api.open("alice", "EUR").await);
    let counts = || (store.appends.load(Ordering::SeqCst), store.locked_appends.load(Ordering::SeqCst));
    assert_eq!(api.deposit("alice", hot, 5).await.status, 200);
    assert_eq!(counts(), (1, 1), "the first deposit conflicted, then locked");
    assert_eq!(api.deposit("alice", hot, 5).await.status, 200);
    assert_eq!(counts(), (1, 2), "the next one locked at once: no unlocked attempt");
    let transfer = api
        .send(post("/transfers").by("alice").key(&fresh_key()).json(json!({"from_account_id": hot, "to_account_id": calm, "amount": 3})))
        .await;
    assert_eq!(transfer.status, 201, "{}", transfer.body);
    assert_eq!(counts(), (1, 3), "a transfer touching it too");
    assert_eq!(api.deposit("alice", calm, 1).await.status, 200);
    assert_eq!(counts(), (2, 4), "another account tries unlocked first (and learns)");
    assert_eq!((api.balance(hot).await, api.balance(calm).await), (7, 4), "each command applied once");
}

#[tokio::test]
async fn conflicts_that_keep_coming_are_retried_a_bounded_number_of_times_then_answered_409() {
    let store = Arc::new(AlwaysConflicting::new(true));
    let api = Api::with_store(store.clone(), CommandSettings { max_attempts: 4, ..CommandSettings::default() });
    let account = api.open("alice", "EUR").await;
    let response = api.deposit("alice", account, 1).await;
    response.assert_problem(409, "concurrency_conflict");
    assert_eq!((store.appends.load(Ordering::SeqCst), store.locked_appends.load(Ordering::SeqCst)), (1, 3));
    assert!(response.header("retry-after").is_some());
    assert_eq!(api.balance(account).await, 0);
}
