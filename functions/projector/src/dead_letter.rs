//! Where poison records go: a dead-letter Kafka topic, with the error.
//!
//! A poison record is skipped so it never blocks its partition, but it is
//! never dropped silently: if the dead-letter topic cannot take it, the
//! record is reported as failed and Lambda retries the batch from there.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The dead-letter record's value (JSON): where the record came from, why
/// it was refused, and its original value as Lambda delivered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub source_topic: String,
    pub partition: i64,
    pub offset: i64,
    pub key: Option<String>,
    /// The value as Lambda delivered it (base64), untouched.
    pub value: Option<String>,
    pub error: String,
}

#[derive(Debug, Error)]
#[error("the dead-letter topic did not take the record: {0}")]
pub struct DeadLetterError(pub String);

#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn send(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
}

/// The Kafka dead-letter topic.
pub struct KafkaDeadLetters {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl KafkaDeadLetters {
    pub fn new(producer: FutureProducer, topic: impl Into<String>, timeout: Duration) -> Self {
        Self { producer, topic: topic.into(), timeout }
    }
}

#[async_trait]
impl DeadLetterSink for KafkaDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let value = serde_json::to_vec(letter).expect("a dead letter serializes");
        let headers = OwnedHeaders::new()
            .insert(Header { key: "dead_letter_reason", value: Some(letter.error.as_str()) })
            .insert(Header { key: "source_topic", value: Some(letter.source_topic.as_str()) });
        // Same key as the original (the account id), so it lands beside its siblings.
        let key = letter.key.clone().unwrap_or_default();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&value).headers(headers);
        self.producer.send(record, self.timeout).await.map(|_| ()).map_err(|(error, _)| DeadLetterError(error.to_string()))
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
