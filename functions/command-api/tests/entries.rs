//! Entries through the command API: a payment with its fee, a currency
//! exchange, each refusal with the account it names, who may debit what,
//! idempotency — on the in-memory store, and against real PostgreSQL with
//! overlapping entries that must neither deadlock nor be refused 409 and
//! that conserve money per currency.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{Api, fresh_key, post, user};
use uuid::Uuid;

fn leg(account: Uuid, amount: i64, currency: &str) -> Value {
    json!({"account_id": account, "amount": amount, "currency": currency})
}

async fn post_entry(api: &Api, caller: &str, debits: Vec<Value>, credits: Vec<Value>) -> support::TestResponse {
    api.send(post("/entries").by(caller).key(&fresh_key()).json(json!({"debits": debits, "credits": credits}))).await
}

#[tokio::test]
async fn a_payment_with_its_fee_moves_all_legs_at_once_and_shows_only_the_callers_accounts() {
    let api = Api::memory();
    let (payer, merchant, bank) = (user(), user(), user());
    let from = api.open(&payer, "EUR").await;
    let to = api.open(&merchant, "EUR").await;
    let fees = api.open(&bank, "EUR").await;
    api.deposit(&payer, from, 1_000).await;

    let entry = post_entry(&api, &payer, vec![leg(from, 105, "EUR")], vec![leg(to, 100, "EUR"), leg(fees, 5, "EUR")]).await;
    assert_eq!(entry.status, 201, "{}", entry.body);
    assert!(entry.body["entry_id"].is_string());
    assert_eq!(
        entry.body["legs"],
        json!([
            {"account_id": from, "side": "debit", "amount": 105, "currency": "EUR"},
            {"account_id": to, "side": "credit", "amount": 100, "currency": "EUR"},
            {"account_id": fees, "side": "credit", "amount": 5, "currency": "EUR"},
        ])
    );
    // Only the payer's own account, with its balances; the others by id in `legs`.
    assert_eq!(entry.body["accounts"], json!([{"account_id": from, "balance": 895, "held": 0, "available_balance": 895, "version": 3}]));
    assert_eq!((api.balance(from).await, api.balance(to).await, api.balance(fees).await), (895, 100, 5));
}

#[tokio::test]
async fn an_exchange_through_two_fx_accounts_balances_each_currency() {
    let api = Api::memory();
    let (customer, treasury) = (user(), user());
    let customer_eur = api.open(&customer, "EUR").await;
    let customer_usd = api.open(&customer, "USD").await;
    let fx_eur = api.open(&treasury, "EUR").await;
    let fx_usd = api.open(&treasury, "USD").await;
    api.deposit(&customer, customer_eur, 500).await;
    api.deposit(&treasury, fx_usd, 10_000).await;

    // The treasury's own USD account is debited, so an administrator posts it.
    let exchange = api
        .send(post("/entries").by_admin("ops").key(&fresh_key()).json(json!({
            "debits": [leg(customer_eur, 100, "EUR"), leg(fx_usd, 108, "USD")],
            "credits": [leg(fx_eur, 100, "EUR"), leg(customer_usd, 108, "USD")],
            "reference": "EUR/USD 1.08",
        })))
        .await;
    assert_eq!(exchange.status, 201, "{}", exchange.body);
    assert_eq!(exchange.body["accounts"].as_array().map(Vec::len), Some(4), "an administrator sees every account");
    assert_eq!(
        (api.balance(customer_eur).await, api.balance(fx_eur).await, api.balance(fx_usd).await, api.balance(customer_usd).await),
        (400, 100, 9_892, 108)
    );
}

#[tokio::test]
async fn refusals_are_decided_before_anything_moves_and_name_the_leg_account() {
    let api = Api::memory();
    let (alice, bob) = (user(), user());
    let rich = api.open(&alice, "EUR").await;
    let poor = api.open(&alice, "EUR").await;
    let dollars = api.open(&alice, "USD").await;
    let payee = api.open(&bob, "EUR").await;
    let bobs = api.open(&bob, "EUR").await;
    api.deposit(&alice, rich, 100).await;

    // E1: shape, 400 (not stored: the request alone decides it).
    post_entry(&api, &alice, vec![leg(rich, 1, "EUR")], vec![]).await.assert_problem(400, "validation_failed");
    post_entry(&api, &alice, vec![leg(rich, 2, "EUR")], vec![leg(payee, 1, "EUR"), leg(payee, 1, "EUR")])
        .await
        .assert_problem(400, "validation_failed");
    let seventeen: Vec<Value> = (0..16).map(|_| leg(Uuid::now_v7(), 1, "EUR")).collect();
    post_entry(&api, &alice, vec![leg(rich, 16, "EUR")], seventeen).await.assert_problem(400, "validation_failed");
    post_entry(&api, &alice, vec![leg(rich, 0, "EUR")], vec![leg(payee, 0, "EUR")]).await.assert_problem(400, "validation_failed");
    post_entry(&api, &alice, vec![leg(rich, 1, "XXX")], vec![leg(payee, 1, "XXX")]).await.assert_problem(400, "validation_failed");
    // E2: unbalanced, named by currency.
    let unbalanced = post_entry(&api, &alice, vec![leg(rich, 10, "EUR")], vec![leg(payee, 9, "EUR")]).await;
    unbalanced.assert_problem(422, "unbalanced_entry");
    assert!(unbalanced.body["detail"].as_str().unwrap().contains("EUR"), "{}", unbalanced.body);
    // E3: someone else's debited account is 404 exactly like a missing one.
    let others = post_entry(&api, &alice, vec![leg(bobs, 1, "EUR")], vec![leg(payee, 1, "EUR")]).await;
    let missing = post_entry(&api, &alice, vec![leg(Uuid::now_v7(), 1, "EUR")], vec![leg(payee, 1, "EUR")]).await;
    others.assert_problem(404, "account_not_found");
    let without_id = |body: &Value| {
        let mut body = body.clone();
        body.as_object_mut().unwrap().remove("account_id");
        body
    };
    assert_eq!(without_id(&others.body), without_id(&missing.body));
    assert_eq!(others.body["account_id"], json!(bobs), "the account the caller named, nothing more");
    // E5: a debited account of the caller's in another currency than its leg.
    let mismatch = post_entry(&api, &alice, vec![leg(dollars, 1, "EUR")], vec![leg(payee, 1, "EUR")]).await;
    mismatch.assert_problem(422, "currency_mismatch");
    assert_eq!(mismatch.body["account_id"], json!(dollars));
    // E6: a credited account that cannot receive: one refusal, by id only.
    let usd_payee = api.open(&bob, "USD").await;
    for cannot in [Uuid::now_v7(), usd_payee] {
        let refused = post_entry(&api, &alice, vec![leg(rich, 1, "EUR")], vec![leg(cannot, 1, "EUR")]).await;
        refused.assert_problem(422, "recipient_cannot_receive");
        assert_eq!(refused.body["account_id"], json!(cannot));
    }
    // E7: the first debit short of funds, named; nothing moved on the other.
    let short = post_entry(&api, &alice, vec![leg(rich, 50, "EUR"), leg(poor, 50, "EUR")], vec![leg(payee, 100, "EUR")]).await;
    short.assert_problem(422, "insufficient_funds");
    assert_eq!(short.body["account_id"], json!(poor));
    assert_eq!((api.balance(rich).await, api.balance(poor).await, api.balance(payee).await), (100, 0, 0));
}

