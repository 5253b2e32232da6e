//! The API Gateway HTTP API (payload v2) event AWS sends a function, for
//! tests that call a function's router directly (through
//! `lambda_http::request::from_str`, exactly as in Lambda).

use serde_json::{Value, json};

/// Who signed the request: the `sub` claim, and whether the caller is in
/// the administrators' group. `None` is a request without claims.
pub type Caller<'a> = Option<(&'a str, bool)>;

/// The event for `method path?query`, with the authorizer's claims for
/// `caller`, lower-case `headers` and an optional text body.
pub fn api_gateway_v2_event(
    method: &str,
    path: &str,
    query: &str,
    caller: Caller<'_>,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Value {
    let headers: serde_json::Map<String, Value> = headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "ledgerline",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
        "requestId": format!("req-{}", uuid::Uuid::new_v4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": "25/Nov/2026:00:00:00 +0000",
        "timeEpoch": 1_795_564_800_000i64
    });
    if let Some((sub, admin)) = caller {
        // An administrator is a member of the admin group (API Gateway
        // passes a list claim as `[a b]`); every caller has the usual scope.
        let mut claims = json!({"sub": sub, "scope": "openid"});
        if admin {
            claims["cognito:groups"] = json!("[ledgerline-admins]");
        }
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false
    })
}

/// What a router answered: status, headers and body bytes.
pub struct RouterAnswer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

/// Sends `event` to `router` the way Lambda does: through
/// `lambda_http::request::from_str`, then the router as a tower service.
pub async fn call_router(router: &axum::Router, event: &Value) -> RouterAnswer {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    let response = router.clone().oneshot(request).await.expect("the router never fails");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("a readable body").to_bytes().to_vec();
    RouterAnswer { status, headers, body }
}

/// The (METHOD, path) pairs an OpenAPI document describes, to compare with
/// a router's route list.
pub fn documented_routes(spec: &Value) -> std::collections::BTreeSet<(String, String)> {
    operations(spec).map(|(method, path, _)| (method, path)).collect()
}

/// The (METHOD, path) pairs of the operations tagged `tag`: in the one
/// document for the whole API (docs/openapi.json), each operation carries the
/// name of the function that serves it (`command-api`, `query-api`) as its tag.
pub fn documented_routes_of(spec: &Value, tag: &str) -> std::collections::BTreeSet<(String, String)> {
    operations(spec)
        .filter(|(_, _, operation)| operation["tags"].as_array().is_some_and(|tags| tags.iter().any(|t| t == tag)))
        .map(|(method, path, _)| (method, path))
        .collect()
}

fn operations(spec: &Value) -> impl Iterator<Item = (String, String, &Value)> {
    spec["paths"].as_object().expect("an OpenAPI document has paths").iter().flat_map(|(path, operations)| {
        operations.as_object().into_iter().flatten().map(move |(method, operation)| (method.to_uppercase(), path.clone(), operation))
    })
}
