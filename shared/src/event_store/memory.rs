//! The in-memory event store: the embedded mode's storage and the fast
//! stand-in for unit tests. It keeps the same contract as PostgreSQL (the
//! conformance suite runs against both); one mutex makes every append atomic.
//!
//! A command that locks its streams ([`EventStore::lock_for_command`]) holds
//! the store's one writer lock, which every append also takes: coarser than
//! PostgreSQL's row locks, and plenty for one process.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::{
    AppendBatch, AppendOutcome, CommandRead, CommandState, EventStore, HeadQuery, LockedStreams, OutboxMessage, RecordedEvent, Snapshot,
    StoreError, StoreSettings, StreamHead, StreamTail, StreamVersion, outbox_messages, validate_batch,
};
use crate::idempotency::IdempotencyRecord;
use crate::outbox::MemoryOutboxState;

#[derive(Default)]
pub struct InMemoryEventStore {
    settings: StoreSettings,
    inner: Mutex<Inner>,
    /// The outbox publisher lock (see `crate::outbox`).
    publisher_lock: AtomicBool,
    /// Taken by every append and held by a command's [`LockedStreams`].
    writers: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Inner {
    /// Indexes into `log`, per stream, in version order.
    streams: HashMap<Uuid, Vec<usize>>,
    /// Every event in global order; position = index + 1.
    log: Vec<RecordedEvent>,
    event_ids: HashSet<Uuid>,
    snapshots: HashMap<Uuid, Snapshot>,
    outbox: Vec<OutboxMessage>,
    /// Outbox bookkeeping of the publisher (see `crate::outbox`).
    outbox_state: MemoryOutboxState,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
}

impl InMemoryEventStore {
    pub fn new(settings: StoreSettings) -> Self {
        Self { settings, inner: Mutex::default(), publisher_lock: AtomicBool::new(false), writers: tokio::sync::Mutex::new(()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves no half-written batch (writes
        // happen after all checks), so the data is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The outbox rows and the publisher's bookkeeping, under the store's lock.
    /// The event log comes along for replays.
    pub(crate) fn with_outbox<R>(&self, f: impl FnOnce(&mut Vec<OutboxMessage>, &mut MemoryOutboxState, &[RecordedEvent]) -> R) -> R {
        let mut inner = self.lock();
        let inner = &mut *inner;
        f(&mut inner.outbox, &mut inner.outbox_state, &inner.log)
    }

    pub(crate) fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// Set while an outbox publisher holds a claimed batch.
    pub(crate) fn publisher_lock(&self) -> &AtomicBool {
        &self.publisher_lock
    }
}

impl Inner {
    /// The streams `actor` created (wrote version 1 of) that have no event
    /// of `closing_type`: the rule of `OpenStreamLimit`.
    fn open_streams(&self, actor: &str, closing_type: &str) -> usize {
        self.streams
            .values()
            .filter(|indexes| {
                indexes.first().is_some_and(|&first| self.log[first].metadata.actor == actor)
                    && !indexes.iter().any(|&i| self.log[i].event_type == closing_type)
            })
            .count()
    }

    fn version(&self, stream_id: Uuid) -> u64 {
        self.streams.get(&stream_id).map_or(0, |events| events.len() as u64)
    }

    fn command_state(&self, read: &CommandRead) -> CommandState {
        let now = Utc::now();
        let idempotency = read.idempotency.as_ref().and_then(|key| self.idempotency.get(key).filter(|r| r.expires_at > now).cloned());
        let streams = read
            .streams
            .iter()
            .map(|&stream_id| {
                let snapshot = self.snapshots.get(&stream_id).cloned();
                let after = snapshot.as_ref().map_or(0, |s| s.version as usize);
                let indexes = self.streams.get(&stream_id).map(Vec::as_slice).unwrap_or_default();
                let events = indexes.iter().skip(after).map(|&i| self.log[i].clone()).collect();
                StreamTail { stream_id, snapshot, events }
            })
            .collect();
        CommandState { idempotency, streams }
    }
}

/// A command's hold on the writer lock (see the module docs).
struct MemoryLockedStreams<'a> {
    store: &'a InMemoryEventStore,
    _writer: tokio::sync::MutexGuard<'a, ()>,
}

#[async_trait]
impl LockedStreams for MemoryLockedStreams<'_> {
    async fn append(self: Box<Self>, batch: AppendBatch) -> Result<AppendOutcome, StoreError> {
        self.store.append_now(batch)
    }

    async fn read_stream(&self, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream_id, after_version).await
    }

    async fn release(self: Box<Self>) {}
}

impl InMemoryEventStore {
    /// The append itself; the caller holds the writer lock.
    fn append_now(&self, batch: AppendBatch) -> Result<AppendOutcome, StoreError> {
        validate_batch(&batch, &self.settings)?;
        let mut inner = self.lock();
        let now = Utc::now();

        // Every check first; only then any write, so a refusal writes nothing.
        if let Some(record) = &batch.idempotency {
            let slot = (record.caller_id.clone(), record.key.as_str().to_owned());
            if let Some(existing) = inner.idempotency.get(&slot).filter(|r| r.expires_at > now) {
                if existing.request_hash == record.request_hash {
                    return Ok(AppendOutcome::Replayed(existing.clone()));
                }
                return Err(StoreError::IdempotencyKeyReused { key: existing.key.clone() });
            }
        }
        for stream in &batch.streams {
            let actual = inner.version(stream.stream_id);
            if actual != stream.expected_version {
                if actual == 0 {
                    return Err(StoreError::StreamNotFound(stream.stream_id));
                }
                return Err(StoreError::ConcurrencyConflict { stream_id: stream.stream_id, expected: stream.expected_version, actual });
            }
            if let Some(event) = stream.events.iter().find(|e| inner.event_ids.contains(&e.event_id)) {
                return Err(StoreError::DuplicateEventId(event.event_id));
            }
        }

        if let Some(limit) = batch.open_limit {
            let opening = batch.streams.iter().filter(|s| s.expected_version == 0).count();
            if opening > 0 && inner.open_streams(&batch.metadata.actor, limit.closing_event_type) + opening > limit.max_open as usize {
                return Err(StoreError::OpenLimitReached { max_open: limit.max_open });
            }
        }

        let mut versions = Vec::with_capacity(batch.streams.len());
        for stream in &batch.streams {
            for (i, event) in stream.events.iter().enumerate() {
                let recorded = RecordedEvent {
                    global_position: inner.log.len() as i64 + 1,
                    stream_id: stream.stream_id,
                    version: stream.expected_version + 1 + i as u64,
                    event_id: event.event_id,
                    event_type: event.event_type.clone(),
                    schema_version: event.schema_version,
                    payload: event.payload.clone(),
                    metadata: batch.metadata.clone(),
                };
                let index = inner.log.len();
                inner.log.push(recorded);
                inner.streams.entry(stream.stream_id).or_default().push(index);
                inner.event_ids.insert(event.event_id);
            }
            for message in outbox_messages(stream, &batch.metadata) {
                let id = inner.outbox_state.next_id();
                inner.outbox.push(message.pending(id, &self.settings.events_topic, now, None));
            }
            if let Some(snapshot) = &stream.snapshot {
                let newer = inner.snapshots.get(&stream.stream_id).is_none_or(|old| old.version < snapshot.version);
                if newer {
                    inner.snapshots.insert(
                        stream.stream_id,
                        Snapshot {
                            stream_id: stream.stream_id,
                            version: snapshot.version,
                            schema_version: snapshot.schema_version,
                            state: snapshot.state.clone(),
                            taken_at: now,
                        },
                    );
                }
            }
            versions.push(StreamVersion { stream_id: stream.stream_id, version: inner.version(stream.stream_id) });
        }
        if let Some(record) = batch.idempotency {
            let slot = (record.caller_id.clone(), record.key.as_str().to_owned());
            inner.idempotency.insert(
                slot,
                IdempotencyRecord {
                    caller_id: record.caller_id,
                    key: record.key.as_str().to_owned(),
                    request_hash: record.request_hash,
                    response_status: record.response_status,
                    response_body: record.response_body,
                    created_at: batch.metadata.recorded_at,
                    expires_at: record.expires_at,
                },
            );
        }
        Ok(AppendOutcome::Committed(versions))
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(&self, batch: AppendBatch) -> Result<AppendOutcome, StoreError> {
        let _writer = self.writers.lock().await;
        self.append_now(batch)
    }

    async fn read_for_command(&self, read: CommandRead) -> Result<CommandState, StoreError> {
        Ok(self.lock().command_state(&read))
    }

    async fn lock_for_command(&self, read: CommandRead) -> Result<(CommandState, Box<dyn LockedStreams + '_>), StoreError> {
        let writer = self.writers.lock().await;
        let state = self.lock().command_state(&read);
        Ok((state, Box::new(MemoryLockedStreams { store: self, _writer: writer })))
    }

    async fn read_stream(&self, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.lock();
        let indexes = inner.streams.get(&stream_id).map(Vec::as_slice).unwrap_or_default();
        Ok(indexes.iter().skip(after_version as usize).map(|&i| inner.log[i].clone()).collect())
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<Option<u64>, StoreError> {
        let inner = self.lock();
        Ok(inner.streams.get(&stream_id).map(|events| events.len() as u64))
    }

    async fn read_all(&self, after_position: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.lock();
        let start = usize::try_from(after_position.max(0)).unwrap_or(usize::MAX);
        Ok(inner.log.iter().skip(start).take(limit).cloned().collect())
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        Ok(self.lock().log.len() as i64)
    }

    async fn load_snapshot(&self, stream_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock().snapshots.get(&stream_id).cloned())
    }

    async fn find_idempotency(&self, caller_id: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let now = Utc::now();
        let inner = self.lock();
        Ok(inner.idempotency.get(&(caller_id.to_owned(), key.to_owned())).filter(|r| r.expires_at > now).cloned())
    }

    async fn purge_expired_idempotency(&self) -> Result<u64, StoreError> {
        let now = Utc::now();
        let mut inner = self.lock();
        let before = inner.idempotency.len();
        inner.idempotency.retain(|_, record| record.expires_at > now);
        Ok((before - inner.idempotency.len()) as u64)
    }

    async fn outbox_for_stream(&self, stream_id: Uuid) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(self.lock().outbox.iter().filter(|m| m.stream_id == stream_id).cloned().collect())
    }

    async fn stream_heads(&self, query: HeadQuery) -> Result<Vec<StreamHead>, StoreError> {
        let inner = self.lock();
        let mut heads: Vec<StreamHead> = inner
            .streams
            .iter()
            .filter_map(|(&stream_id, indexes)| {
                let last = &inner.log[*indexes.last()?];
                Some(StreamHead { stream_id, version: indexes.len() as u64, updated_at: last.metadata.recorded_at })
            })
            .collect();
        Ok(match query {
            HeadQuery::ChangedSince { since, after, limit } => {
                heads.retain(|h| h.updated_at >= since && after.is_none_or(|a| (h.updated_at, h.stream_id) > a));
                heads.sort_by_key(|h| (h.updated_at, h.stream_id));
                heads.truncate(limit);
                heads
            }
            HeadQuery::ById { after, limit } => {
                heads.retain(|h| after.is_none_or(|a| h.stream_id > a));
                heads.sort_by_key(|h| h.stream_id);
                heads.truncate(limit);
                heads
            }
        })
    }

    async fn stream_count(&self, upto: Option<Uuid>) -> Result<u64, StoreError> {
        Ok(self.lock().streams.keys().filter(|id| upto.is_none_or(|u| **id <= u)).count() as u64)
    }
}
