//! The event source mapping against the real broker (tansu on 9092, or
//! `LEDGERLINE_TEST_KAFKA_BROKERS`; topics and groups of the test's own,
//! never deleted) and a fake Lambda Invoke API that answers from a script:
//! successes, partial batch failures and errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use super::*;

use ledgerline_tests::services::kafka_brokers as brokers;

/// What the fake function saw in one invocation: partition and value per record.
#[derive(Debug, Clone)]
struct Invocation {
    partition: i32,
    offsets: Vec<i64>,
    values: Vec<String>,
}

type Script = dyn Fn(&Invocation, usize) -> (StatusCode, Value) + Send + Sync;

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Invocation>>>,
    script: Arc<Script>,
}

async fn invocation(State(fake): State<Fake>, Path(function): Path<String>, Json(event): Json<Value>) -> impl IntoResponse {
    assert_eq!(function, "projector");
    // The event must be what the projector (aws_lambda_events) parses.
    let parsed: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_value(event.clone()).expect("a KafkaEvent");
    assert_eq!(parsed.records.len(), 1, "one partition per batch");
    let (key, records) = parsed.records.into_iter().next().unwrap();
    let partition = records[0].partition as i32;
    assert_eq!(key, partition_key(records[0].topic.as_deref().unwrap(), partition));
    let values = records.iter().map(|r| String::from_utf8(STANDARD.decode(r.value.as_deref().unwrap()).unwrap()).unwrap()).collect();
    for record in &records {
        let header = record.headers.iter().find_map(|h| h.get("origin")).expect("the origin header");
        assert_eq!(header.iter().map(|b| *b as u8).collect::<Vec<_>>(), b"test".to_vec());
    }
    let call = Invocation { partition, offsets: records.iter().map(|r| r.offset).collect(), values };
    let (status, answer) = {
        let mut seen = fake.seen.lock().unwrap();
        seen.push(call.clone());
        let count = seen.iter().filter(|c| c.partition == call.partition).count();
        (fake.script)(&call, count)
    };
    (status, Json(answer))
}

async fn fake_lambda(script: Arc<Script>) -> (String, Arc<Mutex<Vec<Invocation>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake { seen: seen.clone(), script };
    let app = axum::Router::new().route("/2015-03-31/functions/{function}/invocations", axum::routing::post(invocation)).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen)
}

async fn produce(brokers: &str, topic: &str, partition: i32, values: &[String]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for value in values {
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header { key: "origin", value: Some("test") });
        producer
            .send(FutureRecord::to(topic).partition(partition).key("k").payload(value).headers(headers), Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

fn committed(brokers: &str, topic: &str, group: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition(topic, p);
    }
    let offsets = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    offsets.elements().iter().filter_map(|e| if let Offset::Offset(n) = e.offset() { Some((e.partition(), n)) } else { None }).collect()
}

/// Waits for `check` to hold, up to `limit`.
async fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    ledgerline_tests::services::eventually(what, limit, || std::future::ready(check())).await
}

fn values(partition: i32, range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("p{partition}-{i}")).collect()
}

