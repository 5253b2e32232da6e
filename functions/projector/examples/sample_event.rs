//! Prints a Kafka event, in the shape Lambda's event source mapping sends,
//! carrying real encoded envelopes: an account opened, a deposit, and a
//! transfer to a second account. `events/projector/kafka-batch.json` was
//! made with it:
//!
//!     cargo run -p projector --example sample_event > events/projector/kafka-batch.json

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::domain::{AccountCommand, Amount, OverdraftLimit, OwnerId, Reference, TransferCommand, decide, decide_transfer};
use ledgerline_shared::event_store::{EventMetadata, EventStore, InMemoryEventStore, StoreSettings};
use serde_json::json;
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let store = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
    let repository = AccountRepository::new(store.clone(), 0);
    let metadata = || EventMetadata::now("sample", Uuid::new_v4(), "alice");
    let mut accounts = Vec::new();
    for owner in ["alice", "bob"] {
        let id = Uuid::new_v4();
        let open = AccountCommand::Open {
            account_id: id,
            owner_id: OwnerId::new(owner).unwrap(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: OverdraftLimit::new(0).unwrap(),
        };
        let change = repository.stage(id, None, &decide(None, &open, Utc::now()).unwrap()).unwrap();
        repository.commit(vec![change], metadata(), None).await.unwrap();
        accounts.push(id);
    }
    let alice = repository.load(accounts[0]).await.unwrap().unwrap();
    let deposit = AccountCommand::Deposit { amount: Amount::new(1_000).unwrap(), reference: Some(Reference::new("salary").unwrap()) };
    let change = repository.stage(alice.id, Some(&alice), &decide(Some(&alice), &deposit, Utc::now()).unwrap()).unwrap();
    repository.commit(vec![change], metadata(), None).await.unwrap();
    let (alice, bob) = (repository.load(accounts[0]).await.unwrap().unwrap(), repository.load(accounts[1]).await.unwrap().unwrap());
    let transfer = TransferCommand {
        transfer_id: Uuid::new_v4(),
        from_account_id: alice.id,
        to_account_id: bob.id,
        amount: Amount::new(250).unwrap(),
        reference: Some(Reference::new("lunch").unwrap()),
    };
    let decision = decide_transfer(Some(&alice), Some(&bob), &transfer, Utc::now()).unwrap();
    let changes = vec![
        repository.stage(alice.id, Some(&alice), &[decision.sent]).unwrap(),
        repository.stage(bob.id, Some(&bob), &[decision.received]).unwrap(),
    ];
    repository.commit(changes, metadata(), None).await.unwrap();

    let topic = "ledgerline.account-events";
    let mut records = serde_json::Map::new();
    for (partition, account) in accounts.iter().enumerate() {
        let list: Vec<_> = store
            .read_stream(*account, 0)
            .await
            .unwrap()
            .iter()
            .enumerate()
            .map(|(offset, event)| {
                let envelope = event.envelope();
                json!({
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "timestamp": envelope.metadata.recorded_at.timestamp_millis(),
                    "timestampType": "CREATE_TIME",
                    "key": STANDARD.encode(account.to_string()),
                    "value": STANDARD.encode(envelope.encode()),
                    "headers": envelope.headers().iter().map(|(k, v)| json!({ k: v.bytes().collect::<Vec<_>>() })).collect::<Vec<_>>(),
                })
            })
            .collect();
        records.insert(format!("{topic}-{partition}"), json!(list));
    }
    let event = json!({
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": "127.0.0.1:9092",
        "records": records,
    });
    println!("{}", serde_json::to_string_pretty(&event).unwrap());
}
