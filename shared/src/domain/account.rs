//! The account aggregate's state, and how events change it.
//!
//! State is never edited directly: it is the fold of the account's events.
//! [`Account::evolve`] checks each event against the state it lands on, so a
//! corrupted or reordered history is an error rather than a wrong balance.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AccountEvent, Currency, DomainError, OwnerId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Open,
    Frozen,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Frozen => "frozen",
            Self::Closed => "closed",
        }
    }
}

/// An account as its events left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: Uuid,
    pub owner_id: OwnerId,
    pub currency: Currency,
    /// Minor units; never below `-overdraft_limit`.
    pub balance: i64,
    pub overdraft_limit: i64,
    pub status: AccountStatus,
    /// How many events the account has: the stream version.
    pub version: u64,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Account {
    /// The state after `event`, given the state before it (`None` before the
    /// account was opened).
    pub fn evolve(state: Option<Account>, event: &AccountEvent) -> Result<Account, DomainError> {
        let history = |why: &str| DomainError::InvalidHistory(why.to_owned());
        let mut account = match (state, event) {
            (None, AccountEvent::Opened { account_id, owner_id, currency, overdraft_limit, at }) => {
                return Ok(Account {
                    id: *account_id,
                    owner_id: OwnerId::new(owner_id.clone()).map_err(|_| history("invalid owner"))?,
                    currency: *currency,
                    balance: 0,
                    overdraft_limit: *overdraft_limit,
                    status: AccountStatus::Open,
                    version: 1,
                    opened_at: *at,
                    updated_at: *at,
                });
            }
            (None, _) => return Err(history("first event is not AccountOpened")),
            (Some(_), AccountEvent::Opened { .. }) => return Err(history("account opened twice")),
            (Some(account), _) => account,
        };
        match event {
            AccountEvent::Opened { .. } => unreachable!("handled above"),
            AccountEvent::Deposited { amount, balance_after, .. } | AccountEvent::TransferReceived { amount, balance_after, .. } => {
                let expected = account.balance.checked_add(amount.minor_units()).ok_or(DomainError::BalanceOverflow)?;
                if expected != *balance_after {
                    return Err(history("balance_after does not match the credit"));
                }
                account.balance = expected;
            }
            AccountEvent::Withdrawn { amount, balance_after, .. } | AccountEvent::TransferSent { amount, balance_after, .. } => {
                let expected = account.balance.checked_sub(amount.minor_units()).ok_or(DomainError::BalanceOverflow)?;
                if expected != *balance_after {
                    return Err(history("balance_after does not match the debit"));
                }
                account.balance = expected;
            }
            AccountEvent::Frozen { .. } => account.status = AccountStatus::Frozen,
            AccountEvent::Unfrozen { .. } => account.status = AccountStatus::Open,
            AccountEvent::Closed { .. } => account.status = AccountStatus::Closed,
        }
        account.version += 1;
        account.updated_at = event.occurred_at();
        Ok(account)
    }

    /// Replays a whole history from nothing (or from a snapshot's state).
    pub fn replay<'a>(start: Option<Account>, events: impl IntoIterator<Item = &'a AccountEvent>) -> Result<Option<Account>, DomainError> {
        events.into_iter().try_fold(start, |state, event| Account::evolve(state, event).map(Some))
    }

    /// The most this account can pay out right now.
    pub fn available(&self) -> i64 {
        self.balance.saturating_add(self.overdraft_limit)
    }
}
