//! `POST /api/notebooks/{id}/outputs/clear`: editors clear outputs (and execution counts)
//! through the server, since the document guard keeps clients off them; everyone connected
//! sees the result live. Also `GET /api/session`, the signed-out-friendly `/api/me`.

use serde_json::{Value, json};
use tandem_crdt::Notebook;

use crate::support::{TestServer, WAIT, post};

fn ran(id: &str, text: &str, count: i64) -> Value {
    json!({"id": id, "cell_type": "code", "source": format!("print({text:?})"), "metadata": {},
           "execution_count": count,
           "outputs": [{"output_type": "stream", "name": "stdout", "text": format!("{text}\n")}]})
}

/// Outputs and execution counts of the code cells, by id, as a connection sees them.
fn outputs_of(doc: &yrs::Doc) -> Vec<(String, usize, Option<i64>)> {
    Notebook::from_doc(doc.clone())
        .cells()
        .into_iter()
        .filter(|c| c.cell_type == tandem_crdt::CellType::Code)
        .map(|c| (c.id, c.outputs.len(), c.execution_count))
        .collect()
}

#[tokio::test]
async fn editors_clear_outputs_for_everyone_and_others_may_not() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let editor = server.token("editor@example.com").await;
    let viewer = server.token("viewer@example.com").await;
    let commenter = server.token("commenter@example.com").await;
    let nb = owner
        .create_notebook(
            "outputs",
            Some(
                json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
                    ran("c1", "one", 1),
                    {"id": "m1", "cell_type": "markdown", "source": "# hi", "metadata": {}},
                    ran("c2", "two", 2),
                ]}),
            ),
        )
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .put(format!(
            "{}/api/notebooks/{}/sharing",
            server.http_url(),
            nb.id
        ))
        .bearer_auth(owner.token())
        .json(
            &json!({"general_access": "restricted", "link_role": "viewer", "grants": [
                {"email": "editor@example.com", "role": "editor"},
                {"email": "viewer@example.com", "role": "viewer"},
                {"email": "commenter@example.com", "role": "commenter"},
            ]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let path = format!("/api/notebooks/{}/outputs/clear", nb.id);
    // Someone watching the notebook: the clear reaches open connections.
    let watcher = server.connect(&owner, &nb.id).await;
    tokio::time::timeout(WAIT, watcher.synced())
        .await
        .unwrap()
        .unwrap();

    // Viewers and commenters: 403, and nothing changes.
    for token in [&viewer, &commenter] {
        let (status, body) = post(&server, token, &path, json!({})).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cannot clear"),
            "{body}"
        );
    }
    // Bad ids: precise errors, and nothing is cleared (not even the good id beside them).
    let (status, body) = post(&server, &editor, &path, json!({"cell_ids": ["c1", "nope"]})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_cell");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\"")
    );
    let (status, body) = post(&server, &editor, &path, json!({"cell_ids": ["m1"]})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("not_code")),
        "{body}"
    );
    let (status, body) = post(&server, &editor, &path, json!({"cell_ids": []})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = post(&server, &editor, &path, json!({"cell_ids": "c1"})).await;
    assert_eq!(status, 400, "{body}");
    let ipynb = owner.export_ipynb(&nb.id).await.unwrap();
    assert_eq!(ipynb["cells"][0]["outputs"].as_array().unwrap().len(), 1);

    // One cell: its outputs and count go, for everyone; the other cell keeps its own.
    let (status, body) = post(&server, &editor, &path, json!({"cell_ids": ["c1"]})).await;
    assert_eq!((status, body), (200, json!({"cleared": ["c1"]})));
    watcher
        .wait_until(
            |doc| outputs_of(doc) == vec![("c1".into(), 0, None), ("c2".into(), 1, Some(2))],
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", outputs_of(watcher.doc())));

    // All of them (no ids): every code cell, in notebook order.
    let (status, body) = post(&server, owner.token(), &path, json!({})).await;
    assert_eq!((status, body), (200, json!({"cleared": ["c1", "c2"]})));
    watcher
        .wait_until(
            |doc| outputs_of(doc) == vec![("c1".into(), 0, None), ("c2".into(), 0, None)],
            WAIT,
        )
        .await
        .unwrap();
    let ipynb = owner.export_ipynb(&nb.id).await.unwrap();
    for cell in [&ipynb["cells"][0], &ipynb["cells"][2]] {
        assert_eq!(cell["outputs"], json!([]));
        assert_eq!(cell["execution_count"], Value::Null);
    }
    assert_eq!(
        ipynb["cells"][2]["source"], "print(\"two\")",
        "sources stay"
    );
}

#[tokio::test]
async fn the_session_probe_answers_200_signed_in_or_not() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/session", server.http_url());
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"signed_in": false})
    );
    let token = server.token("ada@example.com").await;
    let session: Value = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["signed_in"], true);
    assert_eq!(session["user"]["email"], "ada@example.com");
    // `/api/me` stays as it was: 401 signed out.
    let me = http
        .get(format!("{}/api/me", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    // A token that is not valid is still refused, not taken for "signed out".
    let bad = http
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
}
