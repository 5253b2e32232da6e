//! The query API's metrics, through the one writer
//! (`ledgerline_shared::metrics`: namespace `Ledgerline`, dimension
//! `Function=query-api`):
//!
//! - one line per request: `Latency` (ms), `Requests`, `L1Hit`, `L1Miss`,
//!   `L2Hit`, `L2Miss`, `L2Error`, `SourceRead`, `Shed` (counts), with the
//!   route and status as properties (searchable in Logs Insights);
//! - one line per breaker state change: `BreakerOpened`, `BreakerHalfOpened`
//!   or `BreakerClosed`, with the extra dimension `Dependency`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use ledgerline_shared::metrics::{MemorySink, MetricsSink, NullSink, StdoutSink};
use ledgerline_shared::metrics::{MetricsWriter, Unit};
use ledgerline_shared::resilience::{BreakerState, Transition};
use serde_json::json;

/// The `Function` dimension's value.
pub const FUNCTION: &str = "query-api";

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
    writer: MetricsWriter,
}

impl Metrics {
    pub fn new(sink: Arc<dyn MetricsSink>) -> Self {
        Self { writer: MetricsWriter::new(FUNCTION, sink) }
    }

    pub fn stdout() -> Self {
        Self::new(Arc::new(StdoutSink))
    }

    pub fn request(&self, route: &str, status: u16, latency: Duration, counters: &RequestCounters, shed: bool) {
        let get = |c: &AtomicU32| f64::from(c.load(Ordering::Relaxed));
        let metrics = [
            ("Latency", Unit::Milliseconds, latency.as_secs_f64() * 1000.0),
            ("Requests", Unit::Count, 1.0),
            ("L1Hit", Unit::Count, get(&counters.l1_hit)),
            ("L1Miss", Unit::Count, get(&counters.l1_miss)),
            ("L2Hit", Unit::Count, get(&counters.l2_hit)),
            ("L2Miss", Unit::Count, get(&counters.l2_miss)),
            ("L2Error", Unit::Count, get(&counters.l2_error)),
            ("SourceRead", Unit::Count, get(&counters.source_read)),
            ("Shed", Unit::Count, if shed { 1.0 } else { 0.0 }),
        ];
        self.writer.emit(&[], &metrics, &[("Route", json!(route)), ("Status", json!(status))]);
    }

    pub fn breaker(&self, transition: &Transition) {
        let name = match transition.to {
            BreakerState::Open => "BreakerOpened",
            BreakerState::HalfOpen => "BreakerHalfOpened",
            BreakerState::Closed => "BreakerClosed",
        };
        let properties = [("From", json!(transition.from.as_str())), ("To", json!(transition.to.as_str()))];
        self.writer.emit(&[("Dependency", &transition.breaker)], &[(name, Unit::Count, 1.0)], &properties);
    }
}

#[cfg(test)]
mod tests {
    use ledgerline_shared::metrics::assert_emf;

    use super::*;

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
        assert_eq!((lines[0]["Function"].as_str(), lines[0]["Route"].as_str()), (Some(FUNCTION), Some("/accounts/{id}")));
        assert_eq!((lines[1]["Dependency"].as_str(), lines[1]["BreakerOpened"].as_f64()), (Some("redis"), Some(1.0)));
    }
}
