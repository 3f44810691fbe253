use serde_json::{Value, json};
use yrs::{
    Any, Array, ArrayPrelim, Map, MapPrelim, Out, ReadTxn, StateVector, Transact, Update,
    updates::decoder::Decode,
};

use super::*;
use crate::{NewCell, Notebook};

/// The server's notebook: one code cell the runtime ran (outputs, count, who ran it), one
/// markdown cell, and `state` as the runtime and the server write it.
fn setup() -> (Notebook, String, String) {
    let nb = Notebook::new();
    let code = nb
        .insert_cell(0, NewCell::code("print('hi')").with_id("code"))
        .unwrap();
    let md = nb
        .insert_cell(1, NewCell::markdown("# title").with_id("md"))
        .unwrap();
    nb.append_stream(&code, "stdout", "hi\n").unwrap();
    nb.append_output(
        &code,
        &json!({"output_type": "execute_result", "execution_count": 1,
                "data": {"text/plain": "1"}, "metadata": {}}),
    )
    .unwrap();
    nb.set_execution_count(&code, Some(1)).unwrap();
    nb.set_execution_by(&code, "u1", "Alice").unwrap();
    {
        let mut txn = nb.doc().transact_mut();
        let state = nb.state();
        state.insert(
            &mut txn,
            schema::STATE_KERNEL,
            MapPrelim::from([("status", Any::from("idle"))]),
        );
        state.insert(&mut txn, schema::STATE_TITLE, "Title");
        state.insert(&mut txn, schema::STATE_COMMENTS_REV, "r1");
        state.insert(
            &mut txn,
            schema::STATE_GIT,
            MapPrelim::from([("url", Any::from("https://example.com/r"))]),
        );
    }
    (nb, code, md)
}

/// A client replica holding everything the server has.
fn replica(of: &Notebook) -> Notebook {
    let client = Notebook::new();
    sync(of, &client);
    client
}

fn sync(from: &Notebook, to: &Notebook) {
    let sv = to.doc().transact().state_vector();
    let update = from.doc().transact().encode_state_as_update_v1(&sv);
    to.doc()
        .transact_mut()
        .apply_update(Update::decode_v1(&update).unwrap())
        .unwrap();
}

/// What `edit` changed on the client, as the update the client would send.
fn edit_on(client: &Notebook, edit: impl FnOnce(&Notebook)) -> Update {
    let before = client.doc().transact().state_vector();
    edit(client);
    let bytes = client.doc().transact().encode_state_as_update_v1(&before);
    Update::decode_v1(&bytes).unwrap()
}

/// Everything the document holds, as JSON.
fn everything(nb: &Notebook) -> Value {
    let txn = nb.doc().transact();
    let root = |name: &str| match txn.get_map(name) {
        Some(map) => schema::out_to_json(&Out::YMap(map), &txn),
        None => Value::Null,
    };
    let cells = txn
        .get_array(CELLS)
        .map(|cells| schema::out_to_json(&Out::YArray(cells), &txn))
        .unwrap_or(Value::Null);
    json!({"cells": cells, "meta": root(META), "state": root(STATE)})
}

/// Sends the outcome's changes to the client, as the room's broadcast would.
fn deliver(outcome: &Outcome, client: &Notebook) {
    for change in &outcome.changes {
        client
            .doc()
            .transact_mut()
            .apply_update(Update::decode_v1(change).unwrap())
            .unwrap();
    }
}

/// Applies a forged edit: it must be refused, the server must be as before, and the forger's
/// copy must come back to the server's state once it receives the outcome.
fn assert_refused(edit: impl FnOnce(&Notebook)) -> String {
    let (server, _, _) = setup();
    let mut guard = Guard::new(server.doc());
    let before = everything(&server);
    let client = replica(&server);
    let update = edit_on(&client, edit);
    assert_ne!(everything(&client), before, "the edit changed nothing");
    let outcome = guard.apply(update);
    let reason = outcome.refused.clone().expect("refused");
    assert!(outcome.error.is_none() && !outcome.incomplete);
    assert_eq!(everything(&server), before, "{reason}");
    deliver(&outcome, &client);
    assert_eq!(
        everything(&client),
        before,
        "the forger's copy did not converge"
    );

    // The forger is not stuck: its next edit applies.
    let next = edit_on(&client, |nb| {
        nb.edit_source("md", 0, 0, "more ").unwrap();
    });
    let outcome = guard.apply(next);
    assert!(outcome.refused.is_none() && !outcome.incomplete);
    assert_eq!(server.cells()[1].source, "more # title");
    reason
}

type Edit = Box<dyn Fn(&Notebook)>;

