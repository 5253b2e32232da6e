//! The Lambda handler: one Kafka batch in, the records to retry out, and
//! the batch's counts as metrics.

use std::convert::Infallible;

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::LambdaEvent;
use ledgerline_shared::metrics::MetricsWriter;

use crate::{KafkaBatchResponse, Projector};

/// Projects the batch; never fails as a whole (records that must be retried
/// are listed in the response, as Lambda's `ReportBatchItemFailures` wants).
pub async fn handle(projector: &Projector, event: LambdaEvent<KafkaEvent>) -> Result<KafkaBatchResponse, Infallible> {
    let (response, summary) = projector.handle(event.payload).await;
    MetricsWriter::stdout("projector").counts(&summary);
    Ok(response)
}
