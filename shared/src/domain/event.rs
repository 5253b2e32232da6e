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
        }
    }

    /// The type of the last event of a closed account.
    pub const CLOSED_TYPE: &'static str = "AccountClosed";

    /// Every event type name, for decoders that reject unknown types.
    pub const EVENT_TYPES: [&'static str; 8] = [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
        "TransferSent",
        "TransferReceived",
        "AccountFrozen",
        "AccountUnfrozen",
        "AccountClosed",
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
            | Self::Closed { at } => *at,
        }
    }

    /// True for events that move money (they get a row in the transaction history).
    pub fn moves_money(&self) -> bool {
        matches!(self, Self::Deposited { .. } | Self::Withdrawn { .. } | Self::TransferSent { .. } | Self::TransferReceived { .. })
    }
}
