//! Prints a Kafka event, in the shape Lambda's event source mapping sends,
//! carrying real encoded envelopes: an account opened, a deposit, and a
//! transfer to a second account. `events/projector/kafka-batch.json` was
//! made with it:
//!
//!     cargo run -p projector --example sample_event > events/projector/kafka-batch.json

use std::sync::Arc;

use chrono::Utc;
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::domain::{AccountCommand, Amount, OverdraftLimit, OwnerId, Reference, TransferCommand, decide, decide_transfer};
use ledgerline_shared::event_store::{EventMetadata, EventStore, InMemoryEventStore, StoreSettings};
use projector::kafka_event;
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

    let mut records = Vec::new();
    for (partition, account) in accounts.iter().enumerate() {
        for (offset, event) in store.read_stream(*account, 0).await.unwrap().iter().enumerate() {
            let envelope = event.envelope();
            let at = envelope.metadata.recorded_at.timestamp_millis();
            records.push(kafka_event::envelope_record("ledgerline.account-events", partition as i64, offset as i64, at, &envelope));
        }
    }
    let event = kafka_event::lambda_json(&kafka_event::event("127.0.0.1:9092", records));
    println!("{}", serde_json::to_string_pretty(&event).unwrap());
}
