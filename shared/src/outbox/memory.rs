//! The outbox on the in-memory store, for the embedded mode and fast tests.
//!
//! The publisher lock is a flag on the store, set by `claim` and cleared when
//! the batch is completed or dropped; outcomes are applied under the store's
//! one mutex, so they land all at once, as a PostgreSQL commit would. As in
//! PostgreSQL, an acknowledged row leaves the outbox.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ClaimedBatch, OutboxCounts, OutboxStore, Outcome, check_outcomes};
use crate::event_store::{InMemoryEventStore, NewOutboxMessage, OutboxMessage, OutboxStatus, StoreError};

/// What the in-memory outbox keeps besides the rows themselves.
#[derive(Debug, Default)]
pub(crate) struct MemoryOutboxState {
    /// The last id handed out: rows leave the outbox, ids are never reused.
    pub last_id: i64,
}

impl MemoryOutboxState {
    pub fn next_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }
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
        self.store.with_outbox(|rows, _, _| {
            for outcome in outcomes {
                let Some(index) = rows.iter().position(|r| r.id == outcome.id() && r.status == OutboxStatus::Pending) else {
                    continue;
                };
                let row = &mut rows[index];
                match outcome {
                    Outcome::Published { .. } => {
                        rows.remove(index);
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
        batch.messages = self.with_outbox(|rows, _, _| {
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

    async fn revive_dead(&self, stream_id: Option<Uuid>) -> Result<u64, StoreError> {
        let now = Utc::now();
        Ok(self.with_outbox(|rows, _, _| {
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

    async fn replay_events(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = Utc::now();
        Ok(self.with_outbox(|rows, state, log| {
            let queued: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.event_id).collect();
            let mut replayed = 0;
            for event in log.iter().filter(|e| e.metadata.recorded_at >= since && !queued.contains(&e.event_id)) {
                let message = NewOutboxMessage::from_envelope(&event.envelope());
                rows.push(message.pending(state.next_id(), &self.settings().events_topic, now, Some("replayed".into())));
                replayed += 1;
            }
            replayed
        }))
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let now = Utc::now();
        Ok(self.with_outbox(|rows, _, _| {
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
                    OutboxStatus::Dead => counts.dead += 1,
                }
            }
            counts
        }))
    }
}
