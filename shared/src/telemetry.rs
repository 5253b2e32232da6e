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

/// Writes one CloudWatch Embedded Metric Format line on stdout: CloudWatch
/// Logs turns it into metrics without any API call from the function.
/// Every metric is a count.
pub fn emit_metrics(namespace: &str, dimensions: &[(&str, &str)], metrics: &[(&str, f64)]) {
    println!("{}", metrics_line(namespace, dimensions, metrics, chrono::Utc::now().timestamp_millis()));
}

/// The EMF JSON for [`emit_metrics`].
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
