//! Notebooks opened from git and committed back, against a real git server on loopback:
//! `git http-backend` behind a small CGI host that wants a token, over a bare repository.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::Client;
use tandem_crdt::Notebook;
use tokio::io::AsyncWriteExt;

use crate::support::{TestServer, WAIT};

/// The token the git server accepts (as the password of HTTP Basic auth, any user name).
const TOKEN: &str = "tkn-0123456789abcdef";
const OWNER: &str = "owner@example.com";

/// The notebook in the repository: a markdown cell and a code cell with an output.
fn repo_notebook() -> Value {
    json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"id": "intro", "cell_type": "markdown", "metadata": {}, "source": "# Analysis\nFrom git."},
            {"id": "sum", "cell_type": "code", "metadata": {}, "execution_count": 1,
             "source": "print(1 + 1)",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "2\n"}]},
        ],
    })
}

/// A bare repository served over smart HTTP by `git http-backend`, and a working clone of it
/// for commits made "by someone else".
struct GitServer {
    dir: tempfile::TempDir,
    url: String,
    cgi: Arc<Cgi>,
    task: tokio::task::JoinHandle<()>,
}

struct Cgi {
    root: PathBuf,
    /// When set, the next push is raced: this working clone pushes a commit of its own just
    /// before the server tells the pusher where the branch is.
    race_next_push: Mutex<Option<PathBuf>>,
}

