//! Every route and error against the DynamoDB emulator and real Redis:
//! shapes, ETag/304, authorization, read-your-writes, pagination, cursors.

mod support;

use std::collections::BTreeSet;

use ledgerline_shared::read_model::ReadModelStore;
use serde_json::json;
use support::*;
use uuid::Uuid;

async fn api() -> (Api, std::sync::Arc<ledgerline_shared::read_model::dynamo::DynamoReadModel>) {
    let store = dynamo_store().await;
    let api = Api::new(store.clone(), Some(redis_cache(&redis_url())), &settings());
    (api, store)
}

#[tokio::test]
async fn get_account_answers_the_view_with_an_etag_and_304_on_a_match() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 2).await;
    let response = api.get(&owner, &format!("/accounts/{id}")).await;
    response.assert_ok();
    assert_eq!(
        response.body,
        json!({"account_id": id, "owner_id": owner, "currency": "EUR", "balance": 20, "held": 0, "available_balance": 20,
               "overdraft_limit": 0, "status": "open", "version": 3, "updated_at": "2026-03-01T12:00:03Z"})
    );
    assert_eq!(response.header("etag"), Some("\"3\""));
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(response.header("x-correlation-id").is_some());

    let same = api.send(get(&format!("/accounts/{id}")).by(&owner).header("if-none-match", "\"3\"")).await;
    assert_eq!(same.status, 304);
    assert!(same.raw.is_empty());
    assert_eq!(same.header("etag"), Some("\"3\""));
    let listed = api.send(get(&format!("/accounts/{id}")).by(&owner).header("if-none-match", "\"1\", W/\"3\"")).await;
    assert_eq!(listed.status, 304);
    let older = api.send(get(&format!("/accounts/{id}")).by(&owner).header("if-none-match", "\"2\"")).await;
    assert_eq!(older.status, 200);
    assert_eq!(older.body["version"], 3);
}

#[tokio::test]
async fn get_account_refusals() {
    let (api, store) = api().await;
    let owner = user();
    let id = open(store.as_ref(), &owner).await;
    let path = format!("/accounts/{id}");
    api.send(get(&path)).await.assert_problem(401, "unauthorized");
    // Someone else's account reads exactly like a missing one, also with min_version.
    let theirs = api.get(&user(), &path).await;
    let nobodys = api.get(&owner, &format!("/accounts/{}", Uuid::new_v4())).await;
    theirs.assert_problem(404, "account_not_found");
    assert_eq!(theirs.body, nobodys.body);
    let (theirs, nobodys) = (
        api.get(&user(), &format!("{path}?min_version=1")).await,
        api.get(&owner, &format!("/accounts/{}?min_version=1", Uuid::new_v4())).await,
    );
    assert_eq!((theirs.status, theirs.code().to_owned()), (nobodys.status, nobodys.code().to_owned()));
    api.get(&owner, "/accounts/not-a-uuid").await.assert_problem(400, "validation_failed");
    api.get(&owner, "/accounts/%FF").await.assert_problem(400, "validation_failed");
    api.get(&owner, &format!("{path}?min_version=0")).await.assert_problem(400, "validation_failed");
    api.get(&owner, &format!("{path}?min_version=x")).await.assert_problem(400, "validation_failed");
    api.get(&owner, &format!("{path}?colour=red")).await.assert_problem(400, "validation_failed");
    api.send(request("DELETE", &path).by(&owner)).await.assert_problem(405, "method_not_allowed");
    api.get(&owner, "/nowhere").await.assert_problem(404, "not_found");
    // The refusal never reveals the account, even to a conditional request.
    let foreign = api.send(get(&path).by(&user()).header("if-none-match", "*")).await;
    foreign.assert_problem(404, "account_not_found");
    // Administrators read any account.
    api.send(get(&path).by_admin("ops")).await.assert_ok();
}

