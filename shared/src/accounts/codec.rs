//! Encoding account events and snapshots as bincode, and reading old ones.
//!
//! Stored events are never rewritten, so a reader must understand every
//! schema version ever written. When an event's shape changes, bump
//! [`ACCOUNT_EVENT_SCHEMA_VERSION`] and register an [`Upcaster`] that turns
//! the previous version's bytes into the next one's; [`EventCodec::decode`]
//! chains them until the payload is current.

use thiserror::Error;

use crate::domain::{ACCOUNT_EVENT_SCHEMA_VERSION, Account, AccountEvent};
use crate::event_store::bincode_config;

/// Snapshots are a cache: when this changes, old snapshots are just ignored.
/// 2: the account's holds (active and recently ended) are part of its state.
/// 3: a hold keeps only its id, amount and expiry (an integer).
pub const ACCOUNT_SNAPSHOT_SCHEMA_VERSION: u16 = 3;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("{event_type} schema version {version} is newer than this code understands")]
    FutureSchemaVersion { event_type: String, version: u16 },
    #[error("no upcaster for {event_type} schema version {version}")]
    MissingUpcaster { event_type: String, version: u16 },
    #[error("payload does not decode as {event_type}: {reason}")]
    Malformed { event_type: String, reason: String },
}

/// Turns one event type's payload from `from_version` into `from_version + 1`.
#[derive(Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u16,
    pub upcast: fn(&[u8]) -> Result<Vec<u8>, String>,
}

#[derive(Clone, Default)]
pub struct EventCodec {
    upcasters: Vec<Upcaster>,
}

impl EventCodec {
    /// The codec with every upcaster Ledgerline ships (none yet: every stored
    /// event is schema version 1).
    pub fn current() -> Self {
        Self::default()
    }

    /// A codec with extra upcasters, for tests and for the day one is needed.
    pub fn with_upcasters(upcasters: Vec<Upcaster>) -> Self {
        Self { upcasters }
    }

    /// The event type, schema version and payload to store.
    pub fn encode(&self, event: &AccountEvent) -> (&'static str, u16, Vec<u8>) {
        let payload = bincode::serde::encode_to_vec(event, bincode_config()).expect("encoding an event to memory cannot fail");
        (event.event_type(), ACCOUNT_EVENT_SCHEMA_VERSION, payload)
    }

    pub fn decode(&self, event_type: &str, schema_version: u16, payload: &[u8]) -> Result<AccountEvent, CodecError> {
        if !AccountEvent::EVENT_TYPES.contains(&event_type) {
            return Err(CodecError::UnknownEventType(event_type.chars().take(100).collect()));
        }
        if schema_version > ACCOUNT_EVENT_SCHEMA_VERSION {
            return Err(CodecError::FutureSchemaVersion { event_type: event_type.into(), version: schema_version });
        }
        let mut version = schema_version;
        let mut bytes = payload.to_vec();
        while version < ACCOUNT_EVENT_SCHEMA_VERSION {
            let upcaster = self
                .upcasters
                .iter()
                .find(|u| u.event_type == event_type && u.from_version == version)
                .ok_or_else(|| CodecError::MissingUpcaster { event_type: event_type.into(), version })?;
            bytes = (upcaster.upcast)(&bytes).map_err(|reason| CodecError::Malformed { event_type: event_type.into(), reason })?;
            version += 1;
        }
        let malformed = |reason: String| CodecError::Malformed { event_type: event_type.into(), reason };
        let (event, read) =
            bincode::serde::decode_from_slice::<AccountEvent, _>(&bytes, bincode_config()).map_err(|e| malformed(e.to_string()))?;
        if read != bytes.len() {
            return Err(malformed("trailing bytes".into()));
        }
        if event.event_type() != event_type {
            return Err(malformed(format!("the payload is a {}", event.event_type())));
        }
        Ok(event)
    }
}

pub fn encode_snapshot(account: &Account) -> Vec<u8> {
    bincode::serde::encode_to_vec(account, bincode_config()).expect("encoding a snapshot to memory cannot fail")
}

