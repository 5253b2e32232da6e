//! The PostgreSQL event store (tokio-postgres through a deadpool pool).
//!
//! Optimistic concurrency lives in the `streams` table: appending moves a
//! stream's row from the expected version to the new one with a conditional
//! UPDATE (or creates it with an INSERT that does nothing if it exists). Two
//! writers of one stream serialize on that row; the loser sees zero rows
//! changed and gets [`StoreError::ConcurrencyConflict`]. `UNIQUE (stream_id,
//! version)` on `events` is the second line of defence.
//!
//! Streams are always touched in ascending id order, so two transfers in
//! opposite directions cannot deadlock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, PoolError};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{
    AppendBatch, AppendOutcome, EventMetadata, EventStore, HeadQuery, OutboxMessage, OutboxStatus, RecordedEvent, Snapshot, StoreError,
    StoreSettings, StreamAppend, StreamHead, StreamVersion, outbox_messages, validate_batch,
};
use crate::idempotency::{IdempotencyRecord, NewIdempotencyRecord};

#[derive(Clone)]
pub struct PostgresEventStore {
    pool: Pool,
    settings: StoreSettings,
}

const EVENT_COLUMNS: &str =
    "global_position, stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at";

impl PostgresEventStore {
    pub fn new(pool: Pool, settings: StoreSettings) -> Self {
        Self { pool, settings }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(map_pool_error)
    }

    /// The key was taken (and not expired) when we tried to claim it: tell a
    /// replay of the same request from a reuse of the key.
    async fn resolve_taken_key(&self, record: &NewIdempotencyRecord) -> Result<Option<AppendOutcome>, StoreError> {
        match self.find_idempotency(&record.caller_id, record.key.as_str()).await? {
            Some(existing) if existing.request_hash == record.request_hash => Ok(Some(AppendOutcome::Replayed(existing))),
            Some(existing) => Err(StoreError::IdempotencyKeyReused { key: existing.key }),
            // It expired or was purged in between: the caller may try again.
            None => Ok(None),
        }
    }

    /// One attempt at the append transaction. `Ok(None)` means the
    /// idempotency key vanished between our claim and our look-up: try again.
    async fn try_append(&self, batch: &AppendBatch) -> Result<Option<AppendOutcome>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_pg_error)?;

        // The key first: a second request with the same key blocks here until
        // the first commits, then finds the key taken. Two never both execute.
        if let Some(record) = &batch.idempotency {
            let claimed = tx
                .execute(
                    "INSERT INTO idempotency_keys \
                       (caller_id, idempotency_key, request_hash, response_status, response_body, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (caller_id, idempotency_key) DO UPDATE SET \
                       request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status, \
                       response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at, \
                       expires_at = EXCLUDED.expires_at \
                     WHERE idempotency_keys.expires_at <= now()",
                    &[
                        &record.caller_id,
                        &record.key.as_str(),
                        &record.request_hash,
                        &(record.response_status as i16),
                        &record.response_body,
                        &batch.metadata.recorded_at,
                        &record.expires_at,
                    ],
                )
                .await
                .map_err(map_pg_error)?;
            if claimed == 0 {
                // Roll back and hand the connection back before looking again.
                drop(tx);
                drop(client);
                return self.resolve_taken_key(record).await;
            }
        }

        let mut streams: Vec<&StreamAppend> = batch.streams.iter().collect();
        streams.sort_by_key(|s| s.stream_id);
        let mut versions = Vec::with_capacity(streams.len());
        for stream in &streams {
            let new_version = (stream.expected_version + stream.events.len() as u64) as i64;
            let moved = if stream.expected_version == 0 {
                tx.execute(
                    "INSERT INTO streams (stream_id, version) VALUES ($1, $2) ON CONFLICT (stream_id) DO NOTHING",
                    &[&stream.stream_id, &new_version],
                )
                .await
            } else {
                tx.execute(
                    "UPDATE streams SET version = $3, updated_at = now() WHERE stream_id = $1 AND version = $2",
                    &[&stream.stream_id, &(stream.expected_version as i64), &new_version],
                )
                .await
            }
            .map_err(map_pg_error)?;
            if moved == 0 {
                let actual = tx
                    .query_opt("SELECT version FROM streams WHERE stream_id = $1", &[&stream.stream_id])
                    .await
                    .map_err(map_pg_error)?
                    .map(|row| row.get::<_, i64>(0) as u64);
                return Err(match actual {
                    None => StoreError::StreamNotFound(stream.stream_id),
                    Some(actual) => {
                        StoreError::ConcurrencyConflict { stream_id: stream.stream_id, expected: stream.expected_version, actual }
                    }
                });
            }
            versions.push(StreamVersion { stream_id: stream.stream_id, version: new_version as u64 });
        }

        if let Err(error) = insert_events(&tx, batch).await {
            drop(tx);
            drop(client);
            return Err(self.explain_insert_error(error, batch).await);
        }
        insert_outbox(&tx, batch, &self.settings.events_topic).await.map_err(map_pg_error)?;
        for stream in &streams {
            if let Some(snapshot) = &stream.snapshot {
                tx.execute(
                    "INSERT INTO snapshots (stream_id, version, schema_version, state, taken_at) \
                     VALUES ($1, $2, $3, $4, now()) \
                     ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, \
                       schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at \
                     WHERE snapshots.version < EXCLUDED.version",
                    &[&stream.stream_id, &(snapshot.version as i64), &(snapshot.schema_version as i16), &snapshot.state],
                )
                .await
                .map_err(map_pg_error)?;
            }
        }
        tx.commit().await.map_err(map_pg_error)?;
        // Report versions in the caller's order, not the locking order.
        versions.sort_by_key(|v| batch.streams.iter().position(|s| s.stream_id == v.stream_id));
        Ok(Some(AppendOutcome::Committed(versions)))
    }

    /// A unique violation on `events.event_id` names an id already stored;
    /// anything else is mapped as usual.
    async fn explain_insert_error(&self, error: tokio_postgres::Error, batch: &AppendBatch) -> StoreError {
        let is_duplicate_id = error
            .as_db_error()
            .is_some_and(|db| db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some("events_event_id_key"));
        if !is_duplicate_id {
            return map_pg_error(error);
        }
        let ids: Vec<Uuid> = batch.streams.iter().flat_map(|s| s.events.iter().map(|e| e.event_id)).collect();
        let found = match self.client().await {
            Ok(client) => client.query_opt("SELECT event_id FROM events WHERE event_id = ANY($1) LIMIT 1", &[&ids]).await,
            Err(e) => return e,
        };
        match found {
            Ok(Some(row)) => StoreError::DuplicateEventId(row.get(0)),
            Ok(None) => map_pg_error(error),
            Err(e) => map_pg_error(e),
        }
    }
}

