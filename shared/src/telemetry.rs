//! Logs as JSON lines on stdout: what CloudWatch Logs ingests and Logs
//! Insights queries field by field. `RUST_LOG` sets the level (default info).

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_target(false)
        .without_time() // Lambda stamps every line itself.
        .try_init();
}
