//! The Lambda handler: one scheduled event, one publishing run.
//!
//! The event itself carries nothing the run needs (EventBridge sends the
//! same shape every minute); what matters is the invocation's deadline,
//! which bounds the run so it returns with a margin instead of being killed
//! mid-batch. A killed run would lose nothing (unrecorded rows are sent
//! again), but it would report nothing either.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use ledgerline_shared::event_store::StoreError;
use thiserror::Error;
use tokio::time::Instant;

use crate::publish::{Publisher, Summary};
use crate::record::RecordSink;

#[derive(Debug, Error)]
pub enum HandlerError {
    /// The outbox could not be read or updated: nothing is lost (unrecorded
    /// rows are sent again), but the run did not finish.
    #[error("outbox store: {0}")]
    Store(#[from] StoreError),
    /// Rows failed to publish; they stay pending and are retried. Reported as
    /// an error so the invocation counts in the function's Errors metric.
    #[error("{failed} outbox rows failed to publish ({published} published, {remaining} pending): {last_error}")]
    PublishFailed { failed: u64, published: u64, remaining: u64, last_error: String, summary: Box<Summary> },
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Store(_) => "OutboxStoreError",
            HandlerError::PublishFailed { .. } => "OutboxPublishFailed",
        };
        Self { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// Epoch milliseconds of 2000-01-01: no real deadline is earlier.
const EPOCH_MS_2000: u64 = 946_684_800_000;

/// The run's deadline as an [`Instant`], from the context's deadline in
/// milliseconds since the epoch, as Lambda sends it. Local tools differ:
/// `0` (none given) means one minute, and a value too small to be a date
/// is a duration — `cargo lambda watch` sends its timeout (600000) there.
pub fn deadline_from(deadline_ms: u64) -> Instant {
    if deadline_ms == 0 {
        return Instant::now() + Duration::from_secs(60);
    }
    if deadline_ms < EPOCH_MS_2000 {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

pub async fn handle<K: RecordSink>(publisher: &Publisher<K>, event: LambdaEvent<EventBridgeEvent>) -> Result<Summary, HandlerError> {
    let deadline = deadline_from(event.context.deadline);
    tracing::info!(request_id = %event.context.request_id, schedule = ?event.payload.resources, "outbox run starts");
    let summary = publisher.run(deadline).await?;
    tracing::info!(
        published = summary.published,
        failed = summary.failed,
        dead_lettered = summary.dead_lettered,
        held_back = summary.held_back,
        remaining = summary.remaining,
        pruned = summary.pruned,
        stopped = ?summary.stopped,
        "outbox run done"
    );
    if summary.failed > 0 {
        return Err(HandlerError::PublishFailed {
            failed: summary.failed,
            published: summary.published,
            remaining: summary.remaining,
            last_error: summary.last_error.clone().unwrap_or_default(),
            summary: Box::new(summary),
        });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_comes_from_the_context() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = deadline_from(now_ms + 30_000).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30), "{left:?}");
        assert!(deadline_from(now_ms - 5_000) <= Instant::now(), "a past deadline leaves no time");
        let default = deadline_from(0).saturating_duration_since(Instant::now());
        assert!(default > Duration::from_secs(59));
        // cargo lambda watch sends its timeout, a duration, where Lambda sends a date.
        let local = deadline_from(600_000).saturating_duration_since(Instant::now());
        assert!(local > Duration::from_secs(599) && local <= Duration::from_secs(600), "{local:?}");
    }
}
