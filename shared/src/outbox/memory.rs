//! The outbox on the in-memory store, for the embedded mode and fast tests.
//!
//! The publisher lock is a flag on the store, set by `claim` and cleared when
//! the batch is completed or dropped; outcomes are applied under the store's
//! one mutex, so they land all at once, as a PostgreSQL commit would.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ClaimedBatch, OutboxCounts, OutboxStore, Outcome, check_outcomes};
use crate::event_store::{InMemoryEventStore, OutboxMessage, OutboxStatus, StoreError};

/// What the in-memory outbox keeps besides the rows themselves.
#[derive(Debug, Default)]
pub(crate) struct MemoryOutboxState {
    /// Rows removed by pruning, so new rows keep getting fresh ids.
    pub pruned: i64,
    /// When each published row was published (for the retention period).
    pub published_at: HashMap<i64, DateTime<Utc>>,
}

struct MemoryBatch<'a> {
    store: &'a InMemoryEventStore,
    messages: Vec<OutboxMessage>,
}

impl Drop for MemoryBatch<'_> {
    fn drop(&mut self) {
        self.store.publisher_lock().store(false, Ordering::Release);
    }
}

fn delay(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl ClaimedBatch for MemoryBatch<'_> {
    fn messages(&self) -> &[OutboxMessage] {
        &self.messages
    }

    async fn complete(self: Box<Self>, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        check_outcomes(&self.messages, &outcomes)?;
        let now = Utc::now();
        self.store.with_outbox(|rows, state| {
            for outcome in outcomes {
                let Some(row) = rows.iter_mut().find(|r| r.id == outcome.id() && r.status == OutboxStatus::Pending) else {
                    continue;
                };
                match outcome {
                    Outcome::Published { id } => {
                        row.status = OutboxStatus::Published;
                        state.published_at.insert(id, now);
                    }
                    Outcome::Failed { error, retry_after, .. } => {
                        row.attempts += 1;
                        row.last_error = Some(error);
                        row.next_attempt_at = now.checked_add_signed(delay(retry_after)).unwrap_or(DateTime::<Utc>::MAX_UTC);
                    }
                    Outcome::Dead { error, .. } => {
                        row.status = OutboxStatus::Dead;
                        row.attempts += 1;
                        row.last_error = Some(error);
                    }
                }
            }
        });
        Ok(()) // dropping self releases the lock
    }
}

#[async_trait]
impl OutboxStore for InMemoryEventStore {
    async fn claim(&self, limit: usize, _hold_for: Duration) -> Result<Option<Box<dyn ClaimedBatch + '_>>, StoreError> {
        if self.publisher_lock().compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Ok(None);
        }
        // From here on, dropping the batch releases the lock.
        let mut batch = MemoryBatch { store: self, messages: Vec::new() };
        let now = Utc::now();
        batch.messages = self.with_outbox(|rows, _| {
            // Accounts with a pending row waiting for a retry, as of the rows
            // seen so far (rows are in outbox order).
            let mut waiting: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
            let mut claimed = Vec::new();
            for row in rows.iter().filter(|r| r.status == OutboxStatus::Pending) {
                if claimed.len() >= limit {
                    break;
                }
                if row.next_attempt_at > now {
                    waiting.insert(row.stream_id);
                } else if !waiting.contains(&row.stream_id) {
                    claimed.push(row.clone());
                }
            }
            claimed
        });
        Ok(Some(Box::new(batch)))
    }

    async fn prune_published(&self, older_than: Duration, limit: usize) -> Result<u64, StoreError> {
        let cutoff = Utc::now().checked_sub_signed(delay(older_than)).unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(self.with_outbox(|rows, state| {
            let mut doomed: Vec<(DateTime<Utc>, i64)> = rows
                .iter()
                .filter(|r| r.status == OutboxStatus::Published)
                .filter_map(|r| state.published_at.get(&r.id).map(|at| (*at, r.id)))
                .filter(|(at, _)| *at < cutoff)
                .collect();
            doomed.sort();
            doomed.truncate(limit);
            let doomed: std::collections::HashSet<i64> = doomed.into_iter().map(|(_, id)| id).collect();
            rows.retain(|r| !doomed.contains(&r.id));
            for id in &doomed {
                state.published_at.remove(id);
            }
            state.pruned += doomed.len() as i64;
            doomed.len() as u64
        }))
    }

    async fn revive_dead(&self, stream_id: Option<Uuid>) -> Result<u64, StoreError> {
        let now = Utc::now();
        Ok(self.with_outbox(|rows, _| {
            let mut revived = 0;
            for row in rows.iter_mut().filter(|r| r.status == OutboxStatus::Dead && stream_id.is_none_or(|s| s == r.stream_id)) {
                row.status = OutboxStatus::Pending;
                row.attempts = 0;
                row.next_attempt_at = now;
                row.last_error = Some(format!("revived: {}", row.last_error.as_deref().unwrap_or("")));
                revived += 1;
            }
            revived
        }))
    }

    async fn replay_published(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = Utc::now();
        Ok(self.with_outbox(|rows, state| {
            let mut replayed = 0;
            for row in rows.iter_mut().filter(|r| r.status == OutboxStatus::Published) {
                if state.published_at.get(&row.id).is_some_and(|at| *at >= since) {
                    state.published_at.remove(&row.id);
                    row.status = OutboxStatus::Pending;
                    row.attempts = 0;
                    row.next_attempt_at = now;
                    row.last_error = Some("replayed".into());
                    replayed += 1;
                }
            }
            replayed
        }))
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let now = Utc::now();
        Ok(self.with_outbox(|rows, _| {
            let mut counts = OutboxCounts::default();
            for row in rows.iter() {
                match row.status {
                    OutboxStatus::Pending => {
                        counts.pending += 1;
                        if row.next_attempt_at <= now {
                            counts.due += 1;
                        }
                        counts.oldest_pending_at =
                            Some(counts.oldest_pending_at.map_or(row.created_at, |at: DateTime<Utc>| at.min(row.created_at)));
                    }
                    OutboxStatus::Published => counts.published += 1,
                    OutboxStatus::Dead => counts.dead += 1,
                }
            }
            counts
        }))
    }
}
