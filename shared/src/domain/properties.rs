//! Property tests: random command sequences over a few accounts.
//!
//! Whatever the sequence, every balance stays at or above minus its overdraft
//! limit and so does every available balance (holds never reserve money the
//! account does not have), transfers, captures and entries conserve money
//! per currency (each currency's total equals its deposits minus its
//! withdrawals and captures out of the ledger), an entry applies to all its
//! accounts or to none, a
//! closed account stays closed, every hold placed ends at most once and
//! captured + released + expired + active = placed, and replaying each
//! account's events reproduces its state exactly.

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
    /// Place a hold of this amount, living this many seconds (steps are seconds).
    Hold(usize, i64, i64),
    /// Capture the n-th hold ever placed on the account (modulo), this much
    /// of it (None: all), out of the ledger or into another account.
    Capture(usize, usize, Option<i64>, Option<usize>),
    Release(usize, usize),
    Expire(usize),
    /// Let this many seconds pass.
    Wait(u32),
    /// An entry: each (account, amount, is a debit) a leg, balanced per
    /// currency where the legs allow it (else refused as unbalanced).
    Entry(Vec<(usize, i64, bool)>),
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
        1 => index.clone().prop_map(Op::Close),
        4 => (index.clone(), prop_oneof![1i64..50, 1i64..=MAX_AMOUNT], 60i64..200).prop_map(|(i, a, s)| Op::Hold(i, a, s)),
        3 => (index.clone(), 0usize..8, proptest::option::of(1i64..60), proptest::option::of(index.clone()))
            .prop_map(|(i, n, a, to)| Op::Capture(i, n, a, to)),
        2 => (index.clone(), 0usize..8).prop_map(|(i, n)| Op::Release(i, n)),
        1 => index.clone().prop_map(Op::Expire),
        1 => (1u32..120).prop_map(Op::Wait),
        5 => proptest::collection::vec((index, prop_oneof![1i64..60, 1i64..=MAX_AMOUNT / 4], any::<bool>()), 2..=ACCOUNTS)
            .prop_map(Op::Entry),
    ]
}

struct Ledger {
    states: Vec<Account>,
    histories: Vec<Vec<AccountEvent>>,
    /// Per currency (EUR, USD): deposits.
    deposited: [i128; 2],
    /// Per currency: withdrawals and captures out of the ledger.
    withdrawn: [i128; 2],
    /// Every hold placed, per account, in order.
    placed: Vec<Vec<Uuid>>,
    /// The clock, in seconds after the start.
    now: i64,
}

impl Ledger {
    fn new(overdraft_limits: &[i64]) -> Self {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut ledger =
            Ledger { states: vec![], histories: vec![], deposited: [0; 2], withdrawn: [0; 2], placed: vec![vec![]; ACCOUNTS], now: 0 };
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

    fn at(&self) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(self.now)
    }

