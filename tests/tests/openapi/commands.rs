//! The command API's router driven through every response docs/openapi.json
//! documents for it (each checked against the document), then a check that
//! none was left out. The store is in memory; 503 comes from a PostgreSQL
//! store with nothing listening, and 409 from a write that slips in between
//! a command's read and its append while the store's writer lock is held.
//! Not driven, since a status is checked once whatever its code: 422
//! `too_many_holds` (1,000 active holds on one account).

use std::sync::Arc;
use std::task::Poll;

use axum::Router;
use chrono::Utc;
use command_api::{AppState, CommandSettings, router};
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::domain::{AccountCommand, AccountStatus, Amount, decide};
use ledgerline_shared::event_store::{CommandRead, EventMetadata, EventStore, InMemoryEventStore, PostgresEventStore, StoreSettings};
use ledgerline_tests::gateway_event::{Caller, RouterAnswer, api_gateway_v2_event, call_router};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::contract::Contract;

const ALICE: Caller<'static> = Some(("alice", false));
const BOB: Caller<'static> = Some(("bob", false));
const ROOT: Caller<'static> = Some(("root", true));
const NOBODY: Caller<'static> = None;

const HOLDS: &str = "/accounts/{id}/holds";
const CAPTURE: &str = "/accounts/{id}/holds/{hold_id}/capture";
const RELEASE: &str = "/accounts/{id}/holds/{hold_id}/release";

const ROUTES_WITH_ID: [&str; 8] = [
    "/accounts/{id}/deposits",
    "/accounts/{id}/withdrawals",
    "/accounts/{id}/freeze",
    "/accounts/{id}/unfreeze",
    "/accounts/{id}/close",
    HOLDS,
    CAPTURE,
    RELEASE,
];

fn key() -> String {
    Uuid::new_v4().to_string()
}

/// A POST as API Gateway sends it: JSON, with an Idempotency-Key when given.
fn post(path: &str, caller: Caller<'_>, key: Option<&str>, body: &str) -> Value {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    headers.extend(key.map(|key| ("idempotency-key".to_owned(), key.to_owned())));
    api_gateway_v2_event("POST", path, "", caller, &headers, Some(body))
}

