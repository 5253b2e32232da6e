//! Metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout.
//!
//! Lambda sends stdout to CloudWatch Logs, which turns every JSON line with
//! an `_aws.CloudWatchMetrics` block into metrics: no API call, no agent.
//! Namespace `Ledgerline/QueryApi`, dimension `Service`:
//!
//! - one line per request: `Latency` (ms), `Requests`, `L1Hit`, `L1Miss`,
//!   `L2Hit`, `L2Miss`, `L2Error`, `SourceRead`, `Shed` (counts), with the
//!   route and status as properties (searchable in Logs Insights);
//! - one line per breaker state change: `BreakerOpened`, `BreakerHalfOpened`
//!   or `BreakerClosed` with dimensions `Service`, `Dependency`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledgerline_shared::resilience::{BreakerState, Transition};
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "Ledgerline/QueryApi";
pub const SERVICE: &str = "query-api";

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

/// Keeps lines in memory (tests, benches).
#[derive(Default)]
pub struct MemorySink {
    lines: Mutex<Vec<String>>,
}

impl MemorySink {
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().iter().map(|l| serde_json::from_str(l).expect("EMF lines are JSON")).collect()
    }
}

impl MetricsSink for MemorySink {
    fn emit(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }
}

/// Drops lines (benches that measure the request path alone).
pub struct NullSink;

impl MetricsSink for NullSink {
    fn emit(&self, _line: String) {}
}

/// What one request did, filled in by the cache layers as it goes.
#[derive(Debug, Default)]
pub struct RequestCounters {
    pub l1_hit: AtomicU32,
    pub l1_miss: AtomicU32,
    pub l2_hit: AtomicU32,
    pub l2_miss: AtomicU32,
    pub l2_error: AtomicU32,
    pub source_read: AtomicU32,
}

impl RequestCounters {
    pub fn add(counter: &AtomicU32) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct Metrics {
    sink: Arc<dyn MetricsSink>,
}

impl Metrics {
    pub fn new(sink: Arc<dyn MetricsSink>) -> Self {
        Self { sink }
    }

    pub fn stdout() -> Self {
        Self::new(Arc::new(StdoutSink))
    }

    pub fn request(&self, route: &str, status: u16, latency: Duration, counters: &RequestCounters, shed: bool) {
        let get = |c: &AtomicU32| f64::from(c.load(Ordering::Relaxed));
        let metrics = [
            ("Latency", "Milliseconds", latency.as_secs_f64() * 1000.0),
            ("Requests", "Count", 1.0),
            ("L1Hit", "Count", get(&counters.l1_hit)),
            ("L1Miss", "Count", get(&counters.l1_miss)),
            ("L2Hit", "Count", get(&counters.l2_hit)),
            ("L2Miss", "Count", get(&counters.l2_miss)),
            ("L2Error", "Count", get(&counters.l2_error)),
            ("SourceRead", "Count", get(&counters.source_read)),
            ("Shed", "Count", if shed { 1.0 } else { 0.0 }),
        ];
        let properties = [("Route", json!(route)), ("Status", json!(status))];
        self.sink.emit(line(&[("Service", SERVICE)], &metrics, &properties, now_ms()));
    }

    pub fn breaker(&self, transition: &Transition) {
        let name = match transition.to {
            BreakerState::Open => "BreakerOpened",
            BreakerState::HalfOpen => "BreakerHalfOpened",
            BreakerState::Closed => "BreakerClosed",
        };
        let properties = [("From", json!(transition.from.as_str())), ("To", json!(transition.to.as_str()))];
        self.sink.emit(line(&[("Service", SERVICE), ("Dependency", &transition.breaker)], &[(name, "Count", 1.0)], &properties, now_ms()));
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One EMF line: metrics (name, unit, value) under one dimension set.
pub fn line(dimensions: &[(&str, &str)], metrics: &[(&str, &str, f64)], properties: &[(&str, Value)], timestamp_ms: i64) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The EMF specification's rules: `_aws.Timestamp` in ms, each
    /// directive has a namespace, dimension sets naming root keys, metrics
    /// with a name and a unit whose values are numbers at the root.
    pub fn assert_emf(line: &Value) {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000_000), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert_eq!(directives.len(), 1);
        for directive in directives {
            assert_eq!(directive["Namespace"], NAMESPACE);
            for set in directive["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert!(!set.is_empty() && set.len() <= 30);
                for name in set {
                    assert!(line[name.as_str().unwrap()].is_string(), "dimension {name} is a string at the root");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()));
                assert!(line[name].is_number(), "metric {name} has a number at the root");
            }
        }
    }

    #[test]
    fn request_and_breaker_lines_have_the_emf_shape() {
        let sink = Arc::new(MemorySink::default());
        let metrics = Metrics::new(sink.clone());
        let counters = RequestCounters::default();
        RequestCounters::add(&counters.l1_miss);
        RequestCounters::add(&counters.l2_hit);
        metrics.request("/accounts/{id}", 200, Duration::from_micros(1500), &counters, false);
        metrics.breaker(&Transition { breaker: "redis".into(), from: BreakerState::Closed, to: BreakerState::Open });
        let lines = sink.lines();
        assert_eq!(lines.len(), 2);
        lines.iter().for_each(assert_emf);
        assert_eq!(
            (lines[0]["L1Miss"].as_f64(), lines[0]["L2Hit"].as_f64(), lines[0]["L1Hit"].as_f64()),
            (Some(1.0), Some(1.0), Some(0.0))
        );
        assert_eq!(lines[0]["Latency"].as_f64(), Some(1.5));
        assert_eq!(lines[0]["Route"], "/accounts/{id}");
        assert_eq!((lines[1]["Dependency"].as_str(), lines[1]["BreakerOpened"].as_f64()), (Some("redis"), Some(1.0)));
    }
}
