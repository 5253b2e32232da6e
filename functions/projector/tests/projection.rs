//! The projector against real services: PostgreSQL (event store), the
//! DynamoDB emulator, Redis, and (for dead letters) the Kafka broker.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::event_store::EventStore;
use ledgerline_shared::read_model::{
    AccountView, ApplyOutcome, Change, ReadModelError, ReadModelStore, TransactionKind, TransactionPage, TransactionView,
};
use projector::Projector;
use projector::dead_letter::{DeadLetterSource, InMemoryDeadLetters};
use support::{Ledger, OwnRedis, event_store, in_partition, kafka_event, raw_record_json, read_model, record_json};

fn projector(
    read_model: Arc<dyn ReadModelStore>,
    store: Option<Arc<dyn EventStore>>,
    cache: Option<Arc<AccountCache>>,
) -> (Projector, Arc<InMemoryDeadLetters>) {
    let dead_letters = Arc::new(InMemoryDeadLetters::default());
    (Projector::new(read_model, cache, store, dead_letters.clone()), dead_letters)
}

#[tokio::test]
async fn a_batch_builds_accounts_histories_and_both_sides_of_a_transfer() {
    let store = event_store().await;
    let ledger = Ledger::new(store.clone());
    let (alice, bob) = (ledger.open("alice").await, ledger.open("bob").await);
    ledger.deposit(alice, 1_000).await;
    ledger.transfer(alice, bob, 300).await;
    ledger.withdraw(bob, 100).await;
    ledger.freeze(alice).await;

    let model = read_model().await;
    let (projector, dead_letters) = projector(model.clone(), None, None);
    // Like Kafka with key = account id: each account's events in one partition.
    let mut records = in_partition(0, 100, &ledger.events(alice).await);
    records.extend(in_partition(1, 500, &ledger.events(bob).await));
    let (response, summary) = projector.handle(kafka_event(records)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!((summary.applied, summary.duplicates, summary.failed), (7, 0, 0));
    assert!(dead_letters.letters().is_empty());

    let a = model.account(alice, true).await.unwrap().unwrap();
    assert_eq!((a.balance, a.status.as_str(), a.version, a.owner_id.as_str()), (700, "frozen", 4, "alice"));
    let b = model.account(bob, true).await.unwrap().unwrap();
    assert_eq!((b.balance, b.status.as_str(), b.version), (200, "open", 3));
    let history = model.transactions(alice, 10, None, true).await.unwrap().items;
    assert_eq!(history.iter().map(|t| t.kind).collect::<Vec<_>>(), vec![TransactionKind::TransferOut, TransactionKind::Deposit]);
    assert_eq!(history[0].counterparty_account_id, Some(bob));
    let bob_history = model.transactions(bob, 10, None, true).await.unwrap().items;
    assert_eq!(bob_history[1].kind, TransactionKind::TransferIn);
    assert_eq!(bob_history[1].transfer_id, history[0].transfer_id, "both sides carry the same transfer id");
}

#[tokio::test]
async fn a_duplicate_batch_leaves_the_tables_as_they_were() {
    let store = event_store().await;
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("carol").await;
    ledger.deposit(account, 50).await;
    ledger.deposit(account, 25).await;
    let model = read_model().await;
    let (projector, _) = projector(model.clone(), None, None);
    let records = in_partition(0, 0, &ledger.events(account).await);
    projector.handle(kafka_event(records.clone())).await;
    let before = (model.account(account, true).await.unwrap(), model.transactions(account, 10, None, true).await.unwrap());
    let (response, summary) = projector.handle(kafka_event(records)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((summary.applied, summary.duplicates), (0, 3));
    let after = (model.account(account, true).await.unwrap(), model.transactions(account, 10, None, true).await.unwrap());
    assert_eq!(before, after);
}

/// The read model, counting its writes: one change at a time, or a run.
struct Counting {
    inner: Arc<dyn ReadModelStore>,
    single: AtomicU32,
    runs: AtomicU32,
}

#[async_trait::async_trait]
impl ReadModelStore for Counting {
    async fn apply(&self, change: &Change) -> Result<ApplyOutcome, ReadModelError> {
        self.single.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(change).await
    }

    async fn apply_run(&self, changes: &[Change]) -> Result<Option<AccountView>, ReadModelError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.apply_run(changes).await
    }

    async fn account(&self, account_id: uuid::Uuid, consistent: bool) -> Result<Option<AccountView>, ReadModelError> {
        self.inner.account(account_id, consistent).await
    }

    async fn accounts_of_owner(&self, owner_id: &str) -> Result<Vec<AccountView>, ReadModelError> {
        self.inner.accounts_of_owner(owner_id).await
    }

    async fn transactions(
        &self,
        account_id: uuid::Uuid,
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

    async fn accounts(&self, ids: &[uuid::Uuid]) -> Result<Vec<AccountView>, ReadModelError> {
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
async fn a_partly_redelivered_batch_costs_a_read_and_a_run_not_a_write_per_record() {
    let store = event_store().await;
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("erin").await;
    for amount in [10, 20, 30, 40] {
        ledger.deposit(account, amount).await;
    }
    let events = ledger.events(account).await;
    let model = read_model().await;
    let counting = Arc::new(Counting { inner: model.clone(), single: AtomicU32::new(0), runs: AtomicU32::new(0) });
    let (projector, _) = projector(counting.clone(), None, None);
    projector.handle(kafka_event(in_partition(0, 0, &events[..3]))).await;
    // Lambda delivers from an earlier offset again: versions 1-3 once more, then 4 and 5.
    let (response, summary) = projector.handle(kafka_event(in_partition(0, 0, &events))).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!((summary.applied, summary.duplicates), (2, 3));
    assert_eq!(counting.single.load(Ordering::SeqCst), 0, "no change was written one by one");
    assert_eq!(counting.runs.load(Ordering::SeqCst), 3, "the first run, the refused run of 1-5, the run of 4-5");
    let view = model.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.balance, view.version), (100, 5));
    assert_eq!(model.transactions(account, 10, None, true).await.unwrap().items.len(), 4);
}

#[tokio::test]
async fn a_gap_is_filled_from_the_event_store_never_skipped() {
    let store = event_store().await;
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("dave").await;
    ledger.deposit(account, 10).await;
    ledger.deposit(account, 20).await;
    ledger.deposit(account, 30).await;
    let events = ledger.events(account).await;
    let model = read_model().await;
    let (projector, _) = projector(model.clone(), Some(store.clone()), None);
    // Versions 1 and 4 arrive; 2 and 3 are still somewhere upstream.
    let (response, summary) = projector.handle(kafka_event(vec![record_json(0, 7, &events[0]), record_json(0, 8, &events[3])])).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(summary.gap_events_filled, 2);
    let view = model.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.balance, view.version), (60, 4));
    assert_eq!(model.transactions(account, 10, None, true).await.unwrap().items.len(), 3);
    // When 2 and 3 do arrive, they are duplicates.
    let (_, later) = projector.handle(kafka_event(in_partition(0, 9, &events[1..3]))).await;
    assert_eq!((later.applied, later.duplicates), (0, 2));
}

