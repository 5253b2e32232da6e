//! Pagination cursors: opaque to clients, tamper-evident to us.
//!
//! A cursor is base64url (no padding) of a body and its HMAC-SHA256 tag (32
//! bytes, with `LEDGERLINE_CURSOR_SECRET`). Three bodies:
//! - an account's history: `1 | account id (16) | before_version (8, big endian)`;
//! - an owner's accounts: `2 | SHA-256 of the owner id, first 16 bytes | after account id (16)`;
//! - an account's holds: `3 | account id (16) | before hold id (16)`;
//! - a statement: `4 | account id (16) | from, to (8 each, nanoseconds since
//!   1970) | after version (8) | closing version and balance (8 each) |
//!   opening balance, total credits, total debits (8 each)`, all big endian.
//!
//! A cursor that does not decode, whose tag does not verify, or that was
//! made for another account or owner is refused: a cursor can never point a
//! request at someone else's data.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use ledgerline_shared::read_model::BalanceMark;
use sha2::Sha256;
use thiserror::Error;
use uuid::Uuid;

const FORMAT: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 8;
const ACCOUNTS_FORMAT: u8 = 2;
const ACCOUNTS_BODY_LEN: usize = 1 + 16 + 16;
const HOLDS_FORMAT: u8 = 3;
const HOLDS_BODY_LEN: usize = 1 + 16 + 16;
const STATEMENT_FORMAT: u8 = 4;
const STATEMENT_BODY_LEN: usize = 1 + 16 + 8 * 8;
const TAG_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CursorError {
    #[error("the cursor is malformed")]
    Malformed,
    #[error("the cursor was not issued by this service")]
    BadSignature,
    #[error("the cursor belongs to another account")]
    WrongAccount,
    #[error("the cursor belongs to another owner's list")]
    WrongOwner,
    #[error("the cursor belongs to another statement (its from and to must be the same)")]
    WrongPeriod,
}

/// Where a statement's next page starts, and what its first page found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementPosition {
    pub account_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The version of the last item shown.
    pub after_version: u64,
    /// The movement the statement closes on.
    pub closing: BalanceMark,
    pub opening_balance: i64,
    pub total_credits: i64,
    pub total_debits: i64,
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

    /// `body` and its tag, base64url.
    fn seal(&self, mut body: Vec<u8>) -> String {
        let mut mac = self.mac();
        mac.update(&body);
        body.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The body of a genuine `cursor` of `format` (and `body_len` bytes).
    fn open(&self, cursor: &str, format: u8, body_len: usize) -> Result<Vec<u8>, CursorError> {
        if cursor.len() > (body_len + TAG_LEN).div_ceil(3) * 4 {
            return Err(CursorError::Malformed);
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| CursorError::Malformed)?;
        if bytes.len() != body_len + TAG_LEN || bytes[0] != format {
            return Err(CursorError::Malformed);
        }
        let tag = bytes.split_off(body_len);
        let mut mac = self.mac();
        mac.update(&bytes);
        mac.verify_slice(&tag).map_err(|_| CursorError::BadSignature)?;
        Ok(bytes)
    }

    pub fn encode(&self, account_id: Uuid, before_version: u64) -> String {
        let mut body = Vec::with_capacity(BODY_LEN + TAG_LEN);
        body.push(FORMAT);
        body.extend_from_slice(account_id.as_bytes());
        body.extend_from_slice(&before_version.to_be_bytes());
        self.seal(body)
    }

    /// The `before_version` in `cursor`, if it is genuine and for `account_id`.
    pub fn decode(&self, account_id: Uuid, cursor: &str) -> Result<u64, CursorError> {
        let body = self.open(cursor, FORMAT, BODY_LEN)?;
        let owner = Uuid::from_slice(&body[1..17]).map_err(|_| CursorError::Malformed)?;
        if owner != account_id {
            return Err(CursorError::WrongAccount);
        }
        Ok(u64::from_be_bytes(body[17..25].try_into().expect("8 bytes")))
    }

    /// The cursor of a statement's next page.
    pub fn encode_statement(&self, position: &StatementPosition) -> String {
        let mut body = Vec::with_capacity(STATEMENT_BODY_LEN + TAG_LEN);
        body.push(STATEMENT_FORMAT);
        body.extend_from_slice(position.account_id.as_bytes());
        for word in [nanos(position.from), nanos(position.to)] {
            body.extend_from_slice(&word.to_be_bytes());
        }
        for word in [position.after_version, position.closing.version] {
            body.extend_from_slice(&word.to_be_bytes());
        }
        for word in [position.closing.balance, position.opening_balance, position.total_credits, position.total_debits] {
            body.extend_from_slice(&word.to_be_bytes());
        }
        self.seal(body)
    }

    /// The position in a statement cursor of `account_id`, if it is genuine.
    pub fn decode_statement(&self, account_id: Uuid, cursor: &str) -> Result<StatementPosition, CursorError> {
        let body = self.open(cursor, STATEMENT_FORMAT, STATEMENT_BODY_LEN)?;
        if body[1..17] != *account_id.as_bytes() {
            return Err(CursorError::WrongAccount);
        }
        let word = |i: usize| -> [u8; 8] { body[17 + 8 * i..25 + 8 * i].try_into().expect("8 bytes") };
        let (signed, unsigned) = (|i| i64::from_be_bytes(word(i)), |i| u64::from_be_bytes(word(i)));
        Ok(StatementPosition {
            account_id,
            from: DateTime::from_timestamp_nanos(signed(0)),
            to: DateTime::from_timestamp_nanos(signed(1)),
            after_version: unsigned(2),
            closing: BalanceMark { version: unsigned(3), balance: signed(4) },
            opening_balance: signed(5),
            total_credits: signed(6),
            total_debits: signed(7),
        })
    }

    /// The cursor of an account's holds, for the page before `before`.
    pub fn encode_holds(&self, account_id: Uuid, before: Uuid) -> String {
        let mut body = vec![HOLDS_FORMAT];
        body.extend_from_slice(account_id.as_bytes());
        body.extend_from_slice(before.as_bytes());
        self.seal(body)
    }

    /// The hold id a holds cursor of `account_id` points before.
    pub fn decode_holds(&self, account_id: Uuid, cursor: &str) -> Result<Uuid, CursorError> {
        let body = self.open(cursor, HOLDS_FORMAT, HOLDS_BODY_LEN)?;
        if body[1..17] != *account_id.as_bytes() {
            return Err(CursorError::WrongAccount);
        }
        Ok(Uuid::from_slice(&body[17..33]).expect("16 bytes"))
    }

    /// A cursor into `owner`'s accounts: the next page starts after `after`.
    pub fn encode_accounts(&self, owner: &str, after: Uuid) -> String {
        let mut body = Vec::with_capacity(ACCOUNTS_BODY_LEN + TAG_LEN);
        body.push(ACCOUNTS_FORMAT);
        body.extend_from_slice(&owner_scope(owner));
        body.extend_from_slice(after.as_bytes());
        self.seal(body)
    }

    /// The account id in `cursor` the page starts after, if it is genuine
    /// and for `owner`'s list.
    pub fn decode_accounts(&self, owner: &str, cursor: &str) -> Result<Uuid, CursorError> {
        let body = self.open(cursor, ACCOUNTS_FORMAT, ACCOUNTS_BODY_LEN)?;
        if body[1..17] != owner_scope(owner) {
            return Err(CursorError::WrongOwner);
        }
        Uuid::from_slice(&body[17..33]).map_err(|_| CursorError::Malformed)
    }
}

