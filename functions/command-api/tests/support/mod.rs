//! Test harness: requests go in as API Gateway HTTP API (v2) event JSON,
//! converted by `lambda_http` exactly as in Lambda, so the claims, headers
//! and body take the same path they take in AWS.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use command_api::{AppState, CommandSettings, router};
use ledgerline_shared::accounts::AccountRepository;
use ledgerline_shared::config::DatabaseSettings;
use ledgerline_shared::event_store::{EventStore, InMemoryEventStore, PostgresEventStore, StoreSettings};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub struct Api {
    pub router: Router,
    pub store: Arc<dyn EventStore>,
}

impl Api {
    pub fn with_store(store: Arc<dyn EventStore>, settings: CommandSettings) -> Self {
        let state = AppState::with_settings(AccountRepository::new(store.clone(), 10), settings);
        Self { router: router(state), store }
    }

    /// With `LEDGERLINE_MAX_OPEN_ACCOUNTS` = `max_open`.
    pub fn with_open_account_limit(store: Arc<dyn EventStore>, max_open: u32) -> Self {
        let repository = AccountRepository::new(store.clone(), 10).with_open_account_limit(max_open);
        Self { router: router(AppState::with_settings(repository, CommandSettings::default())), store }
    }

    pub fn memory() -> Self {
        Self::with_store(Arc::new(InMemoryEventStore::new(StoreSettings::default())), CommandSettings::default())
    }

    pub async fn postgres() -> Self {
        Self::with_store(Self::postgres_store().await, CommandSettings::default())
    }

    pub async fn postgres_store() -> Arc<dyn EventStore> {
        let pool = ledgerline_shared::db::pool(&DatabaseSettings {
            url: migrated_database_url().await,
            pool_size: 16,
            connect_timeout: std::time::Duration::from_secs(5),
            ca_file: None,
        })
        .unwrap();
        Arc::new(PostgresEventStore::new(pool, StoreSettings::default()))
    }

    pub async fn send(&self, request: TestRequest) -> TestResponse {
        let answer = ledgerline_tests::gateway_event::call_router(&self.router, &request.gateway_event()).await;
        let body = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        TestResponse { status: answer.status, headers: answer.headers, body, raw: answer.body }
    }

    /// Opens an account for `owner` and returns its id.
    pub async fn open(&self, owner: &str, currency: &str) -> Uuid {
        let response = self.send(post("/accounts").by(owner).json(json!({"currency": currency}))).await;
        assert_eq!(response.status, 201, "{}", response.body);
        response.id("account_id")
    }

    pub async fn deposit(&self, owner: &str, account: Uuid, amount: i64) -> TestResponse {
        self.send(post(&format!("/accounts/{account}/deposits")).by(owner).key(&fresh_key()).json(json!({"amount": amount}))).await
    }

    /// The balance, read the way the write side sees it.
    pub async fn balance(&self, account: Uuid) -> i64 {
        let repository = AccountRepository::new(self.store.clone(), 0);
        repository.load(account).await.unwrap().expect("the account exists").balance
    }
}

pub fn fresh_key() -> String {
    Uuid::new_v4().to_string()
}

pub fn user() -> String {
    format!("user-{}", Uuid::new_v4().simple())
}

pub struct TestRequest {
    method: String,
    path: String,
    body: Option<String>,
    caller: Option<(String, bool)>,
    /// Extra claims the authorizer passes (as strings, like API Gateway).
    claims: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

pub fn post(path: &str) -> TestRequest {
    TestRequest { method: "POST".into(), path: path.into(), body: None, caller: None, claims: vec![], headers: vec![] }
}

pub fn request(method: &str, path: &str) -> TestRequest {
    TestRequest { method: method.into(), ..post(path) }
}

impl TestRequest {
    /// Signed in as `sub`.
    pub fn by(mut self, sub: &str) -> Self {
        self.caller = Some((sub.into(), false));
        self
    }

    /// Signed in as `sub`, a member of the administrators' group.
    pub fn by_admin(mut self, sub: &str) -> Self {
        self.caller = Some((sub.into(), true));
        self
    }

    /// Signed in as `sub` with a token that carries the old admin *scope*
    /// but not the administrators' group (any user of an app client that
    /// was granted that scope).
    pub fn by_admin_scope_only(mut self, sub: &str) -> Self {
        self.caller = Some((sub.into(), false));
        self.claims.push(("scope".into(), "openid ledgerline/admin".into()));
        self
    }

    pub fn key(self, key: &str) -> Self {
        self.header("idempotency-key", key)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self.header("content-type", "application/json")
    }

    pub fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The event API Gateway would send to the function.
    pub fn gateway_event(&self) -> Value {
        let caller = self.caller.as_ref().map(|(sub, admin)| (sub.as_str(), *admin));
        let mut event = ledgerline_tests::gateway_event::api_gateway_v2_event(
            &self.method,
            &self.path,
            "",
            caller,
            &self.headers,
            self.body.as_deref(),
        );
        for (name, value) in &self.claims {
            event["requestContext"]["authorizer"]["jwt"]["claims"][name] = Value::String(value.clone());
        }
        event
    }
}

pub struct TestResponse {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl TestResponse {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn id(&self, field: &str) -> Uuid {
        self.body[field].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no {field} in {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json refusal with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].as_str().is_some_and(|t| t.ends_with(code)));
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

static MIGRATED: OnceCell<String> = OnceCell::const_new();

pub async fn migrated_database_url() -> String {
    MIGRATED
        .get_or_init(|| async {
            let url = ledgerline_tests::services::database_url();
            ledgerline_shared::migrate::run(&url).await.unwrap_or_else(|e| panic!("cannot migrate {url}: {e}; run scripts/services.sh"));
            url
        })
        .await
        .clone()
}
