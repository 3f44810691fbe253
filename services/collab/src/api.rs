//! The REST API of docs/design.md for notebooks and the signed-in user.

mod comments;
mod drive;
mod execution;
mod git;
mod intel;
mod library;
mod outputs;
pub(crate) mod secrets;
mod sharing;
mod versions;

use std::collections::HashMap;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing};
use serde::de::DeserializeOwned;
use tandem_crdt::Notebook;
use tandem_protocol::{
    CreateNotebook, GeneralAccess, Me, NotebookInfo, Role, Session, UpdateNotebook,
};
use tower_http::compression::CompressionLayer;
use yrs::{Map, ReadTxn, StateVector, Transact, WriteTxn};

use crate::App;
use crate::auth::events::AccessEvent;
use crate::auth::{Caller, SignedIn, caller_access};
use crate::error::ApiError;
use crate::ids;
use crate::store::NotebookRecord;

pub(crate) use library::note_opened;

/// Longest title accepted, in characters.
pub(crate) const MAX_TITLE_CHARS: usize = 500;

/// The API routes, to be merged into the service's router.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", routing::get(healthz))
        .route("/api/me", routing::get(me))
        .route("/api/session", routing::get(session))
        .route(
            "/api/notebooks",
            routing::get(list_notebooks).post(create_notebook),
        )
        .route(
            "/api/notebooks/{id}",
            routing::get(get_notebook)
                .patch(rename_notebook)
                .delete(delete_notebook),
        )
        .route("/api/notebooks/{id}/ipynb", routing::get(export_ipynb))
        .route(
            "/api/notebooks/{id}/copy",
            routing::post(library::copy_notebook),
        )
        .route(
            "/api/notebooks/{id}/sharing",
            routing::get(sharing::get_sharing).put(sharing::put_sharing),
        )
        .route(
            "/api/notebooks/{id}/owner",
            routing::post(sharing::transfer_ownership),
        )
        .route(
            "/api/notebooks/{id}/execute",
            routing::post(execution::execute),
        )
        .route(
            "/api/notebooks/{id}/interrupt",
            routing::post(execution::interrupt),
        )
        .route(
            "/api/notebooks/{id}/restart",
            routing::post(execution::restart),
        )
        .route(
            "/api/notebooks/{id}/outputs/{file}",
            routing::get(execution::full_output),
        )
        .route(
            "/api/notebooks/{id}/runtime",
            routing::put(execution::set_runtime),
        )
        .route(
            "/api/notebooks/{id}/comments",
            routing::get(comments::list).post(comments::create),
        )
        .route(
            "/api/notebooks/{id}/comments/{thread_id}",
            routing::get(comments::get)
                .patch(comments::update)
                .delete(comments::delete),
        )
        .route(
            "/api/notebooks/{id}/comments/{thread_id}/replies",
            routing::post(comments::reply),
        )
        .route(
            "/api/notebooks/{id}/comments/{thread_id}/replies/{comment_id}",
            routing::delete(comments::delete_reply),
        )
        .merge(git::routes())
        .merge(intel::routes())
        .merge(outputs::routes())
        .merge(versions::routes())
        .merge(secrets::routes())
        .merge(drive::routes())
        // JSON compresses to a fraction (notebook listings, exports, comments); the layer
        // answers `Accept-Encoding` and leaves bodies under 32 bytes alone.
        .layer(CompressionLayer::new())
}

/// JSON body extractor whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn me(SignedIn(user): SignedIn) -> Json<Me> {
    Json(Me {
        id: user.id,
        email: user.email,
        name: user.name,
    })
}

/// `GET /api/session`: whether the caller is signed in (and as whom), always 200: pages ask
/// it where a signed-out visitor is normal, so the browser logs no failed request. A bad or
/// expired token still answers 401, as everywhere.
async fn session(caller: Caller) -> Json<Session> {
    let user = match caller {
        Caller::User(user) => Some(Me {
            id: user.id,
            email: user.email,
            name: user.name,
        }),
        Caller::Service | Caller::Anonymous => None,
    };
    Json(Session {
        signed_in: user.is_some(),
        user,
    })
}

fn info(record: &NotebookRecord, role: Role) -> NotebookInfo {
    NotebookInfo {
        id: record.id.clone(),
        title: record.title.clone(),
        role,
        updated_at: Some(ids::rfc3339(record.updated_at_ms)),
        created_at: Some(ids::rfc3339(record.created_at_ms)),
        owner: None,
        last_editor: None,
        last_opened_at: None,
    }
}

#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn create_notebook(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    ApiJson(body): ApiJson<CreateNotebook>,
) -> Result<impl IntoResponse, ApiError> {
    let title = clean_title(&body.title)?;
    let ipynb = body.ipynb.unwrap_or_else(blank_notebook);
    let record = import_notebook(&app, &user.id, title, ipynb, |_| {}).await?;
    Ok((StatusCode::CREATED, Json(info(&record, Role::Owner))))
}

