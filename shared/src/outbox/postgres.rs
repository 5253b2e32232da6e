//! The outbox on PostgreSQL.
//!
//! A batch is one transaction that starts with
//! `pg_try_advisory_xact_lock(PUBLISHER_LOCK_KEY)`: whoever gets it is THE
//! publisher until the transaction ends, and the lock cannot leak, because
//! the server drops it with the transaction (commit, rollback, or the
//! connection closing when a process dies). The claim is a separate
//! statement after the lock, so its snapshot sees every outcome the previous
//! holder committed. Outcomes are written and the lock released by one
//! COMMIT.
//!
//! Outcome times use `clock_timestamp()`, not `now()` (the transaction's
//! start): a retry's backoff counts from when the failure was recorded, not
//! from the claim, which may be a whole broker timeout earlier.
//!
//! A batch dropped without `complete` (a crash, a panic, a timeout) must not
//! hand its open transaction back to the pool: its connection is detached
//! and closed, which makes the server roll the transaction back.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use uuid::Uuid;

use super::{ClaimedBatch, OutboxCounts, OutboxStore, Outcome, check_outcomes};
use crate::event_store::map_pg_error;
use crate::event_store::{OutboxMessage, OutboxStatus, PostgresEventStore, StoreError};

/// Any fixed number, the same for every publisher of one database.
pub const PUBLISHER_LOCK_KEY: i64 = 0x1ed9_e711_0000_0002;

/// Due pending rows in outbox order, without those that have an earlier
/// pending sibling still waiting for its retry (per-account order).
const CLAIM_SQL: &str = "\
SELECT o.id, o.event_id, o.stream_id, o.stream_version, o.topic, o.message_key, o.payload, o.headers, \
       o.attempts, o.next_attempt_at, o.last_error, o.created_at \
FROM outbox o \
WHERE o.status = 'pending' AND o.next_attempt_at <= now() \
  AND NOT EXISTS ( \
      SELECT 1 FROM outbox e \
      WHERE e.stream_id = o.stream_id AND e.id < o.id AND e.status = 'pending' AND e.next_attempt_at > now()) \
ORDER BY o.id \
LIMIT $1";

struct PostgresBatch {
    /// `Some` until the batch is completed; taken out of the pool on drop otherwise.
    client: Option<Object>,
    messages: Vec<OutboxMessage>,
}

impl Drop for PostgresBatch {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Never return a connection inside an open transaction to the
            // pool: close it, and the server rolls back and unlocks.
            drop(Object::take(client));
        }
    }
}

#[async_trait]
impl ClaimedBatch for PostgresBatch {
    fn messages(&self) -> &[OutboxMessage] {
        &self.messages
    }

