//! Comments: threads anchored to a range that follows live edits, replies, resolution, every
//! role against every comments route, exports, restarts, deleted and moved cells, bad input.

use std::time::Instant;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;

use crate::support::{TestServer, WAIT};

const OWNER: &str = "owner@example.com";
const EDITOR: &str = "editor@example.com";
const COMMENTER: &str = "commenter@example.com";
const VIEWER: &str = "viewer@example.com";
const OUTSIDER: &str = "outsider@example.com";

/// The cell the tests comment on, and its source. `y = x + 1` is at 6..15.
const CELL: &str = "code";
const SOURCE: &str = "x = 1\ny = x + 1\n";

fn notebook_json() -> Value {
    json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"id": "intro", "cell_type": "markdown", "metadata": {}, "source": "# Intro"},
            {"id": CELL, "cell_type": "code", "metadata": {}, "source": SOURCE,
             "outputs": [], "execution_count": null},
        ],
    })
}

/// A server, the owner's notebook shared with an editor, a commenter and a viewer, and a
/// client for each of them and for an outsider.
struct Fixture {
    server: TestServer,
    notebook: String,
    owner: Client,
    editor: Client,
    commenter: Client,
    viewer: Client,
    outsider: Client,
}

impl Fixture {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let owner = server.client(OWNER).await;
        let notebook = owner
            .create_notebook("Commented", Some(notebook_json()))
            .await
            .unwrap()
            .id;
        share(&owner, &notebook, "restricted", "viewer").await;
        Fixture {
            editor: server.client(EDITOR).await,
            commenter: server.client(COMMENTER).await,
            viewer: server.client(VIEWER).await,
            outsider: server.client(OUTSIDER).await,
            server,
            notebook,
            owner,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("api/notebooks/{}/comments{rest}", self.notebook)
    }

    /// Opens a thread as `client` on `range` of the cell.
    async fn open(&self, client: &Client, range: Option<(u32, u32)>, text: &str) -> Value {
        let mut body = json!({"cell_id": CELL, "text": text});
        if let Some((from, to)) = range {
            body["from"] = json!(from);
            body["to"] = json!(to);
        }
        client
            .send_json(Method::POST, &self.path(""), Some(body))
            .await
            .unwrap()
    }

    async fn reply(&self, client: &Client, thread: &str, text: &str) -> Value {
        client
            .send_json(
                Method::POST,
                &self.path(&format!("/{thread}/replies")),
                Some(json!({"text": text})),
            )
            .await
            .unwrap()
    }

    async fn list(&self, client: &Client) -> Vec<Value> {
        let list = client
            .send_json(Method::GET, &self.path(""), None)
            .await
            .unwrap();
        list.as_array().unwrap().clone()
    }

