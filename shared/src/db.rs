//! The PostgreSQL connection pool (deadpool-postgres), and TLS.
//!
//! Built once per Lambda container (in `main.rs`) and shared by every
//! request; connections are opened lazily, so a cold start does not pay for
//! them until the first request.
//!
//! Every session gets limits, so no statement, lock wait or forgotten
//! transaction can hold rows (and so other requests, and reconciliation's
//! view of what committed when) for long: [`SESSION_LIMITS`].
//!
//! A connection unused for a while (a Lambda container frozen between
//! invocations, a NAT that dropped the flow) is checked before it is handed
//! out and replaced when it does not answer, instead of failing the request
//! with a 503: [`VERIFY_IDLE_AFTER`].
//!
//! TLS follows the URL: `sslmode=require` encrypts and verifies the server's
//! certificate and host name (rustls) against the system's roots plus
//! `LEDGERLINE_DB_CA_FILE` (for RDS: Amazon's RDS CA bundle, which is not in
//! the system roots). Any other mode connects in plain text, as a local
//! database expects.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use thiserror::Error;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseSettings;

#[derive(Debug, Error)]
pub enum PoolSetupError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[from] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// Server settings for every session (PostgreSQL `-c` options). A
/// statement or a lock wait longer than these is an error (a transient one:
/// the command API answers 503 and the client retries); a transaction left
/// idle is rolled back. The outbox publisher raises the idle limit for its
/// own batches (`SET LOCAL`). Options already in the URL come after these,
/// so they win.
pub const SESSION_LIMITS: &str = "-c statement_timeout=15000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=15000";

/// A pooled connection unused this long is checked with an empty query
/// before it is handed out.
pub const VERIFY_IDLE_AFTER: Duration = Duration::from_secs(30);

/// How long that check may take before the connection is replaced.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `error` means the connection it came from is gone, so it must not
/// go back to the pool. A backend terminated in the middle of a statement
/// (a failover, `pg_terminate_backend`, a crash of another backend) answers
/// that statement with a FATAL error and then closes the socket, a moment
/// later; until the close arrives, `is_closed` is still false and the pool
/// would hand the dead connection to the next request.
pub fn connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(db) = error.as_db_error() {
        use tokio_postgres::error::Severity;
        return matches!(db.parsed_severity(), Some(Severity::Fatal | Severity::Panic))
            || db.code().code().starts_with("08")
            || db.code().code().starts_with("57P");
    }
    std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>())
}

/// Hands `client` back to the pool unless `error` says its connection is
/// gone ([`connection_lost`]); then it is closed instead.
pub fn release_after(client: deadpool_postgres::Object, error: &tokio_postgres::Error) {
    if connection_lost(error) {
        drop(deadpool_postgres::Object::take(client));
    }
}

/// A pool for `settings`.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, PoolSetupError> {
    pool_verifying_after(settings, VERIFY_IDLE_AFTER)
}

/// [`pool`], checking connections unused for `verify_idle_after` (tests
/// use zero, to check every connection).
pub fn pool_verifying_after(settings: &DatabaseSettings, verify_idle_after: Duration) -> Result<Pool, PoolSetupError> {
    let mut config: tokio_postgres::Config = settings.url.parse()?;
    config.connect_timeout(settings.connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("ledgerline");
    }
    let options = match config.get_options() {
        Some(own) => format!("{SESSION_LIMITS} {own}"),
        None => SESSION_LIMITS.to_owned(),
    };
    config.options(&options);
    // Fast recycling skips a test query per checkout; a broken connection
    // surfaces as an error on use and is mapped to 503 / retried.
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = if requires_tls(&config) {
        Manager::from_config(config, tls_connector(settings.ca_file.as_deref())?, manager_config)
    } else {
        Manager::from_config(config, NoTls, manager_config)
    };
    let pool = Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.connect_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .pre_recycle(Hook::async_fn(move |client, metrics| {
            Box::pin(async move {
                if metrics.last_used() < verify_idle_after {
                    return Ok(());
                }
                // A failed check drops this connection; the pool hands out
                // another or opens a new one.
                match tokio::time::timeout(VERIFY_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(HookError::Backend(error)),
                    Err(_) => Err(HookError::message("an idle connection did not answer its check")),
                }
            })
        }))
        .build()?;
    Ok(pool)
}

/// One connection outside the pool (migrations), with the same TLS rule.
/// The connection's driver runs on a spawned task.
pub async fn connect(url: &str, ca_file: Option<&Path>) -> Result<tokio_postgres::Client, PoolSetupError> {
    let config: tokio_postgres::Config = url.parse()?;
    if requires_tls(&config) {
        let (client, connection) = config.connect(tls_connector(ca_file)?).await?;
        tokio::spawn(connection);
        Ok(client)
    } else {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

fn requires_tls(config: &tokio_postgres::Config) -> bool {
    config.get_ssl_mode() == SslMode::Require
}

/// A rustls connector trusting the system's roots and `ca_file`'s certificates.
pub fn tls_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, PoolSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: the CA file may be all that is needed.
    let (added, _ignored) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let mut total = added;
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| PoolSetupError::Tls(format!("reading {}: {e}", path.display())))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(PoolSetupError::Tls(format!("{} holds no usable certificate", path.display())));
        }
        total += added;
    }
    if total == 0 {
        return Err(PoolSetupError::Tls("no trusted certificates: set LEDGERLINE_DB_CA_FILE".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| PoolSetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
