//! Notebooks opened from git and committed back, against a real git server on loopback:
//! `git http-backend` behind a small CGI host that wants a token, over a bare repository.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::Client;
use tandem_crdt::Notebook;

use crate::git_support::*;
use crate::support::{TestServer, WAIT};

#[tokio::test]
async fn a_notebook_from_git_is_edited_live_and_committed_back() {
    let git = GitServer::start().await;
    let server = start().await;
    let owner = server.client(OWNER).await;
    let first = git.head();

    let id = import_analysis(&owner, &git).await;
    let exported = owner.export_ipynb(&id).await.unwrap();
    assert_eq!(exported["cells"], repo_notebook()["cells"]);
    assert_eq!(exported["metadata"], repo_notebook()["metadata"]);
    let origin = owner
        .send_json(Method::GET, &format!("api/notebooks/{id}/git"), None)
        .await
        .unwrap();
    assert_eq!(
        origin,
        json!({"url": git.url, "branch": "main", "path": "notebooks/analysis.ipynb", "base_commit": first})
    );

    // An edit through a live connection, as a browser makes it.
    let conn = server.connect(&owner, &id).await;
    let notebook = Notebook::from_doc(conn.doc().clone());
    notebook.edit_source("sum", 6, 5, "40 + 2").unwrap();
    wait_for_source(&owner, &id, 1, "print(40 + 2)").await;

    let done = commit(
        &owner,
        &id,
        json!({"message": "Use the answer", "token": TOKEN, "url": git.url}),
    )
    .await
    .unwrap();
    let sha = done["commit"].as_str().unwrap().to_owned();
    assert_eq!(done["changed"], true);
    assert_eq!(git.head(), sha, "the branch points at the new commit");
    assert_eq!(
        git.show(&["log", "-1", "--format=%an <%ae>|%cn|%s|%P", "main"])
            .trim(),
        format!("Test <{OWNER}>|Test|Use the answer|{first}")
    );
    let file = git.show(&["show", "main:notebooks/analysis.ipynb"]);
    let pushed: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(pushed["cells"][1]["source"], "print(40 + 2)");
    assert_eq!(pushed["cells"][0]["source"], "# Analysis\nFrom git.");
    assert_eq!(
        pushed["cells"][1]["outputs"],
        repo_notebook()["cells"][1]["outputs"]
    );
    assert!(
        file.starts_with("{\n \"cells\": ["),
        "written as nbformat writes"
    );
    // Only the notebook changed; the rest of the tree is the parent's.
    assert_eq!(
        git.show(&["diff", "--name-only", &first, &sha]).trim(),
        "notebooks/analysis.ipynb"
    );
    assert_eq!(git.show(&["show", "main:README.md"]), "data\n");

    // The document now says it is based on the new commit; every connection sees it.
    conn.wait_until(
        {
            let sha = sha.clone();
            move |doc| {
                Notebook::from_doc(doc.clone())
                    .state_value("git")
                    .is_some_and(|g| g["base_commit"] == sha.as_str())
            }
        },
        WAIT,
    )
    .await
    .unwrap();

    // Nothing changed since: no commit. Then a second edit, by another named author.
    let same = commit(
        &owner,
        &id,
        json!({"message": "again", "token": TOKEN, "url": git.url}),
    )
    .await
    .unwrap();
    assert_eq!(same, json!({"commit": sha, "changed": false}));
    notebook.edit_source("intro", 0, 0, "Updated. ").unwrap();
    wait_for_source(&owner, &id, 0, "Updated. ").await;
    let second = commit(
        &owner,
        &id,
        json!({"message": "Second\n\nWith a body.", "token": TOKEN, "url": git.url,
               "author_name": "Ada Lovelace", "author_email": "ada@example.com"}),
    )
    .await
    .unwrap();
    assert_eq!(git.head(), second["commit"].as_str().unwrap());
    assert_eq!(
        git.show(&["log", "-1", "--format=%an <%ae>|%B|%P", "main"])
            .trim(),
        format!("Ada Lovelace <ada@example.com>|Second\n\nWith a body.\n|{sha}")
    );
}

