//! Settings from the environment, read once per container.

use std::time::Duration;

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
    /// `LEDGERLINE_DYNAMODB_TIMEOUT_MS` (default 1000).
    pub dynamodb_breaker: BreakerSettings,
    /// `LEDGERLINE_MAX_IN_FLIGHT` (default 64): requests handled at once per container.
    pub max_in_flight: usize,
    /// `LEDGERLINE_QUEUE_WAIT_MS` (default 50): how long a request waits for a slot before 503.
    pub queue_wait: Duration,
    /// `LEDGERLINE_CURSOR_SECRET` (default [`DEVELOPMENT_CURSOR_SECRET`]).
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
                call_timeout: Duration::from_millis(100),
            },
            dynamodb_breaker: BreakerSettings {
                failure_threshold: 5,
                cool_down: Duration::from_secs(2),
                call_timeout: Duration::from_millis(1000),
            },
            max_in_flight: 64,
            queue_wait: Duration::from_millis(50),
            cursor_secret: DEVELOPMENT_CURSOR_SECRET.as_bytes().to_vec(),
        }
    }
}

impl QuerySettings {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    /// Values that are missing, blank or do not parse keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = Self::default();
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| var(name).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(default);
        let millis = |name: &str, default: Duration| Duration::from_millis(number(name, default.as_millis() as u64));
        let breaker = |prefix: &str, timeout_var: &str, default: BreakerSettings| BreakerSettings {
            failure_threshold: number(&format!("{prefix}_FAILURES"), u64::from(default.failure_threshold)).clamp(1, 1000) as u32,
            cool_down: millis(&format!("{prefix}_COOLDOWN_MS"), default.cool_down),
            call_timeout: millis(timeout_var, default.call_timeout),
        };
        let cursor_secret = match var("LEDGERLINE_CURSOR_SECRET") {
            Some(secret) => secret.into_bytes(),
            None => {
                tracing::warn!("LEDGERLINE_CURSOR_SECRET is not set: using the development secret");
                defaults.cursor_secret.clone()
            }
        };
        Self {
            l1_capacity: number("LEDGERLINE_L1_CAPACITY", defaults.l1_capacity),
            l1_ttl: millis("LEDGERLINE_L1_TTL_MS", defaults.l1_ttl),
            redis_breaker: breaker("LEDGERLINE_REDIS_BREAKER", "LEDGERLINE_REDIS_TIMEOUT_MS", defaults.redis_breaker),
            dynamodb_breaker: breaker("LEDGERLINE_DYNAMODB_BREAKER", "LEDGERLINE_DYNAMODB_TIMEOUT_MS", defaults.dynamodb_breaker),
            max_in_flight: number("LEDGERLINE_MAX_IN_FLIGHT", defaults.max_in_flight as u64).max(1) as usize,
            queue_wait: millis("LEDGERLINE_QUEUE_WAIT_MS", defaults.queue_wait),
            cursor_secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn reads_every_variable_and_keeps_defaults_for_bad_values() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("LEDGERLINE_L1_CAPACITY", "0"),
            ("LEDGERLINE_L1_TTL_MS", "250"),
            ("LEDGERLINE_REDIS_BREAKER_FAILURES", "7"),
            ("LEDGERLINE_REDIS_BREAKER_COOLDOWN_MS", "900"),
            ("LEDGERLINE_REDIS_TIMEOUT_MS", "30"),
            ("LEDGERLINE_DYNAMODB_TIMEOUT_MS", "nonsense"),
            ("LEDGERLINE_MAX_IN_FLIGHT", "0"),
            ("LEDGERLINE_CURSOR_SECRET", "s3cret"),
        ]);
        let settings = QuerySettings::from_lookup(|name| env.get(name).map(|v| v.to_string()));
        assert_eq!(settings.l1_capacity, 0);
        assert_eq!(settings.l1_ttl, Duration::from_millis(250));
        assert_eq!(settings.redis_breaker.failure_threshold, 7);
        assert_eq!(settings.redis_breaker.cool_down, Duration::from_millis(900));
        assert_eq!(settings.redis_breaker.call_timeout, Duration::from_millis(30));
        assert_eq!(settings.dynamodb_breaker.call_timeout, Duration::from_millis(1000));
        assert_eq!(settings.max_in_flight, 1, "at least one request runs");
        assert_eq!(settings.cursor_secret, b"s3cret");
        let defaults = QuerySettings::from_lookup(|_| None);
        assert_eq!(defaults.cursor_secret, DEVELOPMENT_CURSOR_SECRET.as_bytes());
    }
}
