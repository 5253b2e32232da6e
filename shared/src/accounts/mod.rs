//! Accounts on top of the event store: load one, commit what was decided.
//!
//! This is the only place that knows both the domain's types and the store's
//! bytes. Loading starts from the latest snapshot that still decodes and
//! replays the events after it; committing encodes the new events, adds a
//! snapshot every `snapshot_every` events, and appends everything (with the
//! idempotency record) in one batch.
//!
//! A command loads everything it needs in one read ([`AccountRepository::read_for_command`],
//! or [`AccountRepository::lock_for_command`] after a conflict) and commits
//! in one append.

pub mod codec;

use std::sync::Arc;

use thiserror::Error;
use uuid::Uuid;

use crate::domain::{Account, AccountEvent, DomainError};
use crate::event_store::{
    AppendBatch, AppendOutcome, CommandRead, EventMetadata, EventStore, LockedStreams, NewEvent, NewSnapshot, OpenStreamLimit, StoreError,
    StreamAppend, StreamTail,
};
use crate::idempotency::{IdempotencyRecord, NewIdempotencyRecord};
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

/// What a command decides on, from one read: the stored answer when its
/// Idempotency-Key was used before, and each account it asked for.
#[derive(Debug, Clone)]
pub struct CommandInput {
    pub idempotency: Option<IdempotencyRecord>,
    accounts: Vec<(Uuid, Option<Account>)>,
}

impl CommandInput {
    /// The account as of its latest event; `None` if it was never opened
    /// (or not asked for).
    pub fn account(&self, id: Uuid) -> Option<&Account> {
        self.accounts.iter().find(|(account_id, _)| *account_id == id).and_then(|(_, account)| account.as_ref())
    }
}

#[derive(Clone)]
pub struct AccountRepository {
    store: Arc<dyn EventStore>,
    codec: EventCodec,
    snapshot_every: u64,
    open_limit: Option<OpenStreamLimit>,
}

impl AccountRepository {
    /// `snapshot_every` = 0 turns snapshots off.
    pub fn new(store: Arc<dyn EventStore>, snapshot_every: u64) -> Self {
        Self { store, codec: EventCodec::current(), snapshot_every, open_limit: None }
    }

    /// Refuse to open an account when its owner already has `max_open` open
    /// ones ([`StoreError::OpenLimitReached`]); checked by the store inside
    /// the append, so racing opens cannot pass it.
    pub fn with_open_account_limit(mut self, max_open: u32) -> Self {
        self.open_limit = Some(OpenStreamLimit { max_open, closing_event_type: AccountEvent::CLOSED_TYPE });
        self
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The account as of its latest event, or `None` if it was never opened.
    pub async fn load(&self, account_id: Uuid) -> Result<Option<Account>, RepositoryError> {
        let input = self.read_for_command(CommandRead { streams: vec![account_id], idempotency: None }).await?;
        Ok(input.account(account_id).cloned())
    }

    /// Everything a command needs, in one read (see `EventStore::read_for_command`).
    pub async fn read_for_command(&self, read: CommandRead) -> Result<CommandInput, RepositoryError> {
        let state = self.store.read_for_command(read).await?;
        self.input(state.idempotency, state.streams, None).await
    }

    /// The same, with the accounts locked against other writers until the
    /// returned lock appends or is released (see `EventStore::lock_for_command`).
    pub async fn lock_for_command(&self, read: CommandRead) -> Result<(CommandInput, Box<dyn LockedStreams + '_>), RepositoryError> {
        let (state, lock) = self.store.lock_for_command(read).await?;
        match self.input(state.idempotency, state.streams, Some(lock.as_ref())).await {
            Ok(input) => Ok((input, lock)),
            Err(error) => {
                lock.release().await;
                Err(error)
            }
        }
    }

    async fn input(
        &self,
        idempotency: Option<IdempotencyRecord>,
        tails: Vec<StreamTail>,
        lock: Option<&(dyn LockedStreams + '_)>,
    ) -> Result<CommandInput, RepositoryError> {
        let mut accounts = Vec::with_capacity(tails.len());
        for tail in tails {
            let stream_id = tail.stream_id;
            accounts.push((stream_id, self.replay(tail, lock).await?));
        }
        Ok(CommandInput { idempotency, accounts })
    }

    /// The account from its snapshot and the events after it. A snapshot
    /// that no longer decodes is passed over, and the whole stream read
    /// again (one more round trip, and only then; inside `lock` if held).
    async fn replay(&self, tail: StreamTail, lock: Option<&(dyn LockedStreams + '_)>) -> Result<Option<Account>, RepositoryError> {
        let StreamTail { stream_id, snapshot, events } = tail;
        let start = match snapshot {
            None => None,
            Some(s) => {
                // A snapshot must describe the version it was filed under.
                let account = decode_snapshot(s.schema_version, &s.state).filter(|a| a.version == s.version && a.id == stream_id);
                if account.is_none() {
                    tracing::warn!(account_id = %stream_id, version = s.version, "ignoring a snapshot that does not decode; replaying");
                    let all = match lock {
                        Some(lock) => lock.read_stream(stream_id, 0).await?,
                        None => self.store.read_stream(stream_id, 0).await?,
                    };
                    return self.fold(stream_id, None, &all);
                }
                account
            }
        };
        self.fold(stream_id, start, &events)
    }

    fn fold(
        &self,
        stream_id: Uuid,
        start: Option<Account>,
        recorded: &[crate::event_store::RecordedEvent],
    ) -> Result<Option<Account>, RepositoryError> {
        let mut events = Vec::with_capacity(recorded.len());
        for event in recorded {
            let decoded = self
                .codec
                .decode(&event.event_type, event.schema_version, &event.payload)
                .map_err(|source| RepositoryError::Codec { event_id: event.event_id, source })?;
            events.push(decoded);
        }
        Account::replay(start, &events).map_err(|source| RepositoryError::History { stream_id, source })
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
    /// The append may meet a concurrency conflict.
    pub async fn commit(
        &self,
        changes: Vec<StagedChange>,
        metadata: EventMetadata,
        idempotency: Option<NewIdempotencyRecord>,
    ) -> Result<AppendOutcome, RepositoryError> {
        Ok(self.store.append(self.batch(changes, metadata, idempotency)).await?)
    }

    /// The same through `lock` (from [`Self::lock_for_command`]): the
    /// append cannot meet a conflict, and releases the lock.
    pub async fn commit_locked(
        &self,
        lock: Box<dyn LockedStreams + '_>,
        changes: Vec<StagedChange>,
        metadata: EventMetadata,
        idempotency: Option<NewIdempotencyRecord>,
    ) -> Result<AppendOutcome, RepositoryError> {
        Ok(lock.append(self.batch(changes, metadata, idempotency)).await?)
    }

    fn batch(&self, changes: Vec<StagedChange>, metadata: EventMetadata, idempotency: Option<NewIdempotencyRecord>) -> AppendBatch {
        let streams: Vec<StreamAppend> = changes.into_iter().map(|change| change.append).collect();
        // Only an opening is counted: a deposit or a transfer skips the
        // count inside the append altogether.
        let opens = streams.iter().any(|s| s.expected_version == 0);
        AppendBatch { streams, metadata, idempotency, open_limit: self.open_limit.filter(|_| opens) }
    }
}
