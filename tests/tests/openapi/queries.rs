//! The query API's router driven through every response docs/openapi.json
//! documents for it (each checked against the document), then a check that
//! none was left out. The read model is in memory, filled as the projector
//! fills it (`change_for`); 503 comes from the load shedder while its one
//! slot is taken.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono::{TimeZone, Utc};
use ledgerline_shared::domain::{AccountEvent, Amount, Reference};
use ledgerline_shared::read_model::memory::InMemoryReadModel;
use ledgerline_shared::read_model::{ReadModelStore, change_for};
use ledgerline_tests::gateway_event::{Caller, RouterAnswer, api_gateway_v2_event, call_router};
use query_api::metrics::{MemorySink, Metrics};
use query_api::{AppState, QuerySettings};
use serde_json::Value;
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

    let settings = QuerySettings {
        max_in_flight: 1,
        queue_wait: Duration::from_millis(1),
        cursor_secret: b"openapi-test".to_vec(),
        ..QuerySettings::default()
    };
    let state = AppState::new(store, None, &settings, Metrics::new(Arc::new(MemorySink::default())));
    let api = Queries { contract: Contract::load(), router: query_api::router(state.clone()), state };

    // GET /accounts: two pages of one, and the refusals.
    let page = api.get(200, "/accounts", "/accounts", "limit=1", ALICE, &[]).await;
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let last = api.get(200, "/accounts", "/accounts", &format!("limit=1&cursor={cursor}"), ALICE, &[]).await;
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
    api.get(200, template, &format!("/accounts/{b}/transactions"), "", ALICE, &[]).await;
    api.get(400, template, &path, &format!("cursor={cursor}x"), ALICE, &[]).await;
    api.get(401, template, &path, "", NOBODY, &[]).await;
    api.get(404, template, &format!("/accounts/{}/transactions", Uuid::new_v4()), "", ALICE, &[]).await;
    api.get(409, template, &path, "min_version=4", ALICE, &[]).await;

    // 503: the shedder's one slot is taken for as long as this holds it.
    let slot = api.state.shedder().admit().await.expect("a free slot");
    for (template, path) in [("/accounts", "/accounts".to_owned()), ("/accounts/{id}", format!("/accounts/{a}")), (template, path)] {
        api.get(503, template, &path, "", ALICE, &[]).await;
    }
    drop(slot);

    let contract = &api.contract;
    let missing: Vec<_> = contract.documented("query-api").difference(&contract.seen()).cloned().collect();
    assert!(missing.is_empty(), "documented but never answered: {missing:?}");
}
