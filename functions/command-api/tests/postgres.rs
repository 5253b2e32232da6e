//! The command API against real PostgreSQL: the whole flow, concurrency,
//! idempotent replays under contention, money conservation, and 503 when the
//! database cannot be reached.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use command_api::CommandSettings;
use ledgerline_shared::accounts::codec::EventCodec;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::domain::AccountEvent;
use ledgerline_shared::event_store::{PostgresEventStore, StoreSettings};
use serde_json::json;
use support::{Api, fresh_key, post, user};
use uuid::Uuid;

#[tokio::test]
async fn the_whole_account_lifecycle_over_api_gateway_events() {
    let api = Api::postgres().await;
    let (alice, bob) = (user(), user());
    let a = api.open(&alice, "EUR").await;
    let b = api.open(&bob, "EUR").await;
    assert_eq!(api.deposit(&alice, a, 1_000).await.body["balance"], 1_000);
    let withdrawn = api.send(post(&format!("/accounts/{a}/withdrawals")).by(&alice).key(&fresh_key()).json(json!({"amount": 100}))).await;
    assert_eq!(withdrawn.body["balance"], 900);
    let transfer = api
        .send(post("/transfers").by(&alice).key(&fresh_key()).json(json!({"from_account_id": a, "to_account_id": b, "amount": 400})))
        .await;
    assert_eq!(transfer.status, 201, "{}", transfer.body);
    let back = api
        .send(post("/transfers").by(&bob).key(&fresh_key()).json(json!({"from_account_id": b, "to_account_id": a, "amount": 400})))
        .await;
    assert_eq!(back.status, 201, "{}", back.body);
    assert_eq!((api.balance(a).await, api.balance(b).await), (900, 0));
    assert_eq!(api.send(post(&format!("/accounts/{b}/freeze")).by_admin("ops")).await.body["status"], "frozen");
    assert_eq!(api.send(post(&format!("/accounts/{b}/unfreeze")).by_admin("ops")).await.body["status"], "open");
    let closed = api.send(post(&format!("/accounts/{b}/close")).by(&bob).key(&fresh_key())).await;
    assert_eq!((closed.status, closed.body["status"].as_str()), (200, Some("closed")));
    // Every event has its outbox row, in the same order.
    for account in [a, b] {
        let events = api.store.read_stream(account, 0).await.unwrap();
        let outbox = api.store.outbox_for_stream(account).await.unwrap();
        assert_eq!(events.iter().map(|e| e.event_id).collect::<Vec<_>>(), outbox.iter().map(|o| o.event_id).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn racing_opens_by_one_owner_never_pass_the_limit() {
    const MAX_OPEN: u32 = 3;
    let api = Arc::new(Api::with_open_account_limit(Api::postgres_store().await, MAX_OPEN));
    let owner = user();
    let opens: Vec<_> = (0..16)
        .map(|_| {
            let (api, owner) = (api.clone(), owner.clone());
            tokio::spawn(async move { api.send(post("/accounts").by(&owner).key(&fresh_key()).json(json!({"currency": "EUR"}))).await })
        })
        .collect();
    let mut opened = 0;
    for open in opens {
        let response = open.await.unwrap();
        match response.status {
            201 => opened += 1,
            _ => response.assert_problem(409, "account_limit_reached"),
        }
    }
    assert_eq!(opened, MAX_OPEN);
}

#[tokio::test]
async fn without_authorizer_claims_nothing_is_written() {
    let api = Api::postgres().await;
    let response = api.send(post("/accounts").json(json!({"currency": "EUR"}))).await;
    response.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn parallel_withdrawals_never_overdraw_and_every_accepted_one_is_in_the_history() {
    let api = Arc::new(Api::postgres().await);
    let owner = "bank-ops";
    let opened = api.send(post("/accounts").by_admin(owner).json(json!({"currency": "EUR", "overdraft_limit": 200}))).await;
    let account = opened.id("account_id");
    api.send(post(&format!("/accounts/{account}/deposits")).by_admin(owner).key(&fresh_key()).json(json!({"amount": 1_000}))).await;

    const WITHDRAWALS: usize = 40; // 40 x 50 = 2,000 asked; only 1,200 available
    let tasks: Vec<_> = (0..WITHDRAWALS)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                api.send(post(&format!("/accounts/{account}/withdrawals")).by_admin(owner).key(&fresh_key()).json(json!({"amount": 50})))
                    .await
            })
        })
        .collect();
    let mut accepted = 0i64;
    for task in tasks {
        let response = task.await.unwrap();
        match response.status {
            200 => accepted += 1,
            422 => assert_eq!(response.code(), "insufficient_funds"),
            other => panic!("unexpected {other}: {}", response.body), // 409 included: writers queue instead
        }
    }
    let balance = api.balance(account).await;
    assert!(balance >= -200, "overdrawn: {balance}");
    assert_eq!(balance, 1_000 - 50 * accepted, "every accepted withdrawal, and only those, moved money");
    let codec = EventCodec::current();
    let withdrawals = api
        .store
        .read_stream(account, 0)
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(codec.decode(&e.event_type, e.schema_version, &e.payload), Ok(AccountEvent::Withdrawn { .. })))
        .count();
    assert_eq!(withdrawals as i64, accepted);
    assert_eq!(accepted, 24, "exactly as many as the money and the overdraft allow");
}

