//! What the publisher sends, and the one trait it sends through.
//!
//! The loop only needs two things from Kafka: put a record in flight now
//! (so many are in flight at once: a broker round trip per record would cap
//! the publisher at a few hundred records a second), and learn later whether
//! the broker acknowledged it. Keeping that behind [`RecordSink`] lets unit
//! tests drive the loop's ordering and failure rules with scripted outcomes;
//! the integration tests use the real producer against a real broker.

use std::future::Future;

use thiserror::Error;

/// One Kafka record, borrowed from an outbox row.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a str,
    /// The account id: one account's records share a partition, so keep their order.
    pub key: &'a str,
    /// The bincode event envelope.
    pub payload: &'a [u8],
    pub headers: &'a [(String, String)],
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Broker down, timeouts, a full queue, leadership changes: retry later.
    Transient,
    /// The record itself is refused (too large, invalid): retrying the same
    /// bytes will fail again. Goes to the dead-letter topic after N attempts.
    Permanent,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct SendError {
    pub kind: FailureKind,
    pub message: String,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self { kind: FailureKind::Transient, message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { kind: FailureKind::Permanent, message: message.into() }
    }

    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }
}

/// Where records go.
pub trait RecordSink: Send + Sync {
    /// Resolves when the broker acknowledged the record (`Ok`) or it failed for good.
    type Delivery: Future<Output = Result<(), SendError>> + Send;

    /// Puts the record in flight without waiting for the broker. An error
    /// here means the record was not sent at all (for example it is larger
    /// than the producer accepts).
    fn enqueue(&self, record: Record<'_>) -> Result<Self::Delivery, SendError>;

    /// Called before each batch, when nothing is in flight: the one moment a
    /// client that failed for good (librdkafka's fatal error) may be
    /// replaced. Within a batch every record goes through the same client,
    /// so a record of a batch can never overtake, on a fresh client, an
    /// earlier record of its account that failed on the old one.
    fn start_batch(&self) {}

    /// Called after a batch in which nothing was acknowledged: a client
    /// holding state the broker no longer agrees with (an idempotent
    /// producer's id and sequence numbers, after a broker restart) starts
    /// afresh. Nothing is in flight then: every record of the batch has
    /// been answered or timed out.
    fn reset(&self) {}
}
