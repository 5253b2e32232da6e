//! `ledgerline outbox status`, `dlq list` and `dlq redrive`, run as an
//! operator runs them, against a database of their own and topics of their
//! own on the local broker.

use std::process::{Command, Output};
use std::time::Duration;

use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::dead_letter::{DeadLetter, DeadLetterSource};
use ledgerline_shared::event_store::{AppendBatch, EventMetadata, EventStore, NewEvent, PostgresEventStore, StoreSettings, StreamAppend};
use ledgerline_shared::outbox::{OutboxStore, Outcome};
use ledgerline_tests::services::FreshDatabase;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

fn brokers() -> String {
    std::env::var("LEDGERLINE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

struct Database {
    url: String,
    fresh: FreshDatabase,
}

impl Database {
    async fn create() -> Self {
        let fresh = FreshDatabase::create("ops").await;
        ledgerline_shared::migrate::run(&fresh.url).await.unwrap();
        Self { url: fresh.url.clone(), fresh }
    }

    fn store(&self) -> PostgresEventStore {
        let settings = DatabaseSettings { url: self.url.clone(), pool_size: 2, connect_timeout: Duration::from_secs(5), ca_file: None };
        PostgresEventStore::new(ledgerline_shared::db::pool(&settings).unwrap(), StoreSettings::default())
    }

    async fn drop(self) {
        self.fresh.drop_database().await;
    }
}

async fn append(store: &PostgresEventStore, stream: Uuid, count: usize) {
    let events = (0..count)
        .map(|i| NewEvent { event_id: Uuid::new_v4(), event_type: "TestEvent".into(), schema_version: 1, payload: vec![i as u8] })
        .collect();
    store
        .append(AppendBatch {
            streams: vec![StreamAppend { stream_id: stream, expected_version: 0, events, snapshot: None }],
            metadata: EventMetadata::now("ops-test", Uuid::new_v4(), "tester"),
            idempotency: None,
            open_limit: None,
        })
        .await
        .unwrap();
}

fn ledgerline(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerline")).args(args).envs(env.iter().copied()).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn create_topic(name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let created = admin.create_topics(&[NewTopic::new(name, 1, TopicReplication::Fixed(1))], &options).await.unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
}

async fn produce(topic: &str, key: &str, payload: &[u8]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    producer.send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

#[tokio::test]
async fn outbox_status_counts_pending_and_dead_rows() {
    let database = Database::create().await;
    let store = database.store();
    append(&store, Uuid::new_v4(), 3).await;
    let batch = store.claim(10, Duration::from_secs(30)).await.unwrap().unwrap();
    let first = batch.messages()[0].id;
    batch.complete(vec![Outcome::Dead { id: first, error: "too large".into() }]).await.unwrap();

    let out = stdout(&ledgerline(&["outbox", "status"], &[("DATABASE_URL", &database.url)]));
    assert!(out.contains("pending:   2 (2 due now)"), "{out}");
    assert!(out.contains("dead:      1"), "{out}");
    assert!(out.contains(" ago)"), "the oldest pending row's age is shown: {out}");
    database.drop().await;

    let failed = ledgerline(&["outbox", "status"], &[("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:1/x")]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("is PostgreSQL up?"));
}

#[tokio::test]
async fn outbox_replay_queues_the_events_again_for_the_configured_topic() {
    let database = Database::create().await;
    let store = database.store();
    let account = Uuid::new_v4();
    append(&store, account, 2).await;
    // The broker acknowledged both: they left the outbox.
    let batch = store.claim(10, Duration::from_secs(30)).await.unwrap().unwrap();
    let outcomes = batch.messages().iter().map(|m| Outcome::Published { id: m.id }).collect();
    batch.complete(outcomes).await.unwrap();
    assert!(store.outbox_for_stream(account).await.unwrap().is_empty());

    let env = [("DATABASE_URL", database.url.as_str()), ("LEDGERLINE_EVENTS_TOPIC", "ledgerline.replayed-events")];
    let out = stdout(&ledgerline(&["outbox", "replay", "--since", "1h"], &env));
    assert!(out.contains("2 events recorded since"), "{out}");
    let rows = store.outbox_for_stream(account).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.stream_version, r.topic.as_str())).collect::<Vec<_>>(),
        vec![(1, "ledgerline.replayed-events"), (2, "ledgerline.replayed-events")]
    );
    let again = stdout(&ledgerline(&["outbox", "replay", "--since", "1h"], &env));
    assert!(again.contains("0 events recorded since"), "queued once: {again}");
    database.drop().await;
}

#[tokio::test]
async fn dlq_list_shows_both_kinds_of_dead_letter_and_redrive_sends_each_back_once() {
    let suffix = Uuid::new_v4().simple().to_string();
    let (dlq, source) = (format!("test.ops.dlq.{suffix}"), format!("test.ops.source.{suffix}"));
    create_topic(&dlq).await;
    create_topic(&source).await;
    let database = Database::create().await;
    let store = database.store();
    let account = Uuid::new_v4();
    append(&store, account, 1).await;
    let batch = store.claim(10, Duration::from_secs(30)).await.unwrap().unwrap();
    let row = batch.messages()[0].clone();
    batch.complete(vec![Outcome::Dead { id: row.id, error: "message too large".into() }]).await.unwrap();

    use base64::Engine;
    let original = b"bytes the projector could not decode";
    produce(&dlq, &account.to_string(), &DeadLetter::outbox_row(&row, "message too large").to_json()).await;
    produce(
        &dlq,
        "poison-key",
        &DeadLetter {
            error: "the value is not an event envelope".into(),
            source: DeadLetterSource::KafkaRecord {
                source_topic: source.clone(),
                partition: 0,
                offset: 41,
                key: Some(base64::engine::general_purpose::STANDARD.encode("poison-key")),
                value: Some(base64::engine::general_purpose::STANDARD.encode(original)),
            },
        }
        .to_json(),
    )
    .await;

    let env = [("LEDGERLINE_KAFKA_BROKERS", brokers()), ("LEDGERLINE_DLQ_TOPIC", dlq.clone()), ("DATABASE_URL", database.url.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listed = stdout(&ledgerline(&["dlq", "list"], &env));
    assert!(listed.contains(&format!("outbox row {}", row.id)) && listed.contains("message too large"), "{listed}");
    assert!(listed.contains(&format!("record {source}/0@41: the value is not an event envelope")), "{listed}");
    assert!(listed.contains("2 dead letter(s)"), "{listed}");

    let redriven = stdout(&ledgerline(&["dlq", "redrive"], &env));
    assert!(redriven.contains("1 dead outbox row(s) set to pending"), "{redriven}");
    assert!(redriven.contains("1 undecodable record(s) sent back"), "{redriven}");
    assert_eq!(store.counts().await.unwrap().dead, 0);
    assert_eq!(store.counts().await.unwrap().pending, 1);

    // The record is back on its source topic, with its key.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("ops-test-{suffix}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&source]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let message = loop {
        assert!(std::time::Instant::now() < deadline, "nothing arrived on {source}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            break message.unwrap().detach();
        }
    };
    assert_eq!(message.payload(), Some(&original[..]));
    assert_eq!(message.key(), Some(&b"poison-key"[..]));

    // A second redrive finds nothing new: each letter is redriven once.
    let again = stdout(&ledgerline(&["dlq", "redrive"], &env));
    assert!(again.contains("0 dead outbox row(s)") && again.contains("0 undecodable record(s)"), "{again}");
    // And list still shows the history.
    assert!(stdout(&ledgerline(&["dlq", "list"], &env)).contains("2 dead letter(s)"));
    database.drop().await;
}
