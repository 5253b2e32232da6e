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
use crate::event_store::{EVENT_COLUMNS, NewOutboxMessage, headers_to_json, map_pg_error, row_to_event};
use crate::event_store::{OutboxMessage, OutboxStatus, PostgresEventStore, StoreError};

/// Events re-queued per statement by a replay.
const REPLAY_PAGE: i64 = 1_000;

/// Any fixed number, the same for every publisher of one database.
pub const PUBLISHER_LOCK_KEY: i64 = 0x1ed9_e711_0000_0002;

/// Due pending rows in outbox order, without those that have an earlier
/// pending sibling still waiting for its retry (per-account order). A row
/// waits only after a failed attempt, so the sibling check reads the small
/// index of rows with `attempts > 0` (migrations/V8). "Due" is judged at
/// this statement's start, not the transaction's (`now()`): a new row's
/// `next_attempt_at` is its own transaction's start, and one that committed
/// between this transaction's BEGIN and this statement is due too, so a
/// new row never waits and never needs to hold back its successors.
const CLAIM_SQL: &str = "\
SELECT o.id, o.event_id, o.stream_id, o.stream_version, o.topic, o.message_key, o.payload, o.headers, \
       o.attempts, o.next_attempt_at, o.last_error, o.created_at \
FROM outbox o \
WHERE o.status = 'pending' AND o.next_attempt_at <= statement_timestamp() \
  AND NOT EXISTS ( \
      SELECT 1 FROM outbox e \
      WHERE e.stream_id = o.stream_id AND e.id < o.id AND e.status = 'pending' AND e.attempts > 0 \
        AND e.next_attempt_at > statement_timestamp()) \
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
            // Acknowledged rows leave the queue: a delete only marks the
            // heap tuples, where marking them published rewrote every row
            // and its index entries (migrations/V8).
            client.execute("DELETE FROM outbox WHERE id = ANY($1) AND status = 'pending'", &[&published]).await.map_err(map_pg_error)?;
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
        // `enable_sort = off`: the claim must walk the primary key, which
        // yields the first rows in order and stops. A queue's statistics are
        // often missing or stale (rows come and go faster than autoanalyze
        // looks), and then the planner may read every pending row and sort
        // them for the first few: 17-27 ms instead of 1 ms for 500 of 20,000
        // rows (docs/BENCHMARKS.md, "Outbox publisher").
        client
            .batch_execute(&format!("BEGIN; SET LOCAL idle_in_transaction_session_timeout = {idle_ms}; SET LOCAL enable_sort = off"))
            .await
            .map_err(map_pg_error)?;
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

    async fn replay_events(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.pool().get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // Page by global position; `recorded_at` has no index (a rare
        // operator command does not justify an index entry per event), so
        // each page scans from its position on.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE recorded_at >= $1 AND global_position > $2 ORDER BY global_position LIMIT $3"
        );
        let (mut after, mut queued) = (0_i64, 0_u64);
        loop {
            let rows = client.query(&sql, &[&since, &after, &REPLAY_PAGE]).await.map_err(map_pg_error)?;
            let Some(last) = rows.last() else { break };
            after = last.get("global_position");
            let messages: Vec<NewOutboxMessage> =
                rows.iter().map(|row| NewOutboxMessage::from_envelope(&row_to_event(row).envelope())).collect();
            let headers: Vec<serde_json::Value> = messages.iter().map(|m| headers_to_json(&m.headers)).collect();
            queued += client
                .execute(
                    // A row still queued (pending or dead) stays as it is.
                    "INSERT INTO outbox (event_id, stream_id, stream_version, topic, message_key, payload, headers, last_error) \
                     SELECT u.event_id, u.stream_id, u.version, $7, u.message_key, u.payload, u.headers, 'replayed' \
                     FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::bytea[], $6::jsonb[]) \
                         WITH ORDINALITY AS u(event_id, stream_id, version, message_key, payload, headers, n) \
                     ORDER BY u.n \
                     ON CONFLICT (event_id) DO NOTHING",
                    &[
                        &messages.iter().map(|m| m.event_id).collect::<Vec<_>>(),
                        &messages.iter().map(|m| m.stream_id).collect::<Vec<_>>(),
                        &messages.iter().map(|m| m.stream_version as i64).collect::<Vec<_>>(),
                        &messages.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
                        &messages.iter().map(|m| m.payload.as_slice()).collect::<Vec<_>>(),
                        &headers,
                        &self.settings().events_topic,
                    ],
                )
                .await
                .map_err(map_pg_error)?;
            if rows.len() < REPLAY_PAGE as usize {
                break;
            }
        }
        Ok(queued)
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let client = self.pool().get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let row = client
            .query_one(
                // The table holds only what is still queued (migrations/V8).
                "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'), \
                        (SELECT count(*) FROM outbox WHERE status = 'pending' AND next_attempt_at <= now()), \
                        (SELECT count(*) FROM outbox WHERE status = 'dead'), \
                        (SELECT min(created_at) FROM outbox WHERE status = 'pending')",
                &[],
            )
            .await
            .map_err(map_pg_error)?;
        Ok(OutboxCounts {
            pending: row.get::<_, i64>(0) as u64,
            due: row.get::<_, i64>(1) as u64,
            dead: row.get::<_, i64>(2) as u64,
            oldest_pending_at: row.get(3),
        })
    }
}
