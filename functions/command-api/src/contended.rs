//! Accounts that met a concurrency conflict lately, so that the next
//! commands on them lock first.
//!
//! A command reads without locks and appends with a version check; on a
//! conflict it decides again with its accounts locked ([`crate::execute`]).
//! On a spread of accounts that is the cheaper shape (two round trips, no
//! transaction held across the decision). On a hot account nearly every
//! first attempt fails, and locking on every attempt is faster
//! (docs/BENCHMARKS.md). So an account that conflicted is remembered for a
//! while and its commands lock from the start: each container learns which
//! accounts are hot from its own conflicts. Only the order of the steps
//! changes; a locked attempt keeps every guarantee of an unlocked one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long an account is remembered after its last conflict.
pub const REMEMBER_FOR: Duration = Duration::from_secs(10);

/// How many accounts are remembered at most: beyond it the expired ones are
/// dropped, and if none has expired, all of them (the memory is a hint).
const CAPACITY: usize = 10_000;

#[derive(Debug)]
pub struct ContendedAccounts {
    remember_for: Duration,
    last_conflict: Mutex<HashMap<Uuid, Instant>>,
}

impl Default for ContendedAccounts {
    fn default() -> Self {
        Self::new(REMEMBER_FOR)
    }
}

impl ContendedAccounts {
    pub fn new(remember_for: Duration) -> Self {
        Self { remember_for, last_conflict: Mutex::new(HashMap::new()) }
    }

    /// Whether any of `accounts` conflicted within the last `remember_for`.
    pub fn any(&self, accounts: &[Uuid]) -> bool {
        let last_conflict = self.last_conflict.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        accounts.iter().any(|id| last_conflict.get(id).is_some_and(|at| at.elapsed() < self.remember_for))
    }

    /// `accounts` just met a conflict.
    pub fn note(&self, accounts: &[Uuid]) {
        let mut last_conflict = self.last_conflict.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last_conflict.len() >= CAPACITY {
            last_conflict.retain(|_, at| at.elapsed() < self.remember_for);
            if last_conflict.len() >= CAPACITY {
                last_conflict.clear();
            }
        }
        let now = Instant::now();
        for id in accounts {
            last_conflict.insert(*id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_contended_after_a_conflict_until_it_is_forgotten() {
        let (hot, other) = (Uuid::new_v4(), Uuid::new_v4());
        let remembered = ContendedAccounts::new(Duration::from_secs(3600));
        assert!(!remembered.any(&[hot, other]));
        remembered.note(&[hot]);
        assert!(remembered.any(&[hot]));
        assert!(remembered.any(&[other, hot]), "a transfer touching it");
        assert!(!remembered.any(&[other]));

        let forgetful = ContendedAccounts::new(Duration::ZERO);
        forgetful.note(&[hot]);
        assert!(!forgetful.any(&[hot]), "forgotten once its time is up");
    }

    #[test]
    fn the_memory_stays_bounded() {
        let remembered = ContendedAccounts::new(Duration::from_secs(3600));
        for _ in 0..CAPACITY + 5 {
            remembered.note(&[Uuid::new_v4()]);
        }
        let kept = remembered.last_conflict.lock().unwrap().len();
        assert!(kept <= CAPACITY, "{kept} accounts remembered");
    }
}
