//! The routes and their handlers.
//!
//! Every handler: identity (401) → validation (400) → read → existence and
//! ownership (404: someone else's account is answered as a missing one) →
//! read-your-writes check (409) → answer. Listing another owner's accounts
//! is for administrators (403).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use ledgerline_shared::domain::HoldStatus;
use ledgerline_shared::http::caller::Caller;
use ledgerline_shared::http::correlation::correlate;
use ledgerline_shared::http::problem::ApiError;
use ledgerline_shared::read_model::{AccountView, HoldFilter, HoldView, TransactionView};
use serde::Serialize;
use uuid::Uuid;

use crate::lookup;
use crate::metrics::RequestCounters;
use crate::reader::{Layer, ReadError};
use crate::state::AppState;
use crate::statement::{self, MAX_PERIOD, StatementError};

/// Every route this API serves, as (method, path template). The operations
/// tagged `query-api` in `docs/openapi.json` are checked against this list
/// by a test.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/accounts"),
    ("GET", "/accounts/{id}"),
    ("GET", "/accounts/{id}/transactions"),
    ("GET", "/accounts/{id}/holds"),
    ("GET", "/accounts/{id}/holds/{hold_id}"),
    ("GET", "/accounts/{id}/statement"),
    ("GET", "/accounts/{id}/balance"),
    ("GET", "/transfers/{transfer_id}"),
    ("GET", "/entries/{entry_id}"),
];

/// The response header naming the layer that answered (`l1`, `l2`, `dynamodb`).
pub const CACHE_HEADER: &str = "x-ledgerline-cache";

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 200;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/accounts", get(list_accounts))
        .route("/accounts/{id}", get(get_account))
        .route("/accounts/{id}/transactions", get(list_transactions))
        .route("/accounts/{id}/holds", get(list_holds))
        .route("/accounts/{id}/holds/{hold_id}", get(get_hold))
        .route("/accounts/{id}/statement", get(get_statement))
        .route("/accounts/{id}/balance", get(get_balance_at))
        .route("/transfers/{transfer_id}", get(get_transfer))
        .route("/entries/{entry_id}", get(get_entry))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(middleware::from_fn(correlate))
        .with_state(state)
}

/// Load shedding and metrics around every routed request.
async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| request.uri().path().to_owned(), |p| p.as_str().to_owned());
    let counters = Arc::new(RequestCounters::default());
    request.extensions_mut().insert(counters.clone());
    let (response, shed) = match state.shedder().admit().await {
        Some(_permit) => (next.run(request).await, false),
        None => {
            tracing::warn!(in_flight = state.shedder().in_flight(), "shedding load");
            (ApiError::unavailable("the service is busy; retry shortly").into_response(), true)
        }
    };
    state.metrics().request(&route, response.status().as_u16(), started.elapsed(), &counters, shed);
    response
}

/// The query string as a map; one that does not decode is a problem+json 400.
struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|Query(map)| Params(map))
            .map_err(|_| ApiError::validation("the query string does not decode"))
    }
}

/// The `{id}` path segment; one that does not decode is a problem+json 400.
struct AccountPath(Uuid);

impl<S: Send + Sync> FromRequestParts<S> for AccountPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| account_id_error())?;
        text.parse().map(AccountPath).map_err(|_| account_id_error())
    }
}

/// The `{id}` and `{hold_id}` path segments.
struct HoldPath(Uuid, Uuid);

impl<S: Send + Sync> FromRequestParts<S> for HoldPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((account, hold)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::validation("the account id and the hold id must be UUIDs"))?;
        let account = account.parse().map_err(|_| account_id_error())?;
        let hold = hold.parse().map_err(|_| ApiError::validation("the hold id must be a UUID"))?;
        Ok(HoldPath(account, hold))
    }
}

fn account_id_error() -> ApiError {
    ApiError::validation("the account id must be a UUID")
}

fn check_params(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::validation(format!("unknown query parameter {unknown:?}; this route takes {allowed:?}"))),
        None => Ok(()),
    }
}

fn min_version(params: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    params
        .get("min_version")
        .map(|v| {
            v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| ApiError::validation("min_version must be an integer of at least 1"))
        })
        .transpose()
}

