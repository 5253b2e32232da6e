//! Reconciliation: the read side repaired from the event store.
//!
//! The projector keeps the read model current from Kafka, but a batch can be
//! given up on (DynamoDB down longer than the event source retries), a
//! broker can lose or hold back records, a function can die mid-batch. The
//! event store is the source of truth, so whatever went wrong, comparing it
//! with the read model and applying what is missing repairs it. This module
//! is that comparison, in three shapes:
//!
//! - [`Reconciler::pass`], on a schedule (the `reconciler` function; `serve`
//!   runs it too): checks the streams changed since the previous pass, plus
//!   one page of a slow sweep over every stream. Cheap when nothing is
//!   wrong: one index range read in PostgreSQL and one batched read of
//!   DynamoDB per page of changed accounts.
//! - [`Reconciler::sweep`] (`ledgerline reconcile --full`): every stream.
//! - [`Reconciler::rebuild`] (`ledgerline rebuild-projections`): every
//!   account rewritten from its whole history, in place.
//!
//! Every write is [`ReadModelStore::replace`], which never moves an account
//! backwards and rewrites history rows whose content the events fix, so all
//! of this is idempotent and safe to run beside the projector.
//!
//! Why streams by `updated_at` and not events by global position: a
//! position is assigned when a row is inserted, not when its transaction
//! commits, so "everything after position p" can miss an event that commits
//! late. `updated_at` has the same weakness (it is the transaction's start),
//! which is why each pass looks again `overlap` before the newest change it
//! saw; the event store's sessions have a `statement_timeout` and an
//! `idle_in_transaction_session_timeout` that bound how late that can be, and
//! the sweep catches anything older.

pub mod expiry;
pub mod progress;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;
use tokio::time::Instant;
use uuid::Uuid;

pub use self::progress::{InMemoryProgress, PostgresProgress, Progress, ProgressStore};
use crate::accounts::codec::EventCodec;
use crate::event_store::{EventStore, HeadQuery, RecordedEvent, StoreError, StreamHead};
use crate::read_model::{AccountView, Folded, ReadModelError, ReadModelStore, change_for};

/// The progress record of scheduled passes.
pub const PASS_PROGRESS: &str = "reconcile";
/// The progress record of `rebuild-projections`.
pub const REBUILD_PROGRESS: &str = "rebuild";

#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("read model: {0}")]
    ReadModel(#[from] ReadModelError),
    #[error("event {event_id} cannot be decoded: {reason}")]
    Codec { event_id: Uuid, reason: String },
    #[error("version {version} of {account_id} lands on a gap at {stored}")]
    Gap { account_id: Uuid, version: u64, stored: u64 },
}

impl ReconcileError {
    /// A store is unreachable or throttling: nothing is wrong with the data,
    /// so the pass stops and the next one tries again.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Store(StoreError::Unavailable(_) | StoreError::Transient(_)) | Self::ReadModel(ReadModelError::Unavailable(_)))
    }
}

/// Where views go after a repair besides the read model: the Redis cache.
/// Failures are counted, never fatal (the cache is an optimisation).
#[async_trait]
pub trait ViewCache: Send + Sync + 'static {
    /// Puts `view` unless a newer version is cached.
    async fn refresh(&self, view: &AccountView) -> Result<(), String>;
    /// Puts `view` unless a strictly newer version is cached: a rebuild
    /// fixes content at the same version, which `refresh` would not
    /// replace. Writing it (rather than dropping the key) matters: with the
    /// key gone, a reader or projector that captured the old view before
    /// the rebuild could put it back at that version, and nothing would
    /// correct it until the TTL or the account's next event.
    async fn overwrite(&self, view: &AccountView) -> Result<(), String>;
}

