//! The query API: Ledgerline's read side over HTTP.
//!
//! An [axum] router, run in Lambda through `lambda_http` (see `main.rs`),
//! in the local server and in tests. A request goes: load shedding
//! ([`shed`]) → identity from the authorizer's claims (shared with the
//! command API) → validation → [`reader`] (L1 in-process cache, L2 Redis,
//! DynamoDB, each dependency behind a circuit breaker) → authorization →
//! JSON, or problem+json. Every request leaves one EMF metrics line
//! ([`metrics`]).
//!
//! Routes: see [`routes::ROUTES`], `docs/QUERY_API.md` and `docs/openapi.json`
//! (the operations tagged `query-api`).

pub mod config;
pub mod cursor;
pub mod lambda;
pub mod lookup;
pub mod metrics;
pub mod reader;
pub mod routes;
pub mod shed;
pub mod state;
pub mod statement;

pub use config::QuerySettings;
pub use routes::{ROUTES, router};
pub use state::AppState;
