//! Settings from the environment: the one way every function and the CLI
//! read them. Every variable is listed in README.md ("Configuration").
//!
//! One rule: a variable that is unset or blank takes its default; a value
//! that does not parse or is out of range stops the start with an error
//! naming the variable and what was expected ([`ConfigError`]). Defaults
//! that more than one place needs live once, in [`defaults`].
//!
//! Read through [`Env`], which tests build from a list. Hand-written rather
//! than envy or figment: the rules above (blank = unset, a range per
//! number, pass-through Kafka properties) are a few lines here and would
//! need the same lines around either crate.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::event_store::StoreSettings;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Defaults used by more than one function or the CLI.
pub mod defaults {
    /// `LEDGERLINE_KAFKA_BROKERS`: the broker `scripts/services.sh` starts.
    pub const KAFKA_BROKERS: &str = "127.0.0.1:9092";
    /// `LEDGERLINE_EVENTS_TOPIC`.
    pub const EVENTS_TOPIC: &str = "ledgerline.account-events";
    /// `LEDGERLINE_DLQ_TOPIC`: poison records and unpublishable outbox rows.
    pub const DLQ_TOPIC: &str = "ledgerline.account-events.dlq";
    /// `LEDGERLINE_DYNAMODB_TIMEOUT_MS`: each DynamoDB call's bound, in every function.
    pub const DYNAMODB_TIMEOUT_MS: u64 = 3_000;
    /// `REDIS_URL`.
    pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
    /// `LEDGERLINE_REDIS_TIMEOUT_MS`: each Redis call's bound.
    pub const REDIS_TIMEOUT_MS: u64 = 100;
}

/// The variables settings are read from: the process environment, or a
/// test's list. Blank values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v): &(String, String)| !v.trim().is_empty())
            .map(|(k, v)| (k, v.trim().to_owned()))
            .collect();
        Self { vars }
    }

    /// The same, with `name` set to `value` unless it is set already.
    pub fn with_default(mut self, name: &str, value: &str) -> Self {
        self.vars.entry(name.to_owned()).or_insert_with(|| value.to_owned());
        self
    }

    /// The value, if set.
    pub fn text(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// The value, or `default`.
    pub fn text_or(&self, name: &str, default: &str) -> String {
        self.text(name).unwrap_or_else(|| default.to_owned())
    }

    /// A number in the range `valid` accepts, or `default` when unset.
    pub fn number<T: FromStr>(&self, name: &str, default: T, valid: impl Fn(&T) -> bool) -> Result<T, ConfigError> {
        let Some(raw) = self.vars.get(name) else { return Ok(default) };
        let bad = |reason: &str| ConfigError { name: name.to_owned(), value: raw.clone(), reason: reason.to_owned() };
        let value: T = raw.parse().map_err(|_| bad("not a number"))?;
        if valid(&value) { Ok(value) } else { Err(bad("out of range")) }
    }

    /// A duration in milliseconds (`*_MS` variables), checked like [`Self::number`].
    pub fn millis(&self, name: &str, default_ms: u64, valid: impl Fn(&u64) -> bool) -> Result<Duration, ConfigError> {
        self.number(name, default_ms, valid).map(Duration::from_millis)
    }

    /// The librdkafka properties passed through from `LEDGERLINE_KAFKA_*`,
    /// so MSK's security settings need no code:
    /// `LEDGERLINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL` becomes
    /// `security.protocol=SASL_SSL`. Sorted by name. Ledgerline's own
    /// settings ([`KAFKA_OWN_SETTINGS`]) are skipped; a property in
    /// `reserved` (one the caller's guarantees rest on) is an error.
    pub fn kafka_properties(&self, reserved: &[&str]) -> Result<Vec<(String, String)>, ConfigError> {
        let mut properties = Vec::new();
        for (name, value) in &self.vars {
            let Some(suffix) = name.strip_prefix("LEDGERLINE_KAFKA_") else { continue };
            if KAFKA_OWN_SETTINGS.contains(&suffix) {
                continue;
            }
            let property = suffix.to_ascii_lowercase().replace('_', ".");
            if reserved.contains(&property.as_str()) {
                let reason = format!("{property} is fixed by Ledgerline (its delivery guarantee rests on it)");
                return Err(ConfigError { name: name.clone(), value: value.clone(), reason });
            }
            properties.push((property, value.clone()));
        }
        properties.sort();
        Ok(properties)
    }
}