#[tokio::test]
async fn list_accounts_answers_the_callers_accounts_and_admins_may_choose_the_owner() {
    let (api, store) = api().await;
    let (alice, bob) = (user(), user());
    let a1 = open(store.as_ref(), &alice).await;
    let a2 = open(store.as_ref(), &alice).await;
    let b1 = open(store.as_ref(), &bob).await;
    let ids = |response: &TestResponse| -> BTreeSet<String> {
        response.body["items"].as_array().unwrap().iter().map(|a| a["account_id"].as_str().unwrap().to_owned()).collect()
    };
    let mine = api.get(&alice, "/accounts").await;
    mine.assert_ok();
    assert_eq!(ids(&mine), BTreeSet::from([a1.to_string(), a2.to_string()]));
    assert_eq!(mine.body["items"][0]["owner_id"], alice.as_str());
    let own_filter = api.get(&alice, &format!("/accounts?owner_id={alice}")).await;
    assert_eq!(ids(&own_filter), ids(&mine));
    let by_admin = api.send(get(&format!("/accounts?owner_id={bob}")).by_admin("ops")).await;
    assert_eq!(ids(&by_admin), BTreeSet::from([b1.to_string()]));
    assert_eq!(api.get(&user(), "/accounts").await.body, json!({"items": [], "next_cursor": null}));

    api.send(get("/accounts")).await.assert_problem(401, "unauthorized");
    api.get(&alice, &format!("/accounts?owner_id={bob}")).await.assert_problem(403, "forbidden");
    api.get(&alice, "/accounts?min_version=3").await.assert_problem(400, "validation_failed");
    api.get(&alice, "/accounts?owner_id=").await.assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn accounts_come_in_pages_with_cursors_bound_to_their_owner() {
    let (api, store) = api().await;
    let (alice, bob) = (user(), user());
    let mut opened = Vec::new();
    for _ in 0..5 {
        opened.push(open(store.as_ref(), &alice).await.to_string());
    }
    opened.sort();
    open(store.as_ref(), &bob).await;

    // Pages of two walk every account once, in id order.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    let mut bob_cursor = None;
    loop {
        let page = api.get(&alice, &format!("/accounts?{query}")).await;
        page.assert_ok();
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|a| a["account_id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                bob_cursor.get_or_insert(cursor.to_owned());
                query = format!("limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen, opened);

    // A cursor of alice's list is no key to bob's, and a forged one is refused.
    let cursor = bob_cursor.unwrap();
    api.get(&bob, &format!("/accounts?cursor={cursor}")).await.assert_problem(400, "validation_failed");
    let mut forged = cursor.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    api.get(&alice, &format!("/accounts?cursor={forged}")).await.assert_problem(400, "validation_failed");
    for limit in ["0", "201", "many"] {
        api.get(&alice, &format!("/accounts?limit={limit}")).await.assert_problem(400, "validation_failed");
    }
}

#[tokio::test]
async fn transactions_are_newest_first_with_the_documented_shape() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 3).await;
    let page = api.get(&owner, &format!("/accounts/{id}/transactions")).await;
    page.assert_ok();
    let versions: Vec<u64> = page.body["items"].as_array().unwrap().iter().map(|t| t["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![4, 3, 2]);
    assert_eq!(
        page.body["items"][0],
        json!({"version": 4, "kind": "deposit", "amount": 10, "balance_after": 30, "counterparty_account_id": null,
               "transfer_id": null, "hold_id": null, "entry_id": null, "reference": "d4", "occurred_at": "2026-03-01T12:00:04Z"})
    );
    assert_eq!(page.body["next_cursor"], json!(null));
}

#[tokio::test]
async fn transactions_refusals_and_limits() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 1).await;
    let path = format!("/accounts/{id}/transactions");
    api.send(get(&path)).await.assert_problem(401, "unauthorized");
    let theirs = api.get(&user(), &path).await;
    theirs.assert_problem(404, "account_not_found");
    assert_eq!(theirs.body, api.get(&owner, &format!("/accounts/{}/transactions", Uuid::new_v4())).await.body);
    api.get(&owner, "/accounts/nope/transactions").await.assert_problem(400, "validation_failed");
    for limit in ["0", "201", "-1", "ten"] {
        api.get(&owner, &format!("{path}?limit={limit}")).await.assert_problem(400, "validation_failed");
    }
    for limit in [1, 200] {
        api.get(&owner, &format!("{path}?limit={limit}")).await.assert_ok();
    }
    api.send(get(&path).by_admin("ops")).await.assert_ok();
    api.send(request("POST", &path).by(&owner)).await.assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn pagination_walks_every_transaction_exactly_once() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 23).await;
    for limit in [1, 5, 7, 23, 50] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let query = match &cursor {
                Some(c) => format!("?limit={limit}&cursor={c}"),
                None => format!("?limit={limit}"),
            };
            let page = api.get(&owner, &format!("/accounts/{id}/transactions{query}")).await;
            page.assert_ok();
            let items = page.body["items"].as_array().unwrap();
            assert!(items.len() <= limit, "a page holds at most the limit");
            seen.extend(items.iter().map(|t| t["version"].as_u64().unwrap()));
            pages += 1;
            assert!(pages <= 30, "pagination must end");
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let expected: Vec<u64> = (2..=24).rev().collect();
        assert_eq!(seen, expected, "limit {limit}: every movement once, newest first");
        assert_eq!(pages, 23usize.div_ceil(limit), "limit {limit}: no empty trailing page");
    }
}

