//! What a caller asks an account to do.
//!
//! Commands are plain data, already validated at the edge into domain types
//! ([`Amount`], [`Currency`], [`Reference`]). Ids and the clock come from the
//! caller too, so deciding stays a pure function.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Amount, Currency, DomainError, HoldLifetime, MAX_OVERDRAFT_LIMIT};

/// A command on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Open {
        account_id: Uuid,
        owner_id: OwnerId,
        currency: Currency,
        overdraft_limit: OverdraftLimit,
    },
    Deposit {
        amount: Amount,
        reference: Option<Reference>,
    },
    Withdraw {
        amount: Amount,
        reference: Option<Reference>,
    },
    Freeze,
    Unfreeze,
    Close,
    /// Reserve `amount` of the available balance until `lifetime` passes.
    PlaceHold {
        hold_id: Uuid,
        amount: Amount,
        reference: Option<Reference>,
        lifetime: HoldLifetime,
    },
    /// Move `amount` (default: all) of a hold out of the ledger; free the rest.
    CaptureHold {
        hold_id: Uuid,
        amount: Option<Amount>,
        reference: Option<Reference>,
    },
    /// End a hold without moving money.
    ReleaseHold {
        hold_id: Uuid,
    },
    /// Record the expiry of every hold past its `expires_at` (the sweep's command).
    ExpireHolds,
}

/// Capture a hold into another account of the ledger: decided over both
/// accounts at once, like a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureToAccount {
    pub hold_id: Uuid,
    pub transfer_id: Uuid,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    /// Default: the whole hold.
    pub amount: Option<Amount>,
    pub reference: Option<Reference>,
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
/// characters and no invisible format characters (it ends up in statements
/// and logs, where a right-to-left override or a zero-width character could
/// make one reference look like another).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference(String);

impl Reference {
    pub const MAX_CHARS: usize = 140;

    /// A new reference, from a request: the full rule.
    pub fn new(text: impl Into<String>) -> Result<Self, DomainError> {
        let text = text.into();
        if text.chars().any(is_invisible_format) {
            return Err(DomainError::InvalidReference);
        }
        Self::stored(text)
    }

    /// A reference as events already hold it: the rule it was written
    /// under (length, control characters). Events are never rewritten, so
    /// a stricter rule for new input must not make old ones unreadable.
    fn stored(text: String) -> Result<Self, DomainError> {
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
        Self::stored(value)
    }
}

/// Unicode's format characters (general category Cf) and the other
/// invisible characters that change how text around them is shown:
/// bidirectional embeddings, overrides, isolates and marks, zero-width
/// spaces and joiners, the byte-order mark, invisible operators, and tag
/// characters. (Listed here rather than taken from a Unicode crate: the
/// set is small and changes rarely; the tests pin it.)
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
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

    #[test]
    fn references_refuse_invisible_formatting_but_stored_ones_still_read() {
        // A right-to-left override makes "invoice 1234" show as "4321 eciovni".
        for sneaky in ["pay \u{202E}4321", "a\u{200B}b", "\u{2066}x\u{2069}", "\u{FEFF}bom", "x\u{E0041}", "soft\u{00AD}hyphen"] {
            assert_eq!(Reference::new(sneaky), Err(DomainError::InvalidReference), "{sneaky:?}");
        }
        // Visible scripts, including right-to-left ones and emoji, are fine.
        for fine in ["سلام", "שלום", "日本語", "naïve café", "🏦 rent"] {
            assert!(Reference::new(fine).is_ok(), "{fine:?}");
        }
        // An event written before the stricter rule still decodes.
        let old: Reference = serde_json::from_value(serde_json::json!("pay \u{202E}4321")).unwrap();
        assert_eq!(old.as_str(), "pay \u{202E}4321");
        assert!(serde_json::from_value::<Reference>(serde_json::json!("tab\there")).is_err());
    }
}
