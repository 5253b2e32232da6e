//! `ledgerline token --sub alice [--admin] [--ttl 1h]`: a token the local
//! gateway accepts, signed with `LEDGERLINE_JWT_SECRET` (the development
//! default, with a warning on stderr, when unset). Only the token goes to
//! stdout, so `TOKEN=$(ledgerline token --sub alice)` works.

use std::time::Duration;

use anyhow::Context;

use crate::gateway::auth::{JwtSecret, mint};

pub fn run(sub: &str, admin: bool, ttl: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!sub.trim().is_empty() && sub.len() <= 255, "--sub must be 1 to 255 characters");
    let ttl = parse_ttl(ttl)?;
    let secret = JwtSecret::from_env();
    if let Some(warning) = secret.warning() {
        eprintln!("warning: {warning}");
    }
    let token = mint(&secret, sub, admin, ttl).context("cannot sign the token")?;
    println!("{token}");
    Ok(())
}

/// Why a `--ttl` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid --ttl {given:?}: {reason} (use a whole number and a unit: 30s, 30m, 1h or 7d)")]
pub struct TtlError {
    given: String,
    reason: &'static str,
}

/// `30s`, `30m`, `1h`, `7d`: a positive whole number and one unit, at most 365 days.
pub fn parse_ttl(text: &str) -> Result<Duration, TtlError> {
    let error = |reason| TtlError { given: text.to_owned(), reason };
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| error("no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| error("no number"))?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(error("unknown unit")),
    };
    let seconds = number.checked_mul(unit_seconds).ok_or_else(|| error("too long"))?;
    match seconds {
        0 => Err(error("must be positive")),
        s if s > 365 * 86_400 => Err(error("longer than 365 days")),
        s => Ok(Duration::from_secs(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_in_seconds_minutes_hours_and_days() {
        assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl(" 7d "), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "10", "0s", "1w", "1.5h", "-1h", "1h30m", "366d", "99999999999999999999d"] {
            let error = parse_ttl(bad).unwrap_err();
            assert!(error.to_string().contains("30s, 30m, 1h or 7d"), "{bad}: {error}");
        }
    }
}
