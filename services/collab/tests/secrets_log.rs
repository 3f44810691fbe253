//! Secret values never reach the collab service's log, even at TRACE: a binary of its own,
//! because a thread-local subscriber misses events while other tests run beside it (tracing
//! caches each callsite's interest globally).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "collab/support.rs"]
mod support;

#[path = "collab/log_capture.rs"]
mod log_capture;

use reqwest::Method;
use serde_json::json;

use log_capture::Log;
use support::TestServer;

const SERVICE: &str = "service-credential-for-secrets";

/// Every log line of setting, granting and reading a secret, at the most verbose level,
/// names the secret but never shows its value.
#[tokio::test]
async fn values_never_reach_the_log() {
    let log = Log::install(tracing::Level::TRACE);
    let value = "sk-never-logged-7f3a9c";
    let server = TestServer::start_with(|config| config.service_token = Some(SERVICE.into())).await;
    let alice = server.client("alice@example.com").await;
    let alice_id = alice.me().await.unwrap().id;
    let nb = alice.create_notebook("nb", None).await.unwrap().id;
    alice
        .send_json(
            Method::PUT,
            "api/secrets/LOGGED_KEY",
            Some(json!({ "value": value })),
        )
        .await
        .unwrap();
    alice
        .send_json(
            Method::PUT,
            &format!("api/secrets/LOGGED_KEY/notebooks/{nb}"),
            None,
        )
        .await
        .unwrap();
    // The runtime's ask, up the control channel as a running cell's lookup travels.
    let mut runtime = support::control(&server, SERVICE).await.unwrap();
    assert_eq!(
        support::ask_secret(&mut runtime, &nb, &alice_id, "LOGGED_KEY")
            .await
            .unwrap(),
        value
    );
    // A malformed body is refused without echoing the value.
    let bad = alice
        .send_json(
            Method::PUT,
            "api/secrets/LOGGED_KEY",
            Some(json!({ "valu": value })),
        )
        .await;
    assert!(!bad.unwrap_err().to_string().contains(value));

    let text = log.text();
    assert!(
        text.contains("LOGGED_KEY"),
        "the log names the secret:\n{text}"
    );
    assert!(
        !text.contains(value),
        "the value leaked into the log:\n{text}"
    );
}