fn read_error(error: ReadError) -> ApiError {
    match error {
        ReadError::Unavailable(_) => ApiError::unavailable("the read model is temporarily unavailable; retry shortly"),
        ReadError::Failed(_) => ApiError::internal(),
    }
}

fn not_yet_consistent(wanted: u64, have: u64) -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::CONFLICT,
            "not_yet_consistent",
            format!("the read model has version {have} of this account, the request asks for at least {wanted}; retry shortly"),
        )
    }
}

/// Reads the account, then applies 404 (409 with `min_version`: not projected
/// yet) and the `min_version` rule. Someone else's account answers exactly
/// as a missing one does: an id reveals nothing about accounts that are not
/// the caller's.
async fn authorized_account(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    min_version: Option<u64>,
    counters: &RequestCounters,
) -> Result<(AccountView, Layer), ApiError> {
    let found = state.reader().account(id, min_version, counters).await.map_err(read_error)?;
    let Some((view, layer)) = found.filter(|(view, _)| caller.may_act_for(&view.owner_id)) else {
        // A caller holding a version knows the account exists: the read
        // model has not seen it yet (409, retry), rather than "no such account".
        return Err(match min_version {
            Some(wanted) => not_yet_consistent(wanted, 0),
            None => ApiError::not_found(),
        });
    };
    if let Some(wanted) = min_version.filter(|wanted| view.version < *wanted) {
        return Err(not_yet_consistent(wanted, view.version));
    }
    Ok((view, layer))
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Whether `If-None-Match` names the current version (or is `*`).
fn not_modified(headers: &HeaderMap, current: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current
    })
}

fn with_layer(mut response: Response, layer: Layer) -> Response {
    response.headers_mut().insert(CACHE_HEADER, HeaderValue::from_static(layer.as_str()));
    response
}

async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    AccountPath(id): AccountPath,
    Params(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_params(&params, &["min_version"])?;
    let min_version = min_version(&params)?;
    let (view, layer) = authorized_account(&state, &caller, id, min_version, &counters).await?;
    let tag = etag(view.version);
    let cache_headers = [
        (header::ETAG, HeaderValue::from_str(&tag).expect("digits and quotes")),
        (header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache")),
    ];
    if not_modified(&headers, &tag) {
        return Ok(with_layer((StatusCode::NOT_MODIFIED, cache_headers).into_response(), layer));
    }
    Ok(with_layer((cache_headers, Json(AccountBody::at(view, Utc::now()))).into_response(), layer))
}

/// An account as the API shows it: the view, with what its live holds
/// reserve and what is available, computed at the moment of the answer
/// (a hold past its expiry counts for nothing, recorded or not).
#[derive(Serialize)]
struct AccountBody {
    account_id: Uuid,
    owner_id: String,
    currency: String,
    balance: i64,
    held: i64,
    available_balance: i64,
    overdraft_limit: i64,
    status: String,
    version: u64,
    updated_at: DateTime<Utc>,
}

impl AccountBody {
    fn at(view: AccountView, at: DateTime<Utc>) -> Self {
        Self {
            held: view.held(at),
            available_balance: view.available_balance(at),
            account_id: view.account_id,
            owner_id: view.owner_id,
            currency: view.currency,
            balance: view.balance,
            overdraft_limit: view.overdraft_limit,
            status: view.status,
            version: view.version,
            updated_at: view.updated_at,
        }
    }
}

/// `?limit=`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
fn page_limit(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::validation(format!("limit must be an integer from 1 to {MAX_PAGE}"))),
    }
}

#[derive(Serialize)]
struct AccountsPage {
    items: Vec<AccountBody>,
    next_cursor: Option<String>,
}

