//! The published contract: the query API's operations in docs/openapi.json
//! (the one document for the whole HTTP API, tag `query-api`) match the
//! router, undeclared methods are 405 problems with `Allow`,
//! docs/QUERY_API.md names every setting, and every sample in
//! events/query-api/ parses as an API Gateway v2 event and routes. Every
//! documented response is validated against its schema in tests/tests/openapi/
//! (ledgerline-tests).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use ledgerline_shared::domain::{AccountEvent, Amount};
use ledgerline_shared::read_model::memory::InMemoryReadModel;
use ledgerline_shared::read_model::{ReadModelStore, change_for};
use query_api::ROUTES;
use serde_json::Value;
use support::*;
use tower::ServiceExt;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn openapi() -> Value {
    serde_json::from_str(&read("docs/openapi.json")).unwrap()
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
    let spec = openapi();
    let documented = ledgerline_tests::gateway_event::documented_routes_of(&spec, "query-api");
    let served: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, served);
    for (_, path) in ROUTES {
        let responses = &spec["paths"][path]["get"]["responses"];
        for status in ["200", "400", "401", "503"] {
            assert!(responses[status].is_object(), "{path} documents {status}");
        }
    }
}

#[test]
fn the_guide_lists_every_route_and_every_setting() {
    let guide = read("docs/QUERY_API.md");
    for (method, path) in ROUTES {
        assert!(guide.contains(&format!("{method} {path}")), "docs/QUERY_API.md describes {method} {path}");
    }
    let config = read("functions/query-api/src/config.rs");
    let settings: BTreeSet<&str> = config
        .split('"')
        .filter(|s| s.starts_with("LEDGERLINE_") && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .map(|s| s.trim_end_matches("_FAILURES"))
        .collect();
    assert!(settings.len() >= 6, "{settings:?}");
    for setting in settings {
        assert!(guide.contains(setting), "docs/QUERY_API.md names {setting}");
    }
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let api = Api::new(Arc::new(InMemoryReadModel::default()), None, &settings());
    for (method, path) in ROUTES {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        // No claims: a served route answers 401, an unknown one 404.
        api.send(request(method, &concrete)).await.assert_problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn undeclared_methods_on_served_paths_are_405_problems_with_allow() {
    let api = Api::new(Arc::new(InMemoryReadModel::default()), None, &settings());
    for (_, path) in ROUTES {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let response = api.send(request(method, &concrete)).await;
            response.assert_problem(405, "method_not_allowed");
            // axum serves HEAD wherever it serves GET.
            assert_eq!(response.header("allow"), Some("GET,HEAD"), "{method} {path}");
            assert!(response.header("x-correlation-id").is_some(), "{method} {path}");
        }
    }
    api.send(request("GET", "/nowhere")).await.assert_problem(404, "not_found");
}

const PLACEHOLDER: &str = "0b7e2f3a-5c1d-4e8f-9a6b-2d3c4e5f6a7b";
const HOLD_PLACEHOLDER: &str = "019a7c60-1f2e-7a3b-8c4d-5e6f7a8b9c0d";
const TRANSFER_PLACEHOLDER: &str = "019a7c60-2a2b-7c3d-8e4f-5a6b7c8d9e0f";
const ENTRY_PLACEHOLDER: &str = "019a7c60-3b3c-7d4e-9f5a-6b7c8d9e0f1a";

/// A sample with its placeholders replaced, through the router: the
/// status, the correlation id and the body.
async fn send_sample(api: &Api, name: &str, account: &str, hold: &str) -> (u16, String, Value) {
    let text = read(&format!("events/query-api/{name}.json")).replace(PLACEHOLDER, account).replace(HOLD_PLACEHOLDER, hold);
    let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let correlation = response.headers().get("x-correlation-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, correlation, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_samples_parse_and_route() {
    let store = Arc::new(InMemoryReadModel::default());
    let api = Api::new(store.clone(), None, &settings());
    let account_id = account_with_deposits(store.as_ref(), "alice", 1).await;
    let account = account_id.to_string();
    let expected: &[(&str, u16, Option<usize>)] = &[
        ("get-account", 200, None),
        ("get-account-min-version", 200, None),
        ("get-account-if-none-match", 304, None),
        ("list-accounts", 200, Some(1)),
        ("list-accounts-admin", 200, Some(1)),
        ("list-transactions", 200, Some(1)),
        ("get-statement", 200, Some(1)),
    ];
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo_file("events/query-api"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_owned())
        .collect();
    let holds = ["list-holds", "get-hold"];
    let others = ["get-balance-at", "get-transfer", "get-entry"];
    let covered: BTreeSet<String> =
        expected.iter().map(|(name, _, _)| name.to_string()).chain(holds.map(String::from)).chain(others.map(String::from)).collect();
    assert_eq!(on_disk, covered, "every sample is exercised here");
    for (name, status, items) in expected {
        let (got, correlation, body) = send_sample(&api, name, &account, HOLD_PLACEHOLDER).await;
        assert_eq!(got, *status, "{name}");
        assert_eq!(correlation, format!("sample-{name}"));
        if name == &"get-statement" {
            assert_eq!((body["opening_balance"].as_i64(), body["closing_balance"].as_i64()), (Some(0), Some(10)), "{name}: {body}");
        } else if let Some(count) = items {
            assert_eq!(body["items"].as_array().map(Vec::len), Some(*count), "{name}: {body}");
        } else if *status == 200 {
            assert_eq!((body["account_id"].as_str(), body["version"].as_u64()), (Some(account.as_str()), Some(2)), "{name}");
        }
    }
    let (got, _, body) = send_sample(&api, "get-balance-at", &account, HOLD_PLACEHOLDER).await;
    assert_eq!((got, body["balance"].as_i64(), body["version"].as_u64()), (200, Some(10), Some(2)), "get-balance-at: {body}");
    // The look-up samples, once there is a transfer (version 3) and an entry
    // (version 4) with the samples' ids from alice's account to bob's.
    let bob = account_with_deposits(store.as_ref(), "bob", 0).await;
    let (transfer_id, entry_id) = (TRANSFER_PLACEHOLDER.parse().unwrap(), ENTRY_PLACEHOLDER.parse().unwrap());
    let one = Amount::new(1).unwrap();
    let moves = [
        (
            account_id,
            3,
            AccountEvent::TransferSent { transfer_id, to_account_id: bob, amount: one, balance_after: 9, reference: None, at: at(3) },
        ),
        (
            bob,
            2,
            AccountEvent::TransferReceived {
                transfer_id,
                from_account_id: account_id,
                amount: one,
                balance_after: 1,
                reference: None,
                at: at(3),
            },
        ),
        (account_id, 4, AccountEvent::EntryDebited { entry_id, amount: one, balance_after: 8, reference: None, at: at(4) }),
        (bob, 3, AccountEvent::EntryCredited { entry_id, amount: one, balance_after: 2, reference: None, at: at(4) }),
    ];
    for (account, version, event) in moves {
        store.apply(&change_for(account, version, &event)).await.unwrap();
    }
    let (got, _, body) = send_sample(&api, "get-transfer", &account, HOLD_PLACEHOLDER).await;
    assert_eq!((got, body["to_account_id"].as_str()), (200, Some(bob.to_string().as_str())), "get-transfer: {body}");
    let (got, _, body) = send_sample(&api, "get-entry", &account, HOLD_PLACEHOLDER).await;
    assert_eq!((got, body["legs"].as_array().map(Vec::len)), (200, Some(2)), "get-entry: {body}");

    // The holds samples, once the account has a hold (its version 5).
    let hold = uuid::Uuid::now_v7();
    let placed = AccountEvent::HoldPlaced {
        hold_id: hold,
        amount: Amount::new(100).unwrap(),
        reference: None,
        expires_at: chrono::Utc::now() + chrono::Duration::days(3),
        at: at(10),
    };
    store.apply(&change_for(account_id, 5, &placed)).await.unwrap();
    for name in holds {
        let (got, correlation, body) = send_sample(&api, name, &account, &hold.to_string()).await;
        assert_eq!((got, correlation), (200, format!("sample-{name}")), "{name}: {body}");
        let hold_body = if name == "list-holds" { &body["items"][0] } else { &body };
        assert_eq!(
            (hold_body["hold_id"].as_str(), hold_body["status"].as_str()),
            (Some(hold.to_string().as_str()), Some("active")),
            "{name}: {body}"
        );
        if name == "list-holds" {
            assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
        }
    }
}

#[tokio::test]
async fn the_lambda_service_buffers_json_answers_as_text_bodies() {
    let store = Arc::new(InMemoryReadModel::default());
    let api = Api::new(store.clone(), None, &settings());
    let account = account_with_deposits(store.as_ref(), "alice", 1).await.to_string();
    let service = query_api::lambda::service(api.router.clone());
    let text = read("events/query-api/get-account.json").replace(PLACEHOLDER, &account);
    let response = service.clone().oneshot(lambda_http::request::from_str(&text).unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let lambda_http::Body::Text(body) = response.body() else { panic!("JSON travels as text, not base64") };
    assert_eq!(serde_json::from_str::<Value>(body).unwrap()["account_id"], account.as_str());
    let anonymous = text.replace("\"sub\": \"alice\"", "\"nobody\": \"x\"");
    let refused = service.oneshot(lambda_http::request::from_str(&anonymous).unwrap()).await.unwrap();
    assert_eq!(refused.status(), 401);
    let lambda_http::Body::Text(problem) = refused.body() else { panic!("problem+json travels as text") };
    assert_eq!(serde_json::from_str::<Value>(problem).unwrap()["code"], "unauthorized");
}
