//! The `reconciler` Lambda function: reads its settings, builds the pool,
//! the DynamoDB client and the cache once per container, and hands every
//! scheduled invocation to [`reconciler::handle`].

use std::sync::Arc;

use anyhow::Context as _;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::config::{DatabaseSettings, Env, WriteSettings, dynamodb_timeout};
use ledgerline_shared::event_store::{EventStore, PostgresEventStore};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, client_from_env};
use ledgerline_shared::read_model::tables::TableNames;
use ledgerline_shared::reconcile::{PostgresProgress, ReconcileSettings, Reconciler};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ledgerline_shared::telemetry::init();
    let database = DatabaseSettings::load().await.context("reading the database settings")?;
    let write = WriteSettings::from_env().context("reading the store settings")?;
    let settings = ReconcileSettings::from_env().context("reading the reconcile settings")?;
    let pool = ledgerline_shared::db::pool(&database).context("building the connection pool")?;
    let event_store: Arc<dyn EventStore> = Arc::new(PostgresEventStore::new(pool.clone(), write.store));
    let read_model = Arc::new(DynamoReadModel::new(
        client_from_env(dynamodb_timeout(&Env::process()).context("reading the DynamoDB settings")?).context("the DynamoDB client")?,
        TableNames::from_env(),
    ));
    let cache = Arc::new(AccountCache::new(CacheSettings::from_env().context("reading the cache settings")?).context("REDIS_URL")?);
    let reconciler = Reconciler {
        event_store: event_store.clone(),
        read_model,
        cache: Some(cache),
        progress: Arc::new(PostgresProgress::new(pool)),
        settings,
    };
    let (reconciler, event_store) = (&reconciler, event_store.as_ref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| reconciler::handle(reconciler, event_store, event)))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
