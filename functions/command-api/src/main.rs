//! The `command-api` Lambda function: reads its settings, builds the
//! connection pool once per container, and serves API Gateway HTTP API
//! (payload v2) events with [`command_api::router`].

use std::sync::Arc;

use anyhow::Context as _;
use command_api::metrics::with_metrics;
use command_api::{AppState, router};
use ledgerline_shared::config::{DatabaseSettings, WriteSettings};
use ledgerline_shared::db;
use ledgerline_shared::event_store::PostgresEventStore;
use ledgerline_shared::metrics::MetricsWriter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ledgerline_shared::telemetry::init();
    let database = DatabaseSettings::load().await.context("reading the database settings")?;
    let write = WriteSettings::from_env().context("reading the store settings")?;
    let pool = db::pool(&database).context("building the connection pool")?;
    let store = Arc::new(PostgresEventStore::new(pool, write.store.clone()));
    let app = with_metrics(router(AppState::new(store, &write)), MetricsWriter::stdout(command_api::metrics::FUNCTION));
    lambda_http::run(app).await.map_err(|e| anyhow::anyhow!(e))
}
