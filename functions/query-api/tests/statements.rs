//! Statements and balances as of a past time, against the DynamoDB
//! emulator: where a period opens and closes, totals, pages that agree,
//! CSV, and the refusals.

mod support;

use ledgerline_shared::domain::{AccountEvent, Amount, Reference};
use ledgerline_shared::read_model::{ApplyOutcome, Folded, ReadModelStore, change_for};
use serde_json::{Value, json};
use support::*;
use uuid::Uuid;

async fn api() -> (Api, std::sync::Arc<ledgerline_shared::read_model::dynamo::DynamoReadModel>) {
    let store = dynamo_store().await;
    let api = Api::new(store.clone(), None, &settings());
    (api, store)
}

/// 12:00:00 opened; deposits of 10 at 12:00:02..=12:00:06 (versions 2..=6,
/// balances 10..=50); a withdrawal of 15 at 12:00:07 (version 7, balance 35).
async fn account_with_history(store: &dyn ReadModelStore, owner: &str) -> Uuid {
    let id = account_with_deposits(store, owner, 5).await;
    let withdrawn = AccountEvent::Withdrawn {
        amount: Amount::new(15).unwrap(),
        balance_after: 35,
        reference: Some(Reference::new("=cash, \"atm\"").unwrap()),
        at: at(7),
    };
    assert_eq!(store.apply(&change_for(id, 7, &withdrawn)).await.unwrap(), ApplyOutcome::Applied);
    id
}

fn time(second: u32) -> String {
    at(second).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn versions(page: &Value) -> Vec<u64> {
    page["items"].as_array().unwrap().iter().map(|t| t["version"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_statement_opens_and_closes_on_the_balances_at_its_ends_and_its_items_add_up() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_history(store.as_ref(), &owner).await;
    // [12:00:03, 12:00:07): deposits at :03..:06 are in, the withdrawal at :07 is not.
    let page = api.get(&owner, &format!("/accounts/{id}/statement?from={}&to={}", time(3), time(7))).await;
    page.assert_ok();
    assert_eq!(versions(&page.body), vec![3, 4, 5, 6]);
    let head = json!({"account_id": id, "currency": "EUR", "from": "2026-03-01T12:00:03Z", "to": "2026-03-01T12:00:07Z",
                      "opening_balance": 10, "closing_balance": 50, "total_credits": 40, "total_debits": 0, "next_cursor": null});
    for (key, value) in head.as_object().unwrap() {
        assert_eq!(&page.body[key], value, "{key}");
    }
    assert_eq!(page.body["items"][0]["kind"], "deposit");

    // The whole day: opens at 0 (nothing before), debits counted.
    let whole = api.get(&owner, &format!("/accounts/{id}/statement?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z")).await;
    whole.assert_ok();
    assert_eq!(versions(&whole.body), vec![2, 3, 4, 5, 6, 7]);
    assert_eq!((whole.body["opening_balance"].as_i64(), whole.body["closing_balance"].as_i64()), (Some(0), Some(35)));
    assert_eq!((whole.body["total_credits"].as_i64(), whole.body["total_debits"].as_i64()), (Some(50), Some(15)));

    // A period before the account's first movement, and one after its last.
    let before = api.get(&owner, &format!("/accounts/{id}/statement?from=2026-02-01T00:00:00Z&to={}", time(1))).await;
    assert_eq!(
        (versions(&before.body), before.body["opening_balance"].as_i64(), before.body["closing_balance"].as_i64()),
        (vec![], Some(0), Some(0))
    );
    let after = api.get(&owner, &format!("/accounts/{id}/statement?from={}", time(8))).await;
    assert_eq!(
        (versions(&after.body), after.body["opening_balance"].as_i64(), after.body["closing_balance"].as_i64()),
        (vec![], Some(35), Some(35))
    );
}

#[tokio::test]
async fn every_page_repeats_the_periods_totals_and_the_pages_walk_every_item_once() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_history(store.as_ref(), &owner).await;
    let first = format!("/accounts/{id}/statement?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z&limit=4");
    let mut page = api.get(&owner, &first).await;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        page.assert_ok();
        pages += 1;
        assert_eq!((page.body["opening_balance"].as_i64(), page.body["closing_balance"].as_i64()), (Some(0), Some(35)));
        assert_eq!((page.body["total_credits"].as_i64(), page.body["total_debits"].as_i64()), (Some(50), Some(15)));
        seen.extend(versions(&page.body));
        let Some(cursor) = page.body["next_cursor"].as_str().map(str::to_owned) else { break };
        page = api.get(&owner, &format!("/accounts/{id}/statement?cursor={cursor}&limit=4")).await;
    }
    assert_eq!((seen, pages), (vec![2, 3, 4, 5, 6, 7], 2));

    // A cursor belongs to its account and its period.
    let cursor = api.get(&owner, &first).await.body["next_cursor"].as_str().unwrap().to_owned();
    let other = account_with_history(store.as_ref(), &owner).await;
    api.get(&owner, &format!("/accounts/{other}/statement?cursor={cursor}")).await.assert_problem(400, "validation_failed");
    api.get(&owner, &format!("/accounts/{id}/statement?cursor={cursor}&from={}", time(3))).await.assert_problem(400, "validation_failed");
    api.get(&owner, &format!("/accounts/{id}/statement?cursor={cursor}&from=2026-03-01T00:00:00Z")).await.assert_ok();
}

#[tokio::test]
async fn a_statement_in_csv_has_a_header_row_and_defused_text() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_history(store.as_ref(), &owner).await;
    let path = format!("/accounts/{id}/statement?from={}&limit=1", time(6));
    let response = api.send(get(&path).by(&owner).header("accept", "text/csv")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = String::from_utf8(response.raw.clone()).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "occurred_at,version,kind,amount,signed_amount,balance_after,currency,reference,counterparty_account_id,transfer_id,entry_id,hold_id"
    );
    assert_eq!(lines[1], "2026-03-01T12:00:06+00:00,6,deposit,10,10,50,EUR,d6,,,,");
    assert_eq!(lines.len(), 3, "one item a page, then the final line end: {text:?}");
    let cursor = response.header("x-next-cursor").expect("a next page").to_owned();
    let next = api.send(get(&format!("/accounts/{id}/statement?cursor={cursor}")).by(&owner).header("accept", "text/csv")).await;
    let text = String::from_utf8(next.raw.clone()).unwrap();
    assert!(text.contains("\r\n2026-03-01T12:00:07+00:00,7,withdrawal,15,-15,35,EUR,\"'=cash, \"\"atm\"\"\",,,,\r\n"), "{text:?}");
    assert_eq!(next.header("x-next-cursor"), None);
}

