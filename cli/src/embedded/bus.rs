//! The in-process stand-in for Kafka and Lambda's Kafka event source mapping.
//!
//! [`BusSink`] is the outbox publisher's `RecordSink`: a record is appended
//! to one of [`PARTITIONS`] partitions chosen by its key (the account id),
//! with the next offset, and acknowledged at once, as a broker acknowledges
//! an append. So one account's records stay in order, as they do on Kafka.
//!
//! [`consume`] is the event source mapping for one partition: it takes what
//! has arrived (up to [`MAX_BATCH`] records), builds the `KafkaEvent` Lambda
//! would send (base64 key and value, headers as byte lists, records grouped
//! under `<topic>-<partition>`) and calls `Projector::handle`. Records the
//! projector reports as failed are delivered again, from the first failed
//! offset on, after a backoff: Lambda's retry of a partial batch failure.

use std::collections::hash_map::DefaultHasher;
use std::future::{Ready, ready};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use outbox_publisher::{Record, RecordSink, SendError};
use projector::Projector;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Partitions of the in-process topic: enough for accounts to be projected
/// in parallel, few enough to read in a log.
pub const PARTITIONS: usize = 4;

/// The most records handed to the projector at once (Lambda's batch size).
pub const MAX_BATCH: usize = 100;

/// One record on the bus: the fields Lambda's event carries.
#[derive(Debug, Clone)]
pub struct BusRecord {
    pub topic: String,
    pub partition: usize,
    pub offset: i64,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub timestamp_ms: i64,
}

struct Partition {
    next_offset: i64,
    sender: mpsc::UnboundedSender<BusRecord>,
}

/// The producer side; cheap to clone.
#[derive(Clone)]
pub struct BusSink {
    partitions: Arc<Vec<Mutex<Partition>>>,
}

/// A new bus: its sink, and one receiver per partition for [`consume`].
pub fn bus() -> (BusSink, Vec<mpsc::UnboundedReceiver<BusRecord>>) {
    let (partitions, receivers): (Vec<_>, Vec<_>) = (0..PARTITIONS)
        .map(|_| {
            let (sender, receiver) = mpsc::unbounded_channel();
            (Mutex::new(Partition { next_offset: 0, sender }), receiver)
        })
        .unzip();
    (BusSink { partitions: Arc::new(partitions) }, receivers)
}

/// The partition of a key: stable for the process, like Kafka's key hashing.
pub fn partition_for(key: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % PARTITIONS as u64) as usize
}

impl RecordSink for BusSink {
    type Delivery = Ready<Result<(), SendError>>;

    fn enqueue(&self, record: Record<'_>) -> Result<Self::Delivery, SendError> {
        let partition = partition_for(record.key);
        // The offset is taken and the record sent under one lock, so offsets
        // and channel order agree.
        let mut slot = self.partitions[partition].lock().unwrap_or_else(|p| p.into_inner());
        let offset = slot.next_offset;
        let bus_record = BusRecord {
            topic: record.topic.to_owned(),
            partition,
            offset,
            key: record.key.to_owned(),
            value: record.payload.to_vec(),
            headers: record.headers.to_vec(),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        };
        slot.sender.send(bus_record).map_err(|_| SendError::transient("the in-process bus is closed"))?;
        slot.next_offset += 1;
        Ok(ready(Ok(())))
    }
}

/// The `KafkaEvent` Lambda would deliver for `records` (all of one partition).
pub fn kafka_event(records: &[BusRecord]) -> Result<KafkaEvent, serde_json::Error> {
    let mut grouped = serde_json::Map::new();
    for record in records {
        let headers: Vec<Value> =
            record.headers.iter().map(|(k, v)| json!({ k: v.bytes().map(|b| b as i8).collect::<Vec<i8>>() })).collect();
        let value = json!({
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp_ms,
            "timestampType": "CREATE_TIME",
            "key": STANDARD.encode(&record.key),
            "value": STANDARD.encode(&record.value),
            "headers": headers,
        });
        let name = format!("{}-{}", record.topic, record.partition);
        grouped.entry(name).or_insert_with(|| json!([])).as_array_mut().expect("an array").push(value);
    }
    serde_json::from_value(json!({
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": "in-process",
        "records": grouped,
    }))
}

/// Feeds one partition to the projector until the sink is dropped and the
/// partition drained.
pub async fn consume(mut receiver: mpsc::UnboundedReceiver<BusRecord>, projector: Arc<Projector>) {
    let mut pending: Vec<BusRecord> = Vec::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        if pending.is_empty() {
            match receiver.recv().await {
                Some(record) => pending.push(record),
                None => return,
            }
        }
        while pending.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(record) => pending.push(record),
                Err(_) => break,
            }
        }
        let event = match kafka_event(&pending) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "cannot build the Kafka event; dropping the batch");
                pending.clear();
                continue;
            }
        };
        let (response, _summary) = projector.handle(event).await;
        match response.batch_item_failures.iter().map(|f| f.item_identifier.offset).min() {
            None => {
                pending.clear();
                backoff = Duration::from_millis(50);
            }
            Some(first_failed) => {
                pending.retain(|r| r.offset >= first_failed);
                tracing::warn!(first_failed, retry_in_ms = backoff.as_millis() as u64, "the projector failed records; retrying them");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(key: &'a str, payload: &'a [u8], headers: &'a [(String, String)]) -> Record<'a> {
        Record { topic: "events", key, payload, headers }
    }

    #[tokio::test]
    async fn one_key_stays_in_one_partition_in_order_with_consecutive_offsets() {
        let (sink, mut receivers) = bus();
        let headers = vec![("event_type".to_string(), "AccountOpened".to_string())];
        for i in 0..10u8 {
            sink.enqueue(record("account-a", &[i], &headers)).unwrap().await.unwrap();
        }
        let partition = partition_for("account-a");
        let receiver = &mut receivers[partition];
        let mut got = Vec::new();
        while let Ok(r) = receiver.try_recv() {
            got.push(r);
        }
        assert_eq!(got.iter().map(|r| r.value[0]).collect::<Vec<_>>(), (0..10).collect::<Vec<u8>>());
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..10).collect::<Vec<i64>>());

        let event = kafka_event(&got[..2]).unwrap();
        let name = format!("events-{partition}");
        let records = &event.records[&name];
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].offset, 1);
        assert_eq!(STANDARD.decode(records[0].key.as_deref().unwrap()).unwrap(), b"account-a");
        assert_eq!(STANDARD.decode(records[1].value.as_deref().unwrap()).unwrap(), [1]);
        let header: Vec<u8> = records[0].headers[0]["event_type"].iter().map(|b| *b as u8).collect();
        assert_eq!(header, b"AccountOpened");
    }

    #[tokio::test]
    async fn a_closed_bus_refuses_records() {
        let (sink, receivers) = bus();
        drop(receivers);
        let error = sink.enqueue(record("k", b"v", &[])).expect_err("refused");
        assert!(!error.is_permanent());
    }
}
