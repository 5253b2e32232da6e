//! The account domain: money, commands, events, and the rules between them.
//!
//! Everything here is pure: no I/O, no clock, no randomness. The write side
//! loads an [`Account`] (by replaying its events), calls [`decide`],
//! [`decide_transfer`], [`decide_capture_to_account`] or [`decide_entry`],
//! and stores the events those return. Holds (`hold.rs`) reserve money
//! against the available balance until they are captured, released or
//! expire; entries (`entry.rs`) move money among 2 to 16 accounts at once. The tests in
//! `tests.rs` read as given (past events) / when (a command) / then (new
//! events or an error).

mod account;
mod command;
mod decide;
mod entry;
mod error;
mod event;
mod hold;
mod money;

pub use account::{Account, AccountStatus};
pub use command::{AccountCommand, CaptureToAccount, OverdraftLimit, OwnerId, Reference, TransferCommand};
pub use decide::{TransferDecision, decide, decide_capture_to_account, decide_transfer};
pub use entry::{EntryCommand, Leg, LegRefusal, LegSide, MAX_ENTRY_ACCOUNTS, decide_entry};
pub use error::DomainError;
pub use event::{ACCOUNT_EVENT_SCHEMA_VERSION, AccountEvent, HoldTransfer};
pub use hold::{Hold, HoldLifetime, HoldStatus, MAX_ACTIVE_HOLDS, REMEMBERED_ENDED_HOLDS};
pub use money::{Amount, Currency, MAX_AMOUNT, MAX_OVERDRAFT_LIMIT};

#[cfg(test)]
mod entry_tests;
#[cfg(test)]
mod hold_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
