//! A Lambda invocation's deadline as a [`tokio::time::Instant`], for the
//! scheduled functions that stop with a margin before it (the outbox
//! publisher, the reconciler) instead of being killed mid-run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Epoch milliseconds of 2000-01-01: no real deadline is earlier.
const EPOCH_MS_2000: u64 = 946_684_800_000;

/// The run's deadline as an [`Instant`], from the context's deadline in
/// milliseconds since the epoch, as Lambda sends it. Local tools differ:
/// `0` (none given) means one minute, and a value too small to be a date
/// is a duration — `cargo lambda watch` sends its timeout (600000) there.
pub fn deadline_from(deadline_ms: u64) -> Instant {
    if deadline_ms == 0 {
        return Instant::now() + Duration::from_secs(60);
    }
    if deadline_ms < EPOCH_MS_2000 {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_comes_from_the_context() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = deadline_from(now_ms + 30_000).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30), "{left:?}");
        assert!(deadline_from(now_ms - 5_000) <= Instant::now(), "a past deadline leaves no time");
        let default = deadline_from(0).saturating_duration_since(Instant::now());
        assert!(default > Duration::from_secs(59));
        // cargo lambda watch sends its timeout, a duration, where Lambda sends a date.
        let local = deadline_from(600_000).saturating_duration_since(Instant::now());
        assert!(local > Duration::from_secs(599) && local <= Duration::from_secs(600), "{local:?}");
    }
}
