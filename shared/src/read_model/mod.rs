//! The read side's model: what the projector writes and the query API reads.
//!
//! Three tables (see `template.yaml` and [`tables`]):
//! - accounts: one item per account ([`AccountView`], with its active
//!   holds, so `held` and the available balance are computed at read
//!   time against the clock), with a global secondary index on `owner_id`;
//! - transactions: one item per money movement ([`TransactionView`]), keyed
//!   (`account_id`, `version`), read newest first;
//! - holds: one item per hold ([`HoldView`]), keyed (`account_id`,
//!   `hold_id`), read newest first (hold ids are time-ordered UUIDs), with a
//!   sparse index of the active ones by expiry for the expiry sweep.
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

use crate::domain::{AccountEvent, AccountStatus, HoldStatus};

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
    /// The holds no event has ended yet, oldest first (some may be past
    /// their expiry: they count for nothing from then on).
    pub holds: Vec<ActiveHold>,
}

impl AccountView {
    /// What its live holds reserve at `at`.
    pub fn held(&self, at: DateTime<Utc>) -> i64 {
        self.holds.iter().filter(|h| at < h.expires_at).map(|h| h.amount).sum()
    }

    /// Balance + overdraft limit - held, at `at`: what the write side
    /// decides withdrawals, transfers and new holds on.
    pub fn available_balance(&self, at: DateTime<Utc>) -> i64 {
        self.balance.saturating_add(self.overdraft_limit).saturating_sub(self.held(at))
    }
}

/// A hold as its account's view keeps it: enough to compute `held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveHold {
    pub hold_id: Uuid,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
}

/// One hold, as the holds table keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    pub account_id: Uuid,
    pub hold_id: Uuid,
    /// What it reserved when placed.
    pub amount: i64,
    /// As the events left it; see [`HoldView::status_at`].
    pub status: HoldStatus,
    pub reference: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// A capture: how much moved.
    pub captured: Option<i64>,
    /// A capture, release or expiry: how much was freed.
    pub released: Option<i64>,
    /// When the event that ended it was recorded.
    pub ended_at: Option<DateTime<Utc>>,
    /// A capture into another account: the transfer and the recipient.
    pub transfer_id: Option<Uuid>,
    pub to_account_id: Option<Uuid>,
    /// The account version of the last event that changed it (writes of a
    /// hold never go back to an older one).
    pub version: u64,
}

impl HoldView {
    /// How it stands at `at`: an active hold past its expiry is expired,
    /// whether or not the sweep has recorded it yet.
    pub fn status_at(&self, at: DateTime<Utc>) -> HoldStatus {
        if self.status == HoldStatus::Active && at >= self.expires_at { HoldStatus::Expired } else { self.status }
    }

    fn ended(&mut self, version: u64, end: &HoldEnd) {
        self.status = end.status;
        self.captured = end.captured;
        self.released = Some(end.released);
        self.ended_at = Some(end.at);
        self.transfer_id = end.transfer_id;
        self.to_account_id = end.to_account_id;
        self.version = version;
    }
}

/// What one event does to a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldChange {
    /// The hold appears (a fold of several events may hand over a hold that
    /// has since ended too; its `version` says how far it got).
    Placed(HoldView),
    /// The `version`-th event of its account ended the hold.
    Ended { hold_id: Uuid, version: u64, end: HoldEnd },
}

/// How a hold ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldEnd {
    pub status: HoldStatus,
    pub captured: Option<i64>,
    pub released: i64,
    pub at: DateTime<Utc>,
    pub transfer_id: Option<Uuid>,
    pub to_account_id: Option<Uuid>,
}

impl HoldChange {
    pub fn hold_id(&self) -> Uuid {
        match self {
            Self::Placed(hold) => hold.hold_id,
            Self::Ended { hold_id, .. } => *hold_id,
        }
    }

    /// The version of the last event in it.
    pub fn version(&self) -> u64 {
        match self {
            Self::Placed(hold) => hold.version,
            Self::Ended { version, .. } => *version,
        }
    }

