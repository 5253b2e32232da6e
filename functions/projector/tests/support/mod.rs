//! Test harness: real PostgreSQL (the event store, for gap filling and
//! rebuilds), the DynamoDB emulator, Redis, and Kafka events built as JSON in
//! the shape Lambda's event source mapping sends.
#![allow(dead_code)]

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::domain::{AccountCommand, Amount, OverdraftLimit, OwnerId, TransferCommand, decide, decide_transfer};
use ledgerline_shared::event_store::{EventMetadata, EventStore, PostgresEventStore, RecordedEvent, StoreSettings};
use ledgerline_shared::read_model::dynamo::{DynamoReadModel, create_tables, local_client};
use ledgerline_shared::read_model::tables::TableNames;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const TOPIC: &str = "ledgerline.account-events";

pub use ledgerline_tests::services::{database_url, dynamodb_endpoint};

static MIGRATED: OnceCell<()> = OnceCell::const_new();

/// The shared test event store, migrated.
pub async fn event_store() -> Arc<PostgresEventStore> {
    MIGRATED
        .get_or_init(|| async {
            ledgerline_shared::migrate::run(&database_url()).await.expect("migrations");
        })
        .await;
    store_at(&database_url())
}

pub fn store_at(url: &str) -> Arc<PostgresEventStore> {
    let pool = ledgerline_shared::db::pool(&DatabaseSettings {
        url: url.to_owned(),
        pool_size: 8,
        connect_timeout: std::time::Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap();
    Arc::new(PostgresEventStore::new(pool, StoreSettings::default()))
}

/// A new database of its own, migrated: for tests that read the whole log.
pub async fn fresh_database() -> String {
    let database = ledgerline_tests::services::FreshDatabase::create("projector").await;
    ledgerline_shared::migrate::run(&database.url).await.unwrap();
    database.url
}

/// Read-model tables of its own.
pub async fn read_model() -> Arc<DynamoReadModel> {
    let tables = TableNames::prefixed(&format!("p{}", Uuid::new_v4().simple()));
    let client = local_client(&dynamodb_endpoint());
    create_tables(&client, &tables).await.unwrap_or_else(|e| panic!("DynamoDB emulator at {}: {e}", dynamodb_endpoint()));
    Arc::new(DynamoReadModel::new(client, tables))
}

/// Runs commands through the domain and the real event store, as the
/// command API does, so the projector sees real events.
pub struct Ledger {
    pub repository: AccountRepository,
}

impl Ledger {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { repository: AccountRepository::new(store, 0) }
    }

    async fn run(&self, account: Uuid, command: AccountCommand) {
        let before = self.repository.load(account).await.unwrap();
        let events = decide(before.as_ref(), &command, Utc::now()).unwrap();
        let change = self.repository.stage(account, before.as_ref(), &events).unwrap();
        self.repository.commit(vec![change], EventMetadata::now("test", Uuid::new_v4(), "tester"), None).await.unwrap();
    }

    pub async fn open(&self, owner: &str) -> Uuid {
        let account_id = Uuid::new_v4();
        let command = AccountCommand::Open {
            account_id,
            owner_id: OwnerId::new(owner).unwrap(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: OverdraftLimit::new(0).unwrap(),
        };
        self.run(account_id, command).await;
        account_id
    }

    pub async fn deposit(&self, account: Uuid, amount: i64) {
        self.run(account, AccountCommand::Deposit { amount: Amount::new(amount).unwrap(), reference: None }).await;
    }

    pub async fn withdraw(&self, account: Uuid, amount: i64) {
        self.run(account, AccountCommand::Withdraw { amount: Amount::new(amount).unwrap(), reference: None }).await;
    }

    /// Places a hold of `amount` living `seconds`; returns its id.
    pub async fn place_hold(&self, account: Uuid, amount: i64, seconds: i64) -> Uuid {
        let hold_id = Uuid::now_v7();
        let lifetime = ledgerline_shared::domain::HoldLifetime::new(seconds).unwrap();
        self.run(account, AccountCommand::PlaceHold { hold_id, amount: Amount::new(amount).unwrap(), reference: None, lifetime }).await;
        hold_id
    }

    pub async fn freeze(&self, account: Uuid) {
        self.run(account, AccountCommand::Freeze).await;
    }

    pub async fn transfer(&self, from: Uuid, to: Uuid, amount: i64) {
        let (a, b) = (self.repository.load(from).await.unwrap().unwrap(), self.repository.load(to).await.unwrap().unwrap());
        let command = TransferCommand {
            transfer_id: Uuid::new_v4(),
            from_account_id: from,
            to_account_id: to,
            amount: Amount::new(amount).unwrap(),
            reference: Some(ledgerline_shared::domain::Reference::new("test transfer").unwrap()),
        };
        let decision = decide_transfer(Some(&a), Some(&b), &command, Utc::now()).unwrap();
        let changes = vec![
            self.repository.stage(from, Some(&a), &[decision.sent]).unwrap(),
            self.repository.stage(to, Some(&b), &[decision.received]).unwrap(),
        ];
        self.repository.commit(changes, EventMetadata::now("test", Uuid::new_v4(), "tester"), None).await.unwrap();
    }

    pub async fn events(&self, account: Uuid) -> Vec<RecordedEvent> {
        self.repository.store().read_stream(account, 0).await.unwrap()
    }
}

/// One Kafka record as Lambda delivers it: key and value base64, headers as
/// lists of byte values.
pub fn record_json(partition: i64, offset: i64, event: &RecordedEvent) -> Value {
    let record = projector::kafka_event::envelope_record(TOPIC, partition, offset, 1_795_564_800_000, &event.envelope());
    serde_json::to_value(record).expect("a record serializes")
}

pub fn raw_record_json(partition: i64, offset: i64, value: Option<&str>) -> Value {
    json!({
        "topic": TOPIC, "partition": partition, "offset": offset, "timestamp": 1_795_564_800_000i64,
        "timestampType": "CREATE_TIME", "key": STANDARD.encode("poison"), "value": value, "headers": [],
    })
}

/// A `KafkaEvent` from records, grouped by partition under `<topic>-<partition>`.
pub fn kafka_event(records: Vec<Value>) -> aws_lambda_events::event::kafka::KafkaEvent {
    let records = records.into_iter().map(|record| serde_json::from_value(record).expect("the shape Lambda sends"));
    projector::kafka_event::event("127.0.0.1:9092", records)
}

/// Records for events, all in one partition, offsets from `first_offset`.
pub fn in_partition(partition: i64, first_offset: i64, events: &[RecordedEvent]) -> Vec<Value> {
    events.iter().enumerate().map(|(i, e)| record_json(partition, first_offset + i as i64, e)).collect()
}

/// A redis-server of the test's own, so it can be stopped without
/// disturbing other tests.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Drops a database made by [`fresh_database`].
pub async fn drop_database(url: &str) {
    let (server, name) = url.rsplit_once('/').unwrap();
    let (admin, connection) = tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    admin.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[]).await.unwrap();
}