async fn insert_events(tx: &deadpool_postgres::Transaction<'_>, batch: &AppendBatch) -> Result<(), tokio_postgres::Error> {
    let mut stream_ids = Vec::new();
    let mut versions = Vec::new();
    let mut event_ids = Vec::new();
    let mut types = Vec::new();
    let mut schema_versions = Vec::new();
    let mut payloads = Vec::new();
    for stream in &batch.streams {
        for (i, event) in stream.events.iter().enumerate() {
            stream_ids.push(stream.stream_id);
            versions.push((stream.expected_version + 1 + i as u64) as i64);
            event_ids.push(event.event_id);
            types.push(event.event_type.as_str());
            schema_versions.push(event.schema_version as i16);
            payloads.push(event.payload.as_slice());
        }
    }
    if stream_ids.is_empty() {
        return Ok(());
    }
    let EventMetadata { correlation_id, causation_id, actor, recorded_at } = &batch.metadata;
    // One round trip for all events: arrays in, UNNEST turns them into rows.
    tx.execute(
        "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, \
                             correlation_id, causation_id, actor, recorded_at) \
         SELECT u.stream_id, u.version, u.event_id, u.event_type, u.schema_version, u.payload, $7, $8, $9, $10 \
         FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::int2[], $6::bytea[]) \
           AS u(stream_id, version, event_id, event_type, schema_version, payload)",
        &[&stream_ids, &versions, &event_ids, &types, &schema_versions, &payloads, correlation_id, causation_id, actor, recorded_at],
    )
    .await?;
    Ok(())
}

async fn insert_outbox(tx: &deadpool_postgres::Transaction<'_>, batch: &AppendBatch, topic: &str) -> Result<(), tokio_postgres::Error> {
    let messages: Vec<_> = batch.streams.iter().flat_map(|stream| outbox_messages(stream, &batch.metadata)).collect();
    if messages.is_empty() {
        return Ok(());
    }
    let event_ids: Vec<Uuid> = messages.iter().map(|m| m.event_id).collect();
    let stream_ids: Vec<Uuid> = messages.iter().map(|m| m.stream_id).collect();
    let versions: Vec<i64> = messages.iter().map(|m| m.stream_version as i64).collect();
    let keys: Vec<&str> = messages.iter().map(|m| m.key.as_str()).collect();
    let payloads: Vec<&[u8]> = messages.iter().map(|m| m.payload.as_slice()).collect();
    let headers: Vec<serde_json::Value> = messages.iter().map(|m| headers_to_json(&m.headers)).collect();
    // Rows go in in batch order, which per stream is version order, so the
    // outbox id orders each stream's events correctly.
    tx.execute(
        "INSERT INTO outbox (event_id, stream_id, stream_version, topic, message_key, payload, headers) \
         SELECT u.event_id, u.stream_id, u.stream_version, $4, u.message_key, u.payload, u.headers \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $5::text[], $6::bytea[], $7::jsonb[]) \
           WITH ORDINALITY AS u(event_id, stream_id, stream_version, message_key, payload, headers, n) \
         ORDER BY u.n",
        &[&event_ids, &stream_ids, &versions, &topic, &keys, &payloads, &headers],
    )
    .await?;
    Ok(())
}

