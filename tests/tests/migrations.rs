//! The schema migrations, applied to a brand-new database: they create every
//! table, and running them again changes nothing.

use ledgerline_shared::migrate;
use ledgerline_tests::services::{FreshDatabase, connect};

/// The migration names refinery should apply: every `V<n>__<name>.sql` in
/// `migrations/`, in version order.
fn expected_migrations() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut versions: Vec<(u32, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let (version, name) = file.strip_prefix('V')?.strip_suffix(".sql")?.split_once("__")?;
            Some((version.parse().ok()?, name.to_owned()))
        })
        .collect();
    versions.sort();
    versions.into_iter().map(|(_, name)| name).collect()
}

#[tokio::test]
async fn migrations_build_the_schema_on_an_empty_database_and_rerun_as_a_no_op() {
    let database = FreshDatabase::create("migration").await;
    let url = database.url.clone();

    let first = migrate::run(&url).await.unwrap();
    assert_eq!(first, expected_migrations());
    assert_eq!(first[0], "event_store");
    let second = migrate::run(&url).await.unwrap();
    assert!(second.is_empty(), "nothing left to apply, got {second:?}");

    let client = connect(&url).await;
    let rows =
        client.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[]).await.unwrap();
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for table in ["events", "idempotency_keys", "outbox", "read_model_progress", "refinery_schema_history", "snapshots", "streams"] {
        assert!(tables.iter().any(|t| t == table), "{table} missing from {tables:?}");
    }
    drop(client);
    database.drop_database().await;
}

#[tokio::test]
async fn two_processes_migrating_at_once_take_turns() {
    let database = FreshDatabase::create("migration").await;
    let url = database.url.clone();

    let (a, b) = tokio::join!(migrate::run(&url), migrate::run(&url));
    let mut applied = a.unwrap();
    applied.extend(b.unwrap());
    applied.sort();
    let mut expected = expected_migrations();
    expected.sort();
    assert_eq!(applied, expected, "each migration applied exactly once");
    database.drop_database().await;
}

/// Counts the rows of `events` read within the current transaction so far.
async fn events_rows_read(tx: &tokio_postgres::Transaction<'_>) -> i64 {
    let row = tx
        .query_one(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE relname = 'events'",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Issue 25: counting an owner's open accounts (on every open, under the
/// per-owner limit) reads one index entry per account they opened, not
/// every event of those accounts. `LEDGERLINE_OPEN_COUNT_EVENTS` sets the
/// events per account (default 1,000; docs/BENCHMARKS.md ran 100,000), and
/// `--nocapture` prints both plans.
#[tokio::test]
async fn counting_an_owners_open_accounts_reads_per_account_not_per_event() {
    let events_per_account: i64 = std::env::var("LEDGERLINE_OPEN_COUNT_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let (accounts, closed) = (100_i64, 10_i64);
    let database = FreshDatabase::create("open_count").await;
    migrate::run(&database.url).await.unwrap();
    let mut client = connect(&database.url).await;
    // An owner with 100 accounts of `events_per_account` events, 10 of them closed.
    client
        .batch_execute(&format!(
            "INSERT INTO streams (stream_id, version) SELECT gen_random_uuid(), {events_per_account} FROM generate_series(1, {accounts});
             INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at)
             SELECT s.stream_id, v, gen_random_uuid(), CASE WHEN v = 1 THEN 'AccountOpened' ELSE 'MoneyDeposited' END, 1, '\\x00',
                    'seed', gen_random_uuid(), 'heavy', now()
             FROM streams s, generate_series(1, {events_per_account}) v;
             WITH shut AS (SELECT stream_id FROM streams ORDER BY stream_id LIMIT {closed})
             INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at)
             SELECT stream_id, {events_per_account} + 1, gen_random_uuid(), 'AccountClosed', 1, '\\x00', 'seed', gen_random_uuid(), 'heavy', now()
             FROM shut;
             ANALYZE events;"
        ))
        .await
        .unwrap();

    let tx = client.transaction().await.unwrap();
    let before = events_rows_read(&tx).await;
    let open: i64 = tx.query_one("SELECT ledgerline_open_streams('heavy', 'AccountClosed')", &[]).await.unwrap().get(0);
    let read = events_rows_read(&tx).await - before;
    assert_eq!(open, accounts - closed);
    assert!(read <= 3 * accounts, "the count read {read} rows of events for {accounts} accounts");

    // V7's count, the same statement without the closings index (dropped
    // inside this transaction only): every event of every account.
    let count = "SELECT count(*) FROM events o WHERE o.actor = 'heavy' AND o.version = 1 \
                 AND NOT EXISTS (SELECT 1 FROM events c WHERE c.stream_id = o.stream_id AND c.event_type = 'AccountClosed')";
    tx.batch_execute("DROP INDEX events_closing_idx").await.unwrap();
    let before = events_rows_read(&tx).await;
    let v7_open: i64 = tx.query_one(count, &[]).await.unwrap().get(0);
    let v7_read = events_rows_read(&tx).await - before;
    assert_eq!(v7_open, open);
    // (A parallel scan's workers count in their own statistics, so this
    // sees only the leader's share of V7's reads: a lower bound.)
    assert!(v7_read > 10 * read.max(1), "V7's count read {v7_read} rows, V9's {read}");
    let v7_plan = explain(&tx, count).await;
    tx.rollback().await.unwrap();

    let tx = client.transaction().await.unwrap();
    let plan = explain(&tx, count).await;
    assert!(plan.contains("events_closing_idx"), "the closings index serves the count:\n{plan}");
    println!("V7:\n{v7_plan}\n\nV9 (the statement ledgerline_open_streams runs):\n{plan}");
    println!("rows of events read: V9 {read}, V7 {v7_read} ({accounts} accounts of {events_per_account} events)");
    drop(tx);
    drop(client);
    database.drop_database().await;
}

async fn explain(tx: &tokio_postgres::Transaction<'_>, statement: &str) -> String {
    let rows = tx.query(&format!("EXPLAIN (ANALYZE, BUFFERS) {statement}"), &[]).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
}
