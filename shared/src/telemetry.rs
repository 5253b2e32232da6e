//! Logs as JSON lines on stdout (metrics are [`crate::metrics`]): what CloudWatch Logs ingests and Logs
//! Insights queries field by field. In a terminal (`ledgerline serve`, a
//! developer's shell) lines are plain text instead, easier to read.
//!
//! Lambda's own settings win when present: `AWS_LAMBDA_LOG_FORMAT` (`JSON`
//! or `Text`) and `AWS_LAMBDA_LOG_LEVEL` (`TRACE` ... `FATAL`). `RUST_LOG`,
//! when set, is the finer filter and overrides the level (default info).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// `AWS_LAMBDA_LOG_FORMAT` if it names a format, else text on a terminal
/// and JSON otherwise.
pub fn log_format(lambda_format: Option<&str>, terminal: bool) -> LogFormat {
    match lambda_format.map(|f| f.trim().to_ascii_lowercase()).as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        _ if terminal => LogFormat::Text,
        _ => LogFormat::Json,
    }
}

/// The filter: `RUST_LOG` if set, else `AWS_LAMBDA_LOG_LEVEL` (FATAL is
/// error, an unknown level is info), else info.
pub fn log_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(filter) = rust_log.map(str::trim).filter(|f| !f.is_empty()) {
        return filter.to_owned();
    }
    match lambda_level.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
        Some(level @ ("trace" | "debug" | "info" | "warn" | "error")) => level.to_owned(),
        Some("fatal") => "error".to_owned(),
        _ => "info".to_owned(),
    }
}

/// Installs the subscriber once; later calls do nothing.
pub fn init() {
    let var = |name: &str| std::env::var(name).ok();
    let filter = log_filter(var("RUST_LOG").as_deref(), var("AWS_LAMBDA_LOG_LEVEL").as_deref());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = match log_format(var("AWS_LAMBDA_LOG_FORMAT").as_deref(), std::io::stdout().is_terminal()) {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .without_time() // Lambda stamps every line itself.
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::{LogFormat, log_filter, log_format};

    #[test]
    fn lambda_settings_win_then_the_terminal_decides() {
        assert_eq!(log_format(Some("JSON"), true), LogFormat::Json);
        assert_eq!(log_format(Some("Text"), false), LogFormat::Text);
        assert_eq!(log_format(None, true), LogFormat::Text);
        assert_eq!(log_format(None, false), LogFormat::Json);
        assert_eq!(log_format(Some("xml"), false), LogFormat::Json);
        assert_eq!(log_filter(Some("projector=debug"), Some("ERROR")), "projector=debug");
        assert_eq!(log_filter(None, Some("WARN")), "warn");
        assert_eq!(log_filter(Some(" "), Some("FATAL")), "error");
        assert_eq!(log_filter(None, Some("loud")), "info");
        assert_eq!(log_filter(None, None), "info");
    }
}
