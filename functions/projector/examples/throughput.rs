//! Projector throughput against the DynamoDB emulator, beside the
//! emulator's raw conditional-write rate measured in the same run (issue
//! 11; results in docs/BENCHMARKS.md).
//!
//!     scripts/services.sh
//!     cargo run --release -p projector --example throughput -- [events]
//!
//! 1. **raw**: one conditional `UpdateItem` at a time (`SET version, balance
//!    IF version = previous`) on 20 account items: the cheapest write the
//!    projector could make per account.
//! 2. **projector, event by event**: `Projector::handle` on Kafka batches of
//!    100 records (20 accounts, opened then deposits), with the read model
//!    forced to write each change alone (one `TransactWriteItems` per event),
//!    as before issue 11; over the first 500 events only (see `main`).
//! 3. **projector, runs**: the same batches as deployed: each account's
//!    records in a batch written at once (`ReadModelStore::apply_run`).
//!
//! Events per second of 2 and 3 over writes per second of 1 is the ratio.
//! Everything runs one request at a time, as one projector invocation does.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::domain::{AccountCommand, Amount, OverdraftLimit, OwnerId, decide};
use ledgerline_shared::event_store::{EventMetadata, EventStore, InMemoryEventStore, RecordedEvent, StoreSettings};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, create_tables, local_client};
use ledgerline_shared::read_model::tables::TableNames;
use ledgerline_shared::read_model::{AccountView, ApplyOutcome, Change, ReadModelError, ReadModelStore, TransactionPage};
use projector::Projector;
use projector::dead_letter::InMemoryDeadLetters;
use projector::kafka_event;
use uuid::Uuid;

const ACCOUNTS: usize = 20;

