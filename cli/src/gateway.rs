//! The local gateway: what API Gateway's HTTP API and its JWT authorizer do
//! in AWS, for both `serve` modes.
//!
//! It verifies `Authorization: Bearer` HS256 tokens, turns each request into
//! the API Gateway HTTP API (payload v2) event AWS would send, with the
//! token's claims in `requestContext.authorizer.jwt.claims`, and hands it to
//! a [`Backend`]: the routers in this process (`serve --embedded`) or the
//! real functions under `cargo lambda watch` (`serve`). POST routes go to
//! the command API, GET routes to the query API.

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};

/// Which function serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    CommandApi,
    QueryApi,
}

impl Function {
    /// The function's package (and cargo-lambda) name.
    pub fn name(self) -> &'static str {
        match self {
            Function::CommandApi => "command-api",
            Function::QueryApi => "query-api",
        }
    }
}

/// Delivers an API Gateway v2 event to a function and returns its answer.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn invoke(&self, function: Function, event: ApiGatewayV2httpRequest) -> anyhow::Result<ApiGatewayV2httpResponse>;
}
