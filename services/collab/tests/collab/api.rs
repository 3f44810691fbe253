//! The REST API: notebooks, import and export, errors.

use serde_json::json;
use tandem_protocol::Role;

use crate::support::{TestServer, WAIT};

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
async fn editors_rename_a_notebook_and_open_documents_see_it_at_once() {
    use reqwest::Method;
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let editor = server.client("editor@example.com").await;
    let nb = owner
        .create_notebook(
            "  First  ",
            Some(corpus("nbsphinx-markdown-attachments.ipynb")),
        )
        .await
        .unwrap();
    assert_eq!(nb.title, "First");
    let export_before = owner.export_ipynb(&nb.id).await.unwrap();
    owner
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{}/sharing", nb.id),
            Some(
                json!({"general_access": "restricted", "link_role": "viewer", "grants": [
                    {"email": "editor@example.com", "role": "editor"},
                    {"email": "commenter@example.com", "role": "commenter"},
                    {"email": "viewer@example.com", "role": "viewer"},
                ]}),
            ),
        )
        .await
        .unwrap();
    // The document carries the title from the start, and every rename live.
    let conn = server.connect(&editor, &nb.id).await;
    let title_of = |doc: &yrs::Doc| {
        tandem_crdt::Notebook::from_doc(doc.clone()).state_value(tandem_crdt::schema::STATE_TITLE)
    };
    assert_eq!(title_of(conn.doc()), Some(json!("First")));

    let renamed = editor.rename_notebook(&nb.id, "  Second  ").await.unwrap();
    assert_eq!(
        (renamed.title.as_str(), renamed.role),
        ("Second", Role::Editor)
    );
    conn.wait_until(|doc| title_of(doc) == Some(json!("Second")), WAIT)
        .await
        .unwrap();
    assert_eq!(owner.notebook(&nb.id).await.unwrap().title, "Second");
    let listed = owner.list_notebooks().await.unwrap();
    assert_eq!(
        listed.iter().find(|n| n.id == nb.id).unwrap().title,
        "Second"
    );
    assert_eq!(
        owner.rename_notebook(&nb.id, "   ").await.unwrap().title,
        "Untitled"
    );
    conn.wait_until(|doc| title_of(doc) == Some(json!("Untitled")), WAIT)
        .await
        .unwrap();
    // The title is no part of the .ipynb.
    assert_eq!(owner.export_ipynb(&nb.id).await.unwrap(), export_before);

    let too_long = owner
        .rename_notebook(&nb.id, &"x".repeat(501))
        .await
        .unwrap_err();
    assert_eq!(
        (too_long.status(), too_long.code()),
        (Some(400), Some("invalid_title"))
    );
    for (email, status) in [
        ("commenter@example.com", 403),
        ("viewer@example.com", 403),
        ("outsider@example.com", 404),
    ] {
        let client = server.client(email).await;
        let err = client.rename_notebook(&nb.id, "Mine").await.unwrap_err();
        assert_eq!(err.status(), Some(status), "{email}");
    }
    let anonymous = reqwest::Client::new()
        .patch(format!("{}/api/notebooks/{}", server.http_url(), nb.id))
        .json(&json!({"title": "Anon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let missing = owner
        .rename_notebook("no-such-notebook", "x")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
    assert_eq!(owner.notebook(&nb.id).await.unwrap().title, "Untitled");
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
