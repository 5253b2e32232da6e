//! Applying a Kafka batch to the read model.
//!
//! Lambda delivers records at least once, in order per partition, and
//! retries whole batches; so every write is conditional on the version
//! before it (see `ReadModelStore::apply`):
//!
//! - version ≤ stored: a duplicate or replay. Skipped and counted.
//! - version = stored + 1: applied.
//! - version > stored + 1: a gap. It is never skipped. The projector fills it
//!   by reading the missing events from the PostgreSQL event store
//!   (read-only) and applying them first: the event store is the source of
//!   truth, so this heals a gap whatever caused it (a record still in
//!   another partition's backlog, or lost upstream). When the event store
//!   is not configured or cannot be reached, the record and every later
//!   record of its partition are reported as failed, and Lambda retries
//!   them; by then the missing event has usually arrived.
//!
//! One account's records in a partition are written as runs: one
//! conditional account write with all their history rows
//! (`ReadModelStore::apply_run`), so a batch costs about one write per
//! account, not per event. A run the read model refuses (most often a
//! redelivered batch) costs one read of the stored version: what the
//! account already has is skipped and the rest written as a run if it
//! follows; otherwise the change-by-change rules above apply. A batch's
//! partitions are projected at the same time.
//!
//! Poison records go to the dead-letter topic and are skipped. After the
//! writes, each touched account's new view is put into Redis, newest version
//! wins; Redis being down is logged and counted, never a failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use futures_util::future::join_all;
use ledgerline_shared::accounts::codec::EventCodec;
use ledgerline_shared::cache::AccountCache;
use ledgerline_shared::event_store::EventStore;
use ledgerline_shared::read_model::{AccountView, ApplyOutcome, Change, ReadModelError, ReadModelStore, change_for};
use ledgerline_shared::reconcile::{ReconcileError, catch_up};
use serde::Serialize;
use thiserror::Error;
use uuid::Uuid;

use crate::batch::KafkaBatchResponse;
use crate::dead_letter::{DeadLetter, DeadLetterSink, DeadLetterSource};
use crate::decode::{decode, partition_name};

/// What one batch did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub applied: u64,
    pub duplicates: u64,
    /// Events read from the event store to fill gaps.
    pub gap_events_filled: u64,
    pub dead_lettered: u64,
    /// Records reported back to Lambda for a retry.
    pub failed: u64,
    pub cache_refreshed: u64,
    pub cache_errors: u64,
}

impl BatchSummary {
    /// Adds another part's counts (a partition's, projected on its own).
    fn add(&mut self, other: &Self) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.gap_events_filled += other.gap_events_filled;
        self.dead_lettered += other.dead_lettered;
        self.failed += other.failed;
        self.cache_refreshed += other.cache_refreshed;
        self.cache_errors += other.cache_errors;
    }
}

/// The accounts a batch wrote, each with its view as written when the
/// write returned it (a run), or `None` when it must be read back.
type Touched = BTreeMap<Uuid, Option<AccountView>>;

/// The most changes of one account written at once (a batch holds 100
/// records at most; this bounds the work lost to a failed run).
const RUN_LIMIT: usize = 50;

pub struct Projector {
    read_model: Arc<dyn ReadModelStore>,
    cache: Option<Arc<AccountCache>>,
    event_store: Option<Arc<dyn EventStore>>,
    dead_letters: Arc<dyn DeadLetterSink>,
    codec: EventCodec,
}

#[derive(Debug, Error)]
enum RecordError {
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error("gap before version {version} of {account_id}: {reason}")]
    UnfilledGap { account_id: Uuid, version: u64, reason: String },
    #[error("{0}")]
    DeadLetter(String),
}

