//! Schema migrations, embedded from `migrations/` and applied by refinery.
//!
//! refinery records what it applied in `refinery_schema_history`, so running
//! again applies nothing. A PostgreSQL advisory lock around the run makes two
//! processes (two test binaries, two cold starts) take turns instead of both
//! applying the same file.

use thiserror::Error;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Any fixed number; it only has to be the same for every migrating process.
const MIGRATION_LOCK_KEY: i64 = 0x1ed9_e711_0000_0001;

#[derive(Debug, Error)]
pub enum MigrationError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] crate::db::PoolSetupError),
    #[error("cannot take the migration lock: {0}")]
    Lock(#[source] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
}

/// Applies every pending migration to the database at `url`; returns the
/// names of those applied now (empty when the schema was up to date).
pub async fn run(url: &str) -> Result<Vec<String>, MigrationError> {
    let ca_file = std::env::var_os("LEDGERLINE_DB_CA_FILE").map(std::path::PathBuf::from);
    let mut client = crate::db::connect(url, ca_file.as_deref()).await.map_err(MigrationError::Connect)?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await.map_err(MigrationError::Lock)?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    // Released explicitly, and in any case when the connection closes.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    drop(client);
    Ok(report?.applied_migrations().iter().map(|m| m.name().to_owned()).collect())
}
