//! Idempotency keys: a retried POST returns the first answer and changes nothing.
//!
//! The first outcome of a request is stored under (caller, key) in the SAME
//! transaction as the events it caused, so "the events exist" and "the answer
//! is remembered" can never disagree. The record holds a SHA-256 of the
//! request, so the same key with a different request is caught.
//!
//! Records expire after a window (24 hours by default, see
//! `LEDGERLINE_IDEMPOTENCY_TTL_HOURS`); after that the key may be used again.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A client-chosen `Idempotency-Key`: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, Error, PartialEq, Eq)]
#[error("an Idempotency-Key is 1 to 255 printable ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn new(key: impl Into<String>) -> Result<Self, InvalidIdempotencyKey> {
        let key = key.into();
        let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if key.is_empty() || key.len() > Self::MAX_LEN || !printable {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The SHA-256 of what makes two requests "the same": method, path and body.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    // Lengths first, so ("ab", "c") and ("a", "bc") hash differently.
    for part in [method.as_bytes(), path.as_bytes(), body] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// A record to store with an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdempotencyRecord {
    pub caller_id: String,
    pub key: IdempotencyKey,
    pub request_hash: Vec<u8>,
    pub response_status: u16,
    pub response_body: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// A stored record: the first answer given for (caller, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub caller_id: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub response_status: u16,
    pub response_body: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(IdempotencyKey::new("a").is_ok());
        assert!(IdempotencyKey::new("~ !".repeat(85)).is_ok());
        for bad in [String::new(), "x".repeat(256), "tab\t".into(), "é".into(), "nul\0".into()] {
            assert_eq!(IdempotencyKey::new(bad), Err(InvalidIdempotencyKey));
        }
    }

    #[test]
    fn the_request_hash_separates_its_parts() {
        let a = request_hash("POST", "/accounts", b"{}");
        assert_eq!(a, request_hash("POST", "/accounts", b"{}"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, request_hash("POST", "/accounts", b"{ }"));
        assert_ne!(request_hash("POST", "/ab", b"c"), request_hash("POST", "/a", b"bc"));
    }
}
