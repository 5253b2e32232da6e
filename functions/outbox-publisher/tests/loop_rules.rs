//! The publishing loop's rules, driven with scripted broker answers over the
//! in-memory outbox: fast and exact. The same behaviour against the real
//! broker and PostgreSQL is in `kafka_postgres.rs`.

use std::collections::HashSet;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledgerline_shared::event_store::{
    AppendBatch, EventEnvelope, EventMetadata, EventStore, InMemoryEventStore, NewEvent, OutboxStatus, StoreSettings, StreamAppend,
};
use ledgerline_shared::outbox::OutboxStore;
use ledgerline_shared::resilience::Backoff;
use outbox_publisher::publish::Stop;
use outbox_publisher::{PublishSettings, Publisher, Record, RecordSink, SendError};
use tokio::time::Instant;
use uuid::Uuid;

/// What the fake broker saw: (topic, account, version or 0 for a dead letter, acknowledged).
type Log = Arc<Mutex<Vec<(String, String, u64, bool)>>>;

#[derive(Default)]
struct FakeSink {
    log: Log,
    /// (account, version) pairs the broker does not acknowledge.
    unacknowledged: Arc<Mutex<HashSet<(String, u64)>>>,
    /// Payloads larger than this are refused before sending, as librdkafka does.
    max_bytes: usize,
}

impl RecordSink for FakeSink {
    type Delivery = Ready<Result<(), SendError>>;

    fn enqueue(&self, record: Record<'_>) -> Result<Self::Delivery, SendError> {
        if record.payload.len() > self.max_bytes {
            return Err(SendError::permanent("Message size too large"));
        }
        let version = EventEnvelope::decode(record.payload).map_or(0, |e| e.version);
        let failing = self.unacknowledged.lock().unwrap().contains(&(record.key.to_owned(), version));
        self.log.lock().unwrap().push((record.topic.to_owned(), record.key.to_owned(), version, !failing));
        Ok(ready(if failing { Err(SendError::transient("Message timed out")) } else { Ok(()) }))
    }
}

fn settings(max_attempts: u32) -> PublishSettings {
    PublishSettings {
        dlq_topic: "dlq".into(),
        batch_size: 100,
        max_attempts,
        backoff: Backoff { base: Duration::ZERO, max: Duration::ZERO },
        deadline_margin: Duration::from_millis(100),
        batch_timeout: Duration::from_secs(5),
        run_for: Duration::ZERO,
        poll_interval: Duration::from_millis(20),
    }
}

async fn append(store: &InMemoryEventStore, account: Uuid, sizes: &[usize]) {
    let version = store.stream_version(account).await.unwrap().unwrap_or(0);
    let events = sizes
        .iter()
        .map(|&size| NewEvent { event_id: Uuid::now_v7(), event_type: "MoneyDeposited".into(), schema_version: 1, payload: vec![7; size] })
        .collect();
    store
        .append(AppendBatch {
            streams: vec![StreamAppend { stream_id: account, expected_version: version, events, snapshot: None }],
            metadata: EventMetadata::now("corr", Uuid::now_v7(), "test"),
            idempotency: None,
            open_limit: None,
        })
        .await
        .unwrap();
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn sent(log: &Log, account: Uuid) -> Vec<(u64, bool)> {
    let key = account.to_string();
    log.lock().unwrap().iter().filter(|(topic, k, _, _)| topic != "dlq" && *k == key).map(|(_, _, v, ok)| (*v, *ok)).collect()
}

#[tokio::test]
async fn a_row_acknowledged_after_its_predecessor_failed_is_held_back_and_sent_again_after_it() {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings { max_event_bytes: 1 << 20, ..StoreSettings::default() }));
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(&store, a, &[10, 10]).await;
    append(&store, b, &[10, 10, 10]).await;
    let sink = FakeSink { max_bytes: 1 << 20, ..FakeSink::default() };
    let (log, unacknowledged) = (sink.log.clone(), sink.unacknowledged.clone());
    unacknowledged.lock().unwrap().insert((a.to_string(), 1));
    // Two attempts at most, yet a timeout never dead-letters: only a refused record does.
    let publisher = Publisher::new(store.clone(), sink, settings(2));

    let first = publisher.run(soon()).await.unwrap();
    // Batch 1: a1 fails, a2 is acknowledged but held back, b flows. Batch 2:
    // a1 (due again at once, zero backoff) fails again; nothing published, so stop.
    assert_eq!((first.published, first.failed, first.held_back, first.stopped), (3, 2, 2, Stop::Failing));
    assert_eq!(first.remaining, 2);
    let rows = store.outbox_for_stream(a).await.unwrap();
    assert_eq!((rows[0].status, rows[0].attempts), (OutboxStatus::Pending, 2));
    assert_eq!((rows[1].status, rows[1].attempts), (OutboxStatus::Pending, 0), "held back, not failed, not published");
    assert!(store.outbox_for_stream(b).await.unwrap().is_empty(), "b's rows were acknowledged and left the outbox");

    unacknowledged.lock().unwrap().clear();
    let second = publisher.run(soon()).await.unwrap();
    assert_eq!((second.published, second.failed, second.remaining, second.stopped), (2, 0, 0, Stop::Drained));
    assert_eq!(sent(&log, a), vec![(1, false), (2, true), (1, false), (2, true), (1, true), (2, true)]);
    assert_eq!(sent(&log, b), vec![(1, true), (2, true), (3, true)]);
}

