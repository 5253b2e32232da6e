//! The outbox publishing contract (`ledgerline_shared::outbox`), run against
//! the in-memory store and a real PostgreSQL database of its own.

mod support;

use std::time::Duration;

use ledgerline_shared::event_store::{
    AppendBatch, EventMetadata, EventStore, InMemoryEventStore, NewEvent, OutboxMessage, OutboxStatus, StoreSettings, StreamAppend,
};
use ledgerline_shared::outbox::{ClaimedBatch, OutboxStore, Outcome};
use support::FreshDatabase;
use uuid::Uuid;

const HOLD: Duration = Duration::from_secs(30);

async fn append(store: &dyn EventStore, stream_id: Uuid, expected_version: u64, count: usize) {
    let events = (0..count)
        .map(|i| NewEvent { event_id: Uuid::now_v7(), event_type: "MoneyDeposited".into(), schema_version: 1, payload: vec![i as u8; 8] })
        .collect();
    store
        .append(AppendBatch {
            streams: vec![StreamAppend { stream_id, expected_version, events, snapshot: None }],
            metadata: EventMetadata::now("corr", Uuid::now_v7(), "test"),
            idempotency: None,
            open_limit: None,
        })
        .await
        .expect("append");
}

/// Claims once the lock is free, or fails after a deadline. A dropped batch
/// closes its connection, and the server notices the close (rolls back and
/// unlocks) a moment later, not before `drop` returns.
async fn claim_when_released<'a, S: OutboxStore>(store: &'a S, limit: usize, why: &str) -> Box<dyn ClaimedBatch + 'a> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(batch) = store.claim(limit, HOLD).await.unwrap() {
            return batch;
        }
        assert!(tokio::time::Instant::now() < deadline, "{why}: the lock was still held after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn versions(messages: &[OutboxMessage], stream_id: Uuid) -> Vec<u64> {
    messages.iter().filter(|m| m.stream_id == stream_id).map(|m| m.stream_version).collect()
}

async fn claims_in_order_and_holds_back_siblings_of_a_waiting_row<S: EventStore + OutboxStore>(store: &S) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(store, a, 0, 1).await;
    append(store, b, 0, 1).await;
    append(store, a, 1, 2).await;
    append(store, b, 1, 1).await;

    let batch = store.claim(100, HOLD).await.unwrap().expect("the lock is free");
    let ids: Vec<i64> = batch.messages().iter().map(|m| m.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "outbox order: {ids:?}");
    assert_eq!(versions(batch.messages(), a), vec![1, 2, 3]);
    assert_eq!(versions(batch.messages(), b), vec![1, 2]);
    let a1 = batch.messages().iter().find(|m| m.stream_id == a).unwrap().id;
    let b1 = batch.messages().iter().find(|m| m.stream_id == b).unwrap().id;
    batch
        .complete(vec![
            Outcome::Failed { id: a1, error: "broker down".into(), retry_after: Duration::from_secs(3600) },
            Outcome::Published { id: b1 },
        ])
        .await
        .unwrap();

    // a's v2 and v3 wait behind v1, which waits for its retry; b flows.
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    assert_eq!(versions(batch.messages(), a), Vec::<u64>::new());
    assert_eq!(versions(batch.messages(), b), vec![2]);
    drop(batch);

    let rows = store.outbox_for_stream(a).await.unwrap();
    assert_eq!(rows[0].status, OutboxStatus::Pending);
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(rows[0].last_error.as_deref(), Some("broker down"));
    assert!(rows[0].next_attempt_at > chrono::Utc::now() + chrono::Duration::minutes(50));
    // b's acknowledged v1 left the outbox; its v2 is still queued.
    assert_eq!(versions(&store.outbox_for_stream(b).await.unwrap(), b), vec![2]);

    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.due, counts.dead), (4, 3, 0));
    assert!(counts.oldest_pending_at.is_some());
}

async fn one_publisher_at_a_time_and_a_dropped_batch_records_nothing<S: EventStore + OutboxStore>(store: &S) {
    let a = Uuid::new_v4();
    append(store, a, 0, 3).await;
    let first = store.claim(100, HOLD).await.unwrap().expect("the lock is free");
    assert_eq!(first.messages().len(), 3);
    assert!(store.claim(100, HOLD).await.unwrap().is_none(), "a second publisher must not get the lock");
    drop(first); // a crash before recording anything
    let again = claim_when_released(store, 100, "a dropped batch releases the lock").await;
    assert_eq!(versions(again.messages(), a), vec![1, 2, 3]);
    assert!(again.messages().iter().all(|m| m.attempts == 0 && m.last_error.is_none()));
    // An outcome for a row that was not claimed is refused, and records nothing.
    let stranger = Outcome::Published { id: i64::MAX };
    assert!(again.complete(vec![stranger]).await.is_err());
    assert!(store.outbox_for_stream(a).await.unwrap().iter().all(|m| m.status == OutboxStatus::Pending));
    claim_when_released(store, 1, "a failed completion releases the lock too").await;
}

async fn dead_rows_are_never_claimed_again<S: EventStore + OutboxStore>(store: &S) {
    let a = Uuid::new_v4();
    append(store, a, 0, 2).await;
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    let first = batch.messages()[0].id;
    batch.complete(vec![Outcome::Dead { id: first, error: "too large".into() }]).await.unwrap();
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    assert_eq!(versions(batch.messages(), a), vec![2], "the dead row is settled; the next one flows");
    drop(batch);
    let rows = store.outbox_for_stream(a).await.unwrap();
    assert_eq!((rows[0].status, rows[0].attempts, rows[0].last_error.as_deref()), (OutboxStatus::Dead, 1, Some("too large")));
    assert_eq!(store.counts().await.unwrap().dead, 1);
}

