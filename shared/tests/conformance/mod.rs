//! The event store contract, as tests. `memory_store.rs` and
//! `postgres_store.rs` run every one of these against their implementation
//! through [`conformance_tests!`], so the in-memory store used by the
//! embedded mode behaves exactly like PostgreSQL.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::domain::{AccountCommand, Amount, Currency, OverdraftLimit, OwnerId, TransferCommand, decide, decide_transfer};
use ledgerline_shared::event_store::{
    AppendBatch, AppendOutcome, CommandRead, EventEnvelope, EventMetadata, EventStore, NewEvent, NewSnapshot, OpenStreamLimit,
    OutboxStatus, StoreError, StoreSettings, StreamAppend, StreamTail,
};
use ledgerline_shared::idempotency::{IdempotencyKey, NewIdempotencyRecord};
use tokio::sync::Barrier;
use uuid::Uuid;

/// Builds a fresh store with the given settings.
#[async_trait]
pub trait Factory: Sync {
    async fn make(&self, settings: StoreSettings) -> Arc<dyn EventStore>;
}

/// Generates one `#[tokio::test]` per conformance test for `$factory`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@each $factory;
            appended_events_read_back_in_order_with_their_metadata,
            versions_continue_across_appends_and_reads_start_after_a_version,
            a_stale_expected_version_is_a_conflict_and_writes_nothing,
            expecting_events_in_a_missing_stream_is_stream_not_found,
            creating_a_stream_that_exists_is_a_conflict,
            a_two_stream_append_with_one_clash_writes_nothing_at_all,
            every_event_gets_one_outbox_row_carrying_its_envelope,
            an_oversized_payload_is_refused_and_writes_nothing,
            malformed_batches_are_refused,
            a_stored_event_id_cannot_be_stored_again,
            an_idempotent_replay_returns_the_first_answer_and_writes_nothing,
            a_key_reused_for_another_request_is_refused,
            idempotency_keys_belong_to_one_caller,
            a_refusal_is_stored_without_events,
            an_expired_key_can_be_used_again_and_is_purged,
            requests_racing_with_one_key_execute_once,
            snapshots_are_kept_and_only_replaced_by_newer_ones,
            read_all_walks_every_stream_in_global_order,
            stream_heads_list_changes_oldest_first_and_every_stream_by_id,
            of_many_appenders_with_one_expected_version_exactly_one_wins,
            concurrent_appenders_never_lose_or_duplicate_a_version,
            concurrent_transfers_between_two_streams_lose_nothing,
            the_repository_loads_from_a_snapshot_plus_later_events,
            a_snapshot_that_does_not_decode_is_ignored,
            the_repository_snapshots_every_n_events,
            a_command_read_brings_the_key_record_and_each_stream_from_its_snapshot,
            a_lock_holds_other_writers_back_until_its_append,
            a_released_or_dropped_lock_lets_the_next_writer_in,
            writers_that_lock_one_stream_never_conflict,
            a_locked_command_and_a_same_key_retry_do_not_deadlock,
            racing_creations_never_pass_the_open_stream_limit,
        );
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                conformance::$name(&$factory).await;
            }
        )*
    };
}

// ---- helpers ----

fn event(label: &str) -> NewEvent {
    NewEvent { event_id: Uuid::new_v4(), event_type: "TestEvent".into(), schema_version: 1, payload: label.as_bytes().to_vec() }
}

fn events(labels: &[&str]) -> Vec<NewEvent> {
    labels.iter().map(|l| event(l)).collect()
}

fn metadata() -> EventMetadata {
    EventMetadata::now("corr-1", Uuid::new_v4(), "tester")
}

fn stream(stream_id: Uuid, expected_version: u64, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend { stream_id, expected_version, events, snapshot: None }
}

fn batch(streams: Vec<StreamAppend>) -> AppendBatch {
    AppendBatch { streams, metadata: metadata(), idempotency: None, open_limit: None }
}

fn key_record(caller: &str, key: &str, request: &str, expires_in: Duration) -> NewIdempotencyRecord {
    NewIdempotencyRecord {
        caller_id: caller.into(),
        key: IdempotencyKey::new(key).unwrap(),
        request_hash: ledgerline_shared::idempotency::request_hash("POST", "/test", request.as_bytes()),
        response_status: 200,
        response_body: format!("answer to {request}").into_bytes(),
        expires_at: Utc::now() + expires_in,
    }
}

fn caller() -> String {
    format!("caller-{}", Uuid::new_v4())
}

async fn payloads(store: &dyn EventStore, stream_id: Uuid) -> Vec<String> {
    store.read_stream(stream_id, 0).await.unwrap().into_iter().map(|e| String::from_utf8(e.payload).unwrap()).collect()
}

async fn default_store(factory: &dyn Factory) -> Arc<dyn EventStore> {
    factory.make(StoreSettings::default()).await
}

// ---- appending and reading ----

