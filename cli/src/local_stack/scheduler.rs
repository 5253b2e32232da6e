//! The EventBridge schedules, played locally.
//!
//! In AWS `ScheduleV2` rules invoke `outbox-publisher` and `reconciler`
//! every minute. No local emulator offers schedules, so `serve` invokes
//! them itself: the publisher every `LEDGERLINE_OUTBOX_INTERVAL_MS` (1 s by
//! default: events reach the read side quickly while you try things), the
//! reconciler every `LEDGERLINE_RECONCILE_INTERVAL_MS` (10 s). An invocation
//! is awaited before the next tick, so two never run at once (the functions
//! would cope, but it would only waste a container); an invocation is
//! bounded by the function's `Timeout` (see [`super::invoke`]), so a dead
//! function process delays the schedule by that much at most, as in AWS.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use super::invoke::LambdaInvoker;

/// One scheduled function.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub function: &'static str,
    pub rule: &'static str,
}

pub const OUTBOX_PUBLISHER: Schedule = Schedule { function: "outbox-publisher", rule: "ledgerline-outbox-publisher" };
pub const RECONCILER: Schedule = Schedule { function: "reconciler", rule: "ledgerline-reconciler" };

/// An EventBridge "Scheduled Event", like `events/scheduled.json`.
pub fn scheduled_event(rule: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": [format!("arn:aws:events:us-east-1:000000000000:rule/{rule}")],
        "detail": {}
    })
}

/// Invokes `schedule`'s function every `interval`, forever; failures are
/// logged and the next tick tries again (the publisher keeps its rows
/// pending; the reconciler's next pass goes on from its last progress).
pub async fn run(invoker: LambdaInvoker, schedule: Schedule, interval: Duration) {
    let Schedule { function, rule } = schedule;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match invoker.invoke(function, &scheduled_event(rule)).await {
            Ok(summary) => {
                let published = summary.get("published").and_then(Value::as_u64).unwrap_or(0);
                let remaining = summary.get("remaining").and_then(Value::as_u64).unwrap_or(0);
                let repaired = summary.get("repaired").and_then(Value::as_u64).unwrap_or(0);
                // A run with nothing due yet (rows backing off) is no recovery.
                if failing && (published > 0 || remaining == 0) {
                    eprintln!("ledgerline serve: {function} succeeds again");
                    failing = false;
                }
                if published > 0 {
                    eprintln!("ledgerline serve: {function} published {published} event(s)");
                }
                if repaired > 0 {
                    eprintln!("ledgerline serve: {function} repaired {repaired} account(s) that were behind: {summary}");
                }
            }
            Err(error) => {
                // Logged once per failing streak, not every second.
                if !failing {
                    eprintln!("ledgerline serve: {function} failed: {error:#} (retrying every {interval:?})");
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, StatusCode};

    use super::*;
    use crate::local_stack::invoke::tests::fake_invoke_api;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invokes_the_publisher_on_the_interval_never_two_at_once() {
        let (running, most, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, m, c) = (running.clone(), most.clone(), calls.clone());
        let endpoint = fake_invoke_api(move |function, event| {
            assert_eq!(function, OUTBOX_PUBLISHER.function);
            assert_eq!(event["detail-type"], "Scheduled Event");
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            // Slower than the interval: a second tick must wait for this one.
            std::thread::sleep(Duration::from_millis(60));
            r.fetch_sub(1, Ordering::SeqCst);
            let status = if c.fetch_add(1, Ordering::SeqCst) % 2 == 0 { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
            (status, HeaderMap::new(), r#"{"published":0}"#.into())
        })
        .await;
        let task = tokio::spawn(run(LambdaInvoker::new(endpoint, Duration::from_secs(5)), OUTBOX_PUBLISHER, Duration::from_millis(10)));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while calls.load(Ordering::SeqCst) < 6 {
            assert!(tokio::time::Instant::now() < deadline, "only {} invocations", calls.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two invocations at once, failures included");
    }

    #[test]
    fn the_event_has_the_shape_eventbridge_sends() {
        let event = scheduled_event("r");
        let parsed: aws_lambda_events::eventbridge::EventBridgeEvent = serde_json::from_value(event).unwrap();
        assert_eq!(parsed.detail_type, "Scheduled Event");
        assert_eq!(parsed.source, "aws.events");
    }
}
