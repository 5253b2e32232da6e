//! `ledgerline token`, run as a developer runs it, its tokens checked by the
//! gateway's own verifier (the module is compiled in here by path).

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "../src/gateway/auth.rs"]
#[allow(dead_code)]
mod auth;

use auth::{DEVELOPMENT_SECRET, JwtSecret, TokenVerifier};

fn token(args: &[&str], secret: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledgerline"));
    command.arg("token").args(args).env_remove(auth::SECRET_VAR);
    if let Some(secret) = secret {
        command.env(auth::SECRET_VAR, secret);
    }
    command.output().expect("the binary runs")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap().trim().to_owned()
}

#[test]
fn a_minted_token_passes_the_gateway_with_its_claims() {
    let output = token(&["--sub", "alice", "--admin", "--ttl", "30m"], Some("cli-test-secret"));
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "no warning when the secret is set: {output:?}");
    let claims = TokenVerifier::new(&JwtSecret::new("cli-test-secret")).verify(&stdout(&output)).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["cognito:groups"], serde_json::json!(["ledgerline-admins"]), "--admin: the admin group");
    let exp = claims["exp"].as_u64().unwrap();
    assert!((now() + 1790..=now() + 1800).contains(&exp), "30 minutes: {exp}");

    let plain = token(&["--sub", "bob", "--ttl", "7d"], Some("cli-test-secret"));
    let claims = TokenVerifier::new(&JwtSecret::new("cli-test-secret")).verify(&stdout(&plain)).unwrap();
    assert_eq!(claims["sub"], "bob");
    assert!(claims.get("cognito:groups").is_none(), "no group without --admin");
    assert!(claims["exp"].as_u64().unwrap() >= now() + 7 * 86_400 - 10);

    let other = TokenVerifier::new(&JwtSecret::new("another-secret")).verify(&stdout(&plain));
    assert_eq!(other, Err(auth::AuthError::BadSignature));
}

#[test]
fn without_a_secret_the_development_one_is_used_with_a_warning() {
    let output = token(&["--sub", "carol"], None);
    assert!(output.status.success(), "{output:?}");
    let warning = String::from_utf8_lossy(&output.stderr);
    assert!(warning.contains(auth::SECRET_VAR) && warning.contains("development"), "{warning}");
    let claims = TokenVerifier::new(&JwtSecret::new(DEVELOPMENT_SECRET)).verify(&stdout(&output)).unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert!((now() + 3590..=now() + 3600).contains(&exp), "the default ttl is 1h: {exp}");
}

#[test]
fn a_bad_ttl_is_a_clear_error_and_a_failure() {
    for ttl in ["1w", "0s", "soon", "90"] {
        let output = token(&["--sub", "alice", "--ttl", ttl], Some("s"));
        assert!(!output.status.success(), "{ttl}: {output:?}");
        assert!(output.stdout.is_empty(), "{ttl}: no token printed");
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(error.contains("--ttl") && error.contains("30s, 30m, 1h or 7d"), "{ttl}: {error}");
    }
    let empty_sub = token(&["--sub", "", "--ttl", "1h"], Some("s"));
    assert!(!empty_sub.status.success());
}
