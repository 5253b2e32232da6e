//! What the cross-crate tests share.
//!
//! - [`scenario`]: the end-to-end scenario against any base URL (the
//!   embedded server, the full local stack, a deployment).
//! - [`gateway_event`]: API Gateway v2 events for tests that call a router directly.
//! - [`http`]: the small HTTP client it speaks through.
//! - [`process`]: running the real `ledgerline` binary from these tests.
//! - [`services`]: where the test services are; a fresh database; waiting
//!   for a condition with a deadline. Every crate's tests use these.
//! - [`stack`]: the full local stack (`ledgerline serve`) with servers of
//!   the test's own to stop, pause and restart.

pub mod gateway_event;
pub mod http;
pub mod process;
pub mod scenario;
pub mod services;
pub mod stack;
