//! Entries: money moved among 2 to 16 accounts at once, all or nothing.
//!
//! An entry is a list of debits and credits, each naming an account, an
//! amount and a currency. It may mix currencies (a currency exchange
//! through the bank's own FX accounts), but for each currency its debits
//! add up to its credits, so money is conserved per currency by
//! construction. Each leg becomes one event on its account's stream
//! ([`AccountEvent::EntryDebited`] or [`AccountEvent::EntryCredited`]), and
//! all of them are appended in one transaction.
//!
//! The rules, in the order they are checked (the first that fails is the
//! answer):
//!
//! | # | rule | refusal |
//! | --- | --- | --- |
//! | E1 | at least one debit and one credit, 2 to 16 accounts in all, each at most once | `InvalidEntry` (400) |
//! | E2 | for each currency, the debits add up to the credits | `UnbalancedEntry` (422) |
//! | E3 | each debited account exists (and, at the edge, is the caller's) | `AccountNotFound` (404) |
//! | E4 | each debited account is open | `AccountFrozen`, `AccountClosed` (422) |
//! | E5 | each debited account is in its leg's currency | `CurrencyMismatch` (422) |
//! | E6 | each credited account exists, is open, is in its leg's currency and can take the amount | `RecipientCannotReceive` (422) |
//! | E7 | each debit is within its account's available balance (holds count) | `InsufficientFunds` (422) |
//!
//! E1 and E2 are decided from the request alone ([`EntryCommand::new`]),
//! before any account is read. E3 to E7 go through the legs in the
//! request's order (debits, then credits), and a refusal names the leg's
//! account ([`LegRefusal`]). A credited account may be anyone's, so every
//! reason it cannot receive is the one refusal E6, checked before any
//! debit's funds so that the answer does not depend on them either.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Account, AccountEvent, Amount, Currency, DomainError, Reference};

/// The most accounts one entry may move money among.
pub const MAX_ENTRY_ACCOUNTS: usize = 16;

/// One account's part in an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leg {
    pub account_id: Uuid,
    pub amount: Amount,
    pub currency: Currency,
}

/// Whether a leg takes money from its account or gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegSide {
    Debit,
    Credit,
}

impl LegSide {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debit => "debit",
            Self::Credit => "credit",
        }
    }
}

/// A balanced entry (rules E1 and E2 hold): build it with [`EntryCommand::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryCommand {
    entry_id: Uuid,
    debits: Vec<Leg>,
    credits: Vec<Leg>,
    reference: Option<Reference>,
}

impl EntryCommand {
    /// Checks the entry's shape (E1) and balance per currency (E2).
    pub fn new(entry_id: Uuid, debits: Vec<Leg>, credits: Vec<Leg>, reference: Option<Reference>) -> Result<Self, DomainError> {
        if debits.is_empty() || credits.is_empty() {
            return Err(DomainError::InvalidEntry("an entry needs at least one debit and one credit".into()));
        }
        let count = debits.len() + credits.len();
        if count > MAX_ENTRY_ACCOUNTS {
            return Err(DomainError::InvalidEntry(format!(
                "an entry moves money among at most {MAX_ENTRY_ACCOUNTS} accounts, got {count}"
            )));
        }
        let mut seen = HashSet::with_capacity(count);
        if let Some(twice) = debits.iter().chain(&credits).find(|leg| !seen.insert(leg.account_id)) {
            return Err(DomainError::InvalidEntry(format!("account {} appears in more than one leg", twice.account_id)));
        }
        // Per currency, in the order currencies first appear: debits - credits.
        let mut balance: Vec<(Currency, i64)> = Vec::new();
        for (leg, sign) in debits.iter().map(|l| (l, 1)).chain(credits.iter().map(|l| (l, -1))) {
            let delta = sign * leg.amount.minor_units(); // at most 16 x 10^12: no overflow
            match balance.iter_mut().find(|(c, _)| *c == leg.currency) {
                Some((_, sum)) => *sum += delta,
                None => balance.push((leg.currency, delta)),
            }
        }
        if let Some((currency, _)) = balance.iter().find(|(_, sum)| *sum != 0) {
            return Err(DomainError::UnbalancedEntry(*currency));
        }
        Ok(Self { entry_id, debits, credits, reference })
    }

