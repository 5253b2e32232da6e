//! The read side's model: what the projector writes and the query API reads.
//!
//! Two tables (see `template.yaml` and [`tables`]):
//! - accounts: one item per account ([`AccountView`]), with a global
//!   secondary index on `owner_id`;
//! - transactions: one item per money movement ([`TransactionView`]), keyed
//!   (`account_id`, `version`), read newest first.
//!
//! [`change_for`] turns one event into a [`Change`] (pure). A
//! [`ReadModelStore`] applies it only on top of the version before it, which
//! makes duplicates and replays harmless and makes gaps visible. Two stores:
//! [`memory::InMemoryReadModel`] (embedded mode, fast tests) and, with the
//! `dynamodb` feature, `dynamo::DynamoReadModel`.

#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod memory;
pub mod tables;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::domain::{AccountEvent, AccountStatus};

/// An account as the read side shows it. Also the Redis cache's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account_id: Uuid,
    pub owner_id: String,
    pub currency: String,
    pub balance: i64,
    pub overdraft_limit: i64,
    pub status: String,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Deposit,
    Withdrawal,
    TransferIn,
    TransferOut,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Withdrawal => "withdrawal",
            Self::TransferIn => "transfer_in",
            Self::TransferOut => "transfer_out",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Deposit, Self::Withdrawal, Self::TransferIn, Self::TransferOut].into_iter().find(|k| k.as_str() == text)
    }
}

/// One money movement in an account's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionView {
    /// The account version the movement produced; unique per account.
    pub version: u64,
    pub kind: TransactionKind,
    pub amount: i64,
    pub balance_after: i64,
    pub counterparty_account_id: Option<Uuid>,
    pub transfer_id: Option<Uuid>,
    pub reference: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// What one event does to the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Version 1: the account appears.
    Open(AccountView),
    /// Version `version` (> 1): update the account made at `version - 1`.
    Update { account_id: Uuid, version: u64, at: DateTime<Utc>, update: AccountUpdate, transaction: Option<TransactionView> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountUpdate {
    Balance(i64),
    Status(AccountStatus),
}

impl Change {
    pub fn account_id(&self) -> Uuid {
        match self {
            Change::Open(view) => view.account_id,
            Change::Update { account_id, .. } => *account_id,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Change::Open(view) => view.version,
            Change::Update { version, .. } => *version,
        }
    }

    /// The view after this change, given the view before it.
    pub fn apply_to(&self, before: Option<&AccountView>) -> Option<AccountView> {
        match (self, before) {
            (Change::Open(view), _) => Some(view.clone()),
            (Change::Update { version, at, update, .. }, Some(before)) => {
                let mut after = before.clone();
                match update {
                    AccountUpdate::Balance(balance) => after.balance = *balance,
                    AccountUpdate::Status(status) => after.status = status.as_str().to_owned(),
                }
                after.version = *version;
                after.updated_at = *at;
                Some(after)
            }
            (Change::Update { .. }, None) => None,
        }
    }
}

/// The read-model change for `event`, the `version`-th event of `account_id`.
pub fn change_for(account_id: Uuid, version: u64, event: &AccountEvent) -> Change {
    let update = |update, transaction| Change::Update { account_id, version, at: event.occurred_at(), update, transaction };
    let movement = |kind, amount: i64, balance_after, counterparty, transfer_id, reference: &Option<crate::domain::Reference>| {
        Some(TransactionView {
            version,
            kind,
            amount,
            balance_after,
            counterparty_account_id: counterparty,
            transfer_id,
            reference: reference.as_ref().map(|r| r.as_str().to_owned()),
            occurred_at: event.occurred_at(),
        })
    };
    match event {
        AccountEvent::Opened { owner_id, currency, overdraft_limit, at, .. } => Change::Open(AccountView {
            account_id,
            owner_id: owner_id.clone(),
            currency: currency.to_string(),
            balance: 0,
            overdraft_limit: *overdraft_limit,
            status: AccountStatus::Open.as_str().to_owned(),
            version,
            updated_at: *at,
        }),
        AccountEvent::Deposited { amount, balance_after, reference, .. } => update(
            AccountUpdate::Balance(*balance_after),
            movement(TransactionKind::Deposit, amount.minor_units(), *balance_after, None, None, reference),
        ),
        AccountEvent::Withdrawn { amount, balance_after, reference, .. } => update(
            AccountUpdate::Balance(*balance_after),
            movement(TransactionKind::Withdrawal, amount.minor_units(), *balance_after, None, None, reference),
        ),
        AccountEvent::TransferSent { transfer_id, to_account_id, amount, balance_after, reference, .. } => update(
            AccountUpdate::Balance(*balance_after),
            movement(
                TransactionKind::TransferOut,
                amount.minor_units(),
                *balance_after,
                Some(*to_account_id),
                Some(*transfer_id),
                reference,
            ),
        ),
        AccountEvent::TransferReceived { transfer_id, from_account_id, amount, balance_after, reference, .. } => update(
            AccountUpdate::Balance(*balance_after),
            movement(
                TransactionKind::TransferIn,
                amount.minor_units(),
                *balance_after,
                Some(*from_account_id),
                Some(*transfer_id),
                reference,
            ),
        ),
        AccountEvent::Frozen { .. } => update(AccountUpdate::Status(AccountStatus::Frozen), None),
        AccountEvent::Unfrozen { .. } => update(AccountUpdate::Status(AccountStatus::Open), None),
        AccountEvent::Closed { .. } => update(AccountUpdate::Status(AccountStatus::Closed), None),
    }
}

/// How applying a change went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// The read model already has this version (a duplicate or a replay).
    Duplicate {
        stored: u64,
    },
    /// The read model is behind: versions `stored + 1 .. change.version()` are missing.
    Gap {
        stored: u64,
    },
}

