//! Look-ups of a transfer and of an entry by id, against the DynamoDB
//! emulator: every leg, and a 404 for anyone outside it exactly as for a
//! missing id.

mod support;

use ledgerline_shared::domain::{AccountEvent, Amount, Reference};
use ledgerline_shared::read_model::{ApplyOutcome, ReadModelStore, change_for};
use serde_json::json;
use support::*;
use uuid::Uuid;

async fn apply(store: &dyn ReadModelStore, account: Uuid, version: u64, event: AccountEvent) {
    assert_eq!(store.apply(&change_for(account, version, &event)).await.unwrap(), ApplyOutcome::Applied);
}

#[tokio::test]
async fn a_transfer_is_shown_to_either_side_and_to_nobody_else() {
    let store = dynamo_store().await;
    let api = Api::new(store.clone(), None, &settings());
    let (alice, bob) = (user(), user());
    let (from, to) = (account_with_deposits(store.as_ref(), &alice, 1).await, open(store.as_ref(), &bob).await);
    let (transfer_id, amount) = (Uuid::now_v7(), Amount::new(7).unwrap());
    let reference = Some(Reference::new("rent").unwrap());
    let sent =
        AccountEvent::TransferSent { transfer_id, to_account_id: to, amount, balance_after: 3, reference: reference.clone(), at: at(3) };
    apply(store.as_ref(), from, 3, sent).await;
    let received = AccountEvent::TransferReceived { transfer_id, from_account_id: from, amount, balance_after: 7, reference, at: at(3) };
    apply(store.as_ref(), to, 2, received).await;

    let path = format!("/transfers/{transfer_id}");
    let expected = json!({"transfer_id": transfer_id, "from_account_id": from, "to_account_id": to, "amount": 7, "currency": "EUR",
                          "reference": "rent", "hold_id": null, "occurred_at": "2026-03-01T12:00:03Z"});
    for caller in [&alice, &bob] {
        let answer = api.get(caller, &path).await;
        answer.assert_ok();
        assert_eq!(answer.body, expected);
    }
    api.send(get(&path).by_admin("ops")).await.assert_ok();
    let theirs = api.get(&user(), &path).await;
    let missing = api.get(&alice, &format!("/transfers/{}", Uuid::new_v4())).await;
    theirs.assert_problem(404, "transfer_not_found");
    assert_eq!(theirs.body, missing.body);
    // An entry's id is no transfer's.
    api.get(&alice, "/transfers/not-a-uuid").await.assert_problem(400, "validation_failed");
    api.get(&alice, &format!("{path}?verbose=1")).await.assert_problem(400, "validation_failed");
    api.send(get(&path)).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn an_entry_is_shown_with_every_leg_to_anyone_in_it() {
    let store = dynamo_store().await;
    let api = Api::new(store.clone(), None, &settings());
    let (payer, shop, bank) = (user(), user(), user());
    let payer_account = account_with_deposits(store.as_ref(), &payer, 1).await;
    let (shop_account, fee_account) = (open(store.as_ref(), &shop).await, open(store.as_ref(), &bank).await);
    let entry_id = Uuid::now_v7();
    let reference = || Some(Reference::new("order 7").unwrap());
    let debit = |amount: i64, balance_after| AccountEvent::EntryDebited {
        entry_id,
        amount: Amount::new(amount).unwrap(),
        balance_after,
        reference: reference(),
        at: at(4),
    };
    let credit = |amount: i64| AccountEvent::EntryCredited {
        entry_id,
        amount: Amount::new(amount).unwrap(),
        balance_after: amount,
        reference: reference(),
        at: at(4),
    };
    apply(store.as_ref(), payer_account, 3, debit(10, 0)).await;
    apply(store.as_ref(), shop_account, 2, credit(9)).await;
    apply(store.as_ref(), fee_account, 2, credit(1)).await;

    let path = format!("/entries/{entry_id}");
    let answer = api.get(&bank, &path).await;
    answer.assert_ok();
    let mut credits = vec![
        json!({"account_id": shop_account, "side": "credit", "amount": 9, "currency": "EUR"}),
        json!({"account_id": fee_account, "side": "credit", "amount": 1, "currency": "EUR"}),
    ];
    credits.sort_by_key(|leg| leg["account_id"].as_str().unwrap().to_owned());
    let mut legs = vec![json!({"account_id": payer_account, "side": "debit", "amount": 10, "currency": "EUR"})];
    legs.extend(credits);
    assert_eq!(answer.body, json!({"entry_id": entry_id, "reference": "order 7", "occurred_at": "2026-03-01T12:00:04Z", "legs": legs}));
    assert_eq!(api.get(&payer, &path).await.body, answer.body);
    let theirs = api.get(&user(), &path).await;
    let missing = api.get(&payer, &format!("/entries/{}", Uuid::new_v4())).await;
    theirs.assert_problem(404, "entry_not_found");
    assert_eq!(theirs.body, missing.body);
    api.get(&payer, "/entries/nope").await.assert_problem(400, "validation_failed");
}
