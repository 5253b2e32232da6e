//! The event store: an append-only log of events per stream (account).
//!
//! One [`EventStore::append`] writes, in ONE transaction, the events of one or
//! more streams (a transfer touches two), each checked against the version
//! the caller last saw (optimistic concurrency), plus one outbox row per
//! event, optional snapshots, and the request's idempotency record. Either
//! all of it is stored or none of it.
//!
//! Two implementations share one contract, checked by one conformance suite
//! (`shared/tests/conformance`): [`PostgresEventStore`] for real use and
//! [`InMemoryEventStore`] for the embedded mode and fast unit tests.

mod envelope;
mod error;
mod memory;
mod postgres;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use uuid::Uuid;

pub(crate) use envelope::bincode_config;
pub use envelope::{ENVELOPE_FORMAT, EnvelopeError, EventEnvelope, EventMetadata};
pub use error::StoreError;
pub use memory::InMemoryEventStore;
pub use postgres::PostgresEventStore;
#[doc(hidden)]
pub use postgres::command_read_statement;
pub(crate) use postgres::{EVENT_COLUMNS, headers_to_json, map_pg_error, row_to_event};

use crate::idempotency::{IdempotencyRecord, NewIdempotencyRecord};

/// An event to append; its stream and version come from the [`StreamAppend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

/// The events to add to one stream, and the version the caller decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    pub stream_id: Uuid,
    /// The stream's version when the caller loaded it; 0 creates the stream.
    pub expected_version: u64,
    pub events: Vec<NewEvent>,
    /// The state after these events, when the caller wants one kept.
    pub snapshot: Option<NewSnapshot>,
}

/// Everything one command writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendBatch {
    /// May be empty only when an idempotency record is given: a refusal by a
    /// business rule stores just its answer.
    pub streams: Vec<StreamAppend>,
    pub metadata: EventMetadata,
    pub idempotency: Option<NewIdempotencyRecord>,
    /// When set, an append that creates streams is refused if their actor
    /// would then have more open streams than this allows.
    pub open_limit: Option<OpenStreamLimit>,
}

/// A limit on how many streams one actor may have open: the per-owner limit
/// on open accounts. A stream belongs to the actor of its first event (an
/// account's owner opens it) and is open until it gets an event of type
/// `closing_event_type`. Checked inside the append, under a lock per actor,
/// so two racing creations cannot both take the last place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenStreamLimit {
    pub max_open: u32,
    pub closing_event_type: &'static str,
}

/// A stream's version after an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamVersion {
    pub stream_id: Uuid,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Everything was written.
    Committed(Vec<StreamVersion>),
    /// The idempotency key was already used for this same request: nothing was
    /// written and this is the stored first answer.
    Replayed(IdempotencyRecord),
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Order across all streams, for rebuilding read models.
    pub global_position: i64,
    pub stream_id: Uuid,
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Vec<u8>,
    pub metadata: EventMetadata,
}

impl RecordedEvent {
    pub fn envelope(&self) -> EventEnvelope {
        EventEnvelope {
            event_id: self.event_id,
            stream_id: self.stream_id,
            version: self.version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: self.payload.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// A stream's current version and when it last changed: what reconciliation
/// compares the read model against (see `crate::reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHead {
    pub stream_id: Uuid,
    pub version: u64,
    /// When the stream's last append began (PostgreSQL's `now()`: the start
    /// of that transaction, which may commit a little later).
    pub updated_at: DateTime<Utc>,
}

/// Which stream heads to list, a page at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadQuery {
    /// Streams changed at or after `since`, oldest change first; `after` is
    /// the last (updated_at, stream_id) of the previous page.
    ChangedSince { since: DateTime<Utc>, after: Option<(DateTime<Utc>, Uuid)>, limit: usize },
    /// Every stream in id order, after `after`: a full sweep.
    ById { after: Option<Uuid>, limit: usize },
}

/// A stream's state at a version, so loading need not replay from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSnapshot {
    pub version: u64,
    pub schema_version: u16,
    pub state: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub stream_id: Uuid,
    pub version: u64,
    pub schema_version: u16,
    pub state: Vec<u8>,
    pub taken_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Waiting to be sent (due now, or after a failed attempt's backoff).
    /// A row the broker acknowledged leaves the outbox.
    Pending,
    /// Can never be sent; kept for the operator (`ledgerline dlq`).
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// One row of the transactional outbox: an event waiting to reach Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Outbox order; per stream it follows the stream's versions.
    pub id: i64,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_version: u64,
    pub topic: String,
    /// The Kafka record key: the account id, so one account's events share a
    /// partition and keep their order.
    pub key: String,
    /// The encoded [`EventEnvelope`].
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What a command reads before it decides, in one exchange with the store:
/// the request's idempotency record and, for each account it touches, the
/// latest snapshot and the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRead {
    pub streams: Vec<Uuid>,
    /// (caller id, Idempotency-Key), when the request has a key.
    pub idempotency: Option<(String, String)>,
}

/// One stream as a command sees it: its latest snapshot (if any) and every
/// event after the snapshot, in version order. A stream that does not exist
/// has neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTail {
    pub stream_id: Uuid,
    pub snapshot: Option<Snapshot>,
    pub events: Vec<RecordedEvent>,
}

