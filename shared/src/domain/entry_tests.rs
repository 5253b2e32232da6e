//! Given / when / then tests for entries: each rule of `entry.rs` (E1 to
//! E7) with its refusal, and what an accepted entry records.
//!
//! `given` takes each account's past events, `when` an entry, and `then_*`
//! checks the events per account or the refusal.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;

const ENTRY: Uuid = Uuid::from_u128(0xE);
const PAYER: Uuid = Uuid::from_u128(1);
const PAYEE: Uuid = Uuid::from_u128(2);
const FEES: Uuid = Uuid::from_u128(3);
const FX_EUR: Uuid = Uuid::from_u128(4);
const FX_USD: Uuid = Uuid::from_u128(5);
const USD_PAYEE: Uuid = Uuid::from_u128(6);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
}

fn currency(code: &str) -> Currency {
    code.parse().unwrap()
}

fn leg(account_id: Uuid, minor_units: i64, code: &str) -> Leg {
    Leg { account_id, amount: Amount::new(minor_units).unwrap(), currency: currency(code) }
}

fn opened(id: Uuid, code: &str) -> AccountEvent {
    AccountEvent::Opened { account_id: id, owner_id: "alice".into(), currency: currency(code), overdraft_limit: 0, at: at() }
}

fn funded(id: Uuid, code: &str, minor_units: i64) -> Vec<AccountEvent> {
    vec![
        opened(id, code),
        AccountEvent::Deposited { amount: Amount::new(minor_units).unwrap(), balance_after: minor_units, reference: None, at: at() },
    ]
}

fn entry(debits: Vec<Leg>, credits: Vec<Leg>) -> Result<EntryCommand, DomainError> {
    EntryCommand::new(ENTRY, debits, credits, None)
}

struct Given(HashMap<Uuid, Account>);

fn given(histories: impl IntoIterator<Item = Vec<AccountEvent>>) -> Given {
    let accounts = histories
        .into_iter()
        .map(|history| {
            let account = Account::replay(None, &history).unwrap().unwrap();
            (account.id, account)
        })
        .collect();
    Given(accounts)
}

impl Given {
    fn when(&self, entry: &EntryCommand) -> Result<Vec<(Uuid, AccountEvent)>, LegRefusal> {
        decide_entry(entry, |id| self.0.get(&id), at())
    }
}

fn refused(account_id: Uuid, error: DomainError) -> Result<Vec<(Uuid, AccountEvent)>, LegRefusal> {
    Err(LegRefusal { account_id, error })
}

fn debited(id: Uuid, minor_units: i64, balance_after: i64) -> (Uuid, AccountEvent) {
    (
        id,
        AccountEvent::EntryDebited { entry_id: ENTRY, amount: Amount::new(minor_units).unwrap(), balance_after, reference: None, at: at() },
    )
}

fn credited(id: Uuid, minor_units: i64, balance_after: i64) -> (Uuid, AccountEvent) {
    (
        id,
        AccountEvent::EntryCredited {
            entry_id: ENTRY,
            amount: Amount::new(minor_units).unwrap(),
            balance_after,
            reference: None,
            at: at(),
        },
    )
}

// ---- accepted ----

#[test]
fn a_payment_with_a_fee_debits_once_and_credits_twice() {
    let payment = entry(vec![leg(PAYER, 1_050, "EUR")], vec![leg(PAYEE, 1_000, "EUR"), leg(FEES, 50, "EUR")]).unwrap();
    let events = given([funded(PAYER, "EUR", 2_000), vec![opened(PAYEE, "EUR")], vec![opened(FEES, "EUR")]]).when(&payment);
    assert_eq!(events, Ok(vec![debited(PAYER, 1_050, 950), credited(PAYEE, 1_000, 1_000), credited(FEES, 50, 50)]));
}

#[test]
fn an_exchange_balances_each_currency_on_its_own() {
    // EUR 100 from the customer to the bank's EUR FX account; USD 108 from
    // the bank's USD FX account to the customer's USD account.
    let exchange =
        entry(vec![leg(PAYER, 100, "EUR"), leg(FX_USD, 108, "USD")], vec![leg(FX_EUR, 100, "EUR"), leg(USD_PAYEE, 108, "USD")]).unwrap();
    let given =
        given([funded(PAYER, "EUR", 100), funded(FX_USD, "USD", 1_000), vec![opened(FX_EUR, "EUR")], vec![opened(USD_PAYEE, "USD")]]);
    assert_eq!(
        given.when(&exchange),
        Ok(vec![debited(PAYER, 100, 0), debited(FX_USD, 108, 892), credited(FX_EUR, 100, 100), credited(USD_PAYEE, 108, 108)])
    );
}

