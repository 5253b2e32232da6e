//! The end-to-end scenario against the real binary: `ledgerline serve
//! --embedded` on a free port with a random JWT secret, tokens minted by
//! `ledgerline token` with the same secret, everything over HTTP.

use std::time::Duration;

use ledgerline_tests::process::{Served, ledgerline_binary};
use ledgerline_tests::scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_passes_the_scenario() {
    let binary = ledgerline_binary();
    let secret = uuid::Uuid::new_v4().to_string();
    let mut served = Served::start(
        &binary,
        &["serve", "--embedded"],
        &[("LEDGERLINE_HTTP_ADDR", "127.0.0.1:0"), ("LEDGERLINE_JWT_SECRET", &secret), ("RUST_LOG", "warn")],
        Duration::from_secs(30),
    );
    let minter = scenario::binary_minter(&binary, &secret);
    let report = scenario::run(&served.base_url, minter.as_ref()).await;
    assert_eq!(report.alice_final.0 + report.bob_final.0, 14_007);
    // Entries run while the holds scenario waits for its hold to expire.
    let settings = scenario::Settings::default();
    tokio::join!(
        scenario::holds(&served.base_url, minter.as_ref(), &settings),
        scenario::entries(&served.base_url, minter.as_ref(), &settings)
    );

    // A token signed with another secret is refused by the real gateway.
    let stranger = scenario::binary_minter(&binary, "another-secret").mint("mallory", true);
    let http = ledgerline_tests::http::HttpClient::new(&served.base_url);
    let refused = http.get(&format!("/accounts/{}", report.alice_account), Some(&stranger)).await;
    assert_eq!(refused.status.as_u16(), 401, "{refused:?}");
    assert!(served.is_running(), "the server is still up: {:?}", served.output());

    // Ctrl-C stops it cleanly: exit status 0, and it said so.
    let status = served.interrupt(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "exit status after SIGINT: {status:?}");
    let output = served.output();
    assert!(output.iter().any(|line| line.contains("ledgerline: stopping")), "{output:?}");
}
