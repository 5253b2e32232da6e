//! Who is calling: taken from the claims API Gateway's JWT authorizer verified.
//!
//! The authorizer (in AWS) or the local gateway (`ledgerline serve`) checks
//! the token and passes its claims in `requestContext.authorizer.jwt.claims`.
//! The caller is claim `sub`; scope `ledgerline/admin` (in the space
//! separated `scope` claim or the authorizer's scopes) makes an
//! administrator. Headers and bodies are never trusted for identity.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

use super::problem::ApiError;

pub const ADMIN_SCOPE: &str = "ledgerline/admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub is_admin: bool,
}

impl Caller {
    /// Owners act on their own accounts; administrators on any.
    pub fn may_act_for(&self, owner_id: &str) -> bool {
        self.is_admin || self.id == owner_id
    }

    pub fn from_context(context: &RequestContext) -> Option<Caller> {
        let jwt = context.authorizer()?.jwt.as_ref()?;
        let id = jwt.claims.get("sub").filter(|sub| !sub.is_empty() && sub.len() <= 255)?.clone();
        let in_claim = jwt.claims.get("scope").is_some_and(|scope| scope.split_whitespace().any(|s| s == ADMIN_SCOPE));
        let in_scopes = jwt.scopes.as_ref().is_some_and(|scopes| scopes.iter().any(|s| s == ADMIN_SCOPE));
        Some(Caller { id, is_admin: in_claim || in_scopes })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<RequestContext>().and_then(Caller::from_context).ok_or_else(ApiError::unauthorized)
    }
}
