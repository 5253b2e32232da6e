//! The `query-api` Lambda function: reads its settings, builds the DynamoDB
//! client and the cache once per container, and serves API Gateway HTTP API
//! (payload v2) events with [`query_api::router`], several at
//! once when Lambda's multi-concurrency mode sets `AWS_LAMBDA_MAX_CONCURRENCY`
//! (one at a time otherwise); the load shedder bounds them.

use std::sync::Arc;

use anyhow::Context as _;
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, client_from_env};
use ledgerline_shared::read_model::tables::TableNames;
use query_api::metrics::Metrics;
use query_api::{AppState, QuerySettings, router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ledgerline_shared::telemetry::init();
    let mut settings = QuerySettings::from_env().context("reading the query API's settings")?;
    if let Some(secret) = ledgerline_shared::secrets::CURSOR_SECRET.load().await.context("fetching the cursor secret")? {
        settings.cursor_secret = secret.into_bytes();
    }
    let client = client_from_env(settings.dynamodb_breaker.call_timeout).context("the DynamoDB client")?;
    let source = Arc::new(DynamoReadModel::new(client, TableNames::from_env()));
    let redis = match AccountCache::new(CacheSettings::from_env().context("reading the cache settings")?) {
        Ok(cache) => Some(Arc::new(cache)),
        Err(error) => {
            tracing::error!(%error, "REDIS_URL is unusable: serving without the Redis cache");
            None
        }
    };
    let state = AppState::new(source, redis, &settings, Metrics::stdout());
    lambda_http::run_concurrent(query_api::lambda::service(router(state))).await.map_err(|e| anyhow::anyhow!(e))
}
