//! From a Kafka record as Lambda delivers it (base64 value) to a typed
//! account event. Anything that fails here is a poison record: retrying it
//! cannot help, so it goes to the dead-letter topic.

use aws_lambda_events::event::kafka::KafkaRecord;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ledgerline_shared::accounts::codec::EventCodec;
use ledgerline_shared::domain::AccountEvent;
use ledgerline_shared::event_store::EventEnvelope;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PoisonReason {
    #[error("the record has no value")]
    NoValue,
    #[error("the value is not base64: {0}")]
    NotBase64(String),
    #[error("the value is not an event envelope: {0}")]
    NotAnEnvelope(String),
    #[error("the event cannot be decoded: {0}")]
    UndecodableEvent(String),
}

/// The raw bytes of the record's value, if they are there at all.
pub fn value_bytes(record: &KafkaRecord) -> Result<Vec<u8>, PoisonReason> {
    let value = record.value.as_deref().ok_or(PoisonReason::NoValue)?;
    STANDARD.decode(value).map_err(|e| PoisonReason::NotBase64(e.to_string()))
}

pub fn decode(record: &KafkaRecord, codec: &EventCodec) -> Result<(EventEnvelope, AccountEvent), PoisonReason> {
    let bytes = value_bytes(record)?;
    let envelope = EventEnvelope::decode(&bytes).map_err(|e| PoisonReason::NotAnEnvelope(e.to_string()))?;
    let event = codec
        .decode(&envelope.event_type, envelope.schema_version, &envelope.payload)
        .map_err(|e| PoisonReason::UndecodableEvent(e.to_string()))?;
    Ok((envelope, event))
}

/// Lambda's name for a record's partition: `<topic>-<partition>`.
pub fn partition_name(record: &KafkaRecord) -> String {
    format!("{}-{}", record.topic.as_deref().unwrap_or(""), record.partition)
}
