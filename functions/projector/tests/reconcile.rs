//! Reconciliation and rebuilds (`ledgerline_shared::reconcile`) against real
//! PostgreSQL (a database of its own: they read every stream) and the
//! DynamoDB emulator (tables of their own).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use ledgerline_shared::accounts::codec::EventCodec;
use ledgerline_shared::domain::{AccountEvent, Amount};
use ledgerline_shared::event_store::EventStore;
use ledgerline_shared::read_model::{ApplyOutcome, ReadModelStore, change_for};
use ledgerline_shared::reconcile::{PostgresProgress, ProgressStore, ReconcileSettings, Reconciler};
use projector::Projector;
use projector::dead_letter::InMemoryDeadLetters;
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

fn pool(url: &str) -> deadpool_postgres::Pool {
    ledgerline_shared::db::pool(&ledgerline_shared::config::DatabaseSettings {
        url: url.to_owned(),
        pool_size: 2,
        connect_timeout: std::time::Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap()
}

fn reconciler(store: Arc<dyn EventStore>, model: Arc<dyn ReadModelStore>, url: &str) -> Reconciler {
    Reconciler {
        event_store: store,
        read_model: model,
        cache: None,
        progress: Arc::new(PostgresProgress::new(pool(url))),
        settings: ReconcileSettings { page: 2, sweep_page: 2, ..ReconcileSettings::default() },
    }
}

/// Three accounts with some history, and the same history projected
/// incrementally by the projector (the reference a repair must equal).
async fn three_accounts(ledger: &Ledger) -> (Vec<Uuid>, Arc<dyn ReadModelStore>) {
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
    let incremental = read_model().await;
    let projector = Projector::new(incremental.clone(), None, None, Arc::new(InMemoryDeadLetters::default()));
    let mut records = Vec::new();
    for (partition, &account) in accounts.iter().enumerate() {
        records.extend(in_partition(partition as i64, 0, &ledger.events(account).await));
    }
    let (response, _) = projector.handle(kafka_event(records)).await;
    assert!(response.batch_item_failures.is_empty());
    (accounts, incremental)
}

#[tokio::test]
async fn a_pass_repairs_accounts_left_behind_and_then_finds_nothing_to_do() {
    let url = fresh_database().await;
    let store = store_at(&url);
    let ledger = Ledger::new(store.clone());
    let (accounts, incremental) = three_accounts(&ledger).await;

    // The read side as a crash leaves it: one account never projected, one
    // stopped after its first event, one complete.
    let stale = read_model().await;
    let codec = EventCodec::current();
    let first = &ledger.events(accounts[1]).await[0];
    let opened = codec.decode(&first.event_type, first.schema_version, &first.payload).unwrap();
    assert_eq!(stale.apply(&change_for(accounts[1], 1, &opened)).await.unwrap(), ApplyOutcome::Applied);
    for event in ledger.events(accounts[2]).await {
        let decoded = codec.decode(&event.event_type, event.schema_version, &event.payload).unwrap();
        stale.apply(&change_for(accounts[2], event.version, &decoded)).await.unwrap();
    }

    let reconciler = reconciler(store.clone(), stale.clone(), &url);
    let report = reconciler.pass(None).await.unwrap();
    assert_eq!((report.behind, report.repaired), (2, 2), "{report:?}");
    assert_eq!(report.repaired_accounts.iter().copied().collect::<std::collections::BTreeSet<_>>(), [accounts[0], accounts[1]].into());
    let expected_events = ledger.events(accounts[0]).await.len() + ledger.events(accounts[1]).await.len() - 1;
    assert_eq!(report.events_applied, expected_events as u64);
    assert!(report.oldest_lag_ms > 0, "{report:?}");
    assert_eq!(snapshot(&*stale, &accounts).await, snapshot(&*incremental, &accounts).await);

    // Nothing wrong now: the next pass repairs nothing.
    let again = reconciler.pass(None).await.unwrap();
    assert_eq!((again.behind, again.repaired, again.events_applied), (0, 0, 0), "{again:?}");
    assert!(again.checked >= 1, "the overlap window looks at recent changes again: {again:?}");

    // A full sweep also finds nothing, and checks every stream.
    let swept = reconciler.sweep().await.unwrap();
    assert_eq!((swept.checked, swept.behind), (3, 0), "{swept:?}");
    drop(reconciler);
    drop(store);
    drop_database(&url).await;
}

#[tokio::test]
async fn an_account_whose_history_rows_ran_ahead_of_it_is_not_stuck() {
    // The state a non-atomic emulator left: the account item at version 1
    // while history rows of later versions already exist. The projector's
    // next write must go through, not fail its condition forever.
    let url = fresh_database().await;
    let store = store_at(&url);
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("dan").await;
    ledger.deposit(account, 10).await;
    ledger.deposit(account, 20).await;
    let model = read_model().await;
    let codec = EventCodec::current();
    let events = ledger.events(account).await;
    let changes: Vec<_> = events
        .iter()
        .map(|e| change_for(account, e.version, &codec.decode(&e.event_type, e.schema_version, &e.payload).unwrap()))
        .collect();
    model.apply(&changes[0]).await.unwrap();
    let ledgerline_shared::read_model::Change::Update { transaction: Some(row), .. } = &changes[1] else { panic!("a deposit") };
    let ahead = ledgerline_shared::read_model::AccountView { version: 1, ..model.account(account, true).await.unwrap().unwrap() };
    // The history row of version 2 written, the account left at 1.
    model.replace(&ahead, std::slice::from_ref(row), &[]).await.unwrap();
    assert_eq!(model.transactions(account, 10, None, true).await.unwrap().items.len(), 1);

    assert_eq!(model.apply(&changes[1]).await.unwrap(), ApplyOutcome::Applied);
    assert_eq!(model.apply(&changes[2]).await.unwrap(), ApplyOutcome::Applied);
    let view = model.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.version, view.balance), (3, 30));
    let versions: Vec<u64> = model.transactions(account, 10, None, true).await.unwrap().items.iter().map(|r| r.version).collect();
    assert_eq!(versions, vec![3, 2], "each movement once");
    drop(store);
    drop_database(&url).await;
}