#[tokio::test]
async fn a_row_that_can_never_be_sent_is_dead_lettered_after_max_attempts_without_blocking_others() {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings { max_event_bytes: 1 << 20, ..StoreSettings::default() }));
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(&store, a, &[10, 5_000, 10]).await;
    append(&store, b, &[10, 10]).await;
    let sink = FakeSink { max_bytes: 1_000, ..FakeSink::default() };
    let log = sink.log.clone();
    let publisher = Publisher::new(store.clone(), sink, settings(2));

    let summary = publisher.run(soon()).await.unwrap();
    assert_eq!((summary.published, summary.failed, summary.dead_lettered, summary.remaining), (4, 1, 1, 0));
    // a2 was never sent (refused before sending), so a3 never went ahead of it.
    assert_eq!(sent(&log, a), vec![(1, true), (3, true)]);
    assert_eq!(sent(&log, b), vec![(1, true), (2, true)]);
    let rows = store.outbox_for_stream(a).await.unwrap();
    assert_eq!(rows.len(), 1, "a1 and a3 were acknowledged and left: {rows:?}");
    assert_eq!((rows[0].stream_version, rows[0].status, rows[0].attempts), (2, OutboxStatus::Dead, 2));
    assert!(rows[0].last_error.as_deref().unwrap().contains("too large"));
    let dead: Vec<_> = log.lock().unwrap().iter().filter(|(topic, ..)| topic == "dlq").cloned().collect();
    assert_eq!(dead, vec![("dlq".to_string(), a.to_string(), 0, true)]);
}

#[tokio::test]
async fn a_run_returns_at_once_when_another_publisher_holds_the_lock() {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    append(&store, Uuid::new_v4(), &[10]).await;
    let publisher = Publisher::new(store.clone(), FakeSink { max_bytes: 1 << 20, ..FakeSink::default() }, settings(5));
    let held = store.claim(10, Duration::from_secs(30)).await.unwrap().expect("free");
    let summary = publisher.run(soon()).await.unwrap();
    assert_eq!((summary.stopped, summary.published, summary.batches), (Stop::LockBusy, 0, 0));
    drop(held);
    assert_eq!(publisher.run(soon()).await.unwrap().published, 1);
}

#[tokio::test]
async fn a_run_past_its_deadline_margin_publishes_nothing() {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    append(&store, Uuid::new_v4(), &[10]).await;
    let publisher = Publisher::new(store.clone(), FakeSink { max_bytes: 1 << 20, ..FakeSink::default() }, settings(5));
    let summary = publisher.run(Instant::now() + Duration::from_millis(50)).await.unwrap();
    assert_eq!((summary.stopped, summary.published, summary.remaining), (Stop::Deadline, 0, 1));
}

