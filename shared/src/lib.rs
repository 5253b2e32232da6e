//! Ledgerline's one common crate.
//!
//! - [`domain`]: money, the account aggregate and its rules. Pure: no I/O.
//! - [`event_store`]: the append-only store (PostgreSQL and in-memory), with
//!   the transactional outbox, idempotency records and snapshots.
//! - [`accounts`]: the typed layer between the two: load an account, commit
//!   what the domain decided.
//! - [`outbox`]: the publishing side of the transactional outbox (claim
//!   under a lock, record outcomes, replay from the event log), for both
//!   stores.
//! - [`read_model`]: what the projector writes and the query API reads
//!   (DynamoDB and in-memory); [`reconcile`] repairs it from the event store.
//! - [`idempotency`]: `Idempotency-Key` validation and request hashing.
//! - [`dead_letter`]: the one dead-letter record; [`kafka`] (feature
//!   `kafka`): the one producer wrapper that sends it and the outbox.
//! - [`config`], [`secrets`], [`db`], [`migrate`], [`telemetry`],
//!   [`metrics`]: settings from the environment, secrets fetched at cold
//!   start, the connection pool, schema migrations, logs, the one EMF
//!   metrics writer.

pub mod accounts;
#[cfg(feature = "redis")]
pub mod cache;
pub mod config;
pub mod db;
pub mod dead_letter;
pub mod deadline;
pub mod domain;
pub mod event_store;
#[cfg(feature = "http")]
pub mod http;
pub mod idempotency;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod migrate;
pub mod outbox;
pub mod read_model;
pub mod reconcile;
pub mod resilience;
pub mod secrets;
pub mod telemetry;
