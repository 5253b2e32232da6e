//! The local JWT authorizer: HS256 tokens signed with `LEDGERLINE_JWT_SECRET`.
//!
//! In AWS, API Gateway's JWT authorizer verifies the caller's token and the
//! functions only read the claims it passes on. Locally this module plays
//! that part, and `ledgerline token` mints with the same key, so a token
//! from one always passes the other.
//!
//! `jsonwebtoken` is used without its crypto backends (`rust_crypto` brings
//! RSA and elliptic curves, `aws_lc_rs` a C build): we only ever need
//! HMAC-SHA256, so [`HS256_ONLY`] provides exactly that with the `hmac` and
//! `sha2` crates the workspace already builds. Any other algorithm is refused.
//!
//! This file depends on external crates only, so tests outside the binary
//! can include it with `#[path]` and check tokens exactly as the gateway does.

use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ledgerline_shared::http::caller::AdminRule;
use serde_json::{Map, Value};
use sha2::Sha256;

/// The variable holding the shared secret.
pub const SECRET_VAR: &str = "LEDGERLINE_JWT_SECRET";

/// Used when `LEDGERLINE_JWT_SECRET` is unset: anyone who reads this
/// repository can mint tokens with it, so it is for a developer's machine only.
pub const DEVELOPMENT_SECRET: &str = "ledgerline-development-jwt-secret-do-not-use-in-production";

/// The signing secret and whether it is the development default.
#[derive(Clone)]
pub struct JwtSecret {
    bytes: Vec<u8>,
    pub is_development_default: bool,
}

impl JwtSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self { bytes: secret.into(), is_development_default: false }
    }

    /// `LEDGERLINE_JWT_SECRET`, or [`DEVELOPMENT_SECRET`] when it is unset or blank.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        match lookup(SECRET_VAR).filter(|s| !s.trim().is_empty()) {
            Some(secret) => Self::new(secret),
            None => Self { bytes: DEVELOPMENT_SECRET.as_bytes().to_vec(), is_development_default: true },
        }
    }

    /// Refuses the development default on an address other machines can
    /// reach: anyone could mint tokens for it. Loopback only.
    pub fn check_exposure(&self, bound: std::net::SocketAddr) -> Result<(), String> {
        if self.is_development_default && !bound.ip().is_loopback() {
            return Err(format!(
                "refusing to serve on {bound} with the development JWT secret: anyone who can reach it could mint tokens; \
                 set {SECRET_VAR} to a secret of your own, or bind to 127.0.0.1"
            ));
        }
        Ok(())
    }

    /// The warning to show when the development default is in use.
    pub fn warning(&self) -> Option<String> {
        self.is_development_default.then(|| {
            format!("{SECRET_VAR} is not set: using the development secret {DEVELOPMENT_SECRET:?}; never use it outside your machine")
        })
    }
}

/// Why a token was refused (the detail of the 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header")]
    MissingHeader,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Verifies tokens as API Gateway's JWT authorizer would (signature, `exp`,
/// a non-empty `sub`) and returns every claim.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &JwtSecret) -> Self {
        install_provider();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // No audience is configured locally; a token carrying one is still fine.
        validation.validate_aud = false;
        // API Gateway allows no clock skew we could rely on; neither do we.
        validation.leeway = 0;
        // Like API Gateway: a token that is not valid yet is refused.
        validation.validate_nbf = true;
        Self { key: DecodingKey::from_secret(&secret.bytes), validation }
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation).map_err(|error| match error.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
            _ => AuthError::Invalid(error.to_string()),
        })?;
        let claims = data.claims;
        match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => Ok(claims),
            _ => Err(AuthError::MissingClaim("sub".into())),
        }
    }

    /// The claims behind an `Authorization` header value (`Bearer <token>`,
    /// the scheme in any case, as API Gateway accepts it).
    pub fn verify_header(&self, header: Option<&str>) -> Result<Map<String, Value>, AuthError> {
        let header = header.ok_or(AuthError::MissingHeader)?.trim();
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim())
    }
}

