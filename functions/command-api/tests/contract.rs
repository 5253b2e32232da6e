//! The API's published contract: the command API's operations in
//! docs/openapi.json (the one document for the whole HTTP API, tag
//! `command-api`) match the router, undeclared methods are 405 problems with
//! `Allow`, and every sample in events/command-api/ is a valid event that
//! does what it says. Every documented response is validated against its
//! schema in tests/tests/openapi/ (ledgerline-tests).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use command_api::ROUTES;
use serde_json::{Value, json};
use support::{Api, post, request};
use tower::ServiceExt;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn openapi() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_file("docs/openapi.json")).unwrap()).unwrap()
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
    let spec = openapi();
    let documented = ledgerline_tests::gateway_event::documented_routes_of(&spec, "command-api");
    let served: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, served);
}

#[test]
fn the_openapi_document_states_the_idempotency_rules() {
    let spec = openapi();
    let required = json!({"$ref": "#/components/parameters/IdempotencyKeyRequired"});
    for path in [
        "/accounts/{id}/deposits",
        "/accounts/{id}/withdrawals",
        "/transfers",
        "/accounts/{id}/holds",
        "/accounts/{id}/holds/{hold_id}/capture",
        "/entries",
    ] {
        let parameters = spec["paths"][path]["post"]["parameters"].as_array().unwrap();
        assert!(parameters.contains(&required), "{path} must require an Idempotency-Key");
    }
    for (_, path) in ROUTES {
        assert!(spec["paths"][path]["post"]["responses"]["401"].is_object(), "{path} documents 401");
    }
}

#[tokio::test]
async fn undeclared_methods_on_served_paths_are_405_problems_with_allow() {
    let api = Api::memory();
    for (_, path) in ROUTES {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string()).replace("{hold_id}", &uuid::Uuid::now_v7().to_string());
        for method in ["GET", "PUT", "PATCH", "DELETE"] {
            // Even an anonymous caller learns the route's methods, as from API Gateway.
            let response = api.send(request(method, &concrete).json(json!({}))).await;
            response.assert_problem(405, "method_not_allowed");
            assert_eq!(response.header("allow"), Some("POST"), "{method} {path}");
            assert!(response.header("x-correlation-id").is_some(), "{method} {path}");
        }
    }
    api.send(request("GET", "/nowhere")).await.assert_problem(404, "not_found");
}

#[tokio::test]
async fn an_account_id_that_is_not_even_utf8_is_a_400_problem() {
    let api = Api::memory();
    for path in ["/accounts/%FF/deposits", "/accounts/%C0%80/close"] {
        api.send(post(path).by("alice").key("k").json(json!({"amount": 1}))).await.assert_problem(400, "validation_failed");
    }
}

#[tokio::test]
async fn a_status_change_takes_no_body_or_an_empty_object_and_nothing_else() {
    let api = Api::memory();
    let account = api.open("alice", "EUR").await;
    let close = format!("/accounts/{account}/close");
    for body in [" ", "\n", "[]", "null", r#"{"reason":"x"}"#] {
        let response = api.send(post(&close).by("alice").json(json!({})).raw_body(body)).await;
        assert_eq!((response.status, response.code()), (400, "validation_failed"), "{body:?}");
    }
    // Nor is an array of a body's fields one of its bodies.
    api.send(post("/accounts").by("alice").json(json!(["EUR"]))).await.assert_problem(400, "validation_failed");
    let freeze = format!("/accounts/{account}/freeze");
    assert_eq!(api.send(post(&freeze).by_admin("root").raw_body("")).await.status, 200);
    assert_eq!(api.send(post(&close.replace("close", "unfreeze")).by_admin("root").json(json!({}))).await.status, 200);
    assert_eq!(api.send(post(&close).by("alice")).await.status, 200, "no body at all");
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let api = Api::memory();
    for (_, path) in ROUTES {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string()).replace("{hold_id}", &uuid::Uuid::now_v7().to_string());
        // No claims: a served route answers 401, an unknown one 404.
        let response = api.send(post(&concrete).json(json!({}))).await;
        response.assert_problem(401, "unauthorized");
    }
}

/// The hold id in the hold samples' paths.
const HOLD_PLACEHOLDER: &str = "019a7c60-1f2e-7a3b-8c4d-5e6f7a8b9c0d";