    async fn complete(mut self: Box<Self>, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        check_outcomes(&self.messages, &outcomes)?;
        // On any error below the batch is dropped with its client: closed, rolled back.
        let client = self.client.as_ref().expect("a batch is completed once");
        let mut published = Vec::new();
        let (mut failed, mut failed_errors, mut failed_delays) = (Vec::new(), Vec::new(), Vec::new());
        let (mut dead, mut dead_errors) = (Vec::new(), Vec::new());
        for outcome in outcomes {
            match outcome {
                Outcome::Published { id } => published.push(id),
                Outcome::Failed { id, error, retry_after } => {
                    failed.push(id);
                    failed_errors.push(error);
                    failed_delays.push(retry_after.as_millis().min(i64::MAX as u128) as i64);
                }
                Outcome::Dead { id, error } => {
                    dead.push(id);
                    dead_errors.push(error);
                }
            }
        }
        if !published.is_empty() {
            client
                .execute(
                    "UPDATE outbox SET status = 'published', published_at = clock_timestamp() \
                     WHERE id = ANY($1) AND status = 'pending'",
                    &[&published],
                )
                .await
                .map_err(map_pg_error)?;
        }
        if !failed.is_empty() {
            client
                .execute(
                    "UPDATE outbox o SET attempts = o.attempts + 1, last_error = u.error, \
                       next_attempt_at = clock_timestamp() + u.delay_ms * interval '1 millisecond' \
                     FROM UNNEST($1::int8[], $2::text[], $3::int8[]) AS u(id, error, delay_ms) \
                     WHERE o.id = u.id AND o.status = 'pending'",
                    &[&failed, &failed_errors, &failed_delays],
                )
                .await
                .map_err(map_pg_error)?;
        }
        if !dead.is_empty() {
            client
                .execute(
                    "UPDATE outbox o SET status = 'dead', attempts = o.attempts + 1, last_error = u.error \
                     FROM UNNEST($1::int8[], $2::text[]) AS u(id, error) \
                     WHERE o.id = u.id AND o.status = 'pending'",
                    &[&dead, &dead_errors],
                )
                .await
                .map_err(map_pg_error)?;
        }
        client.batch_execute("COMMIT").await.map_err(map_pg_error)?;
        // Committed: the connection is clean and goes back to the pool.
        drop(self.client.take());
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for PostgresEventStore {
    async fn claim(&self, limit: usize, hold_for: Duration) -> Result<Option<Box<dyn ClaimedBatch + '_>>, StoreError> {
        let client = self.pool().get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut batch = PostgresBatch { client: Some(client), messages: Vec::new() };
        let client = batch.client.as_ref().expect("just set");
        // The server ends a transaction left idle longer than this, and with
        // it the lock: a frozen or lost publisher cannot hold the outbox.
        let idle_ms = hold_for.as_millis().clamp(1_000, i32::MAX as u128);
        client.batch_execute(&format!("BEGIN; SET LOCAL idle_in_transaction_session_timeout = {idle_ms}")).await.map_err(map_pg_error)?;
        let locked: bool =
            client.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PUBLISHER_LOCK_KEY]).await.map_err(map_pg_error)?.get(0);
        if !locked {
            client.batch_execute("ROLLBACK").await.map_err(map_pg_error)?;
            drop(batch.client.take());
            return Ok(None);
        }
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = client.query(CLAIM_SQL, &[&limit]).await.map_err(map_pg_error)?;
        batch.messages = rows
            .iter()
            .map(|row| OutboxMessage {
                id: row.get("id"),
                event_id: row.get::<_, Uuid>("event_id"),
                stream_id: row.get("stream_id"),
                stream_version: row.get::<_, i64>("stream_version") as u64,
                topic: row.get("topic"),
                key: row.get("message_key"),
                payload: row.get("payload"),
                headers: serde_json::from_value(row.get("headers")).unwrap_or_default(),
                status: OutboxStatus::Pending,
                attempts: row.get::<_, i32>("attempts") as u32,
                next_attempt_at: row.get::<_, DateTime<Utc>>("next_attempt_at"),
                last_error: row.get("last_error"),
                created_at: row.get("created_at"),
            })
            .collect();
        Ok(Some(Box::new(batch)))
    }

    async fn prune_published(&self, older_than: Duration, limit: usize) -> Result<u64, StoreError> {
        let client = self.pool().get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let older_ms = older_than.as_millis().min(i64::MAX as u128) as i64;
        let limit = limit.min(i64::MAX as usize) as i64;
        client
            .execute(
                "DELETE FROM outbox WHERE id IN ( \
                   SELECT id FROM outbox \
                   WHERE status = 'published' AND published_at < now() - $1::int8 * interval '1 millisecond' \
                   ORDER BY published_at LIMIT $2::int8)",
                &[&older_ms, &limit],
            )
            .await
            .map_err(map_pg_error)
    }

    async fn revive_dead(&self, stream_id: Option<uuid::Uuid>) -> Result<u64, StoreError> {
        let client = self.pool().get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        client
            .execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), \
                        last_error = 'revived: ' || coalesce(last_error, '') \
                 WHERE status = 'dead' AND ($1::uuid IS NULL OR stream_id = $1)",
                &[&stream_id],
            )
            .await
            .map_err(map_pg_error)
    }

    async fn replay_published(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.pool().get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        client
            .execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), published_at = NULL, \
                        last_error = 'replayed' \
                 WHERE status = 'published' AND published_at >= $1",
                &[&since],
            )
            .await
            .map_err(map_pg_error)
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let client = self.pool().get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let row = client
            .query_one(
                // One subquery per state, each on its partial index (no
                // scan of the whole table: see migrations/V5).
                "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'), \
                        (SELECT count(*) FROM outbox WHERE status = 'pending' AND next_attempt_at <= now()), \
                        (SELECT count(*) FROM outbox WHERE status = 'published'), \
                        (SELECT count(*) FROM outbox WHERE status = 'dead'), \
                        (SELECT min(created_at) FROM outbox WHERE status = 'pending')",
                &[],
            )
            .await
            .map_err(map_pg_error)?;
        Ok(OutboxCounts {
            pending: row.get::<_, i64>(0) as u64,
            due: row.get::<_, i64>(1) as u64,
            published: row.get::<_, i64>(2) as u64,
            dead: row.get::<_, i64>(3) as u64,
            oldest_pending_at: row.get(4),
        })
    }
}
