//! The gateway's [`Backend`] for `serve --embedded`: the functions' routers
//! in this process, reached exactly as Lambda reaches them.
//!
//! The event is serialized to JSON and read back by
//! `lambda_http::request::from_str`, the same conversion the Lambda runtime
//! applies, so the routers see the request (path, query, headers, and the
//! authorizer's claims in the request context) they would see in AWS. The
//! answer goes through lambda_http's body conversion (text for JSON and
//! problem+json, binary otherwise) into an `ApiGatewayV2httpResponse`, the
//! way lambda_http builds its response for API Gateway v2.

use anyhow::Context;
use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use axum::Router;
use axum::http::header::SET_COOKIE;
use lambda_http::{Body, IntoResponse, Response};
use tower::ServiceExt;

use crate::gateway::{Backend, Function};

pub struct InProcess {
    pub command_api: Router,
    pub query_api: Router,
}

#[async_trait]
impl Backend for InProcess {
    async fn invoke(&self, function: Function, event: ApiGatewayV2httpRequest) -> anyhow::Result<ApiGatewayV2httpResponse> {
        let json = serde_json::to_string(&event).context("cannot serialize the event")?;
        let request = lambda_http::request::from_str(&json).context("lambda_http refused the event")?;
        let router = match function {
            Function::CommandApi => self.command_api.clone(),
            Function::QueryApi => self.query_api.clone(),
        };
        let response = match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        Ok(to_api_gateway(response.into_response().await))
    }
}

/// lambda_http's conversion for API Gateway v2 (its own is crate-private):
/// `Set-Cookie` headers become `cookies`, other headers stay in `headers`,
/// a binary body is base64 (`isBase64Encoded`).
pub fn to_api_gateway(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (mut parts, body) = response.into_parts();
    let cookies = parts.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap_or_default().to_owned()).collect();
    parts.headers.remove(SET_COOKIE);
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.headers = parts.headers;
    answer.cookies = cookies;
    (answer.is_base64_encoded, answer.body) = match body {
        Body::Empty => (false, None),
        text @ Body::Text(_) => (false, Some(text)),
        binary @ Body::Binary(_) => (true, Some(binary)),
        _ => (false, None),
    };
    answer
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn the_router_sees_the_lambda_request_and_its_answer_comes_back() {
        async fn echo(request: axum::extract::Request) -> axum::response::Response {
            let context = request.extensions().get::<lambda_http::request::RequestContext>().cloned();
            let caller = context.as_ref().and_then(ledgerline_shared::http::caller::Caller::from_context).map(|c| c.id);
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .header("set-cookie", "a=1")
                .body(axum::body::Body::from(serde_json::json!({"caller": caller, "query": request.uri().query()}).to_string()))
                .unwrap()
        }
        let backend = InProcess { command_api: Router::new(), query_api: Router::new().route("/accounts", get(echo)) };
        let event: ApiGatewayV2httpRequest = serde_json::from_value(serde_json::json!({
            "version": "2.0", "routeKey": "GET /accounts", "rawPath": "/accounts", "rawQueryString": "owner_id=x",
            "headers": {}, "queryStringParameters": {"owner_id": "x"},
            "requestContext": {"http": {"method": "GET", "path": "/accounts", "sourceIp": "127.0.0.1", "protocol": "HTTP/1.1"},
                "requestId": "r", "routeKey": "GET /accounts", "stage": "$default", "timeEpoch": 0, "accountId": "0", "apiId": "a",
                "domainName": "localhost", "domainPrefix": "localhost", "time": "",
                "authorizer": {"jwt": {"claims": {"sub": "carol", "exp": "1"}, "scopes": null}}},
            "isBase64Encoded": false
        }))
        .unwrap();
        let answer = backend.invoke(Function::QueryApi, event.clone()).await.unwrap();
        assert_eq!(answer.status_code, 200);
        assert_eq!(answer.cookies, ["a=1"]);
        assert!(answer.headers.get("set-cookie").is_none());
        assert!(!answer.is_base64_encoded);
        let Some(Body::Text(text)) = answer.body else { panic!("a text body") };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!({"caller": "carol", "query": "owner_id=x"})
        );

        let missing = backend.invoke(Function::CommandApi, event).await.unwrap();
        assert_eq!(missing.status_code, 404, "an empty router answers 404");
    }
}