/// One page of an owner's accounts in id order: `?limit=` (default 50) and
/// the signed `?cursor=` of the previous page, bound to that owner.
async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    if params.contains_key("min_version") {
        return Err(ApiError::validation("min_version applies to one account: use GET /accounts/{id}?min_version=N"));
    }
    check_params(&params, &["owner_id", "limit", "cursor"])?;
    let owner = match params.get("owner_id") {
        None => caller.id.clone(),
        Some(owner) if owner.is_empty() || owner.chars().count() > 255 => {
            return Err(ApiError::validation("owner_id must be 1 to 255 characters"));
        }
        Some(owner) if caller.may_act_for(owner) => owner.clone(),
        Some(_) => return Err(ApiError::forbidden("only administrators may list another owner's accounts")),
    };
    let limit = page_limit(&params)?;
    let after = params
        .get("cursor")
        .map(|cursor| state.cursors().decode_accounts(&owner, cursor).map_err(|e| ApiError::validation(format!("invalid cursor: {e}"))))
        .transpose()?;
    let all = state.reader().accounts_of_owner(&owner, &counters).await.map_err(read_error)?;
    let mut rest = all.into_iter().filter(|a| after.is_none_or(|after| a.account_id > after));
    let items: Vec<AccountView> = rest.by_ref().take(limit).collect();
    let next_cursor = match (rest.next(), items.last()) {
        (Some(_), Some(last)) => Some(state.cursors().encode_accounts(&owner, last.account_id)),
        _ => None,
    };
    let now = Utc::now();
    let items = items.into_iter().map(|view| AccountBody::at(view, now)).collect();
    Ok(Json(AccountsPage { items, next_cursor }).into_response())
}

#[derive(Serialize)]
struct TransactionsPage {
    items: Vec<TransactionView>,
    next_cursor: Option<String>,
}

async fn list_transactions(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    AccountPath(id): AccountPath,
    Params(params): Params,
) -> Result<Response, ApiError> {
    check_params(&params, &["limit", "cursor", "min_version"])?;
    let limit = page_limit(&params)?;
    let before = params
        .get("cursor")
        .map(|cursor| state.cursors().decode(id, cursor).map_err(|e| ApiError::validation(format!("invalid cursor: {e}"))))
        .transpose()?;
    let min_version = min_version(&params)?;
    let (_, layer) = authorized_account(&state, &caller, id, min_version, &counters).await?;
    let page = state.reader().transactions(id, limit, before, min_version.is_some(), &counters).await.map_err(read_error)?;
    let next_cursor = page.next_before_version.map(|version| state.cursors().encode(id, version));
    Ok(with_layer(Json(TransactionsPage { items: page.items, next_cursor }).into_response(), layer))
}

/// A hold as the API shows it, with its status as of the answer.
#[derive(Serialize)]
struct HoldBody {
    hold_id: Uuid,
    account_id: Uuid,
    amount: i64,
    status: &'static str,
    reference: Option<String>,
    placed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    captured: Option<i64>,
    released: Option<i64>,
    ended_at: Option<DateTime<Utc>>,
    transfer_id: Option<Uuid>,
    to_account_id: Option<Uuid>,
}

impl HoldBody {
    fn at(hold: HoldView, at: DateTime<Utc>) -> Self {
        let status = hold.status_at(at);
        // Past its expiry before the sweep recorded it: freed all the same.
        let (released, ended_at) = match (status, hold.status) {
            (HoldStatus::Expired, HoldStatus::Active) => (Some(hold.amount), Some(hold.expires_at)),
            _ => (hold.released, hold.ended_at),
        };
        Self {
            hold_id: hold.hold_id,
            account_id: hold.account_id,
            amount: hold.amount,
            status: status.as_str(),
            reference: hold.reference,
            placed_at: hold.placed_at,
            expires_at: hold.expires_at,
            captured: hold.captured,
            released,
            ended_at,
            transfer_id: hold.transfer_id,
            to_account_id: hold.to_account_id,
        }
    }
}

#[derive(Serialize)]
struct HoldsPage {
    items: Vec<HoldBody>,
    next_cursor: Option<String>,
}

/// One page of an account's holds, newest first: `?status=`, `?limit=`,
/// `?cursor=`, `?min_version=` (as for the history).
async fn list_holds(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    AccountPath(id): AccountPath,
    Params(params): Params,
) -> Result<Response, ApiError> {
    check_params(&params, &["status", "limit", "cursor", "min_version"])?;
    let limit = page_limit(&params)?;
    let status = params
        .get("status")
        .map(|s| HoldStatus::parse(s).ok_or_else(|| ApiError::validation("status must be one of active, captured, released, expired")))
        .transpose()?;
    let before = params
        .get("cursor")
        .map(|cursor| state.cursors().decode_holds(id, cursor).map_err(|e| ApiError::validation(format!("invalid cursor: {e}"))))
        .transpose()?;
    let min_version = min_version(&params)?;
    let (_, layer) = authorized_account(&state, &caller, id, min_version, &counters).await?;
    let now = Utc::now();
    let filter = HoldFilter { status, at: now };
    let page = state.reader().holds(id, filter, limit, before, min_version.is_some(), &counters).await.map_err(read_error)?;
    let next_cursor = page.next_before.map(|hold_id| state.cursors().encode_holds(id, hold_id));
    let items = page.items.into_iter().map(|hold| HoldBody::at(hold, now)).collect();
    Ok(with_layer(Json(HoldsPage { items, next_cursor }).into_response(), layer))
}

