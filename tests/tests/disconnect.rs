//! A client that edits and closes at once must not lose its last edits: the server has read
//! them before the close frame, so it must apply, persist and broadcast them like any others.
//!
//! Found by the interop test: the stock JS client sets its final metadata and exits right after;
//! the server applied the first of those frames, failed to send the broadcast back to the
//! closing client's (already closed) queue, forgot the connection, and then dropped the frames
//! it still had from it. This drives the same pattern with the Rust client, many times over,
//! since it is a race.

// Helpers here are test code too: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tandem_client::DocConnection;
use tandem_tests::TestServer;
use yrs::{Any, Array, GetString, Map, Out, Transact};

/// Rounds of "edit, close at once". The race lost edits in about a third of runs of the
/// interop scenario; many short rounds make a regression show up reliably.
const ROUNDS: usize = 30;
/// Separate transactions (so separate frames) each closing client sends before closing.
const EDITS: usize = 8;
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_sent_right_before_closing_reach_everyone_and_the_store() {
    let server = TestServer::start().await.unwrap();
    let client = server.client_for("closer@example.com").await.unwrap();
    let token = client.token().to_owned();
    let ipynb = json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"id": "c", "cell_type": "code", "source": "", "metadata": {},
                   "outputs": [], "execution_count": null}]
    });
    let notebook = client
        .create_notebook("closing", Some(ipynb))
        .await
        .unwrap();
    let ws = server.ws_url();

    let watcher = DocConnection::connect(&ws, &notebook.id, Some(&token))
        .await
        .unwrap();
    watcher.synced().await.unwrap();

    for round in 0..ROUNDS {
        let closer = DocConnection::connect(&ws, &notebook.id, Some(&token))
            .await
            .unwrap();
        closer.synced().await.unwrap();
        {
            let doc = closer.doc();
            let cells = doc.get_or_insert_array("cells");
            let meta = doc.get_or_insert_map("meta");
            for edit in 0..EDITS {
                let mut txn = doc.transact_mut();
                let Some(Out::YMap(cell)) = cells.get(&txn, 0) else {
                    panic!("round {round}: no cell");
                };
                let Some(Out::YText(source)) = cell.get(&txn, "source") else {
                    panic!("round {round}: no source");
                };
                let end = yrs::Text::len(&source, &txn);
                yrs::Text::insert(&source, &mut txn, end, "x");
                // The last edit is a map entry, like the interop clients' final "done" marker.
                if edit == EDITS - 1 {
                    meta.insert(&mut txn, format!("round_{round}"), Any::Bool(true));
                }
            }
        }
        // Close right away: the edits are queued before the close frame, nothing waits.
        closer.close().await;

        let key = format!("round_{round}");
        let want_len = (round + 1) * EDITS;
        watcher
            .wait_until(
                |doc| {
                    let meta = doc.get_or_insert_map("meta");
                    let txn = doc.transact();
                    meta.get(&txn, &key).is_some()
                },
                WAIT,
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "round {round}: the closing client's last edit never reached the watcher: {e}"
                )
            });
        let text = source_of(&watcher);
        assert_eq!(
            text.len(),
            want_len,
            "round {round}: the watcher has {text:?}"
        );
    }

    // And the store has all of it: a fresh client after a clean restart sees every edit.
    let mut server = server;
    server.restart().await.unwrap();
    let fresh = DocConnection::connect(&server.ws_url(), &notebook.id, Some(&token))
        .await
        .unwrap();
    fresh.synced().await.unwrap();
    assert_eq!(source_of(&fresh).len(), ROUNDS * EDITS);
}

fn source_of(conn: &DocConnection) -> String {
    let doc = conn.doc();
    let cells = doc.get_or_insert_array("cells");
    let txn = doc.transact();
    let Some(Out::YMap(cell)) = cells.get(&txn, 0) else {
        return String::new();
    };
    match cell.get(&txn, "source") {
        Some(Out::YText(text)) => text.get_string(&txn),
        _ => String::new(),
    }
}
