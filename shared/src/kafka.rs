//! The one Kafka producer wrapper: the outbox publisher's sink and the
//! projector's dead letters both send through it (feature `kafka`).
//!
//! librdkafka can hit a fatal error: the idempotent producer's state is
//! lost (say, after the broker forgot its producer id) and the producer
//! refuses every record from then on. So the producer is held here and
//! replaced by a fresh one, made from the same configuration — but only
//! when the caller says it is safe ([`ReplaceableProducer::replace_if_failed`]),
//! never behind the caller's back in the middle of a batch. A publisher
//! that sent part of a batch on a producer that then failed must not send
//! the rest of it on a fresh one: the fresh producer's records would reach
//! the topic before the failed ones are sent again, a later version of an
//! account before an earlier one (docs/OUTBOX.md, "One producer per batch").
//!
//! A replaced producer is dropped on a thread of its own: dropping one
//! purges its queue and waits up to half a second, which must not block
//! the async runtime.

use std::sync::RwLock;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

pub struct ReplaceableProducer {
    config: ClientConfig,
    current: RwLock<FutureProducer>,
}

impl ReplaceableProducer {
    pub fn new(config: ClientConfig) -> Result<Self, KafkaError> {
        let producer = config.create()?;
        Ok(Self { config, current: RwLock::new(producer) })
    }

    /// The current producer, as it is (a failed one keeps refusing records).
    pub fn current(&self) -> FutureProducer {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the producer if it hit a fatal error. Call it only when
    /// nothing of a batch is in flight on it: before a batch, or before a
    /// single record.
    pub fn replace_if_failed(&self) -> Result<(), KafkaError> {
        let Some((code, reason)) = self.current().client().fatal_error() else { return Ok(()) };
        tracing::error!(?code, %reason, "the Kafka producer hit a fatal error; replacing it");
        self.swap(self.config.create()?);
        Ok(())
    }

    /// Replaces the producer with a fresh one, whatever its state.
    pub fn replace(&self) {
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => self.swap(fresh),
            Err(error) => tracing::warn!(%error, "cannot recreate the Kafka producer; keeping the old one"),
        }
    }

    fn swap(&self, fresh: FutureProducer) {
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(|p| p.into_inner()), fresh);
        // Dropping a producer purges and waits up to half a second: not on this thread.
        std::thread::spawn(move || drop(old));
    }

    /// Queues one record on the current producer; the future resolves when
    /// the broker answers. A failed producer refuses it (`KafkaError` with
    /// code `Fatal`) until [`Self::replace_if_failed`] runs.
    pub fn enqueue(&self, topic: &str, key: &str, payload: &[u8], headers: &[(String, String)]) -> Result<DeliveryFuture, KafkaError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header { key: name, value: Some(value.as_bytes()) });
        }
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(owned);
        self.current().send_result(record).map_err(|(error, _)| error)
    }

    /// Waits up to `timeout` for records still in flight.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        self.current().flush(timeout)
    }
}
