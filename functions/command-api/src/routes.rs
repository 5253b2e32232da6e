//! The routes and their handlers: HTTP in, a [`Decision`] out.
//!
//! Each handler validates its input (400), then hands [`execute`] the
//! accounts to read and a closure that authorizes (404 for a missing or
//! someone else's account, 403 for an administrator's operation) and decides
//! on what was read. The closure may run several times when the account
//! changes under it.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use ledgerline_shared::domain::{
    Account, AccountCommand, AccountEvent, Amount, CaptureToAccount, Currency, DomainError, EntryCommand, Hold, HoldLifetime, HoldStatus,
    Leg, LegRefusal, OverdraftLimit, OwnerId, Reference, TransferCommand, decide, decide_capture_to_account, decide_entry, decide_transfer,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::execute::{Answer, CommandContext, Decision, execute};
use crate::request::{
    self, Inbound, RawAccountId, RawHoldPath, account_id, hold_id, idempotency_key, parse_json, required_idempotency_key,
};
use crate::state::AppState;
use crate::views::{AccountView, BalanceView, CounterpartyView, EntryView, HoldAnswer, LegView, StatusView, TransferView};
use ledgerline_shared::accounts::CommandInput;
use ledgerline_shared::http::caller::Caller;
use ledgerline_shared::http::correlation::correlate;
use ledgerline_shared::http::problem::ApiError;

/// Every route this API serves, as (method, path template). The OpenAPI
/// document in docs/ is checked against this list by a test.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/accounts"),
    ("POST", "/accounts/{id}/deposits"),
    ("POST", "/accounts/{id}/withdrawals"),
    ("POST", "/transfers"),
    ("POST", "/accounts/{id}/freeze"),
    ("POST", "/accounts/{id}/unfreeze"),
    ("POST", "/accounts/{id}/close"),
    ("POST", "/accounts/{id}/holds"),
    ("POST", "/accounts/{id}/holds/{hold_id}/capture"),
    ("POST", "/accounts/{id}/holds/{hold_id}/release"),
    ("POST", "/entries"),
];

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/accounts", post(open_account))
        .route("/accounts/{id}/deposits", post(deposit))
        .route("/accounts/{id}/withdrawals", post(withdraw))
        .route("/transfers", post(transfer))
        .route("/accounts/{id}/freeze", post(freeze))
        .route("/accounts/{id}/unfreeze", post(unfreeze))
        .route("/accounts/{id}/close", post(close))
        .route("/accounts/{id}/holds", post(place_hold))
        .route("/accounts/{id}/holds/{hold_id}/capture", post(capture_hold))
        .route("/accounts/{id}/holds/{hold_id}/release", post(release_hold))
        .route("/entries", post(post_entry))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(middleware::from_fn(correlate))
        .with_state(state)
}

// ---- request bodies ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAccountBody {
    currency: String,
    #[serde(default, deserialize_with = "request::integer")]
    overdraft_limit: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyBody {
    #[serde(deserialize_with = "request::integer")]
    amount: i64,
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    from_account_id: Uuid,
    to_account_id: Uuid,
    #[serde(deserialize_with = "request::integer")]
    amount: i64,
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceHoldBody {
    #[serde(deserialize_with = "request::integer")]
    amount: i64,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default, deserialize_with = "request::optional_integer")]
    expires_in_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureBody {
    #[serde(default, deserialize_with = "request::optional_integer")]
    amount: Option<i64>,
    #[serde(default)]
    to_account_id: Option<Uuid>,
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    debits: Vec<LegBody>,
    credits: Vec<LegBody>,
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegBody {
    account_id: Uuid,
    #[serde(deserialize_with = "request::integer")]
    amount: i64,
    currency: String,
}

impl LegBody {
    fn leg(self) -> Result<Leg, DomainError> {
        Ok(Leg { account_id: self.account_id, amount: Amount::new(self.amount)?, currency: self.currency.parse()? })
    }
}

/// Freeze, unfreeze, close and release take no fields: no body at all, or `{}`;
/// any other body, whitespace alone included, is refused (400).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

fn reference(text: Option<String>) -> Result<Option<Reference>, ApiError> {
    text.map(Reference::new).transpose().map_err(ApiError::from)
}

// ---- shared steps ----

/// An account the caller may act on. Someone else's account is a 404,
/// exactly like a missing one: an id reveals nothing about accounts that
/// are not the caller's.
fn owned<'a>(input: &'a CommandInput, caller: &Caller, id: Uuid) -> Result<&'a Account, ApiError> {
    input.account(id).filter(|account| caller.may_act_for(account.owner_id.as_str())).ok_or_else(ApiError::not_found)
}

