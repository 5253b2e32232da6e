//! The EventBridge schedule of the outbox publisher, played locally.
//!
//! In AWS a `ScheduleV2` rule invokes `outbox-publisher` every minute. No
//! local emulator offers schedules, so `serve` invokes it itself, every
//! `LEDGERLINE_OUTBOX_INTERVAL_MS` (1 s by default: events reach the read
//! side quickly while you try things). An invocation is awaited before the
//! next tick, so two never run at once (the publisher would cope — it takes
//! an advisory lock — but it would only waste a container).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use super::invoke::LambdaInvoker;

pub const FUNCTION: &str = "outbox-publisher";

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

/// Invokes the publisher every `interval`, forever; failures are logged and
/// the next tick tries again (the publisher keeps its rows pending).
pub async fn run(invoker: LambdaInvoker, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match invoker.invoke(FUNCTION, &scheduled_event("ledgerline-outbox-publisher")).await {
            Ok(summary) => {
                if failing {
                    eprintln!("ledgerline serve: {FUNCTION} succeeds again");
                    failing = false;
                }
                let published = summary.get("published").and_then(Value::as_u64).unwrap_or(0);
                if published > 0 {
                    eprintln!("ledgerline serve: {FUNCTION} published {published} event(s)");
                }
            }
            Err(error) => {
                // Logged once per failing streak, not every second.
                if !failing {
                    eprintln!("ledgerline serve: {FUNCTION} failed: {error:#} (retrying every {interval:?})");
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_has_the_shape_eventbridge_sends() {
        let event = scheduled_event("r");
        let parsed: aws_lambda_events::eventbridge::EventBridgeEvent = serde_json::from_value(event).unwrap();
        assert_eq!(parsed.detail_type, "Scheduled Event");
        assert_eq!(parsed.source, "aws.events");
    }
}
