//! `ledgerline rebuild-projections`: replay the event log into the read
//! models, with a progress bar. DynamoDB comes from the standard AWS
//! settings (`AWS_ENDPOINT_URL_DYNAMODB` locally), the tables from
//! `LEDGERLINE_ACCOUNTS_TABLE` / `LEDGERLINE_TRANSACTIONS_TABLE`, the cache
//! from `REDIS_URL`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ledgerline_shared::cache::{AccountCache, CacheSettings};
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, client_from_env};
use ledgerline_shared::read_model::tables::TableNames;
use projector::rebuild::{PostgresCheckpoints, Rebuild};

pub async fn run(database_url: &str, fresh: bool) -> anyhow::Result<()> {
    let settings = DatabaseSettings { url: database_url.to_owned(), ..DatabaseSettings::from_env()? };
    let pool = ledgerline_shared::db::pool(&settings).context("DATABASE_URL")?;
    let event_store = Arc::new(PostgresEventStore::new(pool.clone(), StoreSettings::default()));
    let read_model = Arc::new(DynamoReadModel::new(client_from_env(Duration::from_secs(10)).await, TableNames::from_env()));
    let cache = Arc::new(AccountCache::new(CacheSettings::from_env()).context("REDIS_URL")?);
    let rebuild = Rebuild { event_store, read_model, cache: Some(cache), checkpoints: Arc::new(PostgresCheckpoints::new(pool)) };

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} events ({per_sec}, {eta} left)")
            .expect("a valid template"),
    );
    let done = rebuild
        .run(fresh, |progress| {
            bar.set_length(progress.head.max(0) as u64);
            bar.set_position(progress.position.max(0) as u64);
        })
        .await
        .context("rebuilding the read models (are PostgreSQL, DynamoDB and Redis reachable?)")?;
    bar.finish_and_clear();
    println!("rebuilt up to position {}: {} events applied, {} already there", done.position, done.applied, done.skipped);
    Ok(())
}
