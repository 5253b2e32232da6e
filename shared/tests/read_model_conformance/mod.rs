//! The read-model contract, run against the in-memory store and DynamoDB
//! (the moto server) through [`read_model_tests!`].
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use ledgerline_shared::domain::{AccountEvent, Amount, HoldStatus, HoldTransfer};
use ledgerline_shared::read_model::{
    ApplyOutcome, BalanceMark, Change, Folded, HoldFilter, MovementId, ReadModelStore, TransactionKind, change_for,
};
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
            holds_follow_their_events_and_never_go_back,
            holds_are_listed_newest_first_by_status_as_of_a_moment,
            a_run_places_and_ends_holds_in_one_account_write,
            replace_writes_the_holds_a_fold_touched,
            an_entry_leg_is_a_movement_naming_its_entry,
            movements_are_found_by_time_and_by_version_range,
            a_transfer_and_an_entry_are_found_by_id_on_every_account,
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
    assert!(store.replace(&damaged, &[], &[]).await.unwrap());
    assert!(store.replace(&stored, std::slice::from_ref(&row), &[]).await.unwrap());
    assert_eq!(store.account(account, true).await.unwrap().unwrap(), stored);
    // Rows are rewritten, never doubled.
    assert_eq!(store.transactions(account, 10, None, true).await.unwrap().items, vec![row.clone()]);

    // An older view does not move the account back (its rows still land).
    store.apply(&deposited(account, 3, 5, 12)).await.unwrap();
    let newer = store.account(account, true).await.unwrap().unwrap();
    assert!(!store.replace(&stored, std::slice::from_ref(&row), &[]).await.unwrap());
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

// ---- holds ----

/// A hold of `amount` placed as `version`, expiring `lives` seconds after `at(version)`.
fn hold_placed(account: Uuid, version: u64, hold_id: Uuid, amount: i64, lives: i64) -> Change {
    let placed_at = at(version as u32);
    change_for(
        account,
        version,
        &AccountEvent::HoldPlaced {
            hold_id,
            amount: Amount::new(amount).unwrap(),
            reference: Some(ledgerline_shared::domain::Reference::new("hotel").unwrap()),
            expires_at: placed_at + chrono::Duration::seconds(lives),
            at: placed_at,
        },
    )
}

fn hold_released(account: Uuid, version: u64, hold_id: Uuid, amount: i64) -> Change {
    change_for(account, version, &AccountEvent::HoldReleased { hold_id, amount: Amount::new(amount).unwrap(), at: at(version as u32) })
}

pub async fn holds_follow_their_events_and_never_go_back(factory: &dyn Factory) {
    let store = factory.make().await;
    let (account, payee) = (Uuid::new_v4(), Uuid::new_v4());
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    store.apply(&opened(account, "alice")).await.unwrap();
    store.apply(&deposited(account, 2, 1_000, 1_000)).await.unwrap();
    let placed = hold_placed(account, 3, first, 600, 3600);
    assert_eq!(store.apply(&placed).await.unwrap(), ApplyOutcome::Applied);
    store.apply(&hold_placed(account, 4, second, 100, 3600)).await.unwrap();
    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!(view.holds.iter().map(|h| (h.hold_id, h.amount)).collect::<Vec<_>>(), vec![(first, 600), (second, 100)]);
    assert_eq!((view.balance, view.held(at(4)), view.available_balance(at(4))), (1_000, 700, 300));
    assert_eq!(view.held(at(4) + chrono::Duration::seconds(3600)), 0, "expired holds count for nothing");

    // A partial capture into another account: a movement naming the hold.
    let capture = change_for(
        account,
        5,
        &AccountEvent::HoldCaptured {
            hold_id: first,
            amount: Amount::new(250).unwrap(),
            released: 350,
            balance_after: 750,
            transfer: Some(HoldTransfer { transfer_id: Uuid::from_u128(9), to_account_id: payee }),
            reference: None,
            at: at(5),
        },
    );
    assert_eq!(store.apply(&capture).await.unwrap(), ApplyOutcome::Applied);
    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.balance, view.held(at(5)), view.holds.len()), (750, 100, 1));
    let row = &store.transactions(account, 10, None, true).await.unwrap().items[0];
    assert_eq!(
        (row.kind, row.amount, row.hold_id, row.counterparty_account_id),
        (TransactionKind::TransferOut, 250, Some(first), Some(payee))
    );
    let hold = store.hold(account, first, true).await.unwrap().unwrap();
    assert_eq!(
        (hold.status, hold.amount, hold.captured, hold.released, hold.to_account_id, hold.version),
        (HoldStatus::Captured, 600, Some(250), Some(350), Some(payee), 5)
    );
    assert_eq!(hold.reference.as_deref(), Some("hotel"));

    // The placing again (a redelivery) changes nothing: the hold stays captured.
    assert_eq!(store.apply(&placed).await.unwrap(), ApplyOutcome::Duplicate { stored: 5 });
    assert_eq!(store.hold(account, first, true).await.unwrap().unwrap().status, HoldStatus::Captured);
    assert_eq!(store.hold(account, Uuid::now_v7(), true).await.unwrap(), None);

    store.apply(&hold_released(account, 6, second, 100)).await.unwrap();
    assert!(store.account(account, true).await.unwrap().unwrap().holds.is_empty());
    assert_eq!(store.hold(account, second, true).await.unwrap().unwrap().status, HoldStatus::Released);
    assert!(
        store.due_holds(at(59) + chrono::Duration::days(1), 10).await.unwrap().iter().all(|(a, _)| *a != account),
        "no active hold is due"
    );
}