/// Stores a new notebook owned by `owner_id`, imported from `ipynb` (any exported comments
/// dropped), with its title in `state.title` and whatever else `extra` writes into the fresh
/// document. Answers 400 `invalid_ipynb` for a notebook that does not import.
pub(crate) async fn import_notebook(
    app: &App,
    owner_id: &str,
    title: String,
    mut ipynb: serde_json::Value,
    extra: impl FnOnce(&mut yrs::TransactionMut) + Send + 'static,
) -> Result<NotebookRecord, ApiError> {
    comments::strip_from_import(&mut ipynb);
    let limits = app.import_limits();
    let doc_title = title.clone();
    let initial_state = tokio::task::spawn_blocking(move || {
        let notebook = Notebook::from_ipynb(&ipynb, &limits)
            .map_err(|e| ApiError::bad_request("invalid_ipynb", e.to_string()))?;
        {
            let mut txn = notebook.doc().transact_mut();
            write_title(&mut txn, &doc_title);
            extra(&mut txn);
        }
        let state = notebook
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Ok::<_, ApiError>(state)
    })
    .await
    .map_err(ApiError::internal)??;
    let now = ids::now_ms();
    let record = NotebookRecord {
        id: ids::random_id(),
        title,
        owner_id: owner_id.to_owned(),
        created_at_ms: now,
        updated_at_ms: now,
        general_access: GeneralAccess::Restricted,
        link_role: Role::Viewer,
        editors_may_run: true,
    };
    app.store.create_notebook(&record, &initial_state).await?;
    tracing::info!(doc_id = %record.id, bytes = initial_state.len(), "notebook created");
    Ok(record)
}

/// A title as stored: trimmed, "Untitled" when empty, 400 when too long.
fn clean_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request(
            "invalid_title",
            format!("title longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(if title.is_empty() { "Untitled" } else { title }.to_owned())
}

/// Mirrors the title into the document (`state.title`), so open pages show a rename at once.
/// The `.ipynb` export does not carry it: `state` is not part of the notebook file.
fn write_title(txn: &mut yrs::TransactionMut, title: &str) {
    let state = txn.get_or_insert_map(tandem_crdt::schema::STATE);
    state.insert(txn, tandem_crdt::schema::STATE_TITLE, title);
}

/// `PATCH /api/notebooks/{id}` `{"title"}`: editors and the owner rename a notebook; the
/// new title is stored and written into the live document for everyone who has it open.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %caller.log_id()))]
async fn rename_notebook(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateNotebook>,
) -> Result<Json<NotebookInfo>, ApiError> {
    let (mut record, role) = caller_access(&app, &caller, &id).await?;
    if !role.can_edit() {
        return Err(ApiError::forbidden(format!(
            "a {role} cannot rename the notebook"
        )));
    }
    let title = clean_title(&body.title)?;
    if !app.store.rename_notebook(&id, &title).await? {
        return Err(ApiError::notebook_not_found());
    }
    let doc_title = title.clone();
    app.rooms
        .get(&id)
        .edit(move |txn| write_title(txn, &doc_title))
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    if let Caller::User(user) = &caller
        && let Err(error) = app.store.note_edited(&id, &user.id).await
    {
        tracing::warn!(%error, "could not record the last editor");
    }
    tracing::info!("notebook renamed");
    record.title = title;
    record.updated_at_ms = ids::now_ms();
    Ok(Json(info(&record, role)))
}

/// What a new notebook holds, as in Jupyter and Colab: one empty code cell.
fn blank_notebook() -> serde_json::Value {
    serde_json::json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": null}],
    })
}

/// The caller's notebooks: owned ones, then those shared with them by grant, each list most
/// recently updated first, each with its owner, last editor and when the caller last opened
/// it. (Notebooks opened only through an anyone-with-the-link link are not listed, as in
/// Google Docs' "shared with me" before the link is opened.)
async fn list_notebooks(
    State(app): State<App>,
    SignedIn(user): SignedIn,
) -> Result<Json<Vec<NotebookInfo>>, ApiError> {
    let owned = app.store.notebooks_owned_by(&user.id).await?;
    let shared = app.store.notebooks_shared_with(&user.email).await?;
    let mut list: Vec<(NotebookRecord, Role)> =
        owned.into_iter().map(|r| (r, Role::Owner)).collect();
    list.extend(
        shared
            .into_iter()
            // A grant left on a notebook its grantee now owns is shown once, as owned.
            .filter(|(r, _)| r.owner_id != user.id)
            .map(|(record, grant)| {
                let role = crate::auth::resolve_role(&record, Some(&user), Some(grant));
                (record, role.unwrap_or(grant))
            }),
    );
    Ok(Json(library::describe(&app, &user, list).await?))
}

async fn get_notebook(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NotebookInfo>, ApiError> {
    let (record, role) = caller_access(&app, &caller, &id).await?;
    Ok(Json(info(&record, role)))
}

#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %caller.log_id()))]
async fn export_ipynb(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let with_comments = comments::export_query(&query)?;
    let (_, role) = caller_access(&app, &caller, &id).await?;
    let room = app.rooms.get(&id);
    let mut ipynb = room
        .read(|doc| Notebook::from_doc(doc.clone()).to_ipynb())
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    // Comments live outside the document; an export carries them only when asked.
    if with_comments {
        comments::add_to_export(&app, &id, role, &mut ipynb).await?;
    }
    Ok(Json(ipynb))
}

#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn delete_notebook(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (_, role) = caller_access(&app, &Caller::User(user), &id).await?;
    if role != Role::Owner {
        return Err(ApiError::forbidden("only the owner can delete a notebook"));
    }
    app.rooms.delete(&id).await;
    app.store.delete_notebook(&id).await?;
    app.access.publish(AccessEvent::Notebook(id.clone()));
    tracing::info!("notebook deleted");
    Ok(StatusCode::NO_CONTENT)
}