pub async fn appended_events_read_back_in_order_with_their_metadata(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    let new = events(&["a", "b", "c"]);
    let meta = metadata();
    let outcome = store
        .append(AppendBatch { streams: vec![stream(id, 0, new.clone())], metadata: meta.clone(), idempotency: None, open_limit: None })
        .await
        .unwrap();
    let AppendOutcome::Committed(versions) = outcome else { panic!("expected a commit") };
    assert_eq!(versions.len(), 1);
    assert_eq!((versions[0].stream_id, versions[0].version), (id, 3));

    let read = store.read_stream(id, 0).await.unwrap();
    assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3]);
    for (recorded, sent) in read.iter().zip(&new) {
        assert_eq!(recorded.event_id, sent.event_id);
        assert_eq!(recorded.event_type, "TestEvent");
        assert_eq!(recorded.schema_version, 1);
        assert_eq!(recorded.payload, sent.payload);
        assert_eq!(recorded.metadata, meta);
        assert_eq!(recorded.stream_id, id);
    }
    assert!(read.windows(2).all(|w| w[0].global_position < w[1].global_position));
    assert_eq!(store.stream_version(id).await.unwrap(), Some(3));
    assert_eq!(store.stream_version(Uuid::new_v4()).await.unwrap(), None);
    assert!(store.read_stream(Uuid::new_v4(), 0).await.unwrap().is_empty());
}

pub async fn versions_continue_across_appends_and_reads_start_after_a_version(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    store.append(batch(vec![stream(id, 0, events(&["a", "b"]))])).await.unwrap();
    store.append(batch(vec![stream(id, 2, events(&["c"]))])).await.unwrap();
    assert_eq!(payloads(&*store, id).await, ["a", "b", "c"]);
    let tail = store.read_stream(id, 1).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2, 3]);
    assert!(store.read_stream(id, 3).await.unwrap().is_empty());
}

pub async fn a_stale_expected_version_is_a_conflict_and_writes_nothing(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    store.append(batch(vec![stream(id, 0, events(&["a", "b"]))])).await.unwrap();
    let error = store.append(batch(vec![stream(id, 1, events(&["late"]))])).await.unwrap_err();
    assert!(matches!(error, StoreError::ConcurrencyConflict { stream_id, expected: 1, actual: 2 } if stream_id == id), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(payloads(&*store, id).await, ["a", "b"]);
    assert_eq!(store.outbox_for_stream(id).await.unwrap().len(), 2);
}

pub async fn expecting_events_in_a_missing_stream_is_stream_not_found(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    let error = store.append(batch(vec![stream(id, 3, events(&["a"]))])).await.unwrap_err();
    assert!(matches!(error, StoreError::StreamNotFound(s) if s == id), "{error:?}");
    assert_eq!(store.stream_version(id).await.unwrap(), None);
}

pub async fn creating_a_stream_that_exists_is_a_conflict(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    store.append(batch(vec![stream(id, 0, events(&["first"]))])).await.unwrap();
    let error = store.append(batch(vec![stream(id, 0, events(&["second"]))])).await.unwrap_err();
    assert!(matches!(error, StoreError::ConcurrencyConflict { expected: 0, actual: 1, .. }), "{error:?}");
    assert_eq!(payloads(&*store, id).await, ["first"]);
}

pub async fn a_two_stream_append_with_one_clash_writes_nothing_at_all(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    store.append(batch(vec![stream(a, 0, events(&["a1"]))])).await.unwrap();
    store.append(batch(vec![stream(b, 0, events(&["b1", "b2"]))])).await.unwrap();
    let caller = caller();
    // `a` is current, `b` is stale: the transfer must leave no trace at all.
    let mut transfer = batch(vec![stream(a, 1, events(&["a-out"])), stream(b, 1, events(&["b-in"]))]);
    transfer.idempotency = Some(key_record(&caller, "k1", "transfer", Duration::hours(1)));
    let error = store.append(transfer.clone()).await.unwrap_err();
    assert!(matches!(error, StoreError::ConcurrencyConflict { stream_id, .. } if stream_id == b), "{error:?}");
    assert_eq!(payloads(&*store, a).await, ["a1"]);
    assert_eq!(payloads(&*store, b).await, ["b1", "b2"]);
    assert_eq!(store.outbox_for_stream(a).await.unwrap().len(), 1);
    assert_eq!(store.outbox_for_stream(b).await.unwrap().len(), 2);
    assert_eq!(store.find_idempotency(&caller, "k1").await.unwrap(), None);
    // And with both versions right, the same transfer goes through whole.
    transfer.streams[1].expected_version = 2;
    store.append(transfer).await.unwrap();
    assert_eq!(payloads(&*store, a).await, ["a1", "a-out"]);
    assert_eq!(payloads(&*store, b).await, ["b1", "b2", "b-in"]);
    assert!(store.find_idempotency(&caller, "k1").await.unwrap().is_some());
}

pub async fn every_event_gets_one_outbox_row_carrying_its_envelope(factory: &dyn Factory) {
    let settings = StoreSettings { events_topic: "test.topic".into(), ..StoreSettings::default() };
    let store = factory.make(settings).await;
    let id = Uuid::new_v4();
    let new = events(&["x", "y"]);
    let meta = metadata();
    store
        .append(AppendBatch { streams: vec![stream(id, 0, new.clone())], metadata: meta.clone(), idempotency: None, open_limit: None })
        .await
        .unwrap();
    let rows = store.outbox_for_stream(id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].id < rows[1].id, "outbox order follows stream order");
    for (i, (row, sent)) in rows.iter().zip(&new).enumerate() {
        assert_eq!(row.event_id, sent.event_id);
        assert_eq!(row.stream_version, i as u64 + 1);
        assert_eq!(row.topic, "test.topic");
        assert_eq!(row.key, id.to_string());
        assert_eq!(row.status, OutboxStatus::Pending);
        assert_eq!(row.attempts, 0);
        assert_eq!(row.last_error, None);
        let envelope = EventEnvelope::decode(&row.payload).unwrap();
        assert_eq!(envelope.event_id, sent.event_id);
        assert_eq!(envelope.stream_id, id);
        assert_eq!(envelope.version, i as u64 + 1);
        assert_eq!(envelope.payload, sent.payload);
        assert_eq!(envelope.metadata, meta);
        assert_eq!(row.headers, envelope.headers());
    }
}

