//! The one Kafka producer wrapper: the outbox publisher's sink and the
//! projector's dead letters both send through it (feature `kafka`).
//!
//! librdkafka can hit a fatal error: the idempotent producer's state is
//! lost (say, after the broker forgot its producer id) and the producer
//! refuses every record from then on. So the producer is held here and
//! replaced by a fresh one, made from the same configuration, before the
//! next record is sent. A caller that saw a whole batch go unacknowledged
//! can also ask for a fresh one ([`ReplaceableProducer::replace`]).

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

    /// The current producer, replaced first if it hit a fatal error.
    pub fn get(&self) -> Result<FutureProducer, KafkaError> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some((code, reason)) = current.client().fatal_error() else { return Ok(current) };
        tracing::error!(?code, %reason, "the Kafka producer hit a fatal error; replacing it");
        let fresh: FutureProducer = self.config.create()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// Replaces the producer with a fresh one, whatever its state.
    pub fn replace(&self) {
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(|p| p.into_inner()), fresh);
                // Dropping a producer purges and waits up to half a second: not on this thread.
                std::thread::spawn(move || drop(old));
            }
            Err(error) => tracing::warn!(%error, "cannot recreate the Kafka producer; keeping the old one"),
        }
    }

    /// Queues one record; the future resolves when the broker answers.
    pub fn enqueue(&self, topic: &str, key: &str, payload: &[u8], headers: &[(String, String)]) -> Result<DeliveryFuture, KafkaError> {
        let producer = self.get()?;
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header { key: name, value: Some(value.as_bytes()) });
        }
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(owned);
        producer.send_result(record).map_err(|(error, _)| error)
    }

    /// Waits up to `timeout` for records still in flight.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone().flush(timeout)
    }
}