/// Headers are kept as a JSON array of `[name, value]` pairs: order is kept
/// and a name may repeat, as in Kafka.
fn headers_to_json(headers: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Array(headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect())
}

fn headers_from_json(value: serde_json::Value) -> Vec<(String, String)> {
    serde_json::from_value(value).unwrap_or_default()
}

fn row_to_event(row: &Row) -> RecordedEvent {
    RecordedEvent {
        global_position: row.get("global_position"),
        stream_id: row.get("stream_id"),
        version: row.get::<_, i64>("version") as u64,
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        schema_version: row.get::<_, i16>("schema_version") as u16,
        payload: row.get("payload"),
        metadata: EventMetadata {
            correlation_id: row.get("correlation_id"),
            causation_id: row.get("causation_id"),
            actor: row.get("actor"),
            recorded_at: row.get("recorded_at"),
        },
    }
}

fn row_to_idempotency(row: &Row) -> IdempotencyRecord {
    IdempotencyRecord {
        caller_id: row.get("caller_id"),
        key: row.get("idempotency_key"),
        request_hash: row.get("request_hash"),
        response_status: row.get::<_, i16>("response_status") as u16,
        response_body: row.get("response_body"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, batch: AppendBatch) -> Result<AppendOutcome, StoreError> {
        validate_batch(&batch, &self.settings)?;
        // Retried only when an idempotency key expired while we looked at it.
        for _ in 0..3 {
            if let Some(outcome) = self.try_append(&batch).await? {
                return Ok(outcome);
            }
        }
        Err(StoreError::Transient("the idempotency key changed hands repeatedly".into()))
    }

    async fn read_stream(&self, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version");
        let statement = client.prepare_cached(&sql).await.map_err(map_pg_error)?;
        let rows = client.query(&statement, &[&stream_id, &(after_version.min(i64::MAX as u64) as i64)]).await.map_err(map_pg_error)?;
        Ok(rows.iter().map(row_to_event).collect())
    }

    async fn stream_version(&self, stream_id: Uuid) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT version FROM streams WHERE stream_id = $1", &[&stream_id]).await.map_err(map_pg_error)?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    async fn read_all(&self, after_position: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2");
        let rows = client.query(&sql, &[&after_position, &(limit.min(i64::MAX as usize) as i64)]).await.map_err(map_pg_error)?;
        Ok(rows.iter().map(row_to_event).collect())
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT COALESCE(max(global_position), 0) FROM events", &[]).await.map_err(map_pg_error)?;
        Ok(row.get(0))
    }

    async fn load_snapshot(&self, stream_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT stream_id, version, schema_version, state, taken_at FROM snapshots WHERE stream_id = $1")
            .await
            .map_err(map_pg_error)?;
        let row = client.query_opt(&statement, &[&stream_id]).await.map_err(map_pg_error)?;
        Ok(row.map(|row| Snapshot {
            stream_id: row.get("stream_id"),
            version: row.get::<_, i64>("version") as u64,
            schema_version: row.get::<_, i16>("schema_version") as u16,
            state: row.get("state"),
            taken_at: row.get("taken_at"),
        }))
    }

    async fn find_idempotency(&self, caller_id: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT caller_id, idempotency_key, request_hash, response_status, response_body, created_at, expires_at \
                 FROM idempotency_keys WHERE caller_id = $1 AND idempotency_key = $2 AND expires_at > now()",
            )
            .await
            .map_err(map_pg_error)?;
        let row = client.query_opt(&statement, &[&caller_id, &key]).await.map_err(map_pg_error)?;
        Ok(row.as_ref().map(row_to_idempotency))
    }

    async fn purge_expired_idempotency(&self) -> Result<u64, StoreError> {
        // In slices small enough for the session's statement_timeout
        // (crate::db::SESSION_LIMITS), through idempotency_keys_expires_idx.
        const SLICE: u64 = 5_000;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM idempotency_keys WHERE ctid IN \
                   (SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT 5000)",
            )
            .await
            .map_err(map_pg_error)?;
        let mut purged = 0;
        for _ in 0..PURGE_SLICES {
            let deleted = client.execute(&statement, &[]).await.map_err(map_pg_error)?;
            purged += deleted;
            if deleted < SLICE {
                break;
            }
        }
        Ok(purged)
    }

    async fn outbox_for_stream(&self, stream_id: Uuid) -> Result<Vec<OutboxMessage>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, event_id, stream_id, stream_version, topic, message_key, payload, headers, status, attempts, \
                        next_attempt_at, last_error, created_at \
                 FROM outbox WHERE stream_id = $1 ORDER BY id",
                &[&stream_id],
            )
            .await
            .map_err(map_pg_error)?;
        rows.iter()
            .map(|row| {
                let status: String = row.get("status");
                Ok(OutboxMessage {
                    id: row.get("id"),
                    event_id: row.get("event_id"),
                    stream_id: row.get("stream_id"),
                    stream_version: row.get::<_, i64>("stream_version") as u64,
                    topic: row.get("topic"),
                    key: row.get("message_key"),
                    payload: row.get("payload"),
                    headers: headers_from_json(row.get("headers")),
                    status: OutboxStatus::parse(&status)
                        .ok_or_else(|| StoreError::Database(format!("unknown outbox status {status:?}")))?,
                    attempts: row.get::<_, i32>("attempts") as u32,
                    next_attempt_at: row.get::<_, DateTime<Utc>>("next_attempt_at"),
                    last_error: row.get("last_error"),
                    created_at: row.get("created_at"),
                })
            })
            .collect()
    }

    async fn stream_heads(&self, query: HeadQuery) -> Result<Vec<StreamHead>, StoreError> {
        let client = self.client().await?;
        // Both walk an index (`streams_updated_at_idx`, the primary key) with
        // a row-value bound, so a page costs its own size however long the table.
        let rows = match query {
            HeadQuery::ChangedSince { since, after, limit } => {
                // The first page starts after (since - 1 µs, the largest id): at `since`.
                let just_before = since.checked_sub_signed(chrono::Duration::microseconds(1)).unwrap_or(since);
                let (after_at, after_id) = after.unwrap_or((just_before, Uuid::max()));
                let statement = client
                    .prepare_cached(
                        "SELECT stream_id, version, updated_at FROM streams \
                         WHERE (updated_at, stream_id) > ($1, $2) ORDER BY updated_at, stream_id LIMIT $3",
                    )
                    .await
                    .map_err(map_pg_error)?;
                client.query(&statement, &[&after_at, &after_id, &limit_param(limit)]).await
            }
            HeadQuery::ById { after, limit } => {
                let statement = client
                    .prepare_cached("SELECT stream_id, version, updated_at FROM streams WHERE stream_id > $1 ORDER BY stream_id LIMIT $2")
                    .await
                    .map_err(map_pg_error)?;
                client.query(&statement, &[&after.unwrap_or(Uuid::nil()), &limit_param(limit)]).await
            }
        }
        .map_err(map_pg_error)?;
        Ok(rows.iter().map(row_to_head).collect())
    }

    async fn stream_count(&self, upto: Option<Uuid>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM streams WHERE stream_id <= $1", &[&upto.unwrap_or(Uuid::max())])
            .await
            .map_err(map_pg_error)?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

/// How many slices of expired idempotency records one purge deletes at most
/// (100,000 records): a larger backlog takes several runs.
const PURGE_SLICES: usize = 20;

fn limit_param(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

fn row_to_head(row: &Row) -> StreamHead {
    StreamHead { stream_id: row.get(0), version: row.get::<_, i64>(1) as u64, updated_at: row.get(2) }
}

fn map_pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => map_pg_error(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Sorts PostgreSQL failures into what a caller can act on: unreachable (503,
/// retry later), transient (retry now), or a real error.
pub(crate) fn map_pg_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        // 55P03 and 57014: a lock wait or a statement ran past the session
        // limits (crate::db::SESSION_LIMITS): busy, not broken; retry later.
        let over_limit = code == SqlState::LOCK_NOT_AVAILABLE.code() || code == SqlState::QUERY_CANCELED.code();
        return if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") || over_limit {
            StoreError::Unavailable(format!("{code}: {}", db.message()))
        } else if code == SqlState::T_R_SERIALIZATION_FAILURE.code() || code == SqlState::T_R_DEADLOCK_DETECTED.code() {
            StoreError::Transient(format!("{code}: {}", db.message()))
        } else {
            StoreError::Database(format!("{code}: {}", db.message()))
        };
    }
    // No SQLSTATE: the connection broke, timed out or was closed.
    let io = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
    if error.is_closed() || io || error.to_string().contains("timed out") {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Database(error.to_string())
    }
}
