//! Where the test services are, and the helpers every crate's tests use
//! with them: one definition each, here.
//!
//! scripts/services.sh starts the services at the addresses below; the
//! `LEDGERLINE_TEST_*` variables point the tests elsewhere.

use std::future::Future;
use std::time::{Duration, Instant};

/// The database the tests share (each test uses fresh ids, so they can).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test";

/// `LEDGERLINE_TEST_DATABASE_URL`, or the database scripts/services.sh creates.
pub fn database_url() -> String {
    non_empty("LEDGERLINE_TEST_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into())
}

/// `LEDGERLINE_TEST_DYNAMODB_ENDPOINT`, or the moto server scripts/services.sh starts.
pub fn dynamodb_endpoint() -> String {
    non_empty("LEDGERLINE_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|| "http://127.0.0.1:8000".into())
}

/// `LEDGERLINE_TEST_KAFKA_BROKERS`, or the broker scripts/services.sh starts.
pub fn kafka_brokers() -> String {
    non_empty("LEDGERLINE_TEST_KAFKA_BROKERS").unwrap_or_else(|| "127.0.0.1:9092".into())
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A database of a test's own (on the test server), for tests that see a
/// whole database: the outbox publisher's claim, a migration, a rebuild.
/// Not migrated: the caller runs the migrations it wants. Drop it with
/// [`FreshDatabase::drop_database`] at the end of the test.
pub struct FreshDatabase {
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl FreshDatabase {
    /// `ledgerline_<purpose>_<random>` on the test server, empty.
    pub async fn create(purpose: &str) -> Self {
        let test_url = database_url();
        let (server, _) = test_url.rsplit_once('/').expect("a database URL ends with /name");
        Self::create_on(server, purpose).await
    }

    /// The same on another server (`postgres://user:password@host:port`),
    /// such as a test's own PostgreSQL.
    pub async fn create_on(server: &str, purpose: &str) -> Self {
        let admin_url = format!("{server}/postgres");
        let name = format!("ledgerline_{purpose}_{}", uuid::Uuid::new_v4().simple());
        connect(&admin_url).await.execute(&format!("CREATE DATABASE {name}"), &[]).await.expect("create a test database");
        Self { url: format!("{server}/{name}"), name, admin_url }
    }

    /// A plain connection to it.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    pub async fn drop_database(self) {
        connect(&self.admin_url)
            .await
            .execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name), &[])
            .await
            .expect("drop the test database");
    }
}

/// A connection to `url`, its driver running on the current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {url} ({e}); start the services with scripts/services.sh"));
    tokio::spawn(connection);
    client
}

/// Waits for `check` to return `Some`, polling every 50 ms; panics naming
/// `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
