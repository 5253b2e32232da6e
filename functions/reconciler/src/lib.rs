//! The reconciler: on a schedule, the read model is compared with the event
//! store and repaired (`ledgerline_shared::reconcile`), and expired
//! idempotency records are purged.
//!
//! It is what makes every read-side fault temporary: a batch the projector
//! gave up on, records a broker lost or holds back, a cache entry left stale
//! while Redis was away. Each is found among the streams changed since the
//! last pass (or, failing that, by the slow sweep) and repaired with the
//! projector's own version-conditional writes.

use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use ledgerline_shared::deadline::deadline_from;
use ledgerline_shared::event_store::{EventStore, StoreError};
use ledgerline_shared::reconcile::{PassReport, ReconcileError, Reconciler};
use serde::Serialize;
use thiserror::Error;

/// Stop this long before the invocation's deadline: a pass cut short saves
/// what it checked and the next one goes on.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum HandlerError {
    /// The pass could not finish (a store was unreachable): nothing was lost,
    /// the next scheduled pass starts again where this one was.
    #[error("reconciliation: {0}")]
    Reconcile(#[from] ReconcileError),
    #[error("purging idempotency records: {0}")]
    Purge(#[from] StoreError),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Reconcile(_) => "ReconcileFailed",
            HandlerError::Purge(_) => "PurgeFailed",
        };
        Self { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// What one invocation did (the function's answer, and its log line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub pass: PassReport,
    pub idempotency_records_purged: u64,
}

pub async fn handle(
    reconciler: &Reconciler,
    event_store: &dyn EventStore,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<RunReport, HandlerError> {
    let deadline = deadline_from(event.context.deadline) - DEADLINE_MARGIN;
    let pass = reconciler.pass(Some(deadline)).await;
    if let Err(error) = &pass {
        ledgerline_shared::telemetry::emit_metrics("Ledgerline", &[("Function", "reconciler")], &[("PassesFailed", 1.0)]);
        tracing::warn!(%error, "reconcile pass failed; the next one goes on");
    }
    let pass = pass?;
    let purged = event_store.purge_expired_idempotency().await?;
    let report = RunReport { pass, idempotency_records_purged: purged };
    let log = if report.pass.behind > 0 { tracing::Level::WARN } else { tracing::Level::DEBUG };
    if log == tracing::Level::WARN {
        tracing::warn!(?report, "reconcile pass repaired accounts that were behind");
    } else {
        tracing::debug!(?report, "reconcile pass found nothing behind");
    }
    ledgerline_shared::telemetry::emit_metrics(
        "Ledgerline",
        &[("Function", "reconciler")],
        &[
            ("AccountsChecked", report.pass.checked as f64),
            ("AccountsBehind", report.pass.behind as f64),
            ("AccountsRepaired", report.pass.repaired as f64),
            ("EventsRepaired", report.pass.events_applied as f64),
            ("OldestLagMs", report.pass.oldest_lag_ms as f64),
            ("CacheErrors", report.pass.cache_errors as f64),
            ("IdempotencyRecordsPurged", purged as f64),
        ],
    );
    Ok(report)
}