/// Issue 11's hot account: 32 writers at once on ONE account, as deposits
/// and as transfers from 32 other accounts into it. Every command succeeds
/// the first time it is sent (no 409, no client retry) and the money adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_account_takes_32_concurrent_writers_without_a_conflict() {
    let api = Arc::new(Api::postgres().await);
    let owner = user();
    let hot = api.open(&owner, "EUR").await;
    let mut sources = Vec::new();
    for _ in 0..32 {
        let source = api.open(&owner, "EUR").await;
        api.deposit(&owner, source, 1_000).await;
        sources.push(source);
    }
    for round in ["deposits", "transfers"] {
        let tasks: Vec<_> = sources
            .iter()
            .map(|&source| {
                let (api, owner) = (api.clone(), owner.clone());
                tokio::spawn(async move {
                    let request = match round {
                        "deposits" => post(&format!("/accounts/{hot}/deposits")).json(json!({"amount": 10})),
                        _ => post("/transfers").json(json!({"from_account_id": source, "to_account_id": hot, "amount": 100})),
                    };
                    api.send(request.by(&owner).key(&fresh_key())).await
                })
            })
            .collect();
        for task in tasks {
            let response = task.await.unwrap();
            assert!(response.status == 200 || response.status == 201, "{round}: {} {}", response.status, response.body);
        }
    }
    assert_eq!(api.balance(hot).await, 32 * 10 + 32 * 100);
    for source in sources {
        assert_eq!(api.balance(source).await, 900);
    }
    let versions: Vec<u64> = api.store.read_stream(hot, 0).await.unwrap().iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=65).collect::<Vec<_>>(), "open, 32 deposits, 32 transfers in, no gap");
}

#[tokio::test]
async fn concurrent_retries_with_one_key_execute_once() {
    let api = Arc::new(Api::postgres().await);
    let owner = user();
    let account = api.open(&owner, "EUR").await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (api, owner) = (api.clone(), owner.clone());
            tokio::spawn(async move {
                api.send(post(&format!("/accounts/{account}/deposits")).by(&owner).key("the-one").json(json!({"amount": 75}))).await
            })
        })
        .collect();
    let mut bodies = HashSet::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
        bodies.insert(response.raw);
    }
    assert_eq!(bodies.len(), 1, "every retry got the same answer");
    assert_eq!(api.balance(account).await, 75);
}