/// The answer to a [`CommandRead`]: `streams` in the order asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandState {
    pub idempotency: Option<IdempotencyRecord>,
    pub streams: Vec<StreamTail>,
}

/// Streams a command has locked (see [`EventStore::lock_for_command`]): no
/// other writer can append to them until this is appended or released, so
/// the append cannot meet a concurrency conflict.
#[async_trait]
pub trait LockedStreams: Send + Sync {
    /// Appends as [`EventStore::append`] does, then releases the locks.
    async fn append(self: Box<Self>, batch: AppendBatch) -> Result<AppendOutcome, StoreError>;

    /// [`EventStore::read_stream`] inside the lock (for the rare full
    /// replay when a snapshot does not decode): no second connection is
    /// taken while the accounts are held.
    async fn read_stream(&self, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Releases the locks without writing (the command was answered from
    /// its idempotency record, or refused before any write). Dropping
    /// releases them too, less cheaply.
    async fn release(self: Box<Self>);
}

/// Limits and names both implementations apply the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The Kafka topic outbox rows are addressed to.
    pub events_topic: String,
    /// The largest event payload accepted, in bytes.
    pub max_event_bytes: usize,
    /// The most events one append may write.
    pub max_events_per_append: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self { events_topic: crate::config::defaults::EVENTS_TOPIC.into(), max_event_bytes: 64 * 1024, max_events_per_append: 100 }
    }
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Writes a whole batch atomically, or nothing. See the module docs.
    async fn append(&self, batch: AppendBatch) -> Result<AppendOutcome, StoreError>;

    /// Everything a command needs to decide (see [`CommandRead`]), without
    /// locking: the append that follows may meet a concurrency conflict.
    async fn read_for_command(&self, read: CommandRead) -> Result<CommandState, StoreError>;

