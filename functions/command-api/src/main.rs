//! The command-api Lambda function: read config, build clients once per
//! container, serve API Gateway HTTP API (payload v2) events.

use std::sync::Arc;

use command_api::{AppState, router};
use ledgerline_shared::config::{DatabaseSettings, WriteSettings};
use ledgerline_shared::db;
use ledgerline_shared::event_store::PostgresEventStore;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    ledgerline_shared::telemetry::init();
    let database = DatabaseSettings::from_env()?;
    let write = WriteSettings::from_env()?;
    let pool = db::pool(&database)?;
    let store = Arc::new(PostgresEventStore::new(pool, write.store.clone()));
    lambda_http::run(router(AppState::new(store, &write))).await
}
