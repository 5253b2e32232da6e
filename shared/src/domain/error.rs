//! Why the domain refuses a command.
//!
//! Each variant is a business rule or an input rule. [`DomainError::code`]
//! gives the stable, machine-readable name the HTTP API puts in its
//! `problem+json` bodies, so clients never parse messages.

use thiserror::Error;

use super::{Currency, HoldStatus};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("amount must be between 1 and 10^12 minor units, got {0}")]
    InvalidAmount(i64),
    #[error("{0:?} is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("overdraft limit must be between 0 and 10^12 minor units, got {0}")]
    InvalidOverdraftLimit(i64),
    #[error("owner id must be 1 to 255 characters without control characters")]
    InvalidOwner,
    #[error("reference must be at most 140 characters without control or invisible formatting characters")]
    InvalidReference,
    #[error("the account already exists")]
    AccountAlreadyExists,
    #[error("the account does not exist")]
    AccountNotFound,
    #[error("insufficient funds: balance {balance}, overdraft limit {overdraft_limit}, held {held}, requested {requested}")]
    InsufficientFunds { balance: i64, overdraft_limit: i64, held: i64, requested: i64 },
    #[error("the account is frozen")]
    AccountFrozen,
    #[error("the account is closed")]
    AccountClosed,
    /// The one refusal for every reason a transfer's recipient cannot take
    /// it (missing, frozen, closed, another currency, a balance at its
    /// limit): the recipient may be anyone's account, so nothing about it
    /// is revealed beyond "no".
    #[error("the recipient account cannot receive this transfer")]
    RecipientCannotReceive,
    #[error("a transfer needs two different accounts")]
    SameAccount,
    #[error("the balance must be zero to close the account, it is {0}")]
    NonZeroBalance(i64),
    #[error("the balance would overflow")]
    BalanceOverflow,
    #[error("the event history is inconsistent: {0}")]
    InvalidHistory(String),
    #[error("a hold lives 60 to 2592000 seconds (30 days), got {0}")]
    InvalidHoldLifetime(i64),
    #[error("the account has no such hold")]
    HoldNotFound,
    #[error("the hold is no longer active: it was {}", .0.as_str())]
    HoldNotActive(HoldStatus),
    #[error("the capture ({requested}) exceeds the hold ({held})")]
    CaptureExceedsHold { held: i64, requested: i64 },
    #[error("the account has {0} active holds; capture or release them before closing it")]
    ActiveHolds(usize),
    #[error("the account already has the maximum of {0} active holds")]
    TooManyHolds(usize),
    #[error("{0}")]
    InvalidEntry(String),
    #[error("the entry's debits and credits in {0} do not add up")]
    UnbalancedEntry(Currency),
    #[error("the account is in {account}, its leg in {leg}")]
    CurrencyMismatch { account: Currency, leg: Currency },
}

impl DomainError {
    /// The stable error code used in API responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidAmount(_)
            | Self::UnknownCurrency(_)
            | Self::InvalidOverdraftLimit(_)
            | Self::InvalidOwner
            | Self::InvalidReference
            | Self::InvalidHoldLifetime(_)
            | Self::InvalidEntry(_) => "validation_failed",
            Self::AccountAlreadyExists => "account_already_exists",
            Self::AccountNotFound => "account_not_found",
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::AccountFrozen => "account_frozen",
            Self::AccountClosed => "account_closed",
            Self::RecipientCannotReceive => "recipient_cannot_receive",
            Self::SameAccount => "same_account",
            Self::NonZeroBalance(_) => "nonzero_balance",
            Self::BalanceOverflow => "balance_overflow",
            Self::InvalidHistory(_) => "internal_error",
            Self::HoldNotFound => "hold_not_found",
            Self::HoldNotActive(_) => "hold_not_active",
            Self::CaptureExceedsHold { .. } => "capture_exceeds_hold",
            Self::ActiveHolds(_) => "active_holds",
            Self::TooManyHolds(_) => "too_many_holds",
            Self::UnbalancedEntry(_) => "unbalanced_entry",
            Self::CurrencyMismatch { .. } => "currency_mismatch",
        }
    }

    /// True for refusals by a business rule (HTTP 422), which are final for
    /// the request and so are stored with its idempotency key.
    pub fn is_business_rule(&self) -> bool {
        matches!(
            self,
            Self::InsufficientFunds { .. }
                | Self::AccountFrozen
                | Self::AccountClosed
                | Self::RecipientCannotReceive
                | Self::SameAccount
                | Self::NonZeroBalance(_)
                | Self::BalanceOverflow
                | Self::HoldNotActive(_)
                | Self::CaptureExceedsHold { .. }
                | Self::ActiveHolds(_)
                | Self::TooManyHolds(_)
                | Self::UnbalancedEntry(_)
                | Self::CurrencyMismatch { .. }
        )
    }
}
