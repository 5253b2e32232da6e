//! The `projector` Lambda function: reads its settings, builds the DynamoDB
//! client, the cache, the (read-only) event store and the dead-letter
//! producer once per container, and hands every Kafka batch to
//! [`projector::handler::handle`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::config::{DatabaseSettings, WriteSettings};
use ledgerline_shared::event_store::{EventStore, PostgresEventStore};
use ledgerline_shared::kafka::ReplaceableProducer;
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, client_from_env};
use ledgerline_shared::read_model::tables::TableNames;
use projector::config::ProjectorConfig;
use projector::dead_letter::KafkaDeadLetters;
use projector::{Projector, handler};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ledgerline_shared::telemetry::init();
    let config = ProjectorConfig::from_env().context("reading the projector settings")?;
    let read_model =
        Arc::new(DynamoReadModel::new(client_from_env(config.dynamodb_timeout).context("the DynamoDB client")?, TableNames::from_env()));
    let cache = Arc::new(AccountCache::new(CacheSettings::from_env().context("reading the cache settings")?).context("REDIS_URL")?);
    // Read-only use: gaps are filled from the event store when it is configured.
    let event_store: Option<Arc<dyn EventStore>> =
        match DatabaseSettings::load_if_configured().await.context("reading the database settings")? {
            Some(database) => {
                let pool = ledgerline_shared::db::pool(&database).context("building the connection pool")?;
                Some(Arc::new(PostgresEventStore::new(pool, WriteSettings::from_env().context("reading the store settings")?.store)))
            }
            None => None,
        };
    let producer = ReplaceableProducer::new(config.producer_config()).context("building the dead-letter producer")?;
    let dead_letters = Arc::new(KafkaDeadLetters::new(producer, config.dlq_topic.clone(), Duration::from_secs(10)));
    let projector = Projector::new(read_model, Some(cache), event_store, dead_letters);
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| handler::handle(projector, event)))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
