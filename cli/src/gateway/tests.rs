//! The gateway end to end, with a recording backend in place of the functions.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::auth::{JwtSecret, mint, sign_claims};
use super::*;

/// Records every event and answers with a fixed response.
struct Recording {
    seen: Mutex<Vec<(Function, ApiGatewayV2httpRequest)>>,
    answer: serde_json::Value,
    fail: bool,
}

#[async_trait]
impl Backend for Recording {
    async fn invoke(&self, function: Function, event: ApiGatewayV2httpRequest) -> anyhow::Result<ApiGatewayV2httpResponse> {
        self.seen.lock().unwrap().push((function, event));
        anyhow::ensure!(!self.fail, "the function crashed");
        Ok(serde_json::from_value(self.answer.clone())?)
    }
}

fn secret() -> JwtSecret {
    JwtSecret::new("gateway-test-secret")
}

fn backend(fail: bool) -> Arc<Recording> {
    Arc::new(Recording {
        seen: Mutex::default(),
        answer: json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-correlation-id": "abc"},
            "multiValueHeaders": {"x-multi": ["1", "2"]},
            "cookies": [],
            "body": "{\"version\":1}",
            "isBase64Encoded": false
        }),
        fail,
    })
}

async fn call(backend: Arc<Recording>, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let source: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let app = router(TokenVerifier::new(&secret()), backend).layer(MockConnectInfo(source));
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post(path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::post(path).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::from(r#"{"amount":100}"#)).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn a_good_token_reaches_the_command_api_with_every_claim() {
    let backend = backend(false);
    let mut claims = Map::new();
    claims.insert("sub".into(), "alice".into());
    claims.insert("exp".into(), (now() + 600).into());
    claims.insert("scope".into(), "openid ledgerline/admin".into());
    claims.insert("custom".into(), json!(["x", "y"]));
    let token = sign_claims(&secret(), &claims).unwrap();

    let (status, headers, body) = call(backend.clone(), post("/accounts/a1/deposits?x=1", Some(&token))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-correlation-id"], "abc");
    assert_eq!(headers.get_all("x-multi").iter().collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(body, json!({"version": 1}));

    let seen = backend.seen.lock().unwrap();
    let (function, event) = &seen[0];
    assert_eq!(*function, Function::CommandApi);
    let event = serde_json::to_value(event).unwrap();
    assert_eq!(event["routeKey"], "POST /accounts/{id}/deposits");
    assert_eq!(event["rawPath"], "/accounts/a1/deposits");
    assert_eq!(event["rawQueryString"], "x=1");
    assert_eq!(event["body"], r#"{"amount":100}"#);
    assert_eq!(event["headers"]["authorization"], format!("Bearer {token}"), "API Gateway passes the header on");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "192.0.2.7");
    let passed = &event["requestContext"]["authorizer"]["jwt"]["claims"];
    assert_eq!(passed["sub"], "alice");
    assert_eq!(passed["exp"], (now() + 600).to_string());
    assert_eq!(passed["scope"], "openid ledgerline/admin");
    assert_eq!(passed["custom"], "[x y]");
}

#[tokio::test]
async fn gets_reach_the_query_api() {
    let backend = backend(false);
    let token = mint(&secret(), "bob", false, Duration::from_secs(60)).unwrap();
    let request =
        Request::get("/accounts/a1/transactions?limit=2").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
    let (status, _, _) = call(backend.clone(), request).await;
    assert_eq!(status, StatusCode::CREATED);
    let seen = backend.seen.lock().unwrap();
    assert_eq!(seen[0].0, Function::QueryApi);
    assert_eq!(seen[0].1.route_key.as_deref(), Some("GET /accounts/{id}/transactions"));
    assert_eq!(seen[0].1.body, None);
}

#[tokio::test]
async fn bad_tokens_are_401_problems_and_never_reach_a_function() {
    let backend = backend(false);
    let expired = {
        let mut claims = Map::new();
        claims.insert("sub".into(), "alice".into());
        claims.insert("exp".into(), (now() - 1).into());
        sign_claims(&secret(), &claims).unwrap()
    };
    let wrong_secret = mint(&JwtSecret::new("not-the-secret"), "alice", false, Duration::from_secs(60)).unwrap();
    let no_sub = {
        let mut claims = Map::new();
        claims.insert("exp".into(), (now() + 60).into());
        sign_claims(&secret(), &claims).unwrap()
    };
    for (token, why) in [(Some(expired.as_str()), "expired"), (Some(&wrong_secret), "signature"), (Some(&no_sub), "sub"), (None, "missing")]
    {
        let (status, headers, body) = call(backend.clone(), post("/transfers", token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(headers["content-type"], "application/problem+json", "{why}");
        assert_eq!(body["code"], "unauthorized", "{why}");
        assert_eq!(body["status"], 401);
        assert!(body["detail"].as_str().unwrap().contains(why), "{why}: {body}");
        let challenge = if token.is_some() { r#"Bearer error="invalid_token""# } else { "Bearer" };
        assert_eq!(headers["www-authenticate"], challenge, "{why}");
    }
    assert!(backend.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_routes_are_404_and_undeclared_methods_405_problems_even_without_a_token() {
    let backend = backend(false);
    let (status, headers, body) = call(backend.clone(), Request::get("/nowhere").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["code"], "not_found");
    for (request, allow) in [
        (Request::delete("/accounts/a1").body(Body::empty()).unwrap(), "GET"),
        (Request::get("/transfers").body(Body::empty()).unwrap(), "POST"),
        (Request::put("/accounts").body(Body::empty()).unwrap(), "GET, POST"),
    ] {
        let (status, headers, body) = call(backend.clone(), request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(headers["allow"], allow);
        assert_eq!(body["code"], "method_not_allowed");
    }
    assert!(backend.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_function_is_a_502_problem() {
    let token = mint(&secret(), "alice", false, Duration::from_secs(60)).unwrap();
    let (status, _, body) = call(backend(true), post("/transfers", Some(&token))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["code"], "bad_gateway");
    assert!(body["detail"].as_str().unwrap().contains("command-api"));
}
