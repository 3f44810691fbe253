//! What the git tests share: a real git server on loopback (`git http-backend` behind a small
//! CGI host that wants a token, over a bare repository) and the calls to import and commit.

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
use tokio::io::AsyncWriteExt;

use crate::support::TestServer;

/// The token the git server accepts (as the password of HTTP Basic auth, any user name).
pub(crate) const TOKEN: &str = "tkn-0123456789abcdef";
pub(crate) const OWNER: &str = "owner@example.com";

/// The notebook in the repository: a markdown cell and a code cell with an output.
pub(crate) fn repo_notebook() -> Value {
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
pub(crate) struct GitServer {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) url: String,
    pub(crate) cgi: Arc<Cgi>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

pub(crate) struct Cgi {
    pub(crate) root: PathBuf,
    /// When set, the next push is raced: this working clone pushes a commit of its own just
    /// before the server tells the pusher where the branch is.
    pub(crate) race_next_push: Mutex<Option<PathBuf>>,
}

impl GitServer {
    /// A server whose `repo.git` holds `notebooks/analysis.ipynb` on `main`.
    pub(crate) async fn start() -> Self {
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

    pub(crate) fn bare(&self) -> PathBuf {
        self.dir.path().join("srv/repo.git")
    }

    pub(crate) fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `git <args>` in the bare repository, its output.
    pub(crate) fn show(&self, args: &[&str]) -> String {
        git(&self.bare(), args)
    }

    /// Someone else commits `content` at `file` and pushes it to `main`.
    pub(crate) fn push_elsewhere(&self, file: &str, content: &str, message: &str) {
        let work = self.work();
        std::fs::write(work.join(file), content).unwrap();
        git(&work, &["add", file]);
        git(&work, &["commit", "--quiet", "-m", message]);
        git(&work, &["push", "--quiet", "origin", "main"]);
    }

    pub(crate) fn head(&self) -> String {
        self.show(&["rev-parse", "main"]).trim().to_owned()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `git` for the test's own setup and checks; panics on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
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
pub(crate) async fn serve_cgi(State(cgi): State<Arc<Cgi>>, request: Request) -> Response {
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
pub(crate) async fn import(client: &Client, body: Value) -> Result<Value, tandem_client::ApiError> {
    client
        .send_json(Method::POST, "api/notebooks/import/git", Some(body))
        .await
}

/// A server that may reach the test's git server on loopback.
pub(crate) async fn start() -> TestServer {
    TestServer::start_with(|config| config.git_allow_private = true).await
}

/// `POST /api/notebooks/{id}/git/commit`.
pub(crate) async fn commit(
    client: &Client,
    id: &str,
    body: Value,
) -> Result<Value, tandem_client::ApiError> {
    client
        .send_json(
            Method::POST,
            &format!("api/notebooks/{id}/git/commit"),
            Some(body),
        )
        .await
}

/// Imports the repository's notebook with the right token; returns its id.
pub(crate) async fn import_analysis(client: &Client, git: &GitServer) -> String {
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
pub(crate) fn failure(result: Result<Value, tandem_client::ApiError>) -> (u16, String, String) {
    let err = result.expect_err("the request should have failed");
    (
        err.status().unwrap(),
        err.code().unwrap_or_default().to_owned(),
        err.to_string(),
    )
}
