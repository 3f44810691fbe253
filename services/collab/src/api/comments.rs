//! Comments: threads on a cell or a range of its source, with replies, resolvable.
//! `tandem_protocol::comments` lists the routes, bodies and offset units.
//!
//! Threads live in the store beside the notebook, never in its document, so nothing a client
//! syncs or an `.ipynb` export holds carries them, unless the export is asked for them with
//! `?comments=true` ([`export_query`], [`add_to_export`]). Reading them takes view access;
//! writing takes a signed-in commenter, editor or owner. Authors' emails go only to editors
//! and the owner, who may read the sharing list anyway; viewers and commenters see names. A commenter still cannot change the
//! document: the room refuses their updates.
//!
//! A thread's range is anchored and found again inside the notebook's room, on the live
//! document ([`anchor`]), so it follows every edit the room has applied.
//!
//! After every change the service writes a new value to the document's `state.comments_rev`
//! ([`changed`]), so every open page knows at once to fetch the threads again.

mod anchor;

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tandem_protocol::Role;
use tandem_protocol::comments::{
    Comment, CommentAuthor, MAX_COMMENT_CHARS, NewReply, NewThread, Thread, ThreadUpdate,
};

use super::ApiJson;
use crate::App;
use crate::auth::{Caller, SignedIn, caller_access};
use crate::error::ApiError;
use crate::ids;
use crate::store::User;
use crate::store::comments::{CommentRecord, ThreadRecord};
use anchor::{AnchorError, Located};

/// `GET /api/notebooks/{id}/comments`: every thread, oldest first.
pub(super) async fn list(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Thread>>, ApiError> {
    let (_, role) = caller_access(&app, &caller, &id).await?;
    let records = app.store.threads(&id).await?;
    Ok(Json(render(&app, &id, records, shows_emails(role)).await?))
}

/// `GET /api/notebooks/{id}/comments/{thread_id}`: one thread.
pub(super) async fn get(
    State(app): State<App>,
    caller: Caller,
    Path((id, thread_id)): Path<(String, String)>,
) -> Result<Json<Thread>, ApiError> {
    let (_, role) = caller_access(&app, &caller, &id).await?;
    let record = app
        .store
        .thread(&id, &thread_id)
        .await?
        .ok_or_else(unknown_comment)?;
    Ok(Json(
        render_one(&app, &id, record, shows_emails(role)).await?,
    ))
}

/// `POST /api/notebooks/{id}/comments`: opens a thread.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn create(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewThread>,
) -> Result<(StatusCode, Json<Thread>), ApiError> {
    let role = commenter_access(&app, &user, &id).await?;
    check_text(&body.text)?;
    let range = match (body.from, body.to) {
        (Some(from), Some(to)) => Some((from, to)),
        (None, None) => None,
        _ => {
            return Err(invalid_range(
                "give both `from` and `to` for a range, or neither for the whole cell",
            ));
        }
    };
    let cell_id = body.cell_id.clone();
    let anchor = app
        .rooms
        .get(&id)
        .read(move |doc| anchor::create(doc, &cell_id, range))
        .await
        .map_err(|_| ApiError::notebook_not_found())?
        .map_err(|err| match err {
            AnchorError::UnknownCell(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_cell", err.to_string())
            }
            AnchorError::InvalidRange(message) => invalid_range(message),
        })?;
    let now = ids::now_ms();
    let record = ThreadRecord {
        id: ids::random_id(),
        notebook_id: id,
        cell_id: body.cell_id,
        anchor,
        author: user.clone(),
        created_at_ms: now,
        resolved: None,
        comments: vec![CommentRecord {
            id: ids::random_id(),
            author: user,
            text: body.text,
            created_at_ms: now,
        }],
    };
    app.store.create_thread(&record).await?;
    tracing::info!(thread_id = %record.id, cell_id = %record.cell_id, "comment thread opened");
    changed(&app, &record.notebook_id).await;
    // Just made from the live document: where it is now is where it was asked for.
    let located = Located {
        orphaned: false,
        range: record
            .anchor
            .as_ref()
            .map(|a| (a.from, a.to, a.quote.clone())),
        reanchor: None,
    };
    Ok((
        StatusCode::CREATED,
        Json(thread_json(record, located, shows_emails(role))),
    ))
}