/// What the fake function accepted, per partition, in delivery order.
fn accepted(seen: &[Invocation], answers: &dyn Fn(&Invocation) -> Option<i64>) -> BTreeMap<i32, Vec<i64>> {
    let mut result: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for call in seen {
        if let Some(limit) = answers(call) {
            result.entry(call.partition).or_default().extend(call.offsets.iter().filter(|o| **o < limit));
        }
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_retries_partial_failures_the_failure_file_and_commits() {
    let brokers = brokers();
    let topic = format!("test.mapping.{}", uuid::Uuid::new_v4().simple());
    let group = format!("test-mapping-{}", uuid::Uuid::new_v4().simple());
    outbox_publisher::kafka::ensure_topics(&brokers, &[&topic], 3, 1)
        .await
        .unwrap_or_else(|e| panic!("create {topic} on {brokers} ({e}); start the services with scripts/services.sh"));
    for p in 0..3 {
        produce(&brokers, &topic, p, &values(p, 0..5)).await;
    }

    // Partition 0: the first invocation errors (HTTP 500), then all succeed.
    // Partition 1: the first batch that holds offset 2 reports it as failed, once.
    // Partition 2: offset 3 is reported as failed every time (a poison record).
    let failed_once_p1 = Arc::new(Mutex::new(false));
    let script: Arc<Script> = {
        let failed_once_p1 = failed_once_p1.clone();
        let topic = topic.clone();
        Arc::new(move |call: &Invocation, count: usize| {
            let failure = |offset: i64| json!({"batchItemFailures": [{"itemIdentifier": {"partition": partition_key(&topic, call.partition), "offset": offset}}]});
            match call.partition {
                0 if count == 1 => (StatusCode::INTERNAL_SERVER_ERROR, json!({"errorType": "Boom", "errorMessage": "first call"})),
                1 if call.offsets.contains(&2) && !std::mem::replace(&mut *failed_once_p1.lock().unwrap(), true) => {
                    (StatusCode::OK, failure(2))
                }
                2 if call.offsets.contains(&3) => (StatusCode::OK, failure(3)),
                _ => (StatusCode::OK, json!({"batchItemFailures": []})),
            }
        })
    };
    let (endpoint, seen) = fake_lambda(script).await;
    let failure_file = std::env::temp_dir().join(format!("ledgerline-mapping-{}.jsonl", uuid::Uuid::new_v4().simple()));
    let settings = MappingSettings {
        group_id: group.clone(),
        batch_window: Duration::from_millis(300),
        max_retries: 2,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..MappingSettings::local(&brokers, &topic, failure_file.clone())
    };
    let mapping = tokio::spawn(run(settings.clone(), LambdaInvoker::new(endpoint.clone(), Duration::from_secs(10))));

    // Everything is committed: 5 per partition, partition 2 past its poison batch.
    let expected: BTreeMap<i32, i64> = [(0, 5), (1, 5), (2, 5)].into();
    let mut last = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while last != expected {
        assert!(Instant::now() < deadline, "offsets committed: {last:?}, invocations: {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = committed(&brokers, &topic, &group);
    }
    let calls = seen.lock().unwrap().clone();

    // Each invocation carries one partition's records, in offset order, contiguous.
    for call in &calls {
        assert!(call.offsets.windows(2).all(|w| w[1] == w[0] + 1), "not contiguous: {call:?}");
        assert_eq!(call.values, call.offsets.iter().map(|o| format!("p{}-{o}", call.partition)).collect::<Vec<_>>());
    }
    let of = |p: i32| calls.iter().filter(|c| c.partition == p).collect::<Vec<_>>();

    // Partition 0: the errored batch came again, from the same first offset.
    let p0 = of(0);
    assert!(p0.len() >= 2, "{p0:?}");
    assert_eq!(p0[1].offsets[0], p0[0].offsets[0], "a failed invocation is retried from its first record");

    // Partition 1: after the partial failure at 2, delivery resumed at 2.
    let p1 = of(1);
    let at = p1.iter().position(|c| c.offsets.contains(&2)).unwrap();
    assert_eq!(p1[at + 1].offsets[0], 2, "re-delivered from the failed offset: {p1:?}");

    // Partition 2: offset 3 was tried 1 + max_retries times, then given up.
    let p2 = of(2);
    assert_eq!(p2.iter().filter(|c| c.offsets.contains(&3)).count(), 3, "{p2:?}");

    // What each partition's function accepted: every record once, in order.
    let answers = |call: &Invocation| -> Option<i64> {
        match call.partition {
            0 if std::ptr::eq(call, p0[0]) => None,
            1 if std::ptr::eq(call, p1[at]) => Some(2),
            2 if call.offsets.contains(&3) => Some(3),
            _ => Some(i64::MAX),
        }
    };
    let accepted = accepted(&calls, &answers);
    assert_eq!(accepted[&0], vec![0, 1, 2, 3, 4]);
    assert_eq!(accepted[&1], vec![0, 1, 2, 3, 4]);
    assert_eq!(accepted[&2], vec![0, 1, 2]);

    // The on-failure file: one line, the poison batch from offset 3, with its event.
    let lines: Vec<Value> =
        std::fs::read_to_string(&failure_file).expect("the on-failure file").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let entry = &lines[0];
    assert_eq!((entry["partition"].as_i64(), entry["firstOffset"].as_i64(), entry["lastOffset"].as_i64()), (Some(2), Some(3), Some(4)));
    assert_eq!(entry["approximateInvokeCount"], 3);
    assert!(entry["error"].as_str().unwrap().contains("offset 3"), "{entry}");
    let event: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_value(entry["event"].clone()).unwrap();
    let offsets: Vec<i64> = event.records[&partition_key(&topic, 2)].iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![3, 4]);

    // A new consumer of the group resumes after the committed offsets.
    mapping.abort();
    let _ = mapping.await;
    produce(&brokers, &topic, 0, &values(0, 5..7)).await;
    let before = seen.lock().unwrap().len();
    let mapping = tokio::spawn(run(settings, LambdaInvoker::new(endpoint, Duration::from_secs(10))));
    let resumed: Vec<i64> = eventually("the new records", Duration::from_secs(60), || {
        let calls = seen.lock().unwrap();
        let offsets: Vec<i64> = calls[before..].iter().flat_map(|c| c.offsets.clone()).collect();
        (offsets.len() >= 2).then_some(offsets)
    })
    .await;
    assert_eq!(resumed, vec![5, 6], "only what was not committed: {:?}", &seen.lock().unwrap()[before..]);
    assert!(seen.lock().unwrap()[before..].iter().all(|c| c.partition == 0));
    eventually("the new commit", Duration::from_secs(30), || (committed(&brokers, &topic, &group).get(&0) == Some(&7)).then_some(())).await;
    mapping.abort();
    let _ = std::fs::remove_file(failure_file);
}

#[test]
fn first_failure_reads_partial_batch_responses() {
    let record =
        |offset| Record { topic: "t".into(), partition: 1, offset, timestamp: (0, "CREATE_TIME"), key: None, value: None, headers: vec![] };
    let batch = [record(4), record(5), record(6)];
    assert_eq!(first_failure(&json!({"batchItemFailures": []}), &batch).unwrap(), None);
    assert_eq!(first_failure(&json!(null), &batch).unwrap(), None);
    let failures = json!({"batchItemFailures": [
        {"itemIdentifier": {"partition": "t-1", "offset": 6}},
        {"itemIdentifier": {"partition": "t-1", "offset": 5}}
    ]});
    assert_eq!(first_failure(&failures, &batch).unwrap(), Some(5));
    let elsewhere = json!({"batchItemFailures": [{"itemIdentifier": {"partition": "t-2", "offset": 5}}]});
    assert!(first_failure(&elsewhere, &batch).is_err());
}

#[test]
fn records_look_like_lambdas() {
    let record = Record {
        topic: "t".into(),
        partition: 2,
        offset: 7,
        timestamp: (1_700_000_000_000, "CREATE_TIME"),
        key: Some(b"acc".to_vec()),
        value: Some(vec![1, 2, 255]),
        headers: vec![("event_type".into(), vec![0xff, b'A'])],
    };
    let event = kafka_event("b:9092", &[record]);
    assert_eq!(event["eventSource"], "SelfManagedKafka");
    let json = &event["records"]["t-2"][0];
    assert_eq!(json["key"], STANDARD.encode("acc"));
    assert_eq!(json["value"], STANDARD.encode([1u8, 2, 255]));
    assert_eq!(json["headers"], json!([{"event_type": [-1, 65]}]));
    let _: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_value(event).unwrap();
}

#[test]
fn backoff_doubles_up_to_its_maximum() {
    let settings = MappingSettings::local("b", "t", PathBuf::from("f"));
    assert_eq!(settings.backoff(1), Duration::from_millis(500));
    assert_eq!(settings.backoff(2), Duration::from_secs(1));
    assert_eq!(settings.backoff(10), Duration::from_secs(10));
}
