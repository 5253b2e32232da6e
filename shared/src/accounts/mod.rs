//! Accounts on top of the event store: load one, commit what was decided.
//!
//! This is the only place that knows both the domain's types and the store's
//! bytes. Loading starts from the latest snapshot that still decodes and
//! replays the events after it; committing encodes the new events, adds a
//! snapshot every `snapshot_every` events, and appends everything (with the
//! idempotency record) in one batch.

pub mod codec;

use std::sync::Arc;

use thiserror::Error;
use uuid::Uuid;

use crate::domain::{Account, AccountEvent, DomainError};
use crate::event_store::{AppendBatch, AppendOutcome, EventMetadata, EventStore, NewEvent, NewSnapshot, StoreError, StreamAppend};
use crate::idempotency::NewIdempotencyRecord;
use codec::{ACCOUNT_SNAPSHOT_SCHEMA_VERSION, CodecError, EventCodec, decode_snapshot, encode_snapshot};

#[derive(Debug, Error)]
pub enum RepositoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored event {event_id} cannot be read: {source}")]
    Codec { event_id: Uuid, source: CodecError },
    #[error("stream {stream_id} cannot be replayed: {source}")]
    History { stream_id: Uuid, source: DomainError },
}

/// One account's new events, ready to append, and the state they lead to.
#[derive(Debug, Clone)]
pub struct StagedChange {
    pub append: StreamAppend,
    pub after: Account,
}

#[derive(Clone)]
pub struct AccountRepository {
    store: Arc<dyn EventStore>,
    codec: EventCodec,
    snapshot_every: u64,
}

impl AccountRepository {
    /// `snapshot_every` = 0 turns snapshots off.
    pub fn new(store: Arc<dyn EventStore>, snapshot_every: u64) -> Self {
        Self { store, codec: EventCodec::current(), snapshot_every }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The account as of its latest event, or `None` if it was never opened.
    pub async fn load(&self, account_id: Uuid) -> Result<Option<Account>, RepositoryError> {
        let snapshot = self.store.load_snapshot(account_id).await?;
        let start = snapshot.and_then(|s| {
            let account = decode_snapshot(s.schema_version, &s.state);
            if account.is_none() {
                tracing::warn!(%account_id, version = s.version, "ignoring a snapshot that does not decode; replaying");
            }
            // A snapshot must describe the version it was filed under.
            account.filter(|a| a.version == s.version && a.id == account_id)
        });
        let after_version = start.as_ref().map_or(0, |a| a.version);
        let recorded = self.store.read_stream(account_id, after_version).await?;
        let mut events = Vec::with_capacity(recorded.len());
        for event in &recorded {
            let decoded = self
                .codec
                .decode(&event.event_type, event.schema_version, &event.payload)
                .map_err(|source| RepositoryError::Codec { event_id: event.event_id, source })?;
            events.push(decoded);
        }
        Account::replay(start, &events).map_err(|source| RepositoryError::History { stream_id: account_id, source })
    }

    /// Encodes `events` decided on `before` (`None` for a new account).
    pub fn stage(&self, account_id: Uuid, before: Option<&Account>, events: &[AccountEvent]) -> Result<StagedChange, RepositoryError> {
        let expected_version = before.map_or(0, |a| a.version);
        let after = Account::replay(before.cloned(), events)
            .map_err(|source| RepositoryError::History { stream_id: account_id, source })?
            .ok_or_else(|| RepositoryError::History {
                stream_id: account_id,
                source: DomainError::InvalidHistory("no events to stage".into()),
            })?;
        let new_events = events
            .iter()
            .map(|event| {
                let (event_type, schema_version, payload) = self.codec.encode(event);
                // v7 ids sort by time, which keeps the unique index on event_id compact.
                NewEvent { event_id: Uuid::now_v7(), event_type: event_type.into(), schema_version, payload }
            })
            .collect();
        let crosses_boundary = self.snapshot_every > 0 && after.version / self.snapshot_every > expected_version / self.snapshot_every;
        let snapshot = crosses_boundary.then(|| NewSnapshot {
            version: after.version,
            schema_version: ACCOUNT_SNAPSHOT_SCHEMA_VERSION,
            state: encode_snapshot(&after),
        });
        Ok(StagedChange { append: StreamAppend { stream_id: account_id, expected_version, events: new_events, snapshot }, after })
    }

    /// Appends staged changes (one account, or both sides of a transfer) and
    /// the idempotency record, atomically.
    pub async fn commit(
        &self,
        changes: Vec<StagedChange>,
        metadata: EventMetadata,
        idempotency: Option<NewIdempotencyRecord>,
    ) -> Result<AppendOutcome, RepositoryError> {
        let streams = changes.into_iter().map(|change| change.append).collect();
        Ok(self.store.append(AppendBatch { streams, metadata, idempotency }).await?)
    }
}