    pub fn entry_id(&self) -> Uuid {
        self.entry_id
    }

    pub fn debits(&self) -> &[Leg] {
        &self.debits
    }

    pub fn credits(&self) -> &[Leg] {
        &self.credits
    }

    pub fn reference(&self) -> Option<&Reference> {
        self.reference.as_ref()
    }

    /// Every leg with its side, in the request's order (debits first).
    pub fn legs(&self) -> impl Iterator<Item = (LegSide, &Leg)> {
        self.debits.iter().map(|l| (LegSide::Debit, l)).chain(self.credits.iter().map(|l| (LegSide::Credit, l)))
    }

    /// The accounts it names, in the request's order.
    pub fn account_ids(&self) -> Vec<Uuid> {
        self.legs().map(|(_, leg)| leg.account_id).collect()
    }
}

/// Why an entry was refused, and on which leg's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegRefusal {
    pub account_id: Uuid,
    pub error: DomainError,
}

/// Decides an entry over all its accounts at once (rules E3 to E7):
/// one event per leg, in the request's order, each paired with its
/// account. `account` looks up an account as read (`None`: missing).
pub fn decide_entry<'a>(
    entry: &EntryCommand,
    account: impl Fn(Uuid) -> Option<&'a Account>,
    at: DateTime<Utc>,
) -> Result<Vec<(Uuid, AccountEvent)>, LegRefusal> {
    let refuse = |leg: &Leg, error: DomainError| LegRefusal { account_id: leg.account_id, error };
    // E3 to E5: the debited accounts, which are the caller's own.
    let mut debited = Vec::with_capacity(entry.debits.len());
    for leg in &entry.debits {
        let payer = account(leg.account_id).ok_or_else(|| refuse(leg, DomainError::AccountNotFound))?;
        super::decide::ensure_can_move_money(payer).map_err(|e| refuse(leg, e))?;
        if payer.currency != leg.currency {
            return Err(refuse(leg, DomainError::CurrencyMismatch { account: payer.currency, leg: leg.currency }));
        }
        debited.push(payer);
    }
    // E6: the credited accounts, which may be anyone's.
    let mut events = Vec::with_capacity(entry.debits.len() + entry.credits.len());
    let mut credits = Vec::with_capacity(entry.credits.len());
    for leg in &entry.credits {
        let payee = account(leg.account_id)
            .filter(|a| a.currency == leg.currency && super::decide::ensure_can_move_money(a).is_ok())
            .ok_or_else(|| refuse(leg, DomainError::RecipientCannotReceive))?;
        let balance_after = super::decide::credit(payee, leg.amount).map_err(|_| refuse(leg, DomainError::RecipientCannotReceive))?;
        credits.push((leg, balance_after));
    }
    // E7: each debit against its account's available balance.
    for (leg, payer) in entry.debits.iter().zip(debited) {
        let balance_after = super::decide::debit(payer, leg.amount, at).map_err(|e| refuse(leg, e))?;
        events.push((
            leg.account_id,
            AccountEvent::EntryDebited {
                entry_id: entry.entry_id,
                amount: leg.amount,
                balance_after,
                reference: entry.reference.clone(),
                at,
            },
        ));
    }
    for (leg, balance_after) in credits {
        events.push((
            leg.account_id,
            AccountEvent::EntryCredited {
                entry_id: entry.entry_id,
                amount: leg.amount,
                balance_after,
                reference: entry.reference.clone(),
                at,
            },
        ));
    }
    Ok(events)
}
