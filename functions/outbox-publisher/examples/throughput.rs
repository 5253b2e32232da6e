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
//!    Kafka by `Publisher::run` (claim, send, mark published), per batch size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{AppendBatch, EventMetadata, EventStore, NewEvent, PostgresEventStore, StoreSettings, StreamAppend};
use outbox_publisher::backoff::Backoff;
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

async fn fresh_database() -> (String, String, String) {
    let test_url = std::env::var("LEDGERLINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test".into());
    let (server, _) = test_url.rsplit_once('/').unwrap();
    let admin_url = format!("{server}/postgres");
    let name = format!("ledgerline_bench_{}", Uuid::new_v4().simple());
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.expect("PostgreSQL is up");
    tokio::spawn(connection);
    admin.execute(&format!("CREATE DATABASE {name}"), &[]).await.unwrap();
    let url = format!("{server}/{name}");
    ledgerline_shared::migrate::run(&url).await.unwrap();
    (url, admin_url, name)
}

async fn whole_publisher(brokers: &str, count: usize, batch_size: usize) {
    let topic = fresh_topic(brokers, "publisher").await;
    let (url, admin_url, name) = fresh_database().await;
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
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    drop(publisher);
    drop(store);
    admin.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[]).await.unwrap();
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
}
