//! The Kafka event source mapping of the projector, played locally.
//!
//! In AWS, Lambda's event source mapping polls the events topic as consumer
//! group `ledgerline-projector`, invokes the projector with batches, and
//! commits offsets only for what the function has processed. No local
//! emulator offers that, so `serve` does the same here, with the settings
//! template.yaml gives the real mapping:
//!
//! - one consumer (auto commit off, from the earliest offset when the group
//!   has none, like `StartingPosition: TRIM_HORIZON`);
//! - records go to one worker per partition, so partitions progress
//!   independently and each partition's records are delivered in order;
//! - a worker sends a batch of up to `batch_size` records (100) once it is
//!   full or `batch_window` after its first record, as a `KafkaEvent` JSON
//!   shaped exactly like Lambda's (base64 key and value, headers as lists of
//!   byte values, records under `"<topic>-<partition>"`);
//! - success commits the offset after the batch; a `batchItemFailures`
//!   answer commits up to the first failed offset and delivers again from
//!   it; an error (or an answer that is not understood) delivers the batch
//!   again. Both after a backoff, and at most `max_retries` times in a row
//!   for the same first record;
//! - when the retries are spent, the rest of the batch goes to the
//!   on-failure destination — locally a JSON-lines file (one line per batch:
//!   the error, the offsets and the whole `KafkaEvent`), and a log line — and
//!   its offsets are committed so the partition moves on, as Lambda does.
//!
//! Not emulated: `BisectBatchOnFunctionError` (a failing batch is retried
//! whole, then sent to the destination whole) and `MaximumRecordAgeInSeconds`.
//!
//! Run one `serve` per consumer group: records already handed to a worker
//! when a rebalance takes their partition away are still delivered, and
//! their commit fails (logged); the new owner delivers them again.
//!
//! Delivery is at least once: a crash between an invocation and its commit
//! delivers the batch again. The projector is idempotent (version-conditional
//! writes), so that is harmless.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, Timestamp, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use aws_lambda_events::event::kafka::KafkaRecord;
use projector::kafka_event::RecordParts;

use super::invoke::LambdaInvoker;

/// How the mapping polls, batches, retries and gives up.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    /// The function invoked with each batch.
    pub function: String,
    /// Records per invocation at most (template.yaml: `BatchSize: 100`).
    pub batch_size: usize,
    /// How long a worker waits for a batch to fill after its first record
    /// (template.yaml: `MaximumBatchingWindowInSeconds: 0`: it takes what
    /// has arrived, up to `batch_size`, and goes).
    pub batch_window: Duration,
    /// Retries of a failing batch before it goes to the on-failure file
    /// (template.yaml: `MaximumRetryAttempts: 10`; locally fewer, so a
    /// poison batch shows quickly).
    pub max_retries: u32,
    /// Backoff between retries: `base * 2^(n-1)`, at most `max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The on-failure destination: a JSON-lines file.
    pub failure_file: PathBuf,
    /// Other librdkafka properties (security settings, say).
    pub kafka_extra: Vec<(String, String)>,
}

impl MappingSettings {
    /// The local defaults for `brokers` and `topic`.
    pub fn local(brokers: &str, topic: &str, failure_file: PathBuf) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group_id: "ledgerline-projector".into(),
            function: "projector".into(),
            batch_size: 100,
            batch_window: Duration::ZERO,
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            failure_file,
            kafka_extra: Vec::new(),
        }
    }

    /// Without jitter: one worker per partition, nothing to spread out.
    fn backoff(&self, failures: u32) -> Duration {
        ledgerline_shared::resilience::Backoff { base: self.backoff_base, max: self.backoff_max }.ceiling(failures)
    }
}

