//! The rdkafka producer behind [`RecordSink`].
//!
//! Settings the delivery guarantee rests on, fixed here and not overridable
//! (see `config`): `enable.idempotence=true` (librdkafka then also uses
//! `acks=all`, unlimited retries within `message.timeout.ms`, and at most 5
//! requests in flight with sequence numbers, so retries neither duplicate
//! nor reorder records of a partition) and `acks=all` stated explicitly.
//!
//! Built once per Lambda container, on the shared
//! [`ReplaceableProducer`]. A producer that hit a fatal error is replaced
//! only between batches ([`RecordSink::start_batch`]): within a batch it
//! refuses every record from then on, and the publisher sends nothing more
//! of that batch (docs/OUTBOX.md, "One producer per batch").

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ledgerline_shared::kafka::ReplaceableProducer;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use thiserror::Error;

use crate::config::KafkaSettings;
use crate::record::{Record, RecordSink, SendError};

#[derive(Debug, Error)]
pub enum KafkaSetupError {
    #[error("cannot create the Kafka client: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot create topic {topic}: {code:?}")]
    Topic { topic: String, code: RDKafkaErrorCode },
}

/// The producer's configuration: the fixed settings, then the pass-through ones.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", settings.message_timeout.as_millis().to_string())
        .set("linger.ms", settings.linger.as_millis().to_string())
        .set("client.id", "ledgerline-outbox-publisher");
    for (name, value) in &settings.extra {
        config.set(name, value);
    }
    config
}

pub struct KafkaSink {
    producer: ReplaceableProducer,
}

impl KafkaSink {
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaSetupError> {
        Ok(Self { producer: ReplaceableProducer::new(producer_config(&settings)).map_err(KafkaSetupError::Client)? })
    }

    /// The producer it sends through (tests inject faults into it).
    pub fn producer(&self) -> &ReplaceableProducer {
        &self.producer
    }

    /// Waits up to `timeout` for records still in flight (before a shutdown or in tests).
    pub fn flush(&self, timeout: Duration) -> Result<(), SendError> {
        self.producer.flush(timeout).map_err(classify)
    }
}

/// Sorts producer errors: the record's own fault (retrying the same bytes
/// cannot help) or the world's (retry later).
pub fn classify(error: KafkaError) -> SendError {
    use RDKafkaErrorCode::*;
    let permanent = matches!(
        error.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge | InvalidMessageSize | InvalidMessage | InvalidRecord | MessageBatchTooLarge | UnsupportedForMessageFormat
        )
    );
    if permanent { SendError::permanent(error.to_string()) } else { SendError::transient(error.to_string()) }
}

impl RecordSink for KafkaSink {
    type Delivery = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send>>;

    fn enqueue(&self, record: Record<'_>) -> Result<Self::Delivery, SendError> {
        let delivery = self.producer.enqueue(record.topic, record.key, record.payload, record.headers).map_err(classify)?;
        Ok(Box::pin(async move {
            // `delivery` does not keep the producer alive; a reset cannot cancel it.
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(classify(error)),
                Err(_canceled) => Err(SendError::transient("the producer was dropped before the broker answered")),
            }
        }))
    }

    fn start_batch(&self) {
        if let Err(error) = self.producer.replace_if_failed() {
            tracing::warn!(%error, "cannot replace the failed Kafka producer; this batch will fail and be retried");
        }
    }

    fn reset(&self) {
        tracing::warn!("no record of the last batch was acknowledged; starting a fresh Kafka producer");
        self.producer.replace();
    }
}

/// Creates the topics that do not exist yet (`partitions` each, replication
/// 1 unless the broker decides). Existing topics are left alone.
pub async fn ensure_topics(brokers: &str, topics: &[&str], partitions: i32, replication: i32) -> Result<(), KafkaSetupError> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(KafkaSetupError::Client)?;
    let new: Vec<NewTopic<'_>> = topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication))).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(new.iter(), &options).await.map_err(KafkaSetupError::Client)?;
    for result in results {
        if let Err((topic, code)) = result
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(KafkaSetupError::Topic { topic, code });
        }
    }
    Ok(())
}
