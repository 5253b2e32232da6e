//! Holds through the command API: place, capture (part, out of the ledger
//! or into another account), release, and every refusal — on the in-memory
//! store, and against real PostgreSQL with concurrent holds, withdrawals and
//! captures that must never spend reserved money.

mod support;

use std::sync::Arc;

use serde_json::json;
use support::{Api, fresh_key, post, user};
use uuid::Uuid;

async fn place(api: &Api, owner: &str, account: Uuid, body: serde_json::Value) -> support::TestResponse {
    api.send(post(&format!("/accounts/{account}/holds")).by(owner).key(&fresh_key()).json(body)).await
}

async fn capture(api: &Api, owner: &str, account: Uuid, hold: Uuid, body: serde_json::Value) -> support::TestResponse {
    api.send(post(&format!("/accounts/{account}/holds/{hold}/capture")).by(owner).key(&fresh_key()).json(body)).await
}

async fn release(api: &Api, owner: &str, account: Uuid, hold: Uuid) -> support::TestResponse {
    api.send(post(&format!("/accounts/{account}/holds/{hold}/release")).by(owner)).await
}

#[tokio::test]
async fn a_hold_reserves_money_a_partial_capture_moves_it_and_frees_the_rest() {
    let api = Api::memory();
    let owner = user();
    let account = api.open(&owner, "EUR").await;
    api.deposit(&owner, account, 1_000).await;

    let placed = place(&api, &owner, account, json!({"amount": 600, "reference": "hotel", "expires_in_seconds": 3600})).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(
        (&placed.body["status"], &placed.body["amount"], &placed.body["balance"], &placed.body["held"], &placed.body["available_balance"]),
        (&json!("active"), &json!(600), &json!(1_000), &json!(600), &json!(400))
    );
    let hold = placed.id("hold_id");

    // Reserved money cannot be withdrawn.
    let withdrawal =
        api.send(post(&format!("/accounts/{account}/withdrawals")).by(&owner).key(&fresh_key()).json(json!({"amount": 401}))).await;
    withdrawal.assert_problem(422, "insufficient_funds");
    let refused = place(&api, &owner, account, json!({"amount": 401})).await;
    refused.assert_problem(422, "insufficient_funds");

    let captured = capture(&api, &owner, account, hold, json!({"amount": 250})).await;
    assert_eq!(captured.status, 200, "{}", captured.body);
    assert_eq!(
        (&captured.body["status"], &captured.body["captured"], &captured.body["released"], &captured.body["balance"]),
        (&json!("captured"), &json!(250), &json!(350), &json!(750))
    );
    assert_eq!((&captured.body["held"], &captured.body["available_balance"]), (&json!(0), &json!(750)));
    assert!(captured.body.get("to").is_none() && captured.body.get("transfer_id").is_none(), "{}", captured.body);

    // It ended once: capturing or releasing it again says how it ended.
    let again = capture(&api, &owner, account, hold, json!({})).await;
    again.assert_problem(422, "hold_not_active");
    assert!(again.body["detail"].as_str().unwrap().contains("captured"), "{}", again.body);
    release(&api, &owner, account, hold).await.assert_problem(422, "hold_not_active");
}

#[tokio::test]
async fn a_capture_into_another_account_is_a_transfer_that_names_the_recipient_by_id_only() {
    let api = Api::memory();
    let (payer, payee) = (user(), user());
    let from = api.open(&payer, "EUR").await;
    let to = api.open(&payee, "EUR").await;
    api.deposit(&payer, from, 500).await;
    let hold = place(&api, &payer, from, json!({"amount": 300})).await.id("hold_id");

    let captured = capture(&api, &payer, from, hold, json!({"to_account_id": to, "reference": "order 7"})).await;
    assert_eq!(captured.status, 200, "{}", captured.body);
    assert_eq!((&captured.body["captured"], &captured.body["released"], &captured.body["balance"]), (&json!(300), &json!(0), &json!(200)));
    assert_eq!(captured.body["to"], json!({"account_id": to}));
    assert!(captured.body["transfer_id"].is_string());
    assert_eq!(api.balance(to).await, 300);

    // A recipient that cannot receive is one refusal, whatever the reason.
    let frozen = api.open(&payee, "EUR").await;
    api.send(post(&format!("/accounts/{frozen}/freeze")).by_admin("admin")).await;
    let usd = api.open(&payee, "USD").await;
    let hold = place(&api, &payer, from, json!({"amount": 100})).await.id("hold_id");
    for recipient in [Uuid::new_v4(), frozen, usd] {
        capture(&api, &payer, from, hold, json!({"to_account_id": recipient})).await.assert_problem(422, "recipient_cannot_receive");
    }
    capture(&api, &payer, from, hold, json!({"to_account_id": from})).await.assert_problem(422, "same_account");
}

