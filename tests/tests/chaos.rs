//! The chaos test: `ledgerline serve` (the real functions under `cargo
//! lambda watch`) with a broker, Redis, DynamoDB emulator and PostgreSQL of
//! its own, while clients move money and faults are injected and healed in
//! turn:
//!
//! 1. the broker paused (SIGSTOP) 6 s, resumed, then restarted;
//! 2. Redis stopped 6 s and started;
//! 3. the DynamoDB emulator paused 6 s;
//! 4. PostgreSQL stopped 5 s (fast shutdown) and started;
//! 5. the outbox publisher's process killed (SIGKILL) mid-invocation;
//! 6. the projector's process killed mid-invocation;
//! 7. once all is projected, one account's read-model item put back to its
//!    first version by hand: only the reconciler can heal that.
//!
//! The clients also place holds (living 60 s, so many expire during the
//! run and are recorded by the reconciler's expiry sweep), capture them
//! (in part, out of the ledger or into another account) and release them,
//! and post entries (two or three accounts, one or two debits).
//!
//! Every command has its own Idempotency-Key and is retried with the same
//! key on a timeout, a transport error, a 5xx or a 409 until the answer is
//! definitive (2xx, or 422 for a refusal). Then it asserts:
//! - no 500 was ever answered;
//! - no answer ever showed a negative available balance (reserved money
//!   is never spent);
//! - money is conserved: the balances the read side shows add up to the
//!   deposits minus the withdrawals and captures out of the ledger the
//!   answers confirmed;
//! - within 2 minutes of the last fault, every account on the read side is
//!   at the version and balance the definitive answers imply (every hold's
//!   end, its expiry included, is one event), its history lists every
//!   movement exactly once, nothing is held any more, and its holds are
//!   listed each once, ended as the answers said (captured with the amount
//!   captured, released) or expired;
//! - every accepted entry is in the history of each of its accounts exactly
//!   once, with its leg's amount, and no other entry is in any history (a
//!   refused one applied nowhere).
//!
//! It prints what it did and how long the read side took to converge
//! (docs/RELIABILITY.md records a run).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Method, StatusCode};
use ledgerline_tests::http::HttpClient;
use ledgerline_tests::scenario;
use ledgerline_tests::stack::{Own, Stack, history, statement};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

const ACCOUNTS: usize = 6;
const CLIENTS: usize = 6;
/// Each client's pause between movements: a busy bank's steady load (about
/// 40 movements a second in all), not a benchmark. The local DynamoDB
/// emulator serves one request at a time and slows as its tables grow.
const THINK_TIME: Duration = Duration::from_millis(100);
/// How long one movement may take to get a definitive answer, retries included.
const DEFINITIVE_WITHIN: Duration = Duration::from_secs(150);
/// The promise under test: the read side converges this soon after the last fault.
const CONVERGE_WITHIN: Duration = Duration::from_secs(120);

/// How long the clients' holds live (the shortest a hold may).
const HOLD_SECONDS: i64 = 60;

/// What the definitive answers imply, per account.
#[derive(Default)]
struct Books {
    balance: HashMap<String, i64>,
    /// Money movements that landed on each account (one history row each).
    movements: HashMap<String, u64>,
    /// Events after the opening, per account: movements, and every hold's
    /// placing and end (an expiry too, recorded by the sweep).
    events: HashMap<String, u64>,
    deposited: i64,
    /// Withdrawals and captures out of the ledger.
    withdrawn: i64,
    refused: u64,
    /// Holds no client has tried to end yet: (account, hold id, amount).
    open_holds: Vec<(String, String, i64)>,
    /// How each hold ended: (account, "captured" | "released" | "expired", captured amount).
    hold_fates: HashMap<String, (String, &'static str, i64)>,
    /// Every accepted entry: its legs, (account, signed amount).
    entries: HashMap<String, Vec<(String, i64)>>,
}

impl Books {
    fn event(&mut self, account: &str) {
        *self.events.entry(account.to_owned()).or_default() += 1;
    }

    fn movement(&mut self, account: &str, amount: i64) {
        *self.balance.entry(account.to_owned()).or_default() += amount;
        *self.movements.entry(account.to_owned()).or_default() += 1;
        self.event(account);
    }
}

/// Every balance-carrying answer's available balance is never negative.
fn assert_nothing_overspent(answer: &Value) {
    for view in [answer, &answer["from"]] {
        if let Some(available) = view["available_balance"].as_i64() {
            assert!(available >= 0, "a negative available balance: {answer}");
        }
    }
}

struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    server_errors_500: AtomicU64,
}

