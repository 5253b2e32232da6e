//! The projector's settings (all in README.md), read by the one rule of
//! `ledgerline_shared::config`: defaults when unset, a bad value stops the
//! start naming the variable.

use std::time::Duration;

use ledgerline_shared::config::{ConfigError, Env, KAFKA_RESERVED, defaults, dynamodb_timeout};
use rdkafka::ClientConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectorConfig {
    /// `LEDGERLINE_KAFKA_BROKERS`, for the dead-letter producer.
    pub brokers: String,
    /// `LEDGERLINE_DLQ_TOPIC`.
    pub dlq_topic: String,
    /// Other `LEDGERLINE_KAFKA_*` variables, passed to librdkafka as
    /// properties (`LEDGERLINE_KAFKA_SECURITY_PROTOCOL` → `security.protocol`);
    /// the ones the dead letters' delivery rests on are refused.
    pub kafka_extra: Vec<(String, String)>,
    /// `LEDGERLINE_DYNAMODB_TIMEOUT_MS`: each DynamoDB call's bound.
    pub dynamodb_timeout: Duration,
}

impl ProjectorConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            brokers: env.text_or("LEDGERLINE_KAFKA_BROKERS", defaults::KAFKA_BROKERS),
            dlq_topic: env.text_or("LEDGERLINE_DLQ_TOPIC", defaults::DLQ_TOPIC),
            kafka_extra: env.kafka_properties(KAFKA_RESERVED)?,
            dynamodb_timeout: dynamodb_timeout(env)?,
        })
    }

    /// The dead-letter producer's configuration: idempotent, acknowledged by all replicas.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .set("client.id", "ledgerline-projector");
        for (name, value) in &self.kafka_extra {
            config.set(name, value);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environment_with_defaults_and_passes_kafka_security_through() {
        let config = ProjectorConfig::read(&Env::from_pairs([
            ("LEDGERLINE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("LEDGERLINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("LEDGERLINE_DYNAMODB_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(config.brokers, defaults::KAFKA_BROKERS);
        assert_eq!(config.dlq_topic, defaults::DLQ_TOPIC);
        assert_eq!(config.dynamodb_timeout, Duration::from_millis(250));
        assert_eq!(
            config.kafka_extra,
            vec![("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string()), ("security.protocol".into(), "SASL_SSL".into())]
        );
        assert_eq!(config.producer_config().get("security.protocol"), Some("SASL_SSL"));
    }

    #[test]
    fn the_dead_letter_guarantee_cannot_be_weakened_and_bad_numbers_stop_the_start() {
        let weakened = ProjectorConfig::read(&Env::from_pairs([("LEDGERLINE_KAFKA_ACKS", "1")])).unwrap_err();
        assert_eq!(weakened.name, "LEDGERLINE_KAFKA_ACKS");
        let bad = ProjectorConfig::read(&Env::from_pairs([("LEDGERLINE_DYNAMODB_TIMEOUT_MS", "soon")])).unwrap_err();
        assert_eq!(bad.name, "LEDGERLINE_DYNAMODB_TIMEOUT_MS");
    }
}