fn scheduled_event(deadline_in: Duration) -> lambda_runtime::LambdaEvent<aws_lambda_events::event::eventbridge::EventBridgeEvent> {
    let payload = serde_json::from_str(include_str!("../../../events/scheduled.json")).expect("the sample is an EventBridge event");
    let mut context = lambda_runtime::Context::default();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    context.deadline = now_ms + deadline_in.as_millis() as u64;
    context.request_id = "test".into();
    lambda_runtime::LambdaEvent::new(payload, context)
}

#[tokio::test]
async fn the_handler_runs_on_the_sample_scheduled_event_and_reports_failures_as_errors() {
    use outbox_publisher::handler::{HandlerError, handle};
    let store = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    let account = Uuid::new_v4();
    append(&store, account, &[10, 10]).await;
    let sink = FakeSink { max_bytes: 1 << 20, ..FakeSink::default() };
    let unacknowledged = sink.unacknowledged.clone();
    let publisher = Publisher::new(store.clone(), sink, settings(5));

    unacknowledged.lock().unwrap().insert((account.to_string(), 1));
    match handle(&publisher, scheduled_event(Duration::from_secs(30))).await {
        Err(HandlerError::PublishFailed { failed, published: 0, remaining: 2, .. }) => assert!(failed >= 1),
        other => panic!("expected a reported failure, got {other:?}"),
    }
    unacknowledged.lock().unwrap().clear();
    let summary = handle(&publisher, scheduled_event(Duration::from_secs(30))).await.expect("a clean run");
    assert_eq!((summary.published, summary.remaining), (2, 0));

    // The context's deadline bounds the run: with less time left than the
    // margin, nothing is attempted.
    append(&store, account, &[10]).await;
    let summary = handle(&publisher, scheduled_event(Duration::from_millis(50))).await.unwrap();
    assert_eq!((summary.stopped, summary.published, summary.remaining), (Stop::Deadline, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_run_publishes_rows_appended_after_it_drained_until_its_time_is_up() {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    let a = Uuid::new_v4();
    append(&store, a, &[10]).await;
    let sink = FakeSink { max_bytes: 1 << 20, ..FakeSink::default() };
    let log = sink.log.clone();
    let run_for = Duration::from_secs(3);
    let publisher = Arc::new(Publisher::new(store.clone(), sink, PublishSettings { run_for, ..settings(5) }));
    let started = Instant::now();
    let run = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.run(soon()).await.unwrap() }
    });

    // The first row goes out, the outbox is drained, and the run goes on.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent(&log, a).is_empty() {
        assert!(Instant::now() < deadline, "the first row was never sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for expected in 2..=3u64 {
        append(&store, a, &[10]).await;
        while sent(&log, a).len() < expected as usize {
            assert!(!run.is_finished(), "the run ended before {run_for:?}");
            assert!(Instant::now() < deadline, "row {expected}, appended during the run, was never sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let summary = run.await.unwrap();
    // It stops when the next poll would pass run_for.
    assert!(started.elapsed() + Duration::from_millis(20) >= run_for, "the run followed the outbox for run_for");
    assert_eq!((summary.published, summary.remaining, summary.stopped), (3, 0, Stop::Drained));
    assert_eq!(sent(&log, a), vec![(1, true), (2, true), (3, true)], "once each, in order");
}

#[tokio::test]
async fn without_run_for_a_run_ends_as_soon_as_the_outbox_is_drained() {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    append(&store, Uuid::new_v4(), &[10]).await;
    let publisher = Publisher::new(store.clone(), FakeSink { max_bytes: 1 << 20, ..FakeSink::default() }, settings(5));
    let summary = tokio::time::timeout(Duration::from_secs(5), publisher.run(soon())).await.expect("returned at once").unwrap();
    assert_eq!((summary.published, summary.stopped), (1, Stop::Drained));
}
