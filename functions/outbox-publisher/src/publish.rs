//! The publishing loop.
//!
//! One run: claim a batch under the publisher lock, put every record in
//! flight at once, wait for the broker's answers, record the outcomes (which
//! releases the lock), and go again until the outbox is drained, the Lambda
//! deadline is near, the broker is failing, or another publisher took the
//! lock. Then report. (Acknowledged rows leave the outbox as their batch
//! completes: there is nothing to prune.)
//!
//! With `run_for` set, a drained outbox (or a busy lock, or a failing
//! broker) does not end the run: it looks again every `poll_interval` until
//! `run_for` has passed, so a new row waits for a poll, not for the next
//! schedule. The schedule starts a run before the last one ends (see
//! template.yaml), so one publisher is always live; the lock keeps two from
//! publishing at once. Why polling and not LISTEN/NOTIFY: a transaction
//! that sends NOTIFY takes a database-wide lock at commit, which would
//! serialize every command's commit (docs/OUTBOX.md).
//!
//! Per-account order inside a batch: once a row of an account fails, no
//! later row of that account is sent in this batch, and a later row that
//! was already in flight and acknowledged is NOT settled: it stays pending
//! and is sent again after its predecessor. The store's claim does the same
//! across batches (a row waiting for a retry holds back its successors). So
//! an account's rows leave the outbox strictly in version order.
//!
//! One producer per batch: the sink may replace a failed producer only
//! before a batch ([`RecordSink::start_batch`]). When a record cannot even
//! be put in flight for the broker's sake (the producer failed for good,
//! its queue is full), nothing more of the batch is enqueued: the rows not
//! sent stay pending as they are and go, in order, with the next batch. So
//! no record of an account reaches the topic before an earlier one that
//! failed. docs/OUTBOX.md has the whole argument.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ledgerline_shared::event_store::{OutboxMessage, StoreError};
use ledgerline_shared::outbox::{OutboxStore, Outcome};
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::record::{Record, RecordSink, SendError};
use ledgerline_shared::dead_letter::DeadLetter;
use ledgerline_shared::resilience::Backoff;

#[derive(Debug, Clone, PartialEq)]
pub struct PublishSettings {
    /// `LEDGERLINE_DLQ_TOPIC`.
    pub dlq_topic: String,
    /// `LEDGERLINE_OUTBOX_BATCH_SIZE`: rows claimed (and in flight) at once.
    pub batch_size: usize,
    /// `LEDGERLINE_OUTBOX_MAX_ATTEMPTS`: a row the broker refuses for its own
    /// sake (too large, invalid) goes to the dead-letter topic on this attempt.
    pub max_attempts: u32,
    /// `LEDGERLINE_OUTBOX_BACKOFF_BASE_MS` / `_MAX_MS`.
    pub backoff: Backoff,
    /// `LEDGERLINE_OUTBOX_DEADLINE_MARGIN_MS`: stop this long before the deadline.
    pub deadline_margin: Duration,
    /// The longest one batch waits for the broker: the producer's message
    /// timeout plus a little (records unanswered by then count as failed).
    pub batch_timeout: Duration,
    /// `LEDGERLINE_OUTBOX_RUN_FOR_MS`: how long a run keeps publishing and
    /// looking for new rows (bounded by the deadline margin); zero ends the
    /// run as soon as the outbox is drained.
    pub run_for: Duration,
    /// `LEDGERLINE_OUTBOX_POLL_MS`: how often a run that has drained the
    /// outbox looks for new rows.
    pub poll_interval: Duration,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Nothing due is left.
    #[default]
    Drained,
    /// The Lambda deadline (minus the margin) is near.
    Deadline,
    /// Another publisher holds the lock: it is draining.
    LockBusy,
    /// A batch failed without publishing anything: the broker is likely down.
    Failing,
}

/// What one run did; the Lambda function's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rows acknowledged by the broker (and so removed from the outbox).
    pub published: u64,
    /// Failed attempts: the rows stay pending and are retried after a backoff.
    pub failed: u64,
    /// Rows sent to the dead-letter topic and marked dead.
    pub dead_lettered: u64,
    /// Rows not settled because an earlier row of their account failed in
    /// the same batch, or because the producer failed before they were put
    /// in flight; they stay pending and go after it.
    pub held_back: u64,
    /// Pending rows left when the run ended (due now or waiting for a retry).
    pub remaining: u64,
    pub batches: u64,
    pub stopped: Stop,
    /// The last publishing error seen, if any.
    pub last_error: Option<String>,
}

