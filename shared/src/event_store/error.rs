//! Why the event store refused or failed an operation.

use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Someone else appended to the stream first: reload and decide again.
    #[error("stream {stream_id} is at version {actual}, not the expected {expected}")]
    ConcurrencyConflict { stream_id: Uuid, expected: u64, actual: u64 },
    /// An append expected events in a stream that has none.
    #[error("stream {0} does not exist")]
    StreamNotFound(Uuid),
    /// One event's payload is larger than the configured limit.
    #[error("event payload is {size} bytes, more than the limit of {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    /// The batch itself is malformed (empty, a stream twice, a bad snapshot version, ...).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The append would give its actor more open streams than its
    /// [`super::OpenStreamLimit`] allows (HTTP 409 `account_limit_reached`).
    #[error("the owner already has the maximum of {max_open} open accounts")]
    OpenLimitReached { max_open: u32 },
    /// The idempotency key was already used by this caller for a different request.
    #[error("idempotency key {key:?} was already used with a different request")]
    IdempotencyKeyReused { key: String },
    /// An event id is already stored.
    #[error("event {0} is already stored")]
    DuplicateEventId(Uuid),
    /// The database cannot be reached or is shutting down: retry later (HTTP 503).
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A transient clash (serialization failure, deadlock) that a retry resolves.
    #[error("transient conflict: {0}")]
    Transient(String),
    /// Any other database error: a bug or a broken schema.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// True when the same request may succeed if retried as is.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::ConcurrencyConflict { .. } | Self::Transient(_) | Self::Unavailable(_))
    }
}
