//! The command API: Ledgerline's write side over HTTP.
//!
//! An [axum] router, so the same code runs in Lambda (through `lambda_http`,
//! see `main.rs`), in the local embedded server and in tests. A request goes:
//! identity from the authorizer's claims ([`caller`], shared with the query
//! API) → input validation
//! ([`request`]) → the command pipeline ([`execute`]: idempotency, load,
//! decide, one-transaction append, retry on conflict, locking first on
//! accounts that conflicted lately: [`contended`]) → a JSON answer
//! ([`views`]) or a problem+json refusal ([`problem`]). [`metrics`] writes
//! one metrics line per request in Lambda.
//!
//! Routes: see [`routes::ROUTES`] and `docs/openapi.json` (the operations
//! tagged `command-api`).

pub mod contended;
pub mod execute;
pub mod metrics;
pub mod request;
pub mod routes;
pub mod state;
pub mod views;

pub use ledgerline_shared::http::{caller, problem};
pub use routes::{ROUTES, router};
pub use state::{AppState, CommandSettings};
