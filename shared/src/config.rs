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
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/ledgerline";

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            pool_size: parse("LEDGERLINE_DB_POOL_SIZE", 8, |n: &usize| (1..=1000).contains(n))?,
            connect_timeout: Duration::from_millis(parse("LEDGERLINE_DB_CONNECT_TIMEOUT_MS", 3000, |n: &u64| *n > 0)?),
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
