//! Notebooks opened from a git repository and committed back to it: the routes of
//! [`tandem_protocol::git`] over the [`crate::git`] driver.
//!
//! Where a notebook came from lives in its document (`state.git`, a `Y.Map` of url, branch,
//! path and base commit), written when the notebook is created and moved forward, as a
//! server edit, after each push. The token of a request is used for that request only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, routing};
use serde_json::Value;
use tandem_crdt::Notebook;
use tandem_crdt::schema::STATE_GIT;
use tandem_protocol::Role;
use tandem_protocol::git::{GitCommit, GitCommitted, GitImport, GitOrigin};
use yrs::{Any, In, Map, MapPrelim, Out, WriteTxn};

use super::{ApiJson, clean_title, info};
use crate::App;
use crate::auth::{Caller, SignedIn, caller_access};
use crate::error::ApiError;
use crate::git::{Author, Checkout, GitError, Remote, check_branch, check_path};

/// Longest commit message accepted, in bytes.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest author name or email accepted, in characters.
const MAX_AUTHOR_CHARS: usize = 256;

/// The git routes, merged into the API's router.
pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route(tandem_protocol::git::IMPORT_PATH, routing::post(import))
        .route("/api/notebooks/{id}/git", routing::get(origin))
        .route("/api/notebooks/{id}/git/commit", routing::post(commit))
}

/// `POST /api/notebooks/import/git`: a new notebook, owned by the caller, from one `.ipynb`
/// file of a branch.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn import(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    ApiJson(body): ApiJson<GitImport>,
) -> Result<impl IntoResponse, ApiError> {
    let GitImport {
        url,
        branch,
        path,
        token,
    } = body;
    let remote = Remote::new(&url, token)?
        .resolve(app.config.git_allow_private)
        .await?;
    if let Some(branch) = &branch {
        check_branch(branch)?;
    }
    check_path(&path)?;
    let limits = app.import_limits();
    let checkout =
        Checkout::shallow_clone(&remote, branch.as_deref(), app.config.git_timeout).await?;
    let bytes = checkout.read_file(&path, limits.max_bytes).await?;
    let origin = GitOrigin {
        url: remote.url().to_owned(),
        branch: checkout.branch.clone(),
        path,
        base_commit: checkout.head.clone(),
    };
    drop(checkout);
    let ipynb: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_ipynb", format!("not JSON: {e}")))?;
    let title = clean_title(title_of(&origin.path))?;
    let doc_origin = origin.clone();
    let record = super::import_notebook(&app, &user.id, title, ipynb, move |txn| {
        write_origin(txn, &doc_origin)
    })
    .await?;
    tracing::info!(
        doc_id = %record.id,
        url = %origin.url,
        branch = %origin.branch,
        path = %origin.path,
        base_commit = %origin.base_commit,
        "notebook imported from git"
    );
    Ok((StatusCode::CREATED, Json(info(&record, Role::Owner))))
}

/// `GET /api/notebooks/{id}/git`: where the notebook came from.
async fn origin(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GitOrigin>, ApiError> {
    caller_access(&app, &caller, &id).await?;
    let origin = app
        .rooms
        .get(&id)
        .read(|doc| Notebook::from_doc(doc.clone()).state_value(STATE_GIT))
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    parse_origin(origin).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_from_git",
            "this notebook was not opened from git",
        )
    })
}

