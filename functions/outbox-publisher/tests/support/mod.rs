//! What the integration tests share: a PostgreSQL database of their own, a
//! tansu broker of their own (installed by `scripts/services.sh`), unique
//! topics, appends, and reading everything back from Kafka.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{
    AppendBatch, EventEnvelope, EventMetadata, EventStore, NewEvent, PostgresEventStore, StoreSettings, StreamAppend,
};
use ledgerline_shared::resilience::Backoff;
use outbox_publisher::config::KafkaSettings;
use outbox_publisher::kafka::{KafkaSink, ensure_topics};
use outbox_publisher::{PublishSettings, Publisher, RecordSink, Summary};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::time::Instant;
use uuid::Uuid;

pub use ledgerline_tests::services::eventually;

/// The broker a test talks to: `LEDGERLINE_TEST_KAFKA_BROKERS` when set,
/// otherwise a tansu of the test's own (see [`OwnBroker`]), stopped when the
/// returned guard is dropped. A broker per test keeps tests from disturbing
/// each other and keeps their topics out of the development broker.
pub async fn test_broker() -> (Option<OwnBroker>, String) {
    match std::env::var("LEDGERLINE_TEST_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => (None, brokers),
        _ => {
            let broker = OwnBroker::start().await;
            let brokers = broker.brokers();
            (Some(broker), brokers)
        }
    }
}

/// A database of its own, migrated: the publisher claims every pending row
/// of a database and takes a database-wide lock, so tests must not share one.
pub struct FreshDatabase(ledgerline_tests::services::FreshDatabase);

impl FreshDatabase {
    pub async fn create() -> Self {
        let database = ledgerline_tests::services::FreshDatabase::create("publisher").await;
        ledgerline_shared::migrate::run(&database.url).await.expect("migrate the fresh database");
        Self(database)
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    pub fn store(&self, topic: &str, max_event_bytes: usize) -> Arc<PostgresEventStore> {
        let pool = ledgerline_shared::db::pool(&DatabaseSettings {
            url: self.0.url.clone(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
        })
        .expect("a valid database URL");
        let settings = StoreSettings { events_topic: topic.into(), max_event_bytes, ..StoreSettings::default() };
        Arc::new(PostgresEventStore::new(pool, settings))
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.0.client().await
    }

    pub async fn drop_database(self) {
        self.0.drop_database().await;
    }
}

/// A fresh topic and its dead-letter topic, created on `brokers`.
pub async fn topics(brokers: &str, test: &str) -> (String, String) {
    let topic = format!("test.{test}.{}", Uuid::new_v4().simple());
    let dlq = format!("{topic}.dlq");
    ensure_topics(brokers, &[&topic, &dlq], 3, 1).await.expect("create the test topics");
    (topic, dlq)
}

pub fn kafka_settings(brokers: &str, message_timeout: Duration) -> KafkaSettings {
    KafkaSettings { brokers: brokers.into(), message_timeout, linger: Duration::from_millis(5), extra: Vec::new() }
}

pub fn publish_settings(dlq: &str, batch_size: usize, message_timeout: Duration) -> PublishSettings {
    PublishSettings {
        dlq_topic: dlq.into(),
        batch_size,
        max_attempts: 3,
        backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_millis(200) },
        deadline_margin: Duration::from_millis(500),
        batch_timeout: message_timeout + Duration::from_secs(2),
        run_for: Duration::ZERO,
        poll_interval: Duration::from_millis(20),
    }
}

pub fn publisher(
    store: Arc<PostgresEventStore>,
    brokers: &str,
    settings: PublishSettings,
    message_timeout: Duration,
) -> Publisher<KafkaSink> {
    let sink = KafkaSink::new(kafka_settings(brokers, message_timeout)).expect("a Kafka producer");
    Publisher::new(store, sink, settings)
}

/// Appends `payload_sizes.len()` events to `account` in one append; returns their event ids.
pub async fn append(store: &dyn EventStore, account: Uuid, payload_sizes: &[usize]) -> Vec<Uuid> {
    let version = store.stream_version(account).await.expect("stream version").unwrap_or(0);
    let events: Vec<NewEvent> = payload_sizes
        .iter()
        .map(|&size| NewEvent { event_id: Uuid::now_v7(), event_type: "MoneyDeposited".into(), schema_version: 1, payload: vec![42; size] })
        .collect();
    let ids = events.iter().map(|e| e.event_id).collect();
    store
        .append(AppendBatch {
            streams: vec![StreamAppend { stream_id: account, expected_version: version, events, snapshot: None }],
            metadata: EventMetadata::now(format!("corr-{account}"), Uuid::now_v7(), "test"),
            idempotency: None,
            open_limit: None,
        })
        .await
        .expect("append");
    ids
}

/// Runs the publisher until no pending row is left; returns every summary.
pub async fn drain<K: RecordSink>(publisher: &Publisher<K>, timeout: Duration) -> Vec<Summary> {
    let mut summaries = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        let summary = publisher.run(Instant::now() + Duration::from_secs(20)).await.expect("a publishing run");
        let done = summary.remaining == 0;
        summaries.push(summary);
        if done {
            return summaries;
        }
        let last = &summaries[summaries.len().saturating_sub(3)..];
        assert!(Instant::now() < deadline, "the outbox did not drain within {timeout:?} ({} runs); the last: {last:?}", summaries.len());
        // Rows waiting for a retry: let their backoff pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub headers: HashMap<String, String>,
    pub value: Vec<u8>,
}

impl Received {
    pub fn envelope(&self) -> EventEnvelope {
        EventEnvelope::decode(&self.value).expect("the record value is an event envelope")
    }
}

/// Everything in `topic` now: reads every partition from the beginning up
/// to its high watermark (so duplicates would be seen, not just a count).
pub async fn read_topic(brokers: &str, topic: &str) -> Vec<Received> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_topic_blocking(&brokers, &topic)).await.expect("the reader")
}