#[tokio::test]
async fn forged_or_foreign_cursors_are_refused_and_never_leak_data() {
    let (api, store) = api().await;
    let (alice, bob) = (user(), user());
    let mine = account_with_deposits(store.as_ref(), &alice, 5).await;
    let theirs = account_with_deposits(store.as_ref(), &bob, 5).await;
    let first = api.get(&alice, &format!("/accounts/{mine}/transactions?limit=2")).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    // Alice's cursor on Bob's account, by Bob himself or an admin: 400.
    api.get(&bob, &format!("/accounts/{theirs}/transactions?cursor={cursor}")).await.assert_problem(400, "validation_failed");
    api.send(get(&format!("/accounts/{theirs}/transactions?cursor={cursor}")).by_admin("ops"))
        .await
        .assert_problem(400, "validation_failed");
    // Every one-character change of the cursor is refused.
    assert_eq!(cursor.len(), 76);
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..cursor.len() {
        let original = cursor.as_bytes()[i] as char;
        let replacement = alphabet.chars().find(|c| *c != original).unwrap();
        let mut forged = cursor.clone();
        forged.replace_range(i..=i, &replacement.to_string());
        // 57 bytes are exactly 76 base64 characters: no padding bits, so every change changes the bytes.
        api.get(&alice, &format!("/accounts/{mine}/transactions?cursor={forged}")).await.assert_problem(400, "validation_failed");
    }
    for junk in ["", "abc", "%00%01", &"A".repeat(300)] {
        let response = api.get(&alice, &format!("/accounts/{mine}/transactions?cursor={junk}")).await;
        response.assert_problem(400, "validation_failed");
    }
    // A cursor made with another secret (another deployment) is refused.
    let foreign = query_api::cursor::CursorCodec::new(b"another-secret").encode(mine, 3);
    api.get(&alice, &format!("/accounts/{mine}/transactions?cursor={foreign}")).await.assert_problem(400, "validation_failed");
    // The genuine cursor still works.
    let second = api.get(&alice, &format!("/accounts/{mine}/transactions?limit=2&cursor={cursor}")).await;
    assert_eq!(second.body["items"][0]["version"], 4);
}

#[tokio::test]
async fn an_account_not_projected_yet_is_409_with_min_version_and_404_without() {
    let (api, _) = api().await;
    let owner = user();
    let path = format!("/accounts/{}", uuid::Uuid::new_v4());
    let behind = api.get(&owner, &format!("{path}?min_version=1")).await;
    behind.assert_problem(409, "not_yet_consistent");
    assert!(behind.headers.get("retry-after").is_some());
    api.get(&owner, &path).await.assert_problem(404, "account_not_found");
}

#[tokio::test]
async fn read_your_writes_waits_for_the_version_and_never_serves_an_older_cache_entry() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 1).await;
    let path = format!("/accounts/{id}");
    // Fill L1 and L2 with version 2.
    assert_eq!(api.get(&owner, &path).await.body["version"], 2);
    assert_eq!(api.get(&owner, &path).await.layer(), "l1");
    // The read model is behind version 3: 409 with Retry-After.
    let behind = api.get(&owner, &format!("{path}?min_version=3")).await;
    behind.assert_problem(409, "not_yet_consistent");
    api.get(&owner, &format!("/accounts/{id}/transactions?min_version=3")).await.assert_problem(409, "not_yet_consistent");
    // The projector writes version 3: the caches still hold 2 ...
    deposit(store.as_ref(), id, 3, 5, 15).await;
    assert_eq!(api.get(&owner, &path).await.body["version"], 2, "L1 still holds version 2 (until its TTL)");
    // ... but min_version=3 reads DynamoDB and answers 3.
    let fresh = api.get(&owner, &format!("{path}?min_version=3")).await;
    fresh.assert_ok();
    assert_eq!((fresh.body["version"].as_u64(), fresh.body["balance"].as_i64(), fresh.layer()), (Some(3), Some(15), "dynamodb"));
    assert_eq!(fresh.header("etag"), Some("\"3\""));
    // The consistent read refreshed the caches.
    assert_eq!(api.get(&owner, &path).await.body["version"], 3);
    let txs = api.get(&owner, &format!("/accounts/{id}/transactions?min_version=3")).await;
    assert_eq!(txs.body["items"][0]["version"], 3);
    // An older min_version is satisfied by the newer state.
    assert_eq!(api.get(&owner, &format!("{path}?min_version=1")).await.body["version"], 3);
}

