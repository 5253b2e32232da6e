//! Given / when / then tests of holds: placing, capturing (out of the
//! ledger and into another account), releasing, expiring, and how holds
//! bound every other debit and closing.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;

const ACCOUNT: Uuid = Uuid::from_u128(0xA);
const OTHER: Uuid = Uuid::from_u128(0xB);
const HOLD: Uuid = Uuid::from_u128(0x40);
const SECOND_HOLD: Uuid = Uuid::from_u128(0x41);
const TRANSFER: Uuid = Uuid::from_u128(0x7);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn later(seconds: i64) -> DateTime<Utc> {
    at() + Duration::seconds(seconds)
}

fn amount(minor_units: i64) -> Amount {
    Amount::new(minor_units).unwrap()
}

fn opened_with(id: Uuid, currency: &str, overdraft_limit: i64) -> AccountEvent {
    AccountEvent::Opened { account_id: id, owner_id: "alice".into(), currency: currency.parse().unwrap(), overdraft_limit, at: at() }
}

fn opened() -> AccountEvent {
    opened_with(ACCOUNT, "EUR", 0)
}

fn deposited(minor_units: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::Deposited { amount: amount(minor_units), balance_after, reference: None, at: at() }
}

/// A hold of `minor_units` placed at `at()`, living an hour.
fn placed(hold_id: Uuid, minor_units: i64) -> AccountEvent {
    AccountEvent::HoldPlaced { hold_id, amount: amount(minor_units), reference: None, expires_at: later(3600), at: at() }
}

fn place(hold_id: Uuid, minor_units: i64) -> AccountCommand {
    AccountCommand::PlaceHold { hold_id, amount: amount(minor_units), reference: None, lifetime: HoldLifetime::new(3600).unwrap() }
}

fn capture(minor_units: Option<i64>) -> AccountCommand {
    AccountCommand::CaptureHold { hold_id: HOLD, amount: minor_units.map(amount), reference: None }
}

fn account_from(history: &[AccountEvent]) -> Account {
    Account::replay(None, history).unwrap().unwrap()
}

/// `history`, then `command` decided at `when`.
fn given_when(history: &[AccountEvent], command: AccountCommand, when: DateTime<Utc>) -> Result<Vec<AccountEvent>, DomainError> {
    decide(Some(&account_from(history)), &command, when)
}

// ---- place ----

#[test]
fn placing_a_hold_reserves_money_without_changing_the_balance() {
    let events = given_when(&[opened(), deposited(100, 100)], place(HOLD, 30), at()).unwrap();
    assert_eq!(events, vec![placed(HOLD, 30)]);
    let account = account_from(&[opened(), deposited(100, 100), placed(HOLD, 30)]);
    assert_eq!((account.balance, account.held(at()), account.available(at())), (100, 30, 70));
}

#[test]
fn a_hold_lives_as_long_as_asked_and_a_lifetime_is_bounded() {
    let command = AccountCommand::PlaceHold { hold_id: HOLD, amount: amount(1), reference: None, lifetime: HoldLifetime::new(60).unwrap() };
    let events = given_when(&[opened(), deposited(100, 100)], command, at()).unwrap();
    assert!(matches!(&events[0], AccountEvent::HoldPlaced { expires_at, .. } if *expires_at == later(60)));
    assert_eq!(HoldLifetime::default().seconds(), 7 * 24 * 3600);
    assert_eq!(HoldLifetime::new(59), Err(DomainError::InvalidHoldLifetime(59)));
    assert_eq!(HoldLifetime::new(30 * 24 * 3600 + 1), Err(DomainError::InvalidHoldLifetime(30 * 24 * 3600 + 1)));
}

#[test]
fn a_hold_beyond_the_available_balance_is_refused() {
    let history = [opened_with(ACCOUNT, "EUR", 20), deposited(100, 100), placed(HOLD, 70)];
    assert_eq!(
        given_when(&history, place(SECOND_HOLD, 51), at()),
        Err(DomainError::InsufficientFunds { balance: 100, overdraft_limit: 20, held: 70, requested: 51 })
    );
    assert_eq!(given_when(&history, place(SECOND_HOLD, 50), at()), Ok(vec![placed(SECOND_HOLD, 50)]), "into the overdraft, to its limit");
}

#[test]
fn a_hold_on_a_frozen_or_closed_account_is_refused() {
    let frozen = [opened(), deposited(100, 100), AccountEvent::Frozen { at: at() }];
    assert_eq!(given_when(&frozen, place(HOLD, 1), at()), Err(DomainError::AccountFrozen));
    let closed = [opened(), AccountEvent::Closed { at: at() }];
    assert_eq!(given_when(&closed, place(HOLD, 1), at()), Err(DomainError::AccountClosed));
}

