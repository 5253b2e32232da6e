//! The projector: Kafka batches in, DynamoDB read models and a fresh Redis
//! cache out.
//!
//! Lambda's Kafka event source mapping invokes [`Projector::handle`] with a
//! `KafkaEvent` (through [`handler`], which also writes the batch's
//! metrics); the answer lists the records to retry ([`batch`]). Records
//! are decoded ([`decode`]), poison goes to the dead-letter topic
//! ([`dead_letter`]), events are applied with version-conditional writes and
//! gaps are filled from the event store ([`projector`]). Repairing and
//! rebuilding the read model from the event store is
//! `ledgerline_shared::reconcile`, shared with the reconciler function and
//! the CLI. [`kafka_event`] builds the events Lambda delivers, for whatever
//! plays Lambda's part locally, and for tests.

pub mod batch;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod handler;
pub mod kafka_event;
pub mod projector;

pub use batch::KafkaBatchResponse;
pub use projector::{BatchSummary, Projector};
