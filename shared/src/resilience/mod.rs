//! Resilience helpers for calls to dependencies that may fail or hang.
//!
//! - [`breaker`]: a small circuit breaker (closed → open after repeated
//!   failures → half-open probe after a cool-down → closed on success).

pub mod breaker;

pub use breaker::{BreakerError, BreakerSettings, BreakerState, CircuitBreaker, Transition};
