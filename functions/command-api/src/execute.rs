//! The command pipeline every POST goes through.
//!
//! 1. A known `Idempotency-Key` answers from its record (same request) or is
//!    refused (`idempotency_key_reused`), before anything is loaded.
//! 2. `attempt` loads the account(s), checks authorization and asks the
//!    domain to decide. Errors it returns (400, 403, 404) are not stored.
//! 3. The events, their outbox rows and the idempotency record (success or
//!    422 refusal) are appended in one transaction.
//! 4. A concurrency conflict means someone changed the account in between:
//!    wait a little (exponential backoff with full jitter) and decide again,
//!    a bounded number of times, then answer 409.

use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ledgerline_shared::accounts::{RepositoryError, StagedChange};
use ledgerline_shared::event_store::{AppendOutcome, EventMetadata, StoreError};
use ledgerline_shared::idempotency::{IdempotencyKey, IdempotencyRecord, NewIdempotencyRecord, request_hash};
use serde::Serialize;
use uuid::Uuid;

use crate::caller::Caller;
use crate::problem::{ApiError, PROBLEM_CONTENT_TYPE, key_reused};
use crate::request::canonical_body;
use crate::state::AppState;
use ledgerline_shared::http::correlation::CorrelationId;

/// A final answer: what is sent now and, with a key, stored for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: StatusCode, value: &impl Serialize) -> Self {
        Self { status, body: serde_json::to_vec(value).expect("response types always serialize") }
    }

    fn from_error(error: &ApiError) -> Self {
        Self { status: error.status, body: error.body() }
    }

    fn stored(record: IdempotencyRecord) -> Self {
        let status = StatusCode::from_u16(record.response_status).unwrap_or(StatusCode::OK);
        Self { status, body: record.response_body }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let content_type = if self.status.is_success() { "application/json" } else { PROBLEM_CONTENT_TYPE };
        let mut response = (self.status, self.body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

/// What one attempt decided.
pub enum Decision {
    /// Append these changes (possibly none, for a no-op) and answer this.
    Commit { changes: Vec<StagedChange>, answer: Answer },
    /// A business rule said no (422): final, and stored with the key.
    Refuse(ApiError),
}

/// The parts of a request the pipeline needs besides the decision itself.
pub struct CommandContext {
    pub caller: Caller,
    pub key: Option<IdempotencyKey>,
    pub request_hash: Vec<u8>,
    pub correlation_id: CorrelationId,
    pub command_id: Uuid,
}

impl CommandContext {
    pub fn new(caller: Caller, key: Option<IdempotencyKey>, path: &str, body: &[u8], correlation_id: CorrelationId) -> Self {
        Self { caller, key, request_hash: request_hash("POST", path, &canonical_body(body)), correlation_id, command_id: Uuid::now_v7() }
    }
}

pub async fn execute<F, Fut>(state: &AppState, context: CommandContext, mut attempt: F) -> Result<Answer, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Decision, ApiError>>,
{
    let store = state.repository().store();
    if let Some(key) = &context.key
        && let Some(record) = store.find_idempotency(&context.caller.id, key.as_str()).await?
    {
        if record.request_hash == context.request_hash {
            return Ok(Answer::stored(record));
        }
        return Err(key_reused());
    }

    let max_attempts = state.settings().max_attempts.max(1);
    for attempt_number in 1..=max_attempts {
        let (changes, answer) = match attempt().await? {
            Decision::Commit { changes, answer } => (changes, answer),
            Decision::Refuse(error) => (Vec::new(), Answer::from_error(&error)),
        };
        if changes.is_empty() && context.key.is_none() {
            return Ok(answer); // nothing to write and nothing to remember
        }
        let record = context.key.as_ref().map(|key| NewIdempotencyRecord {
            caller_id: context.caller.id.clone(),
            key: key.clone(),
            request_hash: context.request_hash.clone(),
            response_status: answer.status.as_u16(),
            response_body: answer.body.clone(),
            expires_at: Utc::now() + state.settings().idempotency_ttl,
        });
        let metadata = EventMetadata::now(context.correlation_id.0.clone(), context.command_id, context.caller.id.clone());
        match state.repository().commit(changes, metadata, record).await {
            Ok(AppendOutcome::Committed(_)) => return Ok(answer),
            // A request with the same key committed first: its answer is ours.
            Ok(AppendOutcome::Replayed(record)) => return Ok(Answer::stored(record)),
            Err(RepositoryError::Store(StoreError::ConcurrencyConflict { stream_id, .. })) => {
                tracing::debug!(%stream_id, attempt_number, "concurrency conflict; deciding again");
            }
            Err(RepositoryError::Store(StoreError::Transient(reason))) => {
                tracing::debug!(%reason, attempt_number, "transient conflict; deciding again");
            }
            Err(error) => return Err(error.into()),
        }
        if attempt_number < max_attempts {
            tokio::time::sleep(backoff(attempt_number)).await;
        }
    }
    tracing::warn!(attempts = max_attempts, "giving up after repeated concurrency conflicts");
    Err(ApiError::conflict())
}

/// Exponential backoff with full jitter: a random wait up to 2ms * 2^n,
/// capped at 100ms, so colliding writers spread out.
fn backoff(attempt_number: u32) -> Duration {
    let cap_ms = (2u64 << attempt_number.min(6)).min(100);
    Duration::from_millis(fastrand::u64(0..=cap_ms))
}
