//! The account domain: money, commands, events, and the rules between them.
//!
//! Everything here is pure: no I/O, no clock, no randomness. The write side
//! loads an [`Account`] (by replaying its events), calls [`decide`] or
//! [`decide_transfer`], and stores the events those return. The tests in
//! `tests.rs` read as given (past events) / when (a command) / then (new
//! events or an error).

mod account;
mod command;
mod decide;
mod error;
mod event;
mod money;

pub use account::{Account, AccountStatus};
pub use command::{AccountCommand, OverdraftLimit, OwnerId, Reference, TransferCommand};
pub use decide::{TransferDecision, decide, decide_transfer};
pub use error::DomainError;
pub use event::{ACCOUNT_EVENT_SCHEMA_VERSION, AccountEvent};
pub use money::{Amount, Currency, MAX_AMOUNT, MAX_OVERDRAFT_LIMIT};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