pub async fn an_oversized_payload_is_refused_and_writes_nothing(factory: &dyn Factory) {
    let store = factory.make(StoreSettings { max_event_bytes: 16, ..StoreSettings::default() }).await;
    let id = Uuid::new_v4();
    let mut too_big = event("x");
    too_big.payload = vec![7; 17];
    let error = store.append(batch(vec![stream(id, 0, vec![event("ok"), too_big])])).await.unwrap_err();
    assert!(matches!(error, StoreError::PayloadTooLarge { size: 17, limit: 16 }), "{error:?}");
    assert_eq!(store.stream_version(id).await.unwrap(), None);
    assert!(store.outbox_for_stream(id).await.unwrap().is_empty());
    let mut just_fits = event("x");
    just_fits.payload = vec![7; 16];
    store.append(batch(vec![stream(id, 0, vec![just_fits])])).await.unwrap();
}

pub async fn malformed_batches_are_refused(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    let duplicate = event("dup");
    let cases = vec![
        ("nothing at all", batch(vec![])),
        ("a stream without events", batch(vec![stream(id, 0, vec![])])),
        ("a stream twice", batch(vec![stream(id, 0, events(&["a"])), stream(id, 1, events(&["b"]))])),
        ("an event id twice", batch(vec![stream(id, 0, vec![duplicate.clone(), duplicate])])),
        (
            "a snapshot beyond the append",
            batch(vec![StreamAppend {
                snapshot: Some(NewSnapshot { version: 2, schema_version: 1, state: vec![1] }),
                ..stream(id, 0, events(&["a"]))
            }]),
        ),
    ];
    for (what, bad) in cases {
        let error = store.append(bad).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidAppend(_)), "{what}: {error:?}");
    }
    assert_eq!(store.stream_version(id).await.unwrap(), None);
}

pub async fn a_stored_event_id_cannot_be_stored_again(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let original = event("original");
    store.append(batch(vec![stream(a, 0, vec![original.clone()])])).await.unwrap();
    let error = store.append(batch(vec![stream(b, 0, vec![event("fine"), original.clone()])])).await.unwrap_err();
    assert!(matches!(error, StoreError::DuplicateEventId(id) if id == original.event_id), "{error:?}");
    assert_eq!(store.stream_version(b).await.unwrap(), None);
}

// ---- idempotency ----

pub async fn an_idempotent_replay_returns_the_first_answer_and_writes_nothing(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (id, caller) = (Uuid::new_v4(), caller());
    let mut first = batch(vec![stream(id, 0, events(&["deposit"]))]);
    first.idempotency = Some(key_record(&caller, "key-1", "deposit 10", Duration::hours(24)));
    assert!(matches!(store.append(first).await.unwrap(), AppendOutcome::Committed(_)));

    // The retry carries new event ids and a stale version: it must not matter.
    let mut retry = batch(vec![stream(id, 0, events(&["deposit again"]))]);
    let mut record = key_record(&caller, "key-1", "deposit 10", Duration::hours(24));
    record.response_body = b"a different answer".to_vec();
    retry.idempotency = Some(record);
    let AppendOutcome::Replayed(stored) = store.append(retry).await.unwrap() else { panic!("expected a replay") };
    assert_eq!(stored.response_status, 200);
    assert_eq!(stored.response_body, b"answer to deposit 10");
    assert_eq!(stored.caller_id, caller);
    assert_eq!(stored.key, "key-1");
    assert_eq!(payloads(&*store, id).await, ["deposit"]);
    assert_eq!(store.outbox_for_stream(id).await.unwrap().len(), 1);
    assert_eq!(store.find_idempotency(&caller, "key-1").await.unwrap(), Some(stored));
}

pub async fn a_key_reused_for_another_request_is_refused(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (a, b, caller) = (Uuid::new_v4(), Uuid::new_v4(), caller());
    let mut first = batch(vec![stream(a, 0, events(&["one"]))]);
    first.idempotency = Some(key_record(&caller, "key-2", "request one", Duration::hours(24)));
    store.append(first).await.unwrap();
    let mut other = batch(vec![stream(b, 0, events(&["two"]))]);
    other.idempotency = Some(key_record(&caller, "key-2", "request two", Duration::hours(24)));
    let error = store.append(other).await.unwrap_err();
    assert!(matches!(error, StoreError::IdempotencyKeyReused { ref key } if key == "key-2"), "{error:?}");
    assert_eq!(store.stream_version(b).await.unwrap(), None);
}

