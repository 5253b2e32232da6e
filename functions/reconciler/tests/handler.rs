//! The reconciler's handler on `events/scheduled.json`, with in-memory
//! stores (the real PostgreSQL and DynamoDB adapters are exercised by
//! `functions/projector/tests/reconcile.rs` and the chaos test).

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::domain::{AccountCommand, Amount, OverdraftLimit, OwnerId, decide};
use ledgerline_shared::event_store::{EventMetadata, EventStore, InMemoryEventStore, StoreSettings};
use ledgerline_shared::read_model::ReadModelStore;
use ledgerline_shared::read_model::memory::InMemoryReadModel;
use ledgerline_shared::reconcile::{InMemoryProgress, ReconcileSettings, Reconciler};
use uuid::Uuid;

fn scheduled() -> lambda_runtime::LambdaEvent<EventBridgeEvent> {
    let payload: EventBridgeEvent = serde_json::from_str(include_str!("../../../events/scheduled.json")).expect("the sample parses");
    let mut context = lambda_runtime::Context::default();
    let in_a_minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    context.deadline = in_a_minute;
    lambda_runtime::LambdaEvent::new(payload, context)
}

/// An account opened and funded on the write side only.
async fn account_on_the_write_side(store: Arc<dyn EventStore>) -> Uuid {
    let repository = AccountRepository::new(store, 0);
    let account = Uuid::new_v4();
    let open = AccountCommand::Open {
        account_id: account,
        owner_id: OwnerId::new("rita").unwrap(),
        currency: "EUR".parse().unwrap(),
        overdraft_limit: OverdraftLimit::new(0).unwrap(),
    };
    let change = repository.stage(account, None, &decide(None, &open, chrono::Utc::now()).unwrap()).unwrap();
    repository.commit(vec![change], EventMetadata::now("test", Uuid::new_v4(), "rita"), None).await.unwrap();
    let before = repository.load(account).await.unwrap().unwrap();
    let deposit = AccountCommand::Deposit { amount: Amount::new(30).unwrap(), reference: None };
    let change = repository.stage(account, Some(&before), &decide(Some(&before), &deposit, chrono::Utc::now()).unwrap()).unwrap();
    repository.commit(vec![change], EventMetadata::now("test", Uuid::new_v4(), "rita"), None).await.unwrap();
    account
}

fn in_memory_reconciler(store: Arc<dyn EventStore>, read_model: Arc<InMemoryReadModel>) -> Reconciler {
    Reconciler {
        event_store: store,
        read_model,
        cache: None,
        progress: Arc::new(InMemoryProgress::default()),
        settings: ReconcileSettings::default(),
    }
}

#[tokio::test]
async fn a_scheduled_run_repairs_what_is_behind_and_reports_it() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    let read_model = Arc::new(InMemoryReadModel::default());
    let account = account_on_the_write_side(store.clone()).await;
    let reconciler = in_memory_reconciler(store.clone(), read_model.clone());

    let report = reconciler::handle(&reconciler, store.as_ref(), scheduled()).await.unwrap();
    assert_eq!((report.pass.behind, report.pass.repaired, report.pass.events_applied), (1, 1, 2), "{report:?}");
    assert_eq!(report.pass.repaired_accounts, vec![account]);
    let view = read_model.account(account, true).await.unwrap().unwrap();
    assert_eq!((view.version, view.balance), (2, 30));
    // The answer is what `ledgerline serve` prints and logs.
    let answer = serde_json::to_value(&report).unwrap();
    assert_eq!(answer["repaired"], 1);
    assert_eq!(answer["idempotency_records_purged"], 0);

    let again = reconciler::handle(&reconciler, store.as_ref(), scheduled()).await.unwrap();
    assert_eq!((again.pass.behind, again.pass.repaired), (0, 0), "{again:?}");
}

#[tokio::test]
async fn an_account_that_cannot_be_repaired_is_reported_and_the_others_still_are() {
    use ledgerline_shared::event_store::{AppendBatch, NewEvent, StreamAppend};
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    let read_model = Arc::new(InMemoryReadModel::default());
    // An event that no longer decodes (say, written by a newer release).
    let broken = Uuid::from_u128(1);
    let garbage = NewEvent { event_id: Uuid::new_v4(), event_type: "AccountOpened".into(), schema_version: 99, payload: vec![0xff; 4] };
    store
        .append(AppendBatch {
            streams: vec![StreamAppend { stream_id: broken, expected_version: 0, events: vec![garbage], snapshot: None }],
            metadata: EventMetadata::now("test", Uuid::new_v4(), "rita"),
            idempotency: None,
            open_limit: None,
        })
        .await
        .unwrap();
    let fine = account_on_the_write_side(store.clone()).await;
    let reconciler = in_memory_reconciler(store.clone(), read_model.clone());

    let report = reconciler::handle(&reconciler, store.as_ref(), scheduled()).await.expect("one bad account does not fail the pass");
    assert_eq!((report.pass.failed, report.pass.repaired), (1, 1), "{report:?}");
    assert_eq!(report.pass.failed_accounts[0].0, broken);
    assert_eq!(report.pass.repaired_accounts, vec![fine]);
    assert_eq!(read_model.account(fine, true).await.unwrap().unwrap().version, 2);
}
