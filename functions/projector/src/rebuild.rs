//! Rebuilding the read model from the event store.
//!
//! It is how a new read model or a schema change goes live: empty the
//! tables and the cache, then replay every event in global order. The
//! position reached is saved after each page in `projection_checkpoints`,
//! so an interrupted rebuild resumes where it stopped (`fresh = false`);
//! re-applying a page is harmless because every write is conditional on the
//! version.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use ledgerline_shared::accounts::codec::EventCodec;
use ledgerline_shared::cache::AccountCache;
use ledgerline_shared::event_store::EventStore;
use ledgerline_shared::read_model::{ApplyOutcome, ReadModelStore, change_for};
use thiserror::Error;

/// The checkpoint name of the account read model's rebuild.
pub const CHECKPOINT: &str = "account-read-model";

const PAGE: usize = 500;

#[derive(Debug, Error)]
pub enum RebuildError {
    #[error("event store: {0}")]
    Store(#[from] ledgerline_shared::event_store::StoreError),
    #[error("read model: {0}")]
    ReadModel(#[from] ledgerline_shared::read_model::ReadModelError),
    #[error("event {event_id} cannot be decoded: {reason}")]
    Codec { event_id: uuid::Uuid, reason: String },
    #[error("event {event_id} (version {version} of {account_id}) lands on a gap at {stored}")]
    Gap { event_id: uuid::Uuid, account_id: uuid::Uuid, version: u64, stored: u64 },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("cache: {0}")]
    Cache(#[from] ledgerline_shared::cache::CacheError),
}

/// Where a rebuild's position is kept.
#[async_trait]
pub trait Checkpoints: Send + Sync {
    async fn load(&self, name: &str) -> Result<Option<i64>, RebuildError>;
    async fn save(&self, name: &str, position: i64) -> Result<(), RebuildError>;
}

/// Checkpoints in the event store's database.
pub struct PostgresCheckpoints {
    pool: Pool,
}

impl PostgresCheckpoints {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Checkpoints for PostgresCheckpoints {
    async fn load(&self, name: &str) -> Result<Option<i64>, RebuildError> {
        let client = self.pool.get().await.map_err(|e| RebuildError::Checkpoint(e.to_string()))?;
        let row = client
            .query_opt("SELECT position FROM projection_checkpoints WHERE name = $1", &[&name])
            .await
            .map_err(|e| RebuildError::Checkpoint(e.to_string()))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn save(&self, name: &str, position: i64) -> Result<(), RebuildError> {
        let client = self.pool.get().await.map_err(|e| RebuildError::Checkpoint(e.to_string()))?;
        client
            .execute(
                "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
                &[&name, &position],
            )
            .await
            .map_err(|e| RebuildError::Checkpoint(e.to_string()))?;
        Ok(())
    }
}

/// Checkpoints in memory (embedded mode, tests).
#[derive(Default)]
pub struct InMemoryCheckpoints {
    positions: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

#[async_trait]
impl Checkpoints for InMemoryCheckpoints {
    async fn load(&self, name: &str) -> Result<Option<i64>, RebuildError> {
        Ok(self.positions.lock().unwrap_or_else(|p| p.into_inner()).get(name).copied())
    }

    async fn save(&self, name: &str, position: i64) -> Result<(), RebuildError> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), position);
        Ok(())
    }
}

/// Progress after each page: events read so far and the newest position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub position: i64,
    pub head: i64,
    pub applied: u64,
    pub skipped: u64,
}

pub struct Rebuild {
    pub event_store: Arc<dyn EventStore>,
    pub read_model: Arc<dyn ReadModelStore>,
    pub cache: Option<Arc<AccountCache>>,
    pub checkpoints: Arc<dyn Checkpoints>,
}

impl Rebuild {
    /// Replays the event log into the read model. With `fresh`, or when no
    /// rebuild was ever started, the tables and the cache are emptied first;
    /// otherwise it resumes from the saved position.
    pub async fn run(&self, fresh: bool, mut on_progress: impl FnMut(Progress)) -> Result<Progress, RebuildError> {
        let saved = if fresh { None } else { self.checkpoints.load(CHECKPOINT).await? };
        let mut position = match saved {
            Some(position) => position,
            None => {
                self.read_model.clear().await?;
                if let Some(cache) = &self.cache {
                    cache.clear().await?;
                }
                self.checkpoints.save(CHECKPOINT, 0).await?;
                0
            }
        };
        let codec = EventCodec::current();
        let head = self.event_store.head_position().await?;
        let mut progress = Progress { position, head, applied: 0, skipped: 0 };
        on_progress(progress);
        loop {
            let page = self.event_store.read_all(position, PAGE).await?;
            let Some(last) = page.last() else { break };
            let last_position = last.global_position;
            for recorded in &page {
                let event = codec
                    .decode(&recorded.event_type, recorded.schema_version, &recorded.payload)
                    .map_err(|e| RebuildError::Codec { event_id: recorded.event_id, reason: e.to_string() })?;
                match self.read_model.apply(&change_for(recorded.stream_id, recorded.version, &event)).await? {
                    ApplyOutcome::Applied => progress.applied += 1,
                    ApplyOutcome::Duplicate { .. } => progress.skipped += 1,
                    ApplyOutcome::Gap { stored } => {
                        return Err(RebuildError::Gap {
                            event_id: recorded.event_id,
                            account_id: recorded.stream_id,
                            version: recorded.version,
                            stored,
                        });
                    }
                }
            }
            position = last_position;
            self.checkpoints.save(CHECKPOINT, position).await?;
            progress.position = position;
            progress.head = progress.head.max(position);
            on_progress(progress);
        }
        Ok(progress)
    }
}