/// One Kafka record, owned, with what Lambda puts in a `KafkaEvent`.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds and Lambda's name for the kind (`CREATE_TIME`, ...).
    pub timestamp: (i64, &'static str),
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    fn from_message(message: &impl Message) -> Self {
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(ms) => (ms, "CREATE_TIME"),
            Timestamp::LogAppendTime(ms) => (ms, "LOG_APPEND_TIME"),
            Timestamp::NotAvailable => (0, "NO_TIMESTAMP_TYPE"),
        };
        let headers = message
            .headers()
            .map(|headers| headers.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The record as Lambda shows it.
    pub fn to_kafka_record(&self) -> KafkaRecord {
        projector::kafka_event::record(RecordParts {
            topic: &self.topic,
            partition: self.partition.into(),
            offset: self.offset,
            timestamp_ms: self.timestamp.0,
            timestamp_type: self.timestamp.1,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
        })
    }
}

/// `"<topic>-<partition>"`: how a `KafkaEvent` names a partition.
pub fn partition_key(topic: &str, partition: i32) -> String {
    projector::kafka_event::partition_key(topic, partition.into())
}

/// The `KafkaEvent` JSON for a batch, exactly as Lambda sends it.
pub fn kafka_event(brokers: &str, records: &[Record]) -> Value {
    projector::kafka_event::lambda_json(&projector::kafka_event::event(brokers, records.iter().map(Record::to_kafka_record)))
}

/// What the function's answer means for a batch of one partition: `None`
/// when every record succeeded, else the first failed offset. An answer
/// naming a record that is not in the batch is not understood (`Err`), and
/// the whole batch counts as failed, as in Lambda.
pub fn first_failure(answer: &Value, records: &[Record]) -> anyhow::Result<Option<i64>> {
    let Some(failures) = answer.get("batchItemFailures") else { return Ok(None) };
    if failures.is_null() {
        return Ok(None);
    }
    let failures = failures.as_array().ok_or_else(|| anyhow!("batchItemFailures is not a list: {answer}"))?;
    let mut first: Option<i64> = None;
    for failure in failures {
        let id = &failure["itemIdentifier"];
        let (Some(partition), Some(offset)) = (id["partition"].as_str(), id["offset"].as_i64()) else {
            return Err(anyhow!("a batch item failure without partition and offset: {failure}"));
        };
        if !records.iter().any(|r| r.offset == offset && partition_key(&r.topic, r.partition) == partition) {
            return Err(anyhow!("the function reported {partition} offset {offset} as failed, which is not in the batch"));
        }
        first = Some(first.map_or(offset, |f| f.min(offset)));
    }
    Ok(first)
}

/// Runs the mapping until the future is dropped (aborting it stops every
/// partition worker and closes the consumer).
/// The offset to commit after a batch: one past its highest offset (after a
/// rebalance a worker can hold records again that it already had, so the
/// last record is not always the highest).
fn next_offset(batch: &[Record]) -> i64 {
    batch.iter().map(|r| r.offset).max().map_or(0, |offset| offset + 1)
}

pub async fn run(settings: MappingSettings, invoker: LambdaInvoker) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Answer a fetch as soon as a record is there, not after the
        // default 500 ms: this is the read side's latency.
        .set("fetch.wait.max.ms", "10")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // A partition worker may wait out slow invocations (a function's
        // first compilation) and their retries while its queue is full; the
        // consumer must not be dropped from the group meanwhile, or its
        // records would be fetched twice. An hour covers the local retries.
        .set("max.poll.interval.ms", "3600000")
        .set("client.id", "ledgerline-serve-event-source");
    for (name, value) in &settings.kafka_extra {
        config.set(name, value);
    }
    let consumer: Arc<StreamConsumer> = Arc::new(config.create().context("the event source mapping's Kafka consumer")?);
    consumer.subscribe(&[&settings.topic]).with_context(|| format!("subscribing to {}", settings.topic))?;
    let shared = Arc::new(Shared { settings, invoker, consumer: consumer.clone() });
    let mut workers: HashMap<i32, mpsc::Sender<Record>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut last_error: Option<String> = None;
    loop {
        let message = match consumer.recv().await {
            Ok(message) => message,
            Err(error) => {
                // Broker trouble shows here; librdkafka reconnects by itself.
                let text = error.to_string();
                if last_error.as_deref() != Some(&text) {
                    eprintln!("ledgerline serve: event source mapping: {text} (librdkafka retries)");
                    last_error = Some(text);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        last_error = None;
        let record = Record::from_message(&message);
        drop(message);
        let sender = workers.entry(record.partition).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(10_000);
            tasks.spawn(partition_worker(shared.clone(), receiver));
            sender
        });
        if sender.send(record).await.is_err() {
            return Err(anyhow!("a partition worker stopped"));
        }
    }
}

struct Shared {
    settings: MappingSettings,
    invoker: LambdaInvoker,
    consumer: Arc<StreamConsumer>,
}

/// Collects and delivers one partition's records, one batch at a time.
async fn partition_worker(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Record>) {
    let settings = &shared.settings;
    loop {
        let Some(first) = receiver.recv().await else { return };
        let mut batch = vec![first];
        let window_ends = Instant::now() + settings.batch_window;
        while batch.len() < settings.batch_size {
            match tokio::time::timeout_at(window_ends, receiver.recv()).await {
                Ok(Some(record)) => batch.push(record),
                Ok(None) | Err(_) => break,
            }
        }
        deliver(&shared, batch).await;
    }
}

/// Invokes the function until the batch is processed or the retries are
/// spent; commits what is done.
async fn deliver(shared: &Shared, mut batch: Vec<Record>) {
    let settings = &shared.settings;
    let mut failures = 0u32;
    loop {
        let event = kafka_event(&settings.brokers, &batch);
        let outcome = match shared.invoker.invoke(&settings.function, &event).await {
            Ok(answer) => first_failure(&answer, &batch),
            Err(error) => Err(error),
        };
        let error = match outcome {
            Ok(None) => {
                commit(shared, &batch[0], next_offset(&batch)).await;
                return;
            }
            Ok(Some(failed)) => {
                let done = batch.iter().take_while(|r| r.offset < failed).count();
                if done > 0 {
                    commit(shared, &batch[0], failed).await;
                    batch.drain(..done);
                    failures = 0; // a new first record: its own retry budget
                }
                anyhow!("the function reported offset {failed} as failed")
            }
            Err(error) => error,
        };
        failures += 1;
        if failures > settings.max_retries {
            send_to_failure_destination(settings, &batch, &kafka_event(&settings.brokers, &batch), failures, &error);
            commit(shared, &batch[0], next_offset(&batch)).await;
            return;
        }
        tokio::time::sleep(settings.backoff(failures)).await;
    }
}

/// Appends the batch to the on-failure file and logs it. A batch that cannot
/// be written is still logged in full, so it is never silently dropped.
fn send_to_failure_destination(settings: &MappingSettings, batch: &[Record], event: &Value, attempts: u32, error: &anyhow::Error) {
    let (first, last) = (&batch[0], &batch[batch.len() - 1]);
    let entry = json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "condition": "RetryAttemptsExhausted",
        "function": settings.function,
        "approximateInvokeCount": attempts,
        "error": format!("{error:#}"),
        "topic": first.topic,
        "partition": first.partition,
        "firstOffset": first.offset,
        "lastOffset": last.offset,
        "batchSize": batch.len(),
        "event": event,
    });
    let written = (|| {
        if let Some(dir) = settings.failure_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::File::options().create(true).append(true).open(&settings.failure_file)?;
        writeln!(file, "{entry}")
    })();
    match written {
        Ok(()) => eprintln!(
            "ledgerline serve: {} gave up on {} offsets {}..={} after {attempts} attempts ({error:#}); the batch is in {}",
            settings.function,
            partition_key(&first.topic, first.partition),
            first.offset,
            last.offset,
            settings.failure_file.display()
        ),
        Err(io) => eprintln!("ledgerline serve: cannot write {} ({io}); the failed batch: {entry}", settings.failure_file.display()),
    }
}

/// Commits `next` (the next offset to read) for the record's partition. A
/// commit that fails is retried a few times; after that it is left to the
/// next batch's commit (offsets only move forward), at worst a restart
/// delivers some records again.
async fn commit(shared: &Shared, record: &Record, next: i64) {
    let mut offsets = TopicPartitionList::new();
    if let Err(error) = offsets.add_partition_offset(&record.topic, record.partition, Offset::Offset(next)) {
        eprintln!("ledgerline serve: event source mapping: {error}");
        return;
    }
    for attempt in 1..=5u32 {
        let consumer = shared.consumer.clone();
        let offsets = offsets.clone();
        let result = tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync)).await;
        match result {
            Ok(Ok(())) => return,
            Ok(Err(error)) if attempt == 5 => {
                eprintln!(
                    "ledgerline serve: event source mapping: cannot commit {} offset {next}: {error}",
                    partition_key(&record.topic, record.partition)
                );
            }
            Ok(Err(_)) => tokio::time::sleep(shared.settings.backoff(attempt)).await,
            Err(join) => {
                eprintln!("ledgerline serve: event source mapping: commit task: {join}");
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "event_source_tests.rs"]
mod tests;