/// A moment as a statement cursor carries it (statement periods are
/// checked to lie within what nanoseconds since 1970 can say).
fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().expect("statement periods are checked to fit")
}

/// Binds an accounts cursor to its owner without carrying the owner id.
fn owner_scope(owner: &str) -> [u8; 16] {
    use sha2::Digest;
    Sha256::digest(owner.as_bytes())[..16].try_into().expect("16 bytes")
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

    #[test]
    fn a_holds_cursor_round_trips_for_its_account_only_and_is_no_other_cursor() {
        let codec = CursorCodec::new(b"secret");
        let (account, other, hold) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::now_v7());
        let cursor = codec.encode_holds(account, hold);
        assert_eq!(codec.decode_holds(account, &cursor), Ok(hold));
        assert_eq!(codec.decode_holds(other, &cursor), Err(CursorError::WrongAccount));
        assert_eq!(codec.decode(account, &cursor), Err(CursorError::Malformed));
        assert_eq!(codec.decode_holds(account, &codec.encode(account, 5)), Err(CursorError::Malformed));
    }

    #[test]
    fn a_statement_cursor_round_trips_for_its_account_only_and_is_no_other_cursor() {
        let codec = CursorCodec::new(b"secret");
        let (account, other) = (Uuid::new_v4(), Uuid::new_v4());
        let position = StatementPosition {
            account_id: account,
            from: DateTime::from_timestamp_nanos(1_700_000_000_123_456_789),
            to: DateTime::from_timestamp_nanos(1_710_000_000_000_000_001),
            after_version: 41,
            closing: BalanceMark { version: 99, balance: -5 },
            opening_balance: 7,
            total_credits: 1_000_000_000_000,
            total_debits: 12,
        };
        let cursor = codec.encode_statement(&position);
        assert_eq!(codec.decode_statement(account, &cursor), Ok(position));
        assert_eq!(codec.decode_statement(other, &cursor), Err(CursorError::WrongAccount));
        assert_eq!(codec.decode(account, &cursor), Err(CursorError::Malformed));
        assert_eq!(codec.decode_statement(account, &codec.encode(account, 5)), Err(CursorError::Malformed));
        assert_eq!(CursorCodec::new(b"other").decode_statement(account, &cursor), Err(CursorError::BadSignature));
    }

    #[test]
    fn an_accounts_cursor_round_trips_for_its_owner_only_and_never_as_a_history_cursor() {
        let codec = CursorCodec::new(b"secret");
        let after = Uuid::new_v4();
        let cursor = codec.encode_accounts("alice", after);
        assert_eq!(codec.decode_accounts("alice", &cursor), Ok(after));
        assert_eq!(codec.decode_accounts("bob", &cursor), Err(CursorError::WrongOwner));
        assert_eq!(codec.decode(after, &cursor), Err(CursorError::Malformed), "another kind of cursor");
        assert_eq!(codec.decode_accounts("alice", &codec.encode(after, 3)), Err(CursorError::Malformed));
        assert_eq!(CursorCodec::new(b"other").decode_accounts("alice", &cursor), Err(CursorError::BadSignature));
    }
}