/// `POST /api/notebooks/{id}/git/commit`: the notebook as it is now, committed on top of its
/// base commit and pushed.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn commit(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GitCommit>,
) -> Result<Json<GitCommitted>, ApiError> {
    let (_, role) = caller_access(&app, &Caller::User(user.clone()), &id).await?;
    if !role.can_edit() {
        return Err(ApiError::forbidden(format!(
            "a {role} cannot commit the notebook"
        )));
    }
    let author = author(&body, &user)?;
    let message = body.message.trim();
    if message.is_empty() || message.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::bad_request(
            "invalid_message",
            "a commit message has 1 byte to 64 KiB",
        ));
    }
    let room = app.rooms.get(&id);
    let (ipynb, origin) = room
        .read(|doc| {
            let notebook = Notebook::from_doc(doc.clone());
            (notebook.to_ipynb(), notebook.state_value(STATE_GIT))
        })
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    let origin = parse_origin(origin).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_from_git",
            "this notebook was not opened from git, so it has nowhere to be committed",
        )
    })?;
    // The origin is document data (only the server writes it, yet a token's owner still says
    // where it may go): a token goes only to the repository its owner named in this request,
    // never to whatever the document now says.
    if body.token.is_some() && body.url.as_deref() != Some(origin.url.as_str()) {
        return Err(ApiError::bad_request(
            "git_origin_mismatch",
            format!(
                "with a token, send the repository URL it is for as \"url\"; this notebook's \
                 origin is {}",
                origin.url
            ),
        ));
    }
    // Check the origin as strictly as at import.
    let remote = Remote::new(&origin.url, body.token)?
        .resolve(app.config.git_allow_private)
        .await?;
    check_branch(&origin.branch)?;
    check_path(&origin.path)?;
    let content = ipynb_bytes(&ipynb).map_err(ApiError::internal)?;
    let checkout =
        Checkout::shallow_clone(&remote, Some(&origin.branch), app.config.git_timeout).await?;
    if checkout.head != origin.base_commit {
        return Err(GitError::Moved {
            head: checkout.head.clone(),
            base: origin.base_commit.clone(),
        }
        .into());
    }
    let Some(commit) = checkout
        .commit_file(&origin.path, &content, message, &author)
        .await?
    else {
        tracing::info!("git commit: nothing changed");
        return Ok(Json(GitCommitted {
            commit: checkout.head.clone(),
            changed: false,
        }));
    };
    checkout.push(&commit).await?;
    drop(checkout);
    let new_base = commit.clone();
    let moved = room
        .edit(move |txn| advance_base(txn, &origin, &new_base))
        .await;
    if moved.is_err() {
        // The push happened; only the notebook's record of it is missing, so the next commit
        // will answer a conflict rather than overwrite anything.
        tracing::warn!(
            commit,
            "pushed, but the room stopped before base_commit moved"
        );
    }
    tracing::info!(commit, "notebook committed to git");
    Ok(Json(GitCommitted {
        commit,
        changed: true,
    }))
}

/// The commit's author: as asked, else the signed-in user.
fn author(body: &GitCommit, user: &crate::store::User) -> Result<Author, ApiError> {
    let name = match body.author_name.as_deref().map(str::trim) {
        Some(name) => name.to_owned(),
        None if !user.name.trim().is_empty() => user.name.trim().to_owned(),
        None => user.email.split('@').next().unwrap_or_default().to_owned(),
    };
    let email = body
        .author_email
        .as_deref()
        .unwrap_or(&user.email)
        .trim()
        .to_owned();
    let bad = |s: &str| {
        s.is_empty()
            || s.chars().count() > MAX_AUTHOR_CHARS
            || s.chars().any(|c| c.is_control() || c == '<' || c == '>')
    };
    if bad(&name) || bad(&email) || !email.contains('@') {
        return Err(ApiError::bad_request(
            "invalid_author",
            "an author has a name and an email address, without `<`, `>` or control characters",
        ));
    }
    Ok(Author { name, email })
}

/// A new notebook's title: its file name without `.ipynb`.
fn title_of(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_suffix(".ipynb").unwrap_or(name)
}

fn parse_origin(value: Option<Value>) -> Option<GitOrigin> {
    serde_json::from_value(value?).ok()
}

/// Writes `state.git` as a `Y.Map`, so `base_commit` can later change alone.
fn write_origin(txn: &mut yrs::TransactionMut, origin: &GitOrigin) {
    let state = txn.get_or_insert_map(tandem_crdt::schema::STATE);
    let text = |s: &str| In::Any(Any::from(s));
    let map = MapPrelim::from([
        ("url", text(&origin.url)),
        ("branch", text(&origin.branch)),
        ("path", text(&origin.path)),
        ("base_commit", text(&origin.base_commit)),
    ]);
    state.insert(txn, STATE_GIT, map);
}

