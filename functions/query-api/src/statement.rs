//! Statements and balances as of a past moment, cut from the history rows.
//!
//! A statement of the period `[from, to)` opens on the account's last
//! movement before `from` and closes on its last movement before `to`, both
//! found through the time index (`occurred-index`); its items are the
//! movements between those two versions, oldest first. Every movement row
//! carries the balance it left, so the opening balance plus the items is the
//! closing balance by construction, on every page: times only choose where
//! the chain of balances is cut.
//!
//! The first page reads the whole period once to total its credits and
//! debits; the signed cursor carries the period, where the next page starts
//! and those totals, so every later page is one read and all pages agree.

use chrono::{DateTime, Duration, Utc};
use ledgerline_shared::read_model::{BalanceMark, HoldFilter, TransactionView};
use serde::Serialize;
use uuid::Uuid;

use crate::cursor::StatementPosition;
use crate::metrics::RequestCounters;
use crate::reader::{AccountReader, ReadError};

/// The longest period one statement covers.
pub const MAX_PERIOD: Duration = Duration::days(366);

/// How many rows one read of the totals pass takes.
const TOTALS_BATCH: usize = 1000;

/// How long a hold can live: one placed earlier than this before a moment
/// cannot be active at it (placing refuses more than 30 days).
const LONGEST_HOLD: Duration = Duration::days(31);

/// What a statement page shows.
#[derive(Debug, Serialize)]
pub struct Statement {
    pub account_id: Uuid,
    pub currency: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub opening_balance: i64,
    pub closing_balance: i64,
    pub total_credits: i64,
    pub total_debits: i64,
    pub items: Vec<TransactionView>,
    /// Where the next page starts; `None` on the last page.
    #[serde(skip)]
    pub next: Option<StatementPosition>,
}

/// Why a statement cannot be made (besides the read model being away).
#[derive(Debug)]
pub enum StatementError {
    Read(ReadError),
    /// The period's totals do not fit in 64 bits: ask for a shorter one.
    TotalsOverflow,
    /// The rows do not chain from the opening balance to the closing one: a
    /// row of the period is not in the read model yet (the projector writes
    /// a run's rows one by one). Retry shortly; no cursor is issued.
    NotYetConsistent,
}

impl From<ReadError> for StatementError {
    fn from(error: ReadError) -> Self {
        Self::Read(error)
    }
}

/// The first page of the statement of `[from, to)`: opening and closing
/// marks, the period's totals, and up to `limit` items.
pub async fn first_page(
    reader: &AccountReader,
    account_id: Uuid,
    currency: String,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    limit: usize,
    counters: &RequestCounters,
) -> Result<Statement, StatementError> {
    let none = BalanceMark { version: 0, balance: 0 };
    let opening = reader.last_movement_before(account_id, from, true, counters).await?.unwrap_or(none);
    let closing = reader.last_movement_before(account_id, to, true, counters).await?.unwrap_or(none);
    // Two movements whose clocks disagree could put the closing mark before
    // the opening one: the period then holds nothing.
    let closing = if closing.version < opening.version { opening } else { closing };
    let (mut credits, mut debits) = (0_i64, 0_i64);
    let mut items = Vec::new();
    let mut more = false;
    let mut after = opening.version;
    // Each row must leave the balance the one before it left, moved by its
    // amount: a missing row shows as a break in the chain.
    let mut running = opening.balance;
    loop {
        let batch = reader.movements_between(account_id, after, closing.version, TOTALS_BATCH, true, counters).await?;
        let Some(last) = batch.last() else { break };
        after = last.version;
        for row in batch {
            let credit = row.kind.is_credit();
            let moved = if credit { running.checked_add(row.amount) } else { running.checked_sub(row.amount) };
            if moved != Some(row.balance_after) {
                return Err(StatementError::NotYetConsistent);
            }
            running = row.balance_after;
            let total = if credit { &mut credits } else { &mut debits };
            *total = total.checked_add(row.amount).ok_or(StatementError::TotalsOverflow)?;
            if items.len() < limit {
                items.push(row);
            } else {
                more = true;
            }
        }
    }
    if running != closing.balance {
        return Err(StatementError::NotYetConsistent);
    }
    let position = StatementPosition {
        account_id,
        from,
        to,
        after_version: items.last().map_or(opening.version, |row| row.version),
        closing,
        opening_balance: opening.balance,
        total_credits: credits,
        total_debits: debits,
    };
    Ok(Statement {
        account_id,
        currency,
        from,
        to,
        opening_balance: opening.balance,
        closing_balance: closing.balance,
        total_credits: credits,
        total_debits: debits,
        items,
        next: more.then_some(position),
    })
}

