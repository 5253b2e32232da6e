//! The account aggregate's state, and how events change it.
//!
//! State is never edited directly: it is the fold of the account's events.
//! [`Account::evolve`] checks each event against the state it lands on, so a
//! corrupted or reordered history is an error rather than a wrong balance.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::hold::{Hold, HoldStatus, REMEMBERED_ENDED_HOLDS};
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
    /// Holds no event has ended yet, in the order they were placed (some
    /// may be past their expiry: see [`Hold::is_live`]).
    pub holds: Vec<Hold>,
    /// The most recently ended holds and how each ended (at most
    /// [`REMEMBERED_ENDED_HOLDS`], oldest first).
    pub ended_holds: VecDeque<(Uuid, HoldStatus)>,
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
                    holds: Vec::new(),
                    ended_holds: VecDeque::new(),
                });
            }
            (None, _) => return Err(history("first event is not AccountOpened")),
            (Some(_), AccountEvent::Opened { .. }) => return Err(history("account opened twice")),
            (Some(account), _) => account,
        };
        match event {
            AccountEvent::Opened { .. } => unreachable!("handled above"),
            AccountEvent::Deposited { amount, balance_after, .. }
            | AccountEvent::TransferReceived { amount, balance_after, .. }
            | AccountEvent::EntryCredited { amount, balance_after, .. } => {
                let expected = account.balance.checked_add(amount.minor_units()).ok_or(DomainError::BalanceOverflow)?;
                if expected != *balance_after {
                    return Err(history("balance_after does not match the credit"));
                }
                account.balance = expected;
            }
            AccountEvent::Withdrawn { amount, balance_after, .. }
            | AccountEvent::TransferSent { amount, balance_after, .. }
            | AccountEvent::EntryDebited { amount, balance_after, .. } => {
                let expected = account.balance.checked_sub(amount.minor_units()).ok_or(DomainError::BalanceOverflow)?;
                if expected != *balance_after {
                    return Err(history("balance_after does not match the debit"));
                }
                account.balance = expected;
            }
            AccountEvent::HoldPlaced { hold_id, amount, expires_at, .. } => {
                if account.holds.iter().any(|h| h.hold_id == *hold_id) || account.ended_holds.iter().any(|(id, _)| id == hold_id) {
                    return Err(history("hold placed twice"));
                }
                account.holds.push(Hold { hold_id: *hold_id, amount: *amount, expires_at: *expires_at });
            }
            AccountEvent::HoldCaptured { hold_id, amount, released, balance_after, .. } => {
                let hold = account.end_hold(*hold_id, HoldStatus::Captured).ok_or_else(|| history("captured hold is not active"))?;
                if amount.minor_units() + released != hold.amount.minor_units() {
                    return Err(history("captured and released do not add up to the hold"));
                }
                let expected = account.balance.checked_sub(amount.minor_units()).ok_or(DomainError::BalanceOverflow)?;
                if expected != *balance_after {
                    return Err(history("balance_after does not match the capture"));
                }
                account.balance = expected;
            }
            AccountEvent::HoldReleased { hold_id, amount, .. } | AccountEvent::HoldExpired { hold_id, amount, .. } => {
                let status = if matches!(event, AccountEvent::HoldReleased { .. }) { HoldStatus::Released } else { HoldStatus::Expired };
                let hold = account.end_hold(*hold_id, status).ok_or_else(|| history("ended hold is not active"))?;
                if hold.amount != *amount {
                    return Err(history("the ended amount is not the hold's"));
                }
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

    /// The money its live holds reserve at `at`.
    pub fn held(&self, at: DateTime<Utc>) -> i64 {
        self.holds.iter().filter(|h| h.is_live(at)).map(|h| h.amount.minor_units()).sum()
    }

    /// The most this account can pay out or reserve at `at`: its balance,
    /// plus its overdraft limit, less what its live holds reserve.
    pub fn available(&self, at: DateTime<Utc>) -> i64 {
        self.balance.saturating_add(self.overdraft_limit).saturating_sub(self.held(at))
    }

    /// A hold no event has ended yet.
    pub fn hold(&self, hold_id: Uuid) -> Option<&Hold> {
        self.holds.iter().find(|h| h.hold_id == hold_id)
    }

    /// How a hold stands at `at`, if the account knows it: one past its
    /// expiry is `Expired` even before its expiry is recorded.
    pub fn hold_status(&self, hold_id: Uuid, at: DateTime<Utc>) -> Option<HoldStatus> {
        if let Some(hold) = self.hold(hold_id) {
            return Some(if hold.is_live(at) { HoldStatus::Active } else { HoldStatus::Expired });
        }
        self.ended_holds.iter().rev().find(|(id, _)| *id == hold_id).map(|(_, status)| *status)
    }

    /// Removes an active hold and remembers how it ended.
    fn end_hold(&mut self, hold_id: Uuid, status: HoldStatus) -> Option<Hold> {
        let index = self.holds.iter().position(|h| h.hold_id == hold_id)?;
        let hold = self.holds.remove(index);
        if self.ended_holds.len() == REMEMBERED_ENDED_HOLDS {
            self.ended_holds.pop_front();
        }
        self.ended_holds.push_back((hold_id, status));
        Some(hold)
    }
}
