//! The API Gateway HTTP API (payload v2) event AWS sends a function, for
//! tests that call a function's router directly (through
//! `lambda_http::request::from_str`, exactly as in Lambda).

use serde_json::{Value, json};

/// Who signed the request: the `sub` claim, and whether the token carries
/// the `ledgerline/admin` scope. `None` is a request without claims.
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
        let scope = if admin { "openid ledgerline/admin" } else { "openid" };
        context["authorizer"] = json!({"jwt": {"claims": {"sub": sub, "scope": scope}, "scopes": null}});
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
