//! Property tests: random command sequences over a few accounts.
//!
//! Whatever the sequence, every balance stays at or above minus its overdraft
//! limit, transfers conserve money (the total equals deposits minus
//! withdrawals), a closed account stays closed, and replaying each account's
//! events reproduces its state exactly.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Deposit(usize, i64),
    Withdraw(usize, i64),
    Transfer(usize, usize, i64),
    Freeze(usize),
    Unfreeze(usize),
    Close(usize),
}

const ACCOUNTS: usize = 4;

fn op() -> impl Strategy<Value = Op> {
    let index = 0..ACCOUNTS;
    // Small amounts make overdrafts, refusals and zero balances (for close) common.
    let amount = prop_oneof![1i64..50, 1i64..=MAX_AMOUNT];
    prop_oneof![
        4 => (index.clone(), amount.clone()).prop_map(|(i, a)| Op::Deposit(i, a)),
        4 => (index.clone(), amount.clone()).prop_map(|(i, a)| Op::Withdraw(i, a)),
        6 => (index.clone(), index.clone(), amount).prop_map(|(i, j, a)| Op::Transfer(i, j, a)),
        1 => index.clone().prop_map(Op::Freeze),
        1 => index.clone().prop_map(Op::Unfreeze),
        1 => index.prop_map(Op::Close),
    ]
}

struct Ledger {
    states: Vec<Account>,
    histories: Vec<Vec<AccountEvent>>,
    deposited: i128,
    withdrawn: i128,
}

impl Ledger {
    fn new(overdraft_limits: &[i64]) -> Self {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut ledger = Ledger { states: vec![], histories: vec![], deposited: 0, withdrawn: 0 };
        for (i, limit) in overdraft_limits.iter().enumerate() {
            // The last account is in another currency, so mismatches happen too.
            let currency = if i == ACCOUNTS - 1 { "USD" } else { "EUR" };
            let open = AccountCommand::Open {
                account_id: Uuid::from_u128(i as u128 + 1),
                owner_id: OwnerId::new(format!("owner-{i}")).unwrap(),
                currency: currency.parse().unwrap(),
                overdraft_limit: OverdraftLimit::new(*limit).unwrap(),
            };
            let events = decide(None, &open, at).unwrap();
            ledger.states.push(Account::replay(None, &events).unwrap().unwrap());
            ledger.histories.push(events);
        }
        ledger
    }

    fn record(&mut self, i: usize, events: Vec<AccountEvent>) {
        for event in events {
            self.states[i] = Account::evolve(Some(self.states[i].clone()), &event).unwrap();
            self.histories[i].push(event);
        }
    }

    fn run(&mut self, op: &Op, step: u32) {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(step.into());
        let single = |i: usize, command: AccountCommand, ledger: &mut Ledger| -> Result<(), DomainError> {
            let events = decide(Some(&ledger.states[i]), &command, at)?;
            ledger.record(i, events);
            Ok(())
        };
        match *op {
            Op::Deposit(i, a) => {
                if single(i, AccountCommand::Deposit { amount: Amount::new(a).unwrap(), reference: None }, self).is_ok() {
                    self.deposited += i128::from(a);
                }
            }
            Op::Withdraw(i, a) => {
                if single(i, AccountCommand::Withdraw { amount: Amount::new(a).unwrap(), reference: None }, self).is_ok() {
                    self.withdrawn += i128::from(a);
                }
            }
            Op::Transfer(i, j, a) => {
                let command = TransferCommand {
                    transfer_id: Uuid::from_u128(u128::from(step) + 1000),
                    from_account_id: self.states[i].id,
                    to_account_id: self.states[j].id,
                    amount: Amount::new(a).unwrap(),
                    reference: None,
                };
                let (from, to) = (&self.states[i], &self.states[j]);
                if let Ok(decision) = decide_transfer(Some(from), Some(to), &command, at) {
                    assert_ne!(i, j, "a transfer to the same account was accepted");
                    self.record(i, vec![decision.sent]);
                    self.record(j, vec![decision.received]);
                }
            }
            Op::Freeze(i) => {
                let _ = single(i, AccountCommand::Freeze, self);
            }
            Op::Unfreeze(i) => {
                let _ = single(i, AccountCommand::Unfreeze, self);
            }
            Op::Close(i) => {
                let _ = single(i, AccountCommand::Close, self);
            }
        }
    }

    fn total_per_currency(&self) -> (i128, i128) {
        let sum = |code: &str| -> i128 { self.states.iter().filter(|a| a.currency.as_str() == code).map(|a| i128::from(a.balance)).sum() };
        (sum("EUR"), sum("USD"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_command_sequence(
        limits in proptest::collection::vec(prop_oneof![Just(0i64), 0i64..100, 0i64..=MAX_OVERDRAFT_LIMIT], ACCOUNTS),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut ledger = Ledger::new(&limits);
        let mut was_closed = [false; ACCOUNTS];
        for (step, op) in ops.iter().enumerate() {
            ledger.run(op, step as u32);
            for (i, account) in ledger.states.iter().enumerate() {
                prop_assert!(account.balance >= -account.overdraft_limit, "balance below the limit: {account:?}");
                if was_closed[i] {
                    prop_assert_eq!(account.status, AccountStatus::Closed);
                }
                was_closed[i] = account.status == AccountStatus::Closed;
            }
        }
        // Money is conserved: only deposits and withdrawals change the total.
        let (eur, usd) = ledger.total_per_currency();
        prop_assert_eq!(eur + usd, ledger.deposited - ledger.withdrawn);
        for (state, history) in ledger.states.iter().zip(&ledger.histories) {
            let replayed = Account::replay(None, history).unwrap().unwrap();
            prop_assert_eq!(&replayed, state);
            prop_assert_eq!(replayed.version, history.len() as u64);
            // Replaying from any prefix's state (as a snapshot would) gives the same result.
            let cut = history.len() / 2;
            let from_snapshot = Account::replay(Account::replay(None, &history[..cut]).unwrap(), &history[cut..]).unwrap();
            prop_assert_eq!(from_snapshot.as_ref(), Some(state));
        }
    }
}