fn read_topic_blocking(brokers: &str, topic: &str) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("ledgerline-test-{}", Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10)).expect("watermarks");
        if high > low {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).expect("assign");
            ends.insert(partition.id(), high);
        }
    }
    let mut received = Vec::new();
    if ends.is_empty() {
        return received;
    }
    consumer.assign(&assignment).expect("assign partitions");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() {
        assert!(std::time::Instant::now() < deadline, "could not read {topic} to its end; still missing {ends:?}");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.expect("a record");
        let headers = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
            ends.remove(&message.partition());
        }
        received.push(Received {
            partition: message.partition(),
            offset: message.offset(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            headers,
            value: message.payload().unwrap_or_default().to_vec(),
        });
    }
    received.sort_by_key(|r| (r.partition, r.offset));
    received
}

/// Per account, the versions in the order a consumer sees them.
pub fn versions_by_account(records: &[Received]) -> HashMap<String, Vec<u64>> {
    let mut by_account: HashMap<String, Vec<u64>> = HashMap::new();
    for record in records {
        by_account.entry(record.key.clone()).or_default().push(record.envelope().version);
    }
    by_account
}

/// What a consumer that deduplicates by account version sees must be
/// 1, 2, 3, ... n: every record is either the next version or a repeat of
/// one already seen (never a gap, never an earlier version first).
pub fn assert_no_gaps_after_dedup(account: &str, versions: &[u64], expected_last: u64) {
    let mut last = 0;
    for &version in versions {
        assert!(version <= last + 1, "account {account}: version {version} after {last} is a gap ({versions:?})");
        last = last.max(version);
    }
    assert_eq!(last, expected_last, "account {account}: the last version ({versions:?})");
}

/// A tansu broker of the test's own, on a free port with its own data
/// directory, so stopping it disturbs no other test.
pub struct OwnBroker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnBroker {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("ledgerline-tansu-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a data directory");
        let mut broker = Self { port, dir, child: None };
        broker.restart().await;
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker again on the same port and data.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::options().create(true).append(true).open(self.dir.join("tansu.log")).expect("a log file");
        let child = Command::new(tansu_binary())
            .current_dir(&self.dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu (scripts/services.sh installs it)");
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        eventually("the test broker to listen", Duration::from_secs(30), || {
            let address = address.clone();
            async move { tokio::net::TcpStream::connect(address).await.ok().map(|_| ()) }
        })
        .await;
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tansu_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("tansu")).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu"))
}
