//! Deciding commands: pure functions of (state, command) to events or a refusal.
//!
//! No I/O, no clock, no randomness: the caller passes `at` and the ids. That
//! makes every rule testable with plain values and replayable in property tests.

use chrono::{DateTime, Utc};

use super::{
    Account, AccountCommand, AccountEvent, AccountStatus, Amount, CaptureToAccount, DomainError, Hold, HoldStatus, HoldTransfer,
    MAX_ACTIVE_HOLDS, TransferCommand,
};

/// Decides a command on one account. `state` is `None` when the account does
/// not exist yet. An empty `Ok` means "nothing to do" (freezing a frozen
/// account, for example): the command succeeds without a new event.
pub fn decide(state: Option<&Account>, command: &AccountCommand, at: DateTime<Utc>) -> Result<Vec<AccountEvent>, DomainError> {
    let account = match (state, command) {
        (Some(_), AccountCommand::Open { .. }) => return Err(DomainError::AccountAlreadyExists),
        (None, AccountCommand::Open { account_id, owner_id, currency, overdraft_limit }) => {
            return Ok(vec![AccountEvent::Opened {
                account_id: *account_id,
                owner_id: owner_id.as_str().to_owned(),
                currency: *currency,
                overdraft_limit: overdraft_limit.minor_units(),
                at,
            }]);
        }
        (None, _) => return Err(DomainError::AccountNotFound),
        (Some(account), _) => account,
    };

    match command {
        AccountCommand::Open { .. } => unreachable!("handled above"),
        AccountCommand::Deposit { amount, reference } => {
            ensure_can_move_money(account)?;
            let balance_after = credit(account, *amount)?;
            Ok(vec![AccountEvent::Deposited { amount: *amount, balance_after, reference: reference.clone(), at }])
        }
        AccountCommand::Withdraw { amount, reference } => {
            ensure_can_move_money(account)?;
            let balance_after = debit(account, *amount, at)?;
            Ok(vec![AccountEvent::Withdrawn { amount: *amount, balance_after, reference: reference.clone(), at }])
        }
        AccountCommand::PlaceHold { hold_id, amount, reference, lifetime } => {
            ensure_can_move_money(account)?;
            let live = account.holds.iter().filter(|h| h.is_live(at)).count();
            if live >= MAX_ACTIVE_HOLDS {
                return Err(DomainError::TooManyHolds(MAX_ACTIVE_HOLDS));
            }
            ensure_available(account, *amount, at)?;
            Ok(vec![AccountEvent::HoldPlaced {
                hold_id: *hold_id,
                amount: *amount,
                reference: reference.clone(),
                expires_at: lifetime.expires_at(at),
                at,
            }])
        }
        AccountCommand::CaptureHold { hold_id, amount, reference } => {
            ensure_can_move_money(account)?;
            let (hold, captured) = capturable(account, *hold_id, *amount, at)?;
            let balance_after = debit_hold(account, hold, captured)?;
            Ok(vec![AccountEvent::HoldCaptured {
                hold_id: *hold_id,
                amount: captured,
                released: hold.amount.minor_units() - captured.minor_units(),
                balance_after,
                transfer: None,
                reference: reference.clone(),
                at,
            }])
        }
        AccountCommand::ReleaseHold { hold_id } => {
            // Releasing frees money and moves none: allowed on a frozen account.
            let hold = live_hold(account, *hold_id, at)?;
            Ok(vec![AccountEvent::HoldReleased { hold_id: *hold_id, amount: hold.amount, at }])
        }
        AccountCommand::ExpireHolds => Ok(expiries(account, at)),
        AccountCommand::Freeze => match account.status {
            AccountStatus::Closed => Err(DomainError::AccountClosed),
            AccountStatus::Frozen => Ok(vec![]),
            AccountStatus::Open => Ok(vec![AccountEvent::Frozen { at }]),
        },
        AccountCommand::Unfreeze => match account.status {
            AccountStatus::Closed => Err(DomainError::AccountClosed),
            AccountStatus::Open => Ok(vec![]),
            AccountStatus::Frozen => Ok(vec![AccountEvent::Unfrozen { at }]),
        },
        AccountCommand::Close => {
            // A frozen account is on hold: it has to be unfrozen before it can be closed.
            ensure_can_move_money(account)?;
            let live = account.holds.iter().filter(|h| h.is_live(at)).count();
            if live > 0 {
                return Err(DomainError::ActiveHolds(live));
            }
            if account.balance != 0 {
                return Err(DomainError::NonZeroBalance(account.balance));
            }
            // Holds past their expiry whose expiry the sweep has not yet
            // recorded end here, so every hold of a closed account has ended.
            let mut events = expiries(account, at);
            events.push(AccountEvent::Closed { at });
            Ok(events)
        }
    }
}

