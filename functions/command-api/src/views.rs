//! The JSON bodies of successful command responses.
//!
//! Every body that carries an account's balance also carries what its live
//! holds reserve (`held`) and what it can still spend or reserve
//! (`available_balance` = balance + overdraft limit - held), both as of the
//! moment the command was decided.

use chrono::{DateTime, Utc};
use ledgerline_shared::domain::{Account, Hold, HoldStatus, Leg, LegSide};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /accounts`: the new account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account_id: Uuid,
    pub owner_id: String,
    pub currency: String,
    pub balance: i64,
    pub held: i64,
    pub available_balance: i64,
    pub overdraft_limit: i64,
    pub status: String,
    pub version: u64,
}

impl AccountView {
    pub fn at(account: &Account, at: DateTime<Utc>) -> Self {
        Self {
            account_id: account.id,
            owner_id: account.owner_id.to_string(),
            currency: account.currency.to_string(),
            balance: account.balance,
            held: account.held(at),
            available_balance: account.available(at),
            overdraft_limit: account.overdraft_limit,
            status: account.status.as_str().to_owned(),
            version: account.version,
        }
    }
}

/// Deposits, withdrawals, and the source side of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub account_id: Uuid,
    pub balance: i64,
    pub held: i64,
    pub available_balance: i64,
    pub version: u64,
}

impl BalanceView {
    pub fn at(account: &Account, at: DateTime<Utc>) -> Self {
        Self {
            account_id: account.id,
            balance: account.balance,
            held: account.held(at),
            available_balance: account.available(at),
            version: account.version,
        }
    }
}

/// The recipient of a transfer: its id and nothing else (it may be anyone's
/// account; its balance, version or state are not the caller's business).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterpartyView {
    pub account_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    pub transfer_id: Uuid,
    pub from: BalanceView,
    pub to: CounterpartyView,
}

/// Freeze, unfreeze, close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub account_id: Uuid,
    pub status: String,
    pub version: u64,
}

impl From<&Account> for StatusView {
    fn from(account: &Account) -> Self {
        Self { account_id: account.id, status: account.status.as_str().to_owned(), version: account.version }
    }
}

/// Placing, capturing or releasing a hold: the hold as the command left it,
/// and its account's balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldAnswer {
    pub hold_id: Uuid,
    pub account_id: Uuid,
    /// What the hold reserved when it was placed.
    pub amount: i64,
    pub status: String,
    pub expires_at: DateTime<Utc>,
    /// A capture: how much moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<i64>,
    /// A capture or a release: how much was freed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<i64>,
    /// A capture into another account: the transfer, and the recipient by id only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<CounterpartyView>,
    pub balance: i64,
    pub held: i64,
    pub available_balance: i64,
    pub version: u64,
}

impl HoldAnswer {
    /// `hold` (as it was placed), now `status`, on `account` after the command.
    pub fn new(hold: &Hold, status: HoldStatus, account: &Account, at: DateTime<Utc>) -> Self {
        Self {
            hold_id: hold.hold_id,
            account_id: account.id,
            amount: hold.amount.minor_units(),
            status: status.as_str().to_owned(),
            expires_at: hold.expires_at,
            captured: None,
            released: None,
            transfer_id: None,
            to: None,
            balance: account.balance,
            held: account.held(at),
            available_balance: account.available(at),
            version: account.version,
        }
    }
}

/// `POST /entries`: every leg as asked (accounts by id only), and the
/// balances after it of those legs' accounts that are the caller's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    pub entry_id: Uuid,
    pub legs: Vec<LegView>,
    pub accounts: Vec<BalanceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegView {
    pub account_id: Uuid,
    /// `debit` or `credit`.
    pub side: String,
    pub amount: i64,
    pub currency: String,
}

impl LegView {
    pub fn new(side: LegSide, leg: &Leg) -> Self {
        Self {
            account_id: leg.account_id,
            side: side.as_str().to_owned(),
            amount: leg.amount.minor_units(),
            currency: leg.currency.to_string(),
        }
    }
}