fn log(start: Instant, what: &str) {
    println!("chaos [{:>6.1}s] {what}", start.elapsed().as_secs_f64());
}

/// POSTs `body` with one Idempotency-Key until the answer is definitive.
/// `Some(answer)` for a 2xx, `None` for a 422 refusal.
async fn definitive(http: &HttpClient, token: &str, path: &str, body: &Value, counters: &Counters) -> Option<Value> {
    let key = Uuid::new_v4().to_string();
    let deadline = Instant::now() + DEFINITIVE_WITHIN;
    let mut attempt = 0u32;
    loop {
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let answer = http.try_send(Method::POST, path, Some(token), &[("idempotency-key", &key)], Some(body)).await;
        match answer {
            Ok(answer) if answer.status.is_success() => {
                assert_nothing_overspent(&answer.body);
                return Some(answer.body);
            }
            Ok(answer) if answer.status == StatusCode::UNPROCESSABLE_ENTITY => {
                // A refusal is definitive too: the same key again gets the same refusal.
                let again = http.try_send(Method::POST, path, Some(token), &[("idempotency-key", &key)], Some(body)).await;
                if let Ok(again) = again {
                    assert_eq!((again.status, &again.body), (answer.status, &answer.body), "a retried refusal for {path}");
                }
                return None;
            }
            Ok(answer) if answer.status == StatusCode::INTERNAL_SERVER_ERROR => {
                counters.server_errors_500.fetch_add(1, Ordering::Relaxed);
                eprintln!("chaos: 500 from POST {path}: {:?}", answer.body);
            }
            Ok(answer) if answer.status.is_server_error() || answer.status == StatusCode::CONFLICT => {}
            Ok(answer) => panic!("POST {path} {body}: unexpected {} {:?}", answer.status, answer.body),
            Err(_) => {} // a timeout or a broken connection: the same key again
        }
        assert!(Instant::now() < deadline, "POST {path} {body}: no definitive answer within {DEFINITIVE_WITHIN:?}");
        counters.retries.fetch_add(1, Ordering::Relaxed);
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
    }
}