/// Moves `state.git.base_commit` to `commit`, if `state.git` still names the repository,
/// branch and file that were pushed to (an editor may have changed it meanwhile).
fn advance_base(txn: &mut yrs::TransactionMut, pushed: &GitOrigin, commit: &str) {
    let state = txn.get_or_insert_map(tandem_crdt::schema::STATE);
    let Some(Out::YMap(git)) = state.get(txn, STATE_GIT) else {
        return;
    };
    let same = |key: &str, want: &str| matches!(git.get(txn, key), Some(Out::Any(Any::String(s))) if &*s == want);
    if same("url", &pushed.url) && same("branch", &pushed.branch) && same("path", &pushed.path) {
        git.insert(txn, "base_commit", commit);
    }
}

/// The `.ipynb` file as Jupyter writes it (nbformat's `writes`: keys sorted, one-space
/// indent, a final newline), so that commits from Tandem and from Jupyter diff cleanly.
fn ipynb_bytes(ipynb: &Value) -> Result<Vec<u8>, serde_json::Error> {
    use serde::Serialize;
    let sorted = sort_keys(ipynb);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    sorted.serialize(&mut serializer)?;
    out.push(b'\n');
    Ok(out)
}

fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

impl From<GitError> for ApiError {
    fn from(err: GitError) -> Self {
        let message = err.to_string();
        match err {
            GitError::InvalidUrl(_) => Self::bad_request("invalid_url", message),
            GitError::InvalidBranch(_) => Self::bad_request("invalid_branch", message),
            GitError::InvalidPath(_) => Self::bad_request("invalid_path", message),
            GitError::Auth(_) => Self::bad_request("git_auth", message),
            GitError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "git_not_found", message),
            GitError::Moved { .. } | GitError::NonFastForward(_) => {
                Self::new(StatusCode::CONFLICT, "git_conflict", message)
            }
            GitError::Rejected(_) => Self::new(StatusCode::CONFLICT, "git_rejected", message),
            GitError::Fetch(_) | GitError::Unavailable(_) | GitError::Timeout(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "git_unavailable", message)
            }
            GitError::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            GitError::Local { .. } | GitError::Io(_) => Self::internal(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::Transact;

    #[test]
    fn files_are_written_as_nbformat_writes_them() {
        let nb =
            serde_json::json!({"nbformat": 4, "cells": [], "metadata": {"b": 1, "a": [1, "é"]}});
        let text = String::from_utf8(ipynb_bytes(&nb).unwrap()).unwrap();
        assert_eq!(
            text,
            "{\n \"cells\": [],\n \"metadata\": {\n  \"a\": [\n   1,\n   \"é\"\n  ],\n  \"b\": 1\n },\n \"nbformat\": 4\n}\n"
        );
    }

    #[test]
    fn titles_are_file_names() {
        assert_eq!(title_of("a/b/My NB.ipynb"), "My NB");
        assert_eq!(title_of("x.ipynb"), "x");
    }

    #[test]
    fn the_base_moves_only_on_the_origin_that_was_pushed() {
        let doc = yrs::Doc::new();
        let origin = GitOrigin {
            url: "https://h/r".into(),
            branch: "main".into(),
            path: "nb.ipynb".into(),
            base_commit: "a".into(),
        };
        write_origin(&mut doc.transact_mut(), &origin);
        advance_base(&mut doc.transact_mut(), &origin, "b");
        let read = || parse_origin(Notebook::from_doc(doc.clone()).state_value(STATE_GIT));
        assert_eq!(read().unwrap().base_commit, "b");
        let other = GitOrigin {
            url: "https://h/other".into(),
            ..origin
        };
        advance_base(&mut doc.transact_mut(), &other, "c");
        assert_eq!(read().unwrap().base_commit, "b");
    }
}