    /// The hold after this change, given the hold before it (an end needs one).
    pub fn apply_to(&self, before: Option<&HoldView>) -> Option<HoldView> {
        match self {
            Self::Placed(hold) => Some(hold.clone()),
            Self::Ended { version, end, .. } => {
                let mut hold = before?.clone();
                hold.ended(*version, end);
                Some(hold)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Deposit,
    Withdrawal,
    TransferIn,
    TransferOut,
    /// A debit leg of an entry (money out).
    EntryDebit,
    /// A credit leg of an entry (money in).
    EntryCredit,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Withdrawal => "withdrawal",
            Self::TransferIn => "transfer_in",
            Self::TransferOut => "transfer_out",
            Self::EntryDebit => "entry_debit",
            Self::EntryCredit => "entry_credit",
        }
    }

    /// Whether a movement of this kind adds its amount to the balance (the
    /// others take it away): how a history or a statement is summed.
    pub fn is_credit(self) -> bool {
        matches!(self, Self::Deposit | Self::TransferIn | Self::EntryCredit)
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Deposit, Self::Withdrawal, Self::TransferIn, Self::TransferOut, Self::EntryDebit, Self::EntryCredit]
            .into_iter()
            .find(|k| k.as_str() == text)
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
    /// A capture of a hold: the hold.
    pub hold_id: Option<Uuid>,
    /// A leg of an entry: the entry (its other legs are on their accounts).
    pub entry_id: Option<Uuid>,
    pub reference: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// What one event does to the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
// An update carries its history row inline: a change lives only while one
// event is applied, so boxing it would buy nothing but an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// Version 1: the account appears.
    Open(AccountView),
    /// Version `version` (> 1): update the account made at `version - 1`.
    Update {
        account_id: Uuid,
        version: u64,
        at: DateTime<Utc>,
        update: AccountUpdate,
        transaction: Option<TransactionView>,
        hold: Option<HoldChange>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountUpdate {
    Balance(i64),
    Status(AccountStatus),
    /// Only the version (and the holds, by the change's `hold`) moves:
    /// placing, releasing or expiring a hold changes no balance.
    VersionOnly,
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
            (Change::Update { version, at, update, hold, .. }, Some(before)) => {
                let mut after = before.clone();
                match update {
                    AccountUpdate::Balance(balance) => after.balance = *balance,
                    AccountUpdate::Status(status) => after.status = status.as_str().to_owned(),
                    AccountUpdate::VersionOnly => {}
                }
                match hold {
                    Some(HoldChange::Placed(hold)) => {
                        after.holds.push(ActiveHold { hold_id: hold.hold_id, amount: hold.amount, expires_at: hold.expires_at })
                    }
                    Some(HoldChange::Ended { hold_id, .. }) => after.holds.retain(|h| h.hold_id != *hold_id),
                    None => {}
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
    let update = |update, transaction| Change::Update { account_id, version, at: event.occurred_at(), update, transaction, hold: None };
    let with_hold =
        |update, transaction, hold| Change::Update { account_id, version, at: event.occurred_at(), update, transaction, hold: Some(hold) };
    let movement = |kind, amount: i64, balance_after, counterparty, transfer_id, reference: &Option<crate::domain::Reference>| {
        Some(TransactionView {
            version,
            kind,
            amount,
            balance_after,
            counterparty_account_id: counterparty,
            transfer_id,
            hold_id: event.hold_id(),
            entry_id: event.entry_id(),
            reference: reference.as_ref().map(|r| r.as_str().to_owned()),
            occurred_at: event.occurred_at(),
        })
    };
    let ended = |hold_id: Uuid, status, captured, released: i64, transfer: Option<crate::domain::HoldTransfer>| HoldChange::Ended {
        hold_id,
        version,
        end: HoldEnd {
            status,
            captured,
            released,
            at: event.occurred_at(),
            transfer_id: transfer.map(|t| t.transfer_id),
            to_account_id: transfer.map(|t| t.to_account_id),
        },
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
            holds: Vec::new(),
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
        AccountEvent::EntryDebited { amount, balance_after, reference, .. } => update(
            AccountUpdate::Balance(*balance_after),
            movement(TransactionKind::EntryDebit, amount.minor_units(), *balance_after, None, None, reference),
        ),
        AccountEvent::EntryCredited { amount, balance_after, reference, .. } => update(
            AccountUpdate::Balance(*balance_after),
            movement(TransactionKind::EntryCredit, amount.minor_units(), *balance_after, None, None, reference),
        ),
        AccountEvent::Frozen { .. } => update(AccountUpdate::Status(AccountStatus::Frozen), None),
        AccountEvent::Unfrozen { .. } => update(AccountUpdate::Status(AccountStatus::Open), None),
        AccountEvent::Closed { .. } => update(AccountUpdate::Status(AccountStatus::Closed), None),
        AccountEvent::HoldPlaced { hold_id, amount, reference, expires_at, at } => with_hold(
            AccountUpdate::VersionOnly,
            None,
            HoldChange::Placed(HoldView {
                account_id,
                hold_id: *hold_id,
                amount: amount.minor_units(),
                status: HoldStatus::Active,
                reference: reference.as_ref().map(|r| r.as_str().to_owned()),
                placed_at: *at,
                expires_at: *expires_at,
                captured: None,
                released: None,
                ended_at: None,
                transfer_id: None,
                to_account_id: None,
                version,
            }),
        ),
        AccountEvent::HoldReleased { hold_id, amount, .. } => {
            with_hold(AccountUpdate::VersionOnly, None, ended(*hold_id, HoldStatus::Released, None, amount.minor_units(), None))
        }
        AccountEvent::HoldExpired { hold_id, amount, .. } => {
            with_hold(AccountUpdate::VersionOnly, None, ended(*hold_id, HoldStatus::Expired, None, amount.minor_units(), None))
        }
        AccountEvent::HoldCaptured { hold_id, amount, released, balance_after, transfer, reference, .. } => {
            // A capture is a movement: out of the ledger like a withdrawal,
            // or into another account like a transfer; it names its hold.
            let (kind, counterparty, transfer_id) = match transfer {
                Some(t) => (TransactionKind::TransferOut, Some(t.to_account_id), Some(t.transfer_id)),
                None => (TransactionKind::Withdrawal, None, None),
            };
            with_hold(
                AccountUpdate::Balance(*balance_after),
                movement(kind, amount.minor_units(), *balance_after, counterparty, transfer_id, reference),
                ended(*hold_id, HoldStatus::Captured, Some(amount.minor_units()), *released, *transfer),
            )
        }
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

/// A page of an account's holds, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldPage {
    pub items: Vec<HoldView>,
    /// Pass as `before` to get the next (older) page; `None` at the end.
    pub next_before: Option<Uuid>,
}

/// Which holds a listing wants, as they stand at a moment (an active hold
/// past its expiry is expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldFilter {
    pub status: Option<HoldStatus>,
    pub at: DateTime<Utc>,
}

impl HoldFilter {
    pub fn matches(&self, hold: &HoldView) -> bool {
        self.status.is_none_or(|status| hold.status_at(self.at) == status)
    }
}

/// An account's view, movement rows and holds, folded from its events:
/// what [`ReadModelStore::replace`] writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    pub view: Option<AccountView>,
    pub rows: Vec<TransactionView>,
    /// What the events did to holds: a hold placed within the fold as it
    /// left it; the end of one placed before it.
    pub holds: Vec<HoldChange>,
}

impl Folded {
    /// Starts from `view` (the stored account, `None` for none).
    pub fn from(view: Option<AccountView>) -> Self {
        Self { view, ..Self::default() }
    }

    /// Folds one more change in; `false` if it does not fit (an update
    /// without an account).
    pub fn push(&mut self, change: Change) -> bool {
        let Some(view) = change.apply_to(self.view.as_ref()) else { return false };
        self.view = Some(view);
        if let Change::Update { transaction, hold, .. } = change {
            self.rows.extend(transaction);
            if let Some(hold) = hold {
                self.push_hold(hold);
            }
        }
        true
    }

    fn push_hold(&mut self, change: HoldChange) {
        if let HoldChange::Ended { hold_id, version, end } = &change {
            let placed = self.holds.iter_mut().find_map(|h| match h {
                HoldChange::Placed(placed) if placed.hold_id == *hold_id => Some(placed),
                _ => None,
            });
            if let Some(placed) = placed {
                placed.ended(*version, end);
                return;
            }
        }
        self.holds.push(change);
    }
}

/// A page of an account's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionPage {
    pub items: Vec<TransactionView>,
    /// Pass as `before_version` to get the next (older) page; `None` at the end.
    pub next_before_version: Option<u64>,
}

/// A movement that spans accounts, by its id: what a look-up asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementId {
    /// A transfer (also a hold captured into another account).
    Transfer(Uuid),
    /// An entry of 2 to 16 legs.
    Entry(Uuid),
}

impl MovementId {
    /// Whether `row` belongs to this movement.
    pub fn names(&self, row: &TransactionView) -> bool {
        match self {
            Self::Transfer(id) => row.transfer_id == Some(*id),
            Self::Entry(id) => row.entry_id == Some(*id),
        }
    }
}

/// Where an account's balance stood after one movement: that movement's
/// version and the balance it left. What a statement opens and closes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceMark {
    pub version: u64,
    pub balance: i64,
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

    /// The account's last movement that occurred before `before` (by the
    /// time it occurred, through the time index), as its version and the
    /// balance it left: the balance at that moment. `None`: no movement yet.
    async fn last_movement_before(
        &self,
        account_id: Uuid,
        before: DateTime<Utc>,
        consistent: bool,
    ) -> Result<Option<BalanceMark>, ReadModelError>;

    /// Up to `limit` movements with versions after `after_version` and up
    /// to `up_to_version`, oldest first: a statement's items between its
    /// opening and its closing movement.
    async fn movements_between(
        &self,
        account_id: Uuid,
        after_version: u64,
        up_to_version: u64,
        limit: usize,
        consistent: bool,
    ) -> Result<Vec<TransactionView>, ReadModelError>;

    /// Every history row, on any account, of one transfer or one entry, as
    /// (account, row), in account order: what a look-up shows. Through the
    /// transfer and entry indexes, so eventually consistent: a movement
    /// just projected may be missing for a moment.
    async fn movements_of(&self, id: MovementId) -> Result<Vec<(Uuid, TransactionView)>, ReadModelError>;

    /// The accounts among `ids` that exist, strongly consistent, in id
    /// order: one call for many (reconciliation compares them in bulk).
    async fn accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>, ReadModelError>;

    /// Writes an account rebuilt from its history: every movement row
    /// (their content is fixed by the events, so rewriting one is harmless),
    /// every hold change unless the stored hold is at its version or a
    /// newer one (an end of a hold the store does not have is skipped), then the
    /// account itself unless the stored one is newer. Returns whether the
    /// account was written. Never moves an account or a hold backwards, so
    /// it is safe beside the projector. The rows and holds land before the
    /// account, so for a moment they may be ahead of the account's version.
    async fn replace(&self, view: &AccountView, rows: &[TransactionView], holds: &[HoldChange]) -> Result<bool, ReadModelError>;

    /// One hold of an account. `consistent` asks for a strongly consistent read.
    async fn hold(&self, account_id: Uuid, hold_id: Uuid, consistent: bool) -> Result<Option<HoldView>, ReadModelError>;

    /// Up to `limit` holds of an account older than `before` (or the
    /// newest) that match `filter`, newest first.
    async fn holds(
        &self,
        account_id: Uuid,
        filter: HoldFilter,
        limit: usize,
        before: Option<Uuid>,
        consistent: bool,
    ) -> Result<HoldPage, ReadModelError>;

    /// Up to `limit` holds still active as the events left them whose
    /// expiry is at or before `at`, as (account, hold): what the expiry
    /// sweep records (through the sparse expiry index).
    async fn due_holds(&self, at: DateTime<Utc>, limit: usize) -> Result<Vec<(Uuid, Uuid)>, ReadModelError>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{Amount, Reference};

    #[test]
    fn credits_are_the_kinds_that_add_to_a_balance() {
        let all = [
            TransactionKind::Deposit,
            TransactionKind::Withdrawal,
            TransactionKind::TransferIn,
            TransactionKind::TransferOut,
            TransactionKind::EntryDebit,
            TransactionKind::EntryCredit,
        ];
        let credits: Vec<_> = all.into_iter().filter(|k| k.is_credit()).collect();
        assert_eq!(credits, vec![TransactionKind::Deposit, TransactionKind::TransferIn, TransactionKind::EntryCredit]);
    }

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
    fn an_entry_leg_is_a_movement_that_names_its_entry() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let (account, entry) = (Uuid::from_u128(1), Uuid::from_u128(0xE));
        let debited =
            AccountEvent::EntryDebited { entry_id: entry, amount: Amount::new(7).unwrap(), balance_after: 3, reference: None, at };
        let Change::Update { transaction: Some(row), update: AccountUpdate::Balance(3), .. } = change_for(account, 4, &debited) else {
            panic!("a debit leg moves money")
        };
        assert_eq!(
            (row.kind, row.amount, row.entry_id, row.transfer_id, row.counterparty_account_id),
            (TransactionKind::EntryDebit, 7, Some(entry), None, None)
        );
        let credited =
            AccountEvent::EntryCredited { entry_id: entry, amount: Amount::new(7).unwrap(), balance_after: 7, reference: None, at };
        let Change::Update { transaction: Some(row), .. } = change_for(account, 2, &credited) else { panic!("a credit leg moves money") };
        assert_eq!((row.kind, row.balance_after, row.entry_id), (TransactionKind::EntryCredit, 7, Some(entry)));
    }

    #[test]
    fn kinds_have_stable_names() {
        for kind in [
            TransactionKind::Deposit,
            TransactionKind::Withdrawal,
            TransactionKind::TransferIn,
            TransactionKind::TransferOut,
            TransactionKind::EntryDebit,
            TransactionKind::EntryCredit,
        ] {
            assert_eq!(TransactionKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(TransactionKind::parse("refund"), None);
    }
}
