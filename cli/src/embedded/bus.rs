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
use projector::kafka_event::RecordParts;
use tokio::sync::mpsc;

/// Partitions of the in-process topic: enough for accounts to be projected
/// in parallel, few enough to read in a log.
pub const PARTITIONS: usize = 4;

/// The most records handed to the projector at once (Lambda's batch size).
pub const MAX_BATCH: usize = 100;

/// Attempts at the same first failed record before its batch is given up
/// (like the event source mapping's `MaximumRetryAttempts`): logged in full,
/// the log being this mode's on-failure destination, and skipped, so one
/// record that can never succeed does not stop its partition for good.
pub const MAX_ATTEMPTS: u32 = 10;

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
pub fn kafka_event(records: &[BusRecord]) -> KafkaEvent {
    projector::kafka_event::event(
        "in-process",
        records.iter().map(|record| {
            let headers: Vec<(String, Vec<u8>)> = record.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
            projector::kafka_event::record(RecordParts {
                topic: &record.topic,
                partition: record.partition as i64,
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
                timestamp_type: "CREATE_TIME",
                key: Some(record.key.as_bytes()),
                value: Some(&record.value),
                headers: &headers,
            })
        }),
    )
}

/// Feeds one partition to the projector until the sink is dropped and the
/// partition drained.
pub async fn consume(mut receiver: mpsc::UnboundedReceiver<BusRecord>, projector: Arc<Projector>) {
    let mut pending: Vec<BusRecord> = Vec::new();
    let mut backoff = Duration::from_millis(50);
    // The first failed offset and how many attempts it has had.
    let mut failing: Option<(i64, u32)> = None;
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
        let event = kafka_event(&pending);
        // On a task of its own, so a panic in the projector fails this batch
        // (retried, then given up like any failure) instead of killing the
        // partition's consumer and the records queued behind it.
        let handled = tokio::spawn({
            let projector = projector.clone();
            async move { projector.handle(event).await.0 }
        })
        .await;
        let first_failed = match handled {
            Ok(response) => response.batch_item_failures.iter().map(|f| f.item_identifier.offset).min(),
            Err(error) => {
                tracing::error!(%error, "the projector panicked on a batch");
                pending.first().map(|r| r.offset)
            }
        };
        match first_failed {
            None => {
                pending.clear();
                backoff = Duration::from_millis(50);
                failing = None;
            }
            Some(first_failed) => {
                pending.retain(|r| r.offset >= first_failed);
                let attempts = match failing {
                    Some((offset, attempts)) if offset == first_failed => attempts + 1,
                    _ => 1,
                };
                failing = Some((first_failed, attempts));
                if attempts >= MAX_ATTEMPTS {
                    let values: Vec<String> = pending.iter().map(|r| STANDARD.encode(&r.value)).collect();
                    tracing::error!(
                        first_failed,
                        attempts,
                        records = pending.len(),
                        ?values,
                        "giving up on a batch the projector keeps failing; its records are in this log"
                    );
                    pending.clear();
                    failing = None;
                    backoff = Duration::from_millis(50);
                    continue;
                }
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

        let event = kafka_event(&got[..2]);
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

    /// A read model that is always down, counting the attempts.
    #[derive(Default)]
    struct AlwaysDown {
        applies: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl ledgerline_shared::read_model::ReadModelStore for AlwaysDown {
        async fn apply(
            &self,
            _: &ledgerline_shared::read_model::Change,
        ) -> Result<ledgerline_shared::read_model::ApplyOutcome, ledgerline_shared::read_model::ReadModelError> {
            self.applies.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn account(
            &self,
            _: uuid::Uuid,
            _: bool,
        ) -> Result<Option<ledgerline_shared::read_model::AccountView>, ledgerline_shared::read_model::ReadModelError> {
            Ok(None)
        }
        async fn accounts_of_owner(
            &self,
            _: &str,
        ) -> Result<Vec<ledgerline_shared::read_model::AccountView>, ledgerline_shared::read_model::ReadModelError> {
            Ok(vec![])
        }
        async fn transactions(
            &self,
            _: uuid::Uuid,
            _: usize,
            _: Option<u64>,
            _: bool,
        ) -> Result<ledgerline_shared::read_model::TransactionPage, ledgerline_shared::read_model::ReadModelError> {
            Ok(ledgerline_shared::read_model::TransactionPage { items: vec![], next_before_version: None })
        }
        async fn last_movement_before(
            &self,
            _: uuid::Uuid,
            _: chrono::DateTime<chrono::Utc>,
            _: bool,
        ) -> Result<Option<ledgerline_shared::read_model::BalanceMark>, ledgerline_shared::read_model::ReadModelError> {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn movements_between(
            &self,
            _: uuid::Uuid,
            _: u64,
            _: u64,
            _: usize,
            _: bool,
        ) -> Result<Vec<ledgerline_shared::read_model::TransactionView>, ledgerline_shared::read_model::ReadModelError> {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn movements_of(
            &self,
            _: ledgerline_shared::read_model::MovementId,
        ) -> Result<Vec<(uuid::Uuid, ledgerline_shared::read_model::TransactionView)>, ledgerline_shared::read_model::ReadModelError>
        {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn accounts(
            &self,
            _: &[uuid::Uuid],
        ) -> Result<Vec<ledgerline_shared::read_model::AccountView>, ledgerline_shared::read_model::ReadModelError> {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn replace(
            &self,
            _: &ledgerline_shared::read_model::AccountView,
            _: &[ledgerline_shared::read_model::TransactionView],
            _: &[ledgerline_shared::read_model::HoldChange],
        ) -> Result<bool, ledgerline_shared::read_model::ReadModelError> {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn hold(
            &self,
            _: uuid::Uuid,
            _: uuid::Uuid,
            _: bool,
        ) -> Result<Option<ledgerline_shared::read_model::HoldView>, ledgerline_shared::read_model::ReadModelError> {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn holds(
            &self,
            _: uuid::Uuid,
            _: ledgerline_shared::read_model::HoldFilter,
            _: usize,
            _: Option<uuid::Uuid>,
            _: bool,
        ) -> Result<ledgerline_shared::read_model::HoldPage, ledgerline_shared::read_model::ReadModelError> {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
        async fn due_holds(
            &self,
            _: chrono::DateTime<chrono::Utc>,
            _: usize,
        ) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>, ledgerline_shared::read_model::ReadModelError> {
            Err(ledgerline_shared::read_model::ReadModelError::Unavailable("down".into()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_keeps_failing_is_given_up_after_bounded_attempts() {
        use ledgerline_shared::accounts::codec::EventCodec;
        use ledgerline_shared::domain::AccountEvent;
        use ledgerline_shared::event_store::{EventEnvelope, EventMetadata};

        let account = uuid::Uuid::new_v4();
        let opened = AccountEvent::Opened {
            account_id: account,
            owner_id: "alice".into(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: 0,
            at: chrono::Utc::now(),
        };
        let (event_type, schema_version, payload) = EventCodec::current().encode(&opened);
        let envelope = EventEnvelope {
            event_id: uuid::Uuid::new_v4(),
            stream_id: account,
            version: 1,
            event_type: event_type.into(),
            schema_version,
            payload,
            metadata: EventMetadata::now("test", uuid::Uuid::new_v4(), "alice"),
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let record = BusRecord {
            topic: "events".into(),
            partition: 0,
            offset: 0,
            key: account.to_string(),
            value: envelope.encode(),
            headers: vec![],
            timestamp_ms: 0,
        };
        sender.send(record).unwrap();
        drop(sender); // once the batch is settled, the partition is done
        let store = Arc::new(AlwaysDown::default());
        let projector =
            Arc::new(Projector::new(store.clone(), None, None, Arc::new(projector::dead_letter::InMemoryDeadLetters::default())));
        // Without a bound this would retry forever; with one, consume returns.
        tokio::time::timeout(Duration::from_secs(3600), consume(receiver, projector)).await.expect("the batch was given up");
        assert_eq!(store.applies.load(std::sync::atomic::Ordering::SeqCst), MAX_ATTEMPTS);
    }
}