#[tokio::test]
async fn releasing_frees_the_money_and_holds_bound_closing() {
    let api = Api::memory();
    let owner = user();
    let account = api.open(&owner, "EUR").await;
    api.deposit(&owner, account, 100).await;
    let hold = place(&api, &owner, account, json!({"amount": 100})).await.id("hold_id");
    let withdraw_all =
        api.send(post(&format!("/accounts/{account}/withdrawals")).by(&owner).key(&fresh_key()).json(json!({"amount": 100})));
    withdraw_all.await.assert_problem(422, "insufficient_funds");

    let released = release(&api, &owner, account, hold).await;
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(
        (&released.body["status"], &released.body["released"], &released.body["available_balance"]),
        (&json!("released"), &json!(100), &json!(100))
    );

    // Closing with a live hold is refused.
    let live = place(&api, &owner, account, json!({"amount": 100})).await.id("hold_id");
    let withdrawn = api.send(post(&format!("/accounts/{account}/withdrawals")).by(&owner).key(&fresh_key()).json(json!({"amount": 0})));
    withdrawn.await.assert_problem(400, "validation_failed");
    api.send(post(&format!("/accounts/{account}/close")).by(&owner)).await.assert_problem(422, "active_holds");
    release(&api, &owner, account, live).await;
}

#[tokio::test]
async fn refusals_of_holds_are_the_documented_ones() {
    let api = Api::memory();
    let owner = user();
    let account = api.open(&owner, "EUR").await;
    api.deposit(&owner, account, 100).await;
    let hold = place(&api, &owner, account, json!({"amount": 50})).await.id("hold_id");

    capture(&api, &owner, account, hold, json!({"amount": 51})).await.assert_problem(422, "capture_exceeds_hold");
    capture(&api, &owner, account, Uuid::now_v7(), json!({})).await.assert_problem(404, "hold_not_found");
    release(&api, &owner, account, Uuid::now_v7()).await.assert_problem(404, "hold_not_found");
    for lifetime in [59, 2_592_001] {
        place(&api, &owner, account, json!({"amount": 1, "expires_in_seconds": lifetime})).await.assert_problem(400, "validation_failed");
    }
    place(&api, &owner, account, json!({"amount": 1, "extra": true})).await.assert_problem(400, "validation_failed");
    let without_key = api.send(post(&format!("/accounts/{account}/holds")).by(&owner).json(json!({"amount": 1}))).await;
    without_key.assert_problem(400, "validation_failed");
    let bad_id = api.send(post(&format!("/accounts/{account}/holds/nope/release")).by(&owner)).await;
    bad_id.assert_problem(400, "validation_failed");

    // Someone else's account, or hold on it, is a 404 exactly as a missing one.
    let stranger = user();
    place(&api, &stranger, account, json!({"amount": 1})).await.assert_problem(404, "account_not_found");
    capture(&api, &stranger, account, hold, json!({})).await.assert_problem(404, "account_not_found");
    release(&api, &stranger, account, hold).await.assert_problem(404, "account_not_found");
    place(&api, &stranger, Uuid::new_v4(), json!({"amount": 1})).await.assert_problem(404, "account_not_found");

    // A frozen account's hold cannot be captured but can be released.
    api.send(post(&format!("/accounts/{account}/freeze")).by_admin("admin")).await;
    capture(&api, &owner, account, hold, json!({})).await.assert_problem(422, "account_frozen");
    place(&api, &owner, account, json!({"amount": 1})).await.assert_problem(422, "account_frozen");
    assert_eq!(release(&api, &owner, account, hold).await.status, 200);
}

#[tokio::test]
async fn a_retried_placement_with_its_key_places_one_hold() {
    let api = Api::memory();
    let owner = user();
    let account = api.open(&owner, "EUR").await;
    api.deposit(&owner, account, 100).await;
    let key = fresh_key();
    let request = || post(&format!("/accounts/{account}/holds")).by(&owner).key(&key).json(json!({"amount": 60}));
    let first = api.send(request()).await;
    let second = api.send(request()).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.body, second.body, "the stored answer, the same hold");
    // A second hold of 60 would not fit: only one was placed.
    assert_eq!(place(&api, &owner, account, json!({"amount": 40})).await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_withdrawals_and_captures_never_spend_reserved_money() {
    let api = Arc::new(Api::postgres().await);
    let owner = user();
    let account = api.open(&owner, "EUR").await;
    api.deposit(&owner, account, 1_000).await;

    // 20 holds of 100 and 20 withdrawals of 100 race for 1,000.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let (api, owner) = (api.clone(), owner.clone());
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let response = place(&api, &owner, account, json!({"amount": 100})).await;
                (true, response.status, response.body)
            } else {
                let response = api
                    .send(post(&format!("/accounts/{account}/withdrawals")).by(&owner).key(&fresh_key()).json(json!({"amount": 100})))
                    .await;
                (false, response.status, response.body)
            }
        }));
    }
    let mut holds = Vec::new();
    let mut withdrawn: i64 = 0;
    for task in tasks {
        let (is_hold, status, body) = task.await.unwrap();
        match (is_hold, status) {
            (true, 201) => holds.push(body["hold_id"].as_str().unwrap().parse::<Uuid>().unwrap()),
            (false, 200) => withdrawn += 100,
            (_, 422) => assert_eq!(body["code"], "insufficient_funds"),
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    assert_eq!(holds.len() as i64 * 100 + withdrawn, 1_000, "every unit either reserved or withdrawn, none twice");

    // Capture and release them all at once, each once.
    let mut tasks = Vec::new();
    for (n, hold) in holds.iter().copied().enumerate() {
        let (api, owner) = (api.clone(), owner.clone());
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                capture(&api, &owner, account, hold, json!({"amount": 60})).await.status
            } else {
                release(&api, &owner, account, hold).await.status
            }
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let captured = holds.len().div_ceil(2) as i64 * 60;
    assert_eq!(api.balance(account).await, 1_000 - withdrawn - captured);
}
