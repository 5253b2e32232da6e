//! How long to wait before trying again: exponential backoff, the one
//! implementation every retry in Ledgerline uses (the outbox publisher's row
//! retries, the command API's re-decisions, DynamoDB's unprocessed items,
//! the local event source's batch retries).
//!
//! The ceiling doubles with every failed attempt, from `base` up to `max`.
//! Two ways to add randomness, so that callers that failed together do not
//! all come back in the same instant:
//!
//! - [`Backoff::delay`], "equal jitter": uniform in `[ceiling/2, ceiling]`,
//!   never zero (retrying a down broker at once would be pointless);
//! - [`Backoff::full_jitter`]: uniform in `[0, ceiling]`, for contention,
//!   where spreading out matters more than waiting at all.
//!
//! Hand-written rather than a crate (backon, backoff): it is the arithmetic
//! of one line, and callers need the delay itself (the publisher stores it
//! as a next-attempt time in PostgreSQL), not a retry loop.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The ceiling after `failed_attempts` (>= 1) failures: `base * 2^(n-1)`,
    /// at most `max`. Without randomness.
    pub fn ceiling(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// Equal jitter with `random` (uniform in `[0, 1)`) as the random part.
    pub fn delay_with(&self, failed_attempts: u32, random: f64) -> Duration {
        let half = self.ceiling(failed_attempts) / 2;
        half + half.mul_f64(random.clamp(0.0, 1.0))
    }

    /// Equal jitter: uniform in `[ceiling/2, ceiling]`.
    pub fn delay(&self, failed_attempts: u32) -> Duration {
        self.delay_with(failed_attempts, fastrand::f64())
    }

    /// Full jitter: uniform in `[0, ceiling]`.
    pub fn full_jitter(&self, failed_attempts: u32) -> Duration {
        self.ceiling(failed_attempts).mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };

    #[test]
    fn the_delay_doubles_up_to_the_maximum() {
        assert_eq!(
            (BACKOFF.ceiling(1), BACKOFF.ceiling(2), BACKOFF.ceiling(7)),
            (Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(60))
        );
        assert!(BACKOFF.delay_with(1, 0.999_999) < Duration::from_secs(1));
        assert_eq!(BACKOFF.delay_with(1, 0.0), Duration::from_millis(500));
        assert_eq!(BACKOFF.delay_with(3, 0.0), Duration::from_secs(2));
        assert_eq!(BACKOFF.delay_with(30, 0.0), Duration::from_secs(30));
        assert_eq!(BACKOFF.delay_with(u32::MAX, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_its_range_and_varies() {
        for attempt in 1..12 {
            let ceiling = BACKOFF.ceiling(attempt);
            for _ in 0..50 {
                let delay = BACKOFF.delay(attempt);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?}");
                assert!(BACKOFF.full_jitter(attempt) <= ceiling);
            }
        }
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| BACKOFF.delay(5)).collect();
        assert!(draws.len() > 1, "jitter must vary");
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| BACKOFF.full_jitter(5)).collect();
        assert!(draws.len() > 1, "jitter must vary");
    }
}