#[cfg(feature = "redis")]
#[async_trait]
impl ViewCache for crate::cache::AccountCache {
    async fn refresh(&self, view: &AccountView) -> Result<(), String> {
        self.put_if_newer(view).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn overwrite(&self, view: &AccountView) -> Result<(), String> {
        self.put_unless_newer(view).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// How far before the newest change seen a pass looks again
    /// (`LEDGERLINE_RECONCILE_OVERLAP_MS`, 60 s).
    pub overlap: Duration,
    /// Streams read and compared at a time.
    pub page: usize,
    /// Streams of the slow sweep checked by each pass
    /// (`LEDGERLINE_RECONCILE_SWEEP_PAGE`, 1000).
    pub sweep_page: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self { overlap: Duration::from_secs(60), page: 500, sweep_page: 1000 }
    }
}

/// What a pass (or sweep) found and did: logged, printed and sent as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Accounts compared.
    pub checked: u64,
    /// Accounts whose read model was behind the event store.
    pub behind: u64,
    /// Of those, brought up to date.
    pub repaired: u64,
    /// Events applied to do it.
    pub events_applied: u64,
    /// How long the longest-behind account had waited, in milliseconds.
    pub oldest_lag_ms: u64,
    pub cache_refreshed: u64,
    pub cache_errors: u64,
    /// Accounts that could not be checked or repaired (an event that does
    /// not decode, a damaged item): logged, counted, passed over, so one
    /// bad account never stops the others being repaired.
    pub failed: u64,
    /// The failed accounts (the first 100) and why.
    pub failed_accounts: Vec<(Uuid, String)>,
    /// The repaired accounts (the first 100), for the operator.
    pub repaired_accounts: Vec<Uuid>,
    /// Whether the pass stopped at its deadline before it was done.
    pub incomplete: bool,
}

/// A rebuild's progress, after each page of streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildProgress {
    pub streams_done: u64,
    pub streams_total: u64,
    pub accounts_written: u64,
    pub events_replayed: u64,
}

pub struct Reconciler {
    pub event_store: Arc<dyn EventStore>,
    pub read_model: Arc<dyn ReadModelStore>,
    pub cache: Option<Arc<dyn ViewCache>>,
    pub progress: Arc<dyn ProgressStore>,
    pub settings: ReconcileSettings,
}

