//! `ledgerline serve` refuses to start, with a message that says what to do,
//! when a local service is down or a setting is wrong.

use std::process::Command;
use std::time::Duration;

fn closed_port() -> u16 {
    // Bound and released: nothing listens there afterwards.
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn serve(env: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledgerline"));
    command.arg("serve").env("LEDGERLINE_HTTP_ADDR", "127.0.0.1:0");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // It must give up by itself, quickly (a check waits at most 3 s per service).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not give up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_service_that_is_down_is_named_with_the_script_that_starts_it() {
    let (redis, broker) = (closed_port(), closed_port());
    let (ok, stderr) =
        serve(&[("REDIS_URL", format!("redis://127.0.0.1:{redis}")), ("LEDGERLINE_KAFKA_BROKERS", format!("127.0.0.1:{broker}"))]);
    assert!(!ok);
    assert!(stderr.contains(&format!("Redis at 127.0.0.1:{redis}")), "{stderr}");
    assert!(stderr.contains(&format!("Kafka (tansu) at 127.0.0.1:{broker}")), "{stderr}");
    assert!(stderr.contains("scripts/services.sh"), "{stderr}");
}

#[test]
fn a_bad_setting_is_refused_by_name() {
    let (ok, stderr) = serve(&[("LEDGERLINE_LAMBDA_PORT", "ninety".into())]);
    assert!(!ok);
    assert!(stderr.contains(r#"LEDGERLINE_LAMBDA_PORT="ninety" is invalid: not a number"#), "{stderr}");
}

#[test]
fn the_development_secret_is_refused_on_an_address_other_machines_reach() {
    // The embedded mode needs no services: only the address and the secret matter.
    let output = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
        .args(["serve", "--embedded"])
        .env("LEDGERLINE_HTTP_ADDR", "0.0.0.0:0")
        .env_remove("LEDGERLINE_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve on 0.0.0.0") && stderr.contains("LEDGERLINE_JWT_SECRET"), "{stderr}");
}
