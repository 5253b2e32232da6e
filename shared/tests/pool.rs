//! The connection pool against real PostgreSQL through a TCP relay the test
//! controls: a connection that went silently dead while unused (a Lambda
//! container frozen, a NAT that forgot the flow) is checked and replaced
//! before it is handed out, instead of failing the request.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ledgerline_shared::config::DatabaseSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Copies `from` to `to` until `from` closes or `silenced()` says stop.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, silenced: impl Fn() -> bool) {
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 || silenced() || to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    // Silenced: hold the socket open and say nothing, like a dead flow.
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop((from, to));
}

/// Relays 127.0.0.1:<port> to `target`. Once `silence` is set, the
/// connections open at that moment stop relaying in both directions
/// without closing: packets vanish, as across a dead NAT entry. New
/// connections relay normally.
async fn relay(target: String) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silence = Arc::new(AtomicBool::new(false));
    let flag = silence.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else { continue };
            let opened_silenced = flag.load(Ordering::SeqCst);
            let silenced = {
                let flag = flag.clone();
                move || !opened_silenced && flag.load(Ordering::SeqCst)
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, silenced.clone()));
            tokio::spawn(pump(server_read, client_write, silenced));
        }
    });
    (port, silence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_connection_is_replaced_not_surfaced() {
    let url = support::test_database_url();
    let (server, database) = url.rsplit_once('/').unwrap();
    let target = server.rsplit_once('@').map_or(server, |(_, host)| host).trim_start_matches("postgres://").to_owned();
    let (port, silence) = relay(target).await;
    let credentials = server.rsplit_once('@').map_or(String::new(), |(c, _)| format!("{c}@"));
    let relayed = format!("{credentials}127.0.0.1:{port}/{database}");
    let settings = DatabaseSettings { url: relayed, pool_size: 1, connect_timeout: Duration::from_secs(5), ca_file: None };

    // Every connection is checked before use (the default: unused for 30 s).
    let pool = ledgerline_shared::db::pool_verifying_after(&settings, Duration::ZERO).unwrap();
    let client = pool.get().await.unwrap();
    let first_pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    drop(client);

    silence.store(true, Ordering::SeqCst);
    // Without the check the pool would hand out the dead connection and
    // this query would never be answered: bounded, so that fails, not hangs.
    let replaced = tokio::time::timeout(Duration::from_secs(20), async {
        let client = pool.get().await.expect("a fresh connection, not the dead one");
        let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.expect("the replacement answers").get(0);
        (client, pid)
    });
    let (client, second_pid) = replaced.await.expect("a dead connection was handed out");
    assert_ne!(first_pid, second_pid, "the pooled connection was replaced");

    // Sessions carry the limits of db::SESSION_LIMITS.
    let timeout: String = client.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    let lock: String = client.query_one("SHOW lock_timeout", &[]).await.unwrap().get(0);
    assert_eq!((timeout.as_str(), lock.as_str()), ("15s", "5s"));
}
