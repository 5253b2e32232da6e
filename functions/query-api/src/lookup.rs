//! Look-ups of a transfer or an entry by its id: its legs on every
//! account, assembled from the history rows that name it.
//!
//! Who may see one: the owner of any account in it, and administrators.
//! Anyone else gets exactly the answer a missing id gets, so an id reveals
//! nothing. The rows come through the read model's sparse transfer and
//! entry indexes (eventually consistent): right after the command, a leg on
//! an account the projector has not reached yet may be missing for a moment.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ledgerline_shared::http::caller::Caller;
use ledgerline_shared::read_model::{AccountView, MovementId, TransactionKind, TransactionView};
use serde::Serialize;
use uuid::Uuid;

use crate::metrics::RequestCounters;
use crate::reader::{AccountReader, ReadError};

/// A transfer as a look-up shows it.
#[derive(Debug, Serialize)]
pub struct TransferBody {
    pub transfer_id: Uuid,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub reference: Option<String>,
    /// A hold captured into another account: the hold.
    pub hold_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
}

/// One leg of an entry.
#[derive(Debug, Serialize)]
pub struct EntryLegBody {
    pub account_id: Uuid,
    /// `debit` (money out) or `credit` (money in).
    pub side: &'static str,
    pub amount: i64,
    pub currency: String,
}

/// An entry as a look-up shows it.
#[derive(Debug, Serialize)]
pub struct EntryBody {
    pub entry_id: Uuid,
    pub reference: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Debits first, then credits, each in account id order.
    pub legs: Vec<EntryLegBody>,
}

/// The accounts `ids` as the read model has them, by id (through the caches).
async fn accounts(
    reader: &AccountReader,
    ids: impl IntoIterator<Item = Uuid>,
    counters: &RequestCounters,
) -> Result<HashMap<Uuid, AccountView>, ReadError> {
    let mut found = HashMap::new();
    for id in ids {
        if let Some((view, _)) = reader.account(id, None, counters).await? {
            found.insert(id, view);
        }
    }
    Ok(found)
}

fn visible_to(caller: &Caller, accounts: &HashMap<Uuid, AccountView>) -> bool {
    accounts.values().any(|account| caller.may_act_for(&account.owner_id))
}

/// The transfer `transfer_id`, if it exists and the caller may see it.
pub async fn transfer(
    reader: &AccountReader,
    caller: &Caller,
    transfer_id: Uuid,
    counters: &RequestCounters,
) -> Result<Option<TransferBody>, ReadError> {
    let rows = reader.movements_of(MovementId::Transfer(transfer_id), counters).await?;
    // Either leg says it all: each names the other account.
    let Some((from, to, row)) = rows.iter().find_map(|(account, row)| match (row.kind, row.counterparty_account_id) {
        (TransactionKind::TransferOut, Some(to)) => Some((*account, to, row)),
        (TransactionKind::TransferIn, Some(from)) => Some((from, *account, row)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let accounts = accounts(reader, [from, to], counters).await?;
    if !visible_to(caller, &accounts) {
        return Ok(None);
    }
    let currency = accounts.values().next().map(|a| a.currency.clone()).unwrap_or_default();
    Ok(Some(TransferBody {
        transfer_id,
        from_account_id: from,
        to_account_id: to,
        amount: row.amount,
        currency,
        reference: row.reference.clone(),
        hold_id: rows.iter().find_map(|(_, row)| row.hold_id),
        occurred_at: row.occurred_at,
    }))
}

/// The entry `entry_id`, if it exists and the caller may see it.
pub async fn entry(
    reader: &AccountReader,
    caller: &Caller,
    entry_id: Uuid,
    counters: &RequestCounters,
) -> Result<Option<EntryBody>, ReadError> {
    let rows = reader.movements_of(MovementId::Entry(entry_id), counters).await?;
    let Some((_, first)) = rows.first() else { return Ok(None) };
    let ids: Vec<Uuid> = rows.iter().map(|(account, _)| *account).collect();
    let accounts = accounts(reader, ids, counters).await?;
    if !visible_to(caller, &accounts) {
        return Ok(None);
    }
    let leg = |(account, row): &(Uuid, TransactionView)| EntryLegBody {
        account_id: *account,
        side: if row.kind == TransactionKind::EntryDebit { "debit" } else { "credit" },
        amount: row.amount,
        currency: accounts.get(account).map(|a| a.currency.clone()).unwrap_or_default(),
    };
    let mut legs: Vec<EntryLegBody> = rows.iter().map(leg).collect();
    legs.sort_by_key(|leg| (leg.side != "debit", leg.account_id));
    Ok(Some(EntryBody { entry_id, reference: first.reference.clone(), occurred_at: first.occurred_at, legs }))
}
