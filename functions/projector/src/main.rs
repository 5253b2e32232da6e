//! The projector Lambda function: read config, build clients once per
//! container, and project each Kafka batch.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::config::{DatabaseSettings, WriteSettings};
use ledgerline_shared::event_store::{EventStore, PostgresEventStore};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, client_from_env};
use ledgerline_shared::read_model::tables::TableNames;
use projector::config::ProjectorConfig;
use projector::dead_letter::KafkaDeadLetters;
use projector::{KafkaBatchResponse, Projector};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ledgerline_shared::telemetry::init();
    let config = ProjectorConfig::from_env();
    let read_model = Arc::new(DynamoReadModel::new(client_from_env(config.dynamodb_timeout).await, TableNames::from_env()));
    let cache = Arc::new(AccountCache::new(CacheSettings::from_env())?);
    // Read-only use: gaps are filled from the event store when it is configured.
    let event_store: Option<Arc<dyn EventStore>> = match &config.database_url {
        Some(_) => {
            let pool = ledgerline_shared::db::pool(&DatabaseSettings::from_env()?)?;
            Some(Arc::new(PostgresEventStore::new(pool, WriteSettings::from_env()?.store)))
        }
        None => None,
    };
    let producer = config.producer_config().create()?;
    let dead_letters = Arc::new(KafkaDeadLetters::new(producer, config.dlq_topic.clone(), Duration::from_secs(10)));
    let projector = Arc::new(Projector::new(read_model, Some(cache), event_store, dead_letters));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
        let projector = projector.clone();
        async move {
            let (response, summary) = projector.handle(event.payload).await;
            ledgerline_shared::telemetry::emit_metrics(
                "Ledgerline",
                &[("Function", "projector")],
                &[
                    ("EventsApplied", summary.applied as f64),
                    ("EventsDuplicate", summary.duplicates as f64),
                    ("GapEventsFilled", summary.gap_events_filled as f64),
                    ("RecordsDeadLettered", summary.dead_lettered as f64),
                    ("RecordsFailed", summary.failed as f64),
                    ("CacheErrors", summary.cache_errors as f64),
                ],
            );
            Ok::<KafkaBatchResponse, lambda_runtime::Error>(response)
        }
    }))
    .await
}