/// Mints a token for `sub` living `ttl`: claims `sub`, `iat`, `exp` and, for
/// an administrator, the admin group in the groups claim the functions read
/// (`LEDGERLINE_ADMIN_GROUPS_CLAIM` / `LEDGERLINE_ADMIN_GROUP`, as Cognito
/// puts a user's groups in `cognito:groups`).
pub fn mint(secret: &JwtSecret, sub: &str, admin: bool, ttl: Duration) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut claims = Map::new();
    claims.insert("sub".into(), sub.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl.as_secs()).into());
    if admin {
        let rule = AdminRule::current();
        claims.insert(rule.claim.clone(), Value::Array(vec![rule.group.clone().into()]));
    }
    sign_claims(secret, &claims)
}

/// Signs arbitrary claims (tests use it for expired and incomplete tokens).
pub fn sign_claims(secret: &JwtSecret, claims: &Map<String, Value>) -> Result<String, jsonwebtoken::errors::Error> {
    install_provider();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(&secret.bytes))
}

/// API Gateway passes every claim as a string: strings as they are,
/// numbers and booleans as written, arrays as `[a b]`, objects as JSON.
pub fn claims_as_strings(claims: &Map<String, Value>) -> Map<String, Value> {
    fn text(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Array(items) => format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(" ")),
            other => other.to_string(),
        }
    }
    claims.iter().map(|(name, value)| (name.clone(), Value::String(text(value)))).collect()
}

type HmacSha256 = Hmac<Sha256>;

/// HS256 and nothing else.
pub static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: |algorithm, key| match algorithm {
        Algorithm::HS256 => Ok(Box::new(Hs256(hmac_for(key.as_bytes())?))),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    },
    verifier_factory: |algorithm, key| match algorithm {
        Algorithm::HS256 => Ok(Box::new(Hs256(hmac_for(key.try_get_as_bytes()?)?))),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    },
    key_utils: KeyUtils::new_unimplemented(),
};

fn hmac_for(secret: &[u8]) -> Result<HmacSha256, jsonwebtoken::errors::Error> {
    HmacSha256::new_from_slice(secret).map_err(|_| ErrorKind::InvalidKeyFormat.into())
}

/// Installs [`HS256_ONLY`] as the process's provider, once. (If something
/// else installed one first, that one stays: `jsonwebtoken` allows one.)
fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = HS256_ONLY.install_default();
    });
}

