//! `ledgerline rebuild-projections` and `ledgerline reconcile` as an
//! operator runs them: against a database of its own and DynamoDB tables of
//! its own.

use std::process::Command;
use std::sync::Arc;

use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::domain::{AccountCommand, Amount, OverdraftLimit, OwnerId, decide};
use ledgerline_shared::event_store::{EventMetadata, PostgresEventStore, StoreSettings};
use ledgerline_shared::read_model::ReadModelStore;
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, create_tables, local_client};
use ledgerline_shared::read_model::tables::TableNames;
use ledgerline_tests::services::{FreshDatabase, dynamodb_endpoint};
use uuid::Uuid;

/// `ledgerline ARGS` against `url` and `tables`; (success, stdout, stderr).
fn ledgerline(args: &[&str], url: &str, tables: &TableNames) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("LEDGERLINE_ACCOUNTS_TABLE", &tables.accounts)
        .env("LEDGERLINE_TRANSACTIONS_TABLE", &tables.transactions)
        // No Redis here: the cache refresh fails, which is reported, not fatal.
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn rebuild_projections_replays_the_log_into_the_tables_and_reconcile_repairs_a_stale_account() {
    let database = FreshDatabase::create("cli").await;
    let url = database.url.clone();
    ledgerline_shared::migrate::run(&url).await.unwrap();

    // Two events for one account.
    let pool = ledgerline_shared::db::pool(&DatabaseSettings {
        url: url.clone(),
        pool_size: 2,
        connect_timeout: std::time::Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap();
    let repository = AccountRepository::new(Arc::new(PostgresEventStore::new(pool, StoreSettings::default())), 0);
    let account = Uuid::new_v4();
    let open = AccountCommand::Open {
        account_id: account,
        owner_id: OwnerId::new("olga").unwrap(),
        currency: "EUR".parse().unwrap(),
        overdraft_limit: OverdraftLimit::new(0).unwrap(),
    };
    let change = repository.stage(account, None, &decide(None, &open, chrono::Utc::now()).unwrap()).unwrap();
    repository.commit(vec![change], EventMetadata::now("cli-test", Uuid::new_v4(), "olga"), None).await.unwrap();
    let before = repository.load(account).await.unwrap().unwrap();
    let deposit = AccountCommand::Deposit { amount: Amount::new(42).unwrap(), reference: None };
    let change = repository.stage(account, Some(&before), &decide(Some(&before), &deposit, chrono::Utc::now()).unwrap()).unwrap();
    repository.commit(vec![change], EventMetadata::now("cli-test", Uuid::new_v4(), "olga"), None).await.unwrap();

    let tables = TableNames::prefixed(&format!("cli{}", Uuid::new_v4().simple()));
    let client = local_client(&dynamodb_endpoint());
    create_tables(&client, &tables).await.unwrap();

    let (ok, stdout, stderr) = ledgerline(&["rebuild-projections", "--fresh"], &url, &tables);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rebuilt 1 accounts from 2 events: 1 written"), "{stdout}");

    let model = DynamoReadModel::new(client, tables.clone());
    let view = model.account(account, true).await.unwrap().expect("the account was projected");
    assert_eq!((view.balance, view.version, view.owner_id.as_str()), (42, 2, "olga"));

    // Made stale by hand (the account item put back to version 1), then
    // `ledgerline reconcile` finds it, repairs it and says so.
    let stale = ledgerline_shared::read_model::AccountView { version: 1, balance: 0, ..view.clone() };
    model
        .client()
        .put_item()
        .table_name(&tables.accounts)
        .set_item(Some(ledgerline_shared::read_model::dynamo::account_item(&stale)))
        .send()
        .await
        .unwrap();
    assert_eq!(model.account(account, true).await.unwrap().unwrap().version, 1);
    let (ok, stdout, stderr) = ledgerline(&["reconcile"], &url, &tables);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 behind, 1 repaired with 1 events"), "{stdout}");
    assert!(stdout.contains(&format!("repaired {account}")), "{stdout}");
    assert_eq!(model.account(account, true).await.unwrap().unwrap(), view);
    // Nothing left to do.
    let (ok, stdout, _) = ledgerline(&["reconcile", "--full"], &url, &tables);
    assert!(ok && stdout.contains("checked 1 accounts") && stdout.contains("nothing to repair"), "{stdout}");
    database.drop_database().await;
}

#[test]
fn reconcile_without_a_database_fails_clearly() {
    let tables = TableNames::prefixed("nowhere");
    let (ok, _, stderr) = ledgerline(&["reconcile"], "postgres://postgres:postgres@127.0.0.1:1/nowhere", &tables);
    assert!(!ok);
    assert!(stderr.contains("reconciling the read models"), "{stderr}");
}

#[test]
fn rebuild_projections_without_a_database_fails_clearly() {
    let output = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
        .args(["rebuild-projections"])
        .env("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:1/nowhere")
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("rebuilding the read models"), "{}", String::from_utf8_lossy(&output.stderr));
}