impl Reconciler {
    /// One scheduled pass: one page of the slow sweep, then the streams
    /// changed since the last pass (looking `overlap` further back). The
    /// sweep goes first so that a steady stream of changes can never starve
    /// it. Progress is saved after every page, so a pass cut short by
    /// `deadline` or an outage is simply continued by the next one.
    pub async fn pass(&self, deadline: Option<Instant>) -> Result<PassReport, ReconcileError> {
        let mut report = PassReport::default();
        let mut seen = HashSet::new();
        let mut progress = self.progress.load(PASS_PROGRESS).await?;

        let heads = self.event_store.stream_heads(HeadQuery::ById { after: progress.sweep_after, limit: self.settings.sweep_page }).await?;
        let checked = self.check(&heads, &mut report, &mut seen, deadline).await?;
        progress.sweep_after = if checked < heads.len() {
            // Cut short: go on after the last one checked.
            if checked == 0 { progress.sweep_after } else { Some(heads[checked - 1].stream_id) }
        } else if heads.len() < self.settings.sweep_page {
            None // the end of the streams: the next page starts from the first
        } else {
            heads.last().map(|h| h.stream_id)
        };
        self.progress.save(PASS_PROGRESS, progress).await?;

        let since = progress.changed_since.map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t - self.settings.overlap);
        let mut after = None;
        while !report.incomplete {
            let heads = self.event_store.stream_heads(HeadQuery::ChangedSince { since, after, limit: self.settings.page }).await?;
            let checked = self.check(&heads, &mut report, &mut seen, deadline).await?;
            if checked == 0 {
                break;
            }
            let last = heads[checked - 1];
            after = Some((last.updated_at, last.stream_id));
            progress.changed_since = progress.changed_since.max(Some(last.updated_at));
            self.progress.save(PASS_PROGRESS, progress).await?;
            if heads.len() < self.settings.page {
                break;
            }
        }
        Ok(report)
    }

    /// Records the expiry of the holds due at `at` ([`expiry`]): what every
    /// scheduled run does after its pass.
    pub async fn expire_due_holds(&self, at: DateTime<Utc>) -> Result<expiry::ExpiryReport, ReconcileError> {
        Ok(expiry::expire_due_holds(self.event_store.clone(), self.read_model.as_ref(), at).await?)
    }

    /// Every stream, compared and repaired (`ledgerline reconcile --full`).
    pub async fn sweep(&self) -> Result<PassReport, ReconcileError> {
        let mut report = PassReport::default();
        let mut after = None;
        loop {
            let heads = self.event_store.stream_heads(HeadQuery::ById { after, limit: self.settings.page }).await?;
            let Some(last) = heads.last() else { break };
            after = Some(last.stream_id);
            self.check(&heads, &mut report, &mut HashSet::new(), None).await?;
        }
        Ok(report)
    }

    /// Rewrites every account from its whole history ([`ReadModelStore::replace`]):
    /// for a new read model, a changed one, or rows lost by a faulty store.
    /// In place: readers keep seeing every account throughout, never an
    /// older version. Resumes after the last finished page unless `fresh`.
    pub async fn rebuild(&self, fresh: bool, mut on_progress: impl FnMut(RebuildProgress)) -> Result<RebuildProgress, ReconcileError> {
        let codec = EventCodec::current();
        let mut saved = if fresh { Progress::default() } else { self.progress.load(REBUILD_PROGRESS).await? };
        let mut state = RebuildProgress { streams_total: self.event_store.stream_count(None).await?, ..RebuildProgress::default() };
        if let Some(after) = saved.sweep_after {
            state.streams_done = self.event_store.stream_count(Some(after)).await?;
        }
        on_progress(state);
        loop {
            let heads = self.event_store.stream_heads(HeadQuery::ById { after: saved.sweep_after, limit: self.settings.page }).await?;
            let Some(last) = heads.last().copied() else { break };
            for head in &heads {
                let events = self.event_store.read_stream(head.stream_id, 0).await?;
                let fold = replay(head.stream_id, &events, &codec)?;
                let Some(view) = &fold.view else { continue };
                state.events_replayed += events.len() as u64;
                if self.read_model.replace(view, &fold.rows, &fold.holds).await? {
                    state.accounts_written += 1;
                }
                if let Some(cache) = &self.cache {
                    // The cache may hold the old content at the same version,
                    // which a refresh (newest wins) would keep: overwrite it
                    // (see `ViewCache::overwrite` for why not evict).
                    if let Err(error) = cache.overwrite(view).await {
                        tracing::warn!(account_id = %head.stream_id, %error, "could not overwrite the cached view");
                    }
                }
            }
            state.streams_done += heads.len() as u64;
            state.streams_total = state.streams_total.max(state.streams_done);
            saved.sweep_after = Some(last.stream_id);
            self.progress.save(REBUILD_PROGRESS, saved).await?;
            on_progress(state);
        }
        // Done: the next rebuild starts from the beginning.
        self.progress.save(REBUILD_PROGRESS, Progress::default()).await?;
        Ok(state)
    }

    /// Compares a page of stream heads with the read model, repairs the
    /// accounts that are behind and refreshes the cache with what is
    /// stored. Returns how many heads it got through before `deadline`
    /// (all of them, or fewer with `report.incomplete` set).
    ///
    /// An outage (a store unavailable) ends the pass with an error: the next
    /// pass tries again. Anything else wrong with one account is recorded in
    /// the report and passed over.
    /// `seen` holds the accounts this pass already checked: each is checked
    /// (and counted) once.
    async fn check(
        &self,
        heads: &[StreamHead],
        report: &mut PassReport,
        seen: &mut HashSet<Uuid>,
        deadline: Option<Instant>,
    ) -> Result<usize, ReconcileError> {
        if heads.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = heads.iter().map(|h| h.stream_id).collect();
        let stored: HashMap<Uuid, AccountView> = self.read_model.accounts(&ids).await?.into_iter().map(|v| (v.account_id, v)).collect();
        let now = Utc::now();
        let mut cache_down = false;
        for (done, head) in heads.iter().enumerate() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report.incomplete = true;
                return Ok(done);
            }
            if !seen.insert(head.stream_id) {
                continue;
            }
            report.checked += 1;
            let mut view = stored.get(&head.stream_id).cloned();
            let at = view.as_ref().map_or(0, |v| v.version);
            if at < head.version {
                report.behind += 1;
                let lag = (now - head.updated_at).num_milliseconds().max(0) as u64;
                report.oldest_lag_ms = report.oldest_lag_ms.max(lag);
                match catch_up(self.event_store.as_ref(), self.read_model.as_ref(), head.stream_id, view.as_ref(), None).await {
                    Ok(applied) => {
                        report.events_applied += applied;
                        report.repaired += 1;
                        if report.repaired_accounts.len() < 100 {
                            report.repaired_accounts.push(head.stream_id);
                        }
                        tracing::info!(account_id = %head.stream_id, from = at, to = head.version, applied, lag_ms = lag, "repaired a read-model account from the event store");
                        view = self.read_model.account(head.stream_id, true).await?;
                    }
                    Err(error) if error.is_outage() => return Err(error),
                    Err(error) => {
                        tracing::error!(account_id = %head.stream_id, %error, "cannot repair this account; passing over it");
                        report.failed += 1;
                        if report.failed_accounts.len() < 100 {
                            report.failed_accounts.push((head.stream_id, error.to_string()));
                        }
                        continue;
                    }
                }
            }
            // A cache refresh the projector could not make (Redis was down)
            // is made here: newest version wins, so this never goes back.
            if let (Some(cache), Some(view), false) = (&self.cache, &view, cache_down) {
                match cache.refresh(view).await {
                    Ok(()) => report.cache_refreshed += 1,
                    Err(error) => {
                        tracing::warn!(%error, "cache refresh failed; skipping the cache for the rest of this page");
                        report.cache_errors += 1;
                        cache_down = true;
                    }
                }
            }
        }
        Ok(heads.len())
    }
}

