//! The command pipeline every POST goes through.
//!
//! 1. One read brings the request's idempotency record and the account(s)
//!    it names. A known `Idempotency-Key` answers from its record (same
//!    request) or is refused (`idempotency_key_reused`).
//! 2. `decide` checks authorization and asks the domain to decide, on what
//!    was read: no I/O. Errors it returns (400, 403, 404) are not stored.
//! 3. The events, their outbox rows and the idempotency record (success or
//!    422 refusal) are appended in one statement: two round trips in all.
//! 4. A concurrency conflict means someone changed the account in between.
//!    The next attempt locks the accounts as it reads them, so writers of a
//!    hot account queue in the database instead of failing again: a
//!    conflict is not answered 409 unless something else (a deadlock, a
//!    serialization failure) keeps failing for `max_attempts`. The accounts
//!    are remembered for a while ([`crate::contended`]), and the commands
//!    that follow on them lock from their first attempt.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ledgerline_shared::accounts::{CommandInput, RepositoryError, StagedChange};
use ledgerline_shared::event_store::{AppendOutcome, CommandRead, EventMetadata, LockedStreams, StoreError};
use ledgerline_shared::idempotency::{IdempotencyKey, IdempotencyRecord, NewIdempotencyRecord, request_hash};
use ledgerline_shared::resilience::Backoff;
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

pub async fn execute<F>(state: &AppState, context: CommandContext, accounts: &[Uuid], mut decide: F) -> Result<Answer, ApiError>
where
    F: FnMut(&CommandInput) -> Result<Decision, ApiError>,
{
    let repository = state.repository();
    let mut streams = accounts.to_vec();
    streams.sort();
    streams.dedup(); // a transfer to the same account names it twice
    let read = CommandRead { streams, idempotency: context.key.as_ref().map(|key| (context.caller.id.clone(), key.as_str().to_owned())) };
    let max_attempts = state.settings().max_attempts.max(1);
    let lock_first = state.settings().lock_first || state.contended().any(&read.streams);
    for attempt_number in 1..=max_attempts {
        let (input, lock) = if attempt_number > 1 || lock_first {
            let (input, lock) = repository.lock_for_command(read.clone()).await?;
            (input, Some(lock))
        } else {
            (repository.read_for_command(read.clone()).await?, None)
        };
        let decision = match &input.idempotency {
            Some(record) if record.request_hash == context.request_hash => {
                return release(lock, Ok(Answer::stored(record.clone()))).await;
            }
            Some(_) => return release(lock, Err(key_reused())).await,
            None => match decide(&input) {
                Ok(decision) => decision,
                Err(error) => return release(lock, Err(error)).await,
            },
        };
        let (changes, answer) = match decision {
            Decision::Commit { changes, answer } => (changes, answer),
            Decision::Refuse(error) => (Vec::new(), Answer::from_error(&error)),
        };
        if changes.is_empty() && context.key.is_none() {
            return release(lock, Ok(answer)).await; // nothing to write and nothing to remember
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
        let outcome = match lock {
            Some(lock) => repository.commit_locked(lock, changes, metadata, record).await,
            None => repository.commit(changes, metadata, record).await,
        };
        match outcome {
            Ok(AppendOutcome::Committed(_)) => return Ok(answer),
            // A request with the same key committed first: its answer is ours.
            Ok(AppendOutcome::Replayed(record)) => return Ok(Answer::stored(record)),
            Err(RepositoryError::Store(StoreError::ConcurrencyConflict { stream_id, .. })) => {
                tracing::debug!(%stream_id, attempt_number, "concurrency conflict; deciding again with the accounts locked");
                state.contended().note(&read.streams);
            }
            Err(RepositoryError::Store(StoreError::Transient(reason))) => {
                tracing::debug!(%reason, attempt_number, "transient conflict; deciding again");
            }
            Err(error) => return Err(error.into()),
        }
        if attempt_number > 1 && attempt_number < max_attempts {
            tokio::time::sleep(CONFLICT_BACKOFF.full_jitter(attempt_number)).await;
        }
    }
    tracing::warn!(attempts = max_attempts, "giving up after repeated concurrency conflicts");
    Err(ApiError::conflict())
}

/// Lets go of the accounts' locks (if taken) before answering without a write.
async fn release<T>(lock: Option<Box<dyn LockedStreams + '_>>, answer: T) -> T {
    if let Some(lock) = lock {
        lock.release().await;
    }
    answer
}

/// Between re-decisions: full jitter up to 4 ms * 2^(n-1), at most 100 ms,
/// so colliding writers spread out.
const CONFLICT_BACKOFF: Backoff = Backoff { base: Duration::from_millis(4), max: Duration::from_millis(100) };
