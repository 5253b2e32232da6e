//! Schema migrations, embedded from `migrations/` and applied by refinery.
//!
//! refinery records what it applied in `refinery_schema_history`, so running
//! again applies nothing. A PostgreSQL advisory lock around the run makes two
//! processes (two test binaries, two cold starts) take turns instead of both
//! applying the same file.

use thiserror::Error;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Any fixed number; it only has to be the same for every migrating process.
const MIGRATION_LOCK_KEY: i64 = 0x1ed9_e711_0000_0001;

#[derive(Debug, Error)]
pub enum MigrationError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("cannot take the migration lock: {0}")]
    Lock(#[source] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
}

/// Applies every pending migration to the database at `url`; returns the
/// names of those applied now (empty when the schema was up to date).
pub async fn run(url: &str) -> Result<Vec<String>, MigrationError> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(MigrationError::Connect)?;
    let driver = tokio::spawn(connection);
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await.map_err(MigrationError::Lock)?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    // Released explicitly, and in any case when the connection closes.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    drop(client);
    let _ = driver.await;
    Ok(report?.applied_migrations().iter().map(|m| m.name().to_owned()).collect())
}
