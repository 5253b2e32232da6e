//! Where poison records go: the dead-letter topic, as the shared
//! [`DeadLetter`] (source `kafka_record`), through the shared producer
//! ([`ReplaceableProducer`], replaced before a letter when it hit a fatal error).
//!
//! A poison record is skipped so it never blocks its partition, but it is
//! never dropped silently: if the dead-letter topic cannot take it, the
//! record is reported as failed and Lambda retries the batch from there.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ledgerline_shared::kafka::ReplaceableProducer;
use thiserror::Error;

pub use ledgerline_shared::dead_letter::{DeadLetter, DeadLetterSource};

#[derive(Debug, Error)]
#[error("the dead-letter topic did not take the record: {0}")]
pub struct DeadLetterError(pub String);

#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn send(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
}

/// The Kafka dead-letter topic.
pub struct KafkaDeadLetters {
    producer: ReplaceableProducer,
    topic: String,
    timeout: Duration,
}

impl KafkaDeadLetters {
    pub fn new(producer: ReplaceableProducer, topic: impl Into<String>, timeout: Duration) -> Self {
        Self { producer, topic: topic.into(), timeout }
    }
}

#[async_trait]
impl DeadLetterSink for KafkaDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let failed = |reason: String| DeadLetterError(reason);
        // Same key as the original (the account id), so it lands beside its siblings.
        let key = match &letter.source {
            DeadLetterSource::KafkaRecord { key, .. } => key.clone().unwrap_or_default(),
            DeadLetterSource::OutboxRow { stream_id, .. } => stream_id.to_string(),
        };
        // One record, nothing else in flight on it: a failed producer can be replaced first.
        self.producer.replace_if_failed().map_err(|e| failed(e.to_string()))?;
        let delivery =
            self.producer.enqueue(&self.topic, &key, &letter.to_json(), &letter.headers(&[])).map_err(|e| failed(e.to_string()))?;
        match tokio::time::timeout(self.timeout, delivery).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err((error, _)))) => Err(failed(error.to_string())),
            Ok(Err(_canceled)) => Err(failed("the producer was dropped before the broker answered".into())),
            Err(_) => Err(failed(format!("no acknowledgement within {:?}", self.timeout))),
        }
    }
}

/// Keeps dead letters in memory: the embedded mode's sink, and a test double.
#[derive(Default)]
pub struct InMemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
}

impl InMemoryDeadLetters {
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl DeadLetterSink for InMemoryDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).push(letter.clone());
        Ok(())
    }
}
