//! From an HTTP request to the API Gateway HTTP API (payload 2.0) event.
//!
//! The event is built as JSON in the shape AWS sends and then parsed into
//! `ApiGatewayV2httpRequest`, so what a function receives locally is what
//! it would receive in AWS: lower-case header names with repeated headers
//! joined by commas, cookies in `cookies`, query parameters joined by
//! commas, `pathParameters`, the authorizer's claims as strings, and the
//! body as text, or base64 when it is not text.

use std::net::SocketAddr;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::auth::claims_as_strings;
use super::routes::Route;

/// Builds the event for a request that matched `route` and whose token
/// carried `claims` (every claim, as the token had it).
pub fn build(
    parts: &Parts,
    body: &[u8],
    route: &Route,
    claims: &Map<String, Value>,
    source: SocketAddr,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ApiGatewayV2httpRequest, serde_json::Error> {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        // `HeaderName` is already lower case, as API Gateway sends names.
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let header = |name: &str| headers.get(name).and_then(Value::as_str).map(str::to_owned);
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let path = parts.uri.path();
    // The Host header without its port: API Gateway's domain names have none.
    let host = header("host").unwrap_or_else(|| "localhost".into());
    let domain = host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host.as_str(), |(name, _)| name).to_owned();

    let mut event = json!({
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "ledgerline-local",
            "authorizer": { "jwt": { "claims": claims_as_strings(claims), "scopes": null } },
            "domainName": domain,
            "domainPrefix": domain.split('.').next().unwrap_or(&domain),
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": format!("{:?}", parts.version),
                "sourceIp": source.ip().to_string(),
                "userAgent": header("user-agent").unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if let Some(parameters) = query_parameters(&raw_query) {
        event["queryStringParameters"] = Value::Object(parameters);
    }
    if !route.path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(route.path_parameters.clone());
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) if is_text(header("content-type").as_deref()) => event["body"] = Value::String(text.to_owned()),
            _ => {
                event["body"] = Value::String(STANDARD.encode(body));
                event["isBase64Encoded"] = Value::Bool(true);
            }
        }
    }
    serde_json::from_value(event)
}

/// Decoded query parameters, repeated names joined by commas; `None` when
/// there are none (API Gateway then leaves the field out).
fn query_parameters(raw: &str) -> Option<Map<String, Value>> {
    let mut parameters = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode_component(name), decode_component(value));
        match parameters.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                parameters.insert(name, Value::String(value));
            }
        }
    }
    (!parameters.is_empty()).then_some(parameters)
}

