//! The publishing side of the transactional outbox: what the outbox
//! publisher needs from storage, for PostgreSQL and for the in-memory store.
//!
//! The event store writes one outbox row per event in the append's own
//! transaction (see `event_store`). This module hands those rows to ONE
//! publisher at a time, in an order that keeps each account's events in
//! version order, and records what became of them:
//!
//! 1. [`OutboxStore::claim`] takes the publisher lock and returns the due
//!    rows in outbox order, leaving out every row that has an earlier pending
//!    sibling (same account) waiting for a retry: a later event is never
//!    handed out ahead of an earlier one that failed.
//! 2. The publisher sends them and calls [`ClaimedBatch::complete`] with one
//!    [`Outcome`] per row it settled. That records the outcomes and releases
//!    the lock together (PostgreSQL: one transaction with a transaction-scoped
//!    advisory lock): an acknowledged row is deleted, a failed one waits for
//!    its retry, a dead one stays for the operator. Dropping the batch
//!    instead releases the lock and records nothing, exactly like a crash:
//!    the rows are handed out again later.
//!
//! The outbox is a queue, not a history: the event log is the history, and
//! [`OutboxStore::replay_events`] queues events from it again (after a
//! broker lost what it had acknowledged).
//!
//! The lock is per batch, not per run: between two batches another publisher
//! may take over, which is safe because every batch's outcomes are committed
//! before the lock is released, and a publisher that finds the lock taken
//! stops (the other one is draining).
//!
//! The Kafka side (rdkafka) lives in `functions/outbox-publisher`, so this
//! crate stays free of it.

mod memory;
mod postgres;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::event_store::{OutboxMessage, StoreError};

pub(crate) use memory::MemoryOutboxState;

/// What became of one claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The broker acknowledged the record: the row leaves the outbox.
    Published { id: i64 },
    /// Not acknowledged: the row stays `pending` with `attempts + 1`, the
    /// error recorded, and is not due again before `retry_after` has passed.
    Failed { id: i64, error: String, retry_after: Duration },
    /// The row can never be published and a dead-letter record for it was
    /// acknowledged: the row is `dead` (`attempts + 1`, error recorded) and
    /// never handed out again.
    Dead { id: i64, error: String },
}

impl Outcome {
    pub fn id(&self) -> i64 {
        match self {
            Self::Published { id } | Self::Failed { id, .. } | Self::Dead { id, .. } => *id,
        }
    }
}

/// How many rows are in each state, for the publisher's summary and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Not yet published (due now or waiting for a retry).
    pub pending: u64,
    /// Pending rows whose next attempt is due now.
    pub due: u64,
    pub dead: u64,
    /// When the oldest pending row was written: the publishing lag.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// Rows claimed under the publisher lock. See the module docs.
#[async_trait]
pub trait ClaimedBatch: Send {
    /// The claimed rows, in outbox order (per account: version order).
    fn messages(&self) -> &[OutboxMessage];

    /// Records the outcomes and releases the lock, atomically. Rows without
    /// an outcome are left as they were (they are handed out again next time).
    /// Outcomes for rows not in this batch are refused.
    async fn complete(self: Box<Self>, outcomes: Vec<Outcome>) -> Result<(), StoreError>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Takes the publisher lock and claims up to `limit` due pending rows.
    /// `Ok(None)` when another publisher holds the lock. `hold_for` is the
    /// longest the caller will keep the batch: a store may release the lock
    /// of a batch kept longer (PostgreSQL ends the idle transaction), so a
    /// frozen or vanished publisher cannot block the outbox for good.
    async fn claim(&self, limit: usize, hold_for: Duration) -> Result<Option<Box<dyn ClaimedBatch + '_>>, StoreError>;

    /// Row counts by state.
    async fn counts(&self) -> Result<OutboxCounts, StoreError>;

    /// Puts dead rows back to `pending` (attempts reset, due now, the last
    /// error kept with a "revived:" prefix), so the publisher tries them
    /// again: the operator's redrive after fixing the cause. `stream_id`
    /// limits it to one account. Returns how many rows were revived.
    async fn revive_dead(&self, stream_id: Option<uuid::Uuid>) -> Result<u64, StoreError>;

    /// Queues every event recorded at or after `since` again, from the
    /// event log, due now, so it is sent again: after a broker lost what it
    /// had acknowledged (reset, or its storage deleted). An event still in
    /// the outbox (pending or dead) is left as it is. Safe because the
    /// projector skips what it already applied. Returns how many rows were
    /// queued.
    async fn replay_events(&self, since: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError>;
}

/// Refuses outcomes for rows that were not claimed, or two for one row.
pub(crate) fn check_outcomes(messages: &[OutboxMessage], outcomes: &[Outcome]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    for outcome in outcomes {
        let id = outcome.id();
        if !messages.iter().any(|m| m.id == id) {
            return Err(StoreError::Database(format!("outcome for outbox row {id}, which is not in the batch")));
        }
        if !seen.insert(id) {
            return Err(StoreError::Database(format!("two outcomes for outbox row {id}")));
        }
    }
    Ok(())
}
