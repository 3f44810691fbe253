//! Git imports as a port scanner or a way into the server's own network: refused. Without
//! `--git-allow-private` nothing on loopback, private or link-local addresses is contacted,
//! however the address is spelled; with it, every way a fetch can fail answers the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tandem_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestServer;

async fn import(client: &Client, url: &str) -> (u16, String, String) {
    let result = client
        .send_json(
            Method::POST,
            "api/notebooks/import/git",
            Some(json!({"url": url, "path": "nb.ipynb"})),
        )
        .await;
    let err = result.expect_err("the import should have failed");
    (
        err.status().unwrap(),
        err.code().unwrap_or_default().to_owned(),
        err.to_string(),
    )
}

/// A local "internal service" that answers every connection with `answer` and counts them.
async fn service(answer: &'static [u8]) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buffer)).await;
                let _ = socket.write_all(answer).await;
            });
        }
    });
    (port, hits)
}

#[tokio::test]
async fn loopback_in_any_spelling_is_never_contacted() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let (port, hits) = service(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi").await;
    for url in [
        format!("http://127.0.0.1:{port}/repo.git"),
        format!("http://127.1:{port}/repo.git"),
        format!("http://0x7f000001:{port}/repo.git"),
        format!("http://2130706433:{port}/repo.git"),
        format!("http://[::1]:{port}/repo.git"),
        format!("http://[::ffff:127.0.0.1]:{port}/repo.git"),
        format!("https://127.0.0.1:{port}/repo.git"),
        "https://169.254.169.254/latest/meta-data.git".to_owned(),
        "https://10.0.0.1/repo.git".to_owned(),
        "https://[fd00::1]/repo.git".to_owned(),
    ] {
        let (status, code, text) = import(&owner, &url).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_url"),
            "{url}: {text}"
        );
    }
    // A name that resolves to loopback is refused as any failed fetch is.
    for url in [
        format!("http://localhost:{port}/repo.git"),
        format!("https://localhost:{port}/repo.git"),
    ] {
        let (status, code, text) = import(&owner, &url).await;
        assert_eq!(
            (status, code.as_str()),
            (502, "git_unavailable"),
            "{url}: {text}"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the internal service was contacted"
    );
}

#[tokio::test]
async fn every_failed_fetch_answers_alike() {
    let server = TestServer::start_with(|config| {
        config.git_allow_private = true;
        config.git_timeout = Duration::from_secs(3);
    })
    .await;
    let owner = server.client("owner@example.com").await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (web, _) = service(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
    let (missing, _) = service(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
    let (redis, _) = service(b"-ERR unknown command\r\n").await;
    let (silent, _) = service(b"").await;
    let mut answers: Vec<(String, (u16, String, String))> = Vec::new();
    for url in [
        format!("http://127.0.0.1:{closed}/repo.git"),
        format!("http://127.0.0.1:{web}/repo.git"),
        format!("http://127.0.0.1:{missing}/repo.git"),
        format!("http://127.0.0.1:{redis}/repo.git"),
        format!("https://127.0.0.1:{web}/repo.git"),
        format!("http://127.0.0.1:{silent}/repo.git"),
        "https://no-such-host.invalid/repo.git".to_owned(),
    ] {
        answers.push((url.clone(), import(&owner, &url).await));
    }
    let (first_url, first) = &answers[0];
    assert_eq!((first.0, first.1.as_str()), (502, "git_unavailable"));
    for (url, answer) in &answers {
        assert_eq!(answer, first, "{url} answered differently from {first_url}");
        assert!(!answer.2.contains("127.0.0.1"), "{url}: {}", answer.2);
    }
}
