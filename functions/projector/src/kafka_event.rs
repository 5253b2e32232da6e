//! The `KafkaEvent` that Lambda's Kafka event source mapping delivers, built
//! from records: one typed builder over `aws_lambda_events` for whatever
//! plays Lambda's part (the embedded bus, the local event source of
//! `ledgerline serve`), the examples and the tests.
//!
//! The shape, as Lambda sends it: records grouped by `"<topic>-<partition>"`,
//! key and value in base64, each header a one-entry map from its name to its
//! bytes as signed numbers (Java's `byte`).

use std::collections::HashMap;

use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use ledgerline_shared::event_store::EventEnvelope;

/// What a record is made of.
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a> {
    pub topic: &'a str,
    pub partition: i64,
    pub offset: i64,
    pub timestamp_ms: i64,
    /// `CREATE_TIME` or `LOG_APPEND_TIME`.
    pub timestamp_type: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(String, Vec<u8>)],
}

/// One record as Lambda shows it.
pub fn record(parts: RecordParts<'_>) -> KafkaRecord {
    let mut record = KafkaRecord::default();
    record.topic = Some(parts.topic.to_owned());
    record.partition = parts.partition;
    record.offset = parts.offset;
    record.timestamp = MillisecondTimestamp(Utc.timestamp_millis_opt(parts.timestamp_ms).single().unwrap_or_default());
    record.timestamp_type = Some(parts.timestamp_type.to_owned());
    record.key = parts.key.map(|key| STANDARD.encode(key));
    record.value = parts.value.map(|value| STANDARD.encode(value));
    record.headers =
        parts.headers.iter().map(|(name, bytes)| HashMap::from([(name.clone(), bytes.iter().map(|b| *b as i8).collect())])).collect();
    record
}

/// The record the outbox publisher sends for an event: key = the account
/// id, value = the encoded envelope, the envelope's headers.
pub fn envelope_record(topic: &str, partition: i64, offset: i64, timestamp_ms: i64, envelope: &EventEnvelope) -> KafkaRecord {
    let headers: Vec<(String, Vec<u8>)> = envelope.headers().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let (key, value) = (envelope.stream_id.to_string(), envelope.encode());
    record(RecordParts {
        topic,
        partition,
        offset,
        timestamp_ms,
        timestamp_type: "CREATE_TIME",
        key: Some(key.as_bytes()),
        value: Some(&value),
        headers: &headers,
    })
}

/// `"<topic>-<partition>"`: how a `KafkaEvent` names a partition.
pub fn partition_key(topic: &str, partition: i64) -> String {
    format!("{topic}-{partition}")
}

/// The event for `records` (of any partitions), from a self-managed cluster
/// at `bootstrap_servers`.
pub fn event(bootstrap_servers: &str, records: impl IntoIterator<Item = KafkaRecord>) -> KafkaEvent {
    let mut event = KafkaEvent::default();
    event.event_source = Some("SelfManagedKafka".into());
    event.bootstrap_servers = Some(bootstrap_servers.to_owned());
    for record in records {
        let key = partition_key(record.topic.as_deref().unwrap_or_default(), record.partition);
        event.records.entry(key).or_default().push(record);
    }
    event
}

/// The event as JSON exactly as Lambda sends it: `aws_lambda_events`
/// writes a record's timestamp as a string of milliseconds (and reads both),
/// Lambda as a number.
pub fn lambda_json(event: &KafkaEvent) -> serde_json::Value {
    let mut json = serde_json::to_value(event).expect("a KafkaEvent always serializes");
    for records in json["records"].as_object_mut().into_iter().flat_map(|partitions| partitions.values_mut()) {
        for record in records.as_array_mut().into_iter().flatten() {
            if let Some(millis) = record["timestamp"].as_str().and_then(|t| t.parse::<i64>().ok()) {
                record["timestamp"] = millis.into();
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_shape_lambda_sends() {
        let headers = vec![("event_type".to_string(), vec![0xff, b'A'])];
        let parts = RecordParts {
            topic: "t",
            partition: 2,
            offset: 7,
            timestamp_ms: 1_700_000_000_123,
            timestamp_type: "CREATE_TIME",
            key: Some(b"k"),
            value: None,
            headers: &headers,
        };
        let event = event("b:9092", [record(parts), record(RecordParts { offset: 8, ..parts })]);
        let json = lambda_json(&event);
        assert_eq!(json["eventSource"], "SelfManagedKafka");
        assert_eq!(json["bootstrapServers"], "b:9092");
        let records = json["records"]["t-2"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["key"], STANDARD.encode("k"));
        assert_eq!(records[0]["headers"], serde_json::json!([{"event_type": [-1, 65]}]));
        assert_eq!(records[0]["timestamp"], 1_700_000_000_123i64);
        assert_eq!(records[1]["offset"], 8);
        // What the function parses (timestamps to the millisecond, give or
        // take the library's float rounding).
        let back: KafkaEvent = serde_json::from_value(json).unwrap();
        let (sent, parsed) = (&event.records["t-2"][0], &back.records["t-2"][0]);
        assert_eq!((&parsed.key, &parsed.headers, parsed.offset), (&sent.key, &sent.headers, sent.offset));
        assert!((parsed.timestamp.0 - sent.timestamp.0).num_milliseconds().abs() <= 1);
    }
}
