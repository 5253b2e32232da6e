//! From a function's `ApiGatewayV2httpResponse` back to an HTTP response,
//! as API Gateway does: status, `headers`, `multiValueHeaders` (each value
//! not already in `headers`), `cookies` as `Set-Cookie`, and the body,
//! base64-decoded when `isBase64Encoded` says so. `Content-Length` and
//! `Transfer-Encoding` are the server's to set for the body it sends (a
//! base64 body's declared length would be wrong), so the function's are dropped.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, HeaderValue, SET_COOKIE, TRANSFER_ENCODING};
use axum::http::{Response, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the function answered status {0}, which is not an HTTP status")]
    Status(i64),
    #[error("the function's body is marked base64 but does not decode: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the function's cookie {0:?} is not a valid header value")]
    Cookie(String),
}

pub fn into_http(answer: ApiGatewayV2httpResponse) -> Result<Response<Body>, ResponseError> {
    let status = u16::try_from(answer.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(ResponseError::Status(answer.status_code))?;
    let bytes: Vec<u8> = match answer.body {
        None | Some(LambdaBody::Empty) => Vec::new(),
        Some(LambdaBody::Text(text)) if answer.is_base64_encoded => STANDARD.decode(text.trim())?,
        Some(LambdaBody::Text(text)) => text.into_bytes(),
        Some(LambdaBody::Binary(bytes)) => bytes,
        Some(_) => Vec::new(),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        headers.append(name, value.clone());
    }
    for (name, value) in &answer.multi_value_headers {
        if !answer.headers.get_all(name).iter().any(|v| v == value) {
            headers.append(name, value.clone());
        }
    }
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    for cookie in &answer.cookies {
        let value = HeaderValue::from_str(cookie).map_err(|_| ResponseError::Cookie(cookie.clone()))?;
        headers.append(SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    fn answer(json: serde_json::Value) -> ApiGatewayV2httpResponse {
        serde_json::from_value(json).unwrap()
    }

    async fn body(response: Response<Body>) -> Vec<u8> {
        to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn status_headers_cookies_and_a_text_body() {
        let response = into_http(answer(serde_json::json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-correlation-id": "c", "content-length": "999"},
            "multiValueHeaders": {"vary": ["a", "b"], "content-type": ["application/json"]},
            "cookies": ["s=1; Path=/"],
            "body": "{\"ok\":true}",
            "isBase64Encoded": false
        })))
        .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let headers = response.headers();
        assert_eq!(headers.get_all("content-type").iter().count(), 1, "a value in both is not doubled");
        assert_eq!(headers["x-correlation-id"], "c");
        assert_eq!(headers.get_all("vary").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(headers["set-cookie"], "s=1; Path=/");
        assert!(headers.get("content-length").is_none(), "the server sets the real length");
        assert_eq!(body(response).await, b"{\"ok\":true}");
    }

    #[tokio::test]
    async fn base64_bodies_are_decoded_binary_ones_passed_and_bad_answers_refused() {
        let encoded = into_http(answer(
            serde_json::json!({"statusCode": 200, "body": STANDARD.encode([0u8, 255]), "isBase64Encoded": true, "cookies": []}),
        ))
        .unwrap();
        assert_eq!(body(encoded).await, [0u8, 255]);

        let mut binary = ApiGatewayV2httpResponse::default();
        binary.status_code = 200;
        binary.body = Some(LambdaBody::Binary(vec![1, 2, 3]));
        binary.is_base64_encoded = true;
        assert_eq!(body(into_http(binary).unwrap()).await, [1, 2, 3]);

        let empty = into_http(answer(serde_json::json!({"statusCode": 304, "cookies": []}))).unwrap();
        assert_eq!(empty.status(), StatusCode::NOT_MODIFIED);
        assert!(body(empty).await.is_empty());

        assert!(matches!(into_http(answer(serde_json::json!({"statusCode": 9999, "cookies": []}))), Err(ResponseError::Status(9999))));
        let bad = answer(serde_json::json!({"statusCode": 200, "body": "not base64!", "isBase64Encoded": true, "cookies": []}));
        assert!(matches!(into_http(bad), Err(ResponseError::Base64(_))));
    }
}