/// The two events of a transfer: one for each account's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferDecision {
    pub sent: AccountEvent,
    pub received: AccountEvent,
}

/// Decides a transfer over both accounts at once, so money is conserved by
/// construction: the debit and the credit are the same [`Amount`].
pub fn decide_transfer(
    from: Option<&Account>,
    to: Option<&Account>,
    transfer: &TransferCommand,
    at: DateTime<Utc>,
) -> Result<TransferDecision, DomainError> {
    if transfer.from_account_id == transfer.to_account_id {
        return Err(DomainError::SameAccount);
    }
    // The sender is the caller's own account: its refusals may say why.
    let from = from.ok_or(DomainError::AccountNotFound)?;
    ensure_can_move_money(from)?;
    // The recipient may be anyone's: every reason it cannot receive is the
    // same refusal, checked before the sender's funds so that the answer
    // does not depend on them either.
    let cannot_receive = DomainError::RecipientCannotReceive;
    let to = to.filter(|to| to.currency == from.currency && ensure_can_move_money(to).is_ok()).ok_or(cannot_receive.clone())?;
    let to_balance_after = credit(to, transfer.amount).map_err(|_| cannot_receive)?;
    let from_balance_after = debit(from, transfer.amount, at)?;
    Ok(TransferDecision {
        sent: AccountEvent::TransferSent {
            transfer_id: transfer.transfer_id,
            to_account_id: to.id,
            amount: transfer.amount,
            balance_after: from_balance_after,
            reference: transfer.reference.clone(),
            at,
        },
        received: AccountEvent::TransferReceived {
            transfer_id: transfer.transfer_id,
            from_account_id: from.id,
            amount: transfer.amount,
            balance_after: to_balance_after,
            reference: transfer.reference.clone(),
            at,
        },
    })
}

/// Decides capturing a hold into another account, over both at once: the
/// hold's account gets `HoldCaptured` (naming the transfer), the recipient
/// `TransferReceived`, with the same amount, so money is conserved. The
/// recipient's refusals are the transfer's one `RecipientCannotReceive`.
pub fn decide_capture_to_account(
    from: Option<&Account>,
    to: Option<&Account>,
    capture: &CaptureToAccount,
    at: DateTime<Utc>,
) -> Result<TransferDecision, DomainError> {
    if capture.from_account_id == capture.to_account_id {
        return Err(DomainError::SameAccount);
    }
    let from = from.ok_or(DomainError::AccountNotFound)?;
    ensure_can_move_money(from)?;
    let (hold, captured) = capturable(from, capture.hold_id, capture.amount, at)?;
    let cannot_receive = DomainError::RecipientCannotReceive;
    let to = to.filter(|to| to.currency == from.currency && ensure_can_move_money(to).is_ok()).ok_or(cannot_receive.clone())?;
    let to_balance_after = credit(to, captured).map_err(|_| cannot_receive)?;
    let from_balance_after = debit_hold(from, hold, captured)?;
    Ok(TransferDecision {
        sent: AccountEvent::HoldCaptured {
            hold_id: capture.hold_id,
            amount: captured,
            released: hold.amount.minor_units() - captured.minor_units(),
            balance_after: from_balance_after,
            transfer: Some(HoldTransfer { transfer_id: capture.transfer_id, to_account_id: to.id }),
            reference: capture.reference.clone(),
            at,
        },
        received: AccountEvent::TransferReceived {
            transfer_id: capture.transfer_id,
            from_account_id: from.id,
            amount: captured,
            balance_after: to_balance_after,
            reference: capture.reference.clone(),
            at,
        },
    })
}