#[test]
fn an_account_has_at_most_a_thousand_live_holds() {
    let mut history = vec![opened(), deposited(MAX_AMOUNT, MAX_AMOUNT)];
    history.extend((0..MAX_ACTIVE_HOLDS as u128).map(|n| placed(Uuid::from_u128(0x1000 + n), 1)));
    assert_eq!(given_when(&history, place(HOLD, 1), at()), Err(DomainError::TooManyHolds(MAX_ACTIVE_HOLDS)));
    // Expired holds do not count, even before their expiry is recorded.
    assert_eq!(given_when(&history, place(HOLD, 1), later(3600)).map(|e| e.len()), Ok(1));
}

// ---- what holds do to other debits ----

#[test]
fn withdrawals_and_transfers_cannot_spend_reserved_money() {
    let history = [opened(), deposited(100, 100), placed(HOLD, 60)];
    let withdraw = |n| AccountCommand::Withdraw { amount: amount(n), reference: None };
    assert_eq!(
        given_when(&history, withdraw(41), at()),
        Err(DomainError::InsufficientFunds { balance: 100, overdraft_limit: 0, held: 60, requested: 41 })
    );
    assert!(given_when(&history, withdraw(40), at()).is_ok());
    let from = account_from(&history);
    let to = account_from(&[opened_with(OTHER, "EUR", 0)]);
    let transfer =
        |n| TransferCommand { transfer_id: TRANSFER, from_account_id: ACCOUNT, to_account_id: OTHER, amount: amount(n), reference: None };
    assert!(matches!(decide_transfer(Some(&from), Some(&to), &transfer(41), at()), Err(DomainError::InsufficientFunds { held: 60, .. })));
    assert!(decide_transfer(Some(&from), Some(&to), &transfer(40), at()).is_ok());
}

#[test]
fn an_expired_hold_stops_counting_at_once_before_its_expiry_is_recorded() {
    let account = account_from(&[opened(), deposited(100, 100), placed(HOLD, 60)]);
    assert_eq!(account.available(later(3599)), 40);
    assert_eq!(account.available(later(3600)), 100);
    assert_eq!(account.hold_status(HOLD, later(3600)), Some(HoldStatus::Expired));
    let withdraw = AccountCommand::Withdraw { amount: amount(100), reference: None };
    assert!(decide(Some(&account), &withdraw, later(3600)).is_ok());
}

// ---- capture ----

#[test]
fn capturing_all_of_a_hold_moves_it_out_of_the_ledger() {
    let history = [opened(), deposited(100, 100), placed(HOLD, 60)];
    let events = given_when(&history, capture(None), at()).unwrap();
    let captured = AccountEvent::HoldCaptured {
        hold_id: HOLD,
        amount: amount(60),
        released: 0,
        balance_after: 40,
        transfer: None,
        reference: None,
        at: at(),
    };
    assert_eq!(events, vec![captured.clone()]);
    let account = account_from(&[opened(), deposited(100, 100), placed(HOLD, 60), captured]);
    assert_eq!((account.balance, account.held(at()), account.available(at())), (40, 0, 40));
    assert_eq!(account.hold_status(HOLD, at()), Some(HoldStatus::Captured));
}

#[test]
fn capturing_part_of_a_hold_frees_the_rest() {
    let history = [opened(), deposited(100, 100), placed(HOLD, 60)];
    let events = given_when(&history, capture(Some(25)), at()).unwrap();
    assert!(matches!(&events[0], AccountEvent::HoldCaptured { amount, released: 35, balance_after: 75, .. } if amount.minor_units() == 25));
    let mut after = history.to_vec();
    after.extend(events);
    assert_eq!(account_from(&after).available(at()), 75);
}

#[test]
fn capturing_more_than_the_hold_is_refused() {
    let history = [opened(), deposited(100, 100), placed(HOLD, 60)];
    assert_eq!(given_when(&history, capture(Some(61)), at()), Err(DomainError::CaptureExceedsHold { held: 60, requested: 61 }));
}

