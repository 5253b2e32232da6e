//! The query API's router driven through every response docs/openapi.json
//! documents for it (each checked against the document), then a check that
//! none was left out. The read model is in memory, filled as the projector
//! fills it (`change_for`); 503 comes from the load shedder while its one
//! slot is taken. Account `b` has a hold of each kind: captured into
//! another account (`c`), captured out of the ledger, released, past its
//! expiry (not recorded yet) and active.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono::{Duration as Span, TimeZone, Utc};
use ledgerline_shared::domain::{AccountEvent, Amount, HoldTransfer, Reference};
use ledgerline_shared::read_model::memory::InMemoryReadModel;
use ledgerline_shared::read_model::{ReadModelStore, change_for};
use ledgerline_tests::gateway_event::{Caller, RouterAnswer, api_gateway_v2_event, call_router};
use query_api::metrics::{MemorySink, Metrics};
use query_api::{AppState, QuerySettings};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::contract::Contract;

const ALICE: Caller<'static> = Some(("alice", false));
const NOBODY: Caller<'static> = None;

struct Queries {
    contract: Contract,
    state: AppState,
    router: Router,
}

impl Queries {
    /// GET `template` at `path?query`, checked against the document.
    async fn get(&self, status: u16, template: &str, path: &str, query: &str, caller: Caller<'_>, headers: &[(&str, &str)]) -> Value {
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let answer: RouterAnswer = call_router(&self.router, &api_gateway_v2_event("GET", path, query, caller, &headers, None)).await;
        self.contract.check("GET", template, &answer);
        assert_eq!(answer.status, status, "GET {path}?{query}: {}", String::from_utf8_lossy(&answer.body));
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
    }
}

async fn apply(store: &InMemoryReadModel, account: Uuid, version: u64, event: AccountEvent) {
    store.apply(&change_for(account, version, &event)).await.unwrap();
}