impl GitServer {
    /// A server whose `repo.git` holds `notebooks/analysis.ipynb` on `main`.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("srv");
        std::fs::create_dir(&root).unwrap();
        let bare = root.join("repo.git");
        git(
            &root,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "repo.git",
            ],
        );
        // What GitHub offers: partial clones.
        git(&bare, &["config", "uploadpack.allowFilter", "true"]);
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["clone", "--quiet", bare.to_str().unwrap(), "work"],
        );
        std::fs::create_dir(work.join("notebooks")).unwrap();
        std::fs::write(
            work.join("notebooks/analysis.ipynb"),
            serde_json::to_vec_pretty(&repo_notebook()).unwrap(),
        )
        .unwrap();
        std::fs::write(work.join("README.md"), "data\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", "first"]);
        git(&work, &["push", "--quiet", "origin", "main"]);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/repo.git", listener.local_addr().unwrap());
        let cgi = Arc::new(Cgi {
            root,
            race_next_push: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(serve_cgi)
            .with_state(cgi.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            dir,
            url,
            cgi,
            task,
        }
    }

    fn bare(&self) -> PathBuf {
        self.dir.path().join("srv/repo.git")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `git <args>` in the bare repository, its output.
    fn show(&self, args: &[&str]) -> String {
        git(&self.bare(), args)
    }

    /// Someone else commits `content` at `file` and pushes it to `main`.
    fn push_elsewhere(&self, file: &str, content: &str, message: &str) {
        let work = self.work();
        std::fs::write(work.join(file), content).unwrap();
        git(&work, &["add", file]);
        git(&work, &["commit", "--quiet", "-m", message]);
        git(&work, &["push", "--quiet", "origin", "main"]);
    }

    fn head(&self) -> String {
        self.show(&["rev-parse", "main"]).trim().to_owned()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `git` for the test's own setup and checks; panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Someone Else",
            "-c",
            "user.email=else@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The CGI host: checks the token, then hands the request to `git http-backend`.
async fn serve_cgi(State(cgi): State<Arc<Cgi>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.query() == Some("service=git-receive-pack") {
        let race = cgi.race_next_push.lock().unwrap().take();
        if let Some(work) = race {
            std::fs::write(work.join("README.md"), "raced\n").unwrap();
            git(&work, &["commit", "--quiet", "-am", "raced"]);
            git(&work, &["push", "--quiet", "origin", "main"]);
        }
    }
    let authorized = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|pair| pair.split_once(':').is_some_and(|(_, pw)| pw == TOKEN));
    if !authorized {
        let mut response = Response::new(Body::from("token required"));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"test\""),
        );
        return response;
    }
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &cgi.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "tester")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let write = async move {
        stdin.write_all(&body).await.unwrap();
    };
    let (_, out) = tokio::join!(write, child.wait_with_output());
    let out = out.unwrap().stdout;
    // A CGI answer: headers (one may be `Status`), a blank line, the body.
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .unwrap();
    let head = String::from_utf8_lossy(&out[..split.0]).into_owned();
    let mut response = Response::new(Body::from(out[split.0 + split.1..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().unwrap().parse().unwrap();
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
        } else {
            response.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
    }
    response
}

/// `POST /api/notebooks/import/git`.
async fn import(client: &Client, body: Value) -> Result<Value, tandem_client::ApiError> {
    client
        .send_json(Method::POST, "api/notebooks/import/git", Some(body))
        .await
}

/// A server that may reach the test's git server on loopback.
async fn start() -> TestServer {
    TestServer::start_with(|config| config.git_allow_private = true).await
}

/// `POST /api/notebooks/{id}/git/commit`.
async fn commit(client: &Client, id: &str, body: Value) -> Result<Value, tandem_client::ApiError> {
    client
        .send_json(
            Method::POST,
            &format!("api/notebooks/{id}/git/commit"),
            Some(body),
        )
        .await
}

/// Imports the repository's notebook with the right token; returns its id.
async fn import_analysis(client: &Client, git: &GitServer) -> String {
    let info = import(
        client,
        json!({"url": git.url, "branch": "main", "path": "notebooks/analysis.ipynb", "token": TOKEN}),
    )
    .await
    .unwrap();
    assert_eq!(info["role"], "owner");
    assert_eq!(info["title"], "analysis");
    info["id"].as_str().unwrap().to_owned()
}

/// The status and code of a failed request, and its whole text.
fn failure(result: Result<Value, tandem_client::ApiError>) -> (u16, String, String) {
    let err = result.expect_err("the request should have failed");
    (
        err.status().unwrap(),
        err.code().unwrap_or_default().to_owned(),
        err.to_string(),
    )
}

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

/// Captures what the server logs on this thread (tests run on a current-thread runtime, so
/// the server's tasks log here too).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_is_never_shown_or_logged() {
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let git = GitServer::start().await;
    let server = start().await;
    let owner = server.client(OWNER).await;
    let wrong = "wrong-secret-token-4242";
    let wrong_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{wrong}"));
    let right_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));

    for token in [Some(wrong), None] {
        let mut body = json!({"url": git.url, "path": "notebooks/analysis.ipynb"});
        if let Some(token) = token {
            body["token"] = json!(token);
        }
        // The clone fails, answered as every failed fetch is.
        let (status, code, text) = failure(import(&owner, body).await);
        assert_eq!((status, code.as_str()), (502, "git_unavailable"), "{text}");
        assert!(
            !text.contains(wrong) && !text.contains(&wrong_basic),
            "{text}"
        );
    }

    // The default branch is found when none is named.
    let info = import(
        &owner,
        json!({"url": git.url, "path": "notebooks/analysis.ipynb", "token": TOKEN}),
    )
    .await
    .unwrap();
    let id = info["id"].as_str().unwrap();
    let origin = owner
        .send_json(Method::GET, &format!("api/notebooks/{id}/git"), None)
        .await
        .unwrap();
    assert_eq!(origin["branch"], "main");
    assert!(!origin.to_string().contains(TOKEN));
    let doc = Notebook::from_doc(server.connect(&owner, id).await.doc().clone());
    doc.edit_source("sum", 0, 0, "# edited\n").unwrap();
    let head = git.head();
    for token in [Some(wrong), None] {
        let mut body = json!({"message": "nope"});
        if let Some(token) = token {
            body["token"] = json!(token);
            body["url"] = json!(git.url);
        }
        let (status, code, text) = failure(commit(&owner, id, body).await);
        assert_eq!((status, code.as_str()), (502, "git_unavailable"), "{text}");
        assert!(
            !text.contains(wrong) && !text.contains(&wrong_basic),
            "{text}"
        );
    }
    assert_eq!(git.head(), head);

    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("git clone failed"),
        "the failures were logged: {log}"
    );
    for secret in [wrong, wrong_basic.as_str(), TOKEN, right_basic.as_str()] {
        assert!(!log.contains(secret), "{secret} is in the log");
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
