//! What happened to an account: the facts the event store keeps forever.
//!
//! Events carry everything a read model needs (amounts, the balance after,
//! the counterparty, the transfer id, the reference and the time), so a
//! projector never has to ask the write side anything.
//!
//! Encoding rule: payloads are bincode, which encodes an enum variant by its
//! position. Add new variants at the END and never reorder or remove one; the
//! golden test in this file fails if the encoding of a known event changes.
//! A changed variant gets a new schema version and an upcaster
//! (see `event_store::codec`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Amount, Currency, Reference};

/// The schema version every event is written with today.
pub const ACCOUNT_EVENT_SCHEMA_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened {
        account_id: Uuid,
        owner_id: String,
        currency: Currency,
        overdraft_limit: i64,
        at: DateTime<Utc>,
    },
    Deposited {
        amount: Amount,
        balance_after: i64,
        reference: Option<Reference>,
        at: DateTime<Utc>,
    },
    Withdrawn {
        amount: Amount,
        balance_after: i64,
        reference: Option<Reference>,
        at: DateTime<Utc>,
    },
    TransferSent {
        transfer_id: Uuid,
        to_account_id: Uuid,
        amount: Amount,
        balance_after: i64,
        reference: Option<Reference>,
        at: DateTime<Utc>,
    },
    TransferReceived {
        transfer_id: Uuid,
        from_account_id: Uuid,
        amount: Amount,
        balance_after: i64,
        reference: Option<Reference>,
        at: DateTime<Utc>,
    },
    Frozen {
        at: DateTime<Utc>,
    },
    Unfrozen {
        at: DateTime<Utc>,
    },
    Closed {
        at: DateTime<Utc>,
    },
    /// Money reserved: the balance is unchanged, the available balance
    /// drops by `amount` until the hold ends or `expires_at` passes.
    HoldPlaced {
        hold_id: Uuid,
        amount: Amount,
        reference: Option<Reference>,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The hold ended by moving `amount` (at most the hold's) out of the
    /// account, and freeing `released`, the rest. With `transfer`, the money
    /// went to another account of the ledger, whose stream has the matching
    /// `TransferReceived` (same transfer id); without, it left the ledger.
    HoldCaptured {
        hold_id: Uuid,
        amount: Amount,
        released: i64,
        balance_after: i64,
        transfer: Option<HoldTransfer>,
        reference: Option<Reference>,
        at: DateTime<Utc>,
    },
    /// The hold ended without moving money, at the owner's request.
    HoldReleased {
        hold_id: Uuid,
        amount: Amount,
        at: DateTime<Utc>,
    },
    /// The hold ended without moving money: its time ran out (recorded by
    /// the sweep, or by the account's closing; `at` is when it was recorded,
    /// the hold stopped counting at its `expires_at`).
    HoldExpired {
        hold_id: Uuid,
        amount: Amount,
        at: DateTime<Utc>,
    },
    /// This account's debit leg of an entry (see `domain::entry`): the
    /// entry's other legs are on their own accounts' streams, under the
    /// same entry id, appended in the same transaction.
    EntryDebited {
        entry_id: Uuid,
        amount: Amount,
        balance_after: i64,
        reference: Option<Reference>,
        at: DateTime<Utc>,
    },
    /// This account's credit leg of an entry.
    EntryCredited {
        entry_id: Uuid,
        amount: Amount,
        balance_after: i64,
        reference: Option<Reference>,
        at: DateTime<Utc>,
    },
}

/// Where a captured hold's money went inside the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldTransfer {
    pub transfer_id: Uuid,
    pub to_account_id: Uuid,
}

impl AccountEvent {
    /// The name stored in the `event_type` column and the Kafka header.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "AccountOpened",
            Self::Deposited { .. } => "MoneyDeposited",
            Self::Withdrawn { .. } => "MoneyWithdrawn",
            Self::TransferSent { .. } => "TransferSent",
            Self::TransferReceived { .. } => "TransferReceived",
            Self::Frozen { .. } => "AccountFrozen",
            Self::Unfrozen { .. } => "AccountUnfrozen",
            Self::Closed { .. } => Self::CLOSED_TYPE,
            Self::HoldPlaced { .. } => "HoldPlaced",
            Self::HoldCaptured { .. } => "HoldCaptured",
            Self::HoldReleased { .. } => "HoldReleased",
            Self::HoldExpired { .. } => "HoldExpired",
            Self::EntryDebited { .. } => "EntryDebited",
            Self::EntryCredited { .. } => "EntryCredited",
        }
    }

    /// The type of the last event of a closed account.
    pub const CLOSED_TYPE: &'static str = "AccountClosed";

    /// Every event type name, for decoders that reject unknown types.
    pub const EVENT_TYPES: [&'static str; 14] = [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
        "TransferSent",
        "TransferReceived",
        "AccountFrozen",
        "AccountUnfrozen",
        "AccountClosed",
        "HoldPlaced",
        "HoldCaptured",
        "HoldReleased",
        "HoldExpired",
        "EntryDebited",
        "EntryCredited",
    ];

    /// When it happened.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::Opened { at, .. }
            | Self::Deposited { at, .. }
            | Self::Withdrawn { at, .. }
            | Self::TransferSent { at, .. }
            | Self::TransferReceived { at, .. }
            | Self::Frozen { at }
            | Self::Unfrozen { at }
            | Self::Closed { at }
            | Self::HoldPlaced { at, .. }
            | Self::HoldCaptured { at, .. }
            | Self::HoldReleased { at, .. }
            | Self::HoldExpired { at, .. }
            | Self::EntryDebited { at, .. }
            | Self::EntryCredited { at, .. } => *at,
        }
    }

    /// True for events that move money (they get a row in the transaction
    /// history). Placing, releasing or expiring a hold moves none.
    pub fn moves_money(&self) -> bool {
        matches!(
            self,
            Self::Deposited { .. }
                | Self::Withdrawn { .. }
                | Self::TransferSent { .. }
                | Self::TransferReceived { .. }
                | Self::HoldCaptured { .. }
                | Self::EntryDebited { .. }
                | Self::EntryCredited { .. }
        )
    }

    /// The entry an event is a leg of, if any.
    pub fn entry_id(&self) -> Option<Uuid> {
        match self {
            Self::EntryDebited { entry_id, .. } | Self::EntryCredited { entry_id, .. } => Some(*entry_id),
            _ => None,
        }
    }

    /// The hold an event is about, if any.
    pub fn hold_id(&self) -> Option<Uuid> {
        match self {
            Self::HoldPlaced { hold_id, .. }
            | Self::HoldCaptured { hold_id, .. }
            | Self::HoldReleased { hold_id, .. }
            | Self::HoldExpired { hold_id, .. } => Some(*hold_id),
            _ => None,
        }
    }
}
