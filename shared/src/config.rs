//! Settings from the environment, with defaults that work on a developer's
//! machine. Every variable is listed in README.md ("Configuration").

use std::time::Duration;

use thiserror::Error;

use crate::event_store::StoreSettings;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

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

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            pool_size: parse("LEDGERLINE_DB_POOL_SIZE", 8, |n: &usize| (1..=1000).contains(n))?,
            connect_timeout: Duration::from_millis(parse("LEDGERLINE_DB_CONNECT_TIMEOUT_MS", 3000, |n: &u64| *n > 0)?),
            ca_file: var("LEDGERLINE_DB_CA_FILE").map(std::path::PathBuf::from),
        })
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
}

impl WriteSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = StoreSettings::default();
        Ok(Self {
            store: StoreSettings {
                events_topic: var("LEDGERLINE_EVENTS_TOPIC").unwrap_or(defaults.events_topic),
                max_event_bytes: parse("LEDGERLINE_MAX_EVENT_BYTES", defaults.max_event_bytes, |n: &usize| *n > 0)?,
                max_events_per_append: defaults.max_events_per_append,
            },
            snapshot_every: parse("LEDGERLINE_SNAPSHOT_EVERY", 50, |_: &u64| true)?,
            idempotency_ttl: chrono::Duration::hours(parse("LEDGERLINE_IDEMPOTENCY_TTL_HOURS", 24, |n: &i64| (1..=24 * 365).contains(n))?),
        })
    }
}

impl crate::reconcile::ReconcileSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            overlap: Duration::from_millis(parse("LEDGERLINE_RECONCILE_OVERLAP_MS", defaults.overlap.as_millis() as u64, |_: &u64| true)?),
            sweep_page: parse("LEDGERLINE_RECONCILE_SWEEP_PAGE", defaults.sweep_page, |n: &usize| (1..=100_000).contains(n))?,
            ..defaults
        })
    }
}

#[cfg(feature = "http")]
impl crate::http::caller::AdminRule {
    pub fn from_env() -> Self {
        let defaults = Self::default();
        Self {
            claim: var("LEDGERLINE_ADMIN_GROUPS_CLAIM").unwrap_or(defaults.claim),
            group: var("LEDGERLINE_ADMIN_GROUP").unwrap_or(defaults.group),
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse<T>(name: &'static str, default: T, valid: impl Fn(&T) -> bool) -> Result<T, ConfigError>
where
    T: std::str::FromStr + std::fmt::Display,
{
    let Some(raw) = var(name) else {
        return Ok(default);
    };
    let value: T = raw.trim().parse().map_err(|_| ConfigError { name, value: raw.clone(), reason: "not a number".into() })?;
    if !valid(&value) {
        return Err(ConfigError { name, value: raw, reason: "out of range".into() });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_the_default_or_a_valid_value_and_names_a_bad_one() {
        // Names no one sets, so tests cannot disturb each other.
        assert_eq!(parse("LEDGERLINE_TEST_UNSET_VARIABLE", 7u64, |_| true), Ok(7));
        unsafe { std::env::set_var("LEDGERLINE_TEST_BAD_NUMBER", "seven") };
        let error = parse("LEDGERLINE_TEST_BAD_NUMBER", 7u64, |_| true).unwrap_err();
        assert_eq!(error.name, "LEDGERLINE_TEST_BAD_NUMBER");
        unsafe { std::env::set_var("LEDGERLINE_TEST_OUT_OF_RANGE", "0") };
        assert_eq!(parse("LEDGERLINE_TEST_OUT_OF_RANGE", 7u64, |n| *n > 0).unwrap_err().reason, "out of range");
        unsafe { std::env::set_var("LEDGERLINE_TEST_GOOD_NUMBER", " 12 ") };
        assert_eq!(parse("LEDGERLINE_TEST_GOOD_NUMBER", 7u64, |n| *n > 0), Ok(12));
    }
}

/// Settings Ledgerline reads itself from `LEDGERLINE_KAFKA_*`; every other
/// such variable is a librdkafka property (see [`kafka_properties`]).
pub const KAFKA_OWN_SETTINGS: [&str; 3] = ["BROKERS", "MESSAGE_TIMEOUT_MS", "LINGER_MS"];

/// The librdkafka properties passed through from the environment, so MSK's
/// security settings need no code: `LEDGERLINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL`
/// becomes `security.protocol=SASL_SSL`. Sorted by name. A property in
/// `reserved` (one the caller's guarantees depend on) is an error.
pub fn kafka_properties<'a>(
    vars: impl IntoIterator<Item = &'a (String, String)>,
    reserved: &[&str],
) -> Result<Vec<(String, String)>, (String, String, String)> {
    let mut properties = Vec::new();
    for (name, value) in vars {
        let Some(suffix) = name.strip_prefix("LEDGERLINE_KAFKA_") else { continue };
        if KAFKA_OWN_SETTINGS.contains(&suffix) || value.trim().is_empty() {
            continue;
        }
        let property = suffix.to_ascii_lowercase().replace('_', ".");
        if reserved.contains(&property.as_str()) {
            return Err((name.clone(), value.clone(), property));
        }
        properties.push((property, value.clone()));
    }
    properties.sort();
    Ok(properties)
}

#[cfg(test)]
mod kafka_tests {
    #[test]
    fn kafka_properties_pass_through_except_our_own_and_reserved_ones() {
        let vars = vec![
            ("LEDGERLINE_KAFKA_SECURITY_PROTOCOL".to_string(), "SASL_SSL".to_string()),
            ("LEDGERLINE_KAFKA_SASL_MECHANISM".into(), "SCRAM-SHA-512".into()),
            ("LEDGERLINE_KAFKA_BROKERS".into(), "b:9092".into()),
            ("OTHER".into(), "x".into()),
        ];
        assert_eq!(
            super::kafka_properties(&vars, &[]).unwrap(),
            vec![("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string()), ("security.protocol".into(), "SASL_SSL".into())]
        );
        let reserved = vec![("LEDGERLINE_KAFKA_ACKS".to_string(), "1".to_string())];
        assert_eq!(super::kafka_properties(&reserved, &["acks"]).unwrap_err().2, "acks");
    }
}