pub async fn holds_are_listed_newest_first_by_status_as_of_a_moment(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    store.apply(&opened(account, "alice")).await.unwrap();
    store.apply(&deposited(account, 2, 1_000, 1_000)).await.unwrap();
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (n, id) in ids.iter().enumerate() {
        // The first two live a minute, the rest an hour.
        let lives = if n < 2 { 60 } else { 3600 };
        store.apply(&hold_placed(account, 3 + n as u64, *id, 10, lives)).await.unwrap();
    }
    store.apply(&hold_released(account, 8, ids[4], 10)).await.unwrap();

    let later = at(10) + chrono::Duration::seconds(120);
    let all = |status| HoldFilter { status, at: later };
    let page = store.holds(account, all(None), 2, None, true).await.unwrap();
    assert_eq!(page.items.iter().map(|h| h.hold_id).collect::<Vec<_>>(), vec![ids[4], ids[3]], "newest first");
    let next = store.holds(account, all(None), 2, page.next_before, true).await.unwrap();
    assert_eq!(next.items.iter().map(|h| h.hold_id).collect::<Vec<_>>(), vec![ids[2], ids[1]]);
    let last = store.holds(account, all(None), 2, next.next_before, true).await.unwrap();
    assert_eq!((last.items.len(), last.next_before), (1, None));

    let ids_of = |page: ledgerline_shared::read_model::HoldPage| page.items.iter().map(|h| h.hold_id).collect::<Vec<_>>();
    let active = store.holds(account, all(Some(HoldStatus::Active)), 10, None, true).await.unwrap();
    assert_eq!(ids_of(active), vec![ids[3], ids[2]]);
    let expired = store.holds(account, all(Some(HoldStatus::Expired)), 10, None, true).await.unwrap();
    assert_eq!(ids_of(expired), vec![ids[1], ids[0]], "past their expiry, recorded or not");
    let released = store.holds(account, all(Some(HoldStatus::Released)), 10, None, true).await.unwrap();
    assert_eq!(ids_of(released), vec![ids[4]]);

    // The expiry sweep's index: the active ones past due, oldest expiry first.
    let due: Vec<Uuid> = store.due_holds(later, 100).await.unwrap().into_iter().filter(|(a, _)| *a == account).map(|(_, h)| h).collect();
    assert_eq!(due, vec![ids[0], ids[1]]);
}