impl Projector {
    pub fn new(
        read_model: Arc<dyn ReadModelStore>,
        cache: Option<Arc<AccountCache>>,
        event_store: Option<Arc<dyn EventStore>>,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Self {
        Self { read_model, cache, event_store, dead_letters, codec: EventCodec::current() }
    }

    pub async fn handle(&self, event: KafkaEvent) -> (KafkaBatchResponse, BatchSummary) {
        let mut response = KafkaBatchResponse::default();
        let mut summary = BatchSummary::default();
        let mut touched = Touched::new();
        // Partitions in a stable order; records in offset order within each.
        let mut partitions: Vec<(String, Vec<KafkaRecord>)> = event.records.into_iter().collect();
        partitions.sort_by(|a, b| a.0.cmp(&b.0));
        // Partitions are independent (an account's records share one), so
        // they are projected at the same time: a batch waits for its slowest
        // partition, not for the sum of them.
        let projected = join_all(partitions.iter_mut().map(|(_, records)| async move {
            records.sort_by_key(|r| r.offset);
            let mut part = (BatchSummary::default(), Touched::new());
            // The read model's version of each account, as learnt in this
            // batch: a record at or below it is a duplicate, skipped without
            // a write (a redelivered backlog costs one write per account).
            let mut known = HashMap::new();
            let failed_from = self.project_partition(records, &mut part.0, &mut part.1, &mut known).await;
            (failed_from, part)
        }))
        .await;
        for ((_, records), (failed_from, (part_summary, part_touched))) in partitions.iter().zip(projected) {
            summary.add(&part_summary);
            for (account_id, view) in part_touched {
                // An account in two partitions (a re-keyed topic): read it back.
                touched.entry(account_id).and_modify(|seen| *seen = None).or_insert(view);
            }
            // Everything from the first failure on in this partition is
            // retried (records of other accounts after it were applied and
            // will come back as duplicates).
            for record in records.iter().filter(|r| failed_from.is_some_and(|offset| r.offset >= offset)) {
                response.fail(&partition_name(record), record.offset);
                summary.failed += 1;
            }
        }
        self.refresh_cache(&touched, &mut summary).await;
        tracing::info!(?summary, failures = response.batch_item_failures.len(), "batch projected");
        (response, summary)
    }

    /// Projects one partition's records, account by account: each account's
    /// records in this partition become one run, written at once where the
    /// read model can (`ReadModelStore::apply_run`), else one by one.
    /// Returns the offset of the first record that failed, if any.
    async fn project_partition(
        &self,
        records: &[KafkaRecord],
        summary: &mut BatchSummary,
        touched: &mut Touched,
        known: &mut HashMap<Uuid, u64>,
    ) -> Option<i64> {
        let mut failed_from = None;
        // Accounts in the order they first appear; each one's records in offset order.
        let mut runs: Vec<(Uuid, Vec<(i64, Change)>)> = Vec::new();
        for record in records {
            match self.decode_or_dead_letter(record, summary).await {
                Ok(Some((account_id, version, change))) => {
                    debug_assert_eq!(change.version(), version);
                    match runs.iter_mut().find(|(id, _)| *id == account_id) {
                        Some((_, run)) => run.push((record.offset, change)),
                        None => runs.push((account_id, vec![(record.offset, change)])),
                    }
                }
                Ok(None) => {} // a poison record, dead-lettered
                Err(error) => {
                    tracing::warn!(partition = %partition_name(record), offset = record.offset, %error, "record failed; Lambda will retry it");
                    failed_from = Some(record.offset);
                    break; // the records before it are still projected
                }
            }
        }
        for (account_id, run) in runs {
            if let Err((offset, error)) = self.project_account(account_id, &run, summary, touched, known).await {
                tracing::warn!(%account_id, offset, %error, "record failed; Lambda will retry it");
                failed_from = Some(failed_from.map_or(offset, |o: i64| o.min(offset)));
            }
        }
        failed_from
    }

    /// Decodes a record; a poison one goes to the dead-letter topic (`None`).
    async fn decode_or_dead_letter(
        &self,
        record: &KafkaRecord,
        summary: &mut BatchSummary,
    ) -> Result<Option<(Uuid, u64, Change)>, RecordError> {
        match decode(record, &self.codec) {
            Ok((envelope, event)) => {
                Ok(Some((envelope.stream_id, envelope.version, change_for(envelope.stream_id, envelope.version, &event))))
            }
            Err(reason) => {
                let letter = DeadLetter {
                    error: reason.to_string(),
                    source: DeadLetterSource::KafkaRecord {
                        source_topic: record.topic.clone().unwrap_or_default(),
                        partition: record.partition,
                        offset: record.offset,
                        key: record.key.clone(),
                        value: record.value.clone(),
                    },
                };
                self.dead_letters.send(&letter).await.map_err(|e| RecordError::DeadLetter(e.to_string()))?;
                tracing::warn!(partition = %partition_name(record), offset = record.offset, %reason, "poison record sent to the dead-letter topic");
                summary.dead_lettered += 1;
                Ok(None)
            }
        }
    }

    /// One account's records of a partition, in order: runs of up to
    /// [`RUN_LIMIT`] changes in one write each; a run that does not fit the
    /// stored version (a duplicate, a gap) goes change by change.
    async fn project_account(
        &self,
        account_id: Uuid,
        run: &[(i64, Change)],
        summary: &mut BatchSummary,
        touched: &mut Touched,
        known: &mut HashMap<Uuid, u64>,
    ) -> Result<(), (i64, RecordError)> {
        let fresh: Vec<&(i64, Change)> =
            run.iter().filter(|(_, change)| known.get(&account_id).is_none_or(|&at| change.version() > at)).collect();
        summary.duplicates += (run.len() - fresh.len()) as u64;
        for chunk in fresh.chunks(RUN_LIMIT) {
            let mut rest: &[&(i64, Change)] = chunk;
            if rest.len() > 1 {
                if self.try_run(account_id, rest, summary, touched, known).await? {
                    continue;
                }
                // The account is not where the run starts (most often a
                // redelivered batch): learn where it is with one read, skip
                // what it already has, and write the rest as a run if it
                // follows. A redelivery then costs a read per account, not
                // a failed write and a read per record.
                let stored = self.read_model.account(account_id, true).await.map_err(|e| (rest[0].0, e.into()))?.map_or(0, |v| v.version);
                known.insert(account_id, stored);
                let skipped = rest.iter().take_while(|(_, change)| change.version() <= stored).count();
                summary.duplicates += skipped as u64;
                rest = &rest[skipped..];
                if rest.len() > 1 && rest[0].1.version() == stored + 1 && self.try_run(account_id, rest, summary, touched, known).await? {
                    continue;
                }
            }
            for (offset, change) in rest {
                if known.get(&account_id).is_some_and(|&at| change.version() <= at) {
                    summary.duplicates += 1;
                    continue;
                }
                self.project_change(change, summary, touched, known).await.map_err(|error| (*offset, error))?;
            }
        }
        Ok(())
    }

    /// Writes `run` (consecutive changes of one account) at once if the
    /// account is right before it; `false` when nothing was written.
    async fn try_run(
        &self,
        account_id: Uuid,
        run: &[&(i64, Change)],
        summary: &mut BatchSummary,
        touched: &mut Touched,
        known: &mut HashMap<Uuid, u64>,
    ) -> Result<bool, (i64, RecordError)> {
        let changes: Vec<Change> = run.iter().map(|(_, change)| change.clone()).collect();
        match self.read_model.apply_run(&changes).await {
            Ok(Some(view)) => {
                summary.applied += changes.len() as u64;
                touched.insert(account_id, Some(view));
                known.insert(account_id, changes.last().expect("a run is not empty").version());
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(error) => Err((run[0].0, error.into())),
        }
    }

    /// Applies one change: a duplicate is counted, a gap filled first.
    async fn project_change(
        &self,
        change: &Change,
        summary: &mut BatchSummary,
        touched: &mut Touched,
        known: &mut HashMap<Uuid, u64>,
    ) -> Result<(), RecordError> {
        let (account_id, version) = (change.account_id(), change.version());
        match self.read_model.apply(change).await? {
            ApplyOutcome::Applied => {
                summary.applied += 1;
                touched.insert(account_id, None);
                known.insert(account_id, version);
            }
            ApplyOutcome::Duplicate { stored } => {
                summary.duplicates += 1;
                known.insert(account_id, stored);
            }
            ApplyOutcome::Gap { stored } => {
                self.fill_gap(account_id, stored, version, summary).await?;
                match self.read_model.apply(change).await? {
                    ApplyOutcome::Applied => summary.applied += 1,
                    ApplyOutcome::Duplicate { .. } => summary.duplicates += 1,
                    ApplyOutcome::Gap { stored } => {
                        return Err(RecordError::UnfilledGap {
                            account_id,
                            version,
                            reason: format!("still at version {stored} after filling"),
                        });
                    }
                }
                touched.insert(account_id, None);
                known.insert(account_id, version);
            }
        }
        Ok(())
    }

    /// Applies versions `stored + 1 .. before` of one account from the event
    /// store (the same catch-up reconciliation uses).
    async fn fill_gap(&self, account_id: Uuid, stored: u64, before: u64, summary: &mut BatchSummary) -> Result<(), RecordError> {
        let unfilled = |reason: String| RecordError::UnfilledGap { account_id, version: before, reason };
        let store = self.event_store.as_ref().ok_or_else(|| unfilled("no event store to fill it from".into()))?;
        let view = self.read_model.account(account_id, true).await?.filter(|v| v.version == stored);
        let filled =
            catch_up(store.as_ref(), self.read_model.as_ref(), account_id, view.as_ref(), Some(before)).await.map_err(|e| match e {
                ReconcileError::ReadModel(e) => RecordError::ReadModel(e),
                other => unfilled(other.to_string()),
            })?;
        summary.gap_events_filled += filled;
        tracing::info!(%account_id, from = stored + 1, to = before - 1, "filled a gap from the event store");
        Ok(())
    }

    /// Puts each touched account's latest view into Redis (newest wins).
    async fn refresh_cache(&self, touched: &Touched, summary: &mut BatchSummary) {
        let Some(cache) = &self.cache else { return };
        if touched.is_empty() {
            return;
        }
        // A run's write returned the account as written; the others are
        // read back, strongly consistent, in one read for the whole batch
        // (a BatchGetItem per 100 accounts, not a call each).
        let mut views: Vec<AccountView> = touched.values().flatten().cloned().collect();
        let unread: Vec<Uuid> = touched.iter().filter(|(_, view)| view.is_none()).map(|(id, _)| *id).collect();
        if !unread.is_empty() {
            match self.read_model.accounts(&unread).await {
                Ok(read) => views.extend(read),
                Err(error) => {
                    tracing::warn!(accounts = unread.len(), %error, "cannot read the views to cache them");
                    summary.cache_errors += unread.len() as u64;
                }
            }
        }
        for view in &views {
            match cache.put_if_newer(view).await {
                Ok(_) => summary.cache_refreshed += 1,
                Err(error) => {
                    // The cache is an optimisation: the batch still succeeds.
                    // One failure is enough to know Redis is away; do not pay
                    // its timeout for every other account.
                    let skipped = views.len() as u64 - summary.cache_refreshed;
                    tracing::warn!(account_id = %view.account_id, %error, skipped, "cache refresh failed; skipping the rest of this batch");
                    summary.cache_errors += skipped;
                    return;
                }
            }
        }
    }
}
