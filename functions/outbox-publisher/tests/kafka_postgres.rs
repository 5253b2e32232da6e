//! The outbox publisher against a real broker (tansu, one per test, or
//! `LEDGERLINE_TEST_KAFKA_BROKERS`) and real PostgreSQL.
//! Every check reads the records back from Kafka, not only the table.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ledgerline_shared::dead_letter::{DeadLetter, DeadLetterSource, REASON_HEADER, SOURCE_HEADER};
use ledgerline_shared::event_store::{EventStore, OutboxStatus};
use ledgerline_shared::outbox::OutboxStore;
use ledgerline_shared::resilience::Backoff;
use outbox_publisher::config::KafkaSettings;
use outbox_publisher::kafka::KafkaSink;
use outbox_publisher::publish::Stop;
use outbox_publisher::{Publisher, Record, RecordSink, SendError};
use rdkafka::producer::Producer;
use support::*;
use tokio::time::Instant;
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);
const SMALL: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_kafka_once_in_account_order_under_interleaved_appends() {
    let (_broker, brokers) = test_broker().await;
    let (topic, dlq) = topics(&brokers, "order").await;
    let database = FreshDatabase::create().await;
    let store = database.store(&topic, 65_536);
    let publisher = publisher(store.clone(), &brokers, publish_settings(&dlq, 25, TIMEOUT), TIMEOUT);
    let accounts: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();

    // Six writers append 1-3 events at a time while the publisher runs.
    let writers: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(n, &account)| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = 0;
                while written < 30 {
                    let count = (1 + (written + n) % 3).min(30 - written);
                    append(store.as_ref(), account, &vec![SMALL; count]).await;
                    written += count;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut runs = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        let summary = publisher.run(Instant::now() + Duration::from_secs(20)).await.unwrap();
        assert_eq!(summary.failed, 0, "{summary:?}");
        runs += 1;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    drain(&publisher, Duration::from_secs(60)).await;
    assert!(runs > 0);

    let records = read_topic(&brokers, &topic).await;
    assert_eq!(records.len(), 180, "each of 6 x 30 events exactly once");
    let by_account = versions_by_account(&records);
    for account in &accounts {
        assert_eq!(by_account[&account.to_string()], (1..=30).collect::<Vec<u64>>(), "account {account}");
        let partitions: HashSet<i32> = records.iter().filter(|r| r.key == account.to_string()).map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "one account, one partition");
    }
    for record in &records {
        let envelope = record.envelope();
        assert_eq!(record.key, envelope.stream_id.to_string());
        assert_eq!(record.headers["event_id"], envelope.event_id.to_string());
        assert_eq!(record.headers["event_type"], "MoneyDeposited");
        assert_eq!(record.headers["schema_version"], "1");
        assert_eq!(record.headers["correlation_id"], format!("corr-{}", envelope.stream_id));
    }
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0), "acknowledged rows left the outbox");
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_publishers_started_together_publish_each_row_once_and_keep_account_order() {
    let (_broker, brokers) = test_broker().await;
    let (topic, dlq) = topics(&brokers, "two").await;
    let database = FreshDatabase::create().await;
    let store = database.store(&topic, 65_536);
    let accounts: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    for round in 0..10 {
        for account in &accounts {
            append(store.as_ref(), *account, &[SMALL; 5][..1 + round % 5]).await;
        }
    }
    let total: u64 = accounts.len() as u64 * (0..10).map(|r| 1 + r % 5).sum::<usize>() as u64;

    // A publisher finding the lock taken returns at once and does nothing.
    let first = publisher(store.clone(), &brokers, publish_settings(&dlq, 10, TIMEOUT), TIMEOUT);
    let second = publisher(store.clone(), &brokers, publish_settings(&dlq, 10, TIMEOUT), TIMEOUT);
    let held = store.claim(10, Duration::from_secs(60)).await.unwrap().expect("the lock is free");
    let refused = first.run(Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert_eq!((refused.stopped, refused.published, refused.batches), (Stop::LockBusy, 0, 0));
    drop(held);

    let deadline = Instant::now() + Duration::from_secs(30);
    let (a, b) = tokio::join!(first.run(deadline), second.run(deadline));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.published + b.published, total, "{a:?} {b:?}");
    assert_eq!((a.failed, b.failed), (0, 0));
    assert!(a.stopped == Stop::Drained || b.stopped == Stop::Drained, "{a:?} {b:?}");
    assert_eq!(store.counts().await.unwrap().pending, 0);

    let records = read_topic(&brokers, &topic).await;
    assert_eq!(records.len() as u64, total, "each row published once");
    let ids: HashSet<&String> = records.iter().map(|r| &r.headers["event_id"]).collect();
    assert_eq!(ids.len() as u64, total, "no event twice");
    for (account, versions) in versions_by_account(&records) {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "account {account} in version order");
    }
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_stopped_mid_run_loses_nothing_and_everything_goes_out_when_it_returns() {
    let mut broker = OwnBroker::start().await;
    let brokers = broker.brokers();
    let (topic, dlq) = topics(&brokers, "outage").await;
    let database = FreshDatabase::create().await;
    let store = database.store(&topic, 65_536);
    let accounts: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut event_ids = HashSet::new();
    for _ in 0..12 {
        for account in &accounts {
            event_ids.extend(append(store.as_ref(), *account, &[SMALL; 5]).await);
        }
    }
    let timeout = Duration::from_secs(2);
    let mut settings = publish_settings(&dlq, 5, timeout);
    settings.backoff.base = Duration::from_millis(200);
    settings.backoff.max = Duration::from_millis(500);
    let publisher = Arc::new(publisher(store.clone(), &brokers, settings, timeout));

    // Stop the broker once the run has published something.
    let run = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.run(Instant::now() + Duration::from_secs(60)).await.unwrap() }
    });
    eventually("some rows published", Duration::from_secs(30), || {
        let store = store.clone();
        let total = event_ids.len() as u64;
        async move { (store.counts().await.unwrap().pending + 20 <= total).then_some(()) }
    })
    .await;
    broker.stop();
    let interrupted = run.await.unwrap();
    assert_eq!(interrupted.stopped, Stop::Failing, "{interrupted:?}");
    assert!(interrupted.failed > 0 && interrupted.remaining > 0, "{interrupted:?}");

    // While it is down: runs fail, rows stay pending with attempts counted.
    let down = publisher.run(Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert_eq!(down.published, 0);
    let mut failed_rows = 0;
    for account in &accounts {
        for row in store.outbox_for_stream(*account).await.unwrap() {
            assert_ne!(row.status, OutboxStatus::Dead, "a broker outage never dead-letters");
            if row.attempts > 0 {
                assert_eq!(row.status, OutboxStatus::Pending);
                assert!(row.last_error.is_some());
                failed_rows += 1;
            }
        }
    }
    assert!(failed_rows > 0);

    broker.restart().await;
    drain(&publisher, Duration::from_secs(90)).await;
    let records = read_topic(&brokers, &topic).await;
    let seen: HashSet<Uuid> = records.iter().map(|r| r.envelope().event_id).collect();
    assert_eq!(seen, event_ids, "every event reached Kafka");
    for (account, versions) in versions_by_account(&records) {
        assert_no_gaps_after_dedup(&account, &versions, 60);
    }
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_publish_and_mark_duplicates_records_without_gaps() {
    let (_broker, brokers) = test_broker().await;
    let (topic, dlq) = topics(&brokers, "crash").await;
    let database = FreshDatabase::create().await;
    let store = database.store(&topic, 65_536);
    let accounts: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for _ in 0..5 {
        for account in &accounts {
            append(store.as_ref(), *account, &[SMALL; 2]).await;
        }
    }
    let publisher = publisher(store.clone(), &brokers, publish_settings(&dlq, 10, TIMEOUT), TIMEOUT);

    // The crash: a batch is claimed and sent, and the process dies before
    // recording anything (the batch is dropped, its transaction rolled back).
    let batch = store.claim(12, Duration::from_secs(60)).await.unwrap().expect("the lock is free");
    let crashed: Vec<Uuid> = batch.messages().iter().map(|m| m.event_id).collect();
    for row in batch.messages() {
        let record = Record { topic: &row.topic, key: &row.key, payload: &row.payload, headers: &row.headers };
        publisher.sink().enqueue(record).unwrap().await.expect("acknowledged");
    }
    drop(batch);
    assert_eq!(store.counts().await.unwrap().pending, 40, "nothing was recorded");

    drain(&publisher, Duration::from_secs(60)).await;
    let records = read_topic(&brokers, &topic).await;
    assert_eq!(records.len(), 40 + crashed.len(), "the crashed batch is published again");
    let mut copies: HashMap<Uuid, Vec<&Received>> = HashMap::new();
    for record in &records {
        copies.entry(record.envelope().event_id).or_default().push(record);
    }
    assert_eq!(copies.len(), 40, "every event is there");
    for (event_id, found) in &copies {
        let expected = if crashed.contains(event_id) { 2 } else { 1 };
        assert_eq!(found.len(), expected, "event {event_id}");
        assert!(found.iter().all(|r| r.headers["event_id"] == event_id.to_string() && r.value == found[0].value));
    }
    for (account, versions) in versions_by_account(&records) {
        assert_no_gaps_after_dedup(&account, &versions, 10);
    }
    database.drop_database().await;
}

/// The real Kafka sink, whose producer hits a fatal error (librdkafka's
/// own fault injection, as when the broker forgot its producer id) just
/// before its `fail_before`-th record is put in flight.
struct FatalMidBatch {
    inner: KafkaSink,
    fail_before: usize,
    enqueued: AtomicUsize,
}

impl RecordSink for FatalMidBatch {
    type Delivery = <KafkaSink as RecordSink>::Delivery;

    fn enqueue(&self, record: Record<'_>) -> Result<Self::Delivery, SendError> {
        if self.enqueued.fetch_add(1, Ordering::SeqCst) == self.fail_before {
            let producer = self.inner.producer().current();
            // SAFETY: the pointer is the live producer's (held by `producer`);
            // the reason is a NUL-terminated string that outlives the call.
            let injected = unsafe {
                rdkafka::bindings::rd_kafka_test_fatal_error(
                    producer.client().native_ptr(),
                    rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                    c"injected by the test".as_ptr(),
                )
            };
            assert_eq!(injected, rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR, "the fatal error is raised");
        }
        self.inner.enqueue(record)
    }

    fn start_batch(&self) {
        self.inner.start_batch();
    }

    fn reset(&self) {
        self.inner.reset();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fatal_producer_error_mid_batch_never_puts_a_later_version_first() {
    let (_broker, brokers) = test_broker().await;
    let (topic, dlq) = topics(&brokers, "fatal").await;
    let database = FreshDatabase::create().await;
    let store = database.store(&topic, 65_536);
    // Three accounts, their rows interleaved in the outbox: a1 b1 c1 a2 b2 c2 ...
    let accounts: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for _ in 0..8 {
        for account in &accounts {
            append(store.as_ref(), *account, &[SMALL]).await;
        }
    }
    // A long linger keeps the first records queued in the producer when
    // the fatal error strikes (so they fail, as records in flight do).
    let kafka = KafkaSettings { linger: Duration::from_millis(1_000), ..kafka_settings(&brokers, TIMEOUT) };
    let sink = FatalMidBatch { inner: KafkaSink::new(kafka).unwrap(), fail_before: 10, enqueued: AtomicUsize::new(0) };
    let mut settings = publish_settings(&dlq, 100, TIMEOUT);
    settings.backoff = Backoff { base: Duration::ZERO, max: Duration::ZERO };
    let publisher = Publisher::new(store.clone(), sink, settings);

    let first = publisher.run(Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert_eq!(first.published, 0, "everything queued on the failed producer failed: {first:?}");
    assert_eq!(publisher.sink().enqueued.load(Ordering::SeqCst), 11, "nothing more of the batch was put in flight after the refusal");
    drain(&publisher, Duration::from_secs(60)).await;

    let records = read_topic(&brokers, &topic).await;
    for account in &accounts {
        let versions = &versions_by_account(&records)[&account.to_string()];
        assert_no_gaps_after_dedup(&account.to_string(), versions, 8);
    }
    assert_eq!(store.counts().await.unwrap().pending, 0);
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_row_goes_to_the_dead_letter_topic_and_other_accounts_flow() {
    let (_broker, brokers) = test_broker().await;
    let (topic, dlq) = topics(&brokers, "poison").await;
    let database = FreshDatabase::create().await;
    // The store accepts 2 MB; the producer refuses records over 1 MB (its
    // default message.max.bytes), so this row can never be published.
    let store = database.store(&topic, 2 << 20);
    let (poisoned, healthy) = (Uuid::new_v4(), Uuid::new_v4());
    append(store.as_ref(), poisoned, &[SMALL]).await;
    let poison_id = append(store.as_ref(), poisoned, &[1_200_000]).await[0];
    append(store.as_ref(), poisoned, &[SMALL]).await;
    append(store.as_ref(), healthy, &[SMALL; 5]).await;
    let mut settings = publish_settings(&dlq, 10, TIMEOUT);
    // Long enough that the failed row is not due again within the first run.
    settings.backoff.base = Duration::from_secs(1);
    settings.backoff.max = Duration::from_secs(1);
    let publisher = publisher(store.clone(), &brokers, settings, TIMEOUT);

    let first = publisher.run(Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert_eq!((first.published, first.failed), (6, 1), "{first:?}");
    assert!(store.outbox_for_stream(healthy).await.unwrap().is_empty(), "others flow (and leave the outbox)");
    let rows = store.outbox_for_stream(poisoned).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.stream_version, r.status, r.attempts)).collect::<Vec<_>>(),
        vec![
            (2, OutboxStatus::Pending, 1),
            (3, OutboxStatus::Pending, 0), // held back behind the failed row
        ]
    );

    let summaries = drain(&publisher, Duration::from_secs(30)).await;
    assert_eq!(summaries.iter().map(|s| s.dead_lettered).sum::<u64>(), 1);
    let rows = store.outbox_for_stream(poisoned).await.unwrap();
    assert_eq!(rows.len(), 1, "only the dead row is left: {rows:?}");
    assert_eq!((rows[0].stream_version, rows[0].status, rows[0].attempts), (2, OutboxStatus::Dead, 3));
    assert!(rows[0].last_error.as_deref().unwrap().to_lowercase().contains("size"), "{:?}", rows[0].last_error);

    let dead = read_topic(&brokers, &dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key, poisoned.to_string());
    assert_eq!(dead[0].headers["event_id"], poison_id.to_string());
    assert!(dead[0].headers.contains_key(REASON_HEADER));
    assert_eq!(dead[0].headers[SOURCE_HEADER], "outbox_row");
    let letter = DeadLetter::from_json(&dead[0].value).unwrap();
    let DeadLetterSource::OutboxRow { event_id, stream_version, payload_bytes, .. } = letter.source else { panic!("{letter:?}") };
    assert_eq!((event_id, stream_version, payload_bytes > 1_200_000), (poison_id, 2, true));

    let by_account = versions_by_account(&read_topic(&brokers, &topic).await);
    assert_eq!(by_account[&poisoned.to_string()], vec![1, 3], "the dead row is skipped, after it was dead-lettered");
    assert_eq!(by_account[&healthy.to_string()], vec![1, 2, 3, 4, 5]);
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_sends_the_events_since_a_moment_again_from_the_log() {
    let (_broker, brokers) = test_broker().await;
    let (topic, dlq) = topics(&brokers, "replay").await;
    let database = FreshDatabase::create().await;
    let store = database.store(&topic, 65_536);
    let (earlier, later) = (Uuid::new_v4(), Uuid::new_v4());
    append(store.as_ref(), earlier, &[SMALL; 3]).await;
    let since = store.read_stream(earlier, 0).await.unwrap()[2].metadata.recorded_at + chrono::Duration::microseconds(1);
    while chrono::Utc::now() <= since {
        tokio::task::yield_now().await;
    }
    let replayed_ids = append(store.as_ref(), later, &[SMALL; 4]).await;
    let publisher = publisher(store.clone(), &brokers, publish_settings(&dlq, 100, TIMEOUT), TIMEOUT);
    assert_eq!(publisher.run(Instant::now() + Duration::from_secs(20)).await.unwrap().published, 7);
    assert_eq!(store.counts().await.unwrap().pending, 0);

    // The broker lost them (as if reset): queue what was recorded since.
    assert_eq!(store.replay_events(since).await.unwrap(), 4);
    let again = publisher.run(Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert_eq!((again.published, again.remaining), (4, 0));

    let records = read_topic(&brokers, &topic).await;
    assert_eq!(records.len(), 11);
    let by_account = versions_by_account(&records);
    assert_eq!(by_account[&earlier.to_string()], vec![1, 2, 3], "older events are not sent again");
    assert_eq!(by_account[&later.to_string()], vec![1, 2, 3, 4, 1, 2, 3, 4], "sent again, in order");
    for event_id in replayed_ids {
        let copies: Vec<&Received> = records.iter().filter(|r| r.headers["event_id"] == event_id.to_string()).collect();
        assert_eq!(copies.len(), 2);
        assert_eq!(
            (copies[0].value.clone(), copies[0].headers.clone()),
            (copies[1].value.clone(), copies[1].headers.clone()),
            "the same record"
        );
    }
    database.drop_database().await;
}
