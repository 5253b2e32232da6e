//! The read-model contract, run against the in-memory store and DynamoDB
//! (the moto server) through [`read_model_tests!`].
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use ledgerline_shared::domain::{AccountEvent, Amount};
use ledgerline_shared::read_model::{ApplyOutcome, Change, ReadModelStore, TransactionKind, change_for};
use uuid::Uuid;

#[async_trait]
pub trait Factory: Sync {
    async fn make(&self) -> Arc<dyn ReadModelStore>;
}

#[macro_export]
macro_rules! read_model_tests {
    ($factory:expr) => {
        $crate::read_model_tests!(@each $factory;
            changes_apply_in_version_order,
            a_duplicate_changes_nothing,
            a_gap_is_reported_and_writes_nothing,
            an_update_before_the_account_exists_is_a_gap,
            history_pages_walk_every_movement_once_newest_first,
            accounts_are_listed_by_owner,
            accounts_are_read_in_bulk,
            replace_rewrites_an_account_but_never_moves_it_back,
            a_run_is_written_at_once_only_when_it_follows_the_stored_version,
        );
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                read_model_conformance::$name(&$factory).await;
            }
        )*
    };
}

fn at(second: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, second).unwrap()
}

fn opened(account: Uuid, owner: &str) -> Change {
    change_for(
        account,
        1,
        &AccountEvent::Opened {
            account_id: account,
            owner_id: owner.into(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: 0,
            at: at(0),
        },
    )
}

fn deposited(account: Uuid, version: u64, amount: i64, balance_after: i64) -> Change {
    change_for(
        account,
        version,
        &AccountEvent::Deposited { amount: Amount::new(amount).unwrap(), balance_after, reference: None, at: at(version as u32) },
    )
}

pub async fn changes_apply_in_version_order(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    assert_eq!(store.apply(&opened(account, "alice")).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(store.apply(&deposited(account, 2, 100, 100)).await.unwrap(), ApplyOutcome::Applied);
    let sent = change_for(
        account,
        3,
        &AccountEvent::TransferSent {
            transfer_id: Uuid::from_u128(9),
            to_account_id: Uuid::from_u128(8),
            amount: Amount::new(30).unwrap(),
            balance_after: 70,
            reference: Some(ledgerline_shared::domain::Reference::new("rent").unwrap()),
            at: at(3),
        },
    );
    assert_eq!(store.apply(&sent).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(store.apply(&change_for(account, 4, &AccountEvent::Frozen { at: at(4) })).await.unwrap(), ApplyOutcome::Applied);

    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.balance, view.version, view.status.as_str(), view.owner_id.as_str()), (70, 4, "frozen", "alice"));
    assert_eq!(view.updated_at, at(4));
    let page = store.transactions(account, 10, None, true).await.unwrap();
    assert_eq!(page.items.iter().map(|t| t.version).collect::<Vec<_>>(), vec![3, 2]);
    assert_eq!(page.items[0].kind, TransactionKind::TransferOut);
    assert_eq!(page.items[0].counterparty_account_id, Some(Uuid::from_u128(8)));
    assert_eq!(page.items[0].transfer_id, Some(Uuid::from_u128(9)));
    assert_eq!(page.items[0].reference.as_deref(), Some("rent"));
    assert_eq!((page.items[1].kind, page.items[1].amount, page.items[1].balance_after), (TransactionKind::Deposit, 100, 100));
    assert_eq!(page.next_before_version, None);
    assert_eq!(store.account(Uuid::new_v4(), true).await.unwrap(), None);
}

pub async fn a_duplicate_changes_nothing(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    store.apply(&opened(account, "alice")).await.unwrap();
    store.apply(&deposited(account, 2, 100, 100)).await.unwrap();
    assert_eq!(store.apply(&opened(account, "alice")).await.unwrap(), ApplyOutcome::Duplicate { stored: 2 });
    // A replayed event with (impossibly) different content must not land either.
    assert_eq!(store.apply(&deposited(account, 2, 5, 5)).await.unwrap(), ApplyOutcome::Duplicate { stored: 2 });
    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.balance, view.version), (100, 2));
    assert_eq!(store.transactions(account, 10, None, true).await.unwrap().items.len(), 1);
}

pub async fn a_gap_is_reported_and_writes_nothing(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    store.apply(&opened(account, "alice")).await.unwrap();
    assert_eq!(store.apply(&deposited(account, 3, 100, 100)).await.unwrap(), ApplyOutcome::Gap { stored: 1 });
    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.balance, view.version), (0, 1));
    assert!(store.transactions(account, 10, None, true).await.unwrap().items.is_empty());
}

pub async fn an_update_before_the_account_exists_is_a_gap(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    assert_eq!(store.apply(&deposited(account, 2, 1, 1)).await.unwrap(), ApplyOutcome::Gap { stored: 0 });
    assert_eq!(store.account(account, true).await.unwrap(), None);
}

