//! When a failed row is tried again: exponential backoff with jitter.
//!
//! The delay doubles with every failed attempt, from `base` up to `max`, and
//! a random part spreads retries so rows that failed together (the broker
//! went down) do not all come back in the same instant. "Equal jitter": a
//! delay `d` becomes a uniform pick in `[d/2, d]`, so it never collapses to
//! zero (that would retry a down broker at once) and never exceeds `max`.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt `failed_attempts + 1`, given `failed_attempts >= 1`
    /// failures so far, with jitter drawn from `random` (uniform in `[0, 1)`).
    pub fn delay_with(&self, failed_attempts: u32, random: f64) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(random.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay_with`] with fresh randomness.
    pub fn delay(&self, failed_attempts: u32) -> Duration {
        self.delay_with(failed_attempts, random_unit())
    }
}

/// A uniform pick in `[0, 1)`. Uuid v4 carries 122 random bits from the OS
/// generator; 53 of them make the float. No extra crate for one number.
fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };

    #[test]
    fn the_delay_doubles_up_to_the_maximum() {
        assert!(BACKOFF.delay_with(1, 0.999_999) < Duration::from_secs(1));
        assert_eq!(BACKOFF.delay_with(1, 0.0), Duration::from_millis(500));
        assert_eq!(BACKOFF.delay_with(3, 0.0), Duration::from_secs(2));
        assert_eq!(BACKOFF.delay_with(30, 0.0), Duration::from_secs(30));
        assert_eq!(BACKOFF.delay_with(u32::MAX, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        for attempt in 1..12 {
            let ceiling = Duration::from_secs(1 << (attempt - 1)).min(Duration::from_secs(60));
            for _ in 0..50 {
                let delay = BACKOFF.delay(attempt);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?}");
            }
        }
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| BACKOFF.delay(5)).collect();
        assert!(draws.len() > 1, "jitter must vary");
    }
}
