//! Publish throughput against the local broker (tansu) and PostgreSQL: the
//! ceiling for the outbox publisher on this machine. Results: docs/OUTBOX.md.
//!
//!   scripts/services.sh
//!   cargo run -p outbox-publisher --example throughput [-- RECORDS]
//!
//! Three measurements, each on a fresh topic (3 partitions):
//! 1. the producer alone, every record in flight at once (how the publisher sends);
//! 2. the producer alone, each send awaited before the next (for contrast);
//! 3. the whole publisher: rows appended to a fresh database, then drained to
//!    Kafka by `Publisher::run` (claim, send, mark published), per batch size;
//! 4. freshness: a publisher that follows the outbox (`run_for`, polling
//!    every 20 ms) while events are appended one by one, 200 a second: the
//!    time from each append's return (committed) to the broker's
//!    acknowledgement of its record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{
    AppendBatch, EventEnvelope, EventMetadata, EventStore, NewEvent, PostgresEventStore, StoreSettings, StreamAppend,
};
use ledgerline_shared::resilience::Backoff;
use ledgerline_tests::services::FreshDatabase;
use outbox_publisher::config::KafkaSettings;
use outbox_publisher::kafka::{KafkaSink, ensure_topics};
use outbox_publisher::{PublishSettings, Publisher, Record, RecordSink, SendError};
use uuid::Uuid;

const PAYLOAD: usize = 200;

fn settings(brokers: &str) -> KafkaSettings {
    KafkaSettings { brokers: brokers.into(), message_timeout: Duration::from_secs(30), linger: Duration::from_millis(5), extra: Vec::new() }
}

async fn fresh_topic(brokers: &str, name: &str) -> String {
    let topic = format!("bench.{name}.{}", Uuid::new_v4().simple());
    ensure_topics(brokers, &[&topic], 3, 1).await.expect("create the topic");
    topic
}

fn rate(count: usize, elapsed: Duration) -> String {
    format!("{count} records in {:.2} s = {:.0} records/s", elapsed.as_secs_f64(), count as f64 / elapsed.as_secs_f64())
}

/// A record exactly as the publisher sends one of the benchmark's outbox
/// rows: the encoded envelope of a PAYLOAD-byte event, its four headers,
/// the account as key.
fn outbox_shaped_record(account: Uuid) -> (String, Vec<u8>, Vec<(String, String)>) {
    let envelope = EventEnvelope {
        event_id: Uuid::now_v7(),
        stream_id: account,
        version: 1,
        event_type: "MoneyDeposited".into(),
        schema_version: 1,
        payload: vec![7; PAYLOAD],
        metadata: EventMetadata::now("bench", Uuid::now_v7(), "bench"),
    };
    (account.to_string(), envelope.encode(), envelope.headers())
}

/// The baseline: the same producer settings and the same records as the
/// publisher sends (see `outbox_shaped_record`), every one in flight at once.
async fn producer_in_flight(brokers: &str, count: usize) -> f64 {
    let sink = KafkaSink::new(settings(brokers)).unwrap();
    let topic = fresh_topic(brokers, "inflight").await;
    let records: Vec<_> = (0..100).map(|_| outbox_shaped_record(Uuid::new_v4())).collect();
    let record = |i: usize| {
        let (key, payload, headers) = &records[i % records.len()];
        Record { topic: &topic, key, payload, headers }
    };
    // Warm up: connection, metadata and producer id are not what we measure.
    sink.enqueue(record(0)).unwrap().await.unwrap();
    let started = Instant::now();
    let deliveries: Vec<_> = (0..count).map(|i| sink.enqueue(record(i)).unwrap()).collect();
    for delivery in deliveries {
        delivery.await.expect("acknowledged");
    }
    let elapsed = started.elapsed();
    println!("producer, all in flight:        {}", rate(count, elapsed));
    count as f64 / elapsed.as_secs_f64()
}

async fn producer_one_at_a_time(brokers: &str, count: usize) {
    let sink = KafkaSink::new(settings(brokers)).unwrap();
    let topic = fresh_topic(brokers, "serial").await;
    let key = Uuid::new_v4().to_string();
    let payload = vec![7u8; PAYLOAD];
    sink.enqueue(Record { topic: &topic, key: &key, payload: &payload, headers: &[] }).unwrap().await.unwrap();
    let started = Instant::now();
    for _ in 0..count {
        sink.enqueue(Record { topic: &topic, key: &key, payload: &payload, headers: &[] }).unwrap().await.expect("acknowledged");
    }
    println!("producer, one awaited at a time: {}", rate(count, started.elapsed()));
}

