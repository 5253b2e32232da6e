//! Resilience helpers for calls to dependencies that may fail or hang.
//!
//! - [`backoff`]: how long to wait before trying again (exponential, jittered).
//! - [`breaker`]: a small circuit breaker (closed → open after repeated
//!   failures → half-open probe after a cool-down → closed on success).

pub mod backoff;
pub mod breaker;

pub use backoff::Backoff;

pub use breaker::{BreakerError, BreakerSettings, BreakerState, CircuitBreaker, Transition};
