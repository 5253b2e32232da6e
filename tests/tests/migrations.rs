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
