//! Settings from the environment, with defaults for a developer's machine
//! (the broker `scripts/services.sh` starts). Every variable is in README.md.
//!
//! Security settings for MSK (`security.protocol`, `sasl.*`, `ssl.*`) are
//! passed through untouched: `LEDGERLINE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512`
//! becomes the librdkafka property `sasl.mechanism`. Any other librdkafka
//! property can be set the same way, except the ones the delivery guarantee
//! depends on, which are refused.

use std::time::Duration;

use thiserror::Error;

use crate::publish::PublishSettings;
use ledgerline_shared::resilience::Backoff;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
pub const DEFAULT_EVENTS_TOPIC: &str = "ledgerline.account-events";
pub const DEFAULT_DLQ_TOPIC: &str = "ledgerline.account-events.dlq";

/// Properties the publisher sets itself: overriding them would break the
/// delivery guarantee (or the per-account order).
const RESERVED: &[&str] = &["enable.idempotence", "acks", "bootstrap.servers", "max.in.flight.requests.per.connection", "retries"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `LEDGERLINE_KAFKA_BROKERS`: comma-separated `host:port` list.
    pub brokers: String,
    /// `LEDGERLINE_KAFKA_MESSAGE_TIMEOUT_MS`: how long the producer keeps
    /// trying one record before reporting it failed (bounds a batch's wait).
    pub message_timeout: Duration,
    /// `LEDGERLINE_KAFKA_LINGER_MS`: how long the producer waits to fill a batch.
    pub linger: Duration,
    /// Every other `LEDGERLINE_KAFKA_*` variable, as librdkafka properties.
    pub extra: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublisherConfig {
    pub kafka: KafkaSettings,
    /// `LEDGERLINE_EVENTS_TOPIC`: where the writer addresses outbox rows
    /// (each row carries its topic; this is what the topics are created with).
    pub events_topic: String,
    pub publish: PublishSettings,
}

impl PublisherConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from `vars` (the environment, or a test's list).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned());
        let number = |name: &str, default: u64, valid: &dyn Fn(u64) -> bool| -> Result<u64, ConfigError> {
            let Some(raw) = get(name) else { return Ok(default) };
            let bad = |reason: &str| ConfigError { name: name.into(), value: raw.clone(), reason: reason.into() };
            let value: u64 = raw.parse().map_err(|_| bad("not a number"))?;
            if valid(value) { Ok(value) } else { Err(bad("out of range")) }
        };

        let message_timeout =
            Duration::from_millis(number("LEDGERLINE_KAFKA_MESSAGE_TIMEOUT_MS", 30_000, &|n| (1_000..=900_000).contains(&n))?);
        let linger = Duration::from_millis(number("LEDGERLINE_KAFKA_LINGER_MS", 5, &|n| n <= 1_000)?);
        let extra = ledgerline_shared::config::kafka_properties(&vars, RESERVED).map_err(|(name, value, property)| ConfigError {
            name,
            value,
            reason: format!("{property} is set by the publisher"),
        })?;

        let publish = PublishSettings {
            dlq_topic: get("LEDGERLINE_DLQ_TOPIC").unwrap_or_else(|| DEFAULT_DLQ_TOPIC.into()),
            batch_size: number("LEDGERLINE_OUTBOX_BATCH_SIZE", 500, &|n| (1..=10_000).contains(&n))? as usize,
            max_attempts: number("LEDGERLINE_OUTBOX_MAX_ATTEMPTS", 5, &|n| (1..=1_000).contains(&n))? as u32,
            backoff: Backoff {
                base: Duration::from_millis(number("LEDGERLINE_OUTBOX_BACKOFF_BASE_MS", 1_000, &|n| n <= 3_600_000)?),
                max: Duration::from_millis(number("LEDGERLINE_OUTBOX_BACKOFF_MAX_MS", 300_000, &|n| n <= 86_400_000)?),
            },
            retention: Duration::from_secs(3600 * number("LEDGERLINE_OUTBOX_RETENTION_HOURS", 72, &|n| n <= 24 * 365)?),
            deadline_margin: Duration::from_millis(number("LEDGERLINE_OUTBOX_DEADLINE_MARGIN_MS", 5_000, &|n| n <= 600_000)?),
            batch_timeout: message_timeout + Duration::from_secs(5),
            run_for: Duration::from_millis(number("LEDGERLINE_OUTBOX_RUN_FOR_MS", 0, &|n| n <= 900_000)?),
            poll_interval: Duration::from_millis(number("LEDGERLINE_OUTBOX_POLL_MS", 20, &|n| (1..=60_000).contains(&n))?),
        };
        Ok(Self {
            kafka: KafkaSettings {
                brokers: get("LEDGERLINE_KAFKA_BROKERS").unwrap_or_else(|| DEFAULT_BROKERS.into()),
                message_timeout,
                linger,
                extra,
            },
            events_topic: get("LEDGERLINE_EVENTS_TOPIC").unwrap_or_else(|| DEFAULT_EVENTS_TOPIC.into()),
            publish,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let config = PublisherConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(config.kafka.brokers, DEFAULT_BROKERS);
        assert_eq!(config.events_topic, DEFAULT_EVENTS_TOPIC);
        assert_eq!(config.publish.dlq_topic, DEFAULT_DLQ_TOPIC);
        assert_eq!(config.publish.batch_size, 500);
        assert_eq!(config.publish.retention, Duration::from_secs(72 * 3600));
        assert!(config.kafka.extra.is_empty());
    }

    #[test]
    fn security_settings_pass_through_and_guarantees_cannot_be_overridden() {
        let config = PublisherConfig::from_vars(vars(&[
            ("LEDGERLINE_KAFKA_BROKERS", "b-1:9096,b-2:9096"),
            ("LEDGERLINE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("LEDGERLINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("LEDGERLINE_KAFKA_SSL_CA_LOCATION", "/etc/ssl/certs/ca.pem"),
            ("LEDGERLINE_OUTBOX_BATCH_SIZE", "100"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!(config.kafka.brokers, "b-1:9096,b-2:9096");
        assert_eq!(
            config.kafka.extra,
            vec![
                ("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("ssl.ca.location".to_string(), "/etc/ssl/certs/ca.pem".to_string()),
            ]
        );
        assert_eq!(config.publish.batch_size, 100);

        let refused = PublisherConfig::from_vars(vars(&[("LEDGERLINE_KAFKA_ACKS", "1")])).unwrap_err();
        assert_eq!(refused.name, "LEDGERLINE_KAFKA_ACKS");
        let refused = PublisherConfig::from_vars(vars(&[("LEDGERLINE_KAFKA_ENABLE_IDEMPOTENCE", "false")])).unwrap_err();
        assert!(refused.reason.contains("enable.idempotence"));
        let bad = PublisherConfig::from_vars(vars(&[("LEDGERLINE_OUTBOX_BATCH_SIZE", "0")])).unwrap_err();
        assert_eq!(bad.reason, "out of range");
    }
}
