//! The JSON bodies of successful command responses.

use ledgerline_shared::domain::Account;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /accounts`: the new account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account_id: Uuid,
    pub owner_id: String,
    pub currency: String,
    pub balance: i64,
    pub overdraft_limit: i64,
    pub status: String,
    pub version: u64,
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        Self {
            account_id: account.id,
            owner_id: account.owner_id.to_string(),
            currency: account.currency.to_string(),
            balance: account.balance,
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
    pub version: u64,
}

impl From<&Account> for BalanceView {
    fn from(account: &Account) -> Self {
        Self { account_id: account.id, balance: account.balance, version: account.version }
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
