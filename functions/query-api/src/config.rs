//! Settings from the environment, read once per container.

use std::time::Duration;

use ledgerline_shared::cache::CacheSettings;
use ledgerline_shared::config::{ConfigError, Env, defaults, dynamodb_timeout};
use ledgerline_shared::resilience::BreakerSettings;

/// The development cursor secret. Deployed functions must set
/// `LEDGERLINE_CURSOR_SECRET`; with this default anyone who reads the source
/// can forge cursors (they still cannot read an account they may not see).
pub const DEVELOPMENT_CURSOR_SECRET: &str = "ledgerline-development-cursor-secret-do-not-use-in-production";

#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// `LEDGERLINE_L1_CAPACITY` (default 10000 accounts; 0 turns the L1 cache off).
    pub l1_capacity: u64,
    /// `LEDGERLINE_L1_TTL_MS` (default 2000): how long an account stays in the L1 cache.
    pub l1_ttl: Duration,
    /// `LEDGERLINE_REDIS_BREAKER_FAILURES` (default 3), `LEDGERLINE_REDIS_BREAKER_COOLDOWN_MS` (default 5000);
    /// the call timeout is `LEDGERLINE_REDIS_TIMEOUT_MS` (default 100, shared with the cache settings).
    pub redis_breaker: BreakerSettings,
    /// `LEDGERLINE_DYNAMODB_BREAKER_FAILURES` (default 5), `LEDGERLINE_DYNAMODB_BREAKER_COOLDOWN_MS` (default 2000),
    /// `LEDGERLINE_DYNAMODB_TIMEOUT_MS` (default 3000, as everywhere).
    pub dynamodb_breaker: BreakerSettings,
    /// `LEDGERLINE_MAX_IN_FLIGHT` (default 64): requests handled at once per container.
    pub max_in_flight: usize,
    /// `LEDGERLINE_QUEUE_WAIT_MS` (default 50): how long a request waits for a slot before 503.
    pub queue_wait: Duration,
    /// `LEDGERLINE_CURSOR_SECRET` (default [`DEVELOPMENT_CURSOR_SECRET`]);
    /// deployed, fetched at start from `LEDGERLINE_CURSOR_SECRET_ARN`.
    pub cursor_secret: Vec<u8>,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self {
            l1_capacity: 10_000,
            l1_ttl: Duration::from_millis(2000),
            redis_breaker: BreakerSettings {
                failure_threshold: 3,
                cool_down: Duration::from_secs(5),
                call_timeout: Duration::from_millis(defaults::REDIS_TIMEOUT_MS),
            },
            dynamodb_breaker: BreakerSettings {
                failure_threshold: 5,
                cool_down: Duration::from_secs(2),
                call_timeout: Duration::from_millis(defaults::DYNAMODB_TIMEOUT_MS),
            },
            max_in_flight: 64,
            queue_wait: Duration::from_millis(50),
            cursor_secret: DEVELOPMENT_CURSOR_SECRET.as_bytes().to_vec(),
        }
    }
}

impl QuerySettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads the settings by the one rule of `ledgerline_shared::config`:
    /// defaults when unset, a bad value is an error naming the variable.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let breaker = |prefix: &str, call_timeout: Duration, default: BreakerSettings| -> Result<BreakerSettings, ConfigError> {
            Ok(BreakerSettings {
                failure_threshold: env.number(&format!("{prefix}_FAILURES"), default.failure_threshold, |n| (1..=1000).contains(n))?,
                cool_down: env.millis(&format!("{prefix}_COOLDOWN_MS"), default.cool_down.as_millis() as u64, |n| *n <= 3_600_000)?,
                call_timeout,
            })
        };
        let redis_timeout = CacheSettings::read(env)?.timeout;
        let cursor_secret = match env.text("LEDGERLINE_CURSOR_SECRET") {
            Some(secret) => secret.into_bytes(),
            // Deployed, the secret is fetched at start (main.rs, `secrets`).
            None if env.text("LEDGERLINE_CURSOR_SECRET_ARN").is_some() => defaults.cursor_secret.clone(),
            None => {
                tracing::warn!("LEDGERLINE_CURSOR_SECRET is not set: using the development secret");
                defaults.cursor_secret.clone()
            }
        };
        Ok(Self {
            l1_capacity: env.number("LEDGERLINE_L1_CAPACITY", defaults.l1_capacity, |_| true)?,
            l1_ttl: env.millis("LEDGERLINE_L1_TTL_MS", defaults.l1_ttl.as_millis() as u64, |n| (1..=3_600_000).contains(n))?,
            redis_breaker: breaker("LEDGERLINE_REDIS_BREAKER", redis_timeout, defaults.redis_breaker)?,
            dynamodb_breaker: breaker("LEDGERLINE_DYNAMODB_BREAKER", dynamodb_timeout(env)?, defaults.dynamodb_breaker)?,
            max_in_flight: env.number("LEDGERLINE_MAX_IN_FLIGHT", defaults.max_in_flight, |n| (1..=100_000).contains(n))?,
            queue_wait: env.millis("LEDGERLINE_QUEUE_WAIT_MS", defaults.queue_wait.as_millis() as u64, |n| *n <= 60_000)?,
            cursor_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_variable_and_a_bad_value_stops_the_start() {
        let env = Env::from_pairs([
            ("LEDGERLINE_L1_CAPACITY", "0"),
            ("LEDGERLINE_L1_TTL_MS", "250"),
            ("LEDGERLINE_REDIS_BREAKER_FAILURES", "7"),
            ("LEDGERLINE_REDIS_BREAKER_COOLDOWN_MS", "900"),
            ("LEDGERLINE_REDIS_TIMEOUT_MS", "30"),
            ("LEDGERLINE_DYNAMODB_TIMEOUT_MS", "800"),
            ("LEDGERLINE_MAX_IN_FLIGHT", "3"),
            ("LEDGERLINE_CURSOR_SECRET", "s3cret"),
        ]);
        let settings = QuerySettings::read(&env).unwrap();
        assert_eq!(settings.l1_capacity, 0);
        assert_eq!(settings.l1_ttl, Duration::from_millis(250));
        assert_eq!(settings.redis_breaker.failure_threshold, 7);
        assert_eq!(settings.redis_breaker.cool_down, Duration::from_millis(900));
        assert_eq!(settings.redis_breaker.call_timeout, Duration::from_millis(30));
        assert_eq!(settings.dynamodb_breaker.call_timeout, Duration::from_millis(800));
        assert_eq!(settings.max_in_flight, 3);
        assert_eq!(settings.cursor_secret, b"s3cret");

        let defaults = QuerySettings::read(&Env::default()).unwrap();
        assert_eq!(defaults.cursor_secret, DEVELOPMENT_CURSOR_SECRET.as_bytes());
        assert_eq!(defaults.dynamodb_breaker.call_timeout, Duration::from_millis(ledgerline_shared::config::defaults::DYNAMODB_TIMEOUT_MS));

        for (name, value) in
            [("LEDGERLINE_DYNAMODB_TIMEOUT_MS", "nonsense"), ("LEDGERLINE_MAX_IN_FLIGHT", "0"), ("LEDGERLINE_L1_TTL_MS", "-1")]
        {
            let error = QuerySettings::read(&Env::from_pairs([(name, value)])).unwrap_err();
            assert_eq!(error.name, name);
        }
    }
}