/// A migrated database of the benchmark's own.
async fn fresh_database() -> FreshDatabase {
    let database = FreshDatabase::create("bench").await;
    ledgerline_shared::migrate::run(&database.url).await.unwrap();
    database
}

async fn whole_publisher(brokers: &str, count: usize, batch_size: usize, producer_alone: f64) {
    let topic = fresh_topic(brokers, "publisher").await;
    let database = fresh_database().await;
    let url = database.url.clone();
    let pool = ledgerline_shared::db::pool(&DatabaseSettings { url, pool_size: 8, connect_timeout: Duration::from_secs(5), ca_file: None })
        .unwrap();
    let store = Arc::new(PostgresEventStore::new(pool, StoreSettings { events_topic: topic.clone(), ..StoreSettings::default() }));
    // 100 accounts, 10 events per append.
    let accounts: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    let mut versions = vec![0u64; accounts.len()];
    for n in 0..count / 10 {
        let a = n % accounts.len();
        let events = (0..10)
            .map(|_| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "MoneyDeposited".into(),
                schema_version: 1,
                payload: vec![7; PAYLOAD],
            })
            .collect();
        store
            .append(AppendBatch {
                streams: vec![StreamAppend { stream_id: accounts[a], expected_version: versions[a], events, snapshot: None }],
                metadata: EventMetadata::now("bench", Uuid::now_v7(), "bench"),
                idempotency: None,
                open_limit: None,
            })
            .await
            .unwrap();
        versions[a] += 10;
    }
    let sink = KafkaSink::new(settings(brokers)).unwrap();
    // Warm up, as for the producer alone: a container's first send (connection,
    // metadata, producer id) takes about a second, once; a warm publisher keeps
    // its producer across invocations.
    let warm_key = Uuid::new_v4().to_string();
    sink.enqueue(Record { topic: &topic, key: &warm_key, payload: &[7], headers: &[] }).unwrap().await.unwrap();
    let publish = PublishSettings {
        dlq_topic: "unused".into(),
        batch_size,
        max_attempts: 5,
        backoff: Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) },
        deadline_margin: Duration::from_secs(1),
        batch_timeout: Duration::from_secs(35),
        run_for: Duration::ZERO,
        poll_interval: Duration::from_millis(20),
    };
    let publisher = Publisher::new(store.clone(), sink, publish);
    let started = Instant::now();
    let summary = publisher.run(tokio::time::Instant::now() + Duration::from_secs(600)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!((summary.published as usize, summary.remaining), (count / 10 * 10, 0), "{summary:?}");
    let publisher_rate = summary.published as f64 / elapsed.as_secs_f64();
    println!(
        "publisher, batch {batch_size:>4}:          {} ({} batches) = {:.2}x the producer alone",
        rate(summary.published as usize, elapsed),
        summary.batches,
        publisher_rate / producer_alone
    );
    drop(publisher);
    drop(store);
    database.drop_database().await;
}

/// The producer, noting when the broker acknowledged each record (by its
/// `event_id` header): the far end of commit -> Kafka.
struct Timed {
    inner: KafkaSink,
    acknowledged: Arc<Mutex<HashMap<String, Instant>>>,
}

impl RecordSink for Timed {
    type Delivery = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SendError>> + Send>>;

    fn enqueue(&self, record: Record<'_>) -> Result<Self::Delivery, SendError> {
        let event_id = record.headers.iter().find(|(name, _)| name == "event_id").map(|(_, id)| id.clone()).unwrap_or_default();
        let delivery = self.inner.enqueue(record)?;
        let acknowledged = self.acknowledged.clone();
        Ok(Box::pin(async move {
            let result = delivery.await;
            if result.is_ok() {
                acknowledged.lock().unwrap().entry(event_id).or_insert_with(Instant::now);
            }
            result
        }))
    }
}