/// Brings `account_id` from `stored` (its view in the read model, `None`
/// when it has none) up to the event store: the events after it (and
/// before `before`, when given) are folded onto it and written with
/// [`ReadModelStore::replace`]: their history rows in batches, then the
/// account, unless the stored one has meanwhile moved further. A handful
/// of requests however far behind the account is (one conditional write
/// per event would take minutes for thousands). Returns how many events
/// it folded in.
pub async fn catch_up(
    event_store: &dyn EventStore,
    read_model: &dyn ReadModelStore,
    account_id: Uuid,
    stored: Option<&AccountView>,
    before: Option<u64>,
) -> Result<u64, ReconcileError> {
    let codec = EventCodec::current();
    let from = stored.map_or(0, |v| v.version);
    let missing = event_store.read_stream(account_id, from).await?;
    let mut fold = Folded::from(stored.cloned());
    let mut folded = 0;
    for recorded in missing.iter().take_while(|e| before.is_none_or(|b| e.version < b)) {
        let event = codec
            .decode(&recorded.event_type, recorded.schema_version, &recorded.payload)
            .map_err(|e| ReconcileError::Codec { event_id: recorded.event_id, reason: e.to_string() })?;
        if !fold.push(change_for(account_id, recorded.version, &event)) {
            return Err(ReconcileError::Gap { account_id, version: recorded.version, stored: from });
        }
        folded += 1;
    }
    if let Some(view) = fold.view.as_ref().filter(|_| folded > 0) {
        read_model.replace(view, &fold.rows, &fold.holds).await?;
    }
    Ok(folded)
}

/// An account's view and movement rows after all of `events` (its whole
/// history, in version order).
pub fn replay(account_id: Uuid, events: &[RecordedEvent], codec: &EventCodec) -> Result<Folded, ReconcileError> {
    let mut fold = Folded::default();
    for recorded in events {
        let event = codec
            .decode(&recorded.event_type, recorded.schema_version, &recorded.payload)
            .map_err(|e| ReconcileError::Codec { event_id: recorded.event_id, reason: e.to_string() })?;
        if !fold.push(change_for(account_id, recorded.version, &event)) {
            fold.view = None; // a history that does not start with an opening has no view
        }
    }
    Ok(fold)
}
