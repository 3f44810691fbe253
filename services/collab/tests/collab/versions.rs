//! Version history: automatic versions crediting everyone who edited, named versions, viewing
//! and comparing them, restoring one while other clients stay connected (and undoing it), and
//! who may do what.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::{Cell, NewCell, Notebook};

use crate::support::{TestServer, WAIT};

const OWNER: &str = "owner@example.com";
const EDITOR: &str = "editor@example.com";
const VIEWER: &str = "viewer@example.com";
const OUTSIDER: &str = "outsider@example.com";

fn notebook_json() -> Value {
    json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            {"id": "intro", "cell_type": "markdown", "metadata": {}, "source": "# Intro"},
            {"id": "calc", "cell_type": "code", "metadata": {}, "source": "x = 1\nprint(x)",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
             "execution_count": 1},
            {"id": "end", "cell_type": "code", "metadata": {}, "source": "done = True",
             "outputs": [], "execution_count": null},
        ],
    })
}

/// A server (automatic versions after `interval`), the owner's notebook shared with an editor
/// and a viewer, and a client for each of them and for an outsider.
struct Fixture {
    server: TestServer,
    notebook: String,
    owner: Client,
    editor: Client,
    viewer: Client,
    outsider: Client,
}

impl Fixture {
    async fn new(interval: Duration) -> Self {
        let server = TestServer::start_with(|config| config.versions.interval = interval).await;
        let owner = server.client(OWNER).await;
        let notebook = owner
            .create_notebook("History", Some(notebook_json()))
            .await
            .unwrap()
            .id;
        owner
            .send_json(
                Method::PUT,
                &format!("api/notebooks/{notebook}/sharing"),
                Some(json!({
                    "general_access": "restricted", "link_role": "viewer",
                    "grants": [{"email": EDITOR, "role": "editor"}, {"email": VIEWER, "role": "viewer"}],
                })),
            )
            .await
            .unwrap();
        Fixture {
            editor: server.client(EDITOR).await,
            viewer: server.client(VIEWER).await,
            outsider: server.client(OUTSIDER).await,
            server,
            notebook,
            owner,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("api/notebooks/{}/versions{rest}", self.notebook)
    }

    async fn versions(&self, client: &Client) -> Vec<Value> {
        let list = client
            .send_json(Method::GET, &self.path(""), None)
            .await
            .unwrap();
        list.as_array().unwrap().clone()
    }

    async fn name(&self, client: &Client, name: &str) -> Value {
        client
            .send_json(Method::POST, &self.path(""), Some(json!({"name": name})))
            .await
            .unwrap()
    }

    async fn restore(&self, client: &Client, version: &str) -> Value {
        client
            .send_json(
                Method::POST,
                &self.path(&format!("/{version}/restore")),
                None,
            )
            .await
            .unwrap()
    }

    async fn connect(&self, client: &Client) -> DocConnection {
        self.server.connect(client, &self.notebook).await
    }
}

fn notebook(conn: &DocConnection) -> Notebook {
    Notebook::from_doc(conn.doc().clone())
}

/// The cells as a version holds them (the run state is not part of a version's content).
fn content(cells: Vec<Cell>) -> Vec<Cell> {
    cells
        .into_iter()
        .map(|mut c| {
            c.execution_state = None;
            c
        })
        .collect()
}

/// The cells of an `.ipynb` as a notebook reads them.
fn cells_of(ipynb: &Value) -> Vec<Cell> {
    let limits = tandem_crdt::ImportLimits::default();
    content(Notebook::from_ipynb(ipynb, &limits).unwrap().cells())
}

async fn user_id(client: &Client) -> String {
    client.me().await.unwrap().id
}

/// Waits until `conn`'s cells equal `want` (run states aside).
async fn wait_for_cells(conn: &DocConnection, want: &[Cell]) {
    let want = want.to_vec();
    let result = conn
        .wait_until(
            move |doc| content(Notebook::from_doc(doc.clone()).cells()) == want,
            WAIT,
        )
        .await;
    if let Err(err) = result {
        panic!(
            "cells never matched ({err}); they are {:#?}",
            notebook(conn).cells()
        );
    }
}

fn error_code(err: tandem_client::ApiError) -> (Option<u16>, String) {
    (err.status(), err.code().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn automatic_versions_credit_everyone_who_edited() {
    let f = Fixture::new(Duration::from_millis(300)).await;
    let (owner_id, editor_id) = (user_id(&f.owner).await, user_id(&f.editor).await);
    let owner = f.connect(&f.owner).await;
    let editor = f.connect(&f.editor).await;
    notebook(&owner)
        .edit_source("intro", 7, 0, " by the owner")
        .unwrap();
    notebook(&editor)
        .insert_cell(3, NewCell::code("y = 2").with_id("added"))
        .unwrap();

    let deadline = tokio::time::Instant::now() + WAIT;
    let auto = loop {
        let versions = f.versions(&f.owner).await;
        let found = versions.iter().find(|v| {
            let authors: Vec<&str> = v["authors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap())
                .collect();
            v["kind"] == "auto"
                && authors.contains(&owner_id.as_str())
                && authors.contains(&editor_id.as_str())
        });
        if let Some(version) = found {
            break version.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic version credits both editors: {versions:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(auto["name"], Value::Null);
    let names: Vec<&str> = auto["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Test", "Test"]);
    // The version holds both edits.
    let id = auto["id"].as_str().unwrap();
    let ipynb = f
        .owner
        .send_json(Method::GET, &f.path(&format!("/{id}")), None)
        .await
        .unwrap();
    assert_eq!(ipynb["cells"][0]["source"], "# Intro by the owner");
    assert_eq!(ipynb["cells"][3]["id"], "added");

    // Nothing more changed: no further automatic version.
    let count = f.versions(&f.owner).await.len();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(f.versions(&f.owner).await.len(), count);
}

#[tokio::test]
async fn a_room_that_unloads_saves_what_changed() {
    let server = TestServer::start_with(|config| {
        config.versions.interval = Duration::from_secs(3600);
        config.room_idle = Duration::from_millis(200);
    })
    .await;
    let owner = server.client(OWNER).await;
    let id = owner
        .create_notebook("Unload", Some(notebook_json()))
        .await
        .unwrap()
        .id;
    let conn = server.connect(&owner, &id).await;
    notebook(&conn)
        .edit_source("end", 0, 0, "# last words\n")
        .unwrap();
    // The edit is durable once an export shows it; then leave and let the room unload.
    let deadline = tokio::time::Instant::now() + WAIT;
    while owner.export_ipynb(&id).await.unwrap()["cells"][2]["source"]
        != "# last words\ndone = True"
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.close().await;
    let path = format!("api/notebooks/{id}/versions");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = owner.send_json(Method::GET, &path, None).await.unwrap();
        if let Some(version) = list.as_array().unwrap().first() {
            assert_eq!(version["kind"], "auto");
            assert_eq!(version["authors"][0]["id"], user_id(&owner).await);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no version at unload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn named_versions_can_be_viewed_and_compared() {
    let f = Fixture::new(Duration::from_secs(3600)).await;
    let first = f.name(&f.owner, "  First draft ").await;
    assert_eq!(first["name"], "First draft");
    assert_eq!(first["kind"], "named");
    let first_id = first["id"].as_str().unwrap().to_owned();

    let conn = f.connect(&f.editor).await;
    let nb = notebook(&conn);
    nb.edit_source("calc", 4, 1, "2").unwrap();
    nb.delete_cell("intro").unwrap();
    nb.insert_cell(1, NewCell::markdown("notes").with_id("notes"))
        .unwrap();
    let live = content(nb.cells());
    // Named by the editor once the server has the edits (a read flushes them first).
    let deadline = tokio::time::Instant::now() + WAIT;
    while cells_of(&f.owner.export_ipynb(&f.notebook).await.unwrap()) != live {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = f.name(&f.editor, "Second").await;
    let editor_id = user_id(&f.editor).await;
    assert_eq!(
        second["authors"],
        json!([{"id": editor_id, "name": "Test"}])
    );
    let second_id = second["id"].as_str().unwrap().to_owned();

    let list = f.versions(&f.viewer).await;
    let ids: Vec<&str> = list.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second_id.as_str(), first_id.as_str()], "newest first");

    // Viewing a version gives the notebook as it was.
    let old = f
        .viewer
        .send_json(Method::GET, &f.path(&format!("/{first_id}")), None)
        .await
        .unwrap();
    assert_eq!(old["nbformat"], 4);
    assert_eq!(old["metadata"]["kernelspec"]["name"], "python3");
    assert_eq!(cells_of(&old), cells_of(&notebook_json()));

    // Its diff against now: the changed cell with both sources, the removed and added ones.
    let diff = f
        .viewer
        .send_json(Method::GET, &f.path(&format!("/{first_id}/diff")), None)
        .await
        .unwrap();
    assert_eq!(diff["from"]["id"], first_id.as_str());
    assert_eq!(diff["to"], Value::Null);
    let changes: Vec<(&str, &str)> = diff["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["change"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            ("intro", "removed"),
            ("calc", "changed"),
            ("notes", "added"),
            ("end", "unchanged")
        ]
    );
    let calc = &diff["cells"][1];
    assert_eq!(calc["fields"], json!(["source"]));
    assert_eq!(calc["old_source"], "x = 1\nprint(x)");
    assert_eq!(calc["new_source"], "x = 2\nprint(x)");
    assert_eq!(diff["cells"][0]["new_source"], Value::Null);

    // Against another version.
    let against = f
        .viewer
        .send_json(
            Method::GET,
            &f.path(&format!("/{first_id}/diff?against={second_id}")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(against["to"]["id"], second_id.as_str());
    assert_eq!(against["cells"], diff["cells"]);
}

#[tokio::test]
async fn restore_reaches_connected_clients_as_an_edit_and_can_be_undone() {
    let f = Fixture::new(Duration::from_secs(3600)).await;
    let saved = f.name(&f.owner, "Good state").await;
    let saved_id = saved["id"].as_str().unwrap().to_owned();
    let saved_cells = cells_of(&notebook_json());

    // The editor stays connected throughout; the owner watches too.
    let editor = f.connect(&f.editor).await;
    let watcher = f.connect(&f.owner).await;
    let nb = notebook(&editor);
    nb.delete_cell("intro").unwrap();
    nb.edit_source("calc", 0, 5, "x = 100").unwrap();
    // (Outputs are the runtime's to clear: an editor's attempt would be refused.)
    nb.insert_cell(0, NewCell::raw("scratch").with_id("scratch"))
        .unwrap();
    nb.move_cell("end", 1).unwrap();
    let broken = content(nb.cells());
    wait_for_cells(&watcher, &broken).await;
    let mut updates = editor.subscribe_updates();

    let restored = f.restore(&f.editor, &saved_id).await;
    assert_eq!(restored["restored"]["id"], saved_id.as_str());
    assert!(restored["inserted"].as_u64().unwrap() > 0, "{restored}");
    let before = restored["before_restore"].clone();
    assert_eq!(before["kind"], "named");
    assert_eq!(before["name"], "Before restoring “Good state”");

    // The editor got the restore as an ordinary update and is still connected.
    tokio::time::timeout(WAIT, updates.recv())
        .await
        .expect("no update after the restore")
        .unwrap();
    wait_for_cells(&editor, &saved_cells).await;
    wait_for_cells(&watcher, &saved_cells).await;
    assert!(!editor.is_closed() && !watcher.is_closed());
    assert_eq!(
        cells_of(&f.owner.export_ipynb(&f.notebook).await.unwrap()),
        saved_cells
    );
    // The kernel's shared state and the title are not part of a version.
    assert_eq!(
        notebook(&editor).state_value(tandem_crdt::schema::STATE_TITLE),
        Some(json!("History"))
    );

    // The version made before the restore holds the replaced state; restoring it undoes.
    let before_id = before["id"].as_str().unwrap();
    let old = f
        .owner
        .send_json(Method::GET, &f.path(&format!("/{before_id}")), None)
        .await
        .unwrap();
    assert_eq!(cells_of(&old), broken);
    f.restore(&f.owner, before_id).await;
    wait_for_cells(&editor, &broken).await;
    wait_for_cells(&watcher, &broken).await;
    assert!(!editor.is_closed());
    // Restoring credits the person who restored in the next version.
    let next = f.name(&f.owner, "after undo").await;
    let ids: Vec<&str> = next["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [user_id(&f.owner).await]);
}

#[tokio::test]
async fn edits_made_during_a_restore_converge() {
    let f = Fixture::new(Duration::from_secs(3600)).await;
    let saved = f.name(&f.owner, "base").await;
    let saved_id = saved["id"].as_str().unwrap().to_owned();
    let typist = f.connect(&f.editor).await;
    let watcher = f.connect(&f.owner).await;
    notebook(&typist)
        .edit_source("end", 0, 11, "changed")
        .unwrap();
    wait_for_cells(&watcher, &content(notebook(&typist).cells())).await;

    // The typist keeps typing at the start of `calc` while the restore runs.
    let typing = {
        let nb = notebook(&typist);
        async move {
            for i in 0..20 {
                nb.edit_source("calc", 0, 0, &format!("#{i}\n")).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let (restored, ()) = tokio::join!(f.restore(&f.owner, &saved_id), typing);
    assert_eq!(restored["restored"]["id"], saved_id.as_str());

    // Everyone ends with the same cells: the restored ones, with the keystrokes the restore
    // did not see on top of them.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let server = cells_of(&f.owner.export_ipynb(&f.notebook).await.unwrap());
        let (a, b) = (
            content(notebook(&typist).cells()),
            content(notebook(&watcher).cells()),
        );
        if a == server && b == server {
            assert_eq!(server[2].source, "done = True", "the restored cell");
            assert!(
                server[1].source.ends_with("x = 1\nprint(x)"),
                "{:?}",
                server[1].source
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no convergence: {a:#?} {b:#?} {server:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn who_may_list_view_name_and_restore() {
    let f = Fixture::new(Duration::from_secs(3600)).await;
    let version = f.name(&f.owner, "v").await;
    let id = version["id"].as_str().unwrap();

    // Viewers read everything.
    assert_eq!(f.versions(&f.viewer).await.len(), 1);
    for rest in [format!("/{id}"), format!("/{id}/diff")] {
        f.viewer
            .send_json(Method::GET, &f.path(&rest), None)
            .await
            .unwrap();
    }
    // …but neither name nor restore.
    let err = f
        .viewer
        .send_json(Method::POST, &f.path(""), Some(json!({"name": "mine"})))
        .await
        .unwrap_err();
    assert_eq!(error_code(err), (Some(403), "forbidden".into()));
    let err = f
        .viewer
        .send_json(Method::POST, &f.path(&format!("/{id}/restore")), None)
        .await
        .unwrap_err();
    assert_eq!(error_code(err), (Some(403), "forbidden".into()));

    // Outsiders see nothing.
    for (method, rest) in [
        (Method::GET, String::new()),
        (Method::GET, format!("/{id}")),
        (Method::GET, format!("/{id}/diff")),
        (Method::POST, format!("/{id}/restore")),
    ] {
        let err = f
            .outsider
            .send_json(method, &f.path(&rest), None)
            .await
            .unwrap_err();
        assert_eq!(error_code(err), (Some(404), "not_found".into()), "{rest}");
    }

    // Unknown versions, and versions of another notebook.
    let other = f.owner.create_notebook("Other", None).await.unwrap().id;
    for rest in [
        "/nope".to_owned(),
        "/nope/diff".to_owned(),
        format!("/{id}/diff?against=nope"),
    ] {
        let err = f
            .viewer
            .send_json(Method::GET, &f.path(&rest), None)
            .await
            .unwrap_err();
        assert_eq!(
            error_code(err),
            (Some(404), "unknown_version".into()),
            "{rest}"
        );
    }
    let err = f
        .owner
        .send_json(
            Method::POST,
            &format!("api/notebooks/{other}/versions/{id}/restore"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(error_code(err), (Some(404), "unknown_version".into()));

    // Names must be present and short.
    for name in ["   ", &"n".repeat(201)] {
        let err = f
            .editor
            .send_json(Method::POST, &f.path(""), Some(json!({"name": name})))
            .await
            .unwrap_err();
        assert_eq!(error_code(err), (Some(400), "invalid_name".into()));
    }
    // Deleting the notebook takes its versions along.
    f.owner.delete_notebook(&f.notebook).await.unwrap();
    assert!(
        f.server
            .app
            .store
            .versions(&f.notebook)
            .await
            .unwrap()
            .is_empty()
    );
}
