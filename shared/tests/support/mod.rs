//! What the integration tests share: connecting to the test database.
#![allow(dead_code)] // each test binary uses a different part

use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use tokio::sync::OnceCell;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test";

/// `LEDGERLINE_TEST_DATABASE_URL`, or the database `scripts/services.sh` creates.
pub fn test_database_url() -> String {
    std::env::var("LEDGERLINE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.into())
}

static MIGRATED: OnceCell<()> = OnceCell::const_new();

/// Migrates the test database once per test binary.
pub async fn migrated_url() -> String {
    let url = test_database_url();
    MIGRATED
        .get_or_init(|| async {
            ledgerline_shared::migrate::run(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot migrate {url} ({e}); start the services with scripts/services.sh"));
        })
        .await;
    url
}

/// A PostgreSQL store on the migrated test database. Tests use fresh random
/// stream ids and callers, so they can share one database and run in parallel.
pub async fn postgres_store(settings: StoreSettings) -> PostgresEventStore {
    let url = migrated_url().await;
    let pool = ledgerline_shared::db::pool(&DatabaseSettings {
        url,
        pool_size: 32,
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .expect("a valid test database URL");
    PostgresEventStore::new(pool, settings)
}
