//! Who is calling: taken from the claims API Gateway's JWT authorizer verified.
//!
//! The authorizer (in AWS) or the local gateway (`ledgerline serve`) checks
//! the token and passes its claims in `requestContext.authorizer.jwt.claims`.
//! The caller is claim `sub`. An administrator is a member of the group
//! [`AdminRule`] names, in the groups claim it names (Cognito's
//! `cognito:groups` by default): group membership belongs to the user. A
//! scope never makes an administrator: with Cognito, scopes are granted per
//! app client, so every user of a client would be one. Headers and bodies
//! are never trusted for identity.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

use super::problem::ApiError;

/// Who is an administrator: a member of `group` by the token's `claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRule {
    /// `LEDGERLINE_ADMIN_GROUPS_CLAIM` (`cognito:groups`).
    pub claim: String,
    /// `LEDGERLINE_ADMIN_GROUP` (`ledgerline-admins`).
    pub group: String,
}

impl Default for AdminRule {
    fn default() -> Self {
        Self { claim: "cognito:groups".into(), group: "ledgerline-admins".into() }
    }
}

impl AdminRule {
    /// The rule of this process, read once from the environment
    /// (`crate::config`).
    pub fn current() -> &'static AdminRule {
        static RULE: OnceLock<AdminRule> = OnceLock::new();
        RULE.get_or_init(AdminRule::from_env)
    }

    /// Whether `claims` (as API Gateway passes them: every value a string,
    /// a list as `[a b]`) make an administrator.
    pub fn admits(&self, claims: &HashMap<String, String>) -> bool {
        claims.get(&self.claim).is_some_and(|groups| group_names(groups).any(|g| g == self.group))
    }
}

/// The names in a groups claim: `[a b]` (API Gateway's rendering of a JSON
/// list), `a,b`, or a single name.
fn group_names(value: &str) -> impl Iterator<Item = &str> {
    let inner = value.trim().strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    inner.split(|c: char| c == ',' || c.is_whitespace()).map(|name| name.trim_matches('"')).filter(|name| !name.is_empty())
}

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
        Self::from_context_with(context, AdminRule::current())
    }

    pub fn from_context_with(context: &RequestContext, rule: &AdminRule) -> Option<Caller> {
        let jwt = context.authorizer()?.jwt.as_ref()?;
        let id = jwt.claims.get("sub").filter(|sub| !sub.is_empty() && sub.len() <= 255)?.clone();
        Some(Caller { id, is_admin: rule.admits(&jwt.claims) })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<RequestContext>().and_then(Caller::from_context).ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_admin_group_makes_an_administrator_and_a_scope_never_does() {
        let rule = AdminRule::default();
        assert!(rule.admits(&claims(&[("cognito:groups", "[ledgerline-admins]")])));
        assert!(rule.admits(&claims(&[("cognito:groups", "[staff ledgerline-admins]")])));
        assert!(rule.admits(&claims(&[("cognito:groups", "staff,ledgerline-admins")])));
        assert!(rule.admits(&claims(&[("cognito:groups", "ledgerline-admins")])));
        assert!(!rule.admits(&claims(&[("cognito:groups", "[staff ledgerline-admins-not]")])));
        assert!(!rule.admits(&claims(&[("scope", "openid ledgerline/admin")])), "a scope is no group");
        assert!(!rule.admits(&claims(&[("other:groups", "[ledgerline-admins]")])), "only the configured claim counts");
        let own = AdminRule { claim: "groups".into(), group: "ops".into() };
        assert!(own.admits(&claims(&[("groups", "[ops]")])));
        assert!(!own.admits(&claims(&[("cognito:groups", "[ledgerline-admins]")])));
    }
}