#[tokio::test]
async fn every_documented_query_response_conforms_to_the_document() {
    let store = Arc::new(InMemoryReadModel::default());
    let at = |second| Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, second).unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for account in [a, b] {
        let opened = AccountEvent::Opened {
            account_id: account,
            owner_id: "alice".into(),
            currency: "EUR".parse().unwrap(),
            overdraft_limit: 0,
            at: at(0),
        };
        apply(&store, account, 1, opened).await;
    }
    let salary = Some(Reference::new("salary").unwrap());
    apply(&store, a, 2, AccountEvent::Deposited { amount: Amount::new(1000).unwrap(), balance_after: 1000, reference: salary, at: at(1) })
        .await;
    let (transfer_id, amount) = (Uuid::now_v7(), Amount::new(400).unwrap());
    let sent = AccountEvent::TransferSent { transfer_id, to_account_id: b, amount, balance_after: 600, reference: None, at: at(2) };
    apply(&store, a, 3, sent).await;
    let received =
        AccountEvent::TransferReceived { transfer_id, from_account_id: a, amount, balance_after: 400, reference: None, at: at(2) };
    apply(&store, b, 2, received).await;

    // Holds on b (balance 400), in the order their (time-ordered) ids sort.
    let c = Uuid::new_v4();
    let opened =
        AccountEvent::Opened { account_id: c, owner_id: "carol".into(), currency: "EUR".parse().unwrap(), overdraft_limit: 0, at: at(0) };
    apply(&store, c, 1, opened).await;
    let mut holds: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    holds.sort();
    let [to_c, out, released, expired, active] = <[Uuid; 5]>::try_from(holds).unwrap();
    let later = Utc::now() + Span::days(7);
    let placements =
        [(to_c, 100, later), (out, 50, later), (released, 30, later), (expired, 20, Utc::now() - Span::hours(1)), (active, 10, later)];
    for (version, (hold_id, amount, expires_at)) in (3..).zip(placements) {
        let reference = Some(Reference::new("hotel").unwrap()).filter(|_| hold_id == to_c);
        let placed = AccountEvent::HoldPlaced { hold_id, amount: Amount::new(amount).unwrap(), reference, expires_at, at: at(3) };
        apply(&store, b, version, placed).await;
    }
    let (capture_id, sixty) = (Uuid::now_v7(), Amount::new(60).unwrap());
    let transfer = Some(HoldTransfer { transfer_id: capture_id, to_account_id: c });
    let into_c =
        AccountEvent::HoldCaptured { hold_id: to_c, amount: sixty, released: 40, balance_after: 340, transfer, reference: None, at: at(4) };
    apply(&store, b, 8, into_c).await;
    let received = AccountEvent::TransferReceived {
        transfer_id: capture_id,
        from_account_id: b,
        amount: sixty,
        balance_after: 60,
        reference: None,
        at: at(4),
    };
    apply(&store, c, 2, received).await;
    let fifty = Amount::new(50).unwrap();
    let out_of_the_ledger = AccountEvent::HoldCaptured {
        hold_id: out,
        amount: fifty,
        released: 0,
        balance_after: 290,
        transfer: None,
        reference: None,
        at: at(5),
    };
    apply(&store, b, 9, out_of_the_ledger).await;
    apply(&store, b, 10, AccountEvent::HoldReleased { hold_id: released, amount: Amount::new(30).unwrap(), at: at(6) }).await;

    // An entry from carol's account c to a new account d of alice's.
    let (d, entry_id) = (Uuid::new_v4(), Uuid::now_v7());
    let opened =
        AccountEvent::Opened { account_id: d, owner_id: "alice".into(), currency: "EUR".parse().unwrap(), overdraft_limit: 0, at: at(0) };
    apply(&store, d, 1, opened).await;
    let ten = Amount::new(10).unwrap();
    let debited = AccountEvent::EntryDebited { entry_id, amount: ten, balance_after: 50, reference: None, at: at(7) };
    apply(&store, c, 3, debited).await;
    apply(&store, d, 2, AccountEvent::EntryCredited { entry_id, amount: ten, balance_after: 10, reference: None, at: at(7) }).await;

    let settings = QuerySettings {
        max_in_flight: 1,
        queue_wait: Duration::from_millis(1),
        cursor_secret: b"openapi-test".to_vec(),
        ..QuerySettings::default()
    };
    let state = AppState::new(store, None, &settings, Metrics::new(Arc::new(MemorySink::default())));
    let api = Queries { contract: Contract::load(), router: query_api::router(state.clone()), state };

    // GET /accounts: alice's three accounts in two pages, and the refusals.
    let page = api.get(200, "/accounts", "/accounts", "limit=2", ALICE, &[]).await;
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let last = api.get(200, "/accounts", "/accounts", &format!("limit=2&cursor={cursor}"), ALICE, &[]).await;
    assert!(last["next_cursor"].is_null());
    api.get(400, "/accounts", "/accounts", "limit=0", ALICE, &[]).await;
    api.get(401, "/accounts", "/accounts", "", NOBODY, &[]).await;
    api.get(403, "/accounts", "/accounts", "owner_id=bob", ALICE, &[]).await;

    // GET /accounts/{id}: 200, 304 and the refusals.
    let template = "/accounts/{id}";
    let path = format!("/accounts/{a}");
    api.get(200, template, &path, "", ALICE, &[]).await;
    api.get(304, template, &path, "", ALICE, &[("if-none-match", "\"3\"")]).await;
    api.get(400, template, "/accounts/not-a-uuid", "", ALICE, &[]).await;
    api.get(401, template, &path, "", NOBODY, &[]).await;
    api.get(404, template, &format!("/accounts/{}", Uuid::new_v4()), "", ALICE, &[]).await;
    api.get(409, template, &path, "min_version=4", ALICE, &[]).await;

    // GET /accounts/{id}/transactions: every movement kind, page by page.
    let template = "/accounts/{id}/transactions";
    let path = format!("/accounts/{a}/transactions");
    let newest = api.get(200, template, &path, "limit=1", ALICE, &[]).await;
    assert_eq!(newest["items"][0]["kind"], "transfer_out");
    let cursor = newest["next_cursor"].as_str().expect("an older page").to_owned();
    let older = api.get(200, template, &path, &format!("limit=1&cursor={cursor}"), ALICE, &[]).await;
    assert_eq!((older["items"][0]["kind"].as_str(), older["next_cursor"].as_str()), (Some("deposit"), None));
    let captures = api.get(200, template, &format!("/accounts/{b}/transactions"), "", ALICE, &[]).await;
    let kinds: Value = captures["items"].as_array().unwrap().iter().map(|t| json!([t["kind"], t["hold_id"]])).collect();
    assert_eq!(kinds, json!([["withdrawal", out], ["transfer_out", to_c], ["transfer_in", null]]));
    api.get(400, template, &path, &format!("cursor={cursor}x"), ALICE, &[]).await;
    api.get(401, template, &path, "", NOBODY, &[]).await;
    api.get(404, template, &format!("/accounts/{}/transactions", Uuid::new_v4()), "", ALICE, &[]).await;
    api.get(409, template, &path, "min_version=4", ALICE, &[]).await;

    let transactions_cursor = cursor;
    let (transactions_template, transactions_path) = (template, path);

    // GET /accounts/{id}/holds: every status, newest first, page by page.
    let template = "/accounts/{id}/holds";
    let path = format!("/accounts/{b}/holds");
    let statuses = |page: &Value| -> Vec<(Value, Value)> {
        page["items"].as_array().unwrap().iter().map(|h| (h["hold_id"].clone(), h["status"].clone())).collect()
    };
    let hold = |id: Uuid, status: &str| (Value::from(id.to_string()), Value::from(status));
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = api.get(200, template, &path, &query, ALICE, &[]).await;
        seen.extend(statuses(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first =
        vec![hold(active, "active"), hold(expired, "expired"), hold(released, "released"), hold(out, "captured"), hold(to_c, "captured")];
    assert_eq!(seen, newest_first);
    for (status, only) in [("active", active), ("expired", expired), ("released", released)] {
        let page = api.get(200, template, &path, &format!("status={status}"), ALICE, &[]).await;
        assert_eq!(statuses(&page), vec![hold(only, status)]);
    }
    let captured = api.get(200, template, &path, "status=captured&min_version=10", ALICE, &[]).await;
    assert_eq!(statuses(&captured), vec![hold(out, "captured"), hold(to_c, "captured")]);
    api.get(200, template, &format!("/accounts/{a}/holds"), "", ALICE, &[]).await;
    let foreign_cursor = format!("cursor={transactions_cursor}");
    for bad in ["status=pending", "limit=201", "hold_id=1", foreign_cursor.as_str()] {
        api.get(400, template, &path, bad, ALICE, &[]).await;
    }
    api.get(401, template, &path, "", NOBODY, &[]).await;
    api.get(404, template, &format!("/accounts/{}/holds", Uuid::new_v4()), "", ALICE, &[]).await;
    api.get(409, template, &path, "min_version=11", ALICE, &[]).await;
    let holds_path = path;

    // GET /accounts/{id}/holds/{hold_id}: each kind, and the refusals.
    let template = "/accounts/{id}/holds/{hold_id}";
    let into_c = api.get(200, template, &format!("/accounts/{b}/holds/{to_c}"), "", ALICE, &[]).await;
    let end: Value =
        ["status", "captured", "released", "transfer_id", "to_account_id", "reference"].iter().map(|k| into_c[k].clone()).collect();
    assert_eq!(end, json!(["captured", 60, 40, capture_id, c, "hotel"]));
    let lapsed = api.get(200, template, &format!("/accounts/{b}/holds/{expired}"), "min_version=10", ALICE, &[]).await;
    assert_eq!(json!([lapsed["status"], lapsed["released"], lapsed["ended_at"]]), json!(["expired", 20, lapsed["expires_at"]]));
    for hold in [out, released, active] {
        api.get(200, template, &format!("/accounts/{b}/holds/{hold}"), "", ALICE, &[]).await;
    }
    api.get(400, template, &format!("/accounts/{b}/holds/not-a-uuid"), "", ALICE, &[]).await;
    api.get(400, template, &format!("/accounts/{b}/holds/{active}"), "limit=1", ALICE, &[]).await;
    api.get(401, template, &format!("/accounts/{b}/holds/{active}"), "", NOBODY, &[]).await;
    let missing_account = api.get(404, template, &format!("/accounts/{}/holds/{active}", Uuid::new_v4()), "", ALICE, &[]).await;
    assert_eq!(missing_account["code"], "account_not_found");
    let someone_elses = api.get(404, template, &format!("/accounts/{c}/holds/{to_c}"), "", ALICE, &[]).await;
    assert_eq!(someone_elses["code"], "account_not_found");
    let missing_hold = api.get(404, template, &format!("/accounts/{a}/holds/{active}"), "", ALICE, &[]).await;
    assert_eq!(missing_hold["code"], "hold_not_found");
    api.get(409, template, &format!("/accounts/{b}/holds/{active}"), "min_version=11", ALICE, &[]).await;
    let hold_path = format!("/accounts/{b}/holds/{active}");

    // GET /accounts/{id}/statement: JSON page by page, CSV, and the refusals.
    let template = "/accounts/{id}/statement";
    let path = format!("/accounts/{a}/statement");
    let day = "from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z";
    let first = api.get(200, template, &path, &format!("{day}&limit=1"), ALICE, &[]).await;
    assert_eq!((first["opening_balance"].as_i64(), first["closing_balance"].as_i64()), (Some(0), Some(600)), "{first}");
    assert_eq!((first["total_credits"].as_i64(), first["total_debits"].as_i64()), (Some(1000), Some(400)), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let second = api.get(200, template, &path, &format!("cursor={cursor}"), ALICE, &[]).await;
    assert_eq!((second["items"][0]["kind"].as_str(), second["next_cursor"].as_str()), (Some("transfer_out"), None));
    api.get(200, template, &path, &format!("{day}&limit=1"), ALICE, &[("accept", "text/csv")]).await;
    for bad in
        ["", "from=yesterday", "from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "from=2025-01-01T00:00:00Z&to=2026-03-01T00:00:00Z"]
    {
        api.get(400, template, &path, bad, ALICE, &[]).await;
    }
    api.get(400, template, &format!("/accounts/{b}/statement"), &format!("cursor={cursor}"), ALICE, &[]).await;
    api.get(401, template, &path, day, NOBODY, &[]).await;
    api.get(404, template, &format!("/accounts/{c}/statement"), day, ALICE, &[]).await;
    let statement_path = path;

    // GET /accounts/{id}/balance: as of a moment, holds included.
    let template = "/accounts/{id}/balance";
    let path = format!("/accounts/{b}/balance");
    let then = api.get(200, template, &path, "at=2026-03-01T12:00:03Z", ALICE, &[]).await;
    assert_eq!(
        (then["balance"].as_i64(), then["held"].as_i64(), then["available_balance"].as_i64()),
        (Some(400), Some(210), Some(190)),
        "{then}"
    );
    api.get(400, template, &path, "at=2999-01-01T00:00:00Z", ALICE, &[]).await;
    api.get(401, template, &path, "at=2026-03-01T12:00:03Z", NOBODY, &[]).await;
    api.get(404, template, &format!("/accounts/{c}/balance"), "at=2026-03-01T12:00:03Z", ALICE, &[]).await;
    let balance_path = path;

    // GET /transfers/{transfer_id} and GET /entries/{entry_id}.
    let template = "/transfers/{transfer_id}";
    let transfer_path = format!("/transfers/{transfer_id}");
    let found = api.get(200, template, &transfer_path, "", ALICE, &[]).await;
    assert_eq!((found["from_account_id"].as_str(), found["amount"].as_i64()), (Some(a.to_string().as_str()), Some(400)), "{found}");
    let capture = api.get(200, template, &format!("/transfers/{capture_id}"), "", ALICE, &[]).await;
    assert_eq!(capture["hold_id"].as_str(), Some(to_c.to_string().as_str()), "{capture}");
    api.get(400, template, "/transfers/not-a-uuid", "", ALICE, &[]).await;
    api.get(401, template, &transfer_path, "", NOBODY, &[]).await;
    api.get(404, template, &format!("/transfers/{}", Uuid::new_v4()), "", ALICE, &[]).await;
    let template = "/entries/{entry_id}";
    let entry_path = format!("/entries/{entry_id}");
    let entry = api.get(200, template, &entry_path, "", ALICE, &[]).await;
    assert_eq!(entry["legs"].as_array().map(Vec::len), Some(2), "{entry}");
    api.get(400, template, "/entries/not-a-uuid", "", ALICE, &[]).await;
    api.get(401, template, &entry_path, "", NOBODY, &[]).await;
    api.get(404, template, &format!("/entries/{}", Uuid::new_v4()), "", ALICE, &[]).await;

    // 503: the shedder's one slot is taken for as long as this holds it.
    let slot = api.state.shedder().admit().await.expect("a free slot");
    for (template, path) in [
        ("/accounts", "/accounts".to_owned()),
        ("/accounts/{id}", format!("/accounts/{a}")),
        (transactions_template, transactions_path),
        ("/accounts/{id}/holds", holds_path),
        ("/accounts/{id}/holds/{hold_id}", hold_path),
        ("/accounts/{id}/statement", statement_path),
        ("/accounts/{id}/balance", balance_path),
        ("/transfers/{transfer_id}", transfer_path),
        ("/entries/{entry_id}", entry_path),
    ] {
        api.get(503, template, &path, "", ALICE, &[]).await;
    }
    drop(slot);

    let contract = &api.contract;
    let missing: Vec<_> = contract.documented("query-api").difference(&contract.seen()).cloned().collect();
    assert!(missing.is_empty(), "documented but never answered: {missing:?}");
}
