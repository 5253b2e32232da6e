//! The in-memory read model: the embedded mode's and the fast tests' store.
//! Same rules as DynamoDB: a change lands only on the version before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AccountView, ApplyOutcome, BalanceMark, Change, HoldChange, HoldFilter, HoldPage, HoldView, MovementId, ReadModelError, ReadModelStore,
    TransactionPage, TransactionView,
};
use crate::domain::HoldStatus;

#[derive(Default)]
pub struct InMemoryReadModel {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<Uuid, AccountView>,
    transactions: HashMap<Uuid, BTreeMap<u64, TransactionView>>,
    holds: HashMap<Uuid, BTreeMap<Uuid, HoldView>>,
}

impl Inner {
    /// A hold change, unless the stored hold is at its version or newer
    /// (or, for an end, missing): holds never go back.
    fn write_hold(&mut self, account_id: Uuid, change: &HoldChange) {
        let holds = self.holds.entry(account_id).or_default();
        let stored = holds.get(&change.hold_id());
        if stored.is_some_and(|h| h.version >= change.version()) {
            return;
        }
        if let Some(after) = change.apply_to(stored) {
            holds.insert(after.hold_id, after);
        }
    }
}

impl InMemoryReadModel {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ReadModelStore for InMemoryReadModel {
    async fn apply(&self, change: &Change) -> Result<ApplyOutcome, ReadModelError> {
        let mut inner = self.lock();
        let account_id = change.account_id();
        let stored = inner.accounts.get(&account_id).map_or(0, |a| a.version);
        let version = change.version();
        if stored >= version {
            return Ok(ApplyOutcome::Duplicate { stored });
        }
        if stored + 1 < version {
            return Ok(ApplyOutcome::Gap { stored });
        }
        let after =
            change.apply_to(inner.accounts.get(&account_id)).ok_or_else(|| ReadModelError::Other("update without an account".into()))?;
        inner.accounts.insert(account_id, after);
        if let Change::Update { transaction, hold, .. } = change {
            if let Some(row) = transaction {
                inner.transactions.entry(account_id).or_default().insert(row.version, row.clone());
            }
            if let Some(hold) = hold {
                inner.write_hold(account_id, hold);
            }
        }
        Ok(ApplyOutcome::Applied)
    }

    async fn apply_run(&self, changes: &[Change]) -> Result<Option<AccountView>, ReadModelError> {
        let Some(first) = changes.first() else { return Ok(None) };
        let account_id = first.account_id();
        let mut inner = self.lock();
        let consecutive = changes.windows(2).all(|w| w[1].account_id() == account_id && w[1].version() == w[0].version() + 1);
        let stored = inner.accounts.get(&account_id).map_or(0, |a| a.version);
        if !consecutive || stored + 1 != first.version() {
            return Ok(None);
        }
        let mut view = inner.accounts.get(&account_id).cloned();
        for change in changes {
            view = change.apply_to(view.as_ref());
            if view.is_none() {
                return Ok(None);
            }
        }
        for change in changes {
            if let Change::Update { transaction, hold, .. } = change {
                if let Some(row) = transaction {
                    inner.transactions.entry(account_id).or_default().insert(row.version, row.clone());
                }
                if let Some(hold) = hold {
                    inner.write_hold(account_id, hold);
                }
            }
        }
        let view = view.expect("checked above");
        inner.accounts.insert(account_id, view.clone());
        Ok(Some(view))
    }

    async fn account(&self, account_id: Uuid, _consistent: bool) -> Result<Option<AccountView>, ReadModelError> {
        Ok(self.lock().accounts.get(&account_id).cloned())
    }

    async fn accounts_of_owner(&self, owner_id: &str) -> Result<Vec<AccountView>, ReadModelError> {
        let mut accounts: Vec<_> = self.lock().accounts.values().filter(|a| a.owner_id == owner_id).cloned().collect();
        accounts.sort_by_key(|a| a.account_id);
        Ok(accounts)
    }

    async fn transactions(
        &self,
        account_id: Uuid,
        limit: usize,
        before_version: Option<u64>,
        _consistent: bool,
    ) -> Result<TransactionPage, ReadModelError> {
        let inner = self.lock();
        let Some(rows) = inner.transactions.get(&account_id) else {
            return Ok(TransactionPage { items: vec![], next_before_version: None });
        };
        let upper = before_version.unwrap_or(u64::MAX);
        let mut newer_first = rows.range(..upper).rev().map(|(_, row)| row.clone());
        let items: Vec<_> = newer_first.by_ref().take(limit).collect();
        let more = newer_first.next().is_some();
        let next_before_version = if more { items.last().map(|row| row.version) } else { None };
        Ok(TransactionPage { items, next_before_version })
    }