/// A later page: the items after the cursor's position, with the totals
/// the first page found.
pub async fn next_page(
    reader: &AccountReader,
    currency: String,
    position: StatementPosition,
    limit: usize,
    counters: &RequestCounters,
) -> Result<Statement, StatementError> {
    let mut items =
        reader.movements_between(position.account_id, position.after_version, position.closing.version, limit + 1, true, counters).await?;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = match items.last() {
        Some(last) if more => Some(StatementPosition { after_version: last.version, ..position }),
        _ => None,
    };
    Ok(Statement {
        account_id: position.account_id,
        currency,
        from: position.from,
        to: position.to,
        opening_balance: position.opening_balance,
        closing_balance: position.closing.balance,
        total_credits: position.total_credits,
        total_debits: position.total_debits,
        items,
        next,
    })
}

/// An account's balance as of a moment.
#[derive(Debug, Serialize)]
pub struct BalanceAt {
    pub account_id: Uuid,
    pub currency: String,
    pub at: DateTime<Utc>,
    pub balance: i64,
    pub held: i64,
    pub available_balance: i64,
    /// The version of the last movement at or before `at` (0: none yet).
    pub version: u64,
}

/// The balance after every movement at or before `at`, and what the holds
/// active at `at` reserved then.
pub async fn balance_at(
    reader: &AccountReader,
    account: (Uuid, String, i64),
    at: DateTime<Utc>,
    counters: &RequestCounters,
) -> Result<BalanceAt, ReadError> {
    let (account_id, currency, overdraft_limit) = account;
    let mark = reader.last_movement_before(account_id, at + Duration::nanoseconds(1), true, counters).await?;
    let held = held_at(reader, account_id, at, counters).await?;
    let balance = mark.map_or(0, |m| m.balance);
    // Before its first movement an account had nothing to spend but its overdraft.
    let available_balance = balance.saturating_add(overdraft_limit).saturating_sub(held);
    Ok(BalanceAt { account_id, currency, at, balance, held, available_balance, version: mark.map_or(0, |m| m.version) })
}

/// What the account's holds reserved at `at`: those placed by then that had
/// neither ended nor expired. Holds come newest first; the walk stops at the
/// first placed too long before `at` to have lived until it.
async fn held_at(reader: &AccountReader, account_id: Uuid, at: DateTime<Utc>, counters: &RequestCounters) -> Result<i64, ReadError> {
    let filter = HoldFilter { status: None, at };
    let mut held = 0;
    let mut before = None;
    loop {
        let page = reader.holds(account_id, filter, 200, before, true, counters).await?;
        for hold in &page.items {
            if hold.placed_at + LONGEST_HOLD < at {
                return Ok(held);
            }
            let live = hold.placed_at <= at && at < hold.expires_at && hold.ended_at.is_none_or(|ended| at < ended);
            if live {
                held += hold.amount;
            }
        }
        match page.next_before {
            Some(next) => before = Some(next),
            None => return Ok(held),
        }
    }
}

/// The statement as CSV: a header row, then one row per item (RFC 4180
/// quoting). A text field that a spreadsheet would run as a formula gets a
/// leading `'` (OWASP's advice against CSV injection).
pub fn to_csv(statement: &Statement) -> String {
    let mut out = String::from(
        "occurred_at,version,kind,amount,signed_amount,balance_after,currency,reference,counterparty_account_id,transfer_id,entry_id,hold_id\r\n",
    );
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    for row in &statement.items {
        let signed = if row.kind.is_credit() { row.amount } else { -row.amount };
        let fields = [
            row.occurred_at.to_rfc3339(),
            row.version.to_string(),
            row.kind.as_str().to_owned(),
            row.amount.to_string(),
            signed.to_string(),
            row.balance_after.to_string(),
            statement.currency.clone(),
            csv_text(row.reference.as_deref().unwrap_or_default()),
            id(row.counterparty_account_id),
            id(row.transfer_id),
            id(row.entry_id),
            id(row.hold_id),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One free-text field, defused and quoted where it needs to be.
fn csv_text(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if defused.contains([',', '"', '\r', '\n']) { format!("\"{}\"", defused.replace('"', "\"\"")) } else { defused }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_quoted_and_never_a_formula() {
        assert_eq!(csv_text("rent"), "rent");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_text("-1,2"), "\"'-1,2\"");
    }
}
