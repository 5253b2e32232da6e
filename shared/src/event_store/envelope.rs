//! The event envelope: one event with everything around it.
//!
//! It is the unit that leaves the write side: the outbox stores it, the
//! publisher sends it as a Kafka record value, the projector decodes it. The
//! payload inside stays opaque bytes, decoded by event type and schema
//! version (see `accounts::codec`), so the envelope never changes when an
//! event does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

/// Why and by whom an event was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Ties together everything one request caused (from `x-correlation-id`
    /// or the API Gateway request id).
    pub correlation_id: String,
    /// The command that caused the event.
    pub causation_id: Uuid,
    /// Who asked: the caller's `sub` claim, or a system actor.
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
}

impl EventMetadata {
    /// Metadata stamped now, to the microsecond (PostgreSQL's precision, so a
    /// stored and re-read event compares equal).
    pub fn now(correlation_id: impl Into<String>, causation_id: Uuid, actor: impl Into<String>) -> Self {
        let micros = Utc::now().timestamp_micros();
        Self {
            correlation_id: correlation_id.into(),
            causation_id,
            actor: actor.into(),
            recorded_at: DateTime::from_timestamp_micros(micros).expect("now is a valid time"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    /// The account id.
    pub stream_id: Uuid,
    /// The event's position in its stream, from 1. Consumers deduplicate by it.
    pub version: u64,
    pub event_type: String,
    pub schema_version: u16,
    /// The event itself, bincode, decoded by `event_type` and `schema_version`.
    pub payload: Vec<u8>,
    pub metadata: EventMetadata,
}

/// The first byte of an encoded envelope, so the envelope's own layout can
/// change one day without breaking readers.
pub const ENVELOPE_FORMAT: u8 = 1;

/// Envelopes come from Kafka, so a decoder must not trust a length prefix:
/// anything larger than this is refused before allocation.
const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("empty envelope")]
    Empty,
    #[error("unknown envelope format {0}")]
    UnknownFormat(u8),
    #[error("envelope does not decode: {0}")]
    Malformed(String),
}

impl EventEnvelope {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![ENVELOPE_FORMAT];
        bincode::serde::encode_into_std_write(self, &mut bytes, bincode_config()).expect("writing an envelope to memory cannot fail");
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let (format, body) = bytes.split_first().ok_or(EnvelopeError::Empty)?;
        if *format != ENVELOPE_FORMAT {
            return Err(EnvelopeError::UnknownFormat(*format));
        }
        let (envelope, read) =
            bincode::serde::decode_from_slice::<Self, _>(body, bincode_config()).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if read != body.len() {
            return Err(EnvelopeError::Malformed(format!("{} trailing bytes", body.len() - read)));
        }
        Ok(envelope)
    }

    /// The Kafka record headers the outbox publisher sends with the envelope.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("event_id".into(), self.event_id.to_string()),
            ("event_type".into(), self.event_type.clone()),
            ("schema_version".into(), self.schema_version.to_string()),
            ("correlation_id".into(), self.metadata.correlation_id.clone()),
        ]
    }
}

/// The one bincode configuration Ledgerline uses for everything it stores.
pub(crate) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENVELOPE_BYTES>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::from_u128(1),
            stream_id: Uuid::from_u128(2),
            version: 3,
            event_type: "MoneyDeposited".into(),
            schema_version: 1,
            payload: vec![1, 2, 3],
            metadata: EventMetadata {
                correlation_id: "corr".into(),
                causation_id: Uuid::from_u128(4),
                actor: "alice".into(),
                recorded_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
        }
    }

    #[test]
    fn an_envelope_survives_a_round_trip() {
        let bytes = envelope().encode();
        assert_eq!(bytes[0], ENVELOPE_FORMAT);
        assert_eq!(EventEnvelope::decode(&bytes), Ok(envelope()));
    }

    #[test]
    fn garbage_is_a_typed_error_not_a_panic() {
        assert_eq!(EventEnvelope::decode(&[]), Err(EnvelopeError::Empty));
        assert_eq!(EventEnvelope::decode(&[9, 1, 2]), Err(EnvelopeError::UnknownFormat(9)));
        assert!(matches!(EventEnvelope::decode(&[ENVELOPE_FORMAT, 0xff, 0xff]), Err(EnvelopeError::Malformed(_))));
        let mut bytes = envelope().encode();
        bytes.push(0);
        assert!(matches!(EventEnvelope::decode(&bytes), Err(EnvelopeError::Malformed(_))));
        // A huge length prefix must not allocate: the limit refuses it.
        let mut huge = vec![ENVELOPE_FORMAT];
        huge.extend_from_slice(&[16u8; 16]);
        huge.extend_from_slice(&[253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(EventEnvelope::decode(&huge), Err(EnvelopeError::Malformed(_))));
    }

    #[test]
    fn headers_name_the_event() {
        let headers = envelope().headers();
        assert!(headers.contains(&("event_type".into(), "MoneyDeposited".into())));
        assert!(headers.contains(&("event_id".into(), Uuid::from_u128(1).to_string())));
        assert!(headers.contains(&("correlation_id".into(), "corr".into())));
    }
}
