//! Errors as HTTP answers: `application/problem+json` (RFC 9457).
//!
//! Every refusal has a stable `code` clients can branch on; `title` and
//! `detail` are for people. Nothing a client can cause answers 500.

use crate::accounts::RepositoryError;
use crate::domain::DomainError;
use crate::event_store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    /// The account a refusal is about, where a request names several (an
    /// entry's legs): always one the caller named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<uuid::Uuid>,
}

/// A refusal or failure on its way to becoming a problem+json response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds, for 503 and 409 answers a client may retry.
    pub retry_after: Option<u32>,
    /// See [`Problem::account_id`].
    pub account_id: Option<uuid::Uuid>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), retry_after: None, account_id: None }
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "the request carries no verified caller identity")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "account_not_found", "no such account")
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", detail) }
    }

    pub fn conflict() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::CONFLICT, "concurrency_conflict", "the account kept changing while the request was decided; retry")
        }
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred; it has been logged")
    }

    /// The same refusal, naming the account it is about.
    pub fn about_account(self, account_id: uuid::Uuid) -> Self {
        Self { account_id: Some(account_id), ..self }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:ledgerline:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            account_id: self.account_id,
        }
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.problem()).expect("a problem always serializes")
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let status = match &error {
            DomainError::InvalidAmount(_)
            | DomainError::UnknownCurrency(_)
            | DomainError::InvalidOverdraftLimit(_)
            | DomainError::InvalidOwner
            | DomainError::InvalidReference
            | DomainError::InvalidHoldLifetime(_)
            | DomainError::InvalidEntry(_) => StatusCode::BAD_REQUEST,
            DomainError::AccountNotFound | DomainError::HoldNotFound => StatusCode::NOT_FOUND,
            DomainError::AccountAlreadyExists => StatusCode::CONFLICT,
            DomainError::InvalidHistory(_) => {
                tracing::error!(%error, "an account's history does not replay");
                return Self::internal();
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, error.code(), error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "event store unavailable");
                Self::unavailable("the ledger is temporarily unavailable; retry shortly")
            }
            StoreError::ConcurrencyConflict { .. } | StoreError::Transient(_) => Self::conflict(),
            StoreError::IdempotencyKeyReused { .. } => key_reused(),
            StoreError::OpenLimitReached { max_open } => Self::new(
                StatusCode::CONFLICT,
                "account_limit_reached",
                format!("you already have the maximum of {max_open} open accounts; close one to open another"),
            ),
            StoreError::PayloadTooLarge { .. } | StoreError::InvalidAppend(_) => Self::validation(error.to_string()),
            other => {
                tracing::error!(error = %other, "event store failure");
                Self::internal()
            }
        }
    }
}

impl From<RepositoryError> for ApiError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "stored events cannot be read");
                Self::internal()
            }
        }
    }
}

pub fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used for a different request",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)], self.body()).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
