//! Settings from the environment, with defaults for a developer's machine
//! (the broker `scripts/services.sh` starts). Every variable is in README.md.
//!
//! Security settings for MSK (`security.protocol`, `sasl.*`, `ssl.*`) are
//! passed through untouched: `LEDGERLINE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512`
//! becomes the librdkafka property `sasl.mechanism`. Any other librdkafka
//! property can be set the same way, except the ones the delivery guarantee
//! depends on, which are refused.

use std::time::Duration;

use ledgerline_shared::config::{ConfigError, Env, KAFKA_RESERVED, defaults};
use ledgerline_shared::resilience::Backoff;

use crate::publish::PublishSettings;

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
        Self::read(&Env::process())
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let message_timeout = env.millis("LEDGERLINE_KAFKA_MESSAGE_TIMEOUT_MS", 30_000, |n| (1_000..=900_000).contains(n))?;
        let publish = PublishSettings {
            dlq_topic: env.text_or("LEDGERLINE_DLQ_TOPIC", defaults::DLQ_TOPIC),
            batch_size: env.number("LEDGERLINE_OUTBOX_BATCH_SIZE", 2_000, |n: &usize| (1..=10_000).contains(n))?,
            max_attempts: env.number("LEDGERLINE_OUTBOX_MAX_ATTEMPTS", 5, |n: &u32| (1..=1_000).contains(n))?,
            backoff: Backoff {
                base: env.millis("LEDGERLINE_OUTBOX_BACKOFF_BASE_MS", 1_000, |n| *n <= 3_600_000)?,
                max: env.millis("LEDGERLINE_OUTBOX_BACKOFF_MAX_MS", 300_000, |n| *n <= 86_400_000)?,
            },
            deadline_margin: env.millis("LEDGERLINE_OUTBOX_DEADLINE_MARGIN_MS", 5_000, |n| *n <= 600_000)?,
            batch_timeout: message_timeout + Duration::from_secs(5),
            run_for: env.millis("LEDGERLINE_OUTBOX_RUN_FOR_MS", 0, |n| *n <= 900_000)?,
            poll_interval: env.millis("LEDGERLINE_OUTBOX_POLL_MS", 20, |n| (1..=60_000).contains(n))?,
        };
        Ok(Self {
            kafka: KafkaSettings {
                brokers: env.text_or("LEDGERLINE_KAFKA_BROKERS", defaults::KAFKA_BROKERS),
                message_timeout,
                linger: env.millis("LEDGERLINE_KAFKA_LINGER_MS", 5, |n| *n <= 1_000)?,
                extra: env.kafka_properties(KAFKA_RESERVED)?,
            },
            events_topic: env.text_or("LEDGERLINE_EVENTS_TOPIC", defaults::EVENTS_TOPIC),
            publish,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Env {
        Env::from_pairs(list.iter().copied())
    }

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let config = PublisherConfig::read(&vars(&[])).unwrap();
        assert_eq!(config.kafka.brokers, defaults::KAFKA_BROKERS);
        assert_eq!(config.events_topic, defaults::EVENTS_TOPIC);
        assert_eq!(config.publish.dlq_topic, defaults::DLQ_TOPIC);
        assert_eq!(config.publish.batch_size, 2_000);
        assert!(config.kafka.extra.is_empty());
    }

    #[test]
    fn security_settings_pass_through_and_guarantees_cannot_be_overridden() {
        let config = PublisherConfig::read(&vars(&[
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

        let refused = PublisherConfig::read(&vars(&[("LEDGERLINE_KAFKA_ACKS", "1")])).unwrap_err();
        assert_eq!(refused.name, "LEDGERLINE_KAFKA_ACKS");
        let refused = PublisherConfig::read(&vars(&[("LEDGERLINE_KAFKA_ENABLE_IDEMPOTENCE", "false")])).unwrap_err();
        assert!(refused.reason.contains("enable.idempotence"));
        let bad = PublisherConfig::read(&vars(&[("LEDGERLINE_OUTBOX_BATCH_SIZE", "0")])).unwrap_err();
        assert_eq!(bad.reason, "out of range");
    }
}