#[tokio::test]
async fn an_entry_is_idempotent_by_its_key_and_its_refusals_are_stored() {
    let api = Api::memory();
    let (alice, bob) = (user(), user());
    let from = api.open(&alice, "EUR").await;
    let to = api.open(&bob, "EUR").await;
    api.deposit(&alice, from, 10).await;
    let body = json!({"debits": [leg(from, 10, "EUR")], "credits": [leg(to, 10, "EUR")]});
    let key = fresh_key();
    let first = api.send(post("/entries").by(&alice).key(&key).json(body.clone())).await;
    let again = api.send(post("/entries").by(&alice).key(&key).json(body.clone())).await;
    assert_eq!((first.status, &first.body), (again.status, &again.body), "the same answer, not a second entry");
    assert_eq!(api.balance(to).await, 10);
    // A refusal is final for its key too: funding the account later does not change its answer.
    let key = fresh_key();
    api.send(post("/entries").by(&alice).key(&key).json(body.clone())).await.assert_problem(422, "insufficient_funds");
    api.deposit(&alice, from, 10).await;
    api.send(post("/entries").by(&alice).key(&key).json(body.clone())).await.assert_problem(422, "insufficient_funds");
    // Without a key: 400.
    api.send(post("/entries").by(&alice).json(body)).await.assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn a_hold_reserves_money_an_entry_cannot_take() {
    let api = Api::memory();
    let (alice, bob) = (user(), user());
    let from = api.open(&alice, "EUR").await;
    let to = api.open(&bob, "EUR").await;
    api.deposit(&alice, from, 100).await;
    let hold = api.send(post(&format!("/accounts/{from}/holds")).by(&alice).key(&fresh_key()).json(json!({"amount": 70}))).await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    post_entry(&api, &alice, vec![leg(from, 31, "EUR")], vec![leg(to, 31, "EUR")]).await.assert_problem(422, "insufficient_funds");
    let fits = post_entry(&api, &alice, vec![leg(from, 30, "EUR")], vec![leg(to, 30, "EUR")]).await;
    assert_eq!((fits.status, &fits.body["accounts"][0]["available_balance"]), (201, &json!(0)), "{}", fits.body);
}

/// Entries that overlap in every direction on real PostgreSQL, with one
/// hot account in all of them: none deadlocks, none is refused 409, every
/// accepted one moved all its legs, and money is conserved per currency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_entries_on_postgres_neither_deadlock_nor_conflict_and_conserve_money() {
    let api = Arc::new(Api::postgres().await);
    let owner = user();
    let hot = api.open(&owner, "EUR").await;
    let mut accounts = Vec::new();
    for _ in 0..6 {
        let account = api.open(&owner, "EUR").await;
        api.deposit(&owner, account, 1_000).await;
        accounts.push(account);
    }
    api.deposit(&owner, hot, 1_000).await;
    let accounts = Arc::new(accounts);
    let mut tasks = Vec::new();
    for n in 0..48usize {
        let (api, owner, accounts) = (api.clone(), owner.clone(), accounts.clone());
        tasks.push(tokio::spawn(async move {
            // Two or three of the six, in rotating order, plus the hot account.
            let a = accounts[n % 6];
            let b = accounts[(n + 1 + n % 4) % 6];
            let (debits, credits) = if n % 2 == 0 {
                (vec![leg(a, 7, "EUR"), leg(b, 3, "EUR")], vec![leg(hot, 10, "EUR")])
            } else {
                (vec![leg(hot, 10, "EUR")], vec![leg(b, 4, "EUR"), leg(a, 6, "EUR")])
            };
            let response = post_entry(&api, &owner, debits, credits).await;
            (response.status, response.body)
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let mut total = api.balance(hot).await;
    for account in accounts.iter() {
        total += api.balance(*account).await;
    }
    assert_eq!(total, 7_000, "entries move money and never make or lose any");
    assert_eq!(api.balance(hot).await, 1_000, "as many entries in as out of the hot account");
}