async fn acknowledged_rows_leave_the_outbox_and_others_stay<S: EventStore + OutboxStore>(store: &S) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(store, a, 0, 3).await;
    append(store, b, 0, 1).await;
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    let outcomes = batch
        .messages()
        .iter()
        .map(|m| match (m.stream_id == b, m.stream_version) {
            (true, _) => Outcome::Dead { id: m.id, error: "poison".into() },
            (false, 3) => Outcome::Failed { id: m.id, error: "timeout".into(), retry_after: Duration::ZERO },
            _ => Outcome::Published { id: m.id },
        })
        .collect();
    batch.complete(outcomes).await.unwrap();

    let left: Vec<(u64, OutboxStatus)> = store.outbox_for_stream(a).await.unwrap().iter().map(|m| (m.stream_version, m.status)).collect();
    assert_eq!(left, vec![(3, OutboxStatus::Pending)], "the acknowledged rows left, the failed one waits");
    assert_eq!(store.outbox_for_stream(b).await.unwrap()[0].status, OutboxStatus::Dead, "dead rows are kept");
    assert_eq!(store.read_stream(a, 0).await.unwrap().len(), 3, "the events themselves stay in the log");

    // New rows still get fresh, larger ids after rows left.
    append(store, a, 3, 1).await;
    let rows = store.outbox_for_stream(a).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].id > rows[0].id);
    let all_ids: Vec<i64> = store.outbox_for_stream(b).await.unwrap().iter().chain(rows.iter()).map(|m| m.id).collect();
    let unique: std::collections::HashSet<_> = all_ids.iter().collect();
    assert_eq!(unique.len(), all_ids.len(), "ids are never reused: {all_ids:?}");
}

async fn revived_dead_rows_are_published_again<S: EventStore + OutboxStore>(store: &S) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(store, a, 0, 1).await;
    append(store, b, 0, 1).await;
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    let outcomes = batch.messages().iter().map(|m| Outcome::Dead { id: m.id, error: "too large".into() }).collect();
    batch.complete(outcomes).await.unwrap();
    assert_eq!(store.counts().await.unwrap().dead, 2);

    assert_eq!(store.revive_dead(Some(a)).await.unwrap(), 1, "only the named account");
    let row = &store.outbox_for_stream(a).await.unwrap()[0];
    assert_eq!((row.status, row.attempts, row.last_error.as_deref()), (OutboxStatus::Pending, 0, Some("revived: too large")));
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    assert_eq!(versions(batch.messages(), a), vec![1], "the revived row is handed out again");
    assert!(versions(batch.messages(), b).is_empty(), "the other account's row is still dead");
    drop(batch);
    assert_eq!(store.revive_dead(None).await.unwrap(), 1);
    assert_eq!(store.counts().await.unwrap().dead, 0);
}

async fn events_are_queued_again_from_the_log_after_a_broker_lost_them<S: EventStore + OutboxStore>(store: &S) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(store, b, 0, 1).await;
    // The moment just after b's event (times are kept to the microsecond).
    let b_at = store.read_stream(b, 0).await.unwrap()[0].metadata.recorded_at;
    let before = b_at + chrono::Duration::microseconds(1);
    while chrono::Utc::now().timestamp_micros() <= b_at.timestamp_micros() {
        tokio::task::yield_now().await;
    }
    append(store, a, 0, 2).await;
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    let sent = batch.messages().to_vec();
    let outcomes = sent.iter().map(|m| Outcome::Published { id: m.id }).collect();
    batch.complete(outcomes).await.unwrap();
    assert!(store.outbox_for_stream(a).await.unwrap().is_empty(), "acknowledged rows left the outbox");

    // Nothing was recorded after a future moment.
    assert_eq!(store.replay_events(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(store.replay_events(before).await.unwrap(), 2, "only the events recorded since then");
    let rows = store.outbox_for_stream(a).await.unwrap();
    assert!(rows.iter().all(|m| m.status == OutboxStatus::Pending && m.attempts == 0), "{rows:?}");
    assert!(store.outbox_for_stream(b).await.unwrap().is_empty(), "b's event is older");
    // The same records as the first time, handed out again in order.
    let original: Vec<_> =
        sent.iter().filter(|m| m.stream_id == a).map(|m| (m.event_id, m.key.clone(), m.payload.clone(), m.headers.clone())).collect();
    let again: Vec<_> = rows.iter().map(|m| (m.event_id, m.key.clone(), m.payload.clone(), m.headers.clone())).collect();
    assert_eq!(again, original);
    let batch = store.claim(100, HOLD).await.unwrap().unwrap();
    assert_eq!(versions(batch.messages(), a), vec![1, 2]);
    drop(batch);
    // Replaying again queues nothing twice.
    assert_eq!(store.replay_events(before).await.unwrap(), 0);
    assert_eq!(store.outbox_for_stream(a).await.unwrap().len(), 2);
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&InMemoryEventStore::new(StoreSettings::default())).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let database = FreshDatabase::create().await;
                    super::$name(&database.store(StoreSettings::default())).await;
                    database.drop_database().await;
                }
            )*
        }
    };
}

both_stores!(
    claims_in_order_and_holds_back_siblings_of_a_waiting_row,
    one_publisher_at_a_time_and_a_dropped_batch_records_nothing,
    dead_rows_are_never_claimed_again,
    acknowledged_rows_leave_the_outbox_and_others_stay,
    revived_dead_rows_are_published_again,
    events_are_queued_again_from_the_log_after_a_broker_lost_them,
);
