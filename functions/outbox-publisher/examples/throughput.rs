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
//!    time from each append's commit to the broker's acknowledgement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{AppendBatch, EventMetadata, EventStore, NewEvent, PostgresEventStore, StoreSettings, StreamAppend};
use ledgerline_shared::resilience::Backoff;
use ledgerline_tests::services::FreshDatabase;
use outbox_publisher::config::KafkaSettings;
use outbox_publisher::kafka::{KafkaSink, ensure_topics};
use outbox_publisher::{PublishSettings, Publisher, Record, RecordSink};
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

async fn producer_in_flight(brokers: &str, count: usize) {
    let sink = KafkaSink::new(settings(brokers)).unwrap();
    let topic = fresh_topic(brokers, "inflight").await;
    let keys: Vec<String> = (0..100).map(|_| Uuid::new_v4().to_string()).collect();
    let payload = vec![7u8; PAYLOAD];
    let headers = vec![("event_id".to_string(), Uuid::new_v4().to_string())];
    // Warm up: connection, metadata and producer id are not what we measure.
    sink.enqueue(Record { topic: &topic, key: &keys[0], payload: &payload, headers: &headers }).unwrap().await.unwrap();
    let started = Instant::now();
    let deliveries: Vec<_> = (0..count)
        .map(|i| sink.enqueue(Record { topic: &topic, key: &keys[i % keys.len()], payload: &payload, headers: &headers }).unwrap())
        .collect();
    for delivery in deliveries {
        delivery.await.expect("acknowledged");
    }
    println!("producer, all in flight:        {}", rate(count, started.elapsed()));
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

async fn whole_publisher(brokers: &str, count: usize, batch_size: usize) {
    let topic = fresh_topic(brokers, "publisher").await;
    let database = fresh_database().await;
    let url = database.url.clone();
    let pool = ledgerline_shared::db::pool(&DatabaseSettings { url, pool_size: 8, connect_timeout: Duration::from_secs(5), ca_file: None })
        .unwrap();
    let store = Arc::new(PostgresEventStore::new(pool, StoreSettings { events_topic: topic, ..StoreSettings::default() }));
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
    let publish = PublishSettings {
        dlq_topic: "unused".into(),
        batch_size,
        max_attempts: 5,
        backoff: Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) },
        retention: Duration::from_secs(72 * 3600),
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
    println!("publisher, batch {batch_size:>4}:          {} ({} batches)", rate(summary.published as usize, elapsed), summary.batches);
    drop(publisher);
    drop(store);
    database.drop_database().await;
}

/// Commit -> Kafka: appends one event at a time while a following publisher
/// runs; each outbox row records when it was written (`created_at`, the
/// append's own one-statement transaction) and when the broker acknowledged
/// it (`published_at`). Prints the percentiles of the difference.
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
        retention: Duration::from_secs(72 * 3600),
        deadline_margin: Duration::from_secs(1),
        batch_timeout: Duration::from_secs(35),
        run_for: Duration::from_secs(600),
        poll_interval: Duration::from_millis(20),
    };
    let publisher = Publisher::new(store.clone(), KafkaSink::new(settings(brokers)).unwrap(), publish);
    let publishing = tokio::spawn(async move { publisher.run(tokio::time::Instant::now() + Duration::from_secs(601)).await });

    let accounts: Vec<Uuid> = (0..16).map(|_| Uuid::new_v4()).collect();
    let mut versions = vec![0u64; accounts.len()];
    // Warm up: the producer's first send (connection, metadata, producer
    // id) takes about a second, once per container; not what we measure.
    let client = pool.get().await.unwrap();
    let warm_up = NewEvent { event_id: Uuid::now_v7(), event_type: "MoneyDeposited".into(), schema_version: 1, payload: vec![7; PAYLOAD] };
    let warm_up_stream = StreamAppend { stream_id: Uuid::new_v4(), expected_version: 0, events: vec![warm_up], snapshot: None };
    let metadata = EventMetadata::now("bench", Uuid::now_v7(), "bench");
    store.append(AppendBatch { streams: vec![warm_up_stream], metadata, idempotency: None, open_limit: None }).await.unwrap();
    while client.query_one("SELECT count(*) FROM outbox WHERE status = 'pending'", &[]).await.unwrap().get::<_, i64>(0) > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticks_from: i64 = client.query_one("SELECT max(id) FROM outbox", &[]).await.unwrap().get(0);
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    for n in 0..count {
        ticks.tick().await;
        let a = n % accounts.len();
        let event =
            NewEvent { event_id: Uuid::now_v7(), event_type: "MoneyDeposited".into(), schema_version: 1, payload: vec![7; PAYLOAD] };
        store
            .append(AppendBatch {
                streams: vec![StreamAppend { stream_id: accounts[a], expected_version: versions[a], events: vec![event], snapshot: None }],
                metadata: EventMetadata::now("bench", Uuid::now_v7(), "bench"),
                idempotency: None,
                open_limit: None,
            })
            .await
            .unwrap();
        versions[a] += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.query_one("SELECT count(*) FROM outbox WHERE status = 'pending'", &[]).await.unwrap().get::<_, i64>(0) > 0 {
        assert!(Instant::now() < deadline, "the publisher did not keep up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) \
             FROM (SELECT (extract(epoch FROM published_at - created_at) * 1000)::float8 AS lag FROM outbox WHERE id > $1) l",
            &[&ticks_from],
        )
        .await
        .unwrap();
    let (p50, p99, max): (f64, f64, f64) = (row.get(0), row.get(1), row.get::<_, f64>(2));
    println!("freshness, commit -> acknowledged: {count} events at 200/s: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
    publishing.abort();
    drop(client);
    drop(store);
    drop(pool);
    database.drop_database().await;
}

#[tokio::main]
async fn main() {
    let brokers = std::env::var("LEDGERLINE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let count: usize = std::env::args().nth(1).map_or(20_000, |n| n.parse().expect("RECORDS is a number"));
    println!("broker {brokers}, {PAYLOAD}-byte values, linger.ms=5, idempotent, acks=all");
    producer_in_flight(&brokers, count).await;
    producer_one_at_a_time(&brokers, 300).await;
    for batch_size in [100, 500, 2000] {
        whole_publisher(&brokers, count / 2, batch_size).await;
    }
    freshness(&brokers, 2_000).await;
}
