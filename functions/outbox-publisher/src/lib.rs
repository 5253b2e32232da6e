//! The outbox publisher: moves committed outbox rows to Kafka, at least
//! once, in per-account order, losing nothing when anything fails.
//!
//! An EventBridge schedule invokes the Lambda function; each invocation
//! drains the outbox until it is empty or the Lambda deadline is near. The
//! storage side (claiming under the publisher lock, recording outcomes,
//! replaying from the event log) is `ledgerline_shared::outbox`; this
//! crate is the Kafka side:
//!
//! - [`config`]: settings from the environment.
//! - [`record`]: what a Kafka record is to us, and the [`RecordSink`] trait
//!   the loop publishes through (rdkafka in production, fakes in unit tests).
//! - [`kafka`]: the rdkafka producer behind that trait (idempotent, acks=all).
//! - rows that can never be published go to the dead-letter topic as the
//!   shared `ledgerline_shared::dead_letter::DeadLetter`.
//! - [`publish`]: the loop itself, and the [`Summary`] it returns.
//! - [`handler`]: the Lambda handler around the loop.
//!
//! docs/OUTBOX.md has the delivery guarantee, the ordering argument and the
//! failure table.

pub mod config;
pub mod handler;
pub mod kafka;
pub mod publish;
pub mod record;

pub use config::PublisherConfig;
pub use publish::{PublishSettings, Publisher, Summary};
pub use record::{Record, RecordSink, SendError};