#[test]
fn each_leg_replays_on_its_account_like_any_credit_or_debit() {
    let payment = entry(vec![leg(PAYER, 30, "EUR")], vec![leg(PAYEE, 30, "EUR")]).unwrap();
    let given = given([funded(PAYER, "EUR", 100), vec![opened(PAYEE, "EUR")]]);
    for (id, event) in given.when(&payment).unwrap() {
        let after = Account::evolve(Some(given.0[&id].clone()), &event).unwrap();
        assert_eq!(after.balance, if id == PAYER { 70 } else { 30 });
        assert_eq!(event.entry_id(), Some(ENTRY));
        assert!(event.moves_money());
    }
}

#[test]
fn a_debit_may_use_the_overdraft_but_not_money_a_hold_reserves() {
    let mut history = vec![AccountEvent::Opened {
        account_id: PAYER,
        owner_id: "alice".into(),
        currency: currency("EUR"),
        overdraft_limit: 50,
        at: at(),
    }];
    history.push(AccountEvent::Deposited { amount: Amount::new(100).unwrap(), balance_after: 100, reference: None, at: at() });
    history.push(AccountEvent::HoldPlaced {
        hold_id: Uuid::from_u128(0x40),
        amount: Amount::new(40).unwrap(),
        reference: None,
        expires_at: at() + Duration::hours(1),
        at: at(),
    });
    let given = given([history, vec![opened(PAYEE, "EUR")]]);
    // Available: 100 + 50 - 40 = 110.
    let fits = entry(vec![leg(PAYER, 110, "EUR")], vec![leg(PAYEE, 110, "EUR")]).unwrap();
    assert_eq!(given.when(&fits), Ok(vec![debited(PAYER, 110, -10), credited(PAYEE, 110, 110)]));
    let too_much = entry(vec![leg(PAYER, 111, "EUR")], vec![leg(PAYEE, 111, "EUR")]).unwrap();
    assert_eq!(
        given.when(&too_much),
        refused(PAYER, DomainError::InsufficientFunds { balance: 100, overdraft_limit: 50, held: 40, requested: 111 })
    );
}

// ---- E1: shape ----

#[test]
fn e1_an_entry_needs_a_debit_and_a_credit() {
    assert!(matches!(entry(vec![], vec![leg(PAYEE, 1, "EUR")]), Err(DomainError::InvalidEntry(_))));
    assert!(matches!(entry(vec![leg(PAYER, 1, "EUR")], vec![]), Err(DomainError::InvalidEntry(_))));
}

#[test]
fn e1_at_most_sixteen_accounts() {
    let credits = |n: u128| (0..n).map(|i| leg(Uuid::from_u128(100 + i), 1, "EUR")).collect::<Vec<_>>();
    assert!(entry(vec![leg(PAYER, 15, "EUR")], credits(15)).is_ok());
    assert!(matches!(entry(vec![leg(PAYER, 16, "EUR")], credits(16)), Err(DomainError::InvalidEntry(_))));
}

#[test]
fn e1_an_account_appears_once() {
    assert!(matches!(
        entry(vec![leg(PAYER, 2, "EUR")], vec![leg(PAYEE, 1, "EUR"), leg(PAYEE, 1, "EUR")]),
        Err(DomainError::InvalidEntry(_))
    ));
    assert!(matches!(entry(vec![leg(PAYER, 1, "EUR")], vec![leg(PAYER, 1, "EUR")]), Err(DomainError::InvalidEntry(_))));
}

// ---- E2: balance ----

#[test]
fn e2_debits_and_credits_add_up_per_currency_and_the_refusal_names_it() {
    assert_eq!(entry(vec![leg(PAYER, 10, "EUR")], vec![leg(PAYEE, 9, "EUR")]), Err(DomainError::UnbalancedEntry(currency("EUR"))));
    // Balanced in total (100 + 108 = 208 each side) but not per currency.
    assert_eq!(
        entry(vec![leg(PAYER, 100, "EUR"), leg(FX_USD, 108, "USD")], vec![leg(FX_EUR, 108, "EUR"), leg(USD_PAYEE, 100, "USD")]),
        Err(DomainError::UnbalancedEntry(currency("EUR")))
    );
    assert_eq!(DomainError::UnbalancedEntry(currency("USD")).code(), "unbalanced_entry");
}

