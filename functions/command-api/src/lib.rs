//! The command API: Ledgerline's write side over HTTP.
//!
//! An [axum] router, so the same code runs in Lambda (through `lambda_http`,
//! see `main.rs`), in the local embedded server and in tests. A request goes:
//! identity from the authorizer's claims ([`caller`]) → input validation
//! ([`request`]) → the command pipeline ([`execute`]: idempotency, load,
//! decide, one-transaction append, retry on conflict) → a JSON answer
//! ([`views`]) or a problem+json refusal ([`problem`]).
//!
//! Routes: see [`routes::ROUTES`] and `docs/openapi.json`.

pub mod caller;
pub mod execute;
pub mod problem;
pub mod request;
pub mod routes;
pub mod state;
pub mod views;

pub use routes::{ROUTES, router};
pub use state::{AppState, CommandSettings};
