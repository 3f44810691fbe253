//! The values only the runtime or the server writes (outputs, counts, run states, who ran a
//! cell, `state.kernel`, `state.title`, `state.git`, `state.comments_rev`): an editor's
//! WebSocket update that touches them is refused like a read-only edit and reverted for
//! everyone, its author included, while the connection stays open; the runtime's writes pass.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::{ExecutionState, Notebook, schema};
use yrs::sync::{Message, SyncMessage};
use yrs::{Map, ReadTxn, StateVector, Transact};

use crate::support::{Received, TestServer, WAIT, raw_connect, receive, send};

const SERVICE: &str = "integrity-service-token";

/// A notebook whose one code cell ran: outputs and a count, written by the server at import.
fn ran() -> Value {
    json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"id": "c1", "cell_type": "code", "source": "6 * 7", "metadata": {},
         "execution_count": 3,
         "outputs": [{"output_type": "execute_result", "execution_count": 3,
                      "data": {"text/plain": "42"}, "metadata": {}}]},
        {"id": "m1", "cell_type": "markdown", "source": "notes", "metadata": {}}]})
}

async fn setup() -> (TestServer, Client, String) {
    let server = TestServer::start_with(|c| c.service_token = Some(SERVICE.to_owned())).await;
    let owner = server.client("owner@example.com").await;
    let id = owner.create_notebook("ran", Some(ran())).await.unwrap().id;
    (server, owner, id)
}

fn notebook(conn: &DocConnection) -> Notebook {
    Notebook::from_doc(conn.doc().clone())
}