/// A domain refusal: business rules become a stored 422, the rest an
/// unstored error.
fn refusal(error: DomainError) -> Result<Decision, ApiError> {
    if error.is_business_rule() { Ok(Decision::Refuse(error.into())) } else { Err(error.into()) }
}

/// Decides `command` on one account the caller may act on; answers with
/// `view` of the account after it, as of the moment it was decided.
fn decide_on_account(
    state: &AppState,
    input: &CommandInput,
    caller: &Caller,
    id: Uuid,
    command: &AccountCommand,
    view: impl Fn(&Account, DateTime<Utc>) -> Answer,
) -> Result<Decision, ApiError> {
    let account = owned(input, caller, id)?;
    let at = Utc::now();
    let events = match decide(Some(account), command, at) {
        Ok(events) => events,
        Err(error) => return refusal(error),
    };
    if events.is_empty() {
        return Ok(Decision::Commit { changes: vec![], answer: view(account, at) });
    }
    let change = state.repository().stage(id, Some(account), &events)?;
    let answer = view(&change.after, at);
    Ok(Decision::Commit { changes: vec![change], answer })
}

/// Decides a capture out of the ledger or a release of an active hold;
/// answers with the hold as it was placed, now `status`.
fn decide_on_hold(
    state: &AppState,
    input: &CommandInput,
    caller: &Caller,
    id: Uuid,
    command: &AccountCommand,
    status: HoldStatus,
) -> Result<Decision, ApiError> {
    let account = owned(input, caller, id)?;
    let at = Utc::now();
    let events = match decide(Some(account), command, at) {
        Ok(events) => events,
        Err(error) => return refusal(error),
    };
    let Some(hold) = events.first().and_then(AccountEvent::hold_id).and_then(|h| account.hold(h)).cloned() else {
        return Err(ApiError::internal());
    };
    let change = state.repository().stage(id, Some(account), &events)?;
    let mut answer = HoldAnswer::new(&hold, status, &change.after, at);
    match &events[0] {
        AccountEvent::HoldCaptured { amount, released, .. } => {
            (answer.captured, answer.released) = (Some(amount.minor_units()), Some(*released))
        }
        AccountEvent::HoldReleased { amount, .. } => answer.released = Some(amount.minor_units()),
        _ => {}
    }
    Ok(Decision::Commit { changes: vec![change], answer: Answer::json(StatusCode::OK, &answer) })
}

// ---- handlers ----

async fn open_account(State(state): State<AppState>, inbound: Inbound) -> Result<Response, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    let key = idempotency_key(&headers)?;
    let input: OpenAccountBody = parse_json(&headers, &bytes)?;
    let currency: Currency = input.currency.parse()?;
    let overdraft_limit = OverdraftLimit::new(input.overdraft_limit)?;
    if overdraft_limit.minor_units() > 0 && !caller.is_admin {
        return Err(ApiError::forbidden("only an administrator may grant an overdraft"));
    }
    let owner_id = OwnerId::new(caller.id.clone())?;
    let context = CommandContext::new(caller, key, &path, &bytes, correlation_id);
    let account_id = Uuid::new_v4();
    let command = AccountCommand::Open { account_id, owner_id, currency, overdraft_limit };
    let answer = execute(&state, context, &[account_id], |_| {
        let at = Utc::now();
        let events = decide(None, &command, at)?;
        let change = state.repository().stage(account_id, None, &events)?;
        let answer = Answer::json(StatusCode::CREATED, &AccountView::at(&change.after, at));
        Ok(Decision::Commit { changes: vec![change], answer })
    })
    .await?;
    // The Location comes from the answer, so a replay points at the same account.
    let location = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|body| body.get("account_id").and_then(|id| id.as_str()).map(|id| format!("/accounts/{id}")));
    let mut response = answer.into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Clone, Copy)]
