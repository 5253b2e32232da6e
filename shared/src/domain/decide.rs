//! Deciding commands: pure functions of (state, command) to events or a refusal.
//!
//! No I/O, no clock, no randomness: the caller passes `at` and the ids. That
//! makes every rule testable with plain values and replayable in property tests.

use chrono::{DateTime, Utc};

use super::{Account, AccountCommand, AccountEvent, AccountStatus, Amount, DomainError, TransferCommand};

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
            let balance_after = debit(account, *amount)?;
            Ok(vec![AccountEvent::Withdrawn { amount: *amount, balance_after, reference: reference.clone(), at }])
        }
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
            if account.balance != 0 {
                return Err(DomainError::NonZeroBalance(account.balance));
            }
            Ok(vec![AccountEvent::Closed { at }])
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
    let from_balance_after = debit(from, transfer.amount)?;
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

fn ensure_can_move_money(account: &Account) -> Result<(), DomainError> {
    match account.status {
        AccountStatus::Open => Ok(()),
        AccountStatus::Frozen => Err(DomainError::AccountFrozen),
        AccountStatus::Closed => Err(DomainError::AccountClosed),
    }
}

fn credit(account: &Account, amount: Amount) -> Result<i64, DomainError> {
    account.balance.checked_add(amount.minor_units()).ok_or(DomainError::BalanceOverflow)
}

fn debit(account: &Account, amount: Amount) -> Result<i64, DomainError> {
    let balance_after = account.balance.checked_sub(amount.minor_units()).ok_or(DomainError::BalanceOverflow)?;
    if balance_after < -account.overdraft_limit {
        return Err(DomainError::InsufficientFunds {
            balance: account.balance,
            overdraft_limit: account.overdraft_limit,
            requested: amount.minor_units(),
        });
    }
    Ok(balance_after)
}
