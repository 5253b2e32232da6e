//! The Lambda handler: one scheduled event, one publishing run.
//!
//! The event itself carries nothing the run needs (EventBridge sends the
//! same shape every minute); what matters is the invocation's deadline,
//! which bounds the run so it returns with a margin instead of being killed
//! mid-batch. A killed run would lose nothing (unrecorded rows are sent
//! again), but it would report nothing either.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use ledgerline_shared::deadline::deadline_from;
use ledgerline_shared::event_store::StoreError;
use ledgerline_shared::metrics::MetricsWriter;
use thiserror::Error;

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

pub async fn handle<K: RecordSink>(publisher: &Publisher<K>, event: LambdaEvent<EventBridgeEvent>) -> Result<Summary, HandlerError> {
    let deadline = deadline_from(event.context.deadline);
    tracing::debug!(request_id = %event.context.request_id, schedule = ?event.payload.resources, "outbox run starts");
    let summary = publisher.run(deadline).await?;
    // An idle run (nothing done, nothing pending) writes no metrics either:
    // missing data is "nothing happened", and a terminal stays quiet.
    let idle = summary.published + summary.failed + summary.dead_lettered + summary.remaining == 0;
    if !idle {
        MetricsWriter::stdout("outbox-publisher").counts(&summary);
    }
    // An idle run (nothing due) is routine: debug, so a terminal stays quiet.
    if summary.published + summary.failed + summary.dead_lettered > 0 {
        tracing::info!(
            published = summary.published,
            failed = summary.failed,
            dead_lettered = summary.dead_lettered,
            held_back = summary.held_back,
            remaining = summary.remaining,
            stopped = ?summary.stopped,
            "outbox run done"
        );
    } else {
        tracing::debug!(remaining = summary.remaining, held_back = summary.held_back, stopped = ?summary.stopped, "outbox run done: nothing due");
    }
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