enum Movement {
    Deposit,
    Withdrawal,
}

async fn deposit(State(state): State<AppState>, RawAccountId(id): RawAccountId, inbound: Inbound) -> Result<Answer, ApiError> {
    move_money(&state, &id, inbound, Movement::Deposit).await
}

async fn withdraw(State(state): State<AppState>, RawAccountId(id): RawAccountId, inbound: Inbound) -> Result<Answer, ApiError> {
    move_money(&state, &id, inbound, Movement::Withdrawal).await
}

async fn move_money(state: &AppState, id: &str, inbound: Inbound, movement: Movement) -> Result<Answer, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    let id = account_id(id)?;
    let key = required_idempotency_key(&headers)?;
    let input: MoneyBody = parse_json(&headers, &bytes)?;
    let amount = Amount::new(input.amount)?;
    let reference = reference(input.reference)?;
    let command = match movement {
        Movement::Deposit => AccountCommand::Deposit { amount, reference },
        Movement::Withdrawal => AccountCommand::Withdraw { amount, reference },
    };
    let context = CommandContext::new(caller.clone(), Some(key), &path, &bytes, correlation_id);
    execute(state, context, &[id], |input| {
        decide_on_account(state, input, &caller, id, &command, |a, at| Answer::json(StatusCode::OK, &BalanceView::at(a, at)))
    })
    .await
}

async fn transfer(State(state): State<AppState>, inbound: Inbound) -> Result<Answer, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    let key = required_idempotency_key(&headers)?;
    let input: TransferBody = parse_json(&headers, &bytes)?;
    let command = TransferCommand {
        transfer_id: Uuid::now_v7(),
        from_account_id: input.from_account_id,
        to_account_id: input.to_account_id,
        amount: Amount::new(input.amount)?,
        reference: reference(input.reference)?,
    };
    let context = CommandContext::new(caller.clone(), Some(key), &path, &bytes, correlation_id);
    let accounts = [command.from_account_id, command.to_account_id];
    execute(&state, context, &accounts, |input| {
        let from = owned(input, &caller, command.from_account_id)?;
        if command.to_account_id == command.from_account_id {
            return refusal(DomainError::SameAccount);
        }
        // The recipient may be anyone's account: whether it is missing,
        // frozen, closed or in another currency, the refusal is the same
        // (`recipient_cannot_receive`), and the answer names only its id.
        let to = input.account(command.to_account_id);
        let at = Utc::now();
        let decision = match decide_transfer(Some(from), to, &command, at) {
            Ok(decision) => decision,
            Err(error) => return refusal(error),
        };
        let to = to.expect("a transfer was decided, so the recipient exists");
        let sent = state.repository().stage(from.id, Some(from), &[decision.sent])?;
        let received = state.repository().stage(to.id, Some(to), &[decision.received])?;
        let view = TransferView {
            transfer_id: command.transfer_id,
            from: BalanceView::at(&sent.after, at),
            to: CounterpartyView { account_id: received.after.id },
        };
        Ok(Decision::Commit { changes: vec![sent, received], answer: Answer::json(StatusCode::CREATED, &view) })
    })
    .await
}

#[derive(Clone, Copy)]
enum StatusChange {
    Freeze,
    Unfreeze,
    Close,
}

async fn freeze(State(state): State<AppState>, RawAccountId(id): RawAccountId, inbound: Inbound) -> Result<Answer, ApiError> {
    change_status(&state, &id, inbound, StatusChange::Freeze).await
}

async fn unfreeze(State(state): State<AppState>, RawAccountId(id): RawAccountId, inbound: Inbound) -> Result<Answer, ApiError> {
    change_status(&state, &id, inbound, StatusChange::Unfreeze).await
}

