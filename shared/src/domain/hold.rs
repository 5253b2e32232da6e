//! Holds: money reserved on an account now, captured or released later.
//!
//! A hold does not change the balance; it lowers the **available balance**
//! (`balance + overdraft_limit - held`), on which withdrawals, transfers and
//! new holds are decided, so reserved money cannot be spent twice. A hold
//! ends exactly once: captured (all or part of it moves, the rest is freed),
//! released, or expired.
//!
//! Expiry is decided against the clock the caller passes (`at`), never
//! against a sweep having run: a hold past its `expires_at` counts for
//! nothing and cannot be captured, even before its [`AccountEvent::HoldExpired`]
//! is recorded by the scheduled sweep ([`AccountCommand::ExpireHolds`]).
//!
//! [`AccountEvent::HoldExpired`]: super::AccountEvent::HoldExpired
//! [`AccountCommand::ExpireHolds`]: super::AccountCommand::ExpireHolds

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Amount, DomainError};

/// At most this many holds are active on one account at once, so its
/// state stays small enough to load in one read (refused: `too_many_holds`).
pub const MAX_ACTIVE_HOLDS: usize = 1_000;

/// How many ended holds an account remembers, so that capturing or
/// releasing one says how it ended (`hold_not_active`) rather than
/// `hold_not_found`. Older ones are forgotten by the write side (the query
/// API still shows them).
pub const REMEMBERED_ENDED_HOLDS: usize = 1_000;

/// How long a hold may live: 60 s to 30 days (default 7 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldLifetime(i64);

impl HoldLifetime {
    pub const MIN_SECONDS: i64 = 60;
    pub const MAX_SECONDS: i64 = 30 * 24 * 3600;
    pub const DEFAULT_SECONDS: i64 = 7 * 24 * 3600;

    pub fn new(seconds: i64) -> Result<Self, DomainError> {
        if !(Self::MIN_SECONDS..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(DomainError::InvalidHoldLifetime(seconds));
        }
        Ok(Self(seconds))
    }

    pub fn seconds(self) -> i64 {
        self.0
    }

    /// When a hold placed at `at` expires.
    pub fn expires_at(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + Duration::seconds(self.0)
    }
}

impl Default for HoldLifetime {
    fn default() -> Self {
        Self(Self::DEFAULT_SECONDS)
    }
}

/// How a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HoldStatus {
    Active,
    Captured,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Captured => "captured",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Captured, Self::Released, Self::Expired].into_iter().find(|s| s.as_str() == text)
    }
}

/// A hold that no event has ended yet (it may be past its expiry): only
/// what deciding needs. Its reference and placing time stay in its
/// `HoldPlaced` event and the read model, so that an account with many
/// holds keeps a small state (it is read, decoded and snapshotted on every
/// command on the account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub hold_id: Uuid,
    pub amount: Amount,
    /// An integer in the snapshot (nanoseconds since the epoch), not RFC 3339 text.
    #[serde(with = "chrono::serde::ts_nanoseconds")]
    pub expires_at: DateTime<Utc>,
}

impl Hold {
    /// Whether it still reserves money at `at`.
    pub fn is_live(&self, at: DateTime<Utc>) -> bool {
        at < self.expires_at
    }
}