pub async fn a_run_places_and_ends_holds_in_one_account_write(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    let (kept, ended) = (Uuid::now_v7(), Uuid::now_v7());
    store.apply(&opened(account, "alice")).await.unwrap();
    store.apply(&deposited(account, 2, 100, 100)).await.unwrap();
    let run = [hold_placed(account, 3, kept, 30, 3600), hold_placed(account, 4, ended, 20, 3600), hold_released(account, 5, ended, 20)];
    match store.apply_run(&run).await.unwrap() {
        Some(view) => assert_eq!(view.holds.iter().map(|h| h.hold_id).collect::<Vec<_>>(), vec![kept]),
        None => {
            // A store that cannot write a run in one go says so; apply one by one.
            for change in &run {
                store.apply(change).await.unwrap();
            }
        }
    }
    let view = store.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.version, view.holds.len(), view.held(at(5))), (5, 1, 30));
    assert_eq!(store.hold(account, ended, true).await.unwrap().unwrap().status, HoldStatus::Released);
    assert_eq!(store.hold(account, kept, true).await.unwrap().unwrap().status, HoldStatus::Active);
}

pub async fn replace_writes_the_holds_a_fold_touched(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    let (ended_later, placed_later) = (Uuid::now_v7(), Uuid::now_v7());
    // The stored side knows the first hold placed; a fold of what came after
    // ends it and places another.
    store.apply(&opened(account, "alice")).await.unwrap();
    store.apply(&deposited(account, 2, 100, 100)).await.unwrap();
    store.apply(&hold_placed(account, 3, ended_later, 40, 3600)).await.unwrap();
    let mut fold = Folded::from(store.account(account, true).await.unwrap());
    assert!(fold.push(hold_released(account, 4, ended_later, 40)));
    assert!(fold.push(hold_placed(account, 5, placed_later, 10, 3600)));
    let view = fold.view.clone().unwrap();
    assert!(store.replace(&view, &fold.rows, &fold.holds).await.unwrap());
    let stored = store.account(account, true).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.holds.iter().map(|h| h.hold_id).collect::<Vec<_>>()), (5, vec![placed_later]));
    assert_eq!(store.hold(account, ended_later, true).await.unwrap().unwrap().status, HoldStatus::Released);
    assert_eq!(store.hold(account, placed_later, true).await.unwrap().unwrap().status, HoldStatus::Active);
    // Replacing with the older fold again moves no hold back.
    let mut older = Folded::default();
    for change in [opened(account, "alice"), deposited(account, 2, 100, 100), hold_placed(account, 3, ended_later, 40, 3600)] {
        assert!(older.push(change));
    }
    assert!(!store.replace(older.view.as_ref().unwrap(), &older.rows, &older.holds).await.unwrap());
    assert_eq!(store.hold(account, ended_later, true).await.unwrap().unwrap().status, HoldStatus::Released);
}

pub async fn an_entry_leg_is_a_movement_naming_its_entry(factory: &dyn Factory) {
    let store = factory.make().await;
    let (account, entry) = (Uuid::new_v4(), Uuid::now_v7());
    store.apply(&opened(account, "alice")).await.unwrap();
    let credited =
        AccountEvent::EntryCredited { entry_id: entry, amount: Amount::new(80).unwrap(), balance_after: 80, reference: None, at: at(2) };
    assert_eq!(store.apply(&change_for(account, 2, &credited)).await.unwrap(), ApplyOutcome::Applied);
    let debited =
        AccountEvent::EntryDebited { entry_id: entry, amount: Amount::new(30).unwrap(), balance_after: 50, reference: None, at: at(3) };
    store.apply(&change_for(account, 3, &debited)).await.unwrap();
    assert_eq!(store.account(account, true).await.unwrap().unwrap().balance, 50);
    let rows = store.transactions(account, 10, None, true).await.unwrap().items;
    assert_eq!(
        rows.iter().map(|r| (r.kind, r.amount, r.balance_after, r.entry_id)).collect::<Vec<_>>(),
        vec![(TransactionKind::EntryDebit, 30, 50, Some(entry)), (TransactionKind::EntryCredit, 80, 80, Some(entry))]
    );
}

