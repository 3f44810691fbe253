//! The home page's API and the fast page load, through the real binary: renaming by role,
//! "Make a copy" (a link viewer who is signed in forks a notebook, outputs included; signed
//! out gets 401, an unknown id 404), the listing's owner, last editor and "last opened", the
//! web client's assets served precompressed (brotli and gzip, the same bytes once decoded)
//! and API JSON compressed when the client accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};

use reqwest::Method;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, VARY};
use serde_json::{Value, json};
use tandem_client::DocConnection;
use tandem_tests::{TestServer, workspace_root};
use yrs::{Array, Map, Out, Text, Transact};

/// A notebook with two cells, one with an output, as an upload would bring it.
fn notebook_with_output() -> Value {
    json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Squares"},
            {
                "cell_type": "code", "id": "sq", "metadata": {}, "execution_count": 1,
                "source": "print([i * i for i in range(4)])",
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "[0, 1, 4, 9]\n"}]
            }
        ]
    })
}

/// Each cell's type, source and outputs: what a copy must carry over.
fn cells(ipynb: &Value) -> Vec<(Value, Value, Value)> {
    ipynb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cell_type"].clone(),
                c["source"].clone(),
                c.get("outputs").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

async fn share(owner: &tandem_client::Client, id: &str, body: Value) {
    owner
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{id}/sharing"),
            Some(body),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_copy_check_the_callers_role() {
    let server = TestServer::start().await.unwrap();
    let ada = server.client_for("ada@lib.test").await.unwrap();
    let bob = server.client_for("bob@lib.test").await.unwrap();
    let carol = server.client_for("carol@lib.test").await.unwrap();
    let nb = ada
        .create_notebook("Squares", Some(notebook_with_output()))
        .await
        .unwrap();
    share(
        &ada,
        &nb.id,
        json!({"general_access": "restricted", "link_role": "viewer",
               "grants": [{"email": "bob@lib.test", "role": "viewer"}]}),
    )
    .await;

    // A viewer cannot rename: 403 with the reason; an unknown notebook is 404.
    let refused = bob.rename_notebook(&nb.id, "Mine now").await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(
        refused.to_string().contains("viewer cannot rename"),
        "{refused}"
    );
    let missing = ada
        .rename_notebook("no-such-notebook", "x")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    let too_long = ada
        .rename_notebook(&nb.id, &"x".repeat(501))
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Some("invalid_title"), "{too_long}");

    // Carol is not shared on the notebook: it does not exist for her, to copy or otherwise.
    let hidden = carol.copy_notebook(&nb.id).await.unwrap_err();
    assert_eq!(hidden.status(), Some(404), "{hidden}");
    let unknown = carol.copy_notebook("no-such-notebook").await.unwrap_err();
    assert_eq!(unknown.status(), Some(404), "{unknown}");

    // Anyone with the link may view: Carol, signed in, copies it; the copy is hers, titled
    // "Copy of …", with the cells and their outputs.
    share(
        &ada,
        &nb.id,
        json!({"general_access": "anyone_with_link", "link_role": "viewer", "grants": []}),
    )
    .await;
    let copy = carol.copy_notebook(&nb.id).await.unwrap();
    assert_eq!(copy.title, "Copy of Squares");
    assert_eq!(copy.role, tandem_protocol::Role::Owner);
    assert_ne!(copy.id, nb.id);
    let original = ada.export_ipynb(&nb.id).await.unwrap();
    let copied = carol.export_ipynb(&copy.id).await.unwrap();
    assert_eq!(cells(&copied), cells(&original));
    assert_eq!(copied["cells"][1]["outputs"][0]["text"], "[0, 1, 4, 9]\n");
    // The copy is Carol's alone, and the original is unchanged and still Ada's.
    let hers = carol.list_notebooks().await.unwrap();
    assert!(
        hers.iter()
            .any(|n| n.id == copy.id && n.title == "Copy of Squares")
    );
    let for_ada = ada.copy_notebook(&copy.id).await.unwrap_err();
    assert_eq!(for_ada.status(), Some(404), "{for_ada}");
    carol.rename_notebook(&copy.id, "My squares").await.unwrap();
    assert_eq!(ada.notebook(&nb.id).await.unwrap().title, "Squares");

    // Signed out: 401 even for a notebook anyone with the link may view.
    let http = reqwest::Client::new();
    let anonymous = http
        .post(format!(
            "{}/api/notebooks/{}/copy",
            server.http_url(),
            nb.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_names_owner_last_editor_and_last_opened() {
    let server = TestServer::start().await.unwrap();
    let ada = server.client_for("ada@list.test").await.unwrap();
    let bob = server.client_for("bob@list.test").await.unwrap();
    let nb = ada.create_notebook("Shared", None).await.unwrap();
    share(
        &ada,
        &nb.id,
        json!({"general_access": "restricted", "link_role": "viewer",
               "grants": [{"email": "bob@list.test", "role": "editor"}]}),
    )
    .await;

    let listed = bob.list_notebooks().await.unwrap();
    let seen = listed.iter().find(|n| n.id == nb.id).unwrap();
    let owner = seen.owner.as_ref().expect("the owner is named");
    assert_eq!(owner.id, ada.me().await.unwrap().id);
    assert!(!owner.name.is_empty());
    assert_eq!(
        owner.email.as_deref(),
        Some("ada@list.test"),
        "editors see emails"
    );
    assert!(seen.last_editor.is_none(), "nobody has edited yet");
    assert!(seen.last_opened_at.is_none(), "Bob has not opened it");

    // Bob renames it (an edit) and opens it (a WebSocket, as the page does).
    bob.rename_notebook(&nb.id, "Shared, renamed")
        .await
        .unwrap();
    let conn = DocConnection::connect(&server.ws_url(), &nb.id, Some(bob.token()))
        .await
        .unwrap();
    conn.synced().await.unwrap();
    let bob_id = bob.me().await.unwrap().id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seen = loop {
        let listed = bob.list_notebooks().await.unwrap();
        let seen = listed.into_iter().find(|n| n.id == nb.id).unwrap();
        if seen.last_opened_at.is_some() || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        seen.last_opened_at.is_some(),
        "opening is recorded: {seen:?}"
    );
    assert_eq!(
        seen.last_editor.as_ref().map(|p| p.id.as_str()),
        Some(bob_id.as_str())
    );
    // Ada's listing has Bob as last editor too, but no open of hers.
    let for_ada = ada.list_notebooks().await.unwrap();
    let theirs = for_ada.iter().find(|n| n.id == nb.id).unwrap();
    assert_eq!(
        theirs.last_editor.as_ref().map(|p| p.id.as_str()),
        Some(bob_id.as_str())
    );
    assert!(theirs.last_opened_at.is_none());
    conn.close().await;

    // Ada types into the cell over her own WebSocket: she is now the last editor.
    let ada_id = ada.me().await.unwrap().id;
    let typing = DocConnection::connect(&server.ws_url(), &nb.id, Some(ada.token()))
        .await
        .unwrap();
    typing.synced().await.unwrap();
    {
        let cells = typing.doc().get_or_insert_array("cells");
        let mut txn = typing.doc().transact_mut();
        let Some(Out::YMap(cell)) = cells.get(&txn, 0) else {
            panic!("a new notebook has one cell");
        };
        let Some(Out::YText(source)) = cell.get(&txn, "source") else {
            panic!("the cell has a source");
        };
        source.insert(&mut txn, 0, "x = 1");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = bob.list_notebooks().await.unwrap();
        let seen = listed.into_iter().find(|n| n.id == nb.id).unwrap();
        let editor = seen.last_editor.map(|p| p.id);
        if editor.as_deref() == Some(ada_id.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a WebSocket edit names its author as last editor; still {editor:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    typing.close().await;
}

/// The built web client (`npm run build` in client/web), or the command that builds it.
fn built_assets() -> PathBuf {
    let dist = workspace_root().join("client/web/dist");
    assert!(
        dist.join("index.html").is_file(),
        "the web client is not built: run `npm ci && npm run build` in client/web (scripts/test does)"
    );
    dist
}

/// The name of the app's entry script, from the built index.html.
fn app_script(dist: &Path) -> String {
    let index = std::fs::read_to_string(dist.join("index.html")).unwrap();
    let start = index
        .find("src=\"/assets/app-")
        .expect("index.html names the app's script");
    let rest = &index[start + "src=\"/assets/".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_served_precompressed_and_api_json_compressed() {
    let dist = built_assets();
    let server = TestServer::start_with(&["--web-dir", dist.to_str().unwrap()])
        .await
        .unwrap();
    let script = app_script(&dist);
    let original = std::fs::read(dist.join("assets").join(&script)).unwrap();
    assert!(
        dist.join("assets").join(format!("{script}.br")).is_file(),
        "the build writes .br beside each asset"
    );
    // No automatic decoding: the test sees what went over the wire.
    let http = reqwest::Client::new();
    let url = format!("{}/assets/{script}", server.http_url());
    let fetch = |encoding: &'static str| {
        let request = http.get(&url);
        async move {
            let request = if encoding.is_empty() {
                request
            } else {
                request.header(ACCEPT_ENCODING, encoding)
            };
            request.send().await.unwrap()
        }
    };

    let br = fetch("gzip, deflate, br").await;
    assert_eq!(br.status(), 200);
    assert_eq!(br.headers()[CONTENT_ENCODING], "br");
    assert_eq!(br.headers()[VARY], "accept-encoding");
    assert!(
        br.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        br.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let wire = br.bytes().await.unwrap();
    assert!(
        wire.len() * 2 < original.len(),
        "brotli at least halves the script"
    );
    let mut decoded = Vec::new();
    brotli_decompressor::Decompressor::new(&wire[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert!(decoded == original, "the .br decodes to the script");

    let gz = fetch("gzip").await;
    assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip");
    let wire = gz.bytes().await.unwrap();
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&wire[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert!(decoded == original, "the .gz decodes to the script");

    let plain = fetch("").await;
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert!(plain.bytes().await.unwrap() == original);
    // The path checks still hold.
    let escape = http
        .get(format!("{}/assets/..%2findex.html", server.http_url()))
        .header(ACCEPT_ENCODING, "br")
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);
    let missing = http
        .get(format!("{}/assets/nothing-here.js", server.http_url()))
        .header(ACCEPT_ENCODING, "br")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // API JSON: compressed when asked, the same JSON once decoded.
    let token = server.token_for("ada@gz.test").await.unwrap();
    let ada = tandem_client::Client::new(&server.http_url(), &token).unwrap();
    for i in 0..5 {
        ada.create_notebook(&format!("Notebook {i}"), None)
            .await
            .unwrap();
    }
    let list = http
        .get(format!("{}/api/notebooks", server.http_url()))
        .bearer_auth(&token)
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    assert_eq!(list.headers()[CONTENT_ENCODING], "gzip");
    let mut json = String::new();
    flate2::read::GzDecoder::new(&list.bytes().await.unwrap()[..])
        .read_to_string(&mut json)
        .unwrap();
    let decoded: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded.len(), 5);
    let uncompressed = http
        .get(format!("{}/api/notebooks", server.http_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(uncompressed.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(uncompressed.json::<Vec<Value>>().await.unwrap(), decoded);
}
