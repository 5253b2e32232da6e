//! The one dead-letter record: what the outbox publisher and the projector
//! send to the dead-letter topic, and what `ledgerline dlq` reads back.
//!
//! Two things can be dead-lettered, told apart by the `source` tag:
//!
//! - `outbox_row`: an outbox row the broker can never accept (too large,
//!   say). The letter is a pointer, not a copy: a row too large for the
//!   broker would not fit in a letter either, and the event stays safe in
//!   the `events` table with its outbox row marked `dead`, so an operator
//!   fixes the cause and revives it (`ledgerline dlq redrive`).
//! - `kafka_record`: a record the projector cannot decode. The letter holds
//!   where it came from and its original key and value (base64, as Lambda
//!   delivered them), so it can be put back on its topic.
//!
//! The Kafka key is the original's (the account id), so a letter lands
//! beside its siblings; the headers are the original's plus
//! [`REASON_HEADER`] and [`SOURCE_HEADER`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event_store::OutboxMessage;

/// The header naming why a record is in the dead-letter topic.
pub const REASON_HEADER: &str = "dead_letter_reason";
/// The header naming what was dead-lettered (the `source` tag's value).
pub const SOURCE_HEADER: &str = "dead_letter_source";

/// A dead letter: why, and what (the record's JSON value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why it could not be published or projected.
    pub error: String,
    #[serde(flatten)]
    pub source: DeadLetterSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DeadLetterSource {
    /// An outbox row the broker refused for good (see the module docs).
    OutboxRow {
        outbox_id: i64,
        event_id: Uuid,
        stream_id: Uuid,
        stream_version: u64,
        /// The topic the event was meant for.
        topic: String,
        payload_bytes: usize,
        /// Failed attempts, this one included.
        attempts: u32,
    },
    /// A Kafka record the projector cannot decode.
    KafkaRecord {
        source_topic: String,
        partition: i64,
        offset: i64,
        /// The key and value as Lambda delivered them (base64), untouched.
        key: Option<String>,
        value: Option<String>,
    },
}

impl DeadLetterSource {
    fn tag(&self) -> &'static str {
        match self {
            Self::OutboxRow { .. } => "outbox_row",
            Self::KafkaRecord { .. } => "kafka_record",
        }
    }
}

impl DeadLetter {
    /// The letter for an outbox row that failed its last attempt.
    pub fn outbox_row(row: &OutboxMessage, error: &str) -> Self {
        Self {
            error: error.to_owned(),
            source: DeadLetterSource::OutboxRow {
                outbox_id: row.id,
                event_id: row.event_id,
                stream_id: row.stream_id,
                stream_version: row.stream_version,
                topic: row.topic.clone(),
                payload_bytes: row.payload.len(),
                attempts: row.attempts + 1,
            },
        }
    }

    /// The record's value.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a dead letter serializes")
    }

    pub fn from_json(value: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(value)
    }

    /// The record's headers: the original's, then the reason and the source.
    pub fn headers(&self, original: &[(String, String)]) -> Vec<(String, String)> {
        let mut headers = original.to_vec();
        headers.push((REASON_HEADER.into(), self.error.clone()));
        headers.push((SOURCE_HEADER.into(), self.source.tag().into()));
        headers
    }

    /// One line for an operator.
    pub fn describe(&self) -> String {
        match &self.source {
            DeadLetterSource::OutboxRow { outbox_id, event_id, stream_id, stream_version, .. } => {
                format!("outbox row {outbox_id} (event {event_id}, account {stream_id} v{stream_version}): {}", self.error)
            }
            DeadLetterSource::KafkaRecord { source_topic, partition, offset, .. } => {
                format!("record {source_topic}/{partition}@{offset}: {}", self.error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sources_round_trip_through_one_tagged_shape() {
        let record = DeadLetter {
            error: "not an envelope".into(),
            source: DeadLetterSource::KafkaRecord {
                source_topic: "events".into(),
                partition: 2,
                offset: 77,
                key: Some("a2V5".into()),
                value: None,
            },
        };
        let json: serde_json::Value = serde_json::from_slice(&record.to_json()).unwrap();
        assert_eq!(json["source"], "kafka_record");
        assert_eq!(json["error"], "not an envelope");
        assert_eq!(DeadLetter::from_json(&record.to_json()).unwrap(), record);
        assert_eq!(record.describe(), "record events/2@77: not an envelope");

        let id = Uuid::nil();
        let row = DeadLetter {
            error: "too large".into(),
            source: DeadLetterSource::OutboxRow {
                outbox_id: 9,
                event_id: id,
                stream_id: id,
                stream_version: 3,
                topic: "events".into(),
                payload_bytes: 2_000_000,
                attempts: 5,
            },
        };
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&row.to_json()).unwrap()["source"], "outbox_row");
        assert_eq!(DeadLetter::from_json(&row.to_json()).unwrap(), row);
        let headers = row.headers(&[("event_id".into(), id.to_string())]);
        assert_eq!(headers.len(), 3);
        assert_eq!(headers[1], (REASON_HEADER.to_string(), "too large".to_string()));
        assert_eq!(headers[2], (SOURCE_HEADER.to_string(), "outbox_row".to_string()));
        // Anything else is not a Ledgerline dead letter.
        assert!(DeadLetter::from_json(br#"{"error":"x","outbox_id":1}"#).is_err());
    }
}