/// One client: random deposits, withdrawals and transfers until `stop`.
async fn client(
    http: HttpClient,
    token: String,
    accounts: Arc<Vec<String>>,
    books: Arc<Mutex<Books>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = fastrand::Rng::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(THINK_TIME).await;
        let a = accounts[rng.usize(..ACCOUNTS)].clone();
        match rng.u8(..16) {
            0..3 => {
                let amount = rng.i64(1..=100);
                let answer = definitive(
                    &http,
                    &token,
                    &format!("/accounts/{a}/deposits"),
                    &json!({"amount": amount, "reference": "chaos"}),
                    &counters,
                )
                .await;
                let mut books = books.lock().unwrap();
                match answer {
                    Some(_) => {
                        books.movement(&a, amount);
                        books.deposited += amount;
                    }
                    None => panic!("a deposit was refused"),
                }
            }
            3..5 => {
                // One in ten asks for more than any account holds: refused (422),
                // and a retry of it must be refused again, not executed.
                let amount = if rng.u8(..10) == 0 { 10_000_000 } else { rng.i64(1..=60) };
                let answer = definitive(&http, &token, &format!("/accounts/{a}/withdrawals"), &json!({"amount": amount}), &counters).await;
                let mut books = books.lock().unwrap();
                match answer {
                    Some(_) => {
                        books.movement(&a, -amount);
                        books.withdrawn += amount;
                    }
                    None => books.refused += 1,
                }
            }
            9..11 => {
                let amount = rng.i64(1..=80);
                let body = json!({"amount": amount, "expires_in_seconds": HOLD_SECONDS, "reference": "chaos"});
                let answer = definitive(&http, &token, &format!("/accounts/{a}/holds"), &body, &counters).await;
                let mut books = books.lock().unwrap();
                match answer {
                    Some(placed) => {
                        books.event(&a);
                        let hold = placed["hold_id"].as_str().expect("a hold id").to_owned();
                        if rng.u8(..4) == 0 {
                            // Left alone: it expires, and the sweep records its expiry.
                            books.event(&a);
                            books.hold_fates.insert(hold, (a, "expired", 0));
                        } else {
                            books.open_holds.push((a, hold, amount));
                        }
                    }
                    None => books.refused += 1,
                }
            }
            11..14 => {
                // End a hold no other client is ending (claimed under the lock).
                let claimed = {
                    let mut books = books.lock().unwrap();
                    let open = books.open_holds.len();
                    (open > 0).then(|| books.open_holds.swap_remove(rng.usize(..open)))
                };
                let Some((owner, hold, amount)) = claimed else { continue };
                let to = accounts.iter().find(|b| **b != owner).expect("another account").clone();
                let (path, body, outcome) = match rng.u8(..3) {
                    0 => ("release", json!({}), "released"),
                    1 => ("capture", json!({"amount": rng.i64(1..=amount)}), "captured"),
                    _ => ("capture", json!({"to_account_id": to}), "captured"),
                };
                let answer = definitive(&http, &token, &format!("/accounts/{owner}/holds/{hold}/{path}"), &body, &counters).await;
                let mut books = books.lock().unwrap();
                books.event(&owner);
                match answer {
                    // Refused: it had expired (past its expiry by the clock).
                    None => {
                        books.hold_fates.insert(hold, (owner, "expired", 0));
                    }
                    Some(ended) => {
                        let captured = ended["captured"].as_i64().unwrap_or(0);
                        if outcome == "captured" {
                            books.movement(&owner, -captured);
                            books.events.entry(owner.clone()).and_modify(|n| *n -= 1); // the capture is one event
                            match ended["to"]["account_id"].as_str() {
                                Some(recipient) => books.movement(recipient, captured),
                                None => books.withdrawn += captured,
                            }
                        }
                        books.hold_fates.insert(hold, (owner, outcome, captured));
                    }
                }
            }
            14..16 => {
                // Two or three accounts: the first one or two debited, the rest credited.
                let mut picked: Vec<String> = Vec::new();
                let count = 2 + rng.usize(..2);
                while picked.len() < count {
                    let c = accounts[rng.usize(..ACCOUNTS)].clone();
                    if !picked.contains(&c) {
                        picked.push(c);
                    }
                }
                let debits = if count == 3 && rng.bool() { 2 } else { 1 };
                // One in ten asks for more than any account holds: refused, applied nowhere.
                let per_debit = if rng.u8(..10) == 0 { 10_000_000 } else { rng.i64(2..=40) };
                let total = per_debit * debits as i64;
                let credits = count - debits;
                let mut legs: Vec<(String, i64)> = picked[..debits].iter().map(|a| (a.clone(), -per_debit)).collect();
                for (n, c) in picked[debits..].iter().enumerate() {
                    let share =
                        if n + 1 == credits { total - (total / credits as i64) * (credits as i64 - 1) } else { total / credits as i64 };
                    legs.push((c.clone(), share));
                }
                let leg = |(account, amount): &(String, i64)| json!({"account_id": account, "amount": amount.abs(), "currency": "EUR"});
                let body = json!({
                    "debits": legs.iter().filter(|l| l.1 < 0).map(leg).collect::<Vec<_>>(),
                    "credits": legs.iter().filter(|l| l.1 > 0).map(leg).collect::<Vec<_>>(),
                    "reference": "chaos",
                });
                let answer = definitive(&http, &token, "/entries", &body, &counters).await;
                let mut books = books.lock().unwrap();
                match answer {
                    Some(posted) => {
                        for (account, amount) in &legs {
                            books.movement(account, *amount);
                        }
                        books.entries.insert(posted["entry_id"].as_str().expect("an entry id").to_owned(), legs);
                    }
                    None => books.refused += 1,
                }
            }
            _ => {
                let b = loop {
                    let b = &accounts[rng.usize(..ACCOUNTS)];
                    if *b != a {
                        break b.clone();
                    }
                };
                let amount = rng.i64(1..=60);
                let body = json!({"from_account_id": a, "to_account_id": b, "amount": amount, "reference": "chaos"});
                let answer = definitive(&http, &token, "/transfers", &body, &counters).await;
                let mut books = books.lock().unwrap();
                match answer {
                    Some(_) => {
                        books.movement(&a, -amount);
                        books.movement(&b, amount);
                    }
                    None => books.refused += 1,
                }
            }
        }
    }
}

