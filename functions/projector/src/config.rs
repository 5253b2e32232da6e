//! The projector's settings from the environment (all in README.md).

use std::time::Duration;

use rdkafka::ClientConfig;

/// `LEDGERLINE_DLQ_TOPIC`'s default: where poison records go.
pub const DEFAULT_DLQ_TOPIC: &str = "ledgerline.account-events.dlq";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectorConfig {
    /// `LEDGERLINE_KAFKA_BROKERS`, for the dead-letter producer.
    pub brokers: String,
    /// `LEDGERLINE_DLQ_TOPIC`.
    pub dlq_topic: String,
    /// Other `LEDGERLINE_KAFKA_*` variables, passed to librdkafka as
    /// properties (`LEDGERLINE_KAFKA_SECURITY_PROTOCOL` → `security.protocol`).
    pub kafka_extra: Vec<(String, String)>,
    /// `LEDGERLINE_DYNAMODB_TIMEOUT_MS`: each DynamoDB call's bound.
    pub dynamodb_timeout: Duration,
    /// Fill gaps from the event store when `DATABASE_URL` is set.
    pub database_url: Option<String>,
}

impl ProjectorConfig {
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars: Vec<(String, String)> = vars.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned());
        // Nothing is reserved for the dead-letter producer: its settings are defaults.
        let kafka_extra = ledgerline_shared::config::kafka_properties(&vars, &[]).unwrap_or_default();
        Self {
            brokers: get("LEDGERLINE_KAFKA_BROKERS").unwrap_or_else(|| "127.0.0.1:9092".into()),
            dlq_topic: get("LEDGERLINE_DLQ_TOPIC").unwrap_or_else(|| DEFAULT_DLQ_TOPIC.into()),
            kafka_extra,
            dynamodb_timeout: Duration::from_millis(
                get("LEDGERLINE_DYNAMODB_TIMEOUT_MS").and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(3_000),
            ),
            database_url: get("DATABASE_URL"),
        }
    }

    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// The dead-letter producer's configuration: acknowledged by all replicas.
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
        let config = ProjectorConfig::from_vars([
            ("LEDGERLINE_KAFKA_SECURITY_PROTOCOL".to_string(), "SASL_SSL".to_string()),
            ("LEDGERLINE_KAFKA_SASL_MECHANISM".into(), "SCRAM-SHA-512".into()),
            ("LEDGERLINE_DYNAMODB_TIMEOUT_MS".into(), "250".into()),
        ]);
        assert_eq!(config.brokers, "127.0.0.1:9092");
        assert_eq!(config.dlq_topic, DEFAULT_DLQ_TOPIC);
        assert_eq!(config.dynamodb_timeout, Duration::from_millis(250));
        assert_eq!(config.database_url, None);
        assert_eq!(
            config.kafka_extra,
            vec![("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string()), ("security.protocol".into(), "SASL_SSL".into())]
        );
        assert_eq!(config.producer_config().get("security.protocol"), Some("SASL_SSL"));
    }
}