/// `None` for a snapshot of another schema version or one that does not
/// decode: the caller then replays the stream from the start.
pub fn decode_snapshot(schema_version: u16, state: &[u8]) -> Option<Account> {
    if schema_version != ACCOUNT_SNAPSHOT_SCHEMA_VERSION {
        return None;
    }
    match bincode::serde::decode_from_slice::<Account, _>(state, bincode_config()) {
        Ok((account, read)) if read == state.len() => Some(account),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::domain::{Amount, Reference};

    fn deposited() -> AccountEvent {
        AccountEvent::Deposited {
            amount: Amount::new(1234).unwrap(),
            balance_after: 1234,
            reference: Some(Reference::new("rent").unwrap()),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn events_round_trip() {
        let codec = EventCodec::current();
        let (event_type, version, payload) = codec.encode(&deposited());
        assert_eq!((event_type, version), ("MoneyDeposited", 1));
        assert_eq!(codec.decode(event_type, version, &payload), Ok(deposited()));
    }

    /// Golden bytes: if this fails, the stored encoding changed and old events
    /// would no longer decode. Add a schema version and an upcaster instead.
    #[test]
    fn the_encoding_of_a_stored_event_never_changes() {
        let (_, _, payload) = EventCodec::current().encode(&deposited());
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "01fba409fba409010472656e7414323032362d30312d30315430303a30303a30305a");
    }

    /// The same for a hold's placing and its capture into another account.
    #[test]
    fn the_encoding_of_stored_hold_events_never_changes() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let placed = AccountEvent::HoldPlaced {
            hold_id: Uuid::from_u128(7),
            amount: Amount::new(300).unwrap(),
            reference: Some(Reference::new("hotel").unwrap()),
            expires_at: at + chrono::Duration::hours(1),
            at,
        };
        let captured = AccountEvent::HoldCaptured {
            hold_id: Uuid::from_u128(7),
            amount: Amount::new(250).unwrap(),
            released: 50,
            balance_after: 750,
            transfer: Some(crate::domain::HoldTransfer { transfer_id: Uuid::from_u128(9), to_account_id: Uuid::from_u128(2) }),
            reference: None,
            at,
        };
        let hex = |event: &AccountEvent| -> String { EventCodec::current().encode(event).2.iter().map(|b| format!("{b:02x}")).collect() };
        assert_eq!(
            hex(&placed),
            "081000000000000000000000000000000007fb58020105686f74656c14323032362d30312d30315430313a30303a30305a14323032362d30312d30315430303a30303a30305a"
        );
        assert_eq!(
            hex(&captured),
            "091000000000000000000000000000000007fbf40164fbdc0501100000000000000000000000000000000910000000000000000000000000000000020014323032362d30312d30315430303a30303a30305a"
        );
    }

    /// The same for an entry's two kinds of leg.
    #[test]
    fn the_encoding_of_stored_entry_legs_never_changes() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let debited = AccountEvent::EntryDebited {
            entry_id: Uuid::from_u128(0xE),
            amount: Amount::new(1_050).unwrap(),
            balance_after: -50,
            reference: Some(Reference::new("fee").unwrap()),
            at,
        };
        let credited = AccountEvent::EntryCredited {
            entry_id: Uuid::from_u128(0xE),
            amount: Amount::new(50).unwrap(),
            balance_after: 50,
            reference: None,
            at,
        };
        let hex = |event: &AccountEvent| -> String { EventCodec::current().encode(event).2.iter().map(|b| format!("{b:02x}")).collect() };
        assert_eq!(hex(&debited), "0c100000000000000000000000000000000efb340863010366656514323032362d30312d30315430303a30303a30305a");
        assert_eq!(hex(&credited), "0d100000000000000000000000000000000e64640014323032362d30312d30315430303a30303a30305a");
        for event in [debited, credited] {
            let (event_type, version, payload) = EventCodec::current().encode(&event);
            assert_eq!(EventCodec::current().decode(event_type, version, &payload), Ok(event));
        }
    }

    #[test]
    fn unknown_types_future_versions_and_garbage_are_typed_errors() {
        let codec = EventCodec::current();
        let (_, _, payload) = codec.encode(&deposited());
        assert!(matches!(codec.decode("MoneyPrinted", 1, &payload), Err(CodecError::UnknownEventType(_))));
        assert!(matches!(codec.decode("MoneyDeposited", 2, &payload), Err(CodecError::FutureSchemaVersion { .. })));
        assert!(matches!(codec.decode("MoneyDeposited", 1, &[0xff, 0x00]), Err(CodecError::Malformed { .. })));
        // The right bytes under the wrong type name are caught too.
        assert!(matches!(codec.decode("MoneyWithdrawn", 1, &payload), Err(CodecError::Malformed { .. })));
    }

    #[test]
    fn an_old_schema_version_is_upcast_before_decoding() {
        // Pretend version 0 of MoneyDeposited lacked the reference (encoded as
        // the same fields without the Option); the upcaster adds `None`.
        fn v0_to_v1(bytes: &[u8]) -> Result<Vec<u8>, String> {
            let (amount, balance_after, at): (Amount, i64, chrono::DateTime<Utc>) =
                bincode::serde::decode_from_slice(&bytes[1..], bincode_config()).map_err(|e| e.to_string())?.0;
            let event = AccountEvent::Deposited { amount, balance_after, reference: None, at };
            Ok(bincode::serde::encode_to_vec(&event, bincode_config()).unwrap())
        }
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut v0 = vec![1u8]; // the variant index of Deposited
        v0.extend(bincode::serde::encode_to_vec((Amount::new(5).unwrap(), 5i64, at), bincode_config()).unwrap());

        let without = EventCodec::current();
        assert!(matches!(without.decode("MoneyDeposited", 0, &v0), Err(CodecError::MissingUpcaster { .. })));
        let with = EventCodec::with_upcasters(vec![Upcaster { event_type: "MoneyDeposited", from_version: 0, upcast: v0_to_v1 }]);
        assert_eq!(
            with.decode("MoneyDeposited", 0, &v0),
            Ok(AccountEvent::Deposited { amount: Amount::new(5).unwrap(), balance_after: 5, reference: None, at })
        );
    }

    #[test]
    fn holds_survive_a_snapshot() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let (active, released) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let placed = |hold_id, amount| AccountEvent::HoldPlaced {
            hold_id,
            amount: Amount::new(amount).unwrap(),
            reference: Some(Reference::new("hotel").unwrap()),
            expires_at: at + chrono::Duration::hours(1),
            at,
        };
        let events = [
            AccountEvent::Opened {
                account_id: Uuid::from_u128(1),
                owner_id: "alice".into(),
                currency: "EUR".parse().unwrap(),
                overdraft_limit: 0,
                at,
            },
            AccountEvent::Deposited { amount: Amount::new(100).unwrap(), balance_after: 100, reference: None, at },
            placed(active, 30),
            placed(released, 20),
            AccountEvent::HoldReleased { hold_id: released, amount: Amount::new(20).unwrap(), at },
        ];
        let account = Account::replay(None, &events).unwrap().unwrap();
        let restored = decode_snapshot(ACCOUNT_SNAPSHOT_SCHEMA_VERSION, &encode_snapshot(&account)).expect("decodes");
        assert_eq!(restored, account);
        assert_eq!((restored.held(at), restored.hold_status(released, at)), (30, Some(crate::domain::HoldStatus::Released)));
    }

    #[test]
    fn a_snapshot_of_another_version_or_garbage_is_ignored() {
        let events = [AccountEvent::Opened {
            account_id: Uuid::from_u128(1),
            owner_id: "alice".into(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: 0,
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }];
        let account = Account::replay(None, &events).unwrap().unwrap();
        let bytes = encode_snapshot(&account);
        assert_eq!(decode_snapshot(ACCOUNT_SNAPSHOT_SCHEMA_VERSION, &bytes), Some(account));
        assert_eq!(decode_snapshot(ACCOUNT_SNAPSHOT_SCHEMA_VERSION + 1, &bytes), None);
        assert_eq!(decode_snapshot(ACCOUNT_SNAPSHOT_SCHEMA_VERSION, &bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_snapshot(ACCOUNT_SNAPSHOT_SCHEMA_VERSION, b"garbage"), None);
    }
}