/// The append is one statement, so a backend killed in the middle of it
/// (here: after it claimed the key, while it waits for the owner's lock of
/// the open-account limit) leaves nothing behind, and the client's retry
/// with the same key opens exactly one account.
#[tokio::test]
async fn an_open_killed_mid_statement_writes_nothing_and_its_retry_opens_once() {
    let url = support::migrated_database_url().await;
    let api = Arc::new(Api::with_open_account_limit(Api::postgres_store().await, 5));
    let (owner, key) = (user(), fresh_key());
    let open = |api: Arc<Api>, owner: String, key: String| async move {
        api.send(post("/accounts").by(&owner).key(&key).json(json!({"currency": "EUR"}))).await
    };

    // Another session holds the owner's limit lock (migration V7, step 1b):
    // the open's statement claims the key, then waits for it.
    let holder = ledgerline_shared::db::connect(&url, None).await.unwrap();
    holder.execute("SELECT pg_advisory_lock(19533, hashtext($1))", &[&owner]).await.unwrap();
    let first = tokio::spawn(open(api.clone(), owner.clone(), key.clone()));
    let pid = backend_waiting(&holder, "advisory", "%ledgerline_append%", "ledgerline", 0).await;
    let claimed = "SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND granted";
    assert_eq!(holder.query_one(claimed, &[&pid]).await.unwrap().get::<_, i64>(0), 1, "the key's lock was taken, mid-statement");
    holder.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    first.await.unwrap().assert_problem(503, "service_unavailable");
    holder.execute("SELECT pg_advisory_unlock(19533, hashtext($1))", &[&owner]).await.unwrap();

    let written = |table: &'static str, column: &'static str| {
        let (holder, value) = (&holder, if column == "actor" { owner.clone() } else { key.clone() });
        async move {
            let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
            holder.query_one(&sql, &[&value]).await.unwrap().get::<_, i64>(0)
        }
    };
    assert_eq!(written("events", "actor").await, 0, "no event of the killed open");
    assert_eq!(written("idempotency_keys", "idempotency_key").await, 0, "its key claim rolled back");

    // The retry comes at once: the killed connection must not be handed
    // out again (its socket closes a moment after the FATAL answer).
    let retried = open(api.clone(), owner.clone(), key.clone()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    let again = open(api.clone(), owner.clone(), key.clone()).await;
    assert_eq!((again.status, again.raw.clone()), (201, retried.raw.clone()), "the stored answer");
    assert_eq!(written("events", "actor").await, 1, "one account opened");
    let account = retried.id("account_id");
    let outbox = api.store.outbox_for_stream(account).await.unwrap();
    assert_eq!(outbox.len(), 1, "and its one outbox row");
}

/// A command's read killed mid-statement (here: while it waits for a table
/// lock) is made again on a new connection, and the command is answered as
/// if nothing had happened: a read is safe to repeat.
#[tokio::test]
async fn a_command_whose_read_is_killed_mid_statement_reads_again_on_a_new_connection() {
    // A pool of its own, named, so the backend to kill is this test's.
    let url = support::migrated_database_url().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let pool = ledgerline_shared::db::pool(&DatabaseSettings {
        url: format!("{url}{separator}application_name=ledgerline_read_kill"),
        pool_size: 4,
        connect_timeout: std::time::Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap();
    let api = Arc::new(Api::with_store(Arc::new(PostgresEventStore::new(pool, StoreSettings::default())), CommandSettings::default()));
    let owner = user();
    let account = api.open(&owner, "EUR").await;

    // (Watched from a connection of its own: inside a transaction,
    // pg_stat_activity answers from one snapshot.)
    let (holder, observer) =
        (ledgerline_shared::db::connect(&url, None).await.unwrap(), ledgerline_shared::db::connect(&url, None).await.unwrap());
    holder.batch_execute("BEGIN; LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let deposit = {
        let (api, owner) = (api.clone(), owner.clone());
        tokio::spawn(async move {
            api.send(post(&format!("/accounts/{account}/deposits")).by(&owner).key(&fresh_key()).json(json!({"amount": 5}))).await
        })
    };
    let pid = backend_waiting(&observer, "relation", "%snapshot_taken_at%", "ledgerline_read_kill", 0).await;
    observer.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    // The read again, on a new connection (another backend), waits for the same lock.
    backend_waiting(&observer, "relation", "%snapshot_taken_at%", "ledgerline_read_kill", pid).await;
    holder.batch_execute("COMMIT").await.unwrap();

    let answered = deposit.await.unwrap();
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(api.balance(account).await, 5);
}

/// The pid of the backend of `application` in this database, other than
/// `except`, that waits for a lock of `lock_kind` while running a statement
/// like `query` (10 s at most).
async fn backend_waiting(
    observer: &deadpool_postgres::tokio_postgres::Client,
    lock_kind: &str,
    query: &str,
    application: &str,
    except: i32,
) -> i32 {
    let waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = $1 \
                   AND query LIKE $2 AND application_name = $3 AND pid <> $4 AND datname = current_database()";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(row) = observer.query_opt(waiting, &[&lock_kind, &query, &application, &except]).await.unwrap() {
            return row.get(0);
        }
        assert!(std::time::Instant::now() < deadline, "no backend of {application} waits for a {lock_kind} lock running {query}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn concurrent_transfers_conserve_money() {
    let api = Arc::new(Api::postgres().await);
    let owner = user();
    let mut accounts = Vec::new();
    for _ in 0..4 {
        let account = api.open(&owner, "EUR").await;
        api.deposit(&owner, account, 10_000).await;
        accounts.push(account);
    }
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (api, owner, accounts) = (api.clone(), owner.clone(), accounts.clone());
            tokio::spawn(async move {
                let from = accounts[i % 4];
                let to = accounts[(i * 7 + 1) % 4];
                let amount = 1 + (i as i64 * 37) % 900;
                let response = api
                    .send(
                        post("/transfers")
                            .by(&owner)
                            .key(&fresh_key())
                            .json(json!({"from_account_id": from, "to_account_id": to, "amount": amount})),
                    )
                    .await;
                (response.status, response.code().to_owned(), response.body["transfer_id"].as_str().map(str::to_owned))
            })
        })
        .collect();
    let mut transfer_ids = HashSet::new();
    for task in tasks {
        let (status, code, transfer_id) = task.await.unwrap();
        match status {
            201 => {
                transfer_ids.insert(transfer_id.unwrap().parse::<Uuid>().unwrap());
            }
            422 => assert!(code == "same_account" || code == "insufficient_funds", "{code}"),
            other => panic!("unexpected status {other} ({code})"), // 409 included: writers queue instead
        }
    }
    let mut total = 0;
    let mut sent = HashSet::new();
    let mut received = HashSet::new();
    let codec = EventCodec::current();
    for &account in &accounts {
        total += api.balance(account).await;
        for event in api.store.read_stream(account, 0).await.unwrap() {
            match codec.decode(&event.event_type, event.schema_version, &event.payload).unwrap() {
                AccountEvent::TransferSent { transfer_id, .. } => assert!(sent.insert(transfer_id)),
                AccountEvent::TransferReceived { transfer_id, .. } => {
                    assert!(received.insert(transfer_id))
                }
                _ => {}
            }
        }
    }
    assert_eq!(total, 40_000, "money was created or destroyed");
    assert_eq!(sent, transfer_ids, "each accepted transfer left the source once");
    assert_eq!(received, transfer_ids, "and reached the target once");
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() {
    // Nothing listens on port 1: connections are refused at once.
    let pool = ledgerline_shared::db::pool(&DatabaseSettings {
        url: "postgres://postgres:postgres@127.0.0.1:1/ledgerline".into(),
        pool_size: 2,
        connect_timeout: std::time::Duration::from_millis(500),
        ca_file: None,
    })
    .unwrap();
    let api = Api::with_store(Arc::new(PostgresEventStore::new(pool, StoreSettings::default())), CommandSettings::default());
    let response = api.send(post("/accounts").by("alice").json(json!({"currency": "EUR"}))).await;
    response.assert_problem(503, "service_unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
    let deposit = api.send(post(&format!("/accounts/{}/deposits", Uuid::new_v4())).by("alice").key("k").json(json!({"amount": 1}))).await;
    deposit.assert_problem(503, "service_unavailable");
}
