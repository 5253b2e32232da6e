//! The record sent to the dead-letter topic for a row that can never be
//! published.
//!
//! It is a pointer, not a copy: the usual reason a row cannot be published is
//! that it is too large for the broker, so its bytes would not fit in a
//! dead-letter record either. The event itself stays safe where it always
//! was, in the `events` table (and the outbox row, marked `dead`, is never
//! pruned), so an operator can fix the cause and send it again. Same key as
//! the original (the account id) and the same headers, plus the reason.

use ledgerline_shared::event_store::OutboxMessage;
use serde::{Deserialize, Serialize};

/// The JSON value of a dead-letter record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub outbox_id: i64,
    pub event_id: uuid::Uuid,
    pub stream_id: uuid::Uuid,
    pub stream_version: u64,
    /// The topic the event was meant for.
    pub topic: String,
    pub payload_bytes: usize,
    /// Failed attempts, this one included.
    pub attempts: u32,
    pub error: String,
}

/// The header naming why a record is in the dead-letter topic.
pub const REASON_HEADER: &str = "dead_letter_reason";

impl DeadLetter {
    pub fn for_row(row: &OutboxMessage, error: &str) -> Self {
        Self {
            outbox_id: row.id,
            event_id: row.event_id,
            stream_id: row.stream_id,
            stream_version: row.stream_version,
            topic: row.topic.clone(),
            payload_bytes: row.payload.len(),
            attempts: row.attempts + 1,
            error: error.to_owned(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a dead letter serializes")
    }

    /// The original headers and the reason.
    pub fn headers(row: &OutboxMessage, error: &str) -> Vec<(String, String)> {
        let mut headers = row.headers.clone();
        headers.push((REASON_HEADER.into(), error.to_owned()));
        headers
    }
}
