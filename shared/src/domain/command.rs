//! What a caller asks an account to do.
//!
//! Commands are plain data, already validated at the edge into domain types
//! ([`Amount`], [`Currency`], [`Reference`]). Ids and the clock come from the
//! caller too, so deciding stays a pure function.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Amount, Currency, DomainError, MAX_OVERDRAFT_LIMIT};

/// A command on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Open { account_id: Uuid, owner_id: OwnerId, currency: Currency, overdraft_limit: OverdraftLimit },
    Deposit { amount: Amount, reference: Option<Reference> },
    Withdraw { amount: Amount, reference: Option<Reference> },
    Freeze,
    Unfreeze,
    Close,
}

/// Move money from one account to another; decided over both accounts at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferCommand {
    pub transfer_id: Uuid,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: Amount,
    pub reference: Option<Reference>,
}

/// Who owns an account: the `sub` claim of the caller who opened it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerId(String);

impl OwnerId {
    pub fn new(id: impl Into<String>) -> Result<Self, DomainError> {
        let id = id.into();
        if id.is_empty() || id.chars().count() > 255 || id.chars().any(char::is_control) {
            return Err(DomainError::InvalidOwner);
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OwnerId {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<OwnerId> for String {
    fn from(owner: OwnerId) -> String {
        owner.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far below zero an account may go, in minor units (0 to 10^12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct OverdraftLimit(i64);

impl OverdraftLimit {
    pub fn new(minor_units: i64) -> Result<Self, DomainError> {
        if !(0..=MAX_OVERDRAFT_LIMIT).contains(&minor_units) {
            return Err(DomainError::InvalidOverdraftLimit(minor_units));
        }
        Ok(Self(minor_units))
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for OverdraftLimit {
    type Error = DomainError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<OverdraftLimit> for i64 {
    fn from(limit: OverdraftLimit) -> i64 {
        limit.0
    }
}

/// A free-text note on a money movement: at most 140 characters, no control
/// characters (it ends up in statements and logs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference(String);

impl Reference {
    pub const MAX_CHARS: usize = 140;

    pub fn new(text: impl Into<String>) -> Result<Self, DomainError> {
        let text = text.into();
        if text.chars().count() > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(DomainError::InvalidReference);
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reference {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Reference> for String {
    fn from(reference: Reference) -> String {
        reference.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_are_bounded_and_printable() {
        assert!(OwnerId::new("alice").is_ok());
        assert!(OwnerId::new("x".repeat(255)).is_ok());
        for bad in [String::new(), "x".repeat(256), "a\nb".into()] {
            assert_eq!(OwnerId::new(bad), Err(DomainError::InvalidOwner));
        }
    }

    #[test]
    fn overdraft_limits_are_zero_or_positive_and_bounded() {
        assert_eq!(OverdraftLimit::new(0).unwrap().minor_units(), 0);
        assert_eq!(OverdraftLimit::new(MAX_OVERDRAFT_LIMIT).unwrap().minor_units(), MAX_OVERDRAFT_LIMIT);
        assert_eq!(OverdraftLimit::new(-1), Err(DomainError::InvalidOverdraftLimit(-1)));
        assert!(OverdraftLimit::new(MAX_OVERDRAFT_LIMIT + 1).is_err());
    }

    #[test]
    fn references_are_bounded_and_printable() {
        assert!(Reference::new("").is_ok());
        assert!(Reference::new("é".repeat(140)).is_ok());
        assert_eq!(Reference::new("x".repeat(141)), Err(DomainError::InvalidReference));
        assert_eq!(Reference::new("tab\there"), Err(DomainError::InvalidReference));
    }
}
