//! The end-to-end scenario, written once for any running Ledgerline: the
//! embedded server (`tests/tests/e2e_embedded.rs`), the full local stack,
//! or a deployment. It speaks HTTP to a base URL with tokens from a
//! [`TokenMinter`] and panics (with the request that went wrong) when
//! something is off.
//!
//! What it checks, in order:
//!
//! 1. no token → 401 on both APIs;
//! 2. two users each open an account, deposit, one withdraws;
//! 3. a retried POST with the same `Idempotency-Key` gets the same answer,
//!    also when the retries race; the same key with another body → 422;
//! 4. transfers in both directions at once (409s are retried with the same
//!    key, as a client would);
//! 5. one user cannot read or move the other's money (404, as if it did not
//!    exist), an
//!    administrator can read it;
//! 6. the read side converges: each account read with `?min_version=` (409
//!    until the projection has caught up, polled under a deadline) has the
//!    balance and version the commands answered; its history, walked page
//!    by page, holds exactly the answered movements with a consistent
//!    `balance_after` chain; money is conserved.
//!
//! Every user id carries a fresh run id, so the scenario can run again
//! against a store that keeps its data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::http::{Answer, HttpClient};

/// Mints a token the target's authorizer accepts for `sub`; `admin` adds the
/// `ledgerline/admin` scope. A closure `Fn(&str, bool) -> String` is one.
pub trait TokenMinter: Send + Sync {
    fn mint(&self, sub: &str, admin: bool) -> String;
}

impl<F: Fn(&str, bool) -> String + Send + Sync> TokenMinter for F {
    fn mint(&self, sub: &str, admin: bool) -> String {
        self(sub, admin)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long the read side may take to show a write (and a 409 be retried).
    pub converge_within: Duration,
    /// Transfers sent at once in each direction.
    pub transfers_each_way: usize,
    /// Items per history page (small, so paging is exercised).
    pub page_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self { converge_within: Duration::from_secs(30), transfers_each_way: 10, page_size: 4 }
    }
}

/// What the scenario did, for the caller to log or check further.
#[derive(Debug, Clone)]
pub struct Report {
    pub alice: String,
    pub bob: String,
    pub alice_account: String,
    pub bob_account: String,
    /// Final (balance, version) of each account, as the read side shows them.
    pub alice_final: (i64, u64),
    pub bob_final: (i64, u64),
}

/// Runs the scenario with the default [`Settings`].
pub async fn run(base_url: &str, minter: &dyn TokenMinter) -> Report {
    run_with(base_url, minter, &Settings::default()).await
}