    fn run(&mut self, op: &Op, step: u32) {
        self.now += 1;
        let at = self.at();
        let single = |i: usize, command: AccountCommand, ledger: &mut Ledger| -> Result<(), DomainError> {
            let events = decide(Some(&ledger.states[i]), &command, at)?;
            ledger.record(i, events);
            Ok(())
        };
        match *op {
            Op::Deposit(i, a) => {
                if single(i, AccountCommand::Deposit { amount: Amount::new(a).unwrap(), reference: None }, self).is_ok() {
                    self.deposited[self.currency_index(i)] += i128::from(a);
                }
            }
            Op::Withdraw(i, a) => {
                if single(i, AccountCommand::Withdraw { amount: Amount::new(a).unwrap(), reference: None }, self).is_ok() {
                    self.withdrawn[self.currency_index(i)] += i128::from(a);
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
            Op::Hold(i, a, seconds) => {
                let hold_id = Uuid::from_u128(u128::from(step) + 1_000_000);
                let command = AccountCommand::PlaceHold {
                    hold_id,
                    amount: Amount::new(a).unwrap(),
                    reference: None,
                    lifetime: HoldLifetime::new(seconds).unwrap(),
                };
                if single(i, command, self).is_ok() {
                    self.placed[i].push(hold_id);
                }
            }
            Op::Capture(i, n, a, to) => {
                let Some(&hold_id) = self.placed[i].get(n % self.placed[i].len().max(1)) else { return };
                let amount = a.map(|a| Amount::new(a).unwrap());
                let before = self.states[i].balance;
                match to {
                    None => {
                        if single(i, AccountCommand::CaptureHold { hold_id, amount, reference: None }, self).is_ok() {
                            self.withdrawn[self.currency_index(i)] += i128::from(before - self.states[i].balance);
                        }
                    }
                    Some(j) => {
                        let capture = CaptureToAccount {
                            hold_id,
                            transfer_id: Uuid::from_u128(u128::from(step) + 2_000_000),
                            from_account_id: self.states[i].id,
                            to_account_id: self.states[j].id,
                            amount,
                            reference: None,
                        };
                        if let Ok(decision) = decide_capture_to_account(Some(&self.states[i]), Some(&self.states[j]), &capture, at) {
                            assert_ne!(i, j, "a capture into the same account was accepted");
                            self.record(i, vec![decision.sent]);
                            self.record(j, vec![decision.received]);
                        }
                    }
                }
            }
            Op::Release(i, n) => {
                let Some(&hold_id) = self.placed[i].get(n % self.placed[i].len().max(1)) else { return };
                let _ = single(i, AccountCommand::ReleaseHold { hold_id }, self);
            }
            Op::Expire(i) => {
                single(i, AccountCommand::ExpireHolds, self).expect("recording expiries is never refused");
                let at = self.at();
                assert!(self.states[i].holds.iter().all(|h| h.is_live(at)), "every due hold's expiry is recorded");
            }
            Op::Wait(seconds) => self.now += i64::from(seconds),
            Op::Entry(ref legs) => self.entry(legs, step),
        }
    }

    fn currency_index(&self, i: usize) -> usize {
        usize::from(self.states[i].currency.as_str() == "USD")
    }

    /// Builds an entry from random legs (the first leg of each account
    /// wins), balancing each currency on its last leg of the other side
    /// where there is one, and applies it all or not at all.
    fn entry(&mut self, legs: &[(usize, i64, bool)], step: u32) {
        let mut seen = [false; ACCOUNTS];
        let mut legs: Vec<(usize, i64, bool)> = legs.iter().copied().filter(|(i, ..)| !std::mem::replace(&mut seen[*i], true)).collect();
        for usd in [false, true] {
            let of_currency = |(i, ..): &(usize, i64, bool)| (self.currency_index(*i) == 1) == usd;
            let net: i64 = legs.iter().filter(|l| of_currency(l)).map(|(_, a, debit)| if *debit { *a } else { -*a }).sum();
            // Debits exceed credits: add to the last credit (and the reverse).
            if let Some(last) = legs.iter_mut().rev().find(|l| of_currency(l) && l.2 == (net < 0)) {
                last.1 += net.abs();
            }
        }
        let to_leg = |(i, a, _): &(usize, i64, bool)| Leg {
            account_id: self.states[*i].id,
            amount: Amount::new(*a).unwrap(),
            currency: self.states[*i].currency,
        };
        let debits = legs.iter().filter(|l| l.2).map(to_leg).collect();
        let credits = legs.iter().filter(|l| !l.2).map(to_leg).collect();
        let Ok(entry) = EntryCommand::new(Uuid::from_u128(u128::from(step) + 3_000_000), debits, credits, None) else { return };
        let before: Vec<u64> = self.states.iter().map(|a| a.version).collect();
        let Ok(events) = decide_entry(&entry, |id| self.states.iter().find(|a| a.id == id), self.at()) else {
            // All or nothing: a refused entry changed no account.
            assert_eq!(before, self.states.iter().map(|a| a.version).collect::<Vec<_>>());
            return;
        };
        assert_eq!(events.len(), legs.len(), "one event per leg");
        for (account_id, event) in events {
            let i = self.states.iter().position(|a| a.id == account_id).expect("a leg's account");
            self.record(i, vec![event]);
        }
    }

    /// How every hold placed on account `i` ended in its history, by event.
    fn hold_fates(&self, i: usize) -> std::collections::HashMap<Uuid, Vec<&'static str>> {
        let mut fates: std::collections::HashMap<Uuid, Vec<&'static str>> = std::collections::HashMap::new();
        for event in &self.histories[i] {
            if let Some(hold_id) = event.hold_id() {
                fates.entry(hold_id).or_default().push(event.event_type());
            }
        }
        fates
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
            let at = ledger.at();
            for (i, account) in ledger.states.iter().enumerate() {
                prop_assert!(account.balance >= -account.overdraft_limit, "balance below the limit: {account:?}");
                prop_assert!(account.available(at) >= 0, "reserved money spent: {account:?}");
                if was_closed[i] {
                    prop_assert_eq!(account.status, AccountStatus::Closed);
                }
                was_closed[i] = account.status == AccountStatus::Closed;
            }
        }
        // Every hold placed ended at most once, by one event, and the
        // amounts add up: captured + released + expired + active = placed.
        for i in 0..ACCOUNTS {
            let fates = ledger.hold_fates(i);
            prop_assert_eq!(fates.len(), ledger.placed[i].len());
            for (hold_id, fate) in &fates {
                prop_assert_eq!(fate[0], "HoldPlaced");
                prop_assert!(fate.len() <= 2, "hold {} ended twice: {:?}", hold_id, fate);
                let active = ledger.states[i].hold(*hold_id).is_some();
                prop_assert_eq!(active, fate.len() == 1, "hold {} active in state exactly when no event ended it", hold_id);
            }
            for event in &ledger.histories[i] {
                if let AccountEvent::HoldCaptured { hold_id, amount, released, .. } = event {
                    let placed = ledger.histories[i].iter().find_map(|e| match e {
                        AccountEvent::HoldPlaced { hold_id: h, amount, .. } if h == hold_id => Some(amount.minor_units()),
                        _ => None,
                    });
                    prop_assert_eq!(Some(amount.minor_units() + released), placed);
                }
            }
        }
        // Money is conserved per currency: only deposits, withdrawals and
        // captures out of the ledger change a currency's total.
        let (eur, usd) = ledger.total_per_currency();
        prop_assert_eq!(eur, ledger.deposited[0] - ledger.withdrawn[0]);
        prop_assert_eq!(usd, ledger.deposited[1] - ledger.withdrawn[1]);
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
