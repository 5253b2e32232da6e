//! Given / when / then tests: every command and every rule.
//!
//! `given` takes the account's past events, `when` a command, and `then_*`
//! checks the new events or the refusal. No storage is involved.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::*;

const ACCOUNT: Uuid = Uuid::from_u128(0xA);
const OTHER: Uuid = Uuid::from_u128(0xB);
const TRANSFER: Uuid = Uuid::from_u128(0x7);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn amount(minor_units: i64) -> Amount {
    Amount::new(minor_units).unwrap()
}

fn eur() -> Currency {
    "EUR".parse().unwrap()
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

fn frozen() -> AccountEvent {
    AccountEvent::Frozen { at: at() }
}

fn closed() -> AccountEvent {
    AccountEvent::Closed { at: at() }
}

fn deposit(minor_units: i64) -> AccountCommand {
    AccountCommand::Deposit { amount: amount(minor_units), reference: None }
}

fn withdraw(minor_units: i64) -> AccountCommand {
    AccountCommand::Withdraw { amount: amount(minor_units), reference: None }
}

struct Given(Option<Account>);

fn given(history: impl IntoIterator<Item = AccountEvent>) -> Given {
    let history: Vec<_> = history.into_iter().collect();
    Given(Account::replay(None, &history).expect("the given history is valid"))
}

fn given_no_account() -> Given {
    Given(None)
}

impl Given {
    fn when(self, command: AccountCommand) -> Then {
        Then(decide(self.0.as_ref(), &command, at()))
    }
}

struct Then(Result<Vec<AccountEvent>, DomainError>);

impl Then {
    fn then_expect_events(self, expected: Vec<AccountEvent>) {
        assert_eq!(self.0, Ok(expected));
    }

    fn then_expect_error(self, expected: DomainError) {
        assert_eq!(self.0, Err(expected));
    }
}

// ---- open ----

#[test]
fn opening_a_new_account_records_its_owner_currency_and_limit() {
    given_no_account()
        .when(AccountCommand::Open {
            account_id: ACCOUNT,
            owner_id: OwnerId::new("alice").unwrap(),
            currency: eur(),
            overdraft_limit: OverdraftLimit::new(500).unwrap(),
        })
        .then_expect_events(vec![opened_with(ACCOUNT, "EUR", 500)]);
}

#[test]
fn opening_an_existing_account_is_refused() {
    given([opened()])
        .when(AccountCommand::Open {
            account_id: ACCOUNT,
            owner_id: OwnerId::new("alice").unwrap(),
            currency: eur(),
            overdraft_limit: OverdraftLimit::default(),
        })
        .then_expect_error(DomainError::AccountAlreadyExists);
}

#[test]
fn a_new_account_starts_open_with_a_zero_balance() {
    let account = Account::replay(None, &[opened()]).unwrap().unwrap();
    assert_eq!((account.balance, account.status, account.version), (0, AccountStatus::Open, 1));
    assert_eq!(account.owner_id.as_str(), "alice");
}

// ---- deposit ----

#[test]
fn a_deposit_credits_the_balance() {
    given([opened(), deposited(100, 100)]).when(deposit(250)).then_expect_events(vec![deposited(250, 350)]);
}

#[test]
fn a_deposit_keeps_its_reference() {
    let reference = Reference::new("salary").unwrap();
    given([opened()])
        .when(AccountCommand::Deposit { amount: amount(5), reference: Some(reference.clone()) })
        .then_expect_events(vec![AccountEvent::Deposited { amount: amount(5), balance_after: 5, reference: Some(reference), at: at() }]);
}

#[test]
fn a_deposit_to_a_missing_account_is_refused() {
    given_no_account().when(deposit(1)).then_expect_error(DomainError::AccountNotFound);
}

#[test]
fn a_deposit_to_a_frozen_account_is_refused() {
    given([opened(), frozen()]).when(deposit(1)).then_expect_error(DomainError::AccountFrozen);
}

#[test]
fn a_deposit_to_a_closed_account_is_refused() {
    given([opened(), closed()]).when(deposit(1)).then_expect_error(DomainError::AccountClosed);
}

#[test]
fn a_deposit_that_would_overflow_the_balance_is_refused() {
    let mut history = vec![opened()];
    let mut balance = 0i64;
    while balance <= i64::MAX - MAX_AMOUNT {
        balance += MAX_AMOUNT;
        history.push(deposited(MAX_AMOUNT, balance));
    }
    given(history).when(deposit(MAX_AMOUNT)).then_expect_error(DomainError::BalanceOverflow);
}

// ---- withdraw ----

#[test]
fn a_withdrawal_debits_the_balance() {
    given([opened(), deposited(100, 100)]).when(withdraw(40)).then_expect_events(vec![AccountEvent::Withdrawn {
        amount: amount(40),
        balance_after: 60,
        reference: None,
        at: at(),
    }]);
}

#[test]
fn a_withdrawal_may_use_the_overdraft_down_to_its_limit() {
    given([opened_with(ACCOUNT, "EUR", 50), deposited(100, 100)]).when(withdraw(150)).then_expect_events(vec![AccountEvent::Withdrawn {
        amount: amount(150),
        balance_after: -50,
        reference: None,
        at: at(),
    }]);
}

#[test]
fn a_withdrawal_past_the_overdraft_limit_is_refused() {
    given([opened_with(ACCOUNT, "EUR", 50), deposited(100, 100)]).when(withdraw(151)).then_expect_error(DomainError::InsufficientFunds {
        balance: 100,
        overdraft_limit: 50,
        held: 0,
        requested: 151,
    });
}

#[test]
fn a_withdrawal_without_overdraft_cannot_go_below_zero() {
    given([opened()]).when(withdraw(1)).then_expect_error(DomainError::InsufficientFunds {
        balance: 0,
        overdraft_limit: 0,
        held: 0,
        requested: 1,
    });
}

#[test]
fn a_withdrawal_from_a_frozen_account_is_refused() {
    given([opened(), deposited(100, 100), frozen()]).when(withdraw(1)).then_expect_error(DomainError::AccountFrozen);
}

#[test]
fn a_withdrawal_from_a_closed_account_is_refused() {
    given([opened(), closed()]).when(withdraw(1)).then_expect_error(DomainError::AccountClosed);
}

// ---- freeze / unfreeze ----

#[test]
fn freezing_an_open_account_records_it() {
    given([opened()]).when(AccountCommand::Freeze).then_expect_events(vec![frozen()]);
}

#[test]
fn freezing_a_frozen_account_changes_nothing() {
    given([opened(), frozen()]).when(AccountCommand::Freeze).then_expect_events(vec![]);
}

#[test]
fn freezing_a_closed_account_is_refused() {
    given([opened(), closed()]).when(AccountCommand::Freeze).then_expect_error(DomainError::AccountClosed);
}

#[test]
fn unfreezing_a_frozen_account_reopens_it() {
    given([opened(), frozen()]).when(AccountCommand::Unfreeze).then_expect_events(vec![AccountEvent::Unfrozen { at: at() }]);
    let account = Account::replay(None, &[opened(), frozen(), AccountEvent::Unfrozen { at: at() }]).unwrap().unwrap();
    assert_eq!(account.status, AccountStatus::Open);
}

#[test]
fn unfreezing_an_open_account_changes_nothing() {
    given([opened()]).when(AccountCommand::Unfreeze).then_expect_events(vec![]);
}

#[test]
fn a_closed_account_stays_closed() {
    given([opened(), closed()]).when(AccountCommand::Unfreeze).then_expect_error(DomainError::AccountClosed);
    given([opened(), closed()]).when(AccountCommand::Close).then_expect_error(DomainError::AccountClosed);
}

// ---- close ----

#[test]
fn closing_an_account_with_a_zero_balance_records_it() {
    given([opened(), deposited(10, 10), AccountEvent::Withdrawn { amount: amount(10), balance_after: 0, reference: None, at: at() }])
        .when(AccountCommand::Close)
        .then_expect_events(vec![closed()]);
}

#[test]
fn closing_needs_a_zero_balance() {
    given([opened(), deposited(10, 10)]).when(AccountCommand::Close).then_expect_error(DomainError::NonZeroBalance(10));
}

#[test]
fn closing_an_overdrawn_account_is_refused() {
    given([
        opened_with(ACCOUNT, "EUR", 100),
        AccountEvent::Withdrawn { amount: amount(30), balance_after: -30, reference: None, at: at() },
    ])
    .when(AccountCommand::Close)
    .then_expect_error(DomainError::NonZeroBalance(-30));
}

#[test]
fn closing_a_frozen_account_is_refused() {
    given([opened(), frozen()]).when(AccountCommand::Close).then_expect_error(DomainError::AccountFrozen);
}

#[test]
fn closing_a_missing_account_is_refused() {
    given_no_account().when(AccountCommand::Close).then_expect_error(DomainError::AccountNotFound);
}

// ---- transfer ----

fn account_from(history: &[AccountEvent]) -> Account {
    Account::replay(None, history).unwrap().unwrap()
}

fn transfer(minor_units: i64) -> TransferCommand {
    TransferCommand { transfer_id: TRANSFER, from_account_id: ACCOUNT, to_account_id: OTHER, amount: amount(minor_units), reference: None }
}

#[test]
fn a_transfer_debits_one_account_and_credits_the_other_by_the_same_amount() {
    let from = account_from(&[opened(), deposited(100, 100)]);
    let to = account_from(&[opened_with(OTHER, "EUR", 0), deposited(5, 5)]);
    let decision = decide_transfer(Some(&from), Some(&to), &transfer(30), at()).unwrap();
    assert_eq!(
        decision,
        TransferDecision {
            sent: AccountEvent::TransferSent {
                transfer_id: TRANSFER,
                to_account_id: OTHER,
                amount: amount(30),
                balance_after: 70,
                reference: None,
                at: at()
            },
            received: AccountEvent::TransferReceived {
                transfer_id: TRANSFER,
                from_account_id: ACCOUNT,
                amount: amount(30),
                balance_after: 35,
                reference: None,
                at: at()
            },
        }
    );
}

#[test]
fn a_transfer_to_the_same_account_is_refused() {
    let account = account_from(&[opened(), deposited(100, 100)]);
    let mut command = transfer(1);
    command.to_account_id = ACCOUNT;
    assert_eq!(decide_transfer(Some(&account), Some(&account), &command, at()), Err(DomainError::SameAccount));
}

#[test]
fn a_transfer_between_currencies_is_refused_without_naming_the_recipients_currency() {
    let from = account_from(&[opened(), deposited(100, 100)]);
    let to = account_from(&[opened_with(OTHER, "USD", 0)]);
    assert_eq!(decide_transfer(Some(&from), Some(&to), &transfer(1), at()), Err(DomainError::RecipientCannotReceive));
}

#[test]
fn a_transfer_beyond_the_overdraft_limit_is_refused() {
    let from = account_from(&[opened_with(ACCOUNT, "EUR", 10), deposited(100, 100)]);
    let to = account_from(&[opened_with(OTHER, "EUR", 0)]);
    assert_eq!(
        decide_transfer(Some(&from), Some(&to), &transfer(111), at()),
        Err(DomainError::InsufficientFunds { balance: 100, overdraft_limit: 10, held: 0, requested: 111 })
    );
}

#[test]
fn a_transfer_from_a_frozen_account_says_so_but_to_one_that_cannot_receive_says_only_no() {
    let open_from = account_from(&[opened(), deposited(100, 100)]);
    let open_to = account_from(&[opened_with(OTHER, "EUR", 0)]);
    let frozen_to = account_from(&[opened_with(OTHER, "EUR", 0), frozen()]);
    let closed_to = account_from(&[opened_with(OTHER, "EUR", 0), closed()]);
    let frozen_from = account_from(&[opened(), deposited(100, 100), frozen()]);
    let broke_from = account_from(&[opened()]);
    let refused = Err(DomainError::RecipientCannotReceive);
    // Missing, frozen, closed: one answer, whatever the sender's balance.
    for from in [&open_from, &broke_from] {
        assert_eq!(decide_transfer(Some(from), None, &transfer(1), at()), refused);
        assert_eq!(decide_transfer(Some(from), Some(&frozen_to), &transfer(1), at()), refused);
        assert_eq!(decide_transfer(Some(from), Some(&closed_to), &transfer(1), at()), refused);
    }
    // The caller's own account may say why.
    assert_eq!(decide_transfer(Some(&frozen_from), Some(&open_to), &transfer(1), at()), Err(DomainError::AccountFrozen));
    assert_eq!(decide_transfer(None, Some(&open_to), &transfer(1), at()), Err(DomainError::AccountNotFound));
}

// ---- replay ----

#[test]
fn replay_refuses_a_history_that_does_not_add_up() {
    assert!(matches!(Account::replay(None, &[deposited(1, 1)]), Err(DomainError::InvalidHistory(_))));
    assert!(matches!(Account::replay(None, &[opened(), opened()]), Err(DomainError::InvalidHistory(_))));
    assert!(matches!(Account::replay(None, &[opened(), deposited(10, 11)]), Err(DomainError::InvalidHistory(_))));
}

#[test]
fn error_codes_are_the_ones_the_api_documents() {
    assert_eq!(DomainError::InsufficientFunds { balance: 0, overdraft_limit: 0, held: 0, requested: 1 }.code(), "insufficient_funds");
    assert_eq!(DomainError::AccountFrozen.code(), "account_frozen");
    assert_eq!(DomainError::AccountClosed.code(), "account_closed");
    assert_eq!(DomainError::SameAccount.code(), "same_account");
    assert_eq!(DomainError::NonZeroBalance(1).code(), "nonzero_balance");
    assert_eq!(DomainError::RecipientCannotReceive.code(), "recipient_cannot_receive");
    assert_eq!(DomainError::InvalidAmount(0).code(), "validation_failed");
    assert!(DomainError::AccountFrozen.is_business_rule());
    assert!(!DomainError::InvalidAmount(0).is_business_rule());
    assert!(!DomainError::AccountNotFound.is_business_rule());
}