pub async fn run_with(base_url: &str, minter: &dyn TokenMinter, settings: &Settings) -> Report {
    let http = HttpClient::new(base_url);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let alice = format!("alice-{run_id}");
    let bob = format!("bob-{run_id}");
    let alice_token = minter.mint(&alice, false);
    let bob_token = minter.mint(&bob, false);
    let admin_token = minter.mint(&format!("admin-{run_id}"), true);
    let s = Steps { http: http.clone(), settings: settings.clone(), run_id };

    // 1. No token, no entry.
    for answer in [http.get("/accounts", None).await, http.post("/accounts", None, None, &json!({"currency": "EUR"})).await] {
        expect(&answer, StatusCode::UNAUTHORIZED, "no token");
        assert_eq!(answer.code(), Some("unauthorized"), "{answer:?}");
    }

    // 2. Accounts, deposits, a withdrawal.
    let mut a = s.open(&alice_token, &alice).await;
    let mut b = s.open(&bob_token, &bob).await;
    let deposit_key = s.key("deposit-a");
    let first_deposit = s.money(&alice_token, &mut a, "deposits", 10_000, &deposit_key).await;
    s.money(&bob_token, &mut b, "deposits", 5_000, &s.key("deposit-b")).await;
    s.money(&alice_token, &mut a, "withdrawals", 1_000, &s.key("withdraw-a")).await;

    // 3. Idempotent retries: sequential, racing, and a reused key.
    let path = format!("/accounts/{}/deposits", a.id);
    let again = http.post(&path, Some(&alice_token), Some(&deposit_key), &json!({"amount": 10_000, "reference": "e2e"})).await;
    assert_eq!((again.status, &again.body), (first_deposit.status, &first_deposit.body), "a retried deposit gets the stored answer");
    let racing = futures_join((0..3).map(|_| {
        let (http, token, path, key) = (http.clone(), alice_token.clone(), path.clone(), deposit_key.clone());
        async move { http.post(&path, Some(&token), Some(&key), &json!({"amount": 10_000, "reference": "e2e"})).await }
    }))
    .await;
    for answer in &racing {
        assert_eq!((answer.status, &answer.body), (first_deposit.status, &first_deposit.body), "racing retries get the stored answer");
    }
    let reused = http.post(&path, Some(&alice_token), Some(&deposit_key), &json!({"amount": 1, "reference": "e2e"})).await;
    expect(&reused, StatusCode::UNPROCESSABLE_ENTITY, "same key, other body");
    assert_eq!(reused.code(), Some("idempotency_key_reused"), "{reused:?}");

    // 4. Transfers both ways at once; alice's first one is sent three times with one key.
    let mut jobs = Vec::new();
    for i in 0..settings.transfers_each_way {
        let copies = if i == 0 { 3 } else { 1 };
        let key = s.key(&format!("a-to-b-{i}"));
        for _ in 0..copies {
            jobs.push((alice_token.clone(), a.id.clone(), b.id.clone(), 100, key.clone()));
        }
        jobs.push((bob_token.clone(), b.id.clone(), a.id.clone(), 50, s.key(&format!("b-to-a-{i}"))));
    }
    let answers = futures_join(jobs.into_iter().map(|(token, from, to, amount, key)| {
        let s = s.clone();
        async move {
            let body = json!({"from_account_id": from, "to_account_id": to, "amount": amount, "reference": "e2e"});
            (key.clone(), from, to, amount, s.post_settled("/transfers", &token, &key, &body).await)
        }
    }))
    .await;
    let mut by_key: BTreeMap<String, Answer> = BTreeMap::new();
    for (key, from, to, amount, answer) in answers {
        expect(&answer, StatusCode::CREATED, &format!("transfer {key}"));
        if let Some(first) = by_key.get(&key) {
            assert_eq!(first.body, answer.body, "every copy of transfer {key} gets the same answer");
            continue;
        }
        let (sender, receiver) = if from == a.id { (&mut a, &mut b) } else { (&mut b, &mut a) };
        assert_eq!(answer.body["from"]["account_id"], json!(from), "{answer:?}");
        // Of the recipient, the answer names the id and nothing else.
        assert_eq!(answer.body["to"], json!({"account_id": to}), "{answer:?}");
        sender.record(version(&answer.body["from"]), "transfer_out", amount, Some(int(&answer.body["from"]["balance"])));
        receiver.receive(amount);
        by_key.insert(key, answer);
    }

    // 5. Each user's money is their own: moving it (reading it is checked
    // once the read side has the accounts, below; before, it is a 404).
    let forbidden = [
        http.post(&format!("/accounts/{}/withdrawals", a.id), Some(&bob_token), Some(&s.key("steal-1")), &json!({"amount": 1})).await,
        http.post(
            "/transfers",
            Some(&bob_token),
            Some(&s.key("steal-2")),
            &json!({"from_account_id": a.id, "to_account_id": b.id, "amount": 1}),
        )
        .await,
    ];
    for answer in &forbidden {
        // Someone else's account is answered exactly as a missing one.
        expect(answer, StatusCode::NOT_FOUND, "another user's account");
        assert_eq!(answer.code(), Some("account_not_found"), "{answer:?}");
    }

    // A last deposit (for bob, with a withdrawal of the same amount): its
    // answered version proves the retries and the refused requests above
    // appended nothing (versions must be 1..=last, each one accounted for).
    s.money(&alice_token, &mut a, "deposits", 7, &s.key("deposit-a-last")).await;
    s.money(&bob_token, &mut b, "deposits", 3, &s.key("deposit-b-last")).await;
    s.money(&bob_token, &mut b, "withdrawals", 3, &s.key("withdraw-b-last")).await;
    a.place_incoming();
    b.place_incoming();
    for account in [&a, &b] {
        let versions: Vec<u64> = account.rows.keys().copied().collect();
        assert_eq!(versions, (2..=account.version).collect::<Vec<_>>(), "{}: every version is one answered command", account.id);
    }

    // 6. The read side converges on what the commands answered.
    let a_final = s.converged(&alice_token, &a).await;
    let b_final = s.converged(&bob_token, &b).await;
    let admin_view = s.read_at(&admin_token, &a.id, a.version).await;
    assert_eq!(int(&admin_view["balance"]), a_final, "an administrator reads any account");
    assert_eq!(a_final + b_final, 10_000 + 5_000 - 1_000 + 7, "money is conserved");
    let n = settings.transfers_each_way as i64;
    assert_eq!(a_final, 10_000 - 1_000 + 7 - 100 * n + 50 * n);
    s.history_matches(&alice_token, &a).await;
    s.history_matches(&bob_token, &b).await;
    s.listed_for(&bob_token, &bob, &b.id, &a.id).await;
    // A transfer by its id: the same to both sides (the read side has both).
    let (_, first_transfer) = by_key.iter().next().expect("transfers were made");
    let transfer_id = first_transfer.body["transfer_id"].as_str().expect("a transfer id").to_owned();
    let seen_by_alice = http.get(&format!("/transfers/{transfer_id}"), Some(&alice_token)).await;
    expect(&seen_by_alice, StatusCode::OK, "a transfer looked up by its sender or recipient");
    assert_eq!(http.get(&format!("/transfers/{transfer_id}"), Some(&bob_token)).await.body, seen_by_alice.body);
    let ids = [seen_by_alice.body["from_account_id"].as_str(), seen_by_alice.body["to_account_id"].as_str()];
    assert!(ids.contains(&Some(a.id.as_str())) && ids.contains(&Some(b.id.as_str())), "{seen_by_alice:?}");
    for answer in [
        http.get(&format!("/accounts/{}", a.id), Some(&bob_token)).await,
        http.get(&format!("/accounts/{}/transactions", a.id), Some(&bob_token)).await,
        http.get(&format!("/accounts/{}", b.id), Some(&alice_token)).await,
    ] {
        expect(&answer, StatusCode::NOT_FOUND, "another user's account");
        assert_eq!(answer.code(), Some("account_not_found"), "{answer:?}");
    }

    Report {
        alice,
        bob,
        alice_account: a.id.clone(),
        bob_account: b.id.clone(),
        alice_final: (a_final, a.version),
        bob_final: (b_final, b.version),
    }
}