pub async fn idempotency_keys_belong_to_one_caller(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (alice, bob) = (caller(), caller());
    for (who, id) in [(&alice, Uuid::new_v4()), (&bob, Uuid::new_v4())] {
        let mut b = batch(vec![stream(id, 0, events(&["open"]))]);
        b.idempotency = Some(key_record(who, "shared-key", "open", Duration::hours(1)));
        assert!(matches!(store.append(b).await.unwrap(), AppendOutcome::Committed(_)), "{who}");
        assert_eq!(store.stream_version(id).await.unwrap(), Some(1));
    }
    assert_eq!(store.find_idempotency(&alice, "shared-key").await.unwrap().unwrap().caller_id, alice);
    assert_eq!(store.find_idempotency(&bob, "shared-key").await.unwrap().unwrap().caller_id, bob);
}

pub async fn a_refusal_is_stored_without_events(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let caller = caller();
    let mut record = key_record(&caller, "refused", "withdraw too much", Duration::hours(1));
    record.response_status = 422;
    let refusal = AppendBatch { streams: vec![], metadata: metadata(), idempotency: Some(record), open_limit: None };
    assert_eq!(store.append(refusal.clone()).await.unwrap(), AppendOutcome::Committed(vec![]));
    let AppendOutcome::Replayed(stored) = store.append(refusal).await.unwrap() else { panic!("expected a replay") };
    assert_eq!(stored.response_status, 422);
}

pub async fn an_expired_key_can_be_used_again_and_is_purged(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (a, b, caller) = (Uuid::new_v4(), Uuid::new_v4(), caller());
    let mut old = batch(vec![stream(a, 0, events(&["old"]))]);
    old.idempotency = Some(key_record(&caller, "old-key", "first", -Duration::seconds(1)));
    store.append(old).await.unwrap();
    assert_eq!(store.find_idempotency(&caller, "old-key").await.unwrap(), None, "an expired record is not served");

    let mut stale = batch(vec![stream(Uuid::new_v4(), 0, events(&["x"]))]);
    stale.idempotency = Some(key_record(&caller, "stale-key", "x", -Duration::seconds(1)));
    store.append(stale).await.unwrap();
    assert!(store.purge_expired_idempotency().await.unwrap() >= 1);

    let mut new = batch(vec![stream(b, 0, events(&["new"]))]);
    new.idempotency = Some(key_record(&caller, "old-key", "second", Duration::hours(1)));
    assert!(matches!(store.append(new).await.unwrap(), AppendOutcome::Committed(_)));
    assert_eq!(store.stream_version(b).await.unwrap(), Some(1));
    let record = store.find_idempotency(&caller, "old-key").await.unwrap().unwrap();
    assert_eq!(record.response_body, b"answer to second");
}

pub async fn requests_racing_with_one_key_execute_once(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let caller = caller();
    const RACERS: usize = 8;
    let barrier = Arc::new(Barrier::new(RACERS));
    let streams: Vec<Uuid> = (0..RACERS).map(|_| Uuid::new_v4()).collect();
    let mut tasks = Vec::new();
    for &id in &streams {
        let (store, barrier, caller) = (store.clone(), barrier.clone(), caller.clone());
        tasks.push(tokio::spawn(async move {
            let mut b = batch(vec![stream(id, 0, events(&["once"]))]);
            b.idempotency = Some(key_record(&caller, "racy", "same request", Duration::hours(1)));
            barrier.wait().await;
            store.append(b).await.unwrap()
        }));
    }
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap() {
            AppendOutcome::Committed(_) => committed += 1,
            AppendOutcome::Replayed(record) => {
                assert_eq!(record.response_body, b"answer to same request")
            }
        }
    }
    assert_eq!(committed, 1);
    let mut created = 0;
    for id in streams {
        created += store.stream_version(id).await.unwrap().is_some() as usize;
    }
    assert_eq!(created, 1, "exactly one of the racing requests executed");
}

// ---- snapshots and global order ----

pub async fn snapshots_are_kept_and_only_replaced_by_newer_ones(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    assert_eq!(store.load_snapshot(id).await.unwrap(), None);
    let with_snapshot = |expected, labels: &[&str], version, state: &[u8]| StreamAppend {
        snapshot: Some(NewSnapshot { version, schema_version: 1, state: state.to_vec() }),
        ..stream(id, expected, events(labels))
    };
    store.append(batch(vec![with_snapshot(0, &["a", "b"], 2, b"at two")])).await.unwrap();
    let snapshot = store.load_snapshot(id).await.unwrap().unwrap();
    assert_eq!((snapshot.stream_id, snapshot.version, snapshot.state.as_slice()), (id, 2, &b"at two"[..]));
    store.append(batch(vec![with_snapshot(2, &["c", "d"], 3, b"at three")])).await.unwrap();
    assert_eq!(store.load_snapshot(id).await.unwrap().unwrap().state, b"at three");
}

