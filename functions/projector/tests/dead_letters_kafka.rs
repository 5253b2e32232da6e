//! Dead letters reach a real Kafka topic (the tansu broker that
//! scripts/services.sh starts), readable with their reason.

use std::time::Duration;

use ledgerline_shared::config::Env;
use ledgerline_shared::kafka::ReplaceableProducer;
use projector::dead_letter::{DeadLetter, DeadLetterSink, DeadLetterSource, KafkaDeadLetters};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

fn brokers() -> String {
    std::env::var("LEDGERLINE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

#[tokio::test]
async fn a_dead_letter_lands_in_the_topic_with_its_reason_and_original_value() {
    let topic = format!("test.projector.dlq.{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let created = admin.create_topics(&[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))], &options).await.unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");

    let config = projector::config::ProjectorConfig::read(&Env::from_pairs([("LEDGERLINE_KAFKA_BROKERS", brokers())])).unwrap();
    let producer = ReplaceableProducer::new(config.producer_config()).unwrap();
    let sink = KafkaDeadLetters::new(producer, topic.clone(), Duration::from_secs(10));
    let letter = DeadLetter {
        error: "the value is not an event envelope".into(),
        source: DeadLetterSource::KafkaRecord {
            source_topic: "ledgerline.account-events".into(),
            partition: 2,
            offset: 77,
            key: Some("account-key".into()),
            value: Some("bm90IGFuIGVudmVsb3Bl".into()),
        },
    };
    sink.send(&letter).await.unwrap();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let message = loop {
        assert!(std::time::Instant::now() < deadline, "no dead letter arrived");
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            break result.unwrap().detach();
        }
    };
    let received = DeadLetter::from_json(message.payload().unwrap()).unwrap();
    assert_eq!(received, letter);
    assert_eq!(message.key(), Some(&b"account-key"[..]));
    let reason = message.headers().unwrap().iter().find(|h| h.key == "dead_letter_reason").and_then(|h| h.value).unwrap();
    assert_eq!(reason, b"the value is not an event envelope");
}