pub async fn history_pages_walk_every_movement_once_newest_first(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    store.apply(&opened(account, "alice")).await.unwrap();
    for version in 2..=24u64 {
        store.apply(&deposited(account, version, 1, version as i64 - 1)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.transactions(account, 5, before, true).await.unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(page.items.iter().map(|t| t.version));
        match page.next_before_version {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (2..=24u64).rev().collect::<Vec<_>>());
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
}

pub async fn accounts_are_listed_by_owner(factory: &dyn Factory) {
    let store = factory.make().await;
    let owner = format!("owner-{}", Uuid::new_v4());
    let mine = [Uuid::new_v4(), Uuid::new_v4()];
    for account in mine {
        store.apply(&opened(account, &owner)).await.unwrap();
    }
    store.apply(&opened(Uuid::new_v4(), "someone-else")).await.unwrap();
    let listed: HashSet<Uuid> = store.accounts_of_owner(&owner).await.unwrap().into_iter().map(|a| a.account_id).collect();
    assert_eq!(listed, mine.into_iter().collect());
    assert!(store.accounts_of_owner("nobody").await.unwrap().is_empty());
}

pub async fn accounts_are_read_in_bulk(factory: &dyn Factory) {
    let store = factory.make().await;
    // More than one BatchGetItem takes (100), one of them missing.
    let mut ids: Vec<Uuid> = (0..120).map(|_| Uuid::new_v4()).collect();
    for &account in &ids[..119] {
        store.apply(&opened(account, "bulk")).await.unwrap();
    }
    ids.push(ids[0]); // asked twice, returned once
    let found = store.accounts(&ids).await.unwrap();
    let mut expected: Vec<Uuid> = ids[..119].to_vec();
    expected.sort();
    assert_eq!(found.iter().map(|a| a.account_id).collect::<Vec<_>>(), expected);
    assert!(store.accounts(&[]).await.unwrap().is_empty());
}

pub async fn replace_rewrites_an_account_but_never_moves_it_back(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    store.apply(&opened(account, "alice")).await.unwrap();
    store.apply(&deposited(account, 2, 7, 7)).await.unwrap();
    let stored = store.account(account, true).await.unwrap().unwrap();
    let Change::Update { transaction: Some(row), .. } = deposited(account, 2, 7, 7) else { panic!("a movement") };

    // Same version, other content (a damaged item): rewritten.
    let damaged = ledgerline_shared::read_model::AccountView { balance: 999, ..stored.clone() };
    assert!(store.replace(&damaged, &[]).await.unwrap());
    assert!(store.replace(&stored, std::slice::from_ref(&row)).await.unwrap());
    assert_eq!(store.account(account, true).await.unwrap().unwrap(), stored);
    // Rows are rewritten, never doubled.
    assert_eq!(store.transactions(account, 10, None, true).await.unwrap().items, vec![row.clone()]);

    // An older view does not move the account back (its rows still land).
    store.apply(&deposited(account, 3, 5, 12)).await.unwrap();
    let newer = store.account(account, true).await.unwrap().unwrap();
    assert!(!store.replace(&stored, std::slice::from_ref(&row)).await.unwrap());
    assert_eq!(store.account(account, true).await.unwrap().unwrap(), newer);
}

pub async fn a_run_is_written_at_once_only_when_it_follows_the_stored_version(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    // Opened and two deposits in one run.
    let first_run = vec![opened(account, "alice"), deposited(account, 2, 100, 100), deposited(account, 3, 50, 150)];
    let written = store.apply_run(&first_run).await.unwrap().expect("written");
    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!(written, view, "the run answers the account as stored");
    assert_eq!((view.balance, view.version, view.status.as_str(), view.updated_at), (150, 3, "open", at(3)));
    let rows = store.transactions(account, 10, None, true).await.unwrap().items;
    assert_eq!(rows.iter().map(|t| (t.version, t.balance_after)).collect::<Vec<_>>(), vec![(3, 150), (2, 100)]);

    // A status change and a deposit: each attribute takes its last value.
    let frozen = change_for(account, 4, &AccountEvent::Frozen { at: at(4) });
    let written = store.apply_run(&[frozen, deposited(account, 5, 10, 160)]).await.unwrap().expect("written");
    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!(written, view, "the run answers the account as stored");
    assert_eq!((view.balance, view.version, view.status.as_str()), (160, 5, "frozen"));

    // Runs that do not start right after the stored version write nothing
    // to the account: a replay, a gap, and a run with a hole in it.
    for run in [
        vec![deposited(account, 5, 10, 160), deposited(account, 6, 1, 161)],
        vec![deposited(account, 7, 1, 161), deposited(account, 8, 1, 162)],
        vec![deposited(account, 6, 1, 161), deposited(account, 8, 1, 162)],
    ] {
        assert!(store.apply_run(&run).await.unwrap().is_none(), "{:?}", run.iter().map(Change::version).collect::<Vec<_>>());
        let view = store.account(account, true).await.unwrap().unwrap();
        assert_eq!((view.balance, view.version), (160, 5));
    }
    // An opening of an account that exists is no run either.
    assert!(store.apply_run(&[opened(account, "mallory"), deposited(account, 2, 1, 1)]).await.unwrap().is_none());
    assert_eq!(store.account(account, true).await.unwrap().unwrap().owner_id, "alice");
}
