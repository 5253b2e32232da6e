//! `ledgerline migrate`, run as a user would run it.

use std::process::Command;

use ledgerline_tests::services::FreshDatabase;

fn ledgerline(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerline")).args(args).env("DATABASE_URL", database_url).output().unwrap()
}

#[tokio::test]
async fn migrate_applies_the_schema_once_and_then_reports_it_up_to_date() {
    let database = FreshDatabase::create("cli").await;
    let url = database.url.clone();

    let first = ledgerline(&["migrate"], &url);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied event_store"));
    let second = ledgerline(&["migrate"], &url);
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), "schema is up to date");
    database.drop_database().await;
}

#[test]
fn an_unreachable_database_is_a_clear_error_and_a_failing_exit() {
    let output = ledgerline(&["migrate"], "postgres://postgres:hunter2@127.0.0.1:1/nowhere");
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("is PostgreSQL up?"), "{message}");
    assert!(!message.contains("hunter2"), "the password leaked: {message}");
}

#[test]
fn an_unknown_subcommand_is_refused_with_usage() {
    let output = ledgerline(&["fly"], "postgres://unused");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage"));
}
