//! Ledgerline's one common crate.
//!
//! - [`domain`]: money, the account aggregate and its rules. Pure: no I/O.
//! - [`event_store`]: the append-only store (PostgreSQL and in-memory), with
//!   the transactional outbox, idempotency records and snapshots.
//! - [`accounts`]: the typed layer between the two: load an account, commit
//!   what the domain decided.
//! - [`config`], [`telemetry`]: settings from the environment, JSON logs.

pub mod domain;