#[tokio::test]
async fn l1_then_l2_then_dynamodb_and_misses_fill_upwards() {
    let store = dynamo_store().await;
    let redis = redis_cache(&redis_url());
    let api = Api::new(store.clone(), Some(redis.clone()), &settings());
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 1).await;
    let path = format!("/accounts/{id}");

    let first = api.get(&owner, &path).await;
    assert_eq!((first.layer(), first.body["version"].as_u64()), ("dynamodb", Some(2)));
    assert_eq!(
        (api.last_request_metric("L1Miss"), api.last_request_metric("L2Miss"), api.last_request_metric("SourceRead")),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(redis.get(id).await.unwrap().map(|v| v.version), Some(2), "the miss filled Redis");

    // Change DynamoDB behind the caches: the L1 hit answers without looking.
    deposit(store.as_ref(), id, 3, 5, 15).await;
    let second = api.get(&owner, &path).await;
    assert_eq!((second.layer(), second.body["version"].as_u64()), ("l1", Some(2)));
    assert_eq!(api.last_request_metric("L1Hit"), 1.0);
    assert_eq!(api.last_request_metric("SourceRead"), 0.0);

    // A new container (empty L1) sharing the Redis cache: an L2 hit, which fills L1.
    let other = Api::new(store.clone(), Some(redis.clone()), &settings());
    let third = other.get(&owner, &path).await;
    assert_eq!((third.layer(), third.body["version"].as_u64()), ("l2", Some(2)));
    assert_eq!((other.last_request_metric("L1Miss"), other.last_request_metric("L2Hit")), (1.0, 1.0));
    assert_eq!(other.get(&owner, &path).await.layer(), "l1");

    // The projector refreshes Redis (as it does after each event): a fresh container sees it.
    let newest = store.account(id, true).await.unwrap().unwrap();
    assert!(redis.put_if_newer(&newest).await.unwrap());
    let fresh_container = Api::new(store.clone(), Some(redis.clone()), &settings());
    let fourth = fresh_container.get(&owner, &path).await;
    assert_eq!((fourth.layer(), fourth.body["version"].as_u64()), ("l2", Some(3)));

    // Without Redis and L1, every read goes to DynamoDB.
    let bare = Api::new(store.clone(), None, &query_api::QuerySettings { l1_capacity: 0, ..settings() });
    for _ in 0..2 {
        let response = bare.get(&owner, &path).await;
        assert_eq!((response.layer(), response.body["version"].as_u64()), ("dynamodb", Some(3)));
    }
}

#[tokio::test]
async fn l1_entries_expire_after_their_ttl() {
    let store = dynamo_store().await;
    let settings = query_api::QuerySettings { l1_ttl: std::time::Duration::from_millis(200), ..settings() };
    let api = Api::new(store.clone(), None, &settings);
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 1).await;
    let path = format!("/accounts/{id}");
    assert_eq!(api.get(&owner, &path).await.layer(), "dynamodb");
    deposit(store.as_ref(), id, 3, 5, 15).await;
    eventually("the L1 entry expires and DynamoDB's version 3 is served", std::time::Duration::from_secs(5), || async {
        let response = api.get(&owner, &path).await;
        response.body["version"] == 3 && response.layer() == "dynamodb"
    })
    .await;
}

#[tokio::test]
async fn a_stale_redis_entry_is_not_served_past_min_version() {
    let store = dynamo_store().await;
    let redis = redis_cache(&redis_url());
    let api = Api::new(store.clone(), Some(redis.clone()), &query_api::QuerySettings { l1_capacity: 0, ..settings() });
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 1).await;
    let path = format!("/accounts/{id}");
    api.get(&owner, &path).await.assert_ok();
    deposit(store.as_ref(), id, 3, 5, 15).await;
    // Redis still holds version 2 and serves it to a plain read ...
    let plain = api.get(&owner, &path).await;
    assert_eq!((plain.layer(), plain.body["version"].as_u64()), ("l2", Some(2)));
    // ... never to a read that asks for version 3.
    let fresh = api.get(&owner, &format!("{path}?min_version=3")).await;
    assert_eq!((fresh.layer(), fresh.body["version"].as_u64()), ("dynamodb", Some(3)));
    assert_eq!((api.last_request_metric("L2Hit"), api.last_request_metric("SourceRead")), (0.0, 1.0));
    // The consistent read moved Redis forward.
    assert_eq!(redis.get(id).await.unwrap().map(|v| v.version), Some(3));
    assert_eq!(api.get(&owner, &path).await.body["version"], 3);
}