#[tokio::test]
async fn a_rebuild_rewrites_every_account_in_place_and_resumes() {
    let url = fresh_database().await;
    let store = store_at(&url);
    let ledger = Ledger::new(store.clone());
    let (accounts, incremental) = three_accounts(&ledger).await;

    // A read model that is wrong in a way versions do not show: a balance
    // tampered with at the right version.
    let damaged = read_model().await;
    let reference = Reconciler { cache: None, ..reconciler(store.clone(), damaged.clone(), &url) };
    reference.sweep().await.unwrap();
    let mut tampered = damaged.account(accounts[0], true).await.unwrap().unwrap();
    tampered.balance += 1_000_000;
    assert!(damaged.replace(&tampered, &[], &[]).await.unwrap());
    assert_ne!(snapshot(&*damaged, &accounts).await, snapshot(&*incremental, &accounts).await);

    let mut reports = Vec::new();
    let done = reference.rebuild(true, |p| reports.push(p)).await.unwrap();
    assert_eq!((done.streams_done, done.streams_total, done.accounts_written), (3, 3, 3), "{done:?}");
    assert!(reports.first().is_some_and(|p| p.streams_done == 0 && p.streams_total == 3), "{reports:?}");
    assert_eq!(snapshot(&*damaged, &accounts).await, snapshot(&*incremental, &accounts).await);

    // An interrupted rebuild resumes after the last finished page.
    let mut sorted = accounts.clone();
    sorted.sort();
    let progress = PostgresProgress::new(pool(&url));
    let at_first = ledgerline_shared::reconcile::Progress { changed_since: None, sweep_after: Some(sorted[0]) };
    progress.save(ledgerline_shared::reconcile::REBUILD_PROGRESS, at_first).await.unwrap();
    let mut reports = Vec::new();
    let resumed = reference.rebuild(false, |p| reports.push(p)).await.unwrap();
    assert_eq!(reports[0].streams_done, 1, "{reports:?}");
    assert_eq!((resumed.streams_done, resumed.accounts_written), (3, 2), "only the two after the first: {resumed:?}");

    // A rebuild never moves an account back: one the projector already
    // moved past the replayed history stays where it is.
    ledger.deposit(accounts[1], 7).await;
    let newest = ledger.events(accounts[1]).await.pop().unwrap();
    let event = EventCodec::current().decode(&newest.event_type, newest.schema_version, &newest.payload).unwrap();
    damaged.apply(&change_for(accounts[1], newest.version, &event)).await.unwrap();
    let before = damaged.account(accounts[1], true).await.unwrap().unwrap();
    reference.rebuild(true, |_| {}).await.unwrap();
    assert_eq!(damaged.account(accounts[1], true).await.unwrap().unwrap(), before);
    drop(reference);
    drop(store);
    drop_database(&url).await;
}

#[tokio::test]
async fn an_event_that_commits_late_is_not_skipped() {
    // An append whose transaction began first but commits after later
    // appends (its streams.updated_at is older than theirs): a pass after
    // the commit still finds it.
    let url = fresh_database().await;
    let store = store_at(&url);
    let ledger = Ledger::new(store.clone());
    let late = ledger.open("eve").await;
    let model = read_model().await;
    let reconciler = reconciler(store.clone(), model.clone(), &url);

    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let tx = client.transaction().await.unwrap();
    let at = chrono::Utc::now();
    let (event_type, schema_version, payload) =
        EventCodec::current().encode(&AccountEvent::Deposited { amount: Amount::new(42).unwrap(), balance_after: 42, reference: None, at });
    tx.execute("UPDATE streams SET version = 2, updated_at = now() WHERE stream_id = $1 AND version = 1", &[&late]).await.unwrap();
    tx.execute(
        "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at) \
         VALUES ($1, 2, $2, $3, $4, $5, 'late', $2, 'test', $6)",
        &[&late, &Uuid::new_v4(), &event_type, &(schema_version as i16), &payload, &at],
    )
    .await
    .unwrap();

    // Meanwhile other appends commit, a pass and a rebuild run.
    let other = ledger.open("fay").await;
    ledger.deposit(other, 5).await;
    reconciler.pass(None).await.unwrap();
    reconciler.rebuild(true, |_| {}).await.unwrap();
    assert_eq!(model.account(late, true).await.unwrap().unwrap().version, 1, "not committed yet");
    assert_eq!(model.account(other, true).await.unwrap().unwrap().balance, 5);

    tx.commit().await.unwrap();
    let report = reconciler.pass(None).await.unwrap();
    assert_eq!(report.repaired_accounts, vec![late], "{report:?}");
    let view = model.account(late, true).await.unwrap().unwrap();
    assert_eq!((view.version, view.balance), (2, 42));
    drop(reconciler);
    drop(store);
    drop_database(&url).await;
}