#[tokio::test]
async fn without_the_event_store_a_gap_fails_that_record_and_the_rest_of_its_partition() {
    let store = event_store().await;
    let ledger = Ledger::new(store.clone());
    let (gappy, other) = (ledger.open("erin").await, ledger.open("frank").await);
    ledger.deposit(gappy, 10).await;
    ledger.deposit(gappy, 20).await;
    ledger.deposit(other, 5).await;
    let (gappy_events, other_events) = (ledger.events(gappy).await, ledger.events(other).await);
    let model = read_model().await;
    let (projector, _) = projector(model.clone(), None, None);

    // Partition 0: v1, then v3 (v2 missing), then another account's event
    // behind it. Partition 1 is unaffected.
    let records = vec![
        record_json(0, 10, &gappy_events[0]),
        record_json(0, 11, &gappy_events[2]),
        record_json(0, 12, &other_events[0]),
        record_json(1, 40, &other_events[0]),
    ];
    let (response, summary) = projector.handle(kafka_event(records)).await;
    let failed: Vec<(String, i64)> =
        response.batch_item_failures.iter().map(|f| (f.item_identifier.partition.clone(), f.item_identifier.offset)).collect();
    let partition = format!("{}-0", support::TOPIC);
    assert_eq!(failed, vec![(partition.clone(), 11), (partition, 12)]);
    assert_eq!(summary.failed, 2);
    assert_eq!(model.account(gappy, true).await.unwrap().unwrap().version, 1, "v3 was not skipped past v2");
    assert_eq!(model.account(other, true).await.unwrap().unwrap().version, 1, "partition 1 went on");

    // Lambda retries from the failed offset once v2 is there: all lands.
    let retry = vec![record_json(0, 10, &gappy_events[1]), record_json(0, 11, &gappy_events[2]), record_json(0, 12, &other_events[0])];
    let (response, _) = projector.handle(kafka_event(retry)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(model.account(gappy, true).await.unwrap().unwrap().balance, 30);
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_the_rest_applied() {
    let store = event_store().await;
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("gina").await;
    ledger.deposit(account, 10).await;
    let events = ledger.events(account).await;
    let model = read_model().await;
    let (projector, dead_letters) = projector(model.clone(), None, None);
    use base64::Engine;
    let not_an_envelope = base64::engine::general_purpose::STANDARD.encode(b"\x09garbage");
    let records = vec![
        record_json(0, 1, &events[0]),
        raw_record_json(0, 2, Some("%%% not base64 %%%")),
        raw_record_json(0, 3, Some(&not_an_envelope)),
        raw_record_json(0, 4, None),
        record_json(0, 5, &events[1]),
    ];
    let (response, summary) = projector.handle(kafka_event(records)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((summary.applied, summary.dead_lettered), (2, 3));
    let letters = dead_letters.letters();
    let records: Vec<(i64, Option<&str>)> = letters
        .iter()
        .map(|l| match &l.source {
            DeadLetterSource::KafkaRecord { offset, value, .. } => (*offset, value.as_deref()),
            other => panic!("a projector letter is a Kafka record: {other:?}"),
        })
        .collect();
    assert_eq!(records.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(letters[0].error.contains("base64"), "{}", letters[0].error);
    assert!(letters[1].error.contains("envelope"), "{}", letters[1].error);
    assert_eq!(records[0].1, Some("%%% not base64 %%%"), "the original value is kept");
    assert_eq!(model.account(account, true).await.unwrap().unwrap().balance, 10);
}

#[tokio::test]
async fn redis_down_does_not_fail_the_batch_and_the_cache_catches_up() {
    let store = event_store().await;
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("hank").await;
    let mut redis = OwnRedis::start();
    let cache = Arc::new(
        AccountCache::new(CacheSettings { url: redis.url(), ttl: Duration::from_secs(60), timeout: Duration::from_millis(200) }).unwrap(),
    );
    let model = read_model().await;
    let (projector, _) = projector(model.clone(), None, Some(cache.clone()));

    let (_, summary) = projector.handle(kafka_event(in_partition(0, 0, &ledger.events(account).await))).await;
    assert_eq!(summary.cache_refreshed, 1);
    assert_eq!(cache.get(account).await.unwrap().unwrap().version, 1);

    redis.stop();
    ledger.deposit(account, 40).await;
    let events = ledger.events(account).await;
    let (response, summary) = projector.handle(kafka_event(vec![record_json(0, 1, &events[1])])).await;
    assert!(response.batch_item_failures.is_empty(), "Redis down must not fail the batch");
    assert_eq!((summary.applied, summary.cache_errors), (1, 1));
    assert_eq!(model.account(account, true).await.unwrap().unwrap().balance, 40);

    redis.restart(); // empty: it keeps nothing on disk
    ledger.deposit(account, 2).await;
    let events = ledger.events(account).await;
    let (_, summary) = projector.handle(kafka_event(vec![record_json(0, 2, &events[2])])).await;
    assert_eq!(summary.cache_errors, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match cache.get(account).await {
            Ok(Some(view)) => {
                assert_eq!((view.version, view.balance), (3, 42));
                break;
            }
            other => assert!(tokio::time::Instant::now() < deadline, "the cache never caught up: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
