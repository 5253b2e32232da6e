//! The `outbox-publisher` Lambda function: reads its settings, builds the
//! connection pool and the Kafka producer once per container, and hands
//! every scheduled invocation to [`outbox_publisher::handler::handle`].

use std::sync::Arc;

use anyhow::Context as _;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use ledgerline_shared::config::{DatabaseSettings, WriteSettings};
use ledgerline_shared::event_store::PostgresEventStore;
use outbox_publisher::kafka::KafkaSink;
use outbox_publisher::{Publisher, PublisherConfig, handler};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ledgerline_shared::telemetry::init();
    let config = PublisherConfig::from_env().context("reading the publisher settings")?;
    let database = DatabaseSettings::load().await.context("reading the database settings")?;
    let write = WriteSettings::from_env().context("reading the store settings")?;
    let pool = ledgerline_shared::db::pool(&database).context("building the connection pool")?;
    let store = Arc::new(PostgresEventStore::new(pool, write.store));
    let sink = KafkaSink::new(config.kafka.clone()).context("building the Kafka producer")?;
    let publisher = Publisher::new(store, sink, config.publish.clone());
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| handler::handle(publisher, event)))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