#[test]
fn editors_edits_pass() {
    let (server, code, md) = setup();
    let mut guard = Guard::new(server.doc());
    let client = replica(&server);
    let edits: Vec<Edit> = vec![
        Box::new(|nb| nb.edit_source("code", 0, 0, "x = 1\n").unwrap()),
        Box::new(|nb| {
            nb.insert_cell(2, NewCell::code("new")).unwrap();
        }),
        Box::new(|nb| nb.set_cell_metadata("code", "tags", json!(["a"])).unwrap()),
        Box::new(|nb| nb.set_notebook_metadata("kernelspec", json!({"name": "python3"}))),
        // A move re-creates the cell with its outputs: they are the original's.
        Box::new(|nb| nb.move_cell("code", 1).unwrap()),
        Box::new(|nb| {
            let mut txn = nb.doc().transact_mut();
            nb.state().insert(&mut txn, "dirty", true);
        }),
        Box::new(|nb| nb.delete_cell("md").unwrap()),
    ];
    for edit in edits {
        let update = edit_on(&client, edit);
        let outcome = guard.apply(update);
        assert_eq!(outcome.refused, None);
        assert!(!outcome.changes.is_empty());
        assert_eq!(everything(&server), everything(&client));
    }
    let cells = server.cells();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[0].id, code);
    assert_eq!(cells[0].outputs.len(), 2, "the moved cell kept its outputs");
    assert_ne!(cells[0].id, md);
}

#[test]
fn runtime_keys_of_cells_are_refused() {
    let reason = assert_refused(|nb| nb.set_execution_count("code", Some(42)).unwrap());
    assert!(reason.contains("execution_count"), "{reason}");
    assert_refused(|nb| {
        nb.append_output(
            "code",
            &json!({"output_type": "display_data", "data": {"text/html": "<b>x</b>"},
                    "metadata": {}}),
        )
        .unwrap()
    });
    assert_refused(|nb| nb.append_stream("code", "stdout", "forged\n").unwrap());
    assert_refused(|nb| nb.clear_outputs("code").unwrap());
    assert_refused(|nb| nb.set_execution_by("code", "u2", "Mallory").unwrap());
    assert_refused(|nb| {
        nb.set_execution_state("code", crate::ExecutionState::Running)
            .unwrap()
    });
    assert_refused(|nb| nb.set_stale("code", true).unwrap());
    // Removing a key is writing it too.
    assert_refused(|nb| {
        let txn = nb.doc().transact();
        let Some(Out::YMap(cell)) = txn.get_array(CELLS).unwrap().get(&txn, 0) else {
            panic!()
        };
        drop(txn);
        cell.remove(&mut nb.doc().transact_mut(), OUTPUTS);
    });
    // Editing an output in place.
    assert_refused(|nb| {
        let txn = nb.doc().transact();
        let Some(Out::YMap(cell)) = txn.get_array(CELLS).unwrap().get(&txn, 0) else {
            panic!()
        };
        let Some(Out::YArray(outputs)) = cell.get(&txn, OUTPUTS) else {
            panic!()
        };
        let Some(Out::YMap(output)) = outputs.get(&txn, 1) else {
            panic!()
        };
        drop(txn);
        output.insert(&mut nb.doc().transact_mut(), "data", Any::from("x"));
    });
}

#[test]
fn server_keys_of_state_are_refused() {
    for key in SERVER_STATE_KEYS {
        let reason = assert_refused(|nb| {
            let mut txn = nb.doc().transact_mut();
            nb.state().insert(&mut txn, key, "forged");
        });
        assert!(reason.contains(key), "{reason}");
    }
    // Inside the kernel's map and the git origin.
    for key in [schema::STATE_KERNEL, schema::STATE_GIT] {
        assert_refused(|nb| {
            let txn = nb.doc().transact();
            let Some(Out::YMap(map)) = nb.state().get(&txn, key) else {
                panic!()
            };
            drop(txn);
            map.insert(&mut nb.doc().transact_mut(), "status", "dead");
        });
    }
}

#[test]
fn a_refused_update_is_refused_whole() {
    let reason = assert_refused(|nb| {
        nb.edit_source("md", 0, 0, "typed ").unwrap();
        nb.set_execution_count("code", Some(7)).unwrap();
        nb.insert_cell(0, NewCell::code("also")).unwrap();
        nb.delete_cell("md").unwrap();
    });
    assert!(reason.contains("execution_count"));
}

/// A cell as a client would create it, with `values` besides id, type, source and metadata.
fn insert_raw_cell(nb: &Notebook, id: &str, values: Vec<(&str, yrs::In)>) {
    let mut txn = nb.doc().transact_mut();
    let cells = txn.get_or_insert_array(CELLS);
    let mut map: Vec<(&str, yrs::In)> = vec![
        ("id", yrs::In::Any(Any::from(id))),
        ("cell_type", yrs::In::Any(Any::from("code"))),
        ("source", yrs::TextPrelim::new("").into()),
        ("metadata", yrs::In::Map(MapPrelim::default())),
    ];
    map.extend(values);
    let len = cells.len(&txn);
    cells.insert(
        &mut txn,
        len,
        map.into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<MapPrelim>(),
    );
}