/// Waits until `conn`'s copy satisfies `check`.
async fn until(
    conn: &DocConnection,
    what: &str,
    check: impl Fn(&Notebook) -> bool + Send + 'static,
) {
    conn.wait_until(move |doc| check(&Notebook::from_doc(doc.clone())), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

#[tokio::test]
async fn an_editor_cannot_forge_what_the_runtime_writes() {
    let (server, owner, id) = setup().await;
    let forger = server.connect(&owner, &id).await;
    let watcher = server.connect(&owner, &id).await;

    // "Run by Alice" for a run Alice never made, a different result, a running state.
    {
        let nb = notebook(&forger);
        nb.set_execution_count("c1", Some(99)).unwrap();
        nb.clear_outputs("c1").unwrap();
        nb.append_output(
            "c1",
            &json!({"output_type": "display_data", "data": {"text/plain": "forged"},
                    "metadata": {}}),
        )
        .unwrap();
        nb.set_execution_by("c1", "alice-id", "Alice").unwrap();
        nb.set_execution_state("c1", ExecutionState::Running)
            .unwrap();
    }
    let reason = forger.wait_permission_denied(WAIT).await.unwrap();
    assert!(reason.contains("written only by the runtime"), "{reason}");
    assert!(!forger.is_closed(), "a refused edit keeps the connection");

    // The forger's own copy comes back to the server's.
    until(&forger, "the forger's copy re-synced", |nb| {
        let cell = &nb.cells()[0];
        cell.execution_count == Some(3)
            && cell.outputs.len() == 1
            && cell.outputs[0]["data"]["text/plain"] == "42"
            && nb.execution_by("c1").is_none()
    })
    .await;

    // Nobody else ever had it, and the store does not either.
    let exported = owner.export_ipynb(&id).await.unwrap();
    assert_eq!(exported["cells"][0]["execution_count"], 3);
    assert_eq!(
        exported["cells"][0]["outputs"][0]["data"]["text/plain"],
        "42"
    );
    let cell = notebook(&watcher).cells()[0].clone();
    assert_eq!(cell.execution_count, Some(3));
    assert_ne!(cell.execution_state, Some(ExecutionState::Running));

    // The forger goes on editing like anyone.
    notebook(&forger).edit_source("m1", 0, 0, "more ").unwrap();
    until(&watcher, "the forger's next edit arrived", |nb| {
        nb.cells()[1].source == "more notes"
    })
    .await;
}

#[tokio::test]
async fn an_editor_cannot_write_the_servers_state() {
    let (server, owner, id) = setup().await;
    for key in schema::SERVER_STATE_KEYS {
        let forger = server.connect(&owner, &id).await;
        {
            let nb = notebook(&forger);
            let mut txn = nb.doc().transact_mut();
            nb.state().insert(&mut txn, key, "forged");
        }
        let reason = forger.wait_permission_denied(WAIT).await.unwrap();
        assert!(reason.contains(&format!("state.{key}")), "{reason}");
        until(&forger, "state re-synced", move |nb| {
            nb.state_value(key) != Some(json!("forged"))
        })
        .await;
        assert!(!forger.is_closed());
    }
    // The title is still the one the API set.
    let fresh = server.connect(&owner, &id).await;
    assert_eq!(
        notebook(&fresh).state_value(schema::STATE_TITLE),
        Some(json!("ran"))
    );
    assert_eq!(owner.notebook(&id).await.unwrap().title, "ran");
}

#[tokio::test]
async fn new_cells_start_clean_and_moves_keep_their_outputs() {
    let (server, owner, id) = setup().await;
    let editor = server.connect(&owner, &id).await;
    let watcher = server.connect(&owner, &id).await;
    let nb = notebook(&editor);
    // As JupyterLab and the web client create and move cells.
    let new = nb
        .insert_cell(2, tandem_crdt::NewCell::code("print(1)"))
        .unwrap();
    nb.move_cell("c1", 1).unwrap();
    until(&watcher, "the insert and the move arrived", |nb| {
        let cells = nb.cells();
        cells.len() == 3 && cells[1].id == "c1" && cells[1].outputs.len() == 1
    })
    .await;
    assert_eq!(editor.permission_denied(), None);
    // Writing into the new cell's outputs afterwards is the runtime's business.
    nb.append_stream(&new, "stdout", "forged").unwrap();
    let reason = editor.wait_permission_denied(WAIT).await.unwrap();
    assert!(reason.contains("outputs"), "{reason}");
    until(&editor, "the stream was reverted", |nb| {
        nb.cells()[2].outputs.is_empty()
    })
    .await;
}

#[tokio::test]
async fn the_runtime_writes_them() {
    let (server, owner, id) = setup().await;
    let runtime = server.connect_with_token(SERVICE, &id).await;
    let watcher = server.connect(&owner, &id).await;
    let nb = notebook(&runtime);
    nb.set_execution_count("c1", Some(4)).unwrap();
    nb.append_stream("c1", "stdout", "hello").unwrap();
    {
        let mut txn = nb.doc().transact_mut();
        nb.state().insert(
            &mut txn,
            schema::STATE_KERNEL,
            yrs::MapPrelim::from([("status", yrs::Any::from("idle"))]),
        );
    }
    until(&watcher, "the runtime's writes arrived", |nb| {
        nb.cells()[0].execution_count == Some(4)
            && nb.cells()[0].outputs.len() == 2
            && nb.state_value(schema::STATE_KERNEL) == Some(json!({"status": "idle"}))
    })
    .await;
    assert_eq!(runtime.permission_denied(), None);
}

#[tokio::test]
async fn updates_with_missing_dependencies_are_not_kept() {
    let (server, owner, id) = setup().await;
    let watcher = server.connect(&owner, &id).await;
    // A client that holds the notebook and makes two edits, but sends only the second.
    let client = server.connect(&owner, &id).await;
    let doc = client.doc().clone();
    drop(client);
    let before = doc.transact().state_vector();
    let text = doc.get_or_insert_text("t");
    yrs::Text::insert(&text, &mut doc.transact_mut(), 0, "a");
    let first = doc.transact().encode_state_as_update_v1(&before);
    let middle = doc.transact().state_vector();
    yrs::Text::insert(&text, &mut doc.transact_mut(), 1, "b");
    let second = doc.transact().encode_state_as_update_v1(&middle);

    let mut raw = raw_connect(&server, &id, owner.token()).await;
    sync_step_1(&mut raw).await; // the greeting
    send(&mut raw, &Message::Sync(SyncMessage::Update(second))).await;
    // The server keeps nothing of it and asks for what it lacks.
    let server_sv = sync_step_1(&mut raw).await;
    assert_eq!(server_sv.get(&doc.client_id()), 0);
    send(&mut raw, &Message::Sync(SyncMessage::Update(first))).await;
    let t = watcher.doc().get_or_insert_text("t");
    watcher
        .wait_until(
            move |d| yrs::GetString::get_string(&t, &d.transact()) == "a",
            WAIT,
        )
        .await
        .unwrap();
    // What the client sends after the sync step 1 (everything the server lacks) completes it.
    let rest = doc
        .transact()
        .encode_state_as_update_v1(&watcher.doc().transact().state_vector());
    send(&mut raw, &Message::Sync(SyncMessage::SyncStep2(rest))).await;
    let t = watcher.doc().get_or_insert_text("t");
    watcher
        .wait_until(
            move |d| yrs::GetString::get_string(&t, &d.transact()) == "ab",
            WAIT,
        )
        .await
        .unwrap();
}

async fn sync_step_1(raw: &mut crate::support::RawSocket) -> StateVector {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), receive(raw)).await {
            Ok(Received::Message(Message::Sync(SyncMessage::SyncStep1(sv)))) => return sv,
            Ok(Received::Message(_)) => {}
            other => panic!("no sync step 1: {other:?}"),
        }
    }
}
