//! Rebuilding the read model from the event store, on a database of its own
//! (a rebuild reads the whole log).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use ledgerline_shared::event_store::EventStore;
use ledgerline_shared::read_model::ReadModelStore;
use projector::Projector;
use projector::dead_letter::InMemoryDeadLetters;
use projector::rebuild::{CHECKPOINT, Checkpoints, PostgresCheckpoints, Rebuild};
use support::{Ledger, drop_database, fresh_database, in_partition, kafka_event, read_model, store_at};
use uuid::Uuid;

/// Everything the read model holds about these accounts.
async fn snapshot(model: &dyn ReadModelStore, accounts: &[Uuid]) -> BTreeMap<Uuid, String> {
    let mut state = BTreeMap::new();
    for &account in accounts {
        let view = model.account(account, true).await.unwrap();
        let history = model.transactions(account, 200, None, true).await.unwrap();
        state.insert(account, format!("{view:?} {history:?}"));
    }
    state
}

#[tokio::test]
async fn a_rebuild_equals_the_incremental_projection_and_resumes_from_its_checkpoint() {
    let url = fresh_database().await;
    let store = store_at(&url);
    let ledger = Ledger::new(store.clone());
    let mut accounts = Vec::new();
    for owner in ["ann", "ben", "cat"] {
        let account = ledger.open(owner).await;
        ledger.deposit(account, 1_000).await;
        accounts.push(account);
    }
    ledger.transfer(accounts[0], accounts[1], 250).await;
    ledger.transfer(accounts[1], accounts[2], 100).await;
    ledger.withdraw(accounts[2], 50).await;
    ledger.freeze(accounts[0]).await;

    // Incremental: every account's events through the projector.
    let incremental = read_model().await;
    let projector = Projector::new(incremental.clone(), None, None, Arc::new(InMemoryDeadLetters::default()));
    let mut records = Vec::new();
    for (partition, &account) in accounts.iter().enumerate() {
        records.extend(in_partition(partition as i64, 0, &ledger.events(account).await));
    }
    let (response, _) = projector.handle(kafka_event(records)).await;
    assert!(response.batch_item_failures.is_empty());

    // Rebuilt: from the log into other tables that already hold junk.
    let rebuilt = read_model().await;
    let junk = Uuid::new_v4();
    let junk_change = ledgerline_shared::read_model::change_for(
        junk,
        1,
        &ledgerline_shared::domain::AccountEvent::Opened {
            account_id: junk,
            owner_id: "junk".into(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: 0,
            at: chrono::Utc::now(),
        },
    );
    rebuilt.apply(&junk_change).await.unwrap();
    let pool = ledgerline_shared::db::pool(&ledgerline_shared::config::DatabaseSettings {
        url: url.clone(),
        pool_size: 2,
        connect_timeout: std::time::Duration::from_secs(5), ca_file: None,
    })
    .unwrap();
    let checkpoints = Arc::new(PostgresCheckpoints::new(pool));
    let rebuild = Rebuild { event_store: store.clone(), read_model: rebuilt.clone(), cache: None, checkpoints: checkpoints.clone() };
    let mut reports = Vec::new();
    let done = rebuild.run(true, |progress| reports.push(progress)).await.unwrap();
    let events_in_log = store.head_position().await.unwrap();
    assert_eq!(done.applied as i64, events_in_log);
    assert_eq!(done.position, events_in_log);
    assert!(reports.first().is_some_and(|p| p.position == 0 && p.head == events_in_log), "{reports:?}");
    assert_eq!(snapshot(&*rebuilt, &accounts).await, snapshot(&*incremental, &accounts).await);
    assert_eq!(rebuilt.account(junk, true).await.unwrap(), None, "a rebuild starts from empty tables");
    assert_eq!(checkpoints.load(CHECKPOINT).await.unwrap(), Some(events_in_log));

    // New events, then a resumed rebuild: only the new ones are read.
    ledger.deposit(accounts[1], 7).await;
    let resumed = rebuild.run(false, |_| {}).await.unwrap();
    assert_eq!((resumed.applied, resumed.skipped), (1, 0));
    assert_eq!(rebuilt.account(accounts[1], true).await.unwrap().unwrap().balance, 1_000 + 250 - 100 + 7);

    // Running a resumed rebuild from an older checkpoint re-reads events harmlessly.
    checkpoints.save(CHECKPOINT, 2).await.unwrap();
    let again = rebuild.run(false, |_| {}).await.unwrap();
    assert_eq!(again.applied, 0);
    assert_eq!(again.skipped as i64, store.head_position().await.unwrap() - 2);
    drop(rebuild);
    drop(store);
    drop_database(&url).await;
}
