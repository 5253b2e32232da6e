//! What every request shares: built once per Lambda container.

use std::sync::Arc;

use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::WriteSettings;
use ledgerline_shared::event_store::EventStore;

/// Settings of the command pipeline itself.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// How long an idempotency record is kept.
    pub idempotency_ttl: chrono::Duration,
    /// How many times a command is re-decided after a concurrency conflict
    /// before answering 409.
    pub max_attempts: u32,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self { idempotency_ttl: chrono::Duration::hours(24), max_attempts: 8 }
    }
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    repository: AccountRepository,
    settings: CommandSettings,
}

impl AppState {
    pub fn new(store: Arc<dyn EventStore>, write: &WriteSettings) -> Self {
        let settings = CommandSettings { idempotency_ttl: write.idempotency_ttl, ..CommandSettings::default() };
        Self::with_settings(AccountRepository::new(store, write.snapshot_every), settings)
    }

    pub fn with_settings(repository: AccountRepository, settings: CommandSettings) -> Self {
        Self { inner: Arc::new(Inner { repository, settings }) }
    }

    pub fn repository(&self) -> &AccountRepository {
        &self.inner.repository
    }

    pub fn settings(&self) -> &CommandSettings {
        &self.inner.settings
    }
}