/// `PATCH /api/notebooks/{id}/comments/{thread_id}`: resolves or reopens a thread.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn update(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path((id, thread_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ThreadUpdate>,
) -> Result<Json<Thread>, ApiError> {
    let role = commenter_access(&app, &user, &id).await?;
    let mut record = app
        .store
        .thread(&id, &thread_id)
        .await?
        .ok_or_else(unknown_comment)?;
    // Resolving a resolved thread keeps who resolved it first.
    if record.resolved.is_some() != body.resolved {
        let resolved = body.resolved.then(|| (user.clone(), ids::now_ms()));
        let stored = resolved.as_ref().map(|(by, at)| (by.id.as_str(), *at));
        if !app.store.set_resolved(&id, &thread_id, stored).await? {
            return Err(unknown_comment());
        }
        record.resolved = resolved;
        tracing::info!(%thread_id, resolved = body.resolved, "comment thread updated");
        changed(&app, &id).await;
    }
    Ok(Json(
        render_one(&app, &id, record, shows_emails(role)).await?,
    ))
}

/// `DELETE /api/notebooks/{id}/comments/{thread_id}`: the thread's author, editors and the
/// owner delete a whole thread.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn delete(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path((id, thread_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = commenter_access(&app, &user, &id).await?;
    let record = app
        .store
        .thread(&id, &thread_id)
        .await?
        .ok_or_else(unknown_comment)?;
    if record.author.id != user.id && !role.can_edit() {
        return Err(ApiError::forbidden(
            "only its author, editors and the owner can delete a thread",
        ));
    }
    if !app.store.delete_thread(&id, &thread_id).await? {
        return Err(unknown_comment());
    }
    tracing::info!(%thread_id, "comment thread deleted");
    changed(&app, &id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/notebooks/{id}/comments/{thread_id}/replies`: adds a reply.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn reply(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path((id, thread_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<NewReply>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let role = commenter_access(&app, &user, &id).await?;
    check_text(&body.text)?;
    let comment = CommentRecord {
        id: ids::random_id(),
        author: user,
        text: body.text,
        created_at_ms: ids::now_ms(),
    };
    if !app.store.add_comment(&id, &thread_id, &comment).await? {
        return Err(unknown_comment());
    }
    tracing::info!(%thread_id, comment_id = %comment.id, "comment added");
    changed(&app, &id).await;
    Ok((
        StatusCode::CREATED,
        Json(comment_json(comment, shows_emails(role))),
    ))
}

/// `DELETE /api/notebooks/{id}/comments/{thread_id}/replies/{comment_id}`: its author,
/// editors and the owner delete a reply.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn delete_reply(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path((id, thread_id, comment_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = commenter_access(&app, &user, &id).await?;
    let record = app
        .store
        .thread(&id, &thread_id)
        .await?
        .ok_or_else(unknown_comment)?;
    let position = record
        .comments
        .iter()
        .position(|c| c.id == comment_id)
        .ok_or_else(unknown_comment)?;
    if position == 0 {
        return Err(ApiError::bad_request(
            "opening_comment",
            "a thread's first comment goes with the thread: delete the thread instead",
        ));
    }
    if record.comments[position].author.id != user.id && !role.can_edit() {
        return Err(ApiError::forbidden(
            "only its author, editors and the owner can delete a comment",
        ));
    }
    if !app
        .store
        .delete_comment(&id, &thread_id, &comment_id)
        .await?
    {
        return Err(unknown_comment());
    }
    tracing::info!(%thread_id, %comment_id, "comment deleted");
    changed(&app, &id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether an `.ipynb` export's query asks for comments (`comments=true`); 400 for a value
/// other than `true` or `false`.
pub(super) fn export_query(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("comments").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "invalid_query",
            format!("`comments` is `true` or `false`, not {other:?}"),
        )),
    }
}

/// Drops `metadata.tandem.comments` from an imported `.ipynb`: threads exported on request
/// must not turn into ordinary metadata that every later export would carry.
pub(super) fn strip_from_import(ipynb: &mut serde_json::Value) {
    let tandem = ipynb
        .get_mut("metadata")
        .and_then(|m| m.get_mut("tandem"))
        .and_then(|t| t.as_object_mut());
    if let Some(tandem) = tandem {
        tandem.remove("comments");
        if tandem.is_empty()
            && let Some(metadata) = ipynb.get_mut("metadata").and_then(|m| m.as_object_mut())
        {
            metadata.remove("tandem");
        }
    }
}

/// Puts the notebook's threads under `metadata.tandem.comments` of an exported `.ipynb`.
pub(super) async fn add_to_export(
    app: &App,
    id: &str,
    role: Role,
    ipynb: &mut serde_json::Value,
) -> Result<(), ApiError> {
    let records = app.store.threads(id).await?;
    let threads = render(app, id, records, shows_emails(role)).await?;
    let threads = serde_json::to_value(threads).map_err(ApiError::internal)?;
    let Some(metadata) = ipynb
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "an exported notebook without metadata"
        )));
    };
    let tandem = metadata
        .entry("tandem")
        .or_insert_with(|| serde_json::json!({}));
    if !tandem.is_object() {
        *tandem = serde_json::json!({});
    }
    if let Some(tandem) = tandem.as_object_mut() {
        tandem.insert("comments".to_owned(), threads);
    }
    Ok(())
}

/// Tells open pages that the threads changed: a new `state.comments_rev` in the document
/// (a fresh random value, so changes made at once on two nodes still differ). Best effort: the
/// change itself is stored, and pages fetch the threads again on their next load.
async fn changed(app: &App, id: &str) {
    use yrs::{Map, WriteTxn};
    let rev = ids::random_id();
    let room = app.rooms.get(id);
    let edit = room.edit(move |txn| {
        let state = txn.get_or_insert_map(tandem_crdt::schema::STATE);
        state.insert(txn, tandem_crdt::schema::STATE_COMMENTS_REV, rev);
    });
    if let Err(err) = edit.await {
        tracing::warn!(error = %err, "cannot announce the comment change in the document");
    }
}

/// The caller's role, or 403 when it cannot comment (404 for outsiders, as everywhere).
async fn commenter_access(app: &App, user: &User, id: &str) -> Result<Role, ApiError> {
    let (_, role) = caller_access(app, &Caller::User(user.clone()), id).await?;
    if !role.can_comment() {
        return Err(ApiError::forbidden(format!("a {role} cannot comment")));
    }
    Ok(role)
}

/// Whether a caller with `role` sees authors' email addresses: editors and the owner do, as
/// they see the sharing list; viewers and commenters (anyone with a link among them, signed in
/// or not) see names only.
fn shows_emails(role: Role) -> bool {
    role.can_edit()
}

fn check_text(text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_text",
            "a comment needs text",
        ));
    }
    if text.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!("a comment is at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(())
}

fn invalid_range(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_range", message)
}

fn unknown_comment() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_comment",
        "no such comment thread or comment in this notebook",
    )
}

async fn render_one(
    app: &App,
    id: &str,
    record: ThreadRecord,
    emails: bool,
) -> Result<Thread, ApiError> {
    render(app, id, vec![record], emails)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a rendered thread went missing")))
}

/// The threads as the API shows them, located in the live document. Anchors that had to be
/// found again by their quote are stored anew, so they follow edits from here on.
async fn render(
    app: &App,
    id: &str,
    records: Vec<ThreadRecord>,
    emails: bool,
) -> Result<Vec<Thread>, ApiError> {
    if records.is_empty() {
        // Nothing to locate: no need to load the room.
        return Ok(Vec::new());
    }
    let anchors: Vec<_> = records
        .iter()
        .map(|r| (r.cell_id.clone(), r.anchor.clone()))
        .collect();
    let located = app
        .rooms
        .get(id)
        .read(move |doc| anchor::locate_all(doc, &anchors))
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    let mut threads = Vec::with_capacity(records.len());
    for (record, mut located) in records.into_iter().zip(located) {
        if let Some(anchor) = located.reanchor.take() {
            // Best effort: the thread was found this time and will be again next time.
            if let Err(err) = app.store.set_anchor(id, &record.id, &anchor).await {
                tracing::warn!(thread_id = %record.id, error = %err, "cannot store a new anchor");
            }
        }
        threads.push(thread_json(record, located, emails));
    }
    Ok(threads)
}

fn thread_json(record: ThreadRecord, located: Located, emails: bool) -> Thread {
    let (from, to, quote) = match located.range {
        Some((from, to, quote)) => (Some(from), Some(to), Some(quote)),
        None => (None, None, None),
    };
    let (resolved_by, resolved_at) = match record.resolved {
        Some((by, at)) => (Some(author(by, emails)), Some(ids::rfc3339(at))),
        None => (None, None),
    };
    Thread {
        id: record.id,
        cell_id: record.cell_id,
        from,
        to,
        quote,
        original_quote: record.anchor.map(|a| a.quote),
        orphaned: located.orphaned,
        resolved: resolved_by.is_some(),
        resolved_at,
        resolved_by,
        created_at: ids::rfc3339(record.created_at_ms),
        author: author(record.author, emails),
        comments: record
            .comments
            .into_iter()
            .map(|c| comment_json(c, emails))
            .collect(),
    }
}

fn comment_json(record: CommentRecord, emails: bool) -> Comment {
    Comment {
        id: record.id,
        author: author(record.author, emails),
        text: record.text,
        created_at: ids::rfc3339(record.created_at_ms),
    }
}

fn author(user: User, emails: bool) -> CommentAuthor {
    CommentAuthor {
        id: user.id,
        name: user.name,
        email: (emails && !user.email.is_empty()).then_some(user.email),
    }
}