pub async fn read_all_walks_every_stream_in_global_order(factory: &dyn Factory) {
    let store = default_store(factory).await;
    // Other tests may write at the same time; look only at our streams.
    let start = last_position(&*store).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    store.append(batch(vec![stream(a, 0, events(&["a1"]))])).await.unwrap();
    store.append(batch(vec![stream(b, 0, events(&["b1", "b2"]))])).await.unwrap();
    store.append(batch(vec![stream(a, 1, events(&["a2"])), stream(b, 2, events(&["b3"]))])).await.unwrap();
    let mut ours = Vec::new();
    let mut position = start;
    loop {
        let page = store.read_all(position, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        position = last.global_position;
        ours.extend(page.into_iter().filter(|e| e.stream_id == a || e.stream_id == b));
    }
    assert!(store.head_position().await.unwrap() >= ours.last().unwrap().global_position);
    let labels: Vec<String> = ours.iter().map(|e| String::from_utf8(e.payload.clone()).unwrap()).collect();
    assert_eq!(labels, ["a1", "b1", "b2", "a2", "b3"]);
    assert!(ours.windows(2).all(|w| w[0].global_position < w[1].global_position));
}

pub async fn stream_heads_list_changes_oldest_first_and_every_stream_by_id(factory: &dyn Factory) {
    use ledgerline_shared::event_store::HeadQuery;
    let store = default_store(factory).await;
    // Other tests may write at the same time: look only at our streams,
    // changed after `since`.
    let since = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b, c] {
        store.append(batch(vec![stream(id, 0, events(&["opened"]))])).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store.append(batch(vec![stream(a, 1, events(&["again", "and again"]))])).await.unwrap();
    let ours = |heads: Vec<ledgerline_shared::event_store::StreamHead>| -> Vec<(Uuid, u64)> {
        heads.into_iter().filter(|h| [a, b, c].contains(&h.stream_id)).map(|h| (h.stream_id, h.version)).collect()
    };

    // Changed since: oldest change first, paged by (updated_at, id).
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.stream_heads(HeadQuery::ChangedSince { since, after, limit: 1 }).await.unwrap();
        let Some(last) = page.last() else { break };
        assert_eq!(page.len(), 1);
        assert!(last.updated_at >= since);
        after = Some((last.updated_at, last.stream_id));
        seen.extend(ours(page));
    }
    assert_eq!(seen, vec![(b, 1), (c, 1), (a, 3)], "a changed last");
    let later = store
        .stream_heads(HeadQuery::ChangedSince { since: chrono::Utc::now() + chrono::Duration::hours(1), after: None, limit: 10 })
        .await
        .unwrap();
    assert!(ours(later).is_empty());

    // By id: every stream, in id order, in pages.
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.stream_heads(HeadQuery::ById { after, limit: 2 }).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.windows(2).all(|w| w[0].stream_id < w[1].stream_id));
        after = Some(last.stream_id);
        all.extend(ours(page));
    }
    let mut expected = vec![(a, 3), (b, 1), (c, 1)];
    expected.sort();
    assert_eq!(all, expected);
    assert!(store.stream_count(None).await.unwrap() >= 3);
    assert_eq!(store.stream_count(Some(Uuid::nil())).await.unwrap(), 0);
}

async fn last_position(store: &dyn EventStore) -> i64 {
    let mut position = 0;
    loop {
        let page = store.read_all(position, 10_000).await.unwrap();
        match page.last() {
            Some(last) => position = last.global_position,
            None => return position,
        }
    }
}

// ---- concurrency ----

pub async fn of_many_appenders_with_one_expected_version_exactly_one_wins(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    store.append(batch(vec![stream(id, 0, events(&["open"]))])).await.unwrap();
    const WRITERS: usize = 16;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.append(batch(vec![stream(id, 1, events(&[&format!("writer-{i}")]))])).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::ConcurrencyConflict { expected: 1, actual: 2, .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.read_stream(id, 0).await.unwrap().len(), 2);
    assert_eq!(store.outbox_for_stream(id).await.unwrap().len(), 2);
}