/// One account as the commands described it: every version's movement.
#[derive(Debug)]
struct Expected {
    id: String,
    version: u64,
    /// version → (kind, amount, balance_after when the answer told it)
    rows: BTreeMap<u64, (&'static str, i64, Option<i64>)>,
    /// Transfers received: a transfer's answer names the recipient's id and
    /// nothing more, so their versions are the ones left between the
    /// account's own answers ([`Expected::place_incoming`]).
    incoming: Vec<i64>,
}

impl Expected {
    fn record(&mut self, version: u64, kind: &'static str, amount: i64, balance_after: Option<i64>) {
        assert!(self.rows.insert(version, (kind, amount, balance_after)).is_none(), "{}: version {version} answered twice", self.id);
        self.version = self.version.max(version);
    }

    fn receive(&mut self, amount: i64) {
        self.incoming.push(amount);
    }

    /// Puts the received transfers on the versions the account's own
    /// answers left free, up to its last answered version. They must fill
    /// those exactly (nothing else was appended), and in this scenario every
    /// transfer into one account has the same amount, so their order does
    /// not matter.
    fn place_incoming(&mut self) {
        let free: Vec<u64> = (2..=self.version).filter(|v| !self.rows.contains_key(v)).collect();
        assert_eq!(free.len(), self.incoming.len(), "{}: versions {free:?} for {} received transfers", self.id, self.incoming.len());
        assert!(self.incoming.windows(2).all(|w| w[0] == w[1]), "one amount per direction: {:?}", self.incoming);
        for (version, amount) in free.into_iter().zip(std::mem::take(&mut self.incoming)) {
            self.rows.insert(version, ("transfer_in", amount, None));
        }
    }

    /// (version, kind, amount, balance_after) in version order, every balance
    /// computed from the movements and checked against the answered ones.
    fn chain(&self) -> Vec<(u64, &'static str, i64, i64)> {
        let mut balance = 0i64;
        self.rows
            .iter()
            .map(|(&version, &(kind, amount, answered))| {
                balance += if matches!(kind, "deposit" | "transfer_in") { amount } else { -amount };
                if let Some(answered) = answered {
                    assert_eq!(answered, balance, "{}: version {version} answered balance {answered}, movements give {balance}", self.id);
                }
                (version, kind, amount, balance)
            })
            .collect()
    }
}

#[derive(Clone)]
struct Steps {
    http: HttpClient,
    settings: Settings,
    run_id: String,
}

impl Steps {
    fn key(&self, name: &str) -> String {
        format!("e2e-{}-{name}", self.run_id)
    }

    async fn open(&self, token: &str, owner: &str) -> Expected {
        self.open_in(token, owner, "EUR", "").await
    }

    /// Opens an account in `currency`; `name` tells apart one owner's accounts.
    async fn open_in(&self, token: &str, owner: &str, currency: &str, name: &str) -> Expected {
        let key = self.key(&format!("open-{owner}{name}"));
        let answer = self.post_settled("/accounts", token, &key, &json!({"currency": currency})).await;
        expect(&answer, StatusCode::CREATED, "open an account");
        assert_eq!(answer.body["owner_id"], owner, "{answer:?}");
        assert_eq!((int(&answer.body["balance"]), version(&answer.body)), (0, 1), "{answer:?}");
        let id = answer.body["account_id"].as_str().expect("an account id").to_owned();
        Expected { id, version: 1, rows: BTreeMap::new(), incoming: Vec::new() }
    }

