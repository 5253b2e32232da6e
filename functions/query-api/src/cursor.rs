//! Pagination cursors: opaque to clients, tamper-evident to us.
//!
//! A cursor is base64url (no padding) of
//! `format (1 byte) | account id (16) | before_version (8, big endian) | HMAC-SHA256 tag (32)`,
//! the tag computed over the first 25 bytes with `LEDGERLINE_CURSOR_SECRET`.
//! A cursor that does not decode, whose tag does not verify, or that was
//! made for another account is refused; a cursor can never point a request
//! at an account other than the one in its path.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;
use uuid::Uuid;

const FORMAT: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 8;
const TAG_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CursorError {
    #[error("the cursor is malformed")]
    Malformed,
    #[error("the cursor was not issued by this service")]
    BadSignature,
    #[error("the cursor belongs to another account")]
    WrongAccount,
}

#[derive(Clone)]
pub struct CursorCodec {
    secret: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec { secret: <redacted> }")
    }
}

impl CursorCodec {
    pub fn new(secret: &[u8]) -> Self {
        Self { secret: secret.to_vec() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length")
    }

    pub fn encode(&self, account_id: Uuid, before_version: u64) -> String {
        let mut bytes = Vec::with_capacity(BODY_LEN + TAG_LEN);
        bytes.push(FORMAT);
        bytes.extend_from_slice(account_id.as_bytes());
        bytes.extend_from_slice(&before_version.to_be_bytes());
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The `before_version` in `cursor`, if it is genuine and for `account_id`.
    pub fn decode(&self, account_id: Uuid, cursor: &str) -> Result<u64, CursorError> {
        if cursor.len() > 128 {
            return Err(CursorError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| CursorError::Malformed)?;
        if bytes.len() != BODY_LEN + TAG_LEN || bytes[0] != FORMAT {
            return Err(CursorError::Malformed);
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| CursorError::BadSignature)?;
        let owner = Uuid::from_slice(&body[1..17]).map_err(|_| CursorError::Malformed)?;
        if owner != account_id {
            return Err(CursorError::WrongAccount);
        }
        Ok(u64::from_be_bytes(body[17..25].try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_for_its_account_only() {
        let codec = CursorCodec::new(b"secret");
        let (account, other) = (Uuid::new_v4(), Uuid::new_v4());
        let cursor = codec.encode(account, 42);
        assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "url safe: {cursor}");
        assert_eq!(codec.decode(account, &cursor), Ok(42));
        assert_eq!(codec.decode(other, &cursor), Err(CursorError::WrongAccount));
    }

    #[test]
    fn any_changed_byte_or_another_secret_is_refused() {
        let codec = CursorCodec::new(b"secret");
        let account = Uuid::new_v4();
        let bytes = URL_SAFE_NO_PAD.decode(codec.encode(account, 42)).unwrap();
        for i in 0..bytes.len() {
            let mut forged = bytes.clone();
            forged[i] ^= 0x01;
            assert!(codec.decode(account, &URL_SAFE_NO_PAD.encode(&forged)).is_err(), "byte {i} flipped");
        }
        assert_eq!(CursorCodec::new(b"other").decode(account, &codec.encode(account, 42)), Err(CursorError::BadSignature));
        for junk in ["", "!!!", "AAAA", &"A".repeat(200)] {
            assert_eq!(codec.decode(account, junk), Err(CursorError::Malformed), "{junk}");
        }
    }
}
