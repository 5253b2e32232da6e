//! Logs as JSON lines on stdout: what CloudWatch Logs ingests and Logs
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

/// The namespace of every function's run metrics.
pub const METRICS_NAMESPACE: &str = "Ledgerline";

/// Writes one CloudWatch Embedded Metric Format line on stdout: CloudWatch
/// Logs turns it into metrics without any API call from the function. One
/// scheme for every function: namespace [`METRICS_NAMESPACE`], dimension
/// `Function`. Every metric is a count.
pub fn emit_function_metrics(function: &str, metrics: &[(&str, f64)]) {
    let line = metrics_line(METRICS_NAMESPACE, &[("Function", function)], metrics, chrono::Utc::now().timestamp_millis());
    println!("{line}");
}

/// The EMF JSON for [`emit_function_metrics`].
pub fn metrics_line(namespace: &str, dimensions: &[(&str, &str)], metrics: &[(&str, f64)], timestamp_ms: i64) -> String {
    let mut line = serde_json::Map::new();
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        line.insert((*name).into(), serde_json::json!(value));
    }
    for (name, value) in metrics {
        line.insert((*name).into(), serde_json::json!(value));
    }
    serde_json::Value::Object(line).to_string()
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

    #[test]
    fn metrics_lines_have_the_embedded_metric_format_shape() {
        let line = super::metrics_line("Ledgerline", &[("Function", "projector")], &[("EventsApplied", 3.0)], 1_700_000_000_000);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Ledgerline");
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Function");
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "EventsApplied");
        assert_eq!(value["Function"], "projector");
        assert_eq!(value["EventsApplied"], 3.0);
    }
}
