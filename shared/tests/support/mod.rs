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
        ca_file: None,
    })
    .expect("a valid test database URL");
    PostgresEventStore::new(pool, settings)
}

/// A database of its own, for tests that read or lock the whole outbox
/// (the publisher's claim sees every pending row of a database). Drop it
/// with [`FreshDatabase::drop_database`] at the end of the test.
pub struct FreshDatabase {
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl FreshDatabase {
    pub async fn create() -> Self {
        let test_url = test_database_url();
        let (server, _) = test_url.rsplit_once('/').expect("a database URL ends with /name");
        let admin_url = format!("{server}/postgres");
        let name = format!("ledgerline_outbox_{}", uuid::Uuid::new_v4().simple());
        let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {admin_url} ({e}); start the services with scripts/services.sh"));
        let driver = tokio::spawn(connection);
        admin.execute(&format!("CREATE DATABASE {name}"), &[]).await.expect("create a test database");
        drop(admin);
        let _ = driver.await;
        let url = format!("{server}/{name}");
        ledgerline_shared::migrate::run(&url).await.expect("migrate the fresh database");
        Self { url, name, admin_url }
    }

    pub fn store(&self, settings: StoreSettings) -> PostgresEventStore {
        let pool = ledgerline_shared::db::pool(&DatabaseSettings {
            url: self.url.clone(),
            pool_size: 16,
            connect_timeout: std::time::Duration::from_secs(5),
            ca_file: None,
        })
        .expect("a valid test database URL");
        PostgresEventStore::new(pool, settings)
    }

    pub async fn drop_database(self) {
        let (admin, connection) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls).await.expect("admin connection");
        let driver = tokio::spawn(connection);
        admin.execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name), &[]).await.expect("drop the test database");
        drop(admin);
        let _ = driver.await;
    }
}