    /// A deposit or withdrawal; records it and returns the answer.
    async fn money(&self, token: &str, account: &mut Expected, route: &str, amount: i64, key: &str) -> Answer {
        let body = json!({"amount": amount, "reference": "e2e"});
        let answer = self.post_settled(&format!("/accounts/{}/{route}", account.id), token, key, &body).await;
        expect(&answer, StatusCode::OK, route);
        assert_eq!(answer.body["account_id"], json!(account.id), "{answer:?}");
        let kind = if route == "deposits" { "deposit" } else { "withdrawal" };
        account.record(version(&answer.body), kind, amount, Some(int(&answer.body["balance"])));
        answer
    }

    /// POSTs until the answer is not a 409 or 503 (retried with the same key,
    /// as a client should), within the deadline.
    async fn post_settled(&self, path: &str, token: &str, key: &str, body: &Value) -> Answer {
        let deadline = Instant::now() + self.settings.converge_within;
        loop {
            let answer = self.http.post(path, Some(token), Some(key), body).await;
            let retry = matches!(answer.status, StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE);
            if !retry || Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /accounts/{id}?min_version=` until it answers 200, within the
    /// deadline. 409 means the projection is behind; so does 404: the query
    /// API answers 404 (not 409) while the read model has no item for the
    /// account at all, even with `min_version`.
    async fn read_at(&self, token: &str, id: &str, min_version: u64) -> Value {
        let path = format!("/accounts/{id}?min_version={min_version}");
        let deadline = Instant::now() + self.settings.converge_within;
        loop {
            let answer = self.http.get(&path, Some(token)).await;
            match answer.status {
                StatusCode::OK => return answer.body,
                StatusCode::CONFLICT | StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                _ => panic!(
                    "GET {path}: the read side did not reach version {min_version} in {:?}: {answer:?}",
                    self.settings.converge_within
                ),
            }
        }
    }

    /// The account's read model equals the commands' story; its balance.
    async fn converged(&self, token: &str, account: &Expected) -> i64 {
        let view = self.read_at(token, &account.id, account.version).await;
        let chain = account.chain();
        let balance = chain.last().map_or(0, |row| row.3);
        assert_eq!(version(&view), account.version, "{}: read version", account.id);
        assert_eq!(int(&view["balance"]), balance, "{}: read balance", account.id);
        assert_eq!(view["status"], "open", "{view}");
        balance
    }

    /// The history, page by page, is exactly the answered movements.
    async fn history_matches(&self, token: &str, account: &Expected) {
        let mut items = Vec::new();
        let mut query = format!("limit={}&min_version={}", self.settings.page_size, account.version);
        let deadline = Instant::now() + self.settings.converge_within;
        loop {
            let path = format!("/accounts/{}/transactions?{query}", account.id);
            let answer = self.http.get(&path, Some(token)).await;
            if answer.status == StatusCode::CONFLICT && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            expect(&answer, StatusCode::OK, &path);
            let page = answer.body["items"].as_array().expect("items").clone();
            assert!(page.len() <= self.settings.page_size, "{path}: page too long");
            items.extend(page);
            match answer.body["next_cursor"].as_str() {
                Some(cursor) => query = format!("limit={}&cursor={cursor}", self.settings.page_size),
                None => break,
            }
        }
        let got: Vec<(u64, String, i64, i64)> = items
            .iter()
            .map(|item| (version(item), item["kind"].as_str().unwrap_or("?").to_owned(), int(&item["amount"]), int(&item["balance_after"])))
            .collect();
        let mut want: Vec<(u64, String, i64, i64)> =
            account.chain().into_iter().map(|(v, kind, amount, balance)| (v, kind.to_owned(), amount, balance)).collect();
        want.reverse(); // newest first
        assert_eq!(got, want, "{}: history", account.id);
    }

    /// `GET /accounts` lists the caller's accounts only (the owner index may
    /// lag, so it is polled under the deadline).
    async fn listed_for(&self, token: &str, owner: &str, own: &str, foreign: &str) {
        let deadline = Instant::now() + self.settings.converge_within;
        loop {
            let answer = self.http.get("/accounts", Some(token)).await;
            expect(&answer, StatusCode::OK, "GET /accounts");
            let items = answer.body["items"].as_array().expect("items");
            assert!(items.iter().all(|item| item["owner_id"] == owner), "only {owner}'s accounts: {answer:?}");
            assert!(items.iter().all(|item| item["account_id"] != foreign), "{answer:?}");
            if items.iter().any(|item| item["account_id"] == own) {
                return;
            }
            assert!(Instant::now() < deadline, "GET /accounts never listed {own}: {answer:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn expect(answer: &Answer, status: StatusCode, what: &str) {
    assert_eq!(answer.status, status, "{what}: {answer:?}");
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("an integer, got {value}"))
}

fn version(value: &Value) -> u64 {
    value["version"].as_u64().unwrap_or_else(|| panic!("a version in {value}"))
}

/// Runs futures at once on the runtime and returns their outputs in order.
async fn futures_join<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic())));
    }
    outputs
}

/// A minter that runs `ledgerline token` (the given binary) with the
/// environment's `LEDGERLINE_JWT_SECRET` set to `secret`.
pub fn binary_minter(binary: impl Into<std::path::PathBuf>, secret: &str) -> Arc<dyn TokenMinter> {
    let binary = binary.into();
    let secret = secret.to_owned();
    Arc::new(move |sub: &str, admin: bool| {
        let mut command = std::process::Command::new(&binary);
        command.args(["token", "--sub", sub, "--ttl", "1h"]).env("LEDGERLINE_JWT_SECRET", &secret);
        if admin {
            command.arg("--admin");
        }
        let output = command.output().unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));
        assert!(output.status.success(), "ledgerline token failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("a token is ASCII").trim().to_owned()
    })
}

/// The holds scenario, for any running Ledgerline, as a client that reads
/// only the OpenAPI document would do it: a hold placed, captured in part
/// into another user's account; one placed and released; one left to
/// expire (at its `expires_at` it stops counting at once; within two
/// minutes more its expiry is an event of the account). After each step
/// both balances are read back with `min_version`. Someone else's account
/// or hold is a 404 as a missing one. Takes a little over a minute (the
/// shortest a hold may live).
pub async fn holds(base_url: &str, minter: &dyn TokenMinter, settings: &Settings) {
    let http = HttpClient::new(base_url);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (payer, payee) = (format!("payer-{run_id}"), format!("payee-{run_id}"));
    let (payer_token, payee_token) = (minter.mint(&payer, false), minter.mint(&payee, false));
    let s = Steps { http: http.clone(), settings: settings.clone(), run_id };
    let mut a = s.open(&payer_token, &payer).await;
    let b = s.open(&payee_token, &payee).await;
    s.money(&payer_token, &mut a, "deposits", 1_000, &s.key("fund")).await;
    let holds_path = format!("/accounts/{}/holds", a.id);
    let balances = |view: &Value| (int(&view["balance"]), int(&view["held"]), int(&view["available_balance"]));

    // The one left to expire goes first, so the wait overlaps the rest.
    let expiring = s.post_settled(&holds_path, &payer_token, &s.key("expiring"), &json!({"amount": 50, "expires_in_seconds": 60})).await;
    expect(&expiring, StatusCode::CREATED, "place a hold that will expire");
    let expiring_id = expiring.body["hold_id"].as_str().expect("a hold id").to_owned();
    let expires_at = expiring.body["expires_at"].as_str().expect("expires_at").to_owned();

    let placed = s.post_settled(&holds_path, &payer_token, &s.key("hotel"), &json!({"amount": 600, "reference": "hotel"})).await;
    expect(&placed, StatusCode::CREATED, "place a hold");
    assert_eq!((placed.body["status"].as_str(), balances(&placed.body)), (Some("active"), (1_000, 650, 350)), "{placed:?}");
    let hold = placed.body["hold_id"].as_str().expect("a hold id").to_owned();
    let read = s.read_at(&payer_token, &a.id, version(&placed.body)).await;
    assert_eq!(balances(&read), (1_000, 650, 350), "read back after placing: {read}");
    let got = http.get(&format!("{holds_path}/{hold}?min_version={}", version(&placed.body)), Some(&payer_token)).await;
    expect(&got, StatusCode::OK, "get the hold");
    assert_eq!((got.body["status"].as_str(), int(&got.body["amount"])), (Some("active"), 600), "{got:?}");

    // Captured in part into the payee's account: a transfer naming the payee by id only.
    let capture = json!({"amount": 250, "to_account_id": b.id, "reference": "order"});
    let captured = s.post_settled(&format!("{holds_path}/{hold}/capture"), &payer_token, &s.key("capture"), &capture).await;
    expect(&captured, StatusCode::OK, "capture part of a hold into another account");
    assert_eq!((int(&captured.body["captured"]), int(&captured.body["released"])), (250, 350), "{captured:?}");
    assert_eq!(captured.body["to"], json!({"account_id": b.id}), "{captured:?}");
    assert_eq!(balances(&captured.body), (750, 50, 700), "{captured:?}");
    let read = s.read_at(&payer_token, &a.id, version(&captured.body)).await;
    assert_eq!(balances(&read), (750, 50, 700), "read back after the capture: {read}");
    let payee_view = s.read_at(&payee_token, &b.id, 2).await;
    assert_eq!(balances(&payee_view), (250, 0, 250), "the payee's account after the capture: {payee_view}");
    let got = http.get(&format!("{holds_path}/{hold}?min_version={}", version(&captured.body)), Some(&payer_token)).await;
    assert_eq!((got.body["status"].as_str(), got.body["to_account_id"].as_str()), (Some("captured"), Some(b.id.as_str())), "{got:?}");
    let history = http.get(&format!("/accounts/{}/transactions?min_version={}", a.id, version(&captured.body)), Some(&payer_token)).await;
    let newest = &history.body["items"][0];
    assert_eq!(
        (newest["kind"].as_str(), int(&newest["amount"]), newest["hold_id"].as_str()),
        (Some("transfer_out"), 250, Some(hold.as_str()))
    );

    // Placed and released.
    let second = s.post_settled(&holds_path, &payer_token, &s.key("deposit-hold"), &json!({"amount": 100})).await;
    expect(&second, StatusCode::CREATED, "place a second hold");
    let second_id = second.body["hold_id"].as_str().expect("a hold id").to_owned();
    let released = s.post_settled(&format!("{holds_path}/{second_id}/release"), &payer_token, &s.key("release"), &json!({})).await;
    expect(&released, StatusCode::OK, "release a hold");
    assert_eq!((released.body["status"].as_str(), balances(&released.body)), (Some("released"), (750, 50, 700)), "{released:?}");
    let read = s.read_at(&payer_token, &a.id, version(&released.body)).await;
    assert_eq!(balances(&read), (750, 50, 700), "read back after the release: {read}");

    // Someone else's account, or hold on it, is a 404 as a missing one.
    for answer in [
        http.get(&holds_path, Some(&payee_token)).await,
        http.get(&format!("{holds_path}/{hold}"), Some(&payee_token)).await,
        http.post(&format!("{holds_path}/{hold}/release"), Some(&payee_token), None, &json!({})).await,
    ] {
        expect(&answer, StatusCode::NOT_FOUND, "another user's hold");
        assert_eq!(answer.code(), Some("account_not_found"), "{answer:?}");
    }

    // The expiring hold: at its expiry it stops counting at once; its
    // expiry is then recorded as one more event of the account.
    let before_expiry = version(&released.body);
    let deadline = Instant::now() + Duration::from_secs(60) + EXPIRY_RECORDED_WITHIN;
    let expired = loop {
        let view = s.read_at(&payer_token, &a.id, before_expiry).await;
        let listed = http.get(&format!("{holds_path}?status=expired&min_version={before_expiry}"), Some(&payer_token)).await;
        let shown = listed.body["items"].as_array().is_some_and(|items| items.iter().any(|h| h["hold_id"] == expiring_id.as_str()));
        if shown {
            assert_eq!(balances(&view).1, 0, "an expired hold holds nothing, recorded or not: {view} (expired at {expires_at})");
        }
        if shown && version(&view) == before_expiry + 1 {
            break view;
        }
        assert!(Instant::now() < deadline, "the hold that expired at {expires_at} was not recorded in time: {view} {listed:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(balances(&expired), (750, 0, 750), "{expired}");
    let got = http.get(&format!("{holds_path}/{expiring_id}?min_version={}", version(&expired)), Some(&payer_token)).await;
    assert_eq!((got.body["status"].as_str(), int(&got.body["released"])), (Some("expired"), 50), "{got:?}");
    let late = s.post_settled(&format!("{holds_path}/{expiring_id}/capture"), &payer_token, &s.key("late-capture"), &json!({})).await;
    expect(&late, StatusCode::UNPROCESSABLE_ENTITY, "capture an expired hold");
    assert_eq!(late.code(), Some("hold_not_active"), "{late:?}");
}

/// How long after a hold's expiry its expiry may take to be an event the
/// read side shows: the reconciler's sweep runs with each pass.
const EXPIRY_RECORDED_WITHIN: Duration = Duration::from_secs(120);

/// The entries scenario, for any running Ledgerline, as a client that reads
/// only the OpenAPI document would do it: a payment with its fee in one
/// entry (the payer sees only its own account's balance in the answer), an
/// exchange of EUR to USD through the bank's two FX accounts in one entry
/// (posted by an administrator, who may debit any account), both read back
/// with `min_version` on every account they touched, each leg in its
/// account's history naming the entry; someone else's debited account is a
/// 404 as a missing one, and an unbalanced entry is refused with nothing
/// moved.
pub async fn entries(base_url: &str, minter: &dyn TokenMinter, settings: &Settings) {
    let http = HttpClient::new(base_url);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (customer, merchant, bank) = (format!("customer-{run_id}"), format!("merchant-{run_id}"), format!("bank-{run_id}"));
    let (customer_token, merchant_token, bank_token) =
        (minter.mint(&customer, false), minter.mint(&merchant, false), minter.mint(&bank, false));
    let admin_token = minter.mint(&format!("ops-{run_id}"), true);
    let s = Steps { http: http.clone(), settings: settings.clone(), run_id };
    let mut euros = s.open(&customer_token, &customer).await;
    let dollars = s.open_in(&customer_token, &customer, "USD", "-usd").await;
    let shop = s.open(&merchant_token, &merchant).await;
    let fees = s.open_in(&bank_token, &bank, "EUR", "-fees").await;
    let fx_eur = s.open_in(&bank_token, &bank, "EUR", "-fx-eur").await;
    let mut fx_usd = s.open_in(&bank_token, &bank, "USD", "-fx-usd").await;
    let before_funding = chrono::Utc::now();
    s.money(&customer_token, &mut euros, "deposits", 1_000, &s.key("fund-eur")).await;
    let after_funding = chrono::Utc::now();
    s.money(&bank_token, &mut fx_usd, "deposits", 10_000, &s.key("fund-usd")).await;
    let leg = |account: &Expected, amount: i64, currency: &str| json!({"account_id": account.id, "amount": amount, "currency": currency});

    // A payment and its fee, all or nothing.
    let payment =
        json!({"debits": [leg(&euros, 105, "EUR")], "credits": [leg(&shop, 100, "EUR"), leg(&fees, 5, "EUR")], "reference": "order 1042"});
    let paid = s.post_settled("/entries", &customer_token, &s.key("payment"), &payment).await;
    expect(&paid, StatusCode::CREATED, "pay with a fee in one entry");
    let entry_id = paid.body["entry_id"].as_str().expect("an entry id").to_owned();
    assert_eq!(paid.body["accounts"].as_array().map(Vec::len), Some(1), "only the payer's own account: {paid:?}");
    assert_eq!(
        (paid.body["accounts"][0]["account_id"].as_str(), int(&paid.body["accounts"][0]["balance"])),
        (Some(euros.id.as_str()), 895)
    );
    let read = s.read_at(&customer_token, &euros.id, version(&paid.body["accounts"][0])).await;
    assert_eq!(int(&read["balance"]), 895, "the payer read back: {read}");
    let read = s.read_at(&merchant_token, &shop.id, 2).await;
    assert_eq!(int(&read["balance"]), 100, "the merchant read back: {read}");
    let read = s.read_at(&bank_token, &fees.id, 2).await;
    assert_eq!(int(&read["balance"]), 5, "the fee account read back: {read}");
    let history = http.get(&format!("/accounts/{}/transactions?min_version=2", shop.id), Some(&merchant_token)).await;
    let newest = &history.body["items"][0];
    assert_eq!(
        (newest["kind"].as_str(), int(&newest["amount"]), newest["entry_id"].as_str()),
        (Some("entry_credit"), 100, Some(entry_id.as_str())),
        "{history:?}"
    );

    // The entry by its id, to anyone in it (all three legs are projected:
    // read back above); to anyone else a 404 as a missing one.
    let looked_up = http.get(&format!("/entries/{entry_id}"), Some(&merchant_token)).await;
    expect(&looked_up, StatusCode::OK, "the entry looked up by the merchant");
    let legs: Vec<(String, &str, i64)> = looked_up.body["legs"]
        .as_array()
        .expect("legs")
        .iter()
        .map(|leg| {
            (leg["account_id"].as_str().unwrap_or_default().to_owned(), leg["side"].as_str().unwrap_or_default(), int(&leg["amount"]))
        })
        .collect();
    assert_eq!(legs.len(), 3, "{looked_up:?}");
    assert_eq!(legs[0], (euros.id.clone(), "debit", 105), "the debit first: {looked_up:?}");
    let outsider = http.get(&format!("/entries/{entry_id}"), Some(&minter.mint(&format!("outsider-{}", s.run_id), false))).await;
    expect(&outsider, StatusCode::NOT_FOUND, "the entry looked up by someone outside it");
    assert_eq!(outsider.code(), Some("entry_not_found"), "{outsider:?}");

    // An exchange through the bank's FX accounts: each currency balances on its own.
    let exchange = json!({
        "debits": [leg(&euros, 100, "EUR"), leg(&fx_usd, 108, "USD")],
        "credits": [leg(&fx_eur, 100, "EUR"), leg(&dollars, 108, "USD")],
        "reference": "EUR/USD 1.08",
    });
    let exchanged = s.post_settled("/entries", &admin_token, &s.key("exchange"), &exchange).await;
    expect(&exchanged, StatusCode::CREATED, "exchange EUR to USD in one entry");
    let versions: BTreeMap<String, u64> = exchanged.body["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| (a["account_id"].as_str().unwrap_or_default().to_owned(), version(a)))
        .collect();
    assert_eq!(versions.len(), 4, "an administrator sees every account: {exchanged:?}");
    for (token, account, balance) in
        [(&customer_token, &euros, 795), (&customer_token, &dollars, 108), (&bank_token, &fx_eur, 100), (&bank_token, &fx_usd, 9_892)]
    {
        let read = s.read_at(token, &account.id, versions[&account.id]).await;
        assert_eq!(int(&read["balance"]), balance, "{} read back after the exchange: {read}", account.id);
    }

    // Someone else's debited account is a 404 as a missing one; an
    // unbalanced entry moves nothing.
    let theft = json!({"debits": [leg(&euros, 1, "EUR")], "credits": [leg(&shop, 1, "EUR")]});
    let refused = s.post_settled("/entries", &merchant_token, &s.key("theft"), &theft).await;
    expect(&refused, StatusCode::NOT_FOUND, "debit someone else's account");
    assert_eq!(refused.code(), Some("account_not_found"), "{refused:?}");
    let unbalanced = json!({"debits": [leg(&euros, 10, "EUR")], "credits": [leg(&shop, 9, "EUR")]});
    let refused = s.post_settled("/entries", &customer_token, &s.key("unbalanced"), &unbalanced).await;
    expect(&refused, StatusCode::UNPROCESSABLE_ENTITY, "an unbalanced entry");
    assert_eq!(refused.code(), Some("unbalanced_entry"), "{refused:?}");
    let read = s.read_at(&customer_token, &euros.id, versions[&euros.id]).await;
    assert_eq!((int(&read["balance"]), version(&read)), (795, versions[&euros.id]), "nothing moved: {read}");

    // The statement of the customer's euros: it opens at 0, and the funding,
    // the payment and the exchange add up to the closing balance; the
    // second page repeats the totals. As of just after the funding: 1,000.
    let rfc = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let path = format!("/accounts/{}/statement?from={}&limit=2", euros.id, rfc(before_funding));
    let first = http.get(&path, Some(&customer_token)).await;
    expect(&first, StatusCode::OK, "the statement's first page");
    let mut items: Vec<Value> = first.body["items"].as_array().cloned().unwrap_or_default();
    let cursor = first.body["next_cursor"].as_str().expect("a second page").to_owned();
    let second = http.get(&format!("/accounts/{}/statement?cursor={cursor}", euros.id), Some(&customer_token)).await;
    expect(&second, StatusCode::OK, "the statement's second page");
    items.extend(second.body["items"].as_array().cloned().unwrap_or_default());
    for page in [&first.body, &second.body] {
        assert_eq!(
            (int(&page["opening_balance"]), int(&page["closing_balance"]), int(&page["total_credits"]), int(&page["total_debits"])),
            (0, 795, 1_000, 205),
            "{page}"
        );
    }
    let kinds: Vec<(&str, i64)> = items.iter().map(|t| (t["kind"].as_str().unwrap_or_default(), int(&t["amount"]))).collect();
    assert_eq!(kinds, vec![("deposit", 1_000), ("entry_debit", 105), ("entry_debit", 100)], "oldest first: {items:?}");
    let csv = http.get_with(&path, Some(&customer_token), &[("accept", "text/csv")]).await;
    expect(&csv, StatusCode::OK, "the statement in CSV");
    assert!(csv.text.starts_with("occurred_at,version,kind,amount,signed_amount,balance_after,"), "{:?}", csv.text);
    assert_eq!(csv.text.matches("\r\n").count(), 3, "a header and two rows: {:?}", csv.text);
    let then = http.get(&format!("/accounts/{}/balance?at={}", euros.id, rfc(after_funding)), Some(&customer_token)).await;
    expect(&then, StatusCode::OK, "the balance as of just after the funding");
    assert_eq!((int(&then.body["balance"]), int(&then.body["available_balance"])), (1_000, 1_000), "{then:?}");
}