/// Sends a sample with its placeholder ids replaced by real ones.
async fn send_sample(api: &Api, name: &str, replacements: &[(&str, String)]) -> (u16, Value) {
    let mut text = std::fs::read_to_string(repo_file(&format!("events/command-api/{name}.json"))).unwrap();
    for (placeholder, real) in replacements {
        text = text.replace(placeholder, real);
    }
    let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_samples_run_in_order_against_the_router() {
    let api = Api::memory();
    let (status, opened) = send_sample(&api, "open-account", &[]).await;
    assert_eq!(status, 201, "{opened}");
    let account = opened["account_id"].as_str().unwrap().to_owned();
    let target = api.open("bob", "EUR").await.to_string();
    let ids = [("0b7e2f3a-5c1d-4e8f-9a6b-2d3c4e5f6a7b", account.clone()), ("6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b", target)];
    let expected = [
        ("deposit", 200, json!(1000)),
        ("withdraw", 200, json!(500)),
        ("transfer", 201, Value::Null),
        ("freeze", 200, Value::Null),
        ("unfreeze", 200, Value::Null),
        ("close", 422, Value::Null),
    ];
    for (name, status, balance) in expected {
        let (got, body) = send_sample(&api, name, &ids).await;
        assert_eq!(got, status, "{name}: {body}");
        if !balance.is_null() {
            assert_eq!(body["balance"], balance, "{name}");
        }
    }
    // Holds on the account (balance 250): one placed by the sample, one more
    // by it under another Idempotency-Key; 60 of the first captured into the
    // other account, the second released.
    let (status, first) = send_sample(&api, "place-hold", &ids).await;
    assert_eq!((status, &first["status"], &first["held"], &first["available_balance"]), (201, &json!("active"), &json!(100), &json!(150)));
    let mut again = ids.to_vec();
    again.push(("sample-place-hold-1", "sample-place-hold-2".into()));
    let (status, second) = send_sample(&api, "place-hold", &again).await;
    assert_eq!((status, &second["held"]), (201, &json!(200)), "{second}");
    let on = |hold: &Value| {
        let mut replacements = ids.to_vec();
        replacements.push((HOLD_PLACEHOLDER, hold["hold_id"].as_str().unwrap().to_owned()));
        replacements
    };
    let (status, captured) = send_sample(&api, "capture-hold", &on(&first)).await;
    assert_eq!((status, &captured["captured"], &captured["released"], &captured["balance"]), (200, &json!(60), &json!(40), &json!(190)));
    assert_eq!(captured["to"]["account_id"].as_str(), Some(ids[1].1.as_str()), "{captured}");
    let (status, released) = send_sample(&api, "release-hold", &on(&second)).await;
    assert_eq!(
        (status, &released["released"], &released["held"], &released["available_balance"]),
        (200, &json!(100), &json!(0), &json!(190))
    );
    // A payment with its fee in one entry: 100 from the account, 90 to the
    // other account and 10 to a fee account (both someone else's).
    let fees = api.open("bank", "EUR").await.to_string();
    let mut with_fees = ids.to_vec();
    with_fees.push(("3a9c8b7d-6e5f-4a1b-9c2d-7e8f9a0b1c2d", fees.clone()));
    let (status, entry) = send_sample(&api, "post-entry", &with_fees).await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["legs"].as_array().map(Vec::len), Some(3), "{entry}");
    assert_eq!(
        entry["accounts"],
        json!([{"account_id": account, "balance": 90, "held": 0, "available_balance": 90, "version": entry["accounts"][0]["version"]}])
    );
    // Every sample on disk was sent.
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo_file("events/command-api"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_owned())
        .collect();
    let sent = [
        "open-account",
        "deposit",
        "withdraw",
        "transfer",
        "freeze",
        "unfreeze",
        "close",
        "place-hold",
        "capture-hold",
        "release-hold",
        "post-entry",
    ];
    assert_eq!(on_disk, sent.into_iter().map(String::from).collect(), "every sample is sent here");
    // The open sample carries an Idempotency-Key: sending it again opens nothing new.
    let (_, again) = send_sample(&api, "open-account", &[]).await;
    assert_eq!(again["account_id"].as_str(), Some(account.as_str()));
}
