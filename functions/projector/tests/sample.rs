//! The sample in events/projector/ is a real batch: it decodes and projects.

use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaEvent;
use ledgerline_shared::read_model::ReadModelStore;
use ledgerline_shared::read_model::memory::InMemoryReadModel;
use projector::Projector;
use projector::dead_letter::InMemoryDeadLetters;

#[tokio::test]
async fn the_sample_kafka_event_projects_cleanly() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/projector/kafka-batch.json");
    let event: KafkaEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let model = Arc::new(InMemoryReadModel::default());
    let dead_letters = Arc::new(InMemoryDeadLetters::default());
    let projector = Projector::new(model.clone(), None, None, dead_letters.clone());
    let (response, summary) = projector.handle(event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((summary.applied, summary.dead_lettered), (5, 0));
    let alice = model.accounts_of_owner("alice").await.unwrap();
    let bob = model.accounts_of_owner("bob").await.unwrap();
    assert_eq!((alice[0].balance, bob[0].balance), (750, 250));
}
