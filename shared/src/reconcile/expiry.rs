//! The expiry sweep: records the expiry of every hold past its
//! `expires_at` as an event in its account's history.
//!
//! Expiry itself needs no sweep: a hold stops counting at its `expires_at`
//! in every decision and every read, because both compare against the clock.
//! The sweep is what makes the event log alone tell every hold's fate: it
//! runs with every reconcile pass (deployed each minute, under `serve` every
//! `LEDGERLINE_RECONCILE_INTERVAL_MS`, in embedded mode every second), so an
//! expiry is recorded within two minutes.
//!
//! It finds the holds to record through the read model's sparse index of
//! active holds by expiry ([`ReadModelStore::due_holds`]), then, per
//! account, decides [`AccountCommand::ExpireHolds`] on the account as the
//! event store has it and appends the result, like any command (optimistic
//! concurrency: a conflict decides again). A hold the read model has not
//! seen placed yet is found by the next run, after the projector or the
//! reconciler has caught up; one whose end the read model has not seen yet
//! decides to nothing (the event store already ended it).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::accounts::{AccountRepository, RepositoryError};
use crate::domain::{AccountCommand, decide};
use crate::event_store::{EventMetadata, EventStore, StoreError};
use crate::read_model::ReadModelStore;

/// How many due holds one run takes on (the rest go with the next run).
pub const SWEEP_LIMIT: usize = 500;

/// An account's expiries are appended in at most this many attempts.
const ATTEMPTS: u32 = 5;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryReport {
    /// Accounts with holds due, according to the read model.
    pub accounts_due: u64,
    /// Expiries recorded (events appended).
    pub holds_expired: u64,
    /// Accounts whose expiries could not be recorded this time (the next run tries again).
    pub failed: u64,
}

/// Records the expiry of the holds due at `at`, up to [`SWEEP_LIMIT`] of them.
pub async fn expire_due_holds(
    event_store: Arc<dyn EventStore>,
    read_model: &dyn ReadModelStore,
    at: DateTime<Utc>,
) -> Result<ExpiryReport, crate::read_model::ReadModelError> {
    let due = read_model.due_holds(at, SWEEP_LIMIT).await?;
    let accounts: BTreeSet<Uuid> = due.into_iter().map(|(account, _)| account).collect();
    // No snapshots from the sweep: they are only a cache, and the account's
    // next command takes one at the usual interval.
    let repository = AccountRepository::new(event_store, 0);
    let mut report = ExpiryReport { accounts_due: accounts.len() as u64, ..ExpiryReport::default() };
    for account_id in accounts {
        match expire_on(&repository, account_id, at).await {
            Ok(expired) => report.holds_expired += expired,
            Err(error) => {
                tracing::warn!(%account_id, %error, "could not record hold expiries; the next run tries again");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// Appends the expiries due on one account; how many.
async fn expire_on(repository: &AccountRepository, account_id: Uuid, at: DateTime<Utc>) -> Result<u64, RepositoryError> {
    for _ in 0..ATTEMPTS {
        let Some(account) = repository.load(account_id).await? else { return Ok(0) };
        let events = decide(Some(&account), &AccountCommand::ExpireHolds, at).unwrap_or_default();
        if events.is_empty() {
            return Ok(0);
        }
        let count = events.len() as u64;
        let change = repository.stage(account_id, Some(&account), &events)?;
        let metadata = EventMetadata::now(format!("hold-expiry-{account_id}"), Uuid::now_v7(), "ledgerline-expiry-sweep");
        match repository.commit(vec![change], metadata, None).await {
            Ok(_) => {
                tracing::info!(%account_id, expired = count, "recorded hold expiries");
                return Ok(count);
            }
            Err(RepositoryError::Store(StoreError::ConcurrencyConflict { .. } | StoreError::Transient(_))) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(RepositoryError::Store(StoreError::Transient(format!("the account kept changing over {ATTEMPTS} attempts"))))
}
