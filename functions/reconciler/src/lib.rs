//! The reconciler: on a schedule, the read model is compared with the event
//! store and repaired (`ledgerline_shared::reconcile`), the expiry of every
//! hold past due is recorded in its account's history
//! (`ledgerline_shared::reconcile::expiry`), and expired idempotency
//! records are purged.
//!
//! It is what makes every read-side fault temporary: a batch the projector
//! gave up on, records a broker lost or holds back, a cache entry left stale
//! while Redis was away. Each is found among the streams changed since the
//! last pass (or, failing that, by the slow sweep) and repaired with the
//! writes that never move an account backwards.

use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use ledgerline_shared::deadline::deadline_from;
use ledgerline_shared::event_store::EventStore;
use ledgerline_shared::metrics::MetricsWriter;
use ledgerline_shared::reconcile::{PassReport, ReconcileError, Reconciler};
use serde::Serialize;
use thiserror::Error;
use tokio::time::Instant;

/// Stop this long before the invocation's deadline: a pass cut short saves
/// what it checked and the next one goes on.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The longest one pass runs, whatever deadline the invocation carries: the
/// template's `Timeout` (60 s) less the margin. Under `cargo lambda watch`
/// the context's deadline is the watcher's own (15 minutes), while the local
/// stack, like AWS, gives up on the invocation at the function's `Timeout`.
pub const PASS_BUDGET: Duration = Duration::from_secs(55);

#[derive(Debug, Error)]
pub enum HandlerError {
    /// The pass could not finish (a store was unreachable): nothing was lost,
    /// the next scheduled pass starts again where this one was.
    #[error("reconciliation: {0}")]
    Reconcile(#[from] ReconcileError),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Reconcile(_) => "ReconcileFailed",
        };
        Self { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// What one invocation did (the function's answer, and its log line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub pass: PassReport,
    /// Hold expiries recorded in the event log after the pass.
    pub holds_expired: u64,
    /// Accounts whose due expiries could not be recorded (the next run tries again).
    pub expiries_failed: u64,
    pub idempotency_records_purged: u64,
    /// Why the purge failed, when it did (the pass still counts).
    pub purge_error: Option<String>,
}

/// The run's metrics: the report's counts, and whether the pass or the
/// purge failed (1 or 0, to alarm on).
#[derive(Serialize)]
struct RunMetrics<'a> {
    #[serde(flatten)]
    report: &'a RunReport,
    passes_failed: u8,
    purges_failed: u8,
}

fn emit(report: &RunReport, pass_failed: bool) {
    let metrics = RunMetrics { report, passes_failed: pass_failed.into(), purges_failed: report.purge_error.is_some().into() };
    MetricsWriter::stdout("reconciler").counts(&metrics);
}

pub async fn handle(
    reconciler: &Reconciler,
    event_store: &dyn EventStore,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<RunReport, HandlerError> {
    let deadline = (deadline_from(event.context.deadline) - DEADLINE_MARGIN).min(Instant::now() + PASS_BUDGET);
    let pass = match reconciler.pass(Some(deadline)).await {
        Ok(pass) => pass,
        Err(error) => {
            // Metrics first: an alarm on PassesFailed sees every failed pass.
            emit(&RunReport::default(), true);
            tracing::warn!(%error, "reconcile pass failed; the next one goes on");
            return Err(error.into());
        }
    };
    // Then the holds past their expiry get their expiry recorded (the read
    // side is caught up first, so it knows the holds placed lately).
    let (holds_expired, expiries_failed) = match reconciler.expire_due_holds(chrono::Utc::now()).await {
        Ok(report) => (report.holds_expired, report.failed),
        Err(error) => {
            tracing::warn!(%error, "the hold expiry sweep failed; the next run tries again");
            (0, 1)
        }
    };
    // Housekeeping: a failed purge is reported, never fails the pass.
    let (purged, purge_error) = match event_store.purge_expired_idempotency().await {
        Ok(purged) => (purged, None),
        Err(error) => {
            tracing::warn!(%error, "purging expired idempotency records failed; the next run tries again");
            (0, Some(error.to_string()))
        }
    };
    let report = RunReport { pass, holds_expired, expiries_failed, idempotency_records_purged: purged, purge_error };
    emit(&report, false);
    if report.pass.behind > 0 || report.pass.failed > 0 {
        tracing::warn!(?report, "reconcile pass found accounts behind the event store");
    } else {
        tracing::debug!(?report, "reconcile pass found nothing behind");
    }
    Ok(report)
}