#[tokio::test]
async fn statement_refusals() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_history(store.as_ref(), &owner).await;
    let path = format!("/accounts/{id}/statement");
    api.send(get(&format!("{path}?from={}", time(0)))).await.assert_problem(401, "unauthorized");
    for query in [
        "".to_owned(),
        "?from=yesterday".to_owned(),
        format!("?from={}&to={}", time(5), time(5)),
        format!("?from={}&to={}", time(5), time(4)),
        "?from=2025-01-01T00:00:00Z&to=2026-03-01T00:00:00Z".to_owned(),
        format!("?from={}&limit=0", time(0)),
        format!("?from={}&colour=red", time(0)),
        "?cursor=forged".to_owned(),
    ] {
        api.get(&owner, &format!("{path}{query}")).await.assert_problem(400, "validation_failed");
    }
    // Someone else's account reads exactly like a missing one.
    let theirs = api.get(&user(), &format!("{path}?from={}", time(0))).await;
    let nobodys = api.get(&owner, &format!("/accounts/{}/statement?from={}", Uuid::new_v4(), time(0))).await;
    theirs.assert_problem(404, "account_not_found");
    assert_eq!(theirs.body, nobodys.body);
    api.send(get(&format!("{path}?from={}", time(0))).by_admin("ops")).await.assert_ok();
}

#[tokio::test]
async fn the_balance_at_a_time_is_after_every_movement_up_to_it() {
    let (api, store) = api().await;
    let owner = user();
    let id = account_with_history(store.as_ref(), &owner).await;
    let balance = |second: u32| {
        let (api, owner) = (&api, &owner);
        async move { api.get(owner, &format!("/accounts/{id}/balance?at={}", time(second))).await }
    };
    let at_four = balance(4).await;
    at_four.assert_ok();
    assert_eq!(
        at_four.body,
        json!({"account_id": id, "currency": "EUR", "at": "2026-03-01T12:00:04Z", "balance": 30, "held": 0, "available_balance": 30, "version": 4})
    );
    assert_eq!(balance(1).await.body["balance"], 0);
    assert_eq!(balance(1).await.body["version"], 0);
    assert_eq!(balance(9).await.body["balance"], 35);
    api.get(&owner, &format!("/accounts/{id}/balance")).await.assert_problem(400, "validation_failed");
    api.get(&owner, &format!("/accounts/{id}/balance?at=2999-01-01T00:00:00Z")).await.assert_problem(400, "validation_failed");
    api.get(&user(), &format!("/accounts/{id}/balance?at={}", time(4))).await.assert_problem(404, "account_not_found");
}

#[tokio::test]
async fn a_period_with_a_row_not_written_yet_is_a_503_not_a_statement_that_does_not_add_up() {
    let (api, store) = api().await;
    let owner = user();
    // The account at version 4 with the rows of versions 2 and 4 only, as a
    // run's rows land one by one: version 3's row is still on its way.
    let id = Uuid::new_v4();
    let mut folded = Folded::default();
    let opened =
        AccountEvent::Opened { account_id: id, owner_id: owner.clone(), currency: "EUR".parse().unwrap(), overdraft_limit: 0, at: at(0) };
    assert!(folded.push(change_for(id, 1, &opened)));
    for version in 2..=4_u64 {
        let deposited = AccountEvent::Deposited {
            amount: Amount::new(10).unwrap(),
            balance_after: 10 * (version as i64 - 1),
            reference: None,
            at: at(version as u32),
        };
        assert!(folded.push(change_for(id, version, &deposited)));
    }
    let rows: Vec<_> = folded.rows.iter().filter(|row| row.version != 3).cloned().collect();
    assert!(store.replace(folded.view.as_ref().unwrap(), &rows, &[]).await.unwrap());
    let answer = api.get(&owner, &format!("/accounts/{id}/statement?from={}", time(0))).await;
    answer.assert_problem(503, "service_unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"));
    // Once the row is there, the statement adds up.
    // (The account item is already at version 4: only the rows are written.)
    store.replace(folded.view.as_ref().unwrap(), &folded.rows, &[]).await.unwrap();
    let answer = api.get(&owner, &format!("/accounts/{id}/statement?from={}", time(0))).await;
    answer.assert_ok();
    assert_eq!((answer.body["closing_balance"].as_i64(), answer.body["total_credits"].as_i64()), (Some(30), Some(30)));
}
