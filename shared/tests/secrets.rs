//! Secrets at cold start against a stand-in for the AWS Parameters and
//! Secrets extension on a real socket: it answers only with the session
//! token and only for the secret it holds, as the extension does; and
//! against no extension at all and a stopped one, which must end the wait.
//!
//! One test, run in order: the cases share process-wide variables.

use std::time::Duration;

use ledgerline_shared::secrets::{SecretError, SecretSetting};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SETTING: SecretSetting =
    SecretSetting { plain: "LEDGERLINE_TEST_SECRET_URL", arn: "LEDGERLINE_TEST_SECRET_URL_ARN", json_key: Some("url") };
const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ledgerline/db-AbCdEf";
const TOKEN: &str = "session-token-1";

/// Serves GetSecretValue answers on `listener` until the test ends.
async fn extension(listener: TcpListener) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request).to_lowercase();
            let escaped_arn = "arn%3aaws%3asecretsmanager%3aeu-west-1%3a123456789012%3asecret%3aledgerline%2fdb-abcdef";
            let (status, body) = if !request.contains(&format!("x-aws-parameters-secrets-token: {TOKEN}")) {
                ("401 Unauthorized", "not authorized".to_owned())
            } else if !request.starts_with(&format!("get /secretsmanager/get?secretid={escaped_arn} ")) {
                ("400 Bad Request", "no such secret".to_owned())
            } else {
                let secret = r#"{\"url\":\"postgres://reader:pw@db:5432/ledgerline\",\"username\":\"reader\"}"#;
                ("200 OK", format!(r#"{{"ARN":"{ARN}","Name":"ledgerline/db","SecretString":"{secret}"}}"#))
            };
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = socket.write_all(answer.as_bytes()).await;
        });
    }
}

fn set(name: &str, value: Option<&str>) {
    // Safety: this binary's one test is the only code touching the environment.
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

#[tokio::test]
async fn a_secret_comes_from_the_extension_with_an_arn_and_from_the_environment_without() {
    // Locally: the plain variable, or nothing.
    set(SETTING.arn, None);
    set(SETTING.plain, None);
    assert_eq!(SETTING.load().await.unwrap(), None);
    set(SETTING.plain, Some("postgres://local"));
    assert_eq!(SETTING.load().await.unwrap().as_deref(), Some("postgres://local"));

    // Both set is a mistake, refused before anything is fetched.
    set(SETTING.arn, Some(ARN));
    assert!(matches!(SETTING.load().await, Err(SecretError::Both { .. })));
    set(SETTING.plain, None);

    // The extension comes up a moment after the function asks: the first
    // connections are refused, and the fetch waits for it.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    set("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", Some(&port.to_string()));
    set("AWS_SESSION_TOKEN", Some(TOKEN));
    let late_start = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        extension(TcpListener::bind(("127.0.0.1", port)).await.unwrap()).await;
    });
    let url = tokio::time::timeout(Duration::from_secs(10), SETTING.load()).await.expect("an answer in time");
    assert_eq!(url.unwrap().as_deref(), Some("postgres://reader:pw@db:5432/ledgerline"));

    // The extension refuses another session's token; the error names the
    // secret and carries no value.
    set("AWS_SESSION_TOKEN", Some("someone-else"));
    match SETTING.load().await {
        Err(SecretError::Refused { status: 401, secret, body }) => {
            assert_eq!(secret, ARN);
            assert!(!body.contains("pw"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The extension never comes up: after its wait (5 s) the load fails,
    // naming the secret, and the function's start fails with that message.
    set("AWS_SESSION_TOKEN", Some(TOKEN));
    let nobody = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    set("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", Some(&nobody.to_string()));
    match tokio::time::timeout(Duration::from_secs(30), SETTING.load()).await.expect("it gives up by itself") {
        Err(error @ SecretError::Unreachable { .. }) => assert!(error.to_string().contains(ARN), "{error}"),
        other => panic!("expected the extension to be unreachable, got {other:?}"),
    }

    // The extension's process is stopped (SIGSTOP): the kernel still takes
    // the connection into the listen backlog, but nothing ever answers. The
    // load gives up after its wait instead of hanging the cold start.
    let stopped = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    set("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", Some(&stopped.local_addr().unwrap().port().to_string()));
    match tokio::time::timeout(Duration::from_secs(30), SETTING.load()).await.expect("it gives up by itself") {
        Err(SecretError::Unreachable { secret, reason }) => {
            assert_eq!(secret, ARN);
            assert!(reason.contains("no answer in time"), "{reason}");
        }
        other => panic!("expected no answer, got {other:?}"),
    }
    drop(stopped);

    set("AWS_SESSION_TOKEN", None);
    assert!(matches!(SETTING.load().await, Err(SecretError::NoSessionToken)));
    set("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", Some("http"));
    assert!(matches!(SETTING.load().await, Err(SecretError::BadPort(_))));
    late_start.abort();
}