pub struct Publisher<K> {
    store: Arc<dyn OutboxStore>,
    sink: K,
    settings: PublishSettings,
}

impl<K: RecordSink> Publisher<K> {
    pub fn new(store: Arc<dyn OutboxStore>, sink: K, settings: PublishSettings) -> Self {
        Self { store, sink, settings }
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    pub fn settings(&self) -> &PublishSettings {
        &self.settings
    }

    /// Publishes until drained or `deadline - margin`. A store error ends the
    /// run (the current batch's outcomes are then not recorded: its rows are
    /// sent again next time).
    pub async fn run(&self, deadline: Instant) -> Result<Summary, StoreError> {
        let mut summary = Summary::default();
        let stop_at = deadline.checked_sub(self.settings.deadline_margin).unwrap_or_else(Instant::now);
        let follow_until = stop_at.min(Instant::now() + self.settings.run_for);
        loop {
            let now = Instant::now();
            if now >= stop_at {
                summary.stopped = Stop::Deadline;
                break;
            }
            let stopped = self.publish_once(now, stop_at, &mut summary).await?;
            let Some(stop) = stopped else { continue };
            // Drained, lock busy or broker failing: look again a little later,
            // while the run lasts (a failing broker less often).
            let pause =
                if stop == Stop::Failing { self.settings.poll_interval.max(Duration::from_secs(1)) } else { self.settings.poll_interval };
            if Instant::now() + pause >= follow_until {
                summary.stopped = stop;
                if stop == Stop::LockBusy && summary.batches == 0 && self.settings.run_for.is_zero() {
                    tracing::info!("another publisher holds the outbox lock; nothing to do");
                    summary.remaining = self.store.counts().await?.pending;
                    return Ok(summary);
                }
                break;
            }
            tokio::time::sleep(pause).await;
        }
        summary.remaining = self.store.counts().await?.pending;
        Ok(summary)
    }

    /// Claims and publishes one batch; `Some` says why there was nothing
    /// (more) to do for now.
    async fn publish_once(&self, now: Instant, stop_at: Instant, summary: &mut Summary) -> Result<Option<Stop>, StoreError> {
        // A batch waits at most `batch_timeout` for its records, then at
        // most `batch_timeout` for its dead letters (see `publish_batch`).
        let hold_for = self.settings.batch_timeout * 2 + Duration::from_secs(30);
        let Some(batch) = self.store.claim(self.settings.batch_size, hold_for).await? else {
            return Ok(Some(Stop::LockBusy));
        };
        if batch.messages().is_empty() {
            batch.complete(Vec::new()).await?;
            return Ok(Some(Stop::Drained));
        }
        summary.batches += 1;
        self.sink.start_batch();
        let wait = self.settings.batch_timeout.min(stop_at.saturating_duration_since(now));
        let (outcomes, broker_trouble) = self.publish_batch(batch.messages(), wait, summary).await;
        let published = outcomes.iter().filter(|o| matches!(o, Outcome::Published { .. })).count();
        let failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed { .. }));
        batch.complete(outcomes).await?;
        if published == 0 && failed {
            if broker_trouble {
                self.sink.reset();
            }
            return Ok(Some(Stop::Failing));
        }
        Ok(None)
    }

    /// Sends one batch; returns the outcome of every row it settles, and
    /// whether any record failed for the broker's sake (not its own).
    async fn publish_batch(&self, rows: &[OutboxMessage], wait: Duration, summary: &mut Summary) -> (Vec<Outcome>, bool) {
        // Everything in flight at once. An account whose row is refused for
        // its own sake (too large) sends nothing more in this batch; a row
        // refused for the producer's sake (failed for good, queue full)
        // stops the whole batch: the rows after it are not sent (`None`).
        let mut results: Vec<Option<Result<(), SendError>>> = vec![None; rows.len()];
        let mut refused: HashSet<Uuid> = HashSet::new();
        let mut in_flight = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            if refused.contains(&row.stream_id) {
                continue;
            }
            let record = Record { topic: &row.topic, key: &row.key, payload: &row.payload, headers: &row.headers };
            match self.sink.enqueue(record) {
                Ok(delivery) => in_flight.push((i, delivery)),
                Err(error) => {
                    let producer_failed = !error.is_permanent();
                    refused.insert(row.stream_id);
                    results[i] = Some(Err(error));
                    if producer_failed {
                        tracing::warn!(
                            not_sent = rows.len() - i - 1,
                            "the producer refused a record; the rest of the batch waits for the next one"
                        );
                        break;
                    }
                }
            }
        }
        // The producer works in the background: awaiting in order costs no
        // more than the slowest answer.
        let answer_by = Instant::now() + wait;
        for (i, delivery) in in_flight {
            results[i] = Some(match tokio::time::timeout_at(answer_by, delivery).await {
                Ok(result) => result,
                Err(_) => Err(SendError::transient(format!("no acknowledgement within {wait:?}"))),
            });
        }

        let broker_trouble = results.iter().any(|r| matches!(r, Some(Err(e)) if !e.is_permanent()));

        // Settle in outbox order: per account, the published rows are always
        // a prefix of its rows in this batch. Dead letters share one deadline.
        let dead_letters_by = Instant::now() + self.settings.batch_timeout;
        let mut failed_accounts: HashSet<Uuid> = HashSet::new();
        let mut outcomes = Vec::with_capacity(rows.len());
        for (row, result) in rows.iter().zip(results) {
            if failed_accounts.contains(&row.stream_id) {
                summary.held_back += 1;
                if matches!(result, Some(Ok(()))) {
                    tracing::warn!(event_id = %row.event_id, "acknowledged after an earlier row of its account failed; it will be sent again after that row");
                }
                continue;
            }
            match result {
                Some(Ok(())) => {
                    summary.published += 1;
                    outcomes.push(Outcome::Published { id: row.id });
                }
                Some(Err(error)) => {
                    failed_accounts.insert(row.stream_id);
                    summary.last_error = Some(error.message.clone());
                    outcomes.push(self.settle_failure(row, error, dead_letters_by, summary).await);
                }
                // Not sent (the batch stopped before it): left pending as it
                // is, and so are the account's later rows, which were not
                // sent either.
                None => summary.held_back += 1,
            }
        }
        (outcomes, broker_trouble)
    }

    /// A failed row: retried after a backoff, or dead-lettered when it can
    /// never be published and has used up its attempts.
    async fn settle_failure(&self, row: &OutboxMessage, error: SendError, by: Instant, summary: &mut Summary) -> Outcome {
        let attempts = row.attempts + 1;
        if error.is_permanent() && attempts >= self.settings.max_attempts {
            match self.dead_letter(row, &error.message, by).await {
                Ok(()) => {
                    tracing::error!(event_id = %row.event_id, stream_id = %row.stream_id, version = row.stream_version, error = %error, "outbox row dead-lettered");
                    summary.dead_lettered += 1;
                    return Outcome::Dead { id: row.id, error: error.message };
                }
                Err(dlq_error) => {
                    let message = format!("{error}; dead-lettering failed too: {dlq_error}");
                    summary.failed += 1;
                    return Outcome::Failed { id: row.id, error: message, retry_after: self.settings.backoff.delay(attempts) };
                }
            }
        }
        tracing::warn!(event_id = %row.event_id, attempts, error = %error, "publishing an outbox row failed; it will be retried");
        summary.failed += 1;
        Outcome::Failed { id: row.id, error: error.message, retry_after: self.settings.backoff.delay(attempts) }
    }

    async fn dead_letter(&self, row: &OutboxMessage, error: &str, by: Instant) -> Result<(), SendError> {
        let letter = DeadLetter::outbox_row(row, error);
        let (value, headers) = (letter.to_json(), letter.headers(&row.headers));
        let record = Record { topic: &self.settings.dlq_topic, key: &row.key, payload: &value, headers: &headers };
        let delivery = self.sink.enqueue(record)?;
        tokio::time::timeout_at(by, delivery)
            .await
            .unwrap_or_else(|_| Err(SendError::transient("no acknowledgement from the dead-letter topic")))
    }
}
