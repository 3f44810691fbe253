//! The REST API: notebooks, import and export, errors.

use serde_json::json;
use tandem_protocol::Role;

use crate::support::TestServer;

fn corpus(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../../shared/notebooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn health_and_identity() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let health: serde_json::Value = http
        .get(format!("{}/healthz", server.http_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    let alice = server.client("Alice@Example.com").await;
    let me = alice.me().await.unwrap();
    assert_eq!(me.email, "alice@example.com");

    let anonymous = http
        .get(format!("{}/api/me", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn notebook_lifecycle() {
    let server = TestServer::start().await;
    let alice = server.client("alice@example.com").await;
    let bob = server.client("bob@example.com").await;

    let empty = alice.create_notebook("Empty", None).await.unwrap();
    assert_eq!((empty.title.as_str(), empty.role), ("Empty", Role::Owner));
    assert!(empty.id.len() >= 22, "ids carry at least 128 random bits");

    let imported = alice
        .create_notebook(
            "Attachments",
            Some(corpus("nbsphinx-markdown-attachments.ipynb")),
        )
        .await
        .unwrap();
    let listed = alice.list_notebooks().await.unwrap();
    let ids: Vec<_> = listed.iter().map(|n| n.id.as_str()).collect();
    assert!(ids.contains(&empty.id.as_str()) && ids.contains(&imported.id.as_str()));
    assert!(listed.iter().all(|n| n.updated_at.is_some()));
    assert!(
        bob.list_notebooks().await.unwrap().is_empty(),
        "bob sees nobody else's notebooks"
    );

    assert_eq!(
        alice.notebook(&imported.id).await.unwrap().title,
        "Attachments"
    );
    // Another user cannot tell a private notebook from a missing one.
    assert_eq!(
        bob.notebook(&imported.id).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        bob.export_ipynb(&imported.id).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        bob.delete_notebook(&imported.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        alice.notebook("nope").await.unwrap_err().status(),
        Some(404)
    );

    let export = alice.export_ipynb(&imported.id).await.unwrap();
    assert_eq!(export["nbformat"], 4);
    assert_eq!(export["nbformat_minor"], 5);
    let source = corpus("nbsphinx-markdown-attachments.ipynb");
    assert_eq!(
        export["cells"].as_array().unwrap().len(),
        source["cells"].as_array().unwrap().len()
    );
    let with_attachments = export["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get("attachments").is_some());
    assert!(with_attachments.is_some(), "attachments survive the import");

    alice.delete_notebook(&imported.id).await.unwrap();
    assert_eq!(
        alice.notebook(&imported.id).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        alice
            .delete_notebook(&imported.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn bad_requests_get_precise_errors() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 1024 * 1024).await;
    let alice = server.client("alice@example.com").await;
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("{}/api/notebooks", server.http_url()))
            .bearer_auth(alice.token())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let check = |status: u16, code: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status().as_u16(), status);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
            body["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    check(400, "invalid_json")(post("{not json".into()).await.unwrap()).await;
    check(400, "invalid_json")(post(r#"{"title": 5}"#.into()).await.unwrap()).await;
    let msg = check(400, "invalid_ipynb")(
        post(json!({"title": "x", "ipynb": {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": 7}}).to_string())
            .await
            .unwrap(),
    )
    .await;
    assert!(msg.contains("cells"), "the message names the field: {msg}");
    check(400, "invalid_ipynb")(
        post(json!({"title": "x", "ipynb": {"nbformat": 3}}).to_string())
            .await
            .unwrap(),
    )
    .await;
    let huge = json!({"title": "x", "ipynb": {"cells": [], "pad": "a".repeat(2 * 1024 * 1024)}})
        .to_string();
    check(413, "too_large")(post(huge).await.unwrap()).await;
    // Nothing half-made was left behind by the failures.
    assert!(alice.list_notebooks().await.unwrap().is_empty());
}