#[test]
fn a_hold_that_ended_cannot_be_captured_and_the_refusal_says_how_it_ended() {
    let base = [opened(), deposited(100, 100), placed(HOLD, 60)];
    let released = AccountEvent::HoldReleased { hold_id: HOLD, amount: amount(60), at: at() };
    let expired = AccountEvent::HoldExpired { hold_id: HOLD, amount: amount(60), at: later(3600) };
    let captured = AccountEvent::HoldCaptured {
        hold_id: HOLD,
        amount: amount(60),
        released: 0,
        balance_after: 40,
        transfer: None,
        reference: None,
        at: at(),
    };
    for (end, status) in [(released, HoldStatus::Released), (expired, HoldStatus::Expired), (captured, HoldStatus::Captured)] {
        let mut history = base.to_vec();
        history.push(end);
        assert_eq!(given_when(&history, capture(None), later(10)), Err(DomainError::HoldNotActive(status)));
        assert_eq!(given_when(&history, AccountCommand::ReleaseHold { hold_id: HOLD }, later(10)), Err(DomainError::HoldNotActive(status)));
    }
    // Past its expiry, before the expiry is recorded: expired too.
    assert_eq!(given_when(&base, capture(None), later(3600)), Err(DomainError::HoldNotActive(HoldStatus::Expired)));
    assert_eq!(DomainError::HoldNotActive(HoldStatus::Released).to_string(), "the hold is no longer active: it was released");
}

#[test]
fn an_unknown_hold_is_not_found() {
    let history = [opened(), deposited(100, 100)];
    assert_eq!(given_when(&history, capture(None), at()), Err(DomainError::HoldNotFound));
    assert_eq!(given_when(&history, AccountCommand::ReleaseHold { hold_id: HOLD }, at()), Err(DomainError::HoldNotFound));
}

#[test]
fn a_hold_on_a_frozen_account_cannot_be_captured_but_can_be_released() {
    let history = [opened(), deposited(100, 100), placed(HOLD, 60), AccountEvent::Frozen { at: at() }];
    assert_eq!(given_when(&history, capture(None), at()), Err(DomainError::AccountFrozen));
    assert_eq!(
        given_when(&history, AccountCommand::ReleaseHold { hold_id: HOLD }, at()),
        Ok(vec![AccountEvent::HoldReleased { hold_id: HOLD, amount: amount(60), at: at() }])
    );
}

#[test]
fn a_capture_into_another_account_is_a_transfer_that_ends_the_hold() {
    let from = account_from(&[opened(), deposited(100, 100), placed(HOLD, 60)]);
    let to = account_from(&[opened_with(OTHER, "EUR", 0), deposited(5, 5)]);
    let command = CaptureToAccount {
        hold_id: HOLD,
        transfer_id: TRANSFER,
        from_account_id: ACCOUNT,
        to_account_id: OTHER,
        amount: Some(amount(45)),
        reference: None,
    };
    let decision = decide_capture_to_account(Some(&from), Some(&to), &command, at()).unwrap();
    assert_eq!(
        decision,
        TransferDecision {
            sent: AccountEvent::HoldCaptured {
                hold_id: HOLD,
                amount: amount(45),
                released: 15,
                balance_after: 55,
                transfer: Some(HoldTransfer { transfer_id: TRANSFER, to_account_id: OTHER }),
                reference: None,
                at: at(),
            },
            received: AccountEvent::TransferReceived {
                transfer_id: TRANSFER,
                from_account_id: ACCOUNT,
                amount: amount(45),
                balance_after: 50,
                reference: None,
                at: at(),
            },
        }
    );
}

#[test]
fn a_capture_into_an_account_that_cannot_receive_is_one_refusal() {
    let from = account_from(&[opened(), deposited(100, 100), placed(HOLD, 60)]);
    let command = |to| CaptureToAccount {
        hold_id: HOLD,
        transfer_id: TRANSFER,
        from_account_id: ACCOUNT,
        to_account_id: to,
        amount: None,
        reference: None,
    };
    let usd = account_from(&[opened_with(OTHER, "USD", 0)]);
    let frozen = account_from(&[opened_with(OTHER, "EUR", 0), AccountEvent::Frozen { at: at() }]);
    let refused = Err(DomainError::RecipientCannotReceive);
    assert_eq!(decide_capture_to_account(Some(&from), None, &command(OTHER), at()), refused);
    assert_eq!(decide_capture_to_account(Some(&from), Some(&usd), &command(OTHER), at()), refused);
    assert_eq!(decide_capture_to_account(Some(&from), Some(&frozen), &command(OTHER), at()), refused);
    assert_eq!(decide_capture_to_account(Some(&from), Some(&from), &command(ACCOUNT), at()), Err(DomainError::SameAccount));
}

// ---- release and expiry ----

#[test]
fn releasing_a_hold_frees_its_money() {
    let history = [opened(), deposited(100, 100), placed(HOLD, 60)];
    let events = given_when(&history, AccountCommand::ReleaseHold { hold_id: HOLD }, at()).unwrap();
    let mut after = history.to_vec();
    after.extend(events);
    let account = account_from(&after);
    assert_eq!((account.balance, account.available(at()), account.hold_status(HOLD, at())), (100, 100, Some(HoldStatus::Released)));
}

