//! How long a freshly created producer takes to deliver its first record:
//! what a cold-started publisher waits before anything reaches Kafka
//! (docs/BENCHMARKS.md, "Lambda binaries").
//!
//!   scripts/services.sh
//!   cargo run --release -p outbox-publisher --example first_delivery [-- PRODUCERS]
//!
//! PRODUCERS times (20 by default), creates a producer with the publisher's
//! own settings (`kafka::producer_config`: idempotent) and sends one record
//! to this run's own topic, timing creation to acknowledgement; then the
//! same with
//! `enable.idempotence=false`, for contrast. librdkafka's idempotent
//! producer must get a producer id from a broker before it sends, and asks
//! again on a fixed 500 ms timer when no broker connection is up yet.

use std::time::{Duration, Instant};

use outbox_publisher::config::KafkaSettings;
use outbox_publisher::kafka::{ensure_topics, producer_config};
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

async fn first_deliveries(brokers: &str, topic: &str, producers: usize, idempotent: bool) -> Vec<Duration> {
    let settings = KafkaSettings {
        brokers: brokers.into(),
        message_timeout: Duration::from_secs(30),
        linger: Duration::from_millis(5),
        extra: Vec::new(),
    };
    let mut took = Vec::new();
    for _ in 0..producers {
        let started = Instant::now();
        let mut config = producer_config(&settings);
        if !idempotent {
            config.set("enable.idempotence", "false");
        }
        let producer: FutureProducer = config.create().expect("a producer");
        let record = FutureRecord::to(topic).key("first").payload("first");
        producer.send(record, Duration::from_secs(30)).await.map_err(|(error, _)| error).expect("delivered");
        took.push(started.elapsed());
    }
    took.sort();
    took
}

#[tokio::main]
async fn main() {
    let producers: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let brokers = std::env::var("LEDGERLINE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = format!("bench.first-delivery.{}", Uuid::new_v4().simple());
    ensure_topics(&brokers, &[&topic], 1, 1).await.expect("create the topic");
    for idempotent in [true, false] {
        let took = first_deliveries(&brokers, &topic, producers, idempotent).await;
        let over = took.iter().filter(|t| **t >= Duration::from_millis(400)).count();
        println!(
            "idempotent {idempotent:<5}  {producers} fresh producers: first delivery p50 {:?}, max {:?}, {over} at 400 ms or more",
            took[took.len() / 2],
            took[took.len() - 1]
        );
    }
}
