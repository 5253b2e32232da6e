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
//!
//! A command costs two round trips: [`EventStore::read_for_command`] sends
//! its statements pipelined on one connection (the idempotency record, and
//! each stream's snapshot with the events after it), and the append is one
//! call of the `ledgerline_append` function (migration V6), its own commit.
//! A command that met a conflict locks its streams first
//! ([`EventStore::lock_for_command`]): BEGIN, `SELECT ... FOR UPDATE` and the
//! same reads, pipelined; then the append and COMMIT, pipelined. Every
//! statement is prepared once per connection (`prepare_cached`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, PoolError};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{
    AppendBatch, AppendOutcome, CommandRead, CommandState, EventMetadata, EventStore, HeadQuery, LockedStreams, OutboxMessage,
    OutboxStatus, RecordedEvent, Snapshot, StoreError, StoreSettings, StreamAppend, StreamHead, StreamTail, StreamVersion, outbox_messages,
    validate_batch,
};
use crate::idempotency::{IdempotencyRecord, NewIdempotencyRecord};

/// Calls the append function of migrations V6 and V7 (see their comments).
const APPEND_SQL: &str = "SELECT ledgerline_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                          $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)";
/// The SQLSTATEs `ledgerline_append` raises.
const CONFLICT_STATE: &str = "LL409";
const MISSING_STREAM_STATE: &str = "LL404";
const OPEN_LIMIT_STATE: &str = "LL429";

/// Each asked-for stream's latest snapshot and the events after it, in one
/// statement, so the two agree (one snapshot of the database). The
/// snapshot's columns repeat on each event row: a few dozen rows at most.
/// `$ids` is a row source of the asked-for ids.
///
/// The events are read per stream, through the `(stream_id, version)` index:
/// a LATERAL subquery that `OFFSET 0` keeps the planner from flattening.
/// As a plain join, the array form (three streams or more: an entry) was
/// planned as a hash join over a sequential scan of the whole events table,
/// so an entry's read grew with the ledger: 70 ms at 256,000 events, against
/// 1 ms this way (EXPLAIN ANALYZE in docs/BENCHMARKS.md).
macro_rules! command_read_sql {
    ($ids:literal) => {
        concat!(
            "SELECT ids.stream_id, sn.version AS snapshot_version, sn.schema_version AS snapshot_schema, \
                    sn.state AS snapshot_state, sn.taken_at AS snapshot_taken_at, e.global_position, e.version, e.event_id, \
                    e.event_type, e.schema_version, e.payload, e.correlation_id, e.causation_id, e.actor, e.recorded_at \
             FROM ",
            $ids,
            " AS ids(stream_id) \
             LEFT JOIN snapshots sn ON sn.stream_id = ids.stream_id \
             LEFT JOIN LATERAL ( \
                 SELECT ev.global_position, ev.version, ev.event_id, ev.event_type, ev.schema_version, ev.payload, \
                        ev.correlation_id, ev.causation_id, ev.actor, ev.recorded_at \
                 FROM events ev WHERE ev.stream_id = ids.stream_id AND ev.version > COALESCE(sn.version, 0) OFFSET 0 \
             ) e ON true \
             ORDER BY ids.stream_id, e.version"
        )
    };
}

/// The read for one stream (every command but a transfer) and for two (a
/// transfer), the ids as plain parameters: PostgreSQL knows how many rows
/// they are, so its generic plan is as good as any and it plans each once
/// per connection. The array form ([`COMMAND_READ_ANY_SQL`], for more) is
/// planned anew on every execution, since a generic plan that guesses ten
/// ids looks dearer than a custom one: measured, that made the read half a
/// deposit's time at one request at a time (docs/BENCHMARKS.md).
const COMMAND_READ_ONE_SQL: &str = command_read_sql!("(VALUES ($1::uuid))");
const COMMAND_READ_TWO_SQL: &str = command_read_sql!("(VALUES ($1::uuid), ($2::uuid))");
const COMMAND_READ_ANY_SQL: &str = command_read_sql!("(SELECT DISTINCT unnest($1::uuid[]))");

const IDEMPOTENCY_SQL: &str = "\
SELECT caller_id, idempotency_key, request_hash, response_status, response_body, created_at, expires_at \
FROM idempotency_keys WHERE caller_id = $1 AND idempotency_key = $2 AND expires_at > now()";