pub async fn movements_are_found_by_time_and_by_version_range(factory: &dyn Factory) {
    let store = factory.make().await;
    let account = Uuid::new_v4();
    store.apply(&opened(account, "alice")).await.unwrap();
    // Deposits at 10:00:02..=10:00:05, balances 10..=40; a freeze (no movement) at version 6.
    for version in 2..=5 {
        store.apply(&deposited(account, version, 10, 10 * (version as i64 - 1))).await.unwrap();
    }
    store.apply(&change_for(account, 6, &AccountEvent::Frozen { at: at(6) })).await.unwrap();
    let mark = |version, balance| Some(BalanceMark { version, balance });
    assert_eq!(store.last_movement_before(account, at(2), true).await.unwrap(), None, "nothing before the first");
    assert_eq!(store.last_movement_before(account, at(2) + chrono::Duration::nanoseconds(1), true).await.unwrap(), mark(2, 10));
    assert_eq!(store.last_movement_before(account, at(4), true).await.unwrap(), mark(3, 20), "strictly before");
    assert_eq!(store.last_movement_before(account, at(59), true).await.unwrap(), mark(5, 40), "the freeze is no movement");
    assert_eq!(store.last_movement_before(Uuid::new_v4(), at(59), true).await.unwrap(), None);
    let versions = |rows: Vec<ledgerline_shared::read_model::TransactionView>| rows.iter().map(|r| r.version).collect::<Vec<_>>();
    assert_eq!(versions(store.movements_between(account, 2, 5, 10, true).await.unwrap()), vec![3, 4, 5], "oldest first, after 2 up to 5");
    assert_eq!(versions(store.movements_between(account, 0, 5, 2, true).await.unwrap()), vec![2, 3], "at most the limit");
    assert_eq!(versions(store.movements_between(account, 5, 5, 10, true).await.unwrap()), Vec::<u64>::new());
}

pub async fn a_transfer_and_an_entry_are_found_by_id_on_every_account(factory: &dyn Factory) {
    let store = factory.make().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for account in [a, b] {
        store.apply(&opened(account, "alice")).await.unwrap();
    }
    store.apply(&deposited(a, 2, 100, 100)).await.unwrap();
    let (transfer_id, entry_id, amount) = (Uuid::now_v7(), Uuid::now_v7(), Amount::new(30).unwrap());
    let sent = AccountEvent::TransferSent { transfer_id, to_account_id: b, amount, balance_after: 70, reference: None, at: at(3) };
    store.apply(&change_for(a, 3, &sent)).await.unwrap();
    let received =
        AccountEvent::TransferReceived { transfer_id, from_account_id: a, amount, balance_after: 30, reference: None, at: at(3) };
    store.apply(&change_for(b, 2, &received)).await.unwrap();
    let debited = AccountEvent::EntryDebited { entry_id, amount, balance_after: 40, reference: None, at: at(4) };
    store.apply(&change_for(a, 4, &debited)).await.unwrap();
    let credited = AccountEvent::EntryCredited { entry_id, amount, balance_after: 60, reference: None, at: at(4) };
    store.apply(&change_for(b, 3, &credited)).await.unwrap();

    let found = |rows: Vec<(Uuid, ledgerline_shared::read_model::TransactionView)>| {
        let mut found: Vec<_> = rows.iter().map(|(account, row)| (*account, row.version, row.kind)).collect();
        found.sort_by_key(|(account, version, _)| (*account, *version));
        found
    };
    let mut want = vec![(a, 3, TransactionKind::TransferOut), (b, 2, TransactionKind::TransferIn)];
    want.sort_by_key(|(account, version, _)| (*account, *version));
    assert_eq!(found(store.movements_of(MovementId::Transfer(transfer_id)).await.unwrap()), want);
    let mut want = vec![(a, 4, TransactionKind::EntryDebit), (b, 3, TransactionKind::EntryCredit)];
    want.sort_by_key(|(account, version, _)| (*account, *version));
    assert_eq!(found(store.movements_of(MovementId::Entry(entry_id)).await.unwrap()), want);
    assert!(store.movements_of(MovementId::Entry(transfer_id)).await.unwrap().is_empty(), "a transfer's id is no entry's");
    assert!(store.movements_of(MovementId::Transfer(Uuid::new_v4())).await.unwrap().is_empty());
}