/// A hold that still reserves money at `at`; otherwise why not.
fn live_hold(account: &Account, hold_id: uuid::Uuid, at: DateTime<Utc>) -> Result<&Hold, DomainError> {
    match account.hold_status(hold_id, at) {
        None => Err(DomainError::HoldNotFound),
        Some(HoldStatus::Active) => Ok(account.hold(hold_id).expect("an active hold is held")),
        Some(ended) => Err(DomainError::HoldNotActive(ended)),
    }
}

/// The hold to capture and how much of it (default: all).
fn capturable(account: &Account, hold_id: uuid::Uuid, amount: Option<Amount>, at: DateTime<Utc>) -> Result<(&Hold, Amount), DomainError> {
    let hold = live_hold(account, hold_id, at)?;
    let captured = amount.unwrap_or(hold.amount);
    if captured > hold.amount {
        return Err(DomainError::CaptureExceedsHold { held: hold.amount.minor_units(), requested: captured.minor_units() });
    }
    Ok((hold, captured))
}

/// `HoldExpired` for every hold past its expiry at `at`.
fn expiries(account: &Account, at: DateTime<Utc>) -> Vec<AccountEvent> {
    account
        .holds
        .iter()
        .filter(|h| !h.is_live(at))
        .map(|h| AccountEvent::HoldExpired { hold_id: h.hold_id, amount: h.amount, at })
        .collect()
}

pub(super) fn ensure_can_move_money(account: &Account) -> Result<(), DomainError> {
    match account.status {
        AccountStatus::Open => Ok(()),
        AccountStatus::Frozen => Err(DomainError::AccountFrozen),
        AccountStatus::Closed => Err(DomainError::AccountClosed),
    }
}

pub(super) fn credit(account: &Account, amount: Amount) -> Result<i64, DomainError> {
    account.balance.checked_add(amount.minor_units()).ok_or(DomainError::BalanceOverflow)
}

/// Refuses `amount` when it is more than the available balance at `at`
/// (balance + overdraft limit - live holds).
fn ensure_available(account: &Account, amount: Amount, at: DateTime<Utc>) -> Result<(), DomainError> {
    if amount.minor_units() > account.available(at) {
        return Err(DomainError::InsufficientFunds {
            balance: account.balance,
            overdraft_limit: account.overdraft_limit,
            held: account.held(at),
            requested: amount.minor_units(),
        });
    }
    Ok(())
}

/// A debit of money not reserved by a hold: decided on the available balance.
pub(super) fn debit(account: &Account, amount: Amount, at: DateTime<Utc>) -> Result<i64, DomainError> {
    ensure_available(account, amount, at)?;
    account.balance.checked_sub(amount.minor_units()).ok_or(DomainError::BalanceOverflow)
}

/// A debit of money a live hold reserved: the hold already kept it out of
/// the available balance, so only the overdraft floor is checked (it
/// always holds while the hold was placed on the available balance).
fn debit_hold(account: &Account, hold: &Hold, captured: Amount) -> Result<i64, DomainError> {
    let balance_after = account.balance.checked_sub(captured.minor_units()).ok_or(DomainError::BalanceOverflow)?;
    if balance_after < -account.overdraft_limit {
        return Err(DomainError::InsufficientFunds {
            balance: account.balance,
            overdraft_limit: account.overdraft_limit,
            held: hold.amount.minor_units(),
            requested: captured.minor_units(),
        });
    }
    Ok(balance_after)
}