/// The lock `ledgerline_append` takes on a key before claiming it (V6):
/// taken here before the accounts' locks too, so that a command holding an
/// account never waits for a key that a same-key request holds while it
/// waits for that account.
const KEY_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(19532, hashtext($1 || ' ' || $2))";

/// Locks in id order (the sort runs below the row locking), like the append;
/// for one and two streams with plain parameters, like the read, so that it
/// is planned once per connection.
const LOCK_ONE_SQL: &str = "SELECT stream_id FROM streams WHERE stream_id = $1 FOR UPDATE";
const LOCK_TWO_SQL: &str = "SELECT stream_id FROM streams WHERE stream_id IN ($1, $2) ORDER BY stream_id FOR UPDATE";
const LOCK_ANY_SQL: &str = "SELECT stream_id FROM streams WHERE stream_id = ANY($1) ORDER BY stream_id FOR UPDATE";

#[derive(Clone)]
pub struct PostgresEventStore {
    pool: Pool,
    settings: StoreSettings,
}

pub(crate) const EVENT_COLUMNS: &str =
    "global_position, stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at";

impl PostgresEventStore {
    pub fn new(pool: Pool, settings: StoreSettings) -> Self {
        Self { pool, settings }
    }

    pub(crate) fn settings(&self) -> &StoreSettings {
        &self.settings
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

    /// One call of `ledgerline_append`. `Ok(None)` means the
    /// idempotency key vanished between our claim and our look-up: try again.
    /// Run outside a transaction, the statement is its own commit.
    async fn try_append(&self, batch: &AppendBatch) -> Result<Option<AppendOutcome>, StoreError> {
        let result = {
            let client = self.client().await?;
            let params = AppendParams::new(batch, &self.settings.events_topic);
            let result = match client.prepare_cached(APPEND_SQL).await {
                Ok(statement) => client.query_one(&statement, &params.as_sql()).await,
                Err(error) => Err(error),
            };
            // The connection goes back to the pool here (unless it is gone),
            // before any look-up below takes one: a pool of one must not
            // wait for itself. A lost connection is not retried here: the
            // append may have committed, and only the key can tell.
            match &result {
                Err(error) => crate::db::release_after(client, error),
                Ok(_) => drop(client),
            }
            result
        };
        self.append_result(result.map(|row| row.get::<_, String>(0)), batch).await
    }

    /// What `ledgerline_append` answered, as an [`AppendOutcome`].
    async fn append_result(
        &self,
        result: Result<String, tokio_postgres::Error>,
        batch: &AppendBatch,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        match result {
            Ok(answer) if answer == "committed" => {
                let versions = batch
                    .streams
                    .iter()
                    .map(|s| StreamVersion { stream_id: s.stream_id, version: s.expected_version + s.events.len() as u64 })
                    .collect();
                Ok(Some(AppendOutcome::Committed(versions)))
            }
            Ok(_key_taken) => {
                let record = batch.idempotency.as_ref().expect("only a key can be taken");
                self.resolve_taken_key(record).await
            }
            Err(error) => Err(self.explain_append_error(error, batch).await),
        }
    }

    /// The function's own errors (a conflict, a missing stream), a duplicate
    /// event id, or anything else mapped as usual.
    async fn explain_append_error(&self, error: tokio_postgres::Error, batch: &AppendBatch) -> StoreError {
        if let Some(db) = error.as_db_error() {
            let detail: Vec<&str> = db.detail().unwrap_or_default().split(' ').collect();
            if db.code().code() == OPEN_LIMIT_STATE {
                let max_open = detail.first().and_then(|n| n.parse().ok()).unwrap_or_default();
                return StoreError::OpenLimitReached { max_open };
            }
            let stream_id = detail.first().and_then(|id| id.parse::<Uuid>().ok());
            match (db.code().code(), stream_id) {
                (CONFLICT_STATE, Some(stream_id)) => {
                    let number = |i: usize| detail.get(i).and_then(|n| n.parse::<u64>().ok()).unwrap_or_default();
                    return StoreError::ConcurrencyConflict { stream_id, expected: number(1), actual: number(2) };
                }
                (MISSING_STREAM_STATE, Some(stream_id)) => return StoreError::StreamNotFound(stream_id),
                _ => {}
            }
        }
        self.explain_insert_error(error, batch).await
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

/// Headers are kept as a JSON array of `[name, value]` pairs: order is kept
/// and a name may repeat, as in Kafka.
pub(crate) fn headers_to_json(headers: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Array(headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect())
}

fn headers_from_json(value: serde_json::Value) -> Vec<(String, String)> {
    serde_json::from_value(value).unwrap_or_default()
}

pub(crate) fn row_to_event(row: &Row) -> RecordedEvent {
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

    async fn read_for_command(&self, read: CommandRead) -> Result<CommandState, StoreError> {
        // A read is safe to repeat: when the connection turns out to be gone
        // (the database restarted or killed its backend since it was last
        // used), the read is made once more on a new one instead of failing
        // the command with a 503.
        let mut lost_once = false;
        loop {
            let client = self.client().await?;
            match command_read_on(&client, &read).await {
                Ok(state) => return Ok(state),
                Err(error) if crate::db::connection_lost(&error) && !lost_once => {
                    tracing::debug!(%error, "the connection was gone; reading again on a new one");
                    crate::db::release_after(client, &error);
                    lost_once = true;
                }
                Err(error) => {
                    crate::db::release_after(client, &error);
                    return Err(map_pg_error(error));
                }
            }
        }
    }

    async fn lock_for_command(&self, read: CommandRead) -> Result<(CommandState, Box<dyn LockedStreams + '_>), StoreError> {
        // From here on, an error drops `locked`, which rolls back.
        let locked = Box::new(PostgresLockedStreams { store: self, client: Some(self.client().await?) });
        let client = locked.client.as_ref().expect("just set");
        let statements = tokio::try_join!(
            client.prepare_cached(KEY_LOCK_SQL),
            client.prepare_cached(lock_sql(&read)),
            client.prepare_cached(command_read_sql(&read)),
            client.prepare_cached(IDEMPOTENCY_SQL)
        );
        let (key_lock, lock, streams, key) = statements.map_err(map_pg_error)?;
        // The locks are taken first (the key's, then the accounts'); the
        // reads that follow are statements of their own, so (READ
        // COMMITTED) they see whatever the previous holder committed before
        // it let go. All of it goes out at once.
        let ids = command_read_params(&read);
        let lock_key = async {
            match &read.idempotency {
                Some((caller_id, key)) => client.query(&key_lock, &[caller_id, key]).await.map(drop),
                None => Ok(()),
            }
        };
        let (_, _, _, rows, record) = tokio::try_join!(
            client.batch_execute("BEGIN"),
            lock_key,
            client.query(&lock, &ids),
            client.query(&streams, &ids),
            find_key(client, &key, &read),
        )
        .map_err(map_pg_error)?;
        let state = CommandState { idempotency: record, streams: stream_tails(&read.streams, &rows) };
        Ok((state, locked))
    }

    async fn read_stream(&self, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        read_stream_on(&self.client().await?, stream_id, after_version).await
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

async fn read_stream_on(client: &deadpool_postgres::Object, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version");
    let statement = client.prepare_cached(&sql).await.map_err(map_pg_error)?;
    let rows = client.query(&statement, &[&stream_id, &(after_version.min(i64::MAX as u64) as i64)]).await.map_err(map_pg_error)?;
    Ok(rows.iter().map(row_to_event).collect())
}

/// The reads of [`EventStore::read_for_command`] on `client`: both statements
/// go out before either answer comes back, one round trip.
async fn command_read_on(client: &deadpool_postgres::Object, read: &CommandRead) -> Result<CommandState, tokio_postgres::Error> {
    let (streams, key) = tokio::try_join!(client.prepare_cached(command_read_sql(read)), client.prepare_cached(IDEMPOTENCY_SQL))?;
    let ids = command_read_params(read);
    let (rows, record) = tokio::try_join!(client.query(&streams, &ids), find_key(client, &key, read))?;
    Ok(CommandState { idempotency: record, streams: stream_tails(&read.streams, &rows) })
}

/// The read of `read`'s streams, by how many there are.
fn command_read_sql(read: &CommandRead) -> &'static str {
    command_read_statement(read.streams.len())
}

/// The statement a command's read of `streams` streams runs: one or two ids
/// as plain parameters, more as one `uuid[]`. Public for the test of its
/// plans (`shared/tests/postgres_plans.rs`).
#[doc(hidden)]
pub fn command_read_statement(streams: usize) -> &'static str {
    match streams {
        1 => COMMAND_READ_ONE_SQL,
        2 => COMMAND_READ_TWO_SQL,
        _ => COMMAND_READ_ANY_SQL,
    }
}

/// The lock of `read`'s streams, by how many there are.
fn lock_sql(read: &CommandRead) -> &'static str {
    match read.streams.len() {
        1 => LOCK_ONE_SQL,
        2 => LOCK_TWO_SQL,
        _ => LOCK_ANY_SQL,
    }
}

/// The parameters of [`command_read_sql`] and [`lock_sql`]: each id, or all
/// of them as one array.
fn command_read_params(read: &CommandRead) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    match read.streams.as_slice() {
        [one] => vec![one],
        [first, second] => vec![first, second],
        _ => vec![&read.streams],
    }
}

/// The idempotency look-up of a [`CommandRead`] (nothing to look up without a key).
async fn find_key(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    read: &CommandRead,
) -> Result<Option<IdempotencyRecord>, tokio_postgres::Error> {
    match &read.idempotency {
        Some((caller_id, key)) => Ok(client.query_opt(statement, &[caller_id, key]).await?.as_ref().map(row_to_idempotency)),
        None => Ok(None),
    }
}

/// Groups the rows of [`command_read_sql`] by stream, in the order asked for.
fn stream_tails(asked: &[Uuid], rows: &[Row]) -> Vec<StreamTail> {
    asked
        .iter()
        .map(|&stream_id| {
            let mine: Vec<&Row> = rows.iter().filter(|row| row.get::<_, Uuid>("stream_id") == stream_id).collect();
            let snapshot = mine.first().and_then(|row| {
                let version: Option<i64> = row.get("snapshot_version");
                version.map(|version| Snapshot {
                    stream_id,
                    version: version as u64,
                    schema_version: row.get::<_, i16>("snapshot_schema") as u16,
                    state: row.get("snapshot_state"),
                    taken_at: row.get("snapshot_taken_at"),
                })
            });
            let events =
                mine.iter().filter(|row| row.get::<_, Option<i64>>("global_position").is_some()).map(|row| row_to_event(row)).collect();
            StreamTail { stream_id, snapshot, events }
        })
        .collect()
}

/// A command's open transaction holding its streams' row locks.
struct PostgresLockedStreams<'a> {
    store: &'a PostgresEventStore,
    /// `Some` until appended or released.
    client: Option<deadpool_postgres::Object>,
}

