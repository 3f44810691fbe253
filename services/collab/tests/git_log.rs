//! A wrong git token is refused and never shown or logged: a binary of its own, so that the
//! process-wide subscriber of `log_capture` sees every log line.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "collab/support.rs"]
mod support;

#[path = "collab/log_capture.rs"]
mod log_capture;

#[path = "collab/git_support.rs"]
mod git_support;

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use tandem_crdt::Notebook;

use git_support::{GitServer, OWNER, TOKEN, commit, failure, import, start};
use log_capture::Log;

#[tokio::test]
async fn a_wrong_token_is_refused_and_is_never_shown_or_logged() {
    let log = Log::install(tracing::Level::DEBUG);
    let git = GitServer::start().await;
    let server = start().await;
    let owner = server.client(OWNER).await;
    let wrong = "wrong-secret-token-4242";
    let wrong_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{wrong}"));
    let right_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));

    for token in [Some(wrong), None] {
        let mut body = json!({"url": git.url, "path": "notebooks/analysis.ipynb"});
        if let Some(token) = token {
            body["token"] = json!(token);
        }
        // The clone fails, answered as every failed fetch is.
        let (status, code, text) = failure(import(&owner, body).await);
        assert_eq!((status, code.as_str()), (502, "git_unavailable"), "{text}");
        assert!(
            !text.contains(wrong) && !text.contains(&wrong_basic),
            "{text}"
        );
    }

    // The default branch is found when none is named.
    let info = import(
        &owner,
        json!({"url": git.url, "path": "notebooks/analysis.ipynb", "token": TOKEN}),
    )
    .await
    .unwrap();
    let id = info["id"].as_str().unwrap();
    let origin = owner
        .send_json(Method::GET, &format!("api/notebooks/{id}/git"), None)
        .await
        .unwrap();
    assert_eq!(origin["branch"], "main");
    assert!(!origin.to_string().contains(TOKEN));
    let doc = Notebook::from_doc(server.connect(&owner, id).await.doc().clone());
    doc.edit_source("sum", 0, 0, "# edited\n").unwrap();
    let head = git.head();
    for token in [Some(wrong), None] {
        let mut body = json!({"message": "nope"});
        if let Some(token) = token {
            body["token"] = json!(token);
            body["url"] = json!(git.url);
        }
        let (status, code, text) = failure(commit(&owner, id, body).await);
        assert_eq!((status, code.as_str()), (502, "git_unavailable"), "{text}");
        assert!(
            !text.contains(wrong) && !text.contains(&wrong_basic),
            "{text}"
        );
    }
    assert_eq!(git.head(), head);

    let log = log.text();
    assert!(
        log.contains("git clone failed"),
        "the failures were logged: {log}"
    );
    for secret in [wrong, wrong_basic.as_str(), TOKEN, right_basic.as_str()] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}