/// One hold. Someone else's account is a 404 as a missing one; a hold
/// that account does not have is 404 `hold_not_found`.
async fn get_hold(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    HoldPath(id, hold_id): HoldPath,
    Params(params): Params,
) -> Result<Response, ApiError> {
    check_params(&params, &["min_version"])?;
    let min_version = min_version(&params)?;
    let (_, layer) = authorized_account(&state, &caller, id, min_version, &counters).await?;
    let hold = state.reader().hold(id, hold_id, min_version.is_some(), &counters).await.map_err(read_error)?;
    let Some(hold) = hold else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "hold_not_found", "the account has no such hold"));
    };
    Ok(with_layer(Json(HoldBody::at(hold, Utc::now())).into_response(), layer))
}

/// `?name=` as an RFC 3339 moment, within the range statements can carry.
fn moment(params: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = params.get(name) else { return Ok(None) };
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
        .filter(|at| at.timestamp_nanos_opt().is_some())
        .map(Some)
        .ok_or_else(|| {
            ApiError::validation(format!("{name} must be an RFC 3339 time (such as 2026-03-01T00:00:00Z) between 1678 and 2261"))
        })
}

fn statement_error(error: StatementError) -> ApiError {
    match error {
        StatementError::Read(error) => read_error(error),
        StatementError::TotalsOverflow => ApiError::validation("the period's totals do not fit in 64 bits; ask for a shorter period"),
        StatementError::NotYetConsistent => ApiError::unavailable("the read model is still writing this period's movements; retry shortly"),
    }
}

/// Whether the client prefers CSV: `text/csv` accepted (q > 0) and ranked
/// above `application/json` (JSON, the default, wins a tie; wildcards do not
/// count against a media type named outright).
fn wants_csv(headers: &HeaderMap) -> bool {
    let (mut csv, mut json) = (0.0_f32, 0.0_f32);
    let ranges = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for range in ranges {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts.filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok())).next().unwrap_or(1.0);
        match media.as_str() {
            "text/csv" => csv = csv.max(q),
            "application/json" => json = json.max(q),
            _ => {}
        }
    }
    csv > 0.0 && csv > json
}

/// The header that carries a CSV statement's next cursor (a CSV body has
/// no room for it).
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

#[derive(Serialize)]
struct StatementBody {
    #[serde(flatten)]
    statement: statement::Statement,
    next_cursor: Option<String>,
}