async fn close(State(state): State<AppState>, RawAccountId(id): RawAccountId, inbound: Inbound) -> Result<Answer, ApiError> {
    change_status(&state, &id, inbound, StatusChange::Close).await
}

async fn change_status(state: &AppState, id: &str, inbound: Inbound, change: StatusChange) -> Result<Answer, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    if matches!(change, StatusChange::Freeze | StatusChange::Unfreeze) && !caller.is_admin {
        return Err(ApiError::forbidden("only an administrator may freeze or unfreeze an account"));
    }
    let id = account_id(id)?;
    let key = idempotency_key(&headers)?;
    if !bytes.is_empty() {
        let _: EmptyBody = parse_json(&headers, &bytes)?;
    }
    let command = match change {
        StatusChange::Freeze => AccountCommand::Freeze,
        StatusChange::Unfreeze => AccountCommand::Unfreeze,
        StatusChange::Close => AccountCommand::Close,
    };
    let context = CommandContext::new(caller.clone(), key, &path, &bytes, correlation_id);
    execute(state, context, &[id], |input| {
        decide_on_account(state, input, &caller, id, &command, |a, _| Answer::json(StatusCode::OK, &StatusView::from(a)))
    })
    .await
}

// ---- holds ----

async fn place_hold(State(state): State<AppState>, RawAccountId(id): RawAccountId, inbound: Inbound) -> Result<Answer, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    let id = account_id(&id)?;
    let key = required_idempotency_key(&headers)?;
    let input: PlaceHoldBody = parse_json(&headers, &bytes)?;
    let amount = Amount::new(input.amount)?;
    let reference = reference(input.reference)?;
    let lifetime = input.expires_in_seconds.map(HoldLifetime::new).transpose()?.unwrap_or_default();
    let hold_id = Uuid::now_v7();
    let command = AccountCommand::PlaceHold { hold_id, amount, reference: reference.clone(), lifetime };
    let context = CommandContext::new(caller.clone(), Some(key), &path, &bytes, correlation_id);
    execute(&state, context, &[id], |input| {
        decide_on_account(&state, input, &caller, id, &command, |account, at| {
            // The hold as the decision placed it (the answer never depends on finding it again).
            let hold = Hold { hold_id, amount, expires_at: lifetime.expires_at(at) };
            Answer::json(StatusCode::CREATED, &HoldAnswer::new(&hold, HoldStatus::Active, account, at))
        })
    })
    .await
}

async fn capture_hold(State(state): State<AppState>, RawHoldPath(id, hold): RawHoldPath, inbound: Inbound) -> Result<Answer, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    let (id, hold_id) = (account_id(&id)?, hold_id(&hold)?);
    let key = required_idempotency_key(&headers)?;
    let input: CaptureBody =
        if bytes.is_empty() { CaptureBody { amount: None, to_account_id: None, reference: None } } else { parse_json(&headers, &bytes)? };
    let amount = input.amount.map(Amount::new).transpose()?;
    let reference = reference(input.reference)?;
    let context = CommandContext::new(caller.clone(), Some(key), &path, &bytes, correlation_id);
    let Some(to_account_id) = input.to_account_id else {
        let command = AccountCommand::CaptureHold { hold_id, amount, reference };
        return execute(&state, context, &[id], |input| decide_on_hold(&state, input, &caller, id, &command, HoldStatus::Captured)).await;
    };
    let capture = CaptureToAccount { hold_id, transfer_id: Uuid::now_v7(), from_account_id: id, to_account_id, amount, reference };
    execute(&state, context, &[id, to_account_id], |input| {
        let from = owned(input, &caller, id)?;
        if to_account_id == id {
            return refusal(DomainError::SameAccount);
        }
        // As a transfer: the recipient may be anyone's, so every reason it
        // cannot receive is one refusal, and the answer names only its id.
        let to = input.account(to_account_id);
        let at = Utc::now();
        let decision = match decide_capture_to_account(Some(from), to, &capture, at) {
            Ok(decision) => decision,
            Err(error) => return refusal(error),
        };
        let (Some(to), Some(hold)) = (to, from.hold(hold_id).cloned()) else { return Err(ApiError::internal()) };
        let AccountEvent::HoldCaptured { amount: captured, released, .. } = &decision.sent else { return Err(ApiError::internal()) };
        let (captured, released) = (captured.minor_units(), *released);
        let sent = state.repository().stage(from.id, Some(from), &[decision.sent])?;
        let received = state.repository().stage(to.id, Some(to), &[decision.received])?;
        let answer = HoldAnswer {
            captured: Some(captured),
            released: Some(released),
            transfer_id: Some(capture.transfer_id),
            to: Some(CounterpartyView { account_id: received.after.id }),
            ..HoldAnswer::new(&hold, HoldStatus::Captured, &sent.after, at)
        };
        Ok(Decision::Commit { changes: vec![sent, received], answer: Answer::json(StatusCode::OK, &answer) })
    })
    .await
}