/// `LEDGERLINE_DYNAMODB_TIMEOUT_MS`: each DynamoDB call's bound, the same
/// variable and default for every function.
pub fn dynamodb_timeout(env: &Env) -> Result<Duration, ConfigError> {
    env.millis("LEDGERLINE_DYNAMODB_TIMEOUT_MS", defaults::DYNAMODB_TIMEOUT_MS, |n| (1..=60_000).contains(n))
}

/// Settings Ledgerline reads itself from `LEDGERLINE_KAFKA_*`; every other
/// such variable is a librdkafka property (see [`Env::kafka_properties`]).
pub const KAFKA_OWN_SETTINGS: [&str; 3] = ["BROKERS", "MESSAGE_TIMEOUT_MS", "LINGER_MS"];

/// Properties every Ledgerline producer fixes (idempotent, acknowledged by
/// all in-sync replicas, in order): no variable may change them.
pub const KAFKA_RESERVED: &[&str] =
    &["enable.idempotence", "acks", "bootstrap.servers", "max.in.flight.requests.per.connection", "retries"];

/// Where PostgreSQL is and how to pool connections to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`, a libpq-style URL.
    pub url: String,
    /// `LEDGERLINE_DB_POOL_SIZE`: connections per process (a Lambda container
    /// serves one request at a time, so a few are plenty).
    pub pool_size: usize,
    /// `LEDGERLINE_DB_CONNECT_TIMEOUT_MS`: how long to wait for a connection
    /// before answering 503.
    pub connect_timeout: Duration,
    /// `LEDGERLINE_DB_CA_FILE`: extra trusted CA certificates (PEM) for
    /// `sslmode=require` URLs, such as Amazon's RDS bundle.
    pub ca_file: Option<std::path::PathBuf>,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/ledgerline";

/// A function's start-up settings could not be had: a bad variable or a
/// secret that could not be fetched.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.text_or("DATABASE_URL", DEFAULT_DATABASE_URL),
            pool_size: env.number("LEDGERLINE_DB_POOL_SIZE", 8, |n: &usize| (1..=1000).contains(n))?,
            connect_timeout: env.millis("LEDGERLINE_DB_CONNECT_TIMEOUT_MS", 3000, |n| *n > 0)?,
            ca_file: env.text("LEDGERLINE_DB_CA_FILE").map(std::path::PathBuf::from),
        })
    }

    /// What a function starts with: [`Self::from_env`], with the URL fetched
    /// from Secrets Manager when `LEDGERLINE_DATABASE_SECRET_ARN` is set
    /// (see [`crate::secrets`]).
    pub async fn load() -> Result<Self, SettingsError> {
        let mut settings = Self::from_env()?;
        if let Some(url) = crate::secrets::DATABASE_URL.load().await? {
            settings.url = url;
        }
        Ok(settings)
    }

    /// For a function that may run without the database (the projector
    /// fills gaps from it only when it has one): `None` when neither
    /// `DATABASE_URL` nor `LEDGERLINE_DATABASE_SECRET_ARN` is set.
    pub async fn load_if_configured() -> Result<Option<Self>, SettingsError> {
        let (env, database) = (Env::process(), crate::secrets::DATABASE_URL);
        if env.text(database.plain).is_none() && env.text(database.arn).is_none() {
            return Ok(None);
        }
        Ok(Some(Self::load().await?))
    }
}

/// How the write side stores events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSettings {
    pub store: StoreSettings,
    /// `LEDGERLINE_SNAPSHOT_EVERY`: take a snapshot every N events (0 = never).
    pub snapshot_every: u64,
    /// `LEDGERLINE_IDEMPOTENCY_TTL_HOURS`: how long an idempotency key is remembered.
    pub idempotency_ttl: chrono::Duration,
    /// `LEDGERLINE_MAX_OPEN_ACCOUNTS`: how many open accounts one owner may
    /// have; opening one more answers 409 `account_limit_reached`.
    pub max_open_accounts: u32,
}

/// The default of `LEDGERLINE_MAX_OPEN_ACCOUNTS`.
pub const DEFAULT_MAX_OPEN_ACCOUNTS: u32 = 100;

