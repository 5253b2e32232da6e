//! What the integration tests share: connecting to the test database.
#![allow(dead_code)] // each test binary uses a different part

use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use tokio::sync::OnceCell;

pub use ledgerline_tests::services::database_url as test_database_url;

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
        ca_file: None,
    })
    .expect("a valid test database URL");
    PostgresEventStore::new(pool, settings)
}

/// A database of its own, for tests that read or lock the whole outbox
/// (the publisher's claim sees every pending row of a database). Drop it
/// with [`FreshDatabase::drop_database`] at the end of the test.
pub struct FreshDatabase(ledgerline_tests::services::FreshDatabase);

impl FreshDatabase {
    /// A migrated database of its own.
    pub async fn create() -> Self {
        let database = ledgerline_tests::services::FreshDatabase::create("outbox").await;
        ledgerline_shared::migrate::run(&database.url).await.expect("migrate the fresh database");
        Self(database)
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    pub fn store(&self, settings: StoreSettings) -> PostgresEventStore {
        let pool = ledgerline_shared::db::pool(&DatabaseSettings {
            url: self.0.url.clone(),
            pool_size: 16,
            connect_timeout: std::time::Duration::from_secs(5),
            ca_file: None,
        })
        .expect("a valid test database URL");
        PostgresEventStore::new(pool, settings)
    }

    pub async fn drop_database(self) {
        self.0.drop_database().await;
    }
}
