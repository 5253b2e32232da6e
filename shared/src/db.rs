//! The PostgreSQL connection pool (deadpool-postgres).
//!
//! Built once per Lambda container (in `main.rs`) and shared by every
//! request; connections are opened lazily, so a cold start does not pay for
//! them until the first request.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use thiserror::Error;
use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

#[derive(Debug, Error)]
pub enum PoolSetupError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[from] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// A pool for `settings`. TLS is not configured yet: see docs/ARCHITECTURE.md.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, PoolSetupError> {
    let mut config: tokio_postgres::Config = settings.url.parse()?;
    config.connect_timeout(settings.connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("ledgerline");
    }
    // Fast recycling skips a test query per checkout; a broken connection
    // surfaces as an error on use and is mapped to 503 / retried.
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.connect_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .build()?;
    Ok(pool)
}