pub async fn concurrent_appenders_never_lose_or_duplicate_a_version(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let id = Uuid::new_v4();
    const WRITERS: usize = 8;
    const EACH: usize = 10;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while mine.len() < EACH {
                    let version = store.stream_version(id).await.unwrap().unwrap_or(0);
                    let new = event(&format!("w{w}-{}", mine.len()));
                    match store.append(batch(vec![stream(id, version, vec![new.clone()])])).await {
                        Ok(_) => mine.push(new.event_id),
                        Err(e) if e.is_retryable() => tokio::task::yield_now().await,
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                }
                mine
            })
        })
        .collect();
    let mut accepted = HashSet::new();
    for task in tasks {
        accepted.extend(task.await.unwrap());
    }
    let stored = store.read_stream(id, 0).await.unwrap();
    assert_eq!(stored.len(), WRITERS * EACH);
    assert_eq!(stored.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
    assert_eq!(stored.iter().map(|e| e.event_id).collect::<HashSet<_>>(), accepted, "every accepted event, nothing else");
    let outbox = store.outbox_for_stream(id).await.unwrap();
    assert_eq!(outbox.iter().map(|m| m.stream_version).collect::<Vec<_>>(), (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
}

pub async fn concurrent_transfers_between_two_streams_lose_nothing(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    store.append(batch(vec![stream(a, 0, events(&["open a"])), stream(b, 0, events(&["open b"]))])).await.unwrap();
    const TRANSFERS: usize = 24;
    // Half go a -> b, half b -> a, listing the streams in opposite orders:
    // the store must neither deadlock nor half-write.
    let tasks: Vec<_> = (0..TRANSFERS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let (from, to) = if t % 2 == 0 { (a, b) } else { (b, a) };
                loop {
                    let from_version = store.stream_version(from).await.unwrap().unwrap();
                    let to_version = store.stream_version(to).await.unwrap().unwrap();
                    let attempt = batch(vec![
                        stream(from, from_version, events(&[&format!("t{t} out")])),
                        stream(to, to_version, events(&[&format!("t{t} in")])),
                    ]);
                    match store.append(attempt).await {
                        Ok(_) => return,
                        Err(e) if e.is_retryable() => tokio::task::yield_now().await,
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for id in [a, b] {
        let stored = payloads(&*store, id).await;
        assert_eq!(stored.len(), 1 + TRANSFERS);
        for t in 0..TRANSFERS {
            let mine = stored.iter().filter(|p| p.starts_with(&format!("t{t} "))).count();
            assert_eq!(mine, 1, "transfer {t} appears once in each stream");
        }
        assert_eq!(store.outbox_for_stream(id).await.unwrap().len(), 1 + TRANSFERS);
    }
}

// ---- the account repository over this store ----

fn open_command(account_id: Uuid) -> AccountCommand {
    AccountCommand::Open {
        account_id,
        owner_id: OwnerId::new("alice").unwrap(),
        currency: "EUR".parse::<Currency>().unwrap(),
        overdraft_limit: OverdraftLimit::new(0).unwrap(),
    }
}

async fn run(repository: &AccountRepository, account_id: Uuid, command: AccountCommand) {
    let before = repository.load(account_id).await.unwrap();
    let events = decide(before.as_ref(), &command, Utc::now()).unwrap();
    let change = repository.stage(account_id, before.as_ref(), &events).unwrap();
    repository.commit(vec![change], metadata(), None).await.unwrap();
}

fn deposit(minor_units: i64) -> AccountCommand {
    AccountCommand::Deposit { amount: Amount::new(minor_units).unwrap(), reference: None }
}

pub async fn the_repository_loads_from_a_snapshot_plus_later_events(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let repository = AccountRepository::new(store.clone(), 3);
    let id = Uuid::new_v4();
    run(&repository, id, open_command(id)).await;
    for amount in [10, 20, 30, 40] {
        run(&repository, id, deposit(amount)).await;
    }
    // Five events with a snapshot every three: one snapshot, at version 3.
    let snapshot = store.load_snapshot(id).await.unwrap().expect("a snapshot at version 3");
    assert_eq!(snapshot.version, 3);
    let account = repository.load(id).await.unwrap().unwrap();
    assert_eq!((account.balance, account.version), (100, 5));

    // Prove the snapshot is really used: a snapshot claiming another balance
    // at version 5 wins over replaying (a real one never disagrees).
    let mut doctored = account.clone();
    doctored.balance = 1_000_000;
    let mut change = repository.stage(id, Some(&account), &decide(Some(&account), &deposit(1), Utc::now()).unwrap()).unwrap();
    doctored.version = 6;
    doctored.balance += 1;
    change.append.snapshot = Some(NewSnapshot {
        version: 6,
        schema_version: ledgerline_shared::accounts::codec::ACCOUNT_SNAPSHOT_SCHEMA_VERSION,
        state: ledgerline_shared::accounts::codec::encode_snapshot(&doctored),
    });
    repository.commit(vec![change], metadata(), None).await.unwrap();
    assert_eq!(repository.load(id).await.unwrap().unwrap().balance, 1_000_001);
}

pub async fn a_snapshot_that_does_not_decode_is_ignored(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let repository = AccountRepository::new(store.clone(), 0);
    let id = Uuid::new_v4();
    run(&repository, id, open_command(id)).await;
    let before = repository.load(id).await.unwrap().unwrap();
    let mut change = repository.stage(id, Some(&before), &decide(Some(&before), &deposit(25), Utc::now()).unwrap()).unwrap();
    change.append.snapshot = Some(NewSnapshot { version: 2, schema_version: 1, state: b"not bincode".to_vec() });
    repository.commit(vec![change], metadata(), None).await.unwrap();
    assert!(store.load_snapshot(id).await.unwrap().is_some());
    let account = repository.load(id).await.unwrap().unwrap();
    assert_eq!((account.balance, account.version), (25, 2), "replayed from the start instead");
}

pub async fn the_repository_snapshots_every_n_events(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let repository = AccountRepository::new(store.clone(), 2);
    let (from, to) = (Uuid::new_v4(), Uuid::new_v4());
    run(&repository, from, open_command(from)).await;
    run(&repository, to, open_command(to)).await;
    assert_eq!(store.load_snapshot(from).await.unwrap(), None);
    run(&repository, from, deposit(100)).await;
    assert_eq!(store.load_snapshot(from).await.unwrap().unwrap().version, 2);

    // A transfer stages both accounts and commits them in one batch.
    let (a, b) = (repository.load(from).await.unwrap().unwrap(), repository.load(to).await.unwrap().unwrap());
    let transfer = TransferCommand {
        transfer_id: Uuid::new_v4(),
        from_account_id: from,
        to_account_id: to,
        amount: Amount::new(60).unwrap(),
        reference: None,
    };
    let decision = decide_transfer(Some(&a), Some(&b), &transfer, Utc::now()).unwrap();
    let changes =
        vec![repository.stage(from, Some(&a), &[decision.sent]).unwrap(), repository.stage(to, Some(&b), &[decision.received]).unwrap()];
    repository.commit(changes, metadata(), None).await.unwrap();
    let (a, b) = (repository.load(from).await.unwrap().unwrap(), repository.load(to).await.unwrap().unwrap());
    assert_eq!((a.balance, b.balance), (40, 60));
    assert_eq!(store.load_snapshot(to).await.unwrap().unwrap().version, 2);
    assert_eq!(store.load_snapshot(from).await.unwrap().unwrap().version, 2, "version 3 is not a multiple of 2");
}

// ---- what a command reads, and locking ----

fn read_of(streams: &[Uuid]) -> CommandRead {
    CommandRead { streams: streams.to_vec(), idempotency: None }
}

/// The stream's version as a command sees it.
fn head_version(tail: &StreamTail) -> u64 {
    tail.events.last().map(|e| e.version).or(tail.snapshot.as_ref().map(|s| s.version)).unwrap_or(0)
}

pub async fn a_command_read_brings_the_key_record_and_each_stream_from_its_snapshot(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let (a, b, missing) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let who = caller();
    let mut first = stream(a, 0, events(&["a1", "a2"]));
    first.snapshot = Some(NewSnapshot { version: 2, schema_version: 1, state: b"state at 2".to_vec() });
    let record = key_record(&who, "k-read", "open a", Duration::hours(1));
    store.append(AppendBatch { streams: vec![first], metadata: metadata(), idempotency: Some(record), open_limit: None }).await.unwrap();
    store.append(batch(vec![stream(a, 2, events(&["a3", "a4"])), stream(b, 0, events(&["b1"]))])).await.unwrap();

    let read = CommandRead { streams: vec![b, a, missing], idempotency: Some((who.clone(), "k-read".into())) };
    let state = store.read_for_command(read).await.unwrap();
    let stored = state.idempotency.expect("the key's record");
    assert_eq!(stored.response_body, b"answer to open a");
    let ids: Vec<Uuid> = state.streams.iter().map(|t| t.stream_id).collect();
    assert_eq!(ids, vec![b, a, missing], "in the order asked for");
    let [b_tail, a_tail, missing_tail] = &state.streams[..] else { panic!("three tails") };
    assert_eq!(b_tail.snapshot, None);
    assert_eq!(b_tail.events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1]);
    assert_eq!(a_tail.snapshot.as_ref().map(|s| (s.version, s.state.clone())), Some((2, b"state at 2".to_vec())));
    assert_eq!(a_tail.events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![3, 4], "only the events after the snapshot");
    assert_eq!(a_tail.events[1].payload, b"a4");
    assert!(missing_tail.snapshot.is_none() && missing_tail.events.is_empty());

    // Another caller's key with the same name is not this record.
    let other = CommandRead { streams: vec![a], idempotency: Some((caller(), "k-read".into())) };
    assert_eq!(store.read_for_command(other).await.unwrap().idempotency, None);
    let (locked_state, lock) =
        store.lock_for_command(CommandRead { streams: vec![b, a, missing], idempotency: Some((who, "k-read".into())) }).await.unwrap();
    lock.release().await;
    assert_eq!(locked_state.streams, state.streams, "locking reads the same");

    // One and two streams have statements of their own in the PostgreSQL
    // store: they read the same tails, in the order asked for.
    for asked in [vec![a], vec![missing], vec![b, a], vec![missing, b]] {
        let some = store.read_for_command(read_of(&asked)).await.unwrap();
        let expected: Vec<&StreamTail> = asked.iter().map(|id| state.streams.iter().find(|t| t.stream_id == *id).unwrap()).collect();
        assert_eq!(some.streams.iter().collect::<Vec<_>>(), expected, "reading {asked:?}");
        let (locked, lock) = store.lock_for_command(read_of(&asked)).await.unwrap();
        lock.release().await;
        assert_eq!(locked.streams, some.streams, "locking {asked:?}");
    }
}

pub async fn a_lock_holds_other_writers_back_until_its_append(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let a = Uuid::new_v4();
    store.append(batch(vec![stream(a, 0, events(&["open"]))])).await.unwrap();
    let (state, lock) = store.lock_for_command(read_of(&[a])).await.unwrap();
    assert_eq!(head_version(&state.streams[0]), 1);

    // Another writer that read version 1 too: it must wait for the lock.
    let rival = tokio::spawn({
        let store = store.clone();
        async move { store.append(batch(vec![stream(a, 1, events(&["rival"]))])).await }
    });
    // Not a timing assertion: the rival cannot finish while the lock is
    // held, however long we look; a third of a second is long enough to
    // catch a store that does not hold it back.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!rival.is_finished(), "the rival got past the lock");

    let outcome = lock.append(batch(vec![stream(a, 1, events(&["locked"]))])).await.unwrap();
    assert!(matches!(outcome, AppendOutcome::Committed(_)));
    let rival = rival.await.unwrap();
    assert!(matches!(rival, Err(StoreError::ConcurrencyConflict { expected: 1, actual: 2, .. })), "{rival:?}");
    assert_eq!(payloads(&*store, a).await, vec!["open", "locked"]);
}

pub async fn a_released_or_dropped_lock_lets_the_next_writer_in(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let a = Uuid::new_v4();
    store.append(batch(vec![stream(a, 0, events(&["open"]))])).await.unwrap();
    let (_, lock) = store.lock_for_command(read_of(&[a])).await.unwrap();
    lock.release().await;
    store.append(batch(vec![stream(a, 1, events(&["after release"]))])).await.unwrap();

    // A command that dies holding the lock (its future dropped) lets go too.
    let (_, lock) = store.lock_for_command(read_of(&[a])).await.unwrap();
    drop(lock);
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), store.lock_for_command(read_of(&[a])));
    let (state, lock) = next.await.expect("the dropped lock was let go").unwrap();
    assert_eq!(head_version(&state.streams[0]), 2, "the dropped lock wrote nothing");
    lock.append(batch(vec![stream(a, 2, events(&["after drop"]))])).await.unwrap();
    assert_eq!(payloads(&*store, a).await, vec!["open", "after release", "after drop"]);
}

pub async fn writers_that_lock_one_stream_never_conflict(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let a = Uuid::new_v4();
    store.append(batch(vec![stream(a, 0, events(&["open"]))])).await.unwrap();
    const WRITERS: usize = 32;
    let start = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let (state, lock) = store.lock_for_command(read_of(&[a])).await.unwrap();
                let version = head_version(&state.streams[0]);
                lock.append(batch(vec![stream(a, version, events(&[&format!("w{w}")]))])).await
            })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.unwrap();
        assert!(matches!(outcome, Ok(AppendOutcome::Committed(_))), "a locked writer failed: {outcome:?}");
    }
    let stored = store.read_stream(a, 0).await.unwrap();
    assert_eq!(stored.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=1 + WRITERS as u64).collect::<Vec<_>>());
}

