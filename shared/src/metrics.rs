//! The one metrics writer: CloudWatch Embedded Metric Format (EMF) lines.
//!
//! Lambda sends stdout to CloudWatch Logs, which turns every JSON line with
//! an `_aws.CloudWatchMetrics` block into metrics: no API call, no agent.
//! One scheme for every function: namespace [`NAMESPACE`], dimension
//! `Function` (the function's name), plus a few extra dimensions where a
//! metric is about something else too (the query API's breakers name their
//! `Dependency`). Properties (route, status, ...) ride along on the line,
//! searchable in Logs Insights without being dimensions.
//!
//! A function's run counts come from its summary struct: every numeric
//! field of its `Serialize` form is one `Count` metric named after the
//! field in PascalCase (`dead_lettered` → `DeadLettered`;
//! [`MetricsWriter::counts`]), so the metric names are written once, where
//! the summary is defined, and the `Function` dimension says whose they are.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value, json};

/// The namespace of every Ledgerline metric.
pub const NAMESPACE: &str = "Ledgerline";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Where EMF lines go.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, line: String);
}

/// Stdout: what Lambda ships to CloudWatch Logs.
pub struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn emit(&self, line: String) {
        println!("{line}");
    }
}

/// Keeps lines in memory (tests).
#[derive(Default)]
pub struct MemorySink {
    lines: Mutex<Vec<String>>,
}

impl MemorySink {
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|l| serde_json::from_str(l).expect("EMF lines are JSON")).collect()
    }
}

impl MetricsSink for MemorySink {
    fn emit(&self, line: String) {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
}

/// Drops lines: the embedded mode (metrics are for CloudWatch; locally they
/// would drown the log) and benchmarks of the request path alone.
pub struct NullSink;

impl MetricsSink for NullSink {
    fn emit(&self, _line: String) {}
}

/// One function's metrics writer.
#[derive(Clone)]
pub struct MetricsWriter {
    function: &'static str,
    sink: Arc<dyn MetricsSink>,
}

impl MetricsWriter {
    pub fn new(function: &'static str, sink: Arc<dyn MetricsSink>) -> Self {
        Self { function, sink }
    }

    pub fn stdout(function: &'static str) -> Self {
        Self::new(function, Arc::new(StdoutSink))
    }

    pub fn null(function: &'static str) -> Self {
        Self::new(function, Arc::new(NullSink))
    }

    /// One line: `metrics` (name, unit, value) under the dimensions
    /// `Function` and `extra_dimensions`, with `properties` beside them.
    pub fn emit(&self, extra_dimensions: &[(&str, &str)], metrics: &[(&str, Unit, f64)], properties: &[(&str, Value)]) {
        let mut dimensions = vec![("Function", self.function)];
        dimensions.extend_from_slice(extra_dimensions);
        self.sink.emit(line(&dimensions, metrics, properties, chrono::Utc::now().timestamp_millis()));
    }

    /// One line with every numeric field of `summary` as a `Count` metric,
    /// named after the field in PascalCase. Other fields are left out.
    pub fn counts(&self, summary: &impl Serialize) {
        let Ok(Value::Object(fields)) = serde_json::to_value(summary) else { return };
        let named: Vec<(String, f64)> = fields.iter().filter_map(|(name, value)| Some((pascal_case(name), value.as_f64()?))).collect();
        let metrics: Vec<(&str, Unit, f64)> = named.iter().map(|(name, value)| (name.as_str(), Unit::Count, *value)).collect();
        self.emit(&[], &metrics, &[]);
    }
}

/// `dead_lettered` → `DeadLettered`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The EMF JSON of one line.
pub fn line(dimensions: &[(&str, &str)], metrics: &[(&str, Unit, f64)], properties: &[(&str, Value)], timestamp_ms: i64) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).into(), json!(value));
    }
    for (name, _, value) in metrics {
        root.insert((*name).into(), json!(value));
    }
    for (name, value) in properties {
        root.insert((*name).into(), value.clone());
    }
    Value::Object(root).to_string()
}

/// The EMF specification's rules, for tests: `_aws.Timestamp` in ms, one
/// directive in [`NAMESPACE`] whose dimension sets name string fields at the
/// root, metrics with a name and a unit whose values are numbers at the root.
pub fn assert_emf(line: &Value) {
    let aws = &line["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000_000), "{line}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
    assert_eq!(directives.len(), 1, "{line}");
    for directive in directives {
        assert_eq!(directive["Namespace"], NAMESPACE);
        for set in directive["Dimensions"].as_array().expect("dimension sets") {
            let set = set.as_array().expect("a dimension set");
            assert!(!set.is_empty() && set.len() <= 30, "{line}");
            assert_eq!(set[0], "Function", "every line has the Function dimension first: {line}");
            for name in set {
                assert!(line[name.as_str().unwrap()].is_string(), "dimension {name} is a string at the root: {line}");
            }
        }
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().unwrap();
            assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()), "{line}");
            assert!(line[name].is_number(), "metric {name} has a number at the root: {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Summary {
        published: u64,
        dead_lettered: u64,
        last_error: Option<String>,
        incomplete: bool,
    }

    #[test]
    fn a_summary_becomes_one_line_of_counts_in_the_one_scheme() {
        let sink = Arc::new(MemorySink::default());
        let writer = MetricsWriter::new("outbox-publisher", sink.clone());
        writer.counts(&Summary { published: 3, dead_lettered: 1, last_error: Some("x".into()), incomplete: true });
        writer.emit(&[("Dependency", "redis")], &[("Latency", Unit::Milliseconds, 1.5)], &[("Route", json!("/accounts"))]);
        let lines = sink.lines();
        lines.iter().for_each(assert_emf);
        assert_eq!(lines[0]["Function"], "outbox-publisher");
        assert_eq!((lines[0]["Published"].as_f64(), lines[0]["DeadLettered"].as_f64()), (Some(3.0), Some(1.0)));
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(), 2);
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], json!(["Function", "Dependency"]));
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Milliseconds");
        assert_eq!(lines[1]["Route"], "/accounts");
    }
}