/// A page of an account's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionPage {
    pub items: Vec<TransactionView>,
    /// Pass as `before_version` to get the next (older) page; `None` at the end.
    pub next_before_version: Option<u64>,
}

#[derive(Debug, Error)]
pub enum ReadModelError {
    /// The store cannot be reached or is throttling: retry later.
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    /// A stored item does not have the expected shape.
    #[error("corrupt read model item: {0}")]
    Corrupt(String),
    #[error("read model error: {0}")]
    Other(String),
}

#[async_trait]
pub trait ReadModelStore: Send + Sync + 'static {
    /// Applies `change` if and only if the account is at `change.version() - 1`.
    async fn apply(&self, change: &Change) -> Result<ApplyOutcome, ReadModelError>;

    /// Applies consecutive changes of one account (versions `v`, `v + 1`,
    /// ...) all at once, if and only if the account is at `v - 1`: one
    /// conditional write instead of one per change. `Ok(Some(view))` is the
    /// account as that write left it (so the caller can cache it without
    /// reading it back); `Ok(None)` means nothing was written (the account
    /// is elsewhere, or the store cannot do it in one write): apply the
    /// changes one by one to learn why. The default always says so.
    async fn apply_run(&self, _changes: &[Change]) -> Result<Option<AccountView>, ReadModelError> {
        Ok(None)
    }

    /// One account. `consistent` asks for a strongly consistent read.
    async fn account(&self, account_id: Uuid, consistent: bool) -> Result<Option<AccountView>, ReadModelError>;

    /// Every account of one owner (through the owner index).
    async fn accounts_of_owner(&self, owner_id: &str) -> Result<Vec<AccountView>, ReadModelError>;

    /// Up to `limit` movements older than `before_version` (or the newest).
    /// `consistent` asks for a strongly consistent read (read-your-writes).
    async fn transactions(
        &self,
        account_id: Uuid,
        limit: usize,
        before_version: Option<u64>,
        consistent: bool,
    ) -> Result<TransactionPage, ReadModelError>;

    /// The accounts among `ids` that exist, strongly consistent, in id
    /// order: one call for many (reconciliation compares them in bulk).
    async fn accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>, ReadModelError>;

    /// Writes an account rebuilt from its whole history: every movement row
    /// (their content is fixed by the events, so rewriting one is harmless),
    /// then the account itself unless the stored one is newer. Returns
    /// whether the account was written. Never moves an account backwards,
    /// so it is safe beside the projector. The rows land before the account,
    /// so for a moment the history may hold rows above the account's version.
    async fn replace(&self, view: &AccountView, rows: &[TransactionView]) -> Result<bool, ReadModelError>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{Amount, Reference};

    #[test]
    fn money_events_update_the_balance_and_add_a_history_row() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let (account, other, transfer) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let opened = change_for(
            account,
            1,
            &AccountEvent::Opened {
                account_id: account,
                owner_id: "alice".into(),
                currency: "EUR".parse().unwrap(),
                overdraft_limit: 5,
                at,
            },
        );
        let view = opened.apply_to(None).unwrap();
        assert_eq!((view.balance, view.status.as_str(), view.version, view.overdraft_limit), (0, "open", 1, 5));

        let sent = change_for(
            account,
            2,
            &AccountEvent::TransferSent {
                transfer_id: transfer,
                to_account_id: other,
                amount: Amount::new(40).unwrap(),
                balance_after: -35,
                reference: Some(Reference::new("gift").unwrap()),
                at,
            },
        );
        let Change::Update { transaction: Some(row), .. } = &sent else { panic!("a transfer is a movement") };
        assert_eq!(row.kind, TransactionKind::TransferOut);
        assert_eq!((row.amount, row.balance_after, row.counterparty_account_id, row.transfer_id), (40, -35, Some(other), Some(transfer)));
        assert_eq!(row.reference.as_deref(), Some("gift"));
        let after = sent.apply_to(Some(&view)).unwrap();
        assert_eq!((after.balance, after.version), (-35, 2));

        let frozen = change_for(account, 3, &AccountEvent::Frozen { at });
        assert!(matches!(frozen, Change::Update { transaction: None, .. }));
        assert_eq!(frozen.apply_to(Some(&after)).unwrap().status, "frozen");
        assert_eq!(frozen.apply_to(None), None);
    }

    #[test]
    fn kinds_have_stable_names() {
        for kind in [TransactionKind::Deposit, TransactionKind::Withdrawal, TransactionKind::TransferIn, TransactionKind::TransferOut] {
            assert_eq!(TransactionKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(TransactionKind::parse("refund"), None);
    }
}