async fn release_hold(State(state): State<AppState>, RawHoldPath(id, hold): RawHoldPath, inbound: Inbound) -> Result<Answer, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    let (id, hold_id) = (account_id(&id)?, hold_id(&hold)?);
    let key = idempotency_key(&headers)?;
    if !bytes.is_empty() {
        let _: EmptyBody = parse_json(&headers, &bytes)?;
    }
    let command = AccountCommand::ReleaseHold { hold_id };
    let context = CommandContext::new(caller.clone(), key, &path, &bytes, correlation_id);
    execute(&state, context, &[id], |input| decide_on_hold(&state, input, &caller, id, &command, HoldStatus::Released)).await
}

// ---- entries ----

/// `POST /entries`: 2 to 16 accounts, all legs or none (the rules are
/// written down in `ledgerline_shared::domain::entry`). The shape and the
/// balance per currency are checked before anything is read; those
/// refusals depend on the request alone and are not stored.
async fn post_entry(State(state): State<AppState>, inbound: Inbound) -> Result<Answer, ApiError> {
    let Inbound { caller, correlation_id, path, headers, body: bytes } = inbound;
    let key = required_idempotency_key(&headers)?;
    let input: EntryBody = parse_json(&headers, &bytes)?;
    let legs = |legs: Vec<LegBody>| legs.into_iter().map(LegBody::leg).collect::<Result<Vec<_>, _>>();
    let entry = EntryCommand::new(Uuid::now_v7(), legs(input.debits)?, legs(input.credits)?, reference(input.reference)?)?;
    let context = CommandContext::new(caller.clone(), Some(key), &path, &bytes, correlation_id);
    execute(&state, context, &entry.account_ids(), |input| {
        // The debited accounts are the caller's own (administrators: any);
        // someone else's is a 404 like a missing one. Credited ones may be
        // anyone's.
        for leg in entry.debits() {
            owned(input, &caller, leg.account_id).map_err(|e| e.about_account(leg.account_id))?;
        }
        let at = Utc::now();
        let events = match decide_entry(&entry, |id| input.account(id), at) {
            Ok(events) => events,
            Err(LegRefusal { account_id, error }) if error.is_business_rule() => {
                return Ok(Decision::Refuse(ApiError::from(error).about_account(account_id)));
            }
            Err(LegRefusal { error, .. }) => return Err(error.into()),
        };
        let changes = events
            .into_iter()
            .map(|(id, event)| state.repository().stage(id, input.account(id), &[event]))
            .collect::<Result<Vec<_>, _>>()?;
        let view = EntryView {
            entry_id: entry.entry_id(),
            legs: entry.legs().map(|(side, leg)| LegView::new(side, leg)).collect(),
            // Only the caller's own accounts; the others are named by id in `legs`.
            accounts: changes
                .iter()
                .filter(|c| caller.may_act_for(c.after.owner_id.as_str()))
                .map(|c| BalanceView::at(&c.after, at))
                .collect(),
        };
        Ok(Decision::Commit { changes, answer: Answer::json(StatusCode::CREATED, &view) })
    })
    .await
}