/// The account at `version` through the query API (`min_version`), or the
/// last answer when the deadline passes.
async fn read_at(http: &HttpClient, token: &str, id: &str, version: u64, deadline: Instant) -> Result<Value, String> {
    let path = format!("/accounts/{id}?min_version={version}");
    loop {
        let answer = http.try_send(Method::GET, &path, Some(token), &[], None).await;
        match answer {
            Ok(answer) if answer.status == StatusCode::OK => return Ok(answer.body),
            other if Instant::now() >= deadline => return Err(format!("GET {path}: {other:?}")),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_read_side_converges_exactly_after_every_kind_of_fault() {
    let start = Instant::now();
    // Before any account: every account's statement since then opens at 0.
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let mut stack = Stack::start(
        Own { dynamodb: true, postgres: true },
        &[
            // Repairs quickly after a fault (deployed: every minute).
            ("LEDGERLINE_RECONCILE_INTERVAL_MS", "5000"),
            ("LEDGERLINE_RECONCILE_OVERLAP_MS", "30000"),
            // Fewer, quicker event source retries, so failures reach the
            // on-failure file (and the reconciler) within the test.
            ("LEDGERLINE_PROJECTOR_MAX_RETRIES", "2"),
            ("LEDGERLINE_DB_CONNECT_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    log(start, "stack up: serve, five functions compiled and answering, own tansu, Redis, moto and PostgreSQL");

    let minter = scenario::binary_minter(&stack.binary, &stack.secret);
    let token = minter.mint("chaos", false);
    let http = HttpClient::new(&stack.served.base_url).with_timeout(Duration::from_secs(10));
    let counters = Arc::new(Counters { requests: AtomicU64::new(0), retries: AtomicU64::new(0), server_errors_500: AtomicU64::new(0) });
    let books = Arc::new(Mutex::new(Books::default()));

    // Six accounts, each funded.
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let opened = definitive(&http, &token, "/accounts", &json!({"currency": "EUR"}), &counters).await.expect("opened");
        let id = opened["account_id"].as_str().expect("an id").to_owned();
        definitive(&http, &token, &format!("/accounts/{id}/deposits"), &json!({"amount": 5_000}), &counters).await.expect("funded");
        let mut books = books.lock().unwrap();
        books.movement(&id, 5_000);
        books.deposited += 5_000;
        accounts.push(id);
    }
    let accounts = Arc::new(accounts);
    log(start, &format!("{ACCOUNTS} accounts opened and funded; {CLIENTS} clients start moving money"));

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(http.clone(), token.clone(), accounts.clone(), books.clone(), counters.clone(), stop.clone())))
        .collect();
    let settle = || tokio::time::sleep(Duration::from_secs(4));
    settle().await;

    // 1. The broker paused, resumed, restarted.
    log(start, "fault: broker paused (SIGSTOP) for 6 s");
    stack.broker.pause();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stack.broker.resume();
    log(start, "healed: broker resumed; now restarted (data kept)");
    stack.broker.stop().await;
    stack.broker.restart().await;
    settle().await;

    // 2. Redis stopped and started.
    log(start, "fault: Redis stopped for 6 s");
    stack.redis.stop().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    stack.redis.restart().await;
    log(start, "healed: Redis started");
    settle().await;

    // 3. The DynamoDB emulator paused.
    let dynamodb = stack.dynamodb.as_ref().expect("own moto");
    log(start, "fault: DynamoDB emulator paused (SIGSTOP) for 6 s");
    dynamodb.pause();
    tokio::time::sleep(Duration::from_secs(6)).await;
    dynamodb.resume();
    log(start, "healed: DynamoDB emulator resumed");
    settle().await;

    // 4. PostgreSQL stopped and started.
    log(start, "fault: PostgreSQL stopped (fast shutdown) for 5 s");
    let postgres = stack.postgres.as_mut().expect("own PostgreSQL");
    postgres.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    postgres.restart().await;
    log(start, "healed: PostgreSQL started");
    settle().await;

    // 5, 6. Function processes killed mid-invocation (the publisher runs
    // every second and the projector with every batch, so under this load
    // each is almost always inside an invocation).
    for function in ["outbox-publisher", "projector"] {
        let mut killed = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while killed == 0 {
            killed = stack.kill_function(function);
            assert!(Instant::now() < deadline, "no {function} process to kill");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        log(start, &format!("fault: {function} killed (SIGKILL, {killed} process)"));
        settle().await;
    }

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client failed");
    }
    let healed = Instant::now();
    log(start, "last fault healed; clients stopped; waiting for the read side");

    // The write side's books: money conserved. The holds no client ended
    // expire (within HOLD_SECONDS) and the sweep records each expiry.
    let (expected, deposited, withdrawn, refused, hold_fates, movements_of, entries) = {
        let mut books = books.lock().unwrap();
        for (owner, hold, _) in std::mem::take(&mut books.open_holds) {
            books.event(&owner);
            books.hold_fates.insert(hold, (owner, "expired", 0));
        }
        let expected: Vec<(String, i64, u64)> =
            accounts.iter().map(|id| (id.clone(), books.balance[id], 1 + books.events.get(id).copied().unwrap_or(0))).collect();
        (
            expected,
            books.deposited,
            books.withdrawn,
            books.refused,
            books.hold_fates.clone(),
            books.movements.clone(),
            books.entries.clone(),
        )
    };
    assert!(!entries.is_empty(), "entries were exercised");
    let fate_counts = |fate: &str| hold_fates.values().filter(|(_, f, _)| *f == fate).count();
    assert!(fate_counts("captured") > 0 && fate_counts("released") > 0 && fate_counts("expired") > 0, "every end of a hold was exercised");
    let total: i64 = expected.iter().map(|(_, balance, _)| balance).sum();
    assert!(expected.iter().all(|(_, balance, _)| *balance >= 0), "no overdraft: {expected:?}");
    assert!(refused > 0, "the refusal path was exercised");

    // A fault only the reconciler can heal: one account's read-model item
    // put back to its first version by hand, after its last event was
    // projected (no event will come to trigger the projector again).
    let vandalised = &expected[0].0;
    let endpoint = format!("http://127.0.0.1:{}", stack.dynamodb.as_ref().expect("own moto").port);
    let dynamodb = ledgerline_shared::read_model::dynamo::local_client(&endpoint);
    let tables = ledgerline_shared::read_model::tables::TableNames {
        accounts: stack.accounts_table.clone(),
        transactions: stack.transactions_table.clone(),
        holds: stack.holds_table.clone(),
    };
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let read_model = ledgerline_shared::read_model::dynamo::DynamoReadModel::new(dynamodb.clone(), tables.clone());
        let id = vandalised.parse().unwrap();
        use ledgerline_shared::read_model::ReadModelStore;
        if let Ok(Some(view)) = read_model.account(id, true).await
            && view.version == expected[0].2
        {
            let stale = ledgerline_shared::read_model::AccountView { version: 1, balance: 0, ..view };
            dynamodb
                .put_item()
                .table_name(&tables.accounts)
                .set_item(Some(ledgerline_shared::read_model::dynamo::account_item(&stale)))
                .send()
                .await
                .expect("put back by hand");
            break;
        }
        assert!(Instant::now() < deadline, "{vandalised} never reached its final version");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    log(start, &format!("fault: the read model of {vandalised} put back to version 1 by hand"));

    // The read side: every account exactly where the answers put it.
    let deadline = healed + CONVERGE_WITHIN;
    let reader = HttpClient::new(&stack.served.base_url).with_timeout(Duration::from_secs(10));
    for (id, balance, version) in &expected {
        let view = read_at(&reader, &token, id, *version, deadline).await.unwrap_or_else(|error| {
            panic!(
                "the read side did not converge within {CONVERGE_WITHIN:?} of the last fault: {error}\nserve's output:\n{}",
                stack.served.output().join("\n")
            )
        });
        assert_eq!((view["version"].as_u64(), view["balance"].as_i64()), (Some(*version), Some(*balance)), "{id}: {view}");
        assert_eq!((view["held"].as_i64(), view["available_balance"].as_i64()), (Some(0), Some(*balance)), "{id}: nothing held: {view}");
    }
    let converged = healed.elapsed();
    let read_total: i64 = {
        let mut total = 0;
        for (id, _, version) in &expected {
            total += read_at(&reader, &token, id, *version, deadline).await.expect("read above")["balance"].as_i64().unwrap();
        }
        total
    };
    assert_eq!(read_total, deposited - withdrawn, "money is conserved on the read side");
    let output = stack.served.output().join("\n");
    assert!(
        output.lines().any(|line| line.contains("reconciler repaired") && line.contains(vandalised.as_str())),
        "the reconciler repaired {vandalised}, put back by hand; serve's output:\n{output}"
    );
    for (id, balance, version) in &expected {
        let items = history(&reader, &token, id, *version).await;
        let versions: Vec<u64> = items.iter().map(|i| i["version"].as_u64().unwrap()).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]) && versions.iter().all(|v| (1..=*version).contains(v)), "{id}: {versions:?}");
        assert_eq!(versions.len() as u64, movements_of[id], "{id}: every movement once, in order");
        // Every hold of the account listed once, ended as the answers said.
        let holds = reader
            .try_send(Method::GET, &format!("/accounts/{id}/holds?limit=200&min_version={version}"), Some(&token), &[], None)
            .await
            .expect("the holds");
        assert_eq!(holds.status, StatusCode::OK, "{id}: {:?}", holds.body);
        let listed = holds.body["items"].as_array().expect("items");
        let mine: Vec<_> = hold_fates.iter().filter(|(_, (owner, _, _))| owner == id).collect();
        assert!(holds.body["next_cursor"].is_null() && listed.len() == mine.len(), "{id}: {} listed, {} placed", listed.len(), mine.len());
        for (hold, (_, fate, captured)) in mine {
            let item = listed.iter().find(|h| h["hold_id"] == hold.as_str()).unwrap_or_else(|| panic!("{id}: hold {hold} not listed"));
            assert_eq!(item["status"], *fate, "{id}: hold {hold}: {item}");
            if *fate == "captured" {
                assert_eq!(item["captured"].as_i64(), Some(*captured), "{id}: hold {hold}: {item}");
            }
        }
        let net: i64 = items
            .iter()
            .map(|i| {
                let amount = i["amount"].as_i64().unwrap();
                match i["kind"].as_str().unwrap() {
                    "deposit" | "transfer_in" | "entry_credit" => amount,
                    _ => -amount,
                }
            })
            .sum();
        assert_eq!(net, *balance, "{id}: the history adds up to the balance");
        // The statement since before the account: opens at 0, closes on the
        // balance, its totals and items add up, and it lists the history.
        let (head, listed) = statement(&reader, &token, id, since).await;
        let amount = |key: &str| head[key].as_i64().unwrap_or_else(|| panic!("{id}: {key} in {head}"));
        assert_eq!((amount("opening_balance"), amount("closing_balance")), (0, *balance), "{id}: {head}");
        assert_eq!(amount("total_credits") - amount("total_debits"), *balance, "{id}: the totals add up: {head}");
        assert_eq!(listed, items, "{id}: the statement lists the history, oldest first");
        // Each accepted entry's leg on this account once, with its amount;
        // no entry the answers did not accept.
        let mut legs_here: Vec<(String, i64)> = items
            .iter()
            .filter_map(|i| {
                let entry = i["entry_id"].as_str()?.to_owned();
                let amount = i["amount"].as_i64().unwrap();
                Some((entry, if i["kind"] == "entry_debit" { -amount } else { amount }))
            })
            .collect();
        let mut want: Vec<(String, i64)> = entries
            .iter()
            .filter_map(|(entry, legs)| legs.iter().find(|(account, _)| account == id).map(|(_, amount)| (entry.clone(), *amount)))
            .collect();
        legs_here.sort();
        want.sort();
        assert_eq!(legs_here, want, "{id}: every accepted entry's leg once, and no other entry");
    }
    // Every accepted entry looked up by id: exactly its legs, on their accounts.
    for (entry, legs) in &entries {
        let answer = reader.try_send(Method::GET, &format!("/entries/{entry}"), Some(&token), &[], None).await.expect("the entry");
        assert_eq!(answer.status, StatusCode::OK, "entry {entry}: {:?}", answer.body);
        let mut shown: Vec<(String, i64)> = answer.body["legs"]
            .as_array()
            .expect("legs")
            .iter()
            .map(|leg| {
                let amount = leg["amount"].as_i64().unwrap();
                (leg["account_id"].as_str().unwrap().to_owned(), if leg["side"] == "debit" { -amount } else { amount })
            })
            .collect();
        let mut want = legs.clone();
        shown.sort();
        want.sort();
        assert_eq!(shown, want, "entry {entry}: its legs, looked up");
    }
    let requests = counters.requests.load(Ordering::Relaxed);
    let movements: u64 = movements_of.values().sum();
    log(
        start,
        &format!(
            "converged {:.1}s after the last fault: {} accounts, {movements} movements on the read side exactly once, \
             {} holds ({} captured, {} released, {} expired), {} entries, {refused} refusals, {requests} requests ({} retries), \
             money conserved ({total})",
            converged.as_secs_f64(),
            expected.len(),
            hold_fates.len(),
            fate_counts("captured"),
            fate_counts("released"),
            fate_counts("expired"),
            entries.len(),
            counters.retries.load(Ordering::Relaxed)
        ),
    );
    assert_eq!(counters.server_errors_500.load(Ordering::Relaxed), 0, "no request was answered 500");
    // The database lived in the test's own cluster: it goes with the stack.
    drop(stack);
}