/// Percent-decoding (and `+` as space), lossy on bad UTF-8.
fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Bodies API Gateway passes as text; everything else is base64.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return true };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json" | "application/xml" | "application/javascript" | "application/x-www-form-urlencoded"
        )
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;
    use crate::gateway::routes;

    fn parts(request: Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn the_event_has_the_shape_api_gateway_sends() {
        let request = Request::post("/accounts/abc/deposits?a=1&b=x%20y&a=2")
            .header("Host", "localhost:3000")
            .header("Content-Type", "application/json")
            .header("X-Correlation-Id", "corr-1")
            .header("Accept", "a")
            .header("Accept", "b")
            .header("Cookie", "c1=v1; c2=v2")
            .header("User-Agent", "test")
            .body(())
            .unwrap();
        let route = routes::find("POST", "/accounts/abc/deposits").unwrap();
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"sub":"alice","exp":1795564800,"scope":"ledgerline/admin","iss":"me"}"#).unwrap();
        let source: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let now = chrono::DateTime::from_timestamp_millis(1_795_564_800_123).unwrap();
        let event = build(&parts(request), br#"{"amount":5}"#, &route, &claims, source, now).unwrap();
        let json = serde_json::to_value(&event).unwrap();

        assert_eq!(json["version"], "2.0");
        assert_eq!(json["routeKey"], "POST /accounts/{id}/deposits");
        assert_eq!(json["rawPath"], "/accounts/abc/deposits");
        assert_eq!(json["rawQueryString"], "a=1&b=x%20y&a=2");
        assert_eq!(json["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
        assert_eq!(json["pathParameters"], json!({"id": "abc"}));
        assert_eq!(json["headers"]["content-type"], "application/json");
        assert_eq!(json["headers"]["x-correlation-id"], "corr-1");
        assert_eq!(json["headers"]["accept"], "a,b");
        assert!(json["headers"].get("cookie").is_none());
        assert_eq!(json["cookies"], json!(["c1=v1", "c2=v2"]));
        let context = &json["requestContext"];
        assert_eq!((context["domainName"].as_str(), context["domainPrefix"].as_str()), (Some("localhost"), Some("localhost")));
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["path"], "/accounts/abc/deposits");
        assert_eq!(context["http"]["sourceIp"], "10.1.2.3");
        assert_eq!(context["http"]["userAgent"], "test");
        assert_eq!(context["routeKey"], "POST /accounts/{id}/deposits");
        assert_eq!(context["timeEpoch"], 1_795_564_800_123i64);
        assert_eq!(context["time"], "25/Nov/2026:00:00:00 +0000");
        assert_eq!(context["requestId"].as_str().unwrap().len(), 32);
        assert_eq!(
            context["authorizer"]["jwt"]["claims"],
            json!({"sub": "alice", "exp": "1795564800", "scope": "ledgerline/admin", "iss": "me"})
        );
        assert_eq!(json["body"], r#"{"amount":5}"#);
        assert_eq!(json["isBase64Encoded"], false);
    }

    #[test]
    fn the_functions_see_the_caller_through_lambda_http() {
        let request = Request::get("/accounts/abc").body(()).unwrap();
        let route = routes::find("GET", "/accounts/abc").unwrap();
        let caller_of = |claims: &str| {
            let claims: Map<String, Value> = serde_json::from_str(claims).unwrap();
            let request = Request::get("/accounts/abc").body(()).unwrap();
            let event = build(&parts(request), b"", &route, &claims, "127.0.0.1:1".parse().unwrap(), chrono::Utc::now()).unwrap();
            assert!(serde_json::to_value(&event).unwrap().get("body").is_none());
            // Exactly Lambda's path: the event's JSON through lambda_http.
            let request = lambda_http::request::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
            assert_eq!(request.uri().path(), "/accounts/abc");
            let context = request.extensions().get::<lambda_http::request::RequestContext>().unwrap();
            let caller = ledgerline_shared::http::caller::Caller::from_context(context).unwrap();
            (caller.id, caller.is_admin)
        };
        // The admin group, as a JSON list in the token: an administrator.
        let admin = caller_of(r#"{"sub":"bob","exp":1795564800,"cognito:groups":["staff","ledgerline-admins"]}"#);
        assert_eq!(admin, ("bob".to_owned(), true));
        // The old admin scope alone: an ordinary caller.
        let scoped = caller_of(r#"{"sub":"eve","exp":1795564800,"scope":"openid ledgerline/admin"}"#);
        assert_eq!(scoped, ("eve".to_owned(), false));
        drop(request);
    }

    #[test]
    fn binary_bodies_are_base64() {
        let request = Request::post("/transfers").header("content-type", "application/octet-stream").body(()).unwrap();
        let route = routes::find("POST", "/transfers").unwrap();
        let claims: Map<String, Value> = serde_json::from_str(r#"{"sub":"a","exp":1}"#).unwrap();
        let event =
            build(&parts(request), &[0xff, 0x00, 0x01], &route, &claims, "127.0.0.1:1".parse().unwrap(), chrono::Utc::now()).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["isBase64Encoded"], true);
        assert_eq!(json["body"], STANDARD.encode([0xff, 0x00, 0x01]));
    }
}