fn endpoint() -> String {
    std::env::var("LEDGERLINE_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

async fn fresh_read_model() -> DynamoReadModel {
    let tables = TableNames::prefixed(&format!("bench{}", Uuid::new_v4().simple()));
    let client = local_client(&endpoint());
    create_tables(&client, &tables).await.expect("the DynamoDB emulator (scripts/services.sh)");
    DynamoReadModel::new(client, tables)
}

/// A read model that writes every change alone (the trait's default
/// `apply_run`, which refuses every run): close to what the projector did
/// before runs, plus the one read per refused run it now makes.
struct OneByOne(DynamoReadModel);

#[async_trait]
impl ReadModelStore for OneByOne {
    async fn apply(&self, change: &Change) -> Result<ApplyOutcome, ReadModelError> {
        self.0.apply(change).await
    }
    async fn account(&self, account_id: Uuid, consistent: bool) -> Result<Option<AccountView>, ReadModelError> {
        self.0.account(account_id, consistent).await
    }
    async fn accounts_of_owner(&self, owner_id: &str) -> Result<Vec<AccountView>, ReadModelError> {
        self.0.accounts_of_owner(owner_id).await
    }
    async fn transactions(
        &self,
        account_id: Uuid,
        limit: usize,
        before: Option<u64>,
        consistent: bool,
    ) -> Result<TransactionPage, ReadModelError> {
        self.0.transactions(account_id, limit, before, consistent).await
    }

    async fn last_movement_before(
        &self,
        account_id: uuid::Uuid,
        before: chrono::DateTime<chrono::Utc>,
        consistent: bool,
    ) -> Result<Option<ledgerline_shared::read_model::BalanceMark>, ReadModelError> {
        self.0.last_movement_before(account_id, before, consistent).await
    }

    async fn movements_between(
        &self,
        account_id: uuid::Uuid,
        after_version: u64,
        up_to_version: u64,
        limit: usize,
        consistent: bool,
    ) -> Result<Vec<ledgerline_shared::read_model::TransactionView>, ReadModelError> {
        self.0.movements_between(account_id, after_version, up_to_version, limit, consistent).await
    }

    async fn movements_of(
        &self,
        id: ledgerline_shared::read_model::MovementId,
    ) -> Result<Vec<(uuid::Uuid, ledgerline_shared::read_model::TransactionView)>, ReadModelError> {
        self.0.movements_of(id).await
    }
    async fn accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>, ReadModelError> {
        self.0.accounts(ids).await
    }
    async fn replace(
        &self,
        view: &AccountView,
        rows: &[ledgerline_shared::read_model::TransactionView],
        holds: &[ledgerline_shared::read_model::HoldChange],
    ) -> Result<bool, ReadModelError> {
        self.0.replace(view, rows, holds).await
    }

    async fn hold(
        &self,
        account_id: uuid::Uuid,
        hold_id: uuid::Uuid,
        consistent: bool,
    ) -> Result<Option<ledgerline_shared::read_model::HoldView>, ReadModelError> {
        self.0.hold(account_id, hold_id, consistent).await
    }

    async fn holds(
        &self,
        account_id: uuid::Uuid,
        filter: ledgerline_shared::read_model::HoldFilter,
        limit: usize,
        before: Option<uuid::Uuid>,
        consistent: bool,
    ) -> Result<ledgerline_shared::read_model::HoldPage, ReadModelError> {
        self.0.holds(account_id, filter, limit, before, consistent).await
    }

    async fn due_holds(&self, at: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>, ReadModelError> {
        self.0.due_holds(at, limit).await
    }
}

async fn raw_conditional_writes(count: usize) -> f64 {
    let read_model = fresh_read_model().await;
    let (client, table) = (read_model.client().clone(), read_model.tables().accounts.clone());
    let ids: Vec<String> = (0..ACCOUNTS).map(|_| Uuid::new_v4().to_string()).collect();
    for id in &ids {
        client
            .put_item()
            .table_name(&table)
            .item("account_id", AttributeValue::S(id.clone()))
            .item("version", AttributeValue::N("0".into()))
            .send()
            .await
            .unwrap();
    }
    let started = Instant::now();
    for n in 0..count {
        let version = n / ACCOUNTS + 1;
        client
            .update_item()
            .table_name(&table)
            .key("account_id", AttributeValue::S(ids[n % ACCOUNTS].clone()))
            .update_expression("SET #version = :version, balance = :balance")
            .condition_expression("#version = :previous")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
            .expression_attribute_values(":previous", AttributeValue::N((version - 1).to_string()))
            .expression_attribute_values(":balance", AttributeValue::N(n.to_string()))
            .send()
            .await
            .unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// `count` real events (each account opened, then deposits), as Kafka
/// batches of 100 records: accounts spread over 3 partitions, interleaved.
async fn batches(count: usize) -> Vec<KafkaEvent> {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    let repository = AccountRepository::new(store.clone(), 0);
    let metadata = || EventMetadata::now("bench", Uuid::new_v4(), "bench");
    let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    for &id in &ids {
        let open = AccountCommand::Open {
            account_id: id,
            owner_id: OwnerId::new("bench").unwrap(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: OverdraftLimit::new(0).unwrap(),
        };
        let change = repository.stage(id, None, &decide(None, &open, Utc::now()).unwrap()).unwrap();
        repository.commit(vec![change], metadata(), None).await.unwrap();
    }
    for n in ACCOUNTS..count {
        let id = ids[n % ACCOUNTS];
        let account = repository.load(id).await.unwrap().unwrap();
        let deposit = AccountCommand::Deposit { amount: Amount::new(1).unwrap(), reference: None };
        let change = repository.stage(id, Some(&account), &decide(Some(&account), &deposit, Utc::now()).unwrap()).unwrap();
        repository.commit(vec![change], metadata(), None).await.unwrap();
    }
    let events: Vec<RecordedEvent> = store.read_all(0, count).await.unwrap();
    let mut offsets = [0i64; 3];
    let records: Vec<KafkaRecord> = events
        .iter()
        .map(|event| {
            let partition = (ids.iter().position(|id| *id == event.stream_id).unwrap() % 3) as i64;
            let offset = offsets[partition as usize];
            offsets[partition as usize] += 1;
            kafka_event::envelope_record("ledgerline.account-events", partition, offset, 0, &event.envelope())
        })
        .collect();
    records.chunks(100).map(|chunk| kafka_event::event("bench", chunk.iter().cloned())).collect()
}

async fn project(read_model: Arc<dyn ReadModelStore>, batches: &[KafkaEvent]) -> f64 {
    let projector = Projector::new(read_model, None, None, Arc::new(InMemoryDeadLetters::default()));
    let started = Instant::now();
    let mut applied = 0;
    for batch in batches {
        let (response, summary) = projector.handle(batch.clone()).await;
        assert!(response.batch_item_failures.is_empty(), "{summary:?}");
        applied += summary.applied;
    }
    applied as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    ledgerline_shared::telemetry::init();
    let count: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(2_000);
    let batches = batches(count).await;
    let raw = raw_conditional_writes(count / 2).await;
    // Event by event only over the first 500 events: moto copies a table
    // for every item of a transaction, so each one gets slower as the table
    // grows, and past a few thousand rows they run into the 5 s timeout.
    let one_by_one = project(Arc::new(OneByOne(fresh_read_model().await)), &batches[..batches.len().min(5)]).await;
    let runs = project(Arc::new(fresh_read_model().await), &batches).await;
    println!("DynamoDB emulator at {}, {ACCOUNTS} accounts, {count} events in batches of 100", endpoint());
    println!("raw conditional UpdateItem:   {raw:>7.0} writes/s");
    println!("projector, event by event:    {one_by_one:>7.0} events/s = {:.2}x raw", one_by_one / raw);
    println!("projector, runs per account:  {runs:>7.0} events/s = {:.2}x raw", runs / raw);
}