    /// Lists threads as the owner until `done` holds for the thread `id` (the room applies
    /// edits from live connections asynchronously).
    async fn wait_for_thread(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let threads = self.list(&self.owner).await;
            let thread = threads.iter().find(|t| t["id"] == id).unwrap().clone();
            if done(&thread) {
                return thread;
            }
            assert!(
                Instant::now() < deadline,
                "thread never got there: {thread}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

async fn share(owner: &Client, notebook: &str, general_access: &str, link_role: &str) {
    owner
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{notebook}/sharing"),
            Some(json!({
                "general_access": general_access,
                "link_role": link_role,
                "grants": [
                    {"email": EDITOR, "role": "editor"},
                    {"email": COMMENTER, "role": "commenter"},
                    {"email": VIEWER, "role": "viewer"},
                ],
            })),
        )
        .await
        .unwrap();
}

/// The status of a request (200 for any success but 201 and 204).
async fn status(client: &Client, method: Method, path: &str, body: Option<Value>) -> u16 {
    match client.send_json(method.clone(), path, body).await {
        Ok(_) => match method {
            Method::POST => 201,
            Method::DELETE => 204,
            _ => 200,
        },
        Err(err) => err.status().unwrap(),
    }
}

/// The error code of a request that must fail with `want`.
async fn error_code(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
    want: u16,
) -> String {
    let err = client
        .send_json(method, path, body)
        .await
        .expect_err("the request should fail");
    assert_eq!(err.status(), Some(want), "{err}");
    err.code().unwrap().to_owned()
}

/// A request without credentials: its status and body.
async fn anonymous(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/{path}", server.http_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn edit(conn: &DocConnection, index: u32, delete: u32, insert: &str) {
    Notebook::from_doc(conn.doc().clone())
        .edit_source(CELL, index, delete, insert)
        .unwrap();
}

#[tokio::test]
async fn a_range_follows_concurrent_edits() {
    let f = Fixture::new().await;
    let thread = f.open(&f.commenter, Some((6, 15)), "why + 1?").await;
    assert_eq!(thread["cell_id"], CELL);
    assert_eq!(
        (thread["from"].clone(), thread["to"].clone()),
        (json!(6), json!(15))
    );
    assert_eq!(thread["quote"], "y = x + 1");
    assert_eq!(thread["original_quote"], "y = x + 1");
    assert_eq!(thread["orphaned"], false);
    assert_eq!(thread["resolved"], false);
    // Below editor, authors show by name only.
    assert!(thread["author"].get("email").is_none(), "{thread}");
    assert_eq!(thread["author"]["name"], "Test");
    assert_eq!(thread["comments"][0]["text"], "why + 1?");
    assert!(thread["comments"][0]["author"].get("email").is_none());
    assert_eq!(thread["comments"].as_array().unwrap().len(), 1);
    let id = thread["id"].as_str().unwrap().to_owned();

    // Two people edit at once, neither seeing the other's change first: the editor types a
    // line above the range (with a character that is two UTF-16 units), the owner types
    // after it. Neither edge grows the range.
    let editor = f.server.connect(&f.editor, &f.notebook).await;
    let owner = f.server.connect(&f.owner, &f.notebook).await;
    edit(&editor, 0, 0, "# 😀 note\n");
    edit(&owner, 15, 0, " # two");
    for conn in [&editor, &owner] {
        conn.wait_until(
            |doc| {
                let cells = Notebook::from_doc(doc.clone()).cells();
                cells[1].source == "# 😀 note\nx = 1\ny = x + 1 # two\n"
            },
            WAIT,
        )
        .await
        .unwrap();
    }
    // "# 😀 note\n" is 9 characters and 10 UTF-16 code units.
    let moved = f.wait_for_thread(&id, |t| t["from"] == 16).await;
    assert_eq!(
        (moved["from"].clone(), moved["to"].clone()),
        (json!(16), json!(25))
    );
    assert_eq!(moved["quote"], "y = x + 1", "the quoted text is unchanged");

    // Typing inside the range grows it.
    edit(&editor, 19, 0, "2 * ");
    let grown = f.wait_for_thread(&id, |t| t["to"] == 29).await;
    assert_eq!(grown["quote"], "y = 2 * x + 1");
    assert_eq!(grown["original_quote"], "y = x + 1");
    assert_eq!(f.list(&f.editor).await, vec![grown.clone()]);
    // A viewer sees the same thread, its authors without their emails.
    let mut names_only = grown;
    names_only["author"]
        .as_object_mut()
        .unwrap()
        .remove("email");
    for comment in names_only["comments"].as_array_mut().unwrap() {
        comment["author"].as_object_mut().unwrap().remove("email");
    }
    assert_eq!(f.list(&f.viewer).await, vec![names_only]);
}

#[tokio::test]
async fn replies_resolution_and_deletion() {
    let f = Fixture::new().await;
    let thread = f.open(&f.commenter, None, "what does this cell do?").await;
    assert!(thread["from"].is_null() && thread["quote"].is_null());
    assert!(thread["original_quote"].is_null());
    let id = thread["id"].as_str().unwrap().to_owned();

    let reply = f.reply(&f.editor, &id, "it adds one").await;
    assert_eq!(reply["text"], "it adds one");
    assert_eq!(reply["author"]["email"], EDITOR);
    let own = f.reply(&f.commenter, &id, "thanks").await;
    let one = f
        .commenter
        .send_json(Method::GET, &f.path(&format!("/{id}")), None)
        .await
        .unwrap();
    let texts: Vec<&str> = one["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["what does this cell do?", "it adds one", "thanks"]);

    // Resolve and reopen: any commenter may.
    let resolved = f
        .commenter
        .send_json(
            Method::PATCH,
            &f.path(&format!("/{id}")),
            Some(json!({"resolved": true})),
        )
        .await
        .unwrap();
    assert_eq!(resolved["resolved"], true);
    assert_eq!(resolved["resolved_by"]["name"], "Test");
    assert!(resolved["resolved_by"].get("email").is_none(), "{resolved}");
    assert!(resolved["comments"][1]["author"].get("email").is_none());
    assert!(resolved["resolved_at"].is_string());
    // Resolving again keeps the first resolver.
    let again = f
        .editor
        .send_json(
            Method::PATCH,
            &f.path(&format!("/{id}")),
            Some(json!({"resolved": true})),
        )
        .await
        .unwrap();
    assert_eq!(again["resolved_by"]["email"], COMMENTER);
    assert_eq!(f.list(&f.viewer).await[0]["resolved"], true);
    let reopened = f
        .editor
        .send_json(
            Method::PATCH,
            &f.path(&format!("/{id}")),
            Some(json!({"resolved": false})),
        )
        .await
        .unwrap();
    assert_eq!(reopened["resolved"], false);
    assert!(reopened.get("resolved_by").is_none());

    // A commenter deletes their own reply, not someone else's; an editor deletes any.
    let editors_reply = format!("/{id}/replies/{}", reply["id"].as_str().unwrap());
    let own_reply = format!("/{id}/replies/{}", own["id"].as_str().unwrap());
    let opening = format!(
        "/{id}/replies/{}",
        thread["comments"][0]["id"].as_str().unwrap()
    );
    assert_eq!(
        status(&f.commenter, Method::DELETE, &f.path(&editors_reply), None).await,
        403
    );
    assert_eq!(
        status(&f.commenter, Method::DELETE, &f.path(&own_reply), None).await,
        204
    );
    assert_eq!(
        error_code(&f.owner, Method::DELETE, &f.path(&opening), None, 400).await,
        "opening_comment"
    );
    assert_eq!(
        status(&f.editor, Method::DELETE, &f.path(&editors_reply), None).await,
        204
    );
    assert_eq!(
        error_code(&f.editor, Method::DELETE, &f.path(&own_reply), None, 404).await,
        "unknown_comment"
    );
    assert_eq!(
        f.list(&f.owner).await[0]["comments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The thread's author deletes it, with its replies.
    f.reply(&f.owner, &id, "one more").await;
    assert_eq!(
        status(
            &f.commenter,
            Method::DELETE,
            &f.path(&format!("/{id}")),
            None
        )
        .await,
        204
    );
    assert!(f.list(&f.owner).await.is_empty());
}

/// What one caller gets from each comments route, in the order of [`ROUTES`].
type Row = [u16; 7];

/// The routes, in order: list, open, get one, resolve, reply, delete someone else's reply,
/// delete someone else's thread.
const ROUTES: [&str; 7] = [
    "GET list",
    "POST open",
    "GET one",
    "PATCH resolve",
    "POST reply",
    "DELETE other's reply",
    "DELETE other's thread",
];

#[tokio::test]
async fn every_comment_change_bumps_the_documents_comments_rev() {
    let fx = Fixture::new().await;
    // A viewer's open page: it cannot edit, but it sees the revision change.
    let conn = fx.server.connect(&fx.viewer, &fx.notebook).await;
    let rev = |conn: &DocConnection| {
        Notebook::from_doc(conn.doc().clone()).state_value(tandem_crdt::schema::STATE_COMMENTS_REV)
    };
    let mut last = rev(&conn);
    assert_eq!(last, None, "no comment yet");
    async fn changed(conn: &DocConnection, last: &mut Option<Value>) {
        let before = last.clone();
        conn.wait_until(
            |doc| {
                Notebook::from_doc(doc.clone()).state_value(tandem_crdt::schema::STATE_COMMENTS_REV)
                    != before
            },
            WAIT,
        )
        .await
        .unwrap();
        *last = Notebook::from_doc(conn.doc().clone())
            .state_value(tandem_crdt::schema::STATE_COMMENTS_REV);
    }
    let thread = fx.open(&fx.commenter, Some((6, 15)), "why +1?").await;
    let id = thread["id"].as_str().unwrap().to_owned();
    changed(&conn, &mut last).await;
    let reply = fx.reply(&fx.owner, &id, "off by one").await;
    changed(&conn, &mut last).await;
    fx.owner
        .send_json(
            Method::PATCH,
            &fx.path(&format!("/{id}")),
            Some(json!({"resolved": true})),
        )
        .await
        .unwrap();
    changed(&conn, &mut last).await;
    let reply_id = reply["id"].as_str().unwrap();
    fx.owner
        .send_json(
            Method::DELETE,
            &fx.path(&format!("/{id}/replies/{reply_id}")),
            None,
        )
        .await
        .unwrap();
    changed(&conn, &mut last).await;
    fx.commenter
        .send_json(Method::DELETE, &fx.path(&format!("/{id}")), None)
        .await
        .unwrap();
    changed(&conn, &mut last).await;
    // The revision is not part of the notebook file.
    let export = fx.owner.export_ipynb(&fx.notebook).await.unwrap();
    assert!(!export.to_string().contains("comments_rev"));
}

#[tokio::test]
async fn every_role_on_every_route() {
    let f = Fixture::new().await;
    // A second notebook that anyone with the link may comment on: without signing in, they
    // still only read.
    let link_notebook = f
        .owner
        .create_notebook("Link", Some(notebook_json()))
        .await
        .unwrap()
        .id;
    share(&f.owner, &link_notebook, "anyone_with_link", "commenter").await;

    let table: [(&str, Option<&Client>, &str, Row); 7] = [
        (
            "owner",
            Some(&f.owner),
            &f.notebook,
            [200, 201, 200, 200, 201, 204, 204],
        ),
        (
            "editor",
            Some(&f.editor),
            &f.notebook,
            [200, 201, 200, 200, 201, 204, 204],
        ),
        (
            "commenter",
            Some(&f.commenter),
            &f.notebook,
            [200, 201, 200, 200, 201, 403, 403],
        ),
        (
            "viewer",
            Some(&f.viewer),
            &f.notebook,
            [200, 403, 200, 403, 403, 403, 403],
        ),
        ("outsider", Some(&f.outsider), &f.notebook, [404; 7]),
        (
            "anonymous, link",
            None,
            &link_notebook,
            [200, 401, 200, 401, 401, 401, 401],
        ),
        ("anonymous, no link", None, &f.notebook, [401; 7]),
    ];
    for (who, client, notebook, want) in table {
        // A fresh thread with a reply, both the owner's, for each row to act on.
        let base = format!("api/notebooks/{notebook}/comments");
        let thread = f
            .owner
            .send_json(
                Method::POST,
                &base,
                Some(json!({"cell_id": CELL, "text": "owner's", "from": 0, "to": 1})),
            )
            .await
            .unwrap();
        let thread_path = format!("{base}/{}", thread["id"].as_str().unwrap());
        let reply = f
            .owner
            .send_json(
                Method::POST,
                &format!("{thread_path}/replies"),
                Some(json!({"text": "owner's reply"})),
            )
            .await
            .unwrap();
        let requests: [(Method, String, Option<Value>); 7] = [
            (Method::GET, base.clone(), None),
            (
                Method::POST,
                base.clone(),
                Some(json!({"cell_id": CELL, "text": "mine"})),
            ),
            (Method::GET, thread_path.clone(), None),
            (
                Method::PATCH,
                thread_path.clone(),
                Some(json!({"resolved": true})),
            ),
            (
                Method::POST,
                format!("{thread_path}/replies"),
                Some(json!({"text": "a reply"})),
            ),
            (
                Method::DELETE,
                format!("{thread_path}/replies/{}", reply["id"].as_str().unwrap()),
                None,
            ),
            (Method::DELETE, thread_path.clone(), None),
        ];
        let mut got = [0u16; 7];
        for (i, (method, path, body)) in requests.into_iter().enumerate() {
            got[i] = match client {
                Some(client) => status(client, method, &path, body).await,
                None => anonymous(&f.server, method, &path, body).await.0,
            };
        }
        for (route, (got, want)) in ROUTES.iter().zip(got.iter().zip(want)) {
            assert_eq!(*got, want, "{who}: {route}");
        }
    }

    // Editors and the owner see authors' emails; viewers and commenters see names only.
    f.open(&f.commenter, None, "who am I?").await;
    let emails = |threads: Vec<Value>| -> Vec<Value> {
        threads
            .iter()
            .map(|t| t["author"]["email"].clone())
            .collect()
    };
    let seen = emails(f.list(&f.editor).await);
    assert!(seen.contains(&json!(COMMENTER)), "{seen:?}");
    assert!(seen.iter().all(Value::is_string), "{seen:?}");
    for client in [&f.viewer, &f.commenter] {
        let seen = emails(f.list(client).await);
        assert!(
            !seen.is_empty() && seen.iter().all(Value::is_null),
            "{seen:?}"
        );
    }
    // Anonymous readers see names, not email addresses.
    let (_, threads) = anonymous(
        &f.server,
        Method::GET,
        &format!("api/notebooks/{link_notebook}/comments"),
        None,
    )
    .await;
    let first = &threads[0];
    assert_eq!(first["author"]["name"], "Test");
    assert!(first["author"].get("email").is_none(), "{first}");
    assert!(first["comments"][0]["author"].get("email").is_none());
    // A commenter's own reply and thread are theirs to delete.
    let own = f.open(&f.commenter, None, "mine").await;
    let own_id = own["id"].as_str().unwrap();
    let own_reply = f.reply(&f.commenter, own_id, "my reply").await;
    let reply_path = f.path(&format!(
        "/{own_id}/replies/{}",
        own_reply["id"].as_str().unwrap()
    ));
    assert_eq!(
        status(&f.commenter, Method::DELETE, &reply_path, None).await,
        204
    );
    let thread_path = f.path(&format!("/{own_id}"));
    assert_eq!(
        status(&f.commenter, Method::DELETE, &thread_path, None).await,
        204
    );
}

#[tokio::test]
async fn a_commenter_still_cannot_edit_the_document() {
    let f = Fixture::new().await;
    f.open(&f.commenter, Some((0, 5)), "fine to comment").await;
    let conn = f.server.connect(&f.commenter, &f.notebook).await;
    edit(&conn, 0, 0, "# sneaky\n");
    conn.wait_permission_denied(WAIT).await.unwrap();
    let ipynb = f.owner.export_ipynb(&f.notebook).await.unwrap();
    assert_eq!(ipynb["cells"][1]["source"], SOURCE);
}

#[tokio::test]
async fn exports_carry_comments_only_when_asked() {
    let f = Fixture::new().await;
    let thread = f.open(&f.commenter, Some((0, 5)), "secret remark").await;
    f.reply(&f.editor, thread["id"].as_str().unwrap(), "secret answer")
        .await;

    let plain = f.viewer.export_ipynb(&f.notebook).await.unwrap();
    let text = plain.to_string();
    assert!(!text.contains("secret"), "{text}");
    assert!(plain["metadata"].get("tandem").is_none());
    let explicit = f
        .viewer
        .send_json(
            Method::GET,
            &format!("api/notebooks/{}/ipynb?comments=false", f.notebook),
            None,
        )
        .await
        .unwrap();
    assert_eq!(explicit, plain);

    let with = f
        .viewer
        .send_json(
            Method::GET,
            &format!("api/notebooks/{}/ipynb?comments=true", f.notebook),
            None,
        )
        .await
        .unwrap();
    let comments = &with["metadata"]["tandem"]["comments"];
    assert_eq!(comments.as_array().unwrap().len(), 1);
    assert_eq!(comments[0]["quote"], "x = 1");
    assert_eq!(comments[0]["comments"][1]["text"], "secret answer");
    // A viewer's export names the authors without their emails.
    assert!(comments[0]["author"].get("email").is_none(), "{comments}");
    assert!(comments[0]["author"]["name"].is_string());
    assert_eq!(with["cells"], plain["cells"]);

    // Importing that export again does not turn the threads into ordinary metadata that
    // every later export would carry.
    let copy = f
        .owner
        .create_notebook("copy", Some(with.clone()))
        .await
        .unwrap();
    let reexported = f.owner.export_ipynb(&copy.id).await.unwrap();
    assert!(!reexported.to_string().contains("secret"), "{reexported}");

    assert_eq!(
        error_code(
            &f.viewer,
            Method::GET,
            &format!("api/notebooks/{}/ipynb?comments=yes", f.notebook),
            None,
            400,
        )
        .await,
        "invalid_query"
    );
}

#[tokio::test]
async fn comments_survive_a_restart_and_keep_following_edits() {
    let mut f = Fixture::new().await;
    let thread = f.open(&f.commenter, Some((6, 15)), "persist me").await;
    let id = thread["id"].as_str().unwrap().to_owned();
    f.reply(&f.editor, &id, "persisted").await;
    f.commenter
        .send_json(
            Method::PATCH,
            &f.path(&format!("/{id}")),
            Some(json!({"resolved": true})),
        )
        .await
        .unwrap();
    let before = f.list(&f.owner).await;

    f.server = f.server.restart(|_| {}).await;
    let url = f.server.http_url();
    for client in [&mut f.owner, &mut f.editor] {
        *client = Client::new(&url, client.token()).unwrap();
    }
    assert_eq!(f.list(&f.owner).await, before);

    // The anchor still follows the text in the document loaded from the store.
    let editor = f.server.connect(&f.editor, &f.notebook).await;
    edit(&editor, 0, 0, "import os\n");
    let moved = f.wait_for_thread(&id, |t| t["from"] == 16).await;
    assert_eq!(moved["to"], 25);
    assert_eq!(moved["quote"], "y = x + 1");
}

#[tokio::test]
async fn deleted_cells_orphan_threads_and_moved_ones_keep_them() {
    let f = Fixture::new().await;
    let ranged = f.open(&f.commenter, Some((6, 15)), "on a range").await;
    let whole = f.open(&f.commenter, None, "on the cell").await;
    let (ranged, whole) = (
        ranged["id"].as_str().unwrap().to_owned(),
        whole["id"].as_str().unwrap().to_owned(),
    );
    let editor = f.server.connect(&f.editor, &f.notebook).await;

    // Moving a cell re-creates its source; the range is found again by its quote, anchored
    // afresh, and follows edits from then on (typed inside it, where its quote would no
    // longer be found).
    Notebook::from_doc(editor.doc().clone())
        .move_cell(CELL, 0)
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while f.owner.export_ipynb(&f.notebook).await.unwrap()["cells"][0]["id"] != CELL {
        assert!(
            Instant::now() < deadline,
            "the move never reached the server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let found = f.wait_for_thread(&ranged, |t| t["from"] == 6).await;
    assert_eq!(found["quote"], "y = x + 1");
    edit(&editor, 10, 0, "2 * ");
    edit(&editor, 0, 0, "# moved\n");
    let followed = f.wait_for_thread(&ranged, |t| t["from"] == 14).await;
    assert_eq!(followed["to"], 27);
    assert_eq!(followed["quote"], "y = 2 * x + 1");
    assert_eq!(followed["orphaned"], false);

    Notebook::from_doc(editor.doc().clone())
        .delete_cell(CELL)
        .unwrap();
    for id in [&ranged, &whole] {
        let orphan = f.wait_for_thread(id, |t| t["orphaned"] == true).await;
        assert!(orphan["from"].is_null() && orphan["to"].is_null());
        assert!(orphan["quote"].is_null());
    }
    // An orphaned thread can still be replied to, resolved and deleted.
    f.reply(&f.commenter, &ranged, "the cell is gone").await;
    assert_eq!(
        status(
            &f.commenter,
            Method::PATCH,
            &f.path(&format!("/{ranged}")),
            Some(json!({"resolved": true}))
        )
        .await,
        200
    );
    // New threads need a cell that exists.
    assert_eq!(
        error_code(
            &f.commenter,
            Method::POST,
            &f.path(""),
            Some(json!({"cell_id": CELL, "text": "hello?"})),
            404,
        )
        .await,
        "unknown_cell"
    );
}

#[tokio::test]
async fn bad_input_gets_precise_errors() {
    let f = Fixture::new().await;
    let c = &f.commenter;
    let path = f.path("");
    let post = |body: Value| {
        let path = path.clone();
        async move {
            let err = c
                .send_json(Method::POST, &path, Some(body))
                .await
                .expect_err("refused");
            (err.status().unwrap(), err.code().unwrap().to_owned())
        }
    };
    let long = "x".repeat(10_001);
    for (body, want) in [
        (
            json!({"cell_id": "nope", "text": "t"}),
            (404, "unknown_cell"),
        ),
        (
            json!({"cell_id": CELL, "text": "t", "from": 5, "to": 2}),
            (400, "invalid_range"),
        ),
        (
            json!({"cell_id": CELL, "text": "t", "from": 0, "to": 17}),
            (400, "invalid_range"),
        ),
        (
            json!({"cell_id": CELL, "text": "t", "from": 0}),
            (400, "invalid_range"),
        ),
        (
            json!({"cell_id": CELL, "text": "t", "to": 3}),
            (400, "invalid_range"),
        ),
        (json!({"cell_id": CELL, "text": ""}), (400, "invalid_text")),
        (
            json!({"cell_id": CELL, "text": " \n\t"}),
            (400, "invalid_text"),
        ),
        (
            json!({"cell_id": CELL, "text": long}),
            (400, "invalid_text"),
        ),
        (
            json!({"cell_id": CELL, "text": "t", "from": -1, "to": 2}),
            (400, "invalid_json"),
        ),
        (json!({"text": "t"}), (400, "invalid_json")),
    ] {
        let (status, code) = post(body.clone()).await;
        assert_eq!((status, code.as_str()), want, "{body}");
    }
    // The longest text allowed, and a range at the very end of the source, are fine.
    let ok = f.open(c, Some((16, 16)), &"x".repeat(10_000)).await;
    assert_eq!(ok["quote"], "");

    // A range may not split a character that takes two UTF-16 code units.
    let conn = f.server.connect(&f.editor, &f.notebook).await;
    edit(&conn, 0, 0, "😀");
    let deadline = Instant::now() + WAIT;
    loop {
        let ipynb = f.owner.export_ipynb(&f.notebook).await.unwrap();
        if ipynb["cells"][1]["source"]
            .as_str()
            .unwrap()
            .starts_with('😀')
        {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, code) = post(json!({"cell_id": CELL, "text": "t", "from": 1, "to": 3})).await;
    assert_eq!((status, code.as_str()), (400, "invalid_range"));
    let emoji = f.open(c, Some((0, 2)), "an emoji").await;
    assert_eq!(emoji["quote"], "😀");

    // Unknown threads and comments, including those of another notebook.
    let other = f.owner.create_notebook("Other", None).await.unwrap().id;
    let other_cell = f.owner.export_ipynb(&other).await.unwrap()["cells"][0]["id"].clone();
    let foreign = f
        .owner
        .send_json(
            Method::POST,
            &format!("api/notebooks/{other}/comments"),
            Some(json!({"cell_id": other_cell, "text": "elsewhere"})),
        )
        .await
        .unwrap();
    let thread = ok["id"].as_str().unwrap();
    for missing in ["nope", foreign["id"].as_str().unwrap()] {
        let path = f.path(&format!("/{missing}"));
        for (method, path, body) in [
            (Method::GET, path.clone(), None),
            (Method::PATCH, path.clone(), Some(json!({"resolved": true}))),
            (Method::DELETE, path.clone(), None),
            (
                Method::POST,
                format!("{path}/replies"),
                Some(json!({"text": "hi"})),
            ),
            (Method::DELETE, format!("{path}/replies/nope"), None),
        ] {
            assert_eq!(
                error_code(c, method.clone(), &path, body, 404).await,
                "unknown_comment",
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        error_code(
            c,
            Method::DELETE,
            &f.path(&format!("/{thread}/replies/nope")),
            None,
            404
        )
        .await,
        "unknown_comment"
    );
    assert_eq!(
        error_code(
            c,
            Method::PATCH,
            &f.path(&format!("/{thread}")),
            Some(json!({"resolved": "yes"})),
            400
        )
        .await,
        "invalid_json"
    );
    assert_eq!(
        error_code(
            c,
            Method::POST,
            &f.path(&format!("/{thread}/replies")),
            Some(json!({"text": ""})),
            400
        )
        .await,
        "invalid_text"
    );
    assert_eq!(
        error_code(c, Method::GET, "api/notebooks/nope/comments", None, 404).await,
        "not_found"
    );
}