#[test]
fn new_cells_come_with_initial_values_only() {
    let (server, _, _) = setup();
    let mut guard = Guard::new(server.doc());
    let client = replica(&server);
    // As @jupyter/ydoc, jupyter_ydoc and Tandem's web client create code cells.
    let update = edit_on(&client, |nb| {
        insert_raw_cell(
            nb,
            "fresh",
            vec![
                ("outputs", yrs::In::Array(ArrayPrelim::default())),
                ("execution_count", yrs::In::Any(Any::Null)),
                ("execution_state", yrs::In::Any(Any::from("idle"))),
            ],
        )
    });
    assert_eq!(guard.apply(update).refused, None);
    assert_eq!(server.cells().len(), 3);

    // Then writing into its outputs is the runtime's business.
    assert!(
        guard
            .apply(edit_on(&client, |nb| nb
                .append_stream("fresh", "stdout", "x")
                .unwrap()))
            .refused
            .is_some()
    );

    for values in [
        vec![("execution_count", yrs::In::Any(Any::from(3)))],
        vec![(
            "outputs",
            yrs::In::Array(ArrayPrelim::from([yrs::In::Map(MapPrelim::from([(
                "output_type",
                Any::from("stream"),
            )]))])),
        )],
        vec![(
            "execution_by",
            yrs::In::Any(Any::from(HashMap::from([(
                "name".to_owned(),
                Any::from("Alice"),
            )]))),
        )],
        vec![("tandem_stale", yrs::In::Any(Any::Bool(true)))],
        // A "moved" copy of a cell that the same update does not delete is a new cell.
        vec![("execution_count", yrs::In::Any(Any::from(1)))],
    ] {
        let (server, _, _) = setup();
        let mut guard = Guard::new(server.doc());
        let before = everything(&server);
        let client = replica(&server);
        let id = if values[0].0 == "execution_count" {
            "code"
        } else {
            "forged"
        };
        let outcome = guard.apply(edit_on(&client, |nb| insert_raw_cell(nb, id, values)));
        assert!(outcome.refused.is_some());
        assert_eq!(everything(&server), before);
        deliver(&outcome, &client);
        assert_eq!(everything(&client), before);
    }
}

#[test]
fn a_move_must_carry_the_originals_values() {
    // A move whose copy carries other outputs than the original had is a forgery.
    assert_refused(|nb| {
        nb.move_cell("code", 1).unwrap();
        let txn = nb.doc().transact();
        let cells = txn.get_array(CELLS).unwrap();
        let Some(Out::YMap(moved)) = cells.get(&txn, 1) else {
            panic!()
        };
        drop(txn);
        // Part of the same update: the test's client sends everything since its last sync.
        moved.insert(&mut nb.doc().transact_mut(), "execution_count", 99);
    });
}

#[test]
fn updates_with_missing_dependencies_are_not_kept() {
    let (server, _, _) = setup();
    let mut guard = Guard::new(server.doc());
    let client = replica(&server);
    let first = edit_on(&client, |nb| nb.edit_source("md", 0, 0, "a").unwrap());
    let second = edit_on(&client, |nb| nb.edit_source("md", 1, 0, "b").unwrap());
    let outcome = guard.apply(second);
    assert!(outcome.incomplete);
    assert!(outcome.changes.is_empty());
    assert!(
        server
            .doc()
            .transact()
            .store()
            .pending_update()
            .is_none_or(|p| p.update.is_empty())
    );
    // Nothing was kept: the first update alone does not bring the second back.
    assert!(!guard.apply(first).incomplete);
    assert_eq!(server.cells()[1].source, "a# title");
    // The client sends what the server lacks again (as after a sync step 1).
    let sv = server.doc().transact().state_vector();
    let rest = client.doc().transact().encode_state_as_update_v1(&sv);
    let outcome = guard.apply(Update::decode_v1(&rest).unwrap());
    assert!(!outcome.incomplete && outcome.refused.is_none());
    assert_eq!(server.cells()[1].source, "ab# title");
}

#[test]
fn changes_outside_the_guard_are_not_checked() {
    let (server, code, _) = setup();
    let _guard = Guard::new(server.doc());
    // The runtime's and the server's own writes.
    server.append_stream(&code, "stdout", "more\n").unwrap();
    server.set_execution_count(&code, Some(2)).unwrap();
    let mut txn = server.doc().transact_mut();
    server.state().insert(&mut txn, schema::STATE_TITLE, "New");
    drop(txn);
    assert_eq!(server.cells()[0].execution_count, Some(2));
    assert_eq!(server.state_value(schema::STATE_TITLE), Some(json!("New")));
}

#[test]
fn refused_content_is_collected() {
    let (server, _, _) = setup();
    let mut guard = Guard::new(server.doc());
    let client = replica(&server);
    let secret = "FORGED-".repeat(1000);
    let update = edit_on(&client, |nb| {
        nb.append_stream("code", "stdout", &secret).unwrap()
    });
    let outcome = guard.apply(update);
    assert!(outcome.refused.is_some());
    for change in &outcome.changes {
        assert!(!String::from_utf8_lossy(change).contains("FORGED-"));
    }
    let state = server
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let text = String::from_utf8_lossy(&state);
    assert!(
        !text.contains("FORGED-"),
        "the refused text is still stored"
    );
}