/// Commit -> Kafka: appends one event at a time (200 a second) while a
/// following publisher runs, and measures from each append's return (its
/// transaction committed) to the broker's acknowledgement of its record.
async fn freshness(brokers: &str, count: usize) {
    let topic = fresh_topic(brokers, "freshness").await;
    let database = fresh_database().await;
    let url = database.url.clone();
    let pool = ledgerline_shared::db::pool(&DatabaseSettings { url, pool_size: 8, connect_timeout: Duration::from_secs(5), ca_file: None })
        .unwrap();
    let store = Arc::new(PostgresEventStore::new(pool.clone(), StoreSettings { events_topic: topic, ..StoreSettings::default() }));
    let publish = PublishSettings {
        dlq_topic: "unused".into(),
        batch_size: 500,
        max_attempts: 5,
        backoff: Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) },
        deadline_margin: Duration::from_secs(1),
        batch_timeout: Duration::from_secs(35),
        run_for: Duration::from_secs(600),
        poll_interval: Duration::from_millis(20),
    };
    let acknowledged = Arc::new(Mutex::new(HashMap::new()));
    let sink = Timed { inner: KafkaSink::new(settings(brokers)).unwrap(), acknowledged: acknowledged.clone() };
    let publisher = Publisher::new(store.clone(), sink, publish);
    let publishing = tokio::spawn(async move { publisher.run(tokio::time::Instant::now() + Duration::from_secs(601)).await });

    let append_one = |stream_id: Uuid, expected_version: u64| {
        let event_id = Uuid::now_v7();
        let event = NewEvent { event_id, event_type: "MoneyDeposited".into(), schema_version: 1, payload: vec![7; PAYLOAD] };
        let store = store.clone();
        async move {
            store
                .append(AppendBatch {
                    streams: vec![StreamAppend { stream_id, expected_version, events: vec![event], snapshot: None }],
                    metadata: EventMetadata::now("bench", Uuid::now_v7(), "bench"),
                    idempotency: None,
                    open_limit: None,
                })
                .await
                .unwrap();
            (event_id.to_string(), Instant::now())
        }
    };
    let wait_for = |ids: Vec<String>| {
        let acknowledged = acknowledged.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while ids.iter().any(|id| !acknowledged.lock().unwrap().contains_key(id)) {
                assert!(Instant::now() < deadline, "the publisher did not keep up");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Warm up: the producer's first send (connection, metadata, producer
    // id) takes about a second, once per container; not what we measure.
    let (warm_up, _) = append_one(Uuid::new_v4(), 0).await;
    wait_for(vec![warm_up]).await;

    let accounts: Vec<Uuid> = (0..16).map(|_| Uuid::new_v4()).collect();
    let mut versions = vec![0u64; accounts.len()];
    let mut committed = Vec::with_capacity(count);
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    for n in 0..count {
        ticks.tick().await;
        let a = n % accounts.len();
        committed.push(append_one(accounts[a], versions[a]).await);
        versions[a] += 1;
    }
    wait_for(committed.iter().map(|(id, _)| id.clone()).collect()).await;
    let mut lags: Vec<f64> = {
        let acknowledged = acknowledged.lock().unwrap();
        committed.iter().map(|(id, at)| acknowledged[id].saturating_duration_since(*at).as_secs_f64() * 1000.0).collect()
    };
    lags.sort_by(f64::total_cmp);
    let (p50, p99, max) = (lags[lags.len() / 2], lags[lags.len() * 99 / 100], lags[lags.len() - 1]);
    println!("freshness, commit -> acknowledged: {count} events at 200/s: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
    publishing.abort();
    drop(store);
    drop(pool);
    database.drop_database().await;
}

#[tokio::main]
async fn main() {
    let brokers = std::env::var("LEDGERLINE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let count: usize = std::env::args().nth(1).map_or(20_000, |n| n.parse().expect("RECORDS is a number"));
    println!("broker {brokers}, {PAYLOAD}-byte values, linger.ms=5, idempotent, acks=all");
    println!("each line sends {count} records shaped as the publisher sends them (envelope value, four headers)");
    let producer_alone = producer_in_flight(&brokers, count).await;
    producer_one_at_a_time(&brokers, 300).await;
    for batch_size in [100, 500, 2000] {
        whole_publisher(&brokers, count, batch_size, producer_alone).await;
    }
    freshness(&brokers, 2_000).await;
}