/// A command that met a conflict holds its account and is about to claim
/// its key, while the client's retry of the same request (same key) is
/// appending without a lock: neither may wait for the other in a cycle.
pub async fn a_locked_command_and_a_same_key_retry_do_not_deadlock(factory: &dyn Factory) {
    let store = default_store(factory).await;
    let a = Uuid::new_v4();
    let who = caller();
    store.append(batch(vec![stream(a, 0, events(&["open"]))])).await.unwrap();
    let read = CommandRead { streams: vec![a], idempotency: Some((who.clone(), "k-retry".into())) };
    let (state, lock) = store.lock_for_command(read).await.unwrap();
    assert_eq!(state.idempotency, None);

    let keyed = |label: &str| AppendBatch {
        streams: vec![stream(a, 1, events(&[label]))],
        metadata: metadata(),
        idempotency: Some(key_record(&who, "k-retry", "deposit 5", Duration::hours(1))),
        open_limit: None,
    };
    let retry = tokio::spawn({
        let (store, batch) = (store.clone(), keyed("retry"));
        async move { store.append(batch).await }
    });
    // As in a_lock_holds_other_writers_back_until_its_append: the retry
    // cannot finish while the account is held; give it time to get stuck.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!retry.is_finished(), "the retry got past the lock");

    let outcome = lock.append(keyed("first")).await;
    assert!(matches!(outcome, Ok(AppendOutcome::Committed(_))), "the locked command: {outcome:?}");
    let retried = retry.await.unwrap();
    assert!(
        matches!(&retried, Ok(AppendOutcome::Replayed(record)) if record.response_body == b"answer to deposit 5"),
        "the retry: {retried:?}"
    );
    assert_eq!(payloads(&*store, a).await, vec!["open", "first"], "executed once");
}