struct Hs256(HmacSha256);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        // Constant-time comparison.
        mac.verify_slice(tag).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> JwtSecret {
        JwtSecret::new("test-secret")
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn a_minted_token_verifies_with_all_its_claims() {
        let token = mint(&secret(), "alice", true, Duration::from_secs(3600)).unwrap();
        let claims = TokenVerifier::new(&secret()).verify(&token).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["cognito:groups"], serde_json::json!(["ledgerline-admins"]));
        assert!(claims.get("scope").is_none(), "no scope: a scope never makes an administrator");
        let exp = claims["exp"].as_u64().unwrap();
        assert!((now() + 3590..=now() + 3600).contains(&exp), "exp {exp}");
        let plain = mint(&secret(), "bob", false, Duration::from_secs(60)).unwrap();
        assert!(TokenVerifier::new(&secret()).verify(&plain).unwrap().get("cognito:groups").is_none());
    }

    #[test]
    fn expired_wrong_secret_missing_sub_and_junk_are_refused() {
        let verifier = TokenVerifier::new(&secret());
        let mut claims = Map::new();
        claims.insert("sub".into(), "alice".into());
        claims.insert("exp".into(), (now() - 5).into());
        assert_eq!(verifier.verify(&sign_claims(&secret(), &claims).unwrap()), Err(AuthError::Expired));

        let other = mint(&JwtSecret::new("another-secret"), "alice", false, Duration::from_secs(60)).unwrap();
        assert_eq!(verifier.verify(&other), Err(AuthError::BadSignature));

        let mut no_sub = Map::new();
        no_sub.insert("exp".into(), (now() + 60).into());
        assert_eq!(verifier.verify(&sign_claims(&secret(), &no_sub).unwrap()), Err(AuthError::MissingClaim("sub".into())));
        no_sub.insert("sub".into(), "".into());
        assert_eq!(verifier.verify(&sign_claims(&secret(), &no_sub).unwrap()), Err(AuthError::MissingClaim("sub".into())));

        let mut no_exp = Map::new();
        no_exp.insert("sub".into(), "alice".into());
        assert_eq!(verifier.verify(&sign_claims(&secret(), &no_exp).unwrap()), Err(AuthError::MissingClaim("exp".into())));

        let mut not_yet = Map::new();
        not_yet.insert("sub".into(), "alice".into());
        not_yet.insert("exp".into(), (now() + 600).into());
        not_yet.insert("nbf".into(), (now() + 300).into());
        assert!(verifier.verify(&sign_claims(&secret(), &not_yet).unwrap()).is_err(), "a token not valid yet is refused");

        assert!(matches!(verifier.verify("not.a.token"), Err(AuthError::Invalid(_))));
        // alg "none" with the claims of a good token.
        let good = mint(&secret(), "alice", false, Duration::from_secs(60)).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verifier.verify(&unsigned).is_err());
    }

    #[test]
    fn the_header_must_be_bearer() {
        let verifier = TokenVerifier::new(&secret());
        let token = mint(&secret(), "alice", false, Duration::from_secs(60)).unwrap();
        assert_eq!(verifier.verify_header(None), Err(AuthError::MissingHeader));
        assert_eq!(verifier.verify_header(Some(&format!("Basic {token}"))), Err(AuthError::NotBearer));
        assert_eq!(verifier.verify_header(Some("Bearer ")), Err(AuthError::NotBearer));
        assert_eq!(verifier.verify_header(Some(&token)), Err(AuthError::NotBearer));
        assert_eq!(verifier.verify_header(Some(&format!("bearer {token}"))).unwrap()["sub"], "alice");
    }

    #[test]
    fn claims_become_strings_as_api_gateway_passes_them() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"sub":"alice","exp":1795564800,"admin":true,"groups":["a","b"],"obj":{"k":1}}"#).unwrap();
        let strings = claims_as_strings(&claims);
        assert_eq!(strings["sub"], "alice");
        assert_eq!(strings["exp"], "1795564800");
        assert_eq!(strings["admin"], "true");
        assert_eq!(strings["groups"], "[a b]");
        assert_eq!(strings["obj"], r#"{"k":1}"#);
    }

    #[test]
    fn the_development_secret_is_refused_beyond_loopback() {
        let development = JwtSecret::from_lookup(|_| None);
        for loopback in ["127.0.0.1:3000", "[::1]:3000"] {
            assert_eq!(development.check_exposure(loopback.parse().unwrap()), Ok(()), "{loopback}");
        }
        for exposed in ["0.0.0.0:3000", "192.0.2.7:3000", "[::]:3000"] {
            let refusal = development.check_exposure(exposed.parse().unwrap()).unwrap_err();
            assert!(refusal.contains(SECRET_VAR) && refusal.contains("refusing"), "{refusal}");
        }
        assert_eq!(JwtSecret::new("s3cret").check_exposure("0.0.0.0:3000".parse().unwrap()), Ok(()));
    }

    #[test]
    fn the_secret_falls_back_to_the_development_value_with_a_warning() {
        let unset = JwtSecret::from_lookup(|_| None);
        assert!(unset.is_development_default);
        assert!(unset.warning().unwrap().contains(SECRET_VAR));
        let blank = JwtSecret::from_lookup(|_| Some("  ".into()));
        assert!(blank.is_development_default);
        let set = JwtSecret::from_lookup(|_| Some("s3cret".into()));
        assert!(!set.is_development_default && set.warning().is_none());
        // A token from the default does not verify under a real secret.
        let token = mint(&unset, "alice", false, Duration::from_secs(60)).unwrap();
        assert_eq!(TokenVerifier::new(&set).verify(&token), Err(AuthError::BadSignature));
    }
}