/// A body each route accepts (an account id for a transfer's source).
fn valid_body(template: &str, account: Uuid, target: Uuid) -> String {
    match template {
        "/accounts" => r#"{"currency":"EUR"}"#.into(),
        "/transfers" => format!(r#"{{"from_account_id":"{account}","to_account_id":"{target}","amount":10}}"#),
        "/entries" => format!(
            r#"{{"debits":[{{"account_id":"{account}","amount":10,"currency":"EUR"}}],"credits":[{{"account_id":"{target}","amount":10,"currency":"EUR"}}]}}"#
        ),
        "/accounts/{id}/deposits" | "/accounts/{id}/withdrawals" | HOLDS => r#"{"amount":10}"#.into(),
        CAPTURE => r#"{"amount":5}"#.into(),
        _ => "{}".into(),
    }
}

/// `template` with `account` for `{id}` (and a hold no account has for `{hold_id}`).
fn concrete(template: &str, account: impl std::fmt::Display) -> String {
    on_hold(template, account, Uuid::now_v7())
}

/// `template` with `account` for `{id}` and `hold` for `{hold_id}`.
fn on_hold(template: &str, account: impl std::fmt::Display, hold: impl std::fmt::Display) -> String {
    template.replace("{id}", &account.to_string()).replace("{hold_id}", &hold.to_string())
}

fn body(answer: &RouterAnswer) -> Value {
    serde_json::from_slice(&answer.body).unwrap()
}

/// The `names` fields of `value`, in order.
fn fields(value: &Value, names: &[&str]) -> Value {
    names.iter().map(|name| value[name].clone()).collect()
}

/// A problem's code.
fn code(answer: &RouterAnswer) -> String {
    body(answer)["code"].as_str().unwrap_or_default().to_owned()
}

fn id(answer: &RouterAnswer, pointer: &str) -> Uuid {
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    body.pointer(pointer).and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{pointer} in {body}"))
}

struct Commands {
    contract: Contract,
    repository: AccountRepository,
    /// One attempt per command, so one conflict is a 409.
    router: Router,
    /// At most one open account per owner.
    limited: Router,
    /// PostgreSQL that cannot be reached.
    down: Router,
}

impl Commands {
    fn new() -> Self {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
        let one_attempt = CommandSettings { max_attempts: 1, ..CommandSettings::default() };
        let state = |repository| router(AppState::with_settings(repository, one_attempt.clone()));
        let limited_store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new(StoreSettings::default()));
        let pool = ledgerline_shared::db::pool(&DatabaseSettings {
            url: "postgres://postgres:postgres@127.0.0.1:1/ledgerline".into(),
            pool_size: 1,
            connect_timeout: std::time::Duration::from_millis(500),
            ca_file: None,
        })
        .unwrap();
        let unreachable: Arc<dyn EventStore> = Arc::new(PostgresEventStore::new(pool, StoreSettings::default()));
        Self {
            contract: Contract::load(),
            repository: AccountRepository::new(store.clone(), 0),
            router: state(AccountRepository::new(store, 10)),
            limited: state(AccountRepository::new(limited_store, 10).with_open_account_limit(1)),
            down: state(AccountRepository::new(unreachable, 10)),
        }
    }

    /// `event` through `router`, checked as an answer to POST `template`.
    async fn send_to(&self, router: &Router, template: &str, event: Value) -> RouterAnswer {
        let answer = call_router(router, &event).await;
        self.contract.check("POST", template, &answer);
        answer
    }

    async fn send(&self, template: &str, event: Value) -> RouterAnswer {
        self.send_to(&self.router, template, event).await
    }

    async fn expect(&self, status: u16, template: &str, event: Value) -> RouterAnswer {
        let answer = self.send(template, event).await;
        assert_eq!(answer.status, status, "POST {template}: {}", String::from_utf8_lossy(&answer.body));
        answer
    }

    async fn open(&self, caller: Caller<'_>) -> Uuid {
        id(&self.expect(201, "/accounts", post("/accounts", caller, None, r#"{"currency":"EUR"}"#)).await, "/account_id")
    }

    async fn deposit(&self, account: Uuid, amount: i64) {
        let event = post(&concrete("/accounts/{id}/deposits", account), ROOT, Some(&key()), &format!(r#"{{"amount":{amount}}}"#));
        self.expect(200, "/accounts/{id}/deposits", event).await;
    }

    /// Places a hold of `amount` on `account` (Alice's); its id.
    async fn place(&self, account: Uuid, amount: i64) -> Uuid {
        let event = post(&concrete(HOLDS, account), ALICE, Some(&key()), &format!(r#"{{"amount":{amount}}}"#));
        id(&self.expect(201, HOLDS, event).await, "/hold_id")
    }

    /// `event` answered after another write to `account` slipped in between
    /// the command's read and its append: the store's writer lock is held
    /// while the command runs up to its append, then a deposit (an unfreeze
    /// on a frozen account) is committed through that lock.
    async fn conflicting(&self, template: &str, event: Value, account: Uuid) -> RouterAnswer {
        let read = CommandRead { streams: vec![account], idempotency: None };
        let (input, lock) = self.repository.lock_for_command(read).await.unwrap();
        let mut call = std::pin::pin!(call_router(&self.router, &event));
        let finished = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_ready())).await;
        assert!(!finished, "POST {template} waits for the writer lock");
        let current = input.account(account).expect("the account exists");
        let command = match current.status {
            AccountStatus::Frozen => AccountCommand::Unfreeze,
            _ => AccountCommand::Deposit { amount: Amount::new(1).unwrap(), reference: None },
        };
        let events = decide(Some(current), &command, Utc::now()).unwrap();
        let change = self.repository.stage(account, Some(current), &events).unwrap();
        let metadata = EventMetadata::now("openapi-conflict", Uuid::now_v7(), "tests");
        self.repository.commit_locked(lock, vec![change], metadata, None).await.unwrap();
        let answer = call.await;
        self.contract.check("POST", template, &answer);
        answer
    }
}

#[tokio::test]
async fn every_documented_command_response_conforms_to_the_document() {
    let api = Commands::new();
    let contract = &api.contract;

    // 201, 403, 409 (the open-account limit), 422 (a key reused) on POST /accounts.
    let opened = api.expect(201, "/accounts", post("/accounts", ALICE, None, r#"{"currency":"EUR"}"#)).await;
    let location = opened.headers["location"].to_str().unwrap().to_owned();
    let a = id(&opened, "/account_id");
    assert_eq!(location, format!("/accounts/{a}"));
    let b = api.open(BOB).await;
    api.expect(403, "/accounts", post("/accounts", ALICE, None, r#"{"currency":"EUR","overdraft_limit":100}"#)).await;
    let admin_overdraft = api.expect(201, "/accounts", post("/accounts", ROOT, None, r#"{"currency":"CHF","overdraft_limit":100}"#)).await;
    assert_eq!(serde_json::from_slice::<Value>(&admin_overdraft.body).unwrap()["overdraft_limit"], 100);
    let reused = key();
    api.expect(201, "/accounts", post("/accounts", ALICE, Some(&reused), r#"{"currency":"EUR"}"#)).await;
    api.expect(422, "/accounts", post("/accounts", ALICE, Some(&reused), r#"{"currency":"JPY"}"#)).await;
    let first = api.send_to(&api.limited, "/accounts", post("/accounts", BOB, None, r#"{"currency":"EUR"}"#)).await;
    assert_eq!(first.status, 201);
    let limited = api.send_to(&api.limited, "/accounts", post("/accounts", BOB, None, r#"{"currency":"EUR"}"#)).await;
    assert_eq!(limited.status, 409, "{}", String::from_utf8_lossy(&limited.body));

    // Money: 200, 201 and the business refusals.
    api.deposit(a, 1000).await;
    let withdrawal = post(&concrete("/accounts/{id}/withdrawals", a), ALICE, Some(&key()), r#"{"amount":250,"reference":"rent"}"#);
    api.expect(200, "/accounts/{id}/withdrawals", withdrawal).await;
    let transfer = post("/transfers", ALICE, Some(&key()), &valid_body("/transfers", a, b));
    let sent = api.expect(201, "/transfers", transfer).await;
    assert_eq!(id(&sent, "/to/account_id"), b);
    let to_self = post("/transfers", ALICE, Some(&key()), &valid_body("/transfers", a, a));
    api.expect(422, "/transfers", to_self).await;
    // Entries: 201 (only the caller's account in `accounts`), and a refusal
    // from the request alone and one on an account's state.
    let entry = body(&api.expect(201, "/entries", post("/entries", ALICE, Some(&key()), &valid_body("/entries", a, b))).await);
    assert_eq!(entry["accounts"].as_array().map(|accounts| accounts.len()), Some(1), "{entry}");
    let unbalanced = format!(
        r#"{{"debits":[{{"account_id":"{a}","amount":10,"currency":"EUR"}}],"credits":[{{"account_id":"{b}","amount":9,"currency":"EUR"}}]}}"#
    );
    let refused = api.expect(422, "/entries", post("/entries", ALICE, Some(&key()), &unbalanced)).await;
    assert_eq!(code(&refused), "unbalanced_entry");
    let z = api.open(ALICE).await;
    let short = api.expect(422, "/entries", post("/entries", ALICE, Some(&key()), &valid_body("/entries", z, b))).await;
    assert_eq!((code(&short), body(&short)["account_id"].as_str()), ("insufficient_funds".into(), Some(z.to_string().as_str())));
    let overdrawn = post(&concrete("/accounts/{id}/withdrawals", z), ALICE, Some(&key()), r#"{"amount":1}"#);
    api.expect(422, "/accounts/{id}/withdrawals", overdrawn).await;

    // Holds: 201; 200 for part of one captured into another account, a whole
    // one out of the ledger (no body), a release; and the refusals.
    let h = api.open(ALICE).await;
    api.deposit(h, 1000).await;
    let body_of_hold = r#"{"amount":300,"reference":"hotel","expires_in_seconds":3600}"#;
    let placed = body(&api.expect(201, HOLDS, post(&concrete(HOLDS, h), ALICE, Some(&key()), body_of_hold)).await);
    assert_eq!(fields(&placed, &["status", "balance", "held", "available_balance"]), json!(["active", 1000, 300, 700]));
    let first = placed["hold_id"].as_str().unwrap().parse::<Uuid>().unwrap();
    let into_b = format!(r#"{{"amount":200,"to_account_id":"{b}","reference":"night 1"}}"#);
    let captured = body(&api.expect(200, CAPTURE, post(&on_hold(CAPTURE, h, first), ALICE, Some(&key()), &into_b)).await);
    let balances = fields(&captured, &["status", "captured", "released", "balance", "held", "available_balance"]);
    assert_eq!(balances, json!(["captured", 200, 100, 800, 0, 800]));
    assert_eq!((captured["to"]["account_id"].as_str(), captured["transfer_id"].is_string()), (Some(b.to_string().as_str()), true));
    let again = api.expect(422, CAPTURE, post(&on_hold(CAPTURE, h, first), ALICE, Some(&key()), "")).await;
    assert_eq!(code(&again), "hold_not_active");
    let second = api.place(h, 100).await;
    let whole = body(&api.expect(200, CAPTURE, post(&on_hold(CAPTURE, h, second), ALICE, Some(&key()), "")).await);
    assert_eq!(fields(&whole, &["captured", "released", "balance"]), json!([100, 0, 700]));
    assert!(whole.get("transfer_id").is_none() && whole.get("to").is_none(), "{whole}");
    let third = api.place(h, 50).await;
    for (capture, expected) in
        [(r#"{"amount":51}"#.to_owned(), "capture_exceeds_hold"), (format!(r#"{{"to_account_id":"{h}"}}"#), "same_account")]
    {
        let refused = api.expect(422, CAPTURE, post(&on_hold(CAPTURE, h, third), ALICE, Some(&key()), &capture)).await;
        assert_eq!(code(&refused), expected);
    }
    let too_much = api.expect(422, HOLDS, post(&concrete(HOLDS, h), ALICE, Some(&key()), r#"{"amount":651}"#)).await;
    assert_eq!(code(&too_much), "insufficient_funds");
    let close_h = api.expect(422, "/accounts/{id}/close", post(&concrete("/accounts/{id}/close", h), ALICE, None, "")).await;
    assert_eq!(code(&close_h), "active_holds");
    let released = body(&api.expect(200, RELEASE, post(&on_hold(RELEASE, h, third), ALICE, None, "")).await);
    assert_eq!(fields(&released, &["status", "released", "held", "available_balance"]), json!(["released", 50, 0, 700]));
    let again = api.expect(422, RELEASE, post(&on_hold(RELEASE, h, third), ALICE, None, "{}")).await;
    assert_eq!(code(&again), "hold_not_active");
    for template in [CAPTURE, RELEASE] {
        let unknown = api.expect(404, template, post(&concrete(template, h), ALICE, Some(&key()), "")).await;
        assert_eq!(code(&unknown), "hold_not_found");
        api.expect(400, template, post(&on_hold(template, h, "not-a-hold"), ALICE, Some(&key()), "")).await;
    }

    // Status changes: 200, 403 for an owner, and the refusals.
    let f = api.open(ALICE).await;
    for template in ["/accounts/{id}/freeze", "/accounts/{id}/unfreeze"] {
        api.expect(403, template, post(&concrete(template, f), ALICE, None, "")).await;
    }
    api.expect(200, "/accounts/{id}/freeze", post(&concrete("/accounts/{id}/freeze", f), ROOT, None, "")).await;
    let frozen_deposit = post(&concrete("/accounts/{id}/deposits", f), ALICE, Some(&key()), r#"{"amount":5}"#);
    api.expect(422, "/accounts/{id}/deposits", frozen_deposit).await;
    api.expect(200, "/accounts/{id}/unfreeze", post(&concrete("/accounts/{id}/unfreeze", f), ROOT, None, "{}")).await;
    api.expect(422, "/accounts/{id}/close", post(&concrete("/accounts/{id}/close", a), ALICE, None, "")).await;
    api.expect(200, "/accounts/{id}/close", post(&concrete("/accounts/{id}/close", z), ALICE, None, "")).await;
    for template in ["/accounts/{id}/freeze", "/accounts/{id}/unfreeze"] {
        api.expect(422, template, post(&concrete(template, z), ROOT, None, "")).await;
    }

    // What every route answers alike: 400, 401, 404, 413, 415, 503.
    for template in ["/accounts", "/transfers", "/entries"].into_iter().chain(ROUTES_WITH_ID) {
        let path = concrete(template, a);
        let body = valid_body(template, a, b);
        api.expect(401, template, post(&path, NOBODY, Some(&key()), &body)).await;
        let malformed = if template.contains("{id}") {
            post(&concrete(template, "not-a-uuid"), ROOT, Some(&key()), &body)
        } else {
            post(&path, ROOT, Some(&key()), r#"{"unknown":1}"#)
        };
        api.expect(400, template, malformed).await;
        api.expect(413, template, post(&path, ROOT, Some(&key()), &" ".repeat(17 * 1024))).await;
        let mut text = post(&path, ROOT, Some(&key()), &body);
        text["headers"]["content-type"] = "text/plain".into();
        api.expect(415, template, text).await;
        if template != "/accounts" {
            let missing = Uuid::new_v4();
            api.expect(404, template, post(&concrete(template, missing), ROOT, Some(&key()), &valid_body(template, missing, b))).await;
        }
        let unavailable = api.send_to(&api.down, template, post(&path, ROOT, Some(&key()), &body)).await;
        assert_eq!(unavailable.status, 503, "POST {template}");
    }

    // 409: another write between the command's read and its append. An
    // account of its own for each: one that conflicted is locked first for
    // a while (command-api's src/contended.rs), and then its next command
    // waits for the writer instead of conflicting.
    for template in [
        "/accounts/{id}/deposits",
        "/accounts/{id}/withdrawals",
        "/transfers",
        "/entries",
        "/accounts/{id}/freeze",
        "/accounts/{id}/unfreeze",
        "/accounts/{id}/close",
        HOLDS,
        CAPTURE,
        RELEASE,
    ] {
        let account = api.open(ALICE).await;
        match template {
            "/accounts/{id}/unfreeze" => {
                api.expect(200, "/accounts/{id}/freeze", post(&concrete("/accounts/{id}/freeze", account), ROOT, None, "")).await;
            }
            "/accounts/{id}/close" => {}
            _ => api.deposit(account, 1000).await,
        }
        let hold = if [CAPTURE, RELEASE].contains(&template) { api.place(account, 100).await } else { Uuid::nil() };
        // A recipient of its own too: `b` was in the transfer's conflict, so
        // it is contended and an entry naming it would lock first.
        let target = if template == "/entries" { api.open(BOB).await } else { b };
        let event = post(&on_hold(template, account, hold), ROOT, Some(&key()), &valid_body(template, account, target));
        let answer = api.conflicting(template, event, account).await;
        assert_eq!(answer.status, 409, "POST {template}: {}", String::from_utf8_lossy(&answer.body));
    }

    let missing: Vec<_> = contract.documented("command-api").difference(&contract.seen()).cloned().collect();
    assert!(missing.is_empty(), "documented but never answered: {missing:?}");
}