impl WriteSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let defaults = StoreSettings::default();
        Ok(Self {
            store: StoreSettings {
                events_topic: env.text("LEDGERLINE_EVENTS_TOPIC").unwrap_or(defaults.events_topic),
                max_event_bytes: env.number("LEDGERLINE_MAX_EVENT_BYTES", defaults.max_event_bytes, |n: &usize| *n > 0)?,
                max_events_per_append: defaults.max_events_per_append,
            },
            snapshot_every: env.number("LEDGERLINE_SNAPSHOT_EVERY", 50, |_: &u64| true)?,
            idempotency_ttl: chrono::Duration::hours(
                env.number("LEDGERLINE_IDEMPOTENCY_TTL_HOURS", 24, |n: &i64| (1..=24 * 365).contains(n))?,
            ),
            max_open_accounts: env
                .number("LEDGERLINE_MAX_OPEN_ACCOUNTS", DEFAULT_MAX_OPEN_ACCOUNTS, |n: &u32| (1..=1_000_000).contains(n))?,
        })
    }
}

impl crate::reconcile::ReconcileSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let (env, defaults) = (Env::process(), Self::default());
        Ok(Self {
            overlap: env.millis("LEDGERLINE_RECONCILE_OVERLAP_MS", defaults.overlap.as_millis() as u64, |_| true)?,
            sweep_page: env.number("LEDGERLINE_RECONCILE_SWEEP_PAGE", defaults.sweep_page, |n: &usize| (1..=100_000).contains(n))?,
            ..defaults
        })
    }
}

#[cfg(feature = "http")]
impl crate::http::caller::AdminRule {
    pub fn from_env() -> Self {
        let (env, defaults) = (Env::process(), Self::default());
        Self {
            claim: env.text("LEDGERLINE_ADMIN_GROUPS_CLAIM").unwrap_or(defaults.claim),
            group: env.text("LEDGERLINE_ADMIN_GROUP").unwrap_or(defaults.group),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_takes_its_default_or_a_valid_value_and_a_bad_one_names_the_variable() {
        let env = Env::from_pairs([("BAD", "seven"), ("LOW", "0"), ("GOOD", " 12 "), ("BLANK", "  ")]);
        assert_eq!(env.number("UNSET", 7u64, |_| true), Ok(7));
        assert_eq!(env.number("BLANK", 7u64, |_| true), Ok(7), "blank counts as unset");
        let error = env.number("BAD", 7u64, |_| true).unwrap_err();
        assert_eq!((error.name.as_str(), error.value.as_str(), error.reason.as_str()), ("BAD", "seven", "not a number"));
        assert_eq!(env.number("LOW", 7u64, |n| *n > 0).unwrap_err().reason, "out of range");
        assert_eq!(env.number("GOOD", 7u64, |n| *n > 0), Ok(12));
        assert_eq!(env.millis("GOOD", 5, |_| true), Ok(Duration::from_millis(12)));
        assert_eq!(env.text_or("UNSET", "fallback"), "fallback");
    }

    #[test]
    fn kafka_properties_pass_through_except_our_own_and_reserved_ones() {
        let env = Env::from_pairs([
            ("LEDGERLINE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("LEDGERLINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("LEDGERLINE_KAFKA_BROKERS", "b:9092"),
            ("OTHER", "x"),
        ]);
        assert_eq!(
            env.kafka_properties(KAFKA_RESERVED).unwrap(),
            vec![("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string()), ("security.protocol".into(), "SASL_SSL".into())]
        );
        let weakened = Env::from_pairs([("LEDGERLINE_KAFKA_ACKS", "1")]).kafka_properties(KAFKA_RESERVED).unwrap_err();
        assert_eq!(weakened.name, "LEDGERLINE_KAFKA_ACKS");
        assert!(weakened.reason.contains("acks"));
    }

    #[test]
    fn the_write_settings_fail_fast_on_a_bad_value() {
        let error = WriteSettings::read(&Env::from_pairs([("LEDGERLINE_MAX_OPEN_ACCOUNTS", "0")])).unwrap_err();
        assert_eq!(error.name, "LEDGERLINE_MAX_OPEN_ACCOUNTS");
        let settings = WriteSettings::read(&Env::default()).unwrap();
        assert_eq!((settings.max_open_accounts, settings.store.events_topic.as_str()), (DEFAULT_MAX_OPEN_ACCOUNTS, defaults::EVENTS_TOPIC));
    }
}