// ---- E3 to E5: the debited accounts ----

#[test]
fn e3_a_missing_debited_account_is_not_found() {
    let payment = entry(vec![leg(PAYER, 1, "EUR")], vec![leg(PAYEE, 1, "EUR")]).unwrap();
    assert_eq!(given([vec![opened(PAYEE, "EUR")]]).when(&payment), refused(PAYER, DomainError::AccountNotFound));
}

#[test]
fn e4_a_frozen_or_closed_debited_account_moves_nothing() {
    let payment = entry(vec![leg(PAYER, 1, "EUR")], vec![leg(PAYEE, 1, "EUR")]).unwrap();
    let mut frozen = funded(PAYER, "EUR", 10);
    frozen.push(AccountEvent::Frozen { at: at() });
    assert_eq!(given([frozen, vec![opened(PAYEE, "EUR")]]).when(&payment), refused(PAYER, DomainError::AccountFrozen));
    let closed = vec![opened(PAYER, "EUR"), AccountEvent::Closed { at: at() }];
    assert_eq!(given([closed, vec![opened(PAYEE, "EUR")]]).when(&payment), refused(PAYER, DomainError::AccountClosed));
}

#[test]
fn e5_a_debited_account_in_another_currency_than_its_leg_is_a_mismatch() {
    let payment = entry(vec![leg(PAYER, 1, "USD")], vec![leg(USD_PAYEE, 1, "USD")]).unwrap();
    assert_eq!(
        given([funded(PAYER, "EUR", 10), vec![opened(USD_PAYEE, "USD")]]).when(&payment),
        refused(PAYER, DomainError::CurrencyMismatch { account: currency("EUR"), leg: currency("USD") })
    );
    assert_eq!(DomainError::CurrencyMismatch { account: currency("EUR"), leg: currency("USD") }.code(), "currency_mismatch");
}

// ---- E6: the credited accounts ----

#[test]
fn e6_every_reason_a_credited_account_cannot_receive_is_one_refusal() {
    let payment = entry(vec![leg(PAYER, 1, "EUR")], vec![leg(PAYEE, 1, "EUR")]).unwrap();
    let payer = funded(PAYER, "EUR", 10);
    let mut frozen = vec![opened(PAYEE, "EUR")];
    frozen.push(AccountEvent::Frozen { at: at() });
    let closed = vec![opened(PAYEE, "EUR"), AccountEvent::Closed { at: at() }];
    let dollars = vec![opened(PAYEE, "USD")];
    let cannot = refused(PAYEE, DomainError::RecipientCannotReceive);
    assert_eq!(given([payer.clone()]).when(&payment), cannot, "missing");
    for (why, payee) in [("frozen", frozen), ("closed", closed), ("another currency", dollars)] {
        assert_eq!(given([payer.clone(), payee]).when(&payment), cannot, "{why}");
    }
    // A balance at its limit cannot take more either (history built by hand: no deposit reaches i64::MAX).
    let mut given_full = given([payer.clone(), vec![opened(PAYEE, "EUR")]]);
    given_full.0.get_mut(&PAYEE).unwrap().balance = i64::MAX;
    assert_eq!(given_full.when(&payment), cannot, "at its limit");
}

#[test]
fn e6_is_checked_before_the_payers_funds() {
    // The payer has nothing, and the payee cannot receive: the answer does
    // not reveal the payee's state by depending on the payer's funds.
    let payment = entry(vec![leg(PAYER, 5, "EUR")], vec![leg(PAYEE, 5, "EUR")]).unwrap();
    assert_eq!(given([vec![opened(PAYER, "EUR")]]).when(&payment), refused(PAYEE, DomainError::RecipientCannotReceive));
}

// ---- E7: funds ----

#[test]
fn e7_the_first_debit_short_of_funds_is_the_answer_and_nothing_is_applied() {
    let payment = entry(vec![leg(PAYER, 5, "EUR"), leg(FEES, 5, "EUR")], vec![leg(PAYEE, 10, "EUR")]).unwrap();
    let given = given([funded(PAYER, "EUR", 10), funded(FEES, "EUR", 4), vec![opened(PAYEE, "EUR")]]);
    assert_eq!(
        given.when(&payment),
        refused(FEES, DomainError::InsufficientFunds { balance: 4, overdraft_limit: 0, held: 0, requested: 5 })
    );
}