/// An account's statement of `[from, to)`: opening and closing balances,
/// totals, and the movements between, oldest first (see [`statement`]).
async fn get_statement(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    AccountPath(id): AccountPath,
    Params(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_params(&params, &["from", "to", "limit", "cursor"])?;
    let limit = page_limit(&params)?;
    let (from, to) = (moment(&params, "from")?, moment(&params, "to")?);
    let position = params
        .get("cursor")
        .map(|cursor| {
            let position =
                state.cursors().decode_statement(id, cursor).map_err(|e| ApiError::validation(format!("invalid cursor: {e}")))?;
            if from.is_some_and(|from| from != position.from) || to.is_some_and(|to| to != position.to) {
                return Err(ApiError::validation(format!("invalid cursor: {}", crate::cursor::CursorError::WrongPeriod)));
            }
            Ok(position)
        })
        .transpose()?;
    let period = match position {
        Some(position) => (position.from, position.to),
        None => {
            let from = from.ok_or_else(|| ApiError::validation("from is required (an RFC 3339 time)"))?;
            let to = to.unwrap_or_else(Utc::now);
            if to <= from {
                return Err(ApiError::validation("to must be later than from"));
            }
            if to - from > MAX_PERIOD {
                return Err(ApiError::validation("a statement covers at most 366 days: from and to are too far apart"));
            }
            (from, to)
        }
    };
    let (account, layer) = authorized_account(&state, &caller, id, None, &counters).await?;
    let page = match position {
        Some(position) => statement::next_page(state.reader(), account.currency, position, limit, &counters).await,
        None => statement::first_page(state.reader(), id, account.currency, period, limit, &counters).await,
    }
    .map_err(statement_error)?;
    let next_cursor = page.next.as_ref().map(|position| state.cursors().encode_statement(position));
    if wants_csv(&headers) {
        let mut response =
            ([(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"))], statement::to_csv(&page)).into_response();
        if let Some(cursor) = next_cursor {
            response.headers_mut().insert(NEXT_CURSOR_HEADER, HeaderValue::from_str(&cursor).expect("base64url"));
        }
        return Ok(with_layer(response, layer));
    }
    Ok(with_layer(Json(StatementBody { statement: page, next_cursor }).into_response(), layer))
}

/// An account's balance as of `?at=` (not in the future): after every
/// movement at or before it, with what holds active then reserved.
async fn get_balance_at(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    AccountPath(id): AccountPath,
    Params(params): Params,
) -> Result<Response, ApiError> {
    check_params(&params, &["at"])?;
    let at = moment(&params, "at")?.ok_or_else(|| ApiError::validation("at is required (an RFC 3339 time)"))?;
    if at > Utc::now() {
        return Err(ApiError::validation("at must not be in the future: GET /accounts/{id} answers the balance now"));
    }
    let (account, layer) = authorized_account(&state, &caller, id, None, &counters).await?;
    let answer =
        statement::balance_at(state.reader(), (id, account.currency, account.overdraft_limit), at, &counters).await.map_err(read_error)?;
    Ok(with_layer(Json(answer).into_response(), layer))
}

/// A `{transfer_id}` or `{entry_id}` path segment; one that does not decode is a 400.
struct MovementPath(Uuid);

impl<S: Send + Sync> FromRequestParts<S> for MovementPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::validation("the id must be a UUID");
        let Path(text) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| invalid())?;
        text.parse().map(MovementPath).map_err(|_| invalid())
    }
}

/// A transfer by its id: both legs' accounts, amount, reference, time.
/// Someone else's transfer is a 404 exactly as a missing one.
async fn get_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    MovementPath(id): MovementPath,
    Params(params): Params,
) -> Result<Response, ApiError> {
    check_params(&params, &[])?;
    match lookup::transfer(state.reader(), &caller, id, &counters).await.map_err(read_error)? {
        Some(transfer) => Ok(Json(transfer).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "transfer_not_found", "no such transfer")),
    }
}

/// An entry by its id: every leg, reference, time. Someone else's entry
/// is a 404 exactly as a missing one.
async fn get_entry(
    State(state): State<AppState>,
    caller: Caller,
    Extension(counters): Extension<Arc<RequestCounters>>,
    MovementPath(id): MovementPath,
    Params(params): Params,
) -> Result<Response, ApiError> {
    check_params(&params, &[])?;
    match lookup::entry(state.reader(), &caller, id, &counters).await.map_err(read_error)? {
        Some(entry) => Ok(Json(entry).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "entry_not_found", "no such entry")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        HeaderMap::from_iter([(header::ACCEPT, HeaderValue::from_str(value).unwrap())])
    }

    #[test]
    fn csv_only_when_it_is_preferred() {
        assert!(wants_csv(&accept("text/csv")));
        assert!(wants_csv(&accept("text/csv, application/json;q=0.5")));
        assert!(wants_csv(&accept("TEXT/CSV; charset=utf-8")));
        assert!(!wants_csv(&accept("text/csv;q=0, application/json")));
        assert!(!wants_csv(&accept("application/json, text/csv;q=0.1")));
        assert!(wants_csv(&accept("text/csv, */*")));
        assert!(!wants_csv(&accept("text/csv, application/json")), "a tie goes to JSON");
        assert!(!wants_csv(&accept("application/json")));
        assert!(!wants_csv(&HeaderMap::new()));
    }
}