#[tokio::test]
async fn a_rebuilt_view_in_the_cache_cannot_be_replaced_by_the_view_from_before_the_rebuild() {
    use ledgerline_shared::cache::{AccountCache, CacheSettings};

    let url = fresh_database().await;
    let store = store_at(&url);
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("gus").await;
    ledger.deposit(account, 300).await;
    let model = read_model().await;
    reconciler(store.clone(), model.clone(), &url).sweep().await.unwrap();
    let right = model.account(account, true).await.unwrap().unwrap();

    // The read side wrong at the right version, in DynamoDB and in Redis.
    let wrong = ledgerline_shared::read_model::AccountView { balance: right.balance + 1_000_000, ..right.clone() };
    assert!(model.replace(&wrong, &[], &[]).await.unwrap());
    let settings = CacheSettings {
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ttl: std::time::Duration::from_secs(60),
        timeout: std::time::Duration::from_millis(500),
    };
    let cache = Arc::new(AccountCache::with_namespace(settings, &format!("test-{}:", Uuid::new_v4().simple())).unwrap());
    assert!(cache.put_if_newer(&wrong).await.unwrap());

    let rebuilder = Reconciler { cache: Some(cache.clone()), ..reconciler(store.clone(), model.clone(), &url) };
    rebuilder.rebuild(true, |_| {}).await.unwrap();
    assert_eq!(cache.get(account).await.unwrap().as_ref(), Some(&right), "the rebuild's view is in the cache");

    // A reader or the projector that captured the old view before the
    // rebuild now fills the cache with it: refused at the same version.
    assert!(!cache.put_if_newer(&wrong).await.unwrap(), "the stale view must not come back");
    assert_eq!(cache.get(account).await.unwrap().as_ref(), Some(&right));
    assert_eq!(model.account(account, true).await.unwrap().as_ref(), Some(&right));
    drop(rebuilder);
    drop(store);
    drop_database(&url).await;
}

#[tokio::test]
async fn the_sweep_records_each_due_expiry_once_and_the_read_side_follows() {
    use ledgerline_shared::domain::HoldStatus;

    let url = fresh_database().await;
    let store = store_at(&url);
    let ledger = Ledger::new(store.clone());
    let account = ledger.open("hal").await;
    ledger.deposit(account, 100).await;
    let short = ledger.place_hold(account, 30, 60).await;
    let long = ledger.place_hold(account, 20, 3600).await;
    let model = read_model().await;
    let reconciler = reconciler(store.clone(), model.clone(), &url);
    reconciler.sweep().await.unwrap();
    assert_eq!(model.account(account, true).await.unwrap().unwrap().holds.len(), 2);

    // Before its expiry nothing is due; after it, exactly the short one.
    let now = chrono::Utc::now();
    assert_eq!(reconciler.expire_due_holds(now).await.unwrap().holds_expired, 0);
    let later = now + chrono::Duration::seconds(61);
    let report = reconciler.expire_due_holds(later).await.unwrap();
    assert_eq!((report.accounts_due, report.holds_expired, report.failed), (1, 1, 0), "{report:?}");
    let last = ledger.events(account).await.pop().unwrap();
    assert_eq!(last.event_type, "HoldExpired");

    // The read side has not seen the expiry yet: the next sweep finds the
    // hold again, and records nothing twice (the event store decides).
    let again = reconciler.expire_due_holds(later).await.unwrap();
    assert_eq!((again.accounts_due, again.holds_expired), (1, 0), "{again:?}");
    let expiries = ledger.events(account).await.iter().filter(|e| e.event_type == "HoldExpired").count();
    assert_eq!(expiries, 1, "each hold ends exactly once");

    // Once repaired, the read side shows the expiry and the sweep has nothing to do.
    reconciler.pass(None).await.unwrap();
    let view = model.account(account, true).await.unwrap().unwrap();
    assert_eq!(view.holds.iter().map(|h| h.hold_id).collect::<Vec<_>>(), vec![long]);
    let hold = model.hold(account, short, true).await.unwrap().unwrap();
    assert_eq!((hold.status, hold.released), (HoldStatus::Expired, Some(30)));
    let quiet = reconciler.expire_due_holds(later).await.unwrap();
    assert_eq!(quiet.accounts_due, 0, "{quiet:?}");
    drop(reconciler);
    drop(store);
    drop_database(&url).await;
}