// ---- the open-stream limit (per-owner open accounts) ----

pub async fn racing_creations_never_pass_the_open_stream_limit(factory: &dyn Factory) {
    const MAX_OPEN: u32 = 3;
    const RACERS: usize = 12;
    let store = default_store(factory).await;
    let limit = Some(OpenStreamLimit { max_open: MAX_OPEN, closing_event_type: "Closed" });
    let owner = caller();
    let creation = |actor: &str| AppendBatch {
        streams: vec![stream(Uuid::new_v4(), 0, events(&["open"]))],
        metadata: EventMetadata::now("corr", Uuid::new_v4(), actor),
        idempotency: None,
        open_limit: limit,
    };
    // Someone else's streams never count against this owner (a fresh
    // someone: the PostgreSQL test database outlives the test).
    store.append(creation(&caller())).await.unwrap();

    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, barrier, batch) = (store.clone(), barrier.clone(), creation(&owner));
            tokio::spawn(async move {
                barrier.wait().await;
                let id = batch.streams[0].stream_id;
                (id, store.append(batch).await)
            })
        })
        .collect();
    let mut opened = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(_)) => opened.push(id),
            (id, Err(StoreError::OpenLimitReached { max_open })) => {
                assert_eq!(max_open, MAX_OPEN);
                assert_eq!(store.stream_version(id).await.unwrap(), None, "a refused creation writes nothing");
            }
            (_, Err(other)) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(opened.len(), MAX_OPEN as usize, "exactly the limit, however the creations race");

    // Appends to open streams go on.
    let more = AppendBatch { open_limit: limit, ..batch(vec![stream(opened[0], 1, events(&["deposit"]))]) };
    store.append(more).await.unwrap();

    // Closing one frees one place.
    let close = AppendBatch {
        streams: vec![stream(opened[1], 1, vec![NewEvent { event_type: "Closed".into(), ..event("close") }])],
        metadata: EventMetadata::now("corr", Uuid::new_v4(), &owner),
        idempotency: None,
        open_limit: limit,
    };
    store.append(close).await.unwrap();
    store.append(creation(&owner)).await.expect("a place was freed");
    assert!(matches!(store.append(creation(&owner)).await, Err(StoreError::OpenLimitReached { .. })));
    // Without a limit the store creates streams freely.
    store.append(AppendBatch { open_limit: None, ..creation(&owner) }).await.unwrap();
}
