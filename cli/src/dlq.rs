//! `ledgerline dlq list` and `ledgerline dlq redrive`: the dead-letter topic.
//!
//! The letters are the shared [`DeadLetter`]: an outbox row the broker can
//! never accept (a pointer; the event stays in PostgreSQL, its row marked
//! `dead`), or a record the projector cannot decode (where it came from,
//! its original key and base64 value).
//!
//! `list` reads the whole topic without committing anything. `redrive`
//! revives the dead outbox rows (the publisher sends them again) and puts
//! the projector's records back on their source topic, once each: it reads
//! the topic with its own committed consumer group.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ledgerline_shared::dead_letter::{DeadLetter, DeadLetterSource};
use ledgerline_shared::outbox::OutboxStore;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// The consumer group `redrive` commits under, so each letter is redriven once.
const REDRIVE_GROUP: &str = "ledgerline-dlq-redrive";

#[derive(clap::Args, Clone)]
pub struct KafkaArgs {
    /// Kafka brokers.
    #[arg(long, env = "LEDGERLINE_KAFKA_BROKERS", default_value = ledgerline_shared::config::defaults::KAFKA_BROKERS)]
    brokers: String,
    /// The dead-letter topic.
    #[arg(long, env = "LEDGERLINE_DLQ_TOPIC", default_value = ledgerline_shared::config::defaults::DLQ_TOPIC)]
    topic: String,
}

#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// Print every dead letter: where it came from and why.
    List {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Retry dead letters: dead outbox rows go back to pending, undecodable
    /// records go back to their source topic. Each letter once.
    Redrive {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The event store database (for dead outbox rows).
        #[arg(long, env = "DATABASE_URL", default_value = ledgerline_shared::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
}

pub async fn run(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { kafka } => list(&kafka),
        DlqCommand::Redrive { kafka, database_url } => redrive(&kafka, &database_url).await,
    }
}

/// One letter, as read from the topic; `None` for a value that is not a
/// Ledgerline dead letter.
struct Letter {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    letter: Option<DeadLetter>,
}

impl Letter {
    fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let letter = message.payload().and_then(|p| DeadLetter::from_json(p).ok());
        Self { partition: message.partition(), offset: message.offset(), key: message.key().map(<[u8]>::to_vec), letter }
    }

    fn describe(&self) -> String {
        self.letter.as_ref().map_or_else(|| "a record that is not a Ledgerline dead letter".to_owned(), DeadLetter::describe)
    }
}

fn consumer(kafka: &KafkaArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the Kafka consumer")
}

/// Reads from the consumer's position to the end of every partition (as
/// the end was when reading started), handing each letter to `each`.
fn read_to_end(consumer: &BaseConsumer, topic: &str, mut each: impl FnMut(Letter) -> anyhow::Result<()>) -> anyhow::Result<usize> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of {topic} (is the broker up? scripts/services.sh starts it)"))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        bail!("topic {topic} does not exist");
    }
    let mut ends = HashMap::new();
    for &partition in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)).context("reading the topic's end")?;
        ends.insert(partition, high);
    }
    // Where this group starts: its committed offsets, or the beginning.
    let mut assigned = TopicPartitionList::new();
    for &partition in &partitions {
        assigned.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(assigned, Duration::from_secs(10)).context("reading committed offsets")?;
    let mut positions: HashMap<i32, i64> = partitions
        .iter()
        .map(|&p| {
            (
                p,
                committed
                    .find_partition(topic, p)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(n) => Some(n),
                        _ => None,
                    })
                    .unwrap_or(0),
            )
        })
        .collect();
    consumer.subscribe(&[topic]).context("subscribing")?;
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ends.iter().any(|(partition, high)| positions.get(partition).copied().unwrap_or(0) < *high) {
        if Instant::now() > deadline {
            bail!("timed out reading {topic}");
        }
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.context("reading a dead letter")?;
            positions.insert(message.partition(), message.offset() + 1);
            each(Letter::from_message(&message))?;
            read += 1;
        }
    }
    Ok(read)
}

fn list(kafka: &KafkaArgs) -> anyhow::Result<()> {
    let consumer = consumer(kafka, &format!("ledgerline-dlq-list-{}", uuid::Uuid::new_v4().simple()))?;
    let count = read_to_end(&consumer, &kafka.topic, |letter| {
        println!("{}@{}  {}", letter.partition, letter.offset, letter.describe());
        Ok(())
    })?;
    println!("{count} dead letter(s) in {}", kafka.topic);
    Ok(())
}

async fn redrive(kafka: &KafkaArgs, database_url: &str) -> anyhow::Result<()> {
    let store = crate::outbox::store(database_url)?;
    let revived = store.revive_dead(None).await.context("reviving dead outbox rows (is PostgreSQL up?)")?;
    println!("{revived} dead outbox row(s) set to pending: the outbox publisher sends them again");

    let consumer = consumer(kafka, REDRIVE_GROUP)?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .context("creating the Kafka producer")?;
    let mut records = Vec::new();
    read_to_end(&consumer, &kafka.topic, |letter| {
        records.push(letter);
        Ok(())
    })?;
    let mut resent = 0;
    for letter in &records {
        let Some(DeadLetter { source: DeadLetterSource::KafkaRecord { source_topic, key, value: Some(value), .. }, .. }) = &letter.letter
        else {
            continue;
        };
        let bytes = STANDARD.decode(value).unwrap_or_else(|_| value.as_bytes().to_vec());
        let key = key.as_ref().map(|k| STANDARD.decode(k).unwrap_or_else(|_| k.as_bytes().to_vec())).or_else(|| letter.key.clone());
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(source_topic).payload(&bytes);
        if let Some(key) = &key {
            record = record.key(key);
        }
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).context("re-sending a record to its topic")?;
        resent += 1;
    }
    // Only now, with every record re-sent, mark them done.
    if !records.is_empty() {
        consumer.commit_consumer_state(CommitMode::Sync).context("committing the redrive position")?;
    }
    println!("{resent} undecodable record(s) sent back to their source topic");
    Ok(())
}