    async fn last_movement_before(
        &self,
        account_id: Uuid,
        before: DateTime<Utc>,
        _consistent: bool,
    ) -> Result<Option<BalanceMark>, ReadModelError> {
        let inner = self.lock();
        let Some(rows) = inner.transactions.get(&account_id) else { return Ok(None) };
        // The time index's order: by time, then version.
        Ok(rows
            .values()
            .filter(|row| row.occurred_at < before)
            .max_by_key(|row| (row.occurred_at, row.version))
            .map(|row| BalanceMark { version: row.version, balance: row.balance_after }))
    }

    async fn movements_between(
        &self,
        account_id: Uuid,
        after_version: u64,
        up_to_version: u64,
        limit: usize,
        _consistent: bool,
    ) -> Result<Vec<TransactionView>, ReadModelError> {
        if after_version >= up_to_version {
            return Ok(vec![]);
        }
        let inner = self.lock();
        let Some(rows) = inner.transactions.get(&account_id) else { return Ok(vec![]) };
        Ok(rows.range(after_version + 1..=up_to_version).take(limit).map(|(_, row)| row.clone()).collect())
    }

    async fn movements_of(&self, id: MovementId) -> Result<Vec<(Uuid, TransactionView)>, ReadModelError> {
        let inner = self.lock();
        let mut found: Vec<_> = inner
            .transactions
            .iter()
            .flat_map(|(account, rows)| rows.values().filter(|row| id.names(row)).map(|row| (*account, row.clone())))
            .collect();
        found.sort_by_key(|(account, row)| (*account, row.version));
        Ok(found)
    }

    async fn accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>, ReadModelError> {
        let inner = self.lock();
        let mut found: Vec<_> = ids.iter().filter_map(|id| inner.accounts.get(id).cloned()).collect();
        found.sort_by_key(|a| a.account_id);
        found.dedup_by_key(|a| a.account_id);
        Ok(found)
    }

    async fn replace(&self, view: &AccountView, rows: &[TransactionView], holds: &[HoldChange]) -> Result<bool, ReadModelError> {
        let mut inner = self.lock();
        let history = inner.transactions.entry(view.account_id).or_default();
        for row in rows {
            history.insert(row.version, row.clone());
        }
        for hold in holds {
            inner.write_hold(view.account_id, hold);
        }
        if inner.accounts.get(&view.account_id).is_some_and(|stored| stored.version > view.version) {
            return Ok(false);
        }
        inner.accounts.insert(view.account_id, view.clone());
        Ok(true)
    }

    async fn hold(&self, account_id: Uuid, hold_id: Uuid, _consistent: bool) -> Result<Option<HoldView>, ReadModelError> {
        Ok(self.lock().holds.get(&account_id).and_then(|holds| holds.get(&hold_id)).cloned())
    }

    async fn holds(
        &self,
        account_id: Uuid,
        filter: HoldFilter,
        limit: usize,
        before: Option<Uuid>,
        _consistent: bool,
    ) -> Result<HoldPage, ReadModelError> {
        let inner = self.lock();
        let Some(holds) = inner.holds.get(&account_id) else { return Ok(HoldPage { items: vec![], next_before: None }) };
        let upper = before.unwrap_or(Uuid::max());
        let mut newer_first = holds.range(..upper).rev().map(|(_, h)| h).filter(|h| filter.matches(h)).cloned();
        let items: Vec<_> = newer_first.by_ref().take(limit).collect();
        let more = newer_first.next().is_some();
        let next_before = if more { items.last().map(|h| h.hold_id) } else { None };
        Ok(HoldPage { items, next_before })
    }

    async fn due_holds(&self, at: DateTime<Utc>, limit: usize) -> Result<Vec<(Uuid, Uuid)>, ReadModelError> {
        let inner = self.lock();
        let mut due: Vec<(DateTime<Utc>, Uuid, Uuid)> = inner
            .holds
            .values()
            .flat_map(|holds| holds.values())
            .filter(|h| h.status == HoldStatus::Active && h.expires_at <= at)
            .map(|h| (h.expires_at, h.account_id, h.hold_id))
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, account, hold)| (account, hold)).collect())
    }
}
