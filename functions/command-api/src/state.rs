//! What every request shares: built once per Lambda container.

use std::sync::Arc;

use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::WriteSettings;
use ledgerline_shared::event_store::EventStore;

use crate::contended::ContendedAccounts;

/// Settings of the command pipeline itself.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// How long an idempotency record is kept.
    pub idempotency_ttl: chrono::Duration,
    /// How many times a command is decided in all when conflicts keep
    /// coming, before answering 409. Attempts after the first lock the
    /// accounts, so a plain conflict takes two.
    pub max_attempts: u32,
    /// Lock the accounts on the first attempt too, always (for comparing
    /// the shapes in `command_bench`). Without it, a command locks first
    /// only on accounts that conflicted lately ([`ContendedAccounts`]).
    pub lock_first: bool,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self { idempotency_ttl: chrono::Duration::hours(24), max_attempts: 8, lock_first: false }
    }
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    repository: AccountRepository,
    settings: CommandSettings,
    contended: ContendedAccounts,
}

impl AppState {
    pub fn new(store: Arc<dyn EventStore>, write: &WriteSettings) -> Self {
        let settings = CommandSettings { idempotency_ttl: write.idempotency_ttl, ..CommandSettings::default() };
        let repository = AccountRepository::new(store, write.snapshot_every).with_open_account_limit(write.max_open_accounts);
        Self::with_settings(repository, settings)
    }

    pub fn with_settings(repository: AccountRepository, settings: CommandSettings) -> Self {
        Self { inner: Arc::new(Inner { repository, settings, contended: ContendedAccounts::default() }) }
    }

    pub fn repository(&self) -> &AccountRepository {
        &self.inner.repository
    }

    pub fn settings(&self) -> &CommandSettings {
        &self.inner.settings
    }

    /// The accounts this container saw conflict lately.
    pub fn contended(&self) -> &ContendedAccounts {
        &self.inner.contended
    }
}