#[tokio::test]
async fn a_commit_after_the_branch_moved_is_a_conflict_and_pushes_nothing() {
    let git = GitServer::start().await;
    let server = start().await;
    let owner = server.client(OWNER).await;
    let base = git.head();
    let id = import_analysis(&owner, &git).await;
    let conn = server.connect(&owner, &id).await;
    Notebook::from_doc(conn.doc().clone())
        .edit_source("sum", 0, 0, "# mine\n")
        .unwrap();

    // Someone else pushes to the branch meanwhile.
    git.push_elsewhere("README.md", "theirs\n", "theirs");
    let theirs = git.head();

    let (status, code, text) = failure(
        commit(
            &owner,
            &id,
            json!({"message": "mine", "token": TOKEN, "url": git.url}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (409, "git_conflict"), "{text}");
    assert!(text.contains(&theirs) && text.contains(&base), "{text}");
    assert_eq!(git.head(), theirs, "nothing was pushed");
    let origin = owner
        .send_json(Method::GET, &format!("api/notebooks/{id}/git"), None)
        .await
        .unwrap();
    assert_eq!(origin["base_commit"], base.as_str());

    // The branch moves after Tandem cloned it, right before the push: git refuses the push.
    let id = import_analysis(&owner, &git).await;
    let conn = server.connect(&owner, &id).await;
    Notebook::from_doc(conn.doc().clone())
        .edit_source("sum", 0, 0, "# mine again\n")
        .unwrap();
    wait_for_source(&owner, &id, 1, "# mine again").await;
    *git.cgi.race_next_push.lock().unwrap() = Some(git.work());
    let (status, code, text) = failure(
        commit(
            &owner,
            &id,
            json!({"message": "mine", "token": TOKEN, "url": git.url}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (409, "git_conflict"), "{text}");
    assert!(text.contains("rejected"), "{text}");
    assert_eq!(
        git.show(&["log", "-1", "--format=%s", "main"]).trim(),
        "raced",
        "only the racing commit is in the branch"
    );
}

#[tokio::test]
async fn a_git_server_that_never_answers_times_out() {
    let server = TestServer::start_with(|config| {
        config.git_timeout = std::time::Duration::from_secs(1);
        config.git_allow_private = true;
    })
    .await;
    let owner = server.client(OWNER).await;
    // Connections are accepted by the kernel, never answered.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/repo.git", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let (status, code, text) =
        failure(import(&owner, json!({"url": url, "path": "nb.ipynb"})).await);
    // As any other failed fetch: a silent port is no different from a closed one.
    assert_eq!((status, code.as_str()), (502, "git_unavailable"), "{text}");
    assert!(text.contains("could not fetch the repository"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Waits until cell `index` of the room's export starts with `prefix`.
async fn wait_for_source(client: &Client, id: &str, index: usize, prefix: &str) {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let ipynb = client.export_ipynb(id).await.unwrap();
        if ipynb["cells"][index]["source"]
            .as_str()
            .is_some_and(|s| s.starts_with(prefix))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the edit never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_urls_paths_and_branches_are_refused_before_git_runs() {
    let git = GitServer::start().await;
    let server = start().await;
    let owner = server.client(OWNER).await;
    let path = "notebooks/analysis.ipynb";
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/repo.git", listener.local_addr().unwrap())
    };
    let cases = [
        (
            json!({"url": "file:///etc", "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": format!("file://{}", git.bare().display()), "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": "ext::sh -c touch% /tmp/pwned", "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": "--upload-pack=touch /tmp/pwned", "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": "-uhttp://127.0.0.1/x", "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": "ssh://git@example.com/r.git", "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": "http://example.com/r.git", "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": git.url.replace("http://", "http://me:pw@"), "path": path}),
            400,
            "invalid_url",
        ),
        (
            json!({"url": git.url, "path": "../../etc/passwd.ipynb", "token": TOKEN}),
            400,
            "invalid_path",
        ),
        (
            json!({"url": git.url, "path": "README.md", "token": TOKEN}),
            400,
            "invalid_path",
        ),
        (
            json!({"url": git.url, "path": path, "branch": "--orphan", "token": TOKEN}),
            400,
            "invalid_branch",
        ),
        (
            json!({"url": git.url, "path": path, "branch": "nope", "token": TOKEN}),
            502,
            "git_unavailable",
        ),
        (
            json!({"url": git.url, "path": "missing.ipynb", "token": TOKEN}),
            404,
            "git_not_found",
        ),
        (
            json!({"url": git.url.replace("repo.git", "other.git"), "path": path, "token": TOKEN}),
            502,
            "git_unavailable",
        ),
        (json!({"url": closed, "path": path}), 502, "git_unavailable"),
    ];
    for (body, status, code) in cases {
        let (got_status, got_code, text) = failure(import(&owner, body.clone()).await);
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{body}: {text}"
        );
    }
    assert!(!Path::new("/tmp/pwned").exists());

    // A file that is not a notebook is refused as an upload would be.
    git.push_elsewhere("broken.ipynb", "{\"cells\": 3}", "broken");
    let (status, code, text) = failure(
        import(
            &owner,
            json!({"url": git.url, "path": "broken.ipynb", "token": TOKEN}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_ipynb"), "{text}");

    // Not signed in: 401. A notebook that did not come from git has nowhere to go.
    let anonymous = reqwest::Client::new()
        .post(format!("{}/api/notebooks/import/git", server.http_url()))
        .json(&json!({"url": git.url, "path": path}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let plain = owner.create_notebook("Plain", None).await.unwrap();
    let (status, code, _) =
        failure(commit(&owner, &plain.id, json!({"message": "x", "token": TOKEN})).await);
    assert_eq!((status, code.as_str()), (409, "not_from_git"));
}

#[tokio::test]
async fn only_editors_commit_and_outsiders_see_nothing() {
    let git = GitServer::start().await;
    let server = start().await;
    let owner = server.client(OWNER).await;
    let id = import_analysis(&owner, &git).await;
    let [editor, commenter, viewer, outsider] = [
        "editor@example.com",
        "commenter@example.com",
        "viewer@example.com",
        "outsider@example.com",
    ];
    owner
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{id}/sharing"),
            Some(
                json!({"general_access": "restricted", "link_role": "viewer", "grants": [
                    {"email": editor, "role": "editor"},
                    {"email": commenter, "role": "commenter"},
                    {"email": viewer, "role": "viewer"},
                ]}),
            ),
        )
        .await
        .unwrap();
    let conn = server.connect(&owner, &id).await;
    Notebook::from_doc(conn.doc().clone())
        .edit_source("sum", 0, 0, "# shared\n")
        .unwrap();
    let body = json!({"message": "by someone", "token": TOKEN, "url": git.url});
    let head = git.head();
    for (email, status, code) in [
        (viewer, 403, "forbidden"),
        (commenter, 403, "forbidden"),
        (outsider, 404, "not_found"),
    ] {
        let client = server.client(email).await;
        let (got, got_code, text) = failure(commit(&client, &id, body.clone()).await);
        assert_eq!((got, got_code.as_str()), (status, code), "{email}: {text}");
    }
    let outsider = server.client(outsider).await;
    let (status, _, _) = failure(
        outsider
            .send_json(Method::GET, &format!("api/notebooks/{id}/git"), None)
            .await,
    );
    assert_eq!(status, 404);
    assert_eq!(git.head(), head, "nothing was pushed");

    // Wait for the edit to be in the room, then the editor commits it as themself.
    wait_for_source(&owner, &id, 1, "# shared").await;
    let editor = server.client(editor).await;
    // A token goes only to the repository its owner names: the origin is document data
    // that any editor could have pointed elsewhere.
    for url in [None, Some("https://attacker.example/repo.git")] {
        let mut other = body.clone();
        match url {
            Some(url) => other["url"] = json!(url),
            None => drop(other.as_object_mut().unwrap().remove("url")),
        }
        let (status, code, text) = failure(commit(&editor, &id, other).await);
        assert_eq!(
            (status, code.as_str()),
            (400, "git_origin_mismatch"),
            "{text}"
        );
        assert!(!text.contains(TOKEN), "{text}");
    }
    assert_eq!(git.head(), head, "nothing was pushed");
    let done = commit(&editor, &id, body).await.unwrap();
    assert_eq!(git.head(), done["commit"].as_str().unwrap());
    assert_eq!(
        git.show(&["log", "-1", "--format=%ae", "main"]).trim(),
        "editor@example.com"
    );
}

#[tokio::test]
async fn a_host_name_is_resolved_once_and_git_pinned_to_it() {
    // `localhost` is resolved by the server and handed to git as `http.curloptResolve`, so
    // git connects to the address that was checked; the clone works through the pin.
    let git = GitServer::start().await;
    let server = start().await;
    let owner = server.client(OWNER).await;
    let url = git.url.replace("127.0.0.1", "localhost");
    assert_ne!(url, git.url);
    let info = import(
        &owner,
        json!({"url": url, "path": "notebooks/analysis.ipynb", "token": TOKEN}),
    )
    .await
    .unwrap();
    assert_eq!(info["title"], "analysis");
}