impl Drop for PostgresLockedStreams<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Never hand an open transaction back to the pool: close the
            // connection, and the server rolls back and unlocks.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

#[async_trait]
impl LockedStreams for PostgresLockedStreams<'_> {
    async fn append(mut self: Box<Self>, batch: AppendBatch) -> Result<AppendOutcome, StoreError> {
        validate_batch(&batch, &self.store.settings)?;
        let client = self.client.as_ref().expect("appended once");
        let statement = client.prepare_cached(APPEND_SQL).await.map_err(map_pg_error)?;
        let params = AppendParams::new(&batch, &self.store.settings.events_topic);
        // The append and COMMIT go out together. If the append fails, the
        // server answers COMMIT with a rollback; either way the transaction
        // is over once both answers are in.
        let params = params.as_sql();
        let (result, commit) = tokio::join!(client.query_one(&statement, &params), client.batch_execute("COMMIT"));
        if commit.is_ok() {
            drop(self.client.take()); // clean: back to the pool
        }
        let result = match commit {
            Ok(()) => result,
            Err(error) if result.is_ok() => Err(error), // the commit itself failed
            Err(_) => result,
        };
        let answer = self.store.append_result(result.map(|row| row.get::<_, String>(0)), &batch).await?;
        answer.ok_or_else(|| StoreError::Transient("the idempotency key expired while the command ran".into()))
    }

    async fn read_stream(&self, stream_id: Uuid, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client.as_ref().expect("open until appended or released");
        read_stream_on(client, stream_id, after_version).await
    }

    async fn release(mut self: Box<Self>) {
        if let Some(client) = self.client.as_ref()
            && client.batch_execute("ROLLBACK").await.is_ok()
        {
            drop(self.client.take());
        }
    }
}

