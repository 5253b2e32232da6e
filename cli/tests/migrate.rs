//! `ledgerline migrate`, run as a user would run it.

use std::process::Command;

use tokio_postgres::NoTls;

fn server_url() -> String {
    let url = std::env::var("LEDGERLINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test".into());
    url.rsplit_once('/').map(|(server, _)| server.to_owned()).unwrap_or(url)
}

fn ledgerline(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerline")).args(args).env("DATABASE_URL", database_url).output().unwrap()
}

#[tokio::test]
async fn migrate_applies_the_schema_once_and_then_reports_it_up_to_date() {
    let (admin, connection) = tokio_postgres::connect(&format!("{}/postgres", server_url()), NoTls).await.unwrap();
    tokio::spawn(connection);
    let name = format!("ledgerline_cli_{}", uuid::Uuid::new_v4().simple());
    admin.execute(&format!("CREATE DATABASE {name}"), &[]).await.unwrap();
    let url = format!("{}/{name}", server_url());

    let first = ledgerline(&["migrate"], &url);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied event_store"));
    let second = ledgerline(&["migrate"], &url);
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), "schema is up to date");
    admin.execute(&format!("DROP DATABASE {name} WITH (FORCE)"), &[]).await.unwrap();
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