#[test]
fn the_sweep_records_the_expiry_of_every_hold_past_due_and_only_those() {
    let history = [
        opened(),
        deposited(100, 100),
        placed(HOLD, 10),
        AccountEvent::HoldPlaced { hold_id: SECOND_HOLD, amount: amount(20), reference: None, expires_at: later(7200), at: at() },
    ];
    assert_eq!(given_when(&history, AccountCommand::ExpireHolds, later(3599)), Ok(vec![]));
    assert_eq!(
        given_when(&history, AccountCommand::ExpireHolds, later(3600)),
        Ok(vec![AccountEvent::HoldExpired { hold_id: HOLD, amount: amount(10), at: later(3600) }])
    );
    // On a frozen account too: an expiry moves no money.
    let mut frozen = history.to_vec();
    frozen.push(AccountEvent::Frozen { at: at() });
    assert_eq!(given_when(&frozen, AccountCommand::ExpireHolds, later(7200)).map(|e| e.len()), Ok(2));
}

// ---- close ----

/// An empty account (balance zero) with a hold on its overdraft.
fn empty_with_a_hold() -> [AccountEvent; 2] {
    [opened_with(ACCOUNT, "EUR", 5), placed(HOLD, 1)]
}

#[test]
fn an_account_with_live_holds_cannot_be_closed() {
    assert_eq!(given_when(&empty_with_a_hold(), AccountCommand::Close, at()), Err(DomainError::ActiveHolds(1)));
}

#[test]
fn closing_records_the_expiry_of_holds_past_due_first() {
    assert_eq!(
        given_when(&empty_with_a_hold(), AccountCommand::Close, later(3600)),
        Ok(vec![AccountEvent::HoldExpired { hold_id: HOLD, amount: amount(1), at: later(3600) }, AccountEvent::Closed { at: later(3600) }])
    );
}

// ---- replay ----

#[test]
fn replay_refuses_hold_events_that_do_not_add_up() {
    let base = vec![opened(), deposited(100, 100), placed(HOLD, 60)];
    let bad = [
        placed(HOLD, 1),                                                                   // placed twice
        AccountEvent::HoldReleased { hold_id: SECOND_HOLD, amount: amount(60), at: at() }, // unknown hold
        AccountEvent::HoldReleased { hold_id: HOLD, amount: amount(59), at: at() },        // wrong amount
        AccountEvent::HoldCaptured {
            hold_id: HOLD,
            amount: amount(50),
            released: 5,
            balance_after: 50,
            transfer: None,
            reference: None,
            at: at(),
        },
        AccountEvent::HoldCaptured {
            hold_id: HOLD,
            amount: amount(60),
            released: 0,
            balance_after: 41,
            transfer: None,
            reference: None,
            at: at(),
        },
    ];
    for event in bad {
        let mut history = base.clone();
        history.push(event.clone());
        assert!(matches!(Account::replay(None, &history), Err(DomainError::InvalidHistory(_))), "{event:?}");
    }
}

#[test]
fn an_account_remembers_a_bounded_number_of_ended_holds() {
    let mut history = vec![opened(), deposited(MAX_AMOUNT, MAX_AMOUNT)];
    for n in 0..(REMEMBERED_ENDED_HOLDS as u128 + 5) {
        let hold_id = Uuid::from_u128(0x1000 + n);
        history.push(placed(hold_id, 1));
        history.push(AccountEvent::HoldReleased { hold_id, amount: amount(1), at: at() });
    }
    let account = account_from(&history);
    assert_eq!(account.ended_holds.len(), REMEMBERED_ENDED_HOLDS);
    assert_eq!(account.hold_status(Uuid::from_u128(0x1000), at()), None, "the oldest is forgotten");
    assert_eq!(account.hold_status(Uuid::from_u128(0x1000 + 5), at()), Some(HoldStatus::Released));
}

#[test]
fn hold_error_codes_are_the_ones_the_api_documents() {
    assert_eq!(DomainError::HoldNotFound.code(), "hold_not_found");
    assert_eq!(DomainError::HoldNotActive(HoldStatus::Expired).code(), "hold_not_active");
    assert_eq!(DomainError::CaptureExceedsHold { held: 1, requested: 2 }.code(), "capture_exceeds_hold");
    assert_eq!(DomainError::ActiveHolds(1).code(), "active_holds");
    assert_eq!(DomainError::TooManyHolds(1000).code(), "too_many_holds");
    assert_eq!(DomainError::InvalidHoldLifetime(1).code(), "validation_failed");
    assert!(DomainError::HoldNotActive(HoldStatus::Captured).is_business_rule());
    assert!(!DomainError::HoldNotFound.is_business_rule());
}