/// The arguments of `ledgerline_append`, one array per column.
struct AppendParams<'a> {
    caller_id: Option<&'a str>,
    key: Option<&'a str>,
    request_hash: Option<&'a [u8]>,
    response_status: Option<i16>,
    response_body: Option<&'a [u8]>,
    key_expires_at: Option<DateTime<Utc>>,
    stream_ids: Vec<Uuid>,
    expected: Vec<i64>,
    new_versions: Vec<i64>,
    event_streams: Vec<Uuid>,
    event_versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i16>,
    payloads: Vec<&'a [u8]>,
    metadata: &'a EventMetadata,
    topic: &'a str,
    outbox_keys: Vec<String>,
    outbox_payloads: Vec<Vec<u8>>,
    outbox_headers: Vec<serde_json::Value>,
    snapshot_streams: Vec<Uuid>,
    snapshot_versions: Vec<i64>,
    snapshot_schemas: Vec<i16>,
    snapshot_states: Vec<&'a [u8]>,
    open_limit: Option<i32>,
    closing_type: Option<&'a str>,
}

impl<'a> AppendParams<'a> {
    fn new(batch: &'a AppendBatch, topic: &'a str) -> Self {
        let record = batch.idempotency.as_ref();
        let mut params = Self {
            caller_id: record.map(|r| r.caller_id.as_str()),
            key: record.map(|r| r.key.as_str()),
            request_hash: record.map(|r| r.request_hash.as_slice()),
            response_status: record.map(|r| r.response_status as i16),
            response_body: record.map(|r| r.response_body.as_slice()),
            key_expires_at: record.map(|r| r.expires_at),
            stream_ids: Vec::new(),
            expected: Vec::new(),
            new_versions: Vec::new(),
            event_streams: Vec::new(),
            event_versions: Vec::new(),
            event_ids: Vec::new(),
            event_types: Vec::new(),
            schema_versions: Vec::new(),
            payloads: Vec::new(),
            metadata: &batch.metadata,
            topic,
            outbox_keys: Vec::new(),
            outbox_payloads: Vec::new(),
            outbox_headers: Vec::new(),
            snapshot_streams: Vec::new(),
            snapshot_versions: Vec::new(),
            snapshot_schemas: Vec::new(),
            snapshot_states: Vec::new(),
            open_limit: batch.open_limit.map(|limit| limit.max_open.min(i32::MAX as u32) as i32),
            closing_type: batch.open_limit.map(|limit| limit.closing_event_type),
        };
        // Streams in id order, as the function moves them in the order
        // given; events in the caller's order, which is their global order.
        let mut streams: Vec<&StreamAppend> = batch.streams.iter().collect();
        streams.sort_by_key(|s| s.stream_id);
        for stream in streams {
            params.stream_ids.push(stream.stream_id);
            params.expected.push(stream.expected_version as i64);
            params.new_versions.push((stream.expected_version + stream.events.len() as u64) as i64);
        }
        for stream in &batch.streams {
            for (i, event) in stream.events.iter().enumerate() {
                params.event_streams.push(stream.stream_id);
                params.event_versions.push((stream.expected_version + 1 + i as u64) as i64);
                params.event_ids.push(event.event_id);
                params.event_types.push(&event.event_type);
                params.schema_versions.push(event.schema_version as i16);
                params.payloads.push(&event.payload);
            }
            // The envelope is what the publisher sends: built here, once.
            for message in outbox_messages(stream, &batch.metadata) {
                params.outbox_keys.push(message.key);
                params.outbox_payloads.push(message.payload);
                params.outbox_headers.push(headers_to_json(&message.headers));
            }
            if let Some(snapshot) = &stream.snapshot {
                params.snapshot_streams.push(stream.stream_id);
                params.snapshot_versions.push(snapshot.version as i64);
                params.snapshot_schemas.push(snapshot.schema_version as i16);
                params.snapshot_states.push(&snapshot.state);
            }
        }
        params
    }

    fn as_sql(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 29] {
        let EventMetadata { correlation_id, causation_id, actor, recorded_at } = self.metadata;
        [
            &self.caller_id,
            &self.key,
            &self.request_hash,
            &self.response_status,
            &self.response_body,
            &self.key_expires_at,
            &self.stream_ids,
            &self.expected,
            &self.new_versions,
            &self.event_streams,
            &self.event_versions,
            &self.event_ids,
            &self.event_types,
            &self.schema_versions,
            &self.payloads,
            correlation_id,
            causation_id,
            actor,
            recorded_at,
            &self.topic,
            &self.outbox_keys,
            &self.outbox_payloads,
            &self.outbox_headers,
            &self.snapshot_streams,
            &self.snapshot_versions,
            &self.snapshot_schemas,
            &self.snapshot_states,
            &self.open_limit,
            &self.closing_type,
        ]
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
