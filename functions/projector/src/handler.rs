//! The Lambda handler: one Kafka batch in, the records to retry out, and
//! the batch's counts as metrics.

use std::convert::Infallible;

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::LambdaEvent;

use crate::{KafkaBatchResponse, Projector};

/// Projects the batch; never fails as a whole (records that must be retried
/// are listed in the response, as Lambda's `ReportBatchItemFailures` wants).
pub async fn handle(projector: &Projector, event: LambdaEvent<KafkaEvent>) -> Result<KafkaBatchResponse, Infallible> {
    let (response, summary) = projector.handle(event.payload).await;
    ledgerline_shared::telemetry::emit_function_metrics(
        "projector",
        &[
            ("EventsApplied", summary.applied as f64),
            ("EventsDuplicate", summary.duplicates as f64),
            ("GapEventsFilled", summary.gap_events_filled as f64),
            ("RecordsDeadLettered", summary.dead_lettered as f64),
            ("RecordsFailed", summary.failed as f64),
            ("CacheErrors", summary.cache_errors as f64),
        ],
    );
    Ok(response)
}