#[tokio::test]
async fn holds_are_read_with_their_status_as_of_now_and_held_counts_only_live_ones() {
    use ledgerline_shared::domain::{AccountEvent, Amount};
    use ledgerline_shared::read_model::change_for;

    let (api, store) = api().await;
    let owner = user();
    let id = account_with_deposits(store.as_ref(), &owner, 2).await; // version 3, balance 20
    let now = chrono::Utc::now();
    let (live, lapsed, released) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let place = |version: u64, hold_id, amount: i64, expires_at| {
        change_for(
            id,
            version,
            &AccountEvent::HoldPlaced { hold_id, amount: Amount::new(amount).unwrap(), reference: None, expires_at, at: now },
        )
    };
    for change in [
        place(4, live, 5, now + chrono::Duration::hours(1)),
        // Past its expiry, not yet recorded: it counts for nothing.
        place(5, lapsed, 3, now - chrono::Duration::seconds(1)),
        place(6, released, 2, now + chrono::Duration::hours(1)),
        change_for(id, 7, &AccountEvent::HoldReleased { hold_id: released, amount: Amount::new(2).unwrap(), at: now }),
    ] {
        store.apply(&change).await.unwrap();
    }

    let account = api.get(&owner, &format!("/accounts/{id}?min_version=7")).await;
    account.assert_ok();
    assert_eq!((&account.body["balance"], &account.body["held"], &account.body["available_balance"]), (&json!(20), &json!(5), &json!(15)));

    let all = api.get(&owner, &format!("/accounts/{id}/holds?min_version=7")).await;
    all.assert_ok();
    let statuses: Vec<(String, String)> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["hold_id"].as_str().unwrap().to_owned(), h["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        statuses,
        vec![(released.to_string(), "released".into()), (lapsed.to_string(), "expired".into()), (live.to_string(), "active".into())],
        "newest first, each as it stands now"
    );
    let expired = api.get(&owner, &format!("/accounts/{id}/holds?status=expired")).await;
    assert_eq!(expired.body["items"].as_array().map(Vec::len), Some(1), "{}", expired.body);
    assert_eq!((&expired.body["items"][0]["released"], &expired.body["items"][0]["ended_at"].is_string()), (&json!(3), &true));

    // Page by page with the cursor, one at a time.
    let first = api.get(&owner, &format!("/accounts/{id}/holds?limit=1")).await;
    let cursor = first.body["next_cursor"].as_str().expect("a next page").to_owned();
    let second = api.get(&owner, &format!("/accounts/{id}/holds?limit=1&cursor={cursor}")).await;
    assert_eq!(second.body["items"][0]["hold_id"], json!(lapsed.to_string()));
    api.get(&owner, &format!("/accounts/{}/holds?cursor={cursor}", uuid::Uuid::new_v4())).await.assert_problem(400, "validation_failed");

    let one = api.get(&owner, &format!("/accounts/{id}/holds/{live}")).await;
    one.assert_ok();
    assert_eq!((&one.body["status"], &one.body["amount"], &one.body["captured"]), (&json!("active"), &json!(5), &json!(null)));
    api.get(&owner, &format!("/accounts/{id}/holds/{}", uuid::Uuid::now_v7())).await.assert_problem(404, "hold_not_found");
    api.get(&owner, &format!("/accounts/{id}/holds?status=pending")).await.assert_problem(400, "validation_failed");
    api.get(&owner, &format!("/accounts/{id}/holds/not-a-uuid")).await.assert_problem(400, "validation_failed");
    // Someone else's account, or hold on it, is a 404 as a missing one.
    let stranger = user();
    api.get(&stranger, &format!("/accounts/{id}/holds")).await.assert_problem(404, "account_not_found");
    api.get(&stranger, &format!("/accounts/{id}/holds/{live}")).await.assert_problem(404, "account_not_found");
    api.get(&owner, &format!("/accounts/{id}/holds?min_version=8")).await.assert_problem(409, "not_yet_consistent");
}