    /// The same read, after locking the streams against other writers until
    /// the returned [`LockedStreams`] appends or is released. Writers of one
    /// account queue up instead of failing: what a command does after a
    /// conflict, so a hot account never answers 409.
    async fn lock_for_command(&self, read: CommandRead) -> Result<(CommandState, Box<dyn LockedStreams + '_>), StoreError>;

    /// The stream's events with a version greater than `after_version`, in order.
    /// An unknown stream has no events.
    async fn read_stream(&self, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The stream's current version, or `None` when it does not exist.
    async fn stream_version(&self, stream_id: Uuid) -> Result<Option<u64>, StoreError>;

    /// Up to `limit` events of all streams after `after_position`, in global order.
    async fn read_all(&self, after_position: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The largest global position stored (0 when the log is empty): how
    /// far a full replay has to go.
    async fn head_position(&self) -> Result<i64, StoreError>;

    /// The stream's latest snapshot, if one was taken.
    async fn load_snapshot(&self, stream_id: Uuid) -> Result<Option<Snapshot>, StoreError>;

    /// The unexpired idempotency record for (caller, key), if any.
    async fn find_idempotency(&self, caller_id: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Deletes expired idempotency records, a bounded number per call (a
    /// large backlog takes several calls); returns how many.
    async fn purge_expired_idempotency(&self) -> Result<u64, StoreError>;

    /// The outbox rows of one stream, in outbox order (for operators and tests;
    /// the outbox publisher has its own claiming query).
    async fn outbox_for_stream(&self, stream_id: Uuid) -> Result<Vec<OutboxMessage>, StoreError>;

    /// A page of stream heads (see [`HeadQuery`]).
    async fn stream_heads(&self, query: HeadQuery) -> Result<Vec<StreamHead>, StoreError>;

    /// How many streams there are (with `upto`: with an id up to it), for
    /// a rebuild's progress bar.
    async fn stream_count(&self, upto: Option<Uuid>) -> Result<u64, StoreError>;
}

/// Checks what can be checked without the database, identically for both
/// implementations, before anything is written.
pub(crate) fn validate_batch(batch: &AppendBatch, settings: &StoreSettings) -> Result<(), StoreError> {
    let invalid = |why: String| Err(StoreError::InvalidAppend(why));
    if batch.streams.is_empty() && batch.idempotency.is_none() {
        return invalid("the batch has no events and no idempotency record".into());
    }
    let mut streams = HashSet::new();
    let mut event_ids = HashSet::new();
    let mut total = 0usize;
    for stream in &batch.streams {
        if !streams.insert(stream.stream_id) {
            return invalid(format!("stream {} appears twice", stream.stream_id));
        }
        if stream.events.is_empty() {
            return invalid(format!("no events for stream {}", stream.stream_id));
        }
        total += stream.events.len();
        for event in &stream.events {
            if event.payload.len() > settings.max_event_bytes {
                return Err(StoreError::PayloadTooLarge { size: event.payload.len(), limit: settings.max_event_bytes });
            }
            if event.event_type.is_empty() || event.event_type.len() > 100 {
                return invalid("event type must be 1 to 100 bytes".into());
            }
            if !event_ids.insert(event.event_id) {
                return invalid(format!("event id {} appears twice", event.event_id));
            }
        }
        if let Some(snapshot) = &stream.snapshot {
            let new_version = stream.expected_version + stream.events.len() as u64;
            if snapshot.version <= stream.expected_version || snapshot.version > new_version {
                return invalid(format!("snapshot version {} is outside this append", snapshot.version));
            }
        }
    }
    if total > settings.max_events_per_append {
        return invalid(format!("{total} events, more than {} in one append", settings.max_events_per_append));
    }
    if stream_version_overflows(batch) {
        return invalid("stream version overflow".into());
    }
    Ok(())
}

fn stream_version_overflows(batch: &AppendBatch) -> bool {
    batch.streams.iter().any(|s| s.expected_version.checked_add(s.events.len() as u64).is_none_or(|v| v > i64::MAX as u64))
}

/// The outbox row (without its id) for an event being appended.
pub(crate) struct NewOutboxMessage {
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_version: u64,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl NewOutboxMessage {
    /// The row that sends one event: its envelope is the record's value.
    pub(crate) fn from_envelope(envelope: &EventEnvelope) -> Self {
        Self {
            event_id: envelope.event_id,
            stream_id: envelope.stream_id,
            stream_version: envelope.version,
            key: envelope.stream_id.to_string(),
            headers: envelope.headers(),
            payload: envelope.encode(),
        }
    }

    /// The in-memory store's row for it: pending, due at `now`, with `id`.
    pub(crate) fn pending(self, id: i64, topic: &str, now: DateTime<Utc>, last_error: Option<String>) -> OutboxMessage {
        OutboxMessage {
            id,
            event_id: self.event_id,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            topic: topic.to_owned(),
            key: self.key,
            payload: self.payload,
            headers: self.headers,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error,
            created_at: now,
        }
    }
}

/// Builds the outbox rows for a stream's new events: the envelope is what
/// the publisher sends, so it is built once here, inside the transaction.
pub(crate) fn outbox_messages(stream: &StreamAppend, metadata: &EventMetadata) -> Vec<NewOutboxMessage> {
    stream
        .events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            NewOutboxMessage::from_envelope(&EventEnvelope {
                event_id: event.event_id,
                stream_id: stream.stream_id,
                version: stream.expected_version + 1 + i as u64,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: event.payload.clone(),
                metadata: metadata.clone(),
            })
        })
        .collect()
}
