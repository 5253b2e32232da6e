//! `sslmode=require` URLs connect over TLS and verify the server: tested
//! against the local PostgreSQL and its certificate (Debian's self-signed
//! snakeoil, given as `ca_file`).

use std::path::PathBuf;
use std::time::Duration;

use ledgerline_shared::config::DatabaseSettings;

mod support;

/// The server's certificate file and the host name it was issued for.
async fn server_certificate() -> (PathBuf, String) {
    let client = ledgerline_shared::db::connect(&support::test_database_url(), None).await.unwrap();
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(ssl, "on", "the test PostgreSQL must have TLS on (Debian's default)");
    let file: String = client.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let file = PathBuf::from(file);
    let output = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-subject", "-in"])
        .arg(&file)
        .output()
        .expect("openssl reads the certificate");
    let text = String::from_utf8_lossy(&output.stdout);
    let name = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("DNS:"))
        .or_else(|| text.split("CN = ").nth(1).map(|rest| rest.lines().next().unwrap_or("").trim()))
        .expect("the certificate names a host")
        .to_owned();
    (file, name)
}

fn tls_url(host: &str) -> String {
    // Connect to the local address, but verify the certificate for `host`.
    format!("postgres://postgres:postgres@{host}:5432/ledgerline_test?sslmode=require&hostaddr=127.0.0.1")
}

#[tokio::test]
async fn a_require_url_connects_over_tls_to_a_trusted_server() {
    let (ca_file, host) = server_certificate().await;
    let settings =
        DatabaseSettings { url: tls_url(&host), pool_size: 1, connect_timeout: Duration::from_secs(5), ca_file: Some(ca_file.clone()) };
    let pool = ledgerline_shared::db::pool(&settings).unwrap();
    let client = pool.get().await.unwrap();
    let encrypted: bool = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(encrypted, "the pooled connection is encrypted");

    let single = ledgerline_shared::db::connect(&tls_url(&host), Some(&ca_file)).await.unwrap();
    let encrypted: bool = single.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(encrypted, "the migration connection is encrypted");
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused() {
    // The certificate is trusted, but it names another host than the URL:
    // verification is on, so the connection is refused.
    let (ca_file, _) = server_certificate().await;
    let settings = DatabaseSettings {
        url: tls_url("ledgerline-wrong-host.invalid"),
        pool_size: 1,
        connect_timeout: Duration::from_secs(5),
        ca_file: Some(ca_file),
    };
    let pool = ledgerline_shared::db::pool(&settings).unwrap();
    let error = pool.get().await.expect_err("a certificate for another name must be refused");
    assert!(format!("{error:?}").to_lowercase().contains("certificate"), "{error:?}");
}

#[tokio::test]
async fn a_plain_url_stays_plain() {
    let client = ledgerline_shared::db::connect(&support::test_database_url(), None).await.unwrap();
    let encrypted: bool = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(!encrypted);
}
