//! Where reconciliation and rebuilds are, so the next pass (or an
//! interrupted rebuild) goes on from there: the `read_model_progress` table,
//! or memory for the embedded mode and tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::event_store::{StoreError, map_pg_error};

/// One named progress record (see migrations/V4__reconciliation.sql).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The newest stream change a reconcile pass has checked.
    pub changed_since: Option<DateTime<Utc>>,
    /// The last stream id a sweep or rebuild finished; `None`: from the start.
    pub sweep_after: Option<Uuid>,
}

#[async_trait]
pub trait ProgressStore: Send + Sync + 'static {
    async fn load(&self, name: &str) -> Result<Progress, StoreError>;
    async fn save(&self, name: &str, progress: Progress) -> Result<(), StoreError>;
}

/// Progress in the event store's database.
pub struct PostgresProgress {
    pool: Pool,
}

impl PostgresProgress {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ProgressStore for PostgresProgress {
    async fn load(&self, name: &str) -> Result<Progress, StoreError> {
        let client = self.pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let row = client
            .query_opt("SELECT changed_since, sweep_after FROM read_model_progress WHERE name = $1", &[&name])
            .await
            .map_err(map_pg_error)?;
        Ok(row.map_or_else(Progress::default, |row| Progress { changed_since: row.get(0), sweep_after: row.get(1) }))
    }

    async fn save(&self, name: &str, progress: Progress) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        client
            .execute(
                "INSERT INTO read_model_progress (name, changed_since, sweep_after) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET changed_since = EXCLUDED.changed_since, \
                   sweep_after = EXCLUDED.sweep_after, updated_at = now()",
                &[&name, &progress.changed_since, &progress.sweep_after],
            )
            .await
            .map_err(map_pg_error)?;
        Ok(())
    }
}

/// Progress in memory (embedded mode, tests).
#[derive(Default)]
pub struct InMemoryProgress {
    records: Mutex<HashMap<String, Progress>>,
}

#[async_trait]
impl ProgressStore for InMemoryProgress {
    async fn load(&self, name: &str) -> Result<Progress, StoreError> {
        Ok(self.records.lock().unwrap_or_else(|p| p.into_inner()).get(name).copied().unwrap_or_default())
    }

    async fn save(&self, name: &str, progress: Progress) -> Result<(), StoreError> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), progress);
        Ok(())
    }
}
