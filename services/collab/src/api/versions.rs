//! Version history routes (see `tandem_protocol::versions` for the contract): list, name,
//! view, compare and restore versions of a notebook.
//!
//! Versions are taken by the notebook's room (`room/actor/versions.rs`), which alone may
//! change the document: naming one and restoring one are requests to the room, so a restore is
//! one ordinary edit of the live document, persisted and broadcast like anyone's.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing};
use tandem_crdt::Notebook;
use tandem_crdt::history::{self, CellDiff, Contents};
use tandem_protocol::Role;
use tandem_protocol::versions::{
    CellChange, MAX_VERSION_NAME_CHARS, NameVersion, Restored, Version, VersionAuthor, VersionDiff,
};
use tokio::sync::oneshot;
use yrs::updates::decoder::Decode;
use yrs::{Transact, Update};

use super::ApiJson;
use crate::App;
use crate::auth::{Caller, SignedIn, caller_access};
use crate::error::ApiError;
use crate::ids;
use crate::store::VersionRecord;
use crate::versions::Request;

/// The version routes, merged into the API router.
pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/api/notebooks/{id}/versions",
            routing::get(list).post(name),
        )
        .route(
            "/api/notebooks/{id}/versions/{version_id}",
            routing::get(view),
        )
        .route(
            "/api/notebooks/{id}/versions/{version_id}/diff",
            routing::get(diff),
        )
        .route(
            "/api/notebooks/{id}/versions/{version_id}/restore",
            routing::post(restore),
        )
}

fn unknown_version() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_version",
        "no such version of this notebook",
    )
}

/// The caller's role when it may change the notebook; 403 for viewers and commenters (404 for
/// outsiders, as everywhere).
async fn editor_access(app: &App, caller: Caller, id: &str) -> Result<Role, ApiError> {
    let (_, role) = caller_access(app, &caller, id).await?;
    if !role.can_edit() {
        return Err(ApiError::forbidden(format!(
            "a {role} cannot name or restore versions"
        )));
    }
    Ok(role)
}

/// The versions as the API shows them, authors' names filled in.
async fn infos(app: &App, records: &[VersionRecord]) -> Result<Vec<Version>, ApiError> {
    let mut names: HashMap<&str, String> = HashMap::new();
    for id in records.iter().flat_map(|r| &r.author_ids) {
        if !names.contains_key(id.as_str()) {
            let user = app.store.user_by_id(id).await?;
            names.insert(id, user.map(|u| u.name).unwrap_or_default());
        }
    }
    Ok(records
        .iter()
        .map(|record| Version {
            id: record.id.clone(),
            created_at: ids::rfc3339(record.created_at_ms),
            kind: record.kind.as_str().to_owned(),
            name: record.name.clone(),
            authors: record
                .author_ids
                .iter()
                .map(|id| VersionAuthor {
                    id: id.clone(),
                    name: names.get(id.as_str()).cloned().unwrap_or_default(),
                })
                .collect(),
        })
        .collect())
}

async fn info(app: &App, record: &VersionRecord) -> Result<Version, ApiError> {
    let mut list = infos(app, std::slice::from_ref(record)).await?;
    list.pop()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no version info")))
}

/// A stored version and the notebook it holds (decoded off the async threads).
async fn load(
    app: &App,
    id: &str,
    version_id: &str,
) -> Result<(VersionRecord, Notebook), ApiError> {
    let (record, state) = app
        .store
        .version(id, version_id)
        .await?
        .ok_or_else(unknown_version)?;
    let notebook = tokio::task::spawn_blocking(move || {
        let notebook = Notebook::new();
        let update = Update::decode_v1(&state)?;
        notebook.doc().transact_mut().apply_update(update)?;
        Ok::<_, anyhow::Error>(notebook)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|err| ApiError::internal(err.context(format!("decoding version {version_id}"))))?;
    Ok((record, notebook))
}

/// `GET /api/notebooks/{id}/versions`: newest first.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %caller.log_id()))]
async fn list(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Version>>, ApiError> {
    caller_access(&app, &caller, &id).await?;
    let records = app.store.versions(&id).await?;
    Ok(Json(infos(&app, &records).await?))
}

/// `POST /api/notebooks/{id}/versions` `{"name"}`: names the notebook as it is now.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn name(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NameVersion>,
) -> Result<impl IntoResponse, ApiError> {
    editor_access(&app, Caller::User(user), &id).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_VERSION_NAME_CHARS {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("a version's name has 1 to {MAX_VERSION_NAME_CHARS} characters"),
        ));
    }
    let (reply, answer) = oneshot::channel();
    let request = Request::Name {
        name: name.to_owned(),
        reply,
    };
    let record = ask_room(&app, &id, request, answer).await?;
    tracing::info!(version = %record.id, "version named");
    Ok((StatusCode::CREATED, Json(info(&app, &record).await?)))
}

/// Sends `request` to the notebook's room and waits for its answer.
async fn ask_room<T>(
    app: &App,
    id: &str,
    request: Request,
    answer: oneshot::Receiver<anyhow::Result<T>>,
) -> Result<T, ApiError> {
    let room = app.rooms.get(id);
    room.version(request)
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    match answer.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => match err.downcast::<crate::store::StoreError>() {
            Ok(store) => Err(store.into()),
            Err(err) => Err(ApiError::internal(err)),
        },
        // The room stopped first (the notebook was deleted, or the store failed).
        Err(_) => Err(ApiError::notebook_not_found()),
    }
}

/// `GET /api/notebooks/{id}/versions/{version_id}`: the version as an `.ipynb`.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %caller.log_id()))]
async fn view(
    State(app): State<App>,
    caller: Caller,
    Path((id, version_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller_access(&app, &caller, &id).await?;
    let (_, notebook) = load(&app, &id, &version_id).await?;
    Ok(Json(notebook.to_ipynb()))
}

/// `GET /api/notebooks/{id}/versions/{version_id}/diff[?against=…]`.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %caller.log_id()))]
async fn diff(
    State(app): State<App>,
    caller: Caller,
    Path((id, version_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<VersionDiff>, ApiError> {
    caller_access(&app, &caller, &id).await?;
    let (from, before) = load(&app, &id, &version_id).await?;
    let (to, after) = match query.get("against") {
        Some(other) => {
            let (record, notebook) = load(&app, &id, other).await?;
            (Some(record), notebook.contents())
        }
        None => {
            let contents = app
                .rooms
                .get(&id)
                .read(|doc| Notebook::from_doc(doc.clone()).contents())
                .await
                .map_err(|_| ApiError::notebook_not_found())?;
            (None, contents)
        }
    };
    let cells = history::diff(&before.contents().cells, &after.cells)
        .into_iter()
        .map(cell_change)
        .collect();
    Ok(Json(VersionDiff {
        from: info(&app, &from).await?,
        to: match &to {
            Some(record) => Some(info(&app, record).await?),
            None => None,
        },
        cells,
    }))
}

fn cell_change(diff: CellDiff) -> CellChange {
    let outputs_changed = diff.fields.contains(&"outputs");
    let shown = diff.after.as_ref().or(diff.before.as_ref());
    CellChange {
        cell_type: shown
            .map(|c| c.cell_type.as_str())
            .unwrap_or_default()
            .to_owned(),
        change: diff.kind.as_str().to_owned(),
        fields: diff.fields.iter().map(|f| (*f).to_owned()).collect(),
        old_outputs: diff
            .before
            .as_ref()
            .filter(|_| outputs_changed)
            .map(|c| c.outputs.clone()),
        new_outputs: diff
            .after
            .as_ref()
            .filter(|_| outputs_changed)
            .map(|c| c.outputs.clone()),
        old_source: diff.before.map(|c| c.source),
        new_source: diff.after.map(|c| c.source),
        id: diff.id,
    }
}

/// `POST /api/notebooks/{id}/versions/{version_id}/restore`.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn restore(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path((id, version_id)): Path<(String, String)>,
) -> Result<Json<Restored>, ApiError> {
    editor_access(&app, Caller::User(user.clone()), &id).await?;
    let (record, notebook) = load(&app, &id, &version_id).await?;
    let contents: Contents = notebook.contents();
    let before_name = match &record.name {
        Some(name) => format!("Before restoring “{name}”"),
        None => format!(
            "Before restoring the version of {}",
            ids::rfc3339(record.created_at_ms)
        ),
    };
    let (reply, answer) = oneshot::channel();
    let request = Request::Restore {
        contents: Box::new(contents),
        before_name,
        author: user.id.clone(),
        reply,
    };
    let (before, summary) = ask_room(&app, &id, request, answer).await?;
    tracing::info!(version = %record.id, before = %before.id, "notebook restored to a version");
    Ok(Json(Restored {
        restored: info(&app, &record).await?,
        before_restore: info(&app, &before).await?,
        inserted: summary.inserted,
        deleted: summary.deleted,
        modified: summary.modified,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::VersionKind;
    use tandem_crdt::NewCell;
    use tandem_crdt::history::ChangeKind;

    #[test]
    fn cell_changes_carry_sources_and_changed_outputs_only() {
        let old = Notebook::new();
        old.insert_cell(0, NewCell::code("a").with_id("x")).unwrap();
        let new = Notebook::new();
        new.insert_cell(0, NewCell::code("b").with_id("x")).unwrap();
        new.append_stream("x", "stdout", "hi").unwrap();
        let changes: Vec<CellChange> = history::diff(&old.cells(), &new.cells())
            .into_iter()
            .map(cell_change)
            .collect();
        assert_eq!(changes.len(), 1);
        let change = &changes[0];
        assert_eq!(change.change, "changed");
        assert_eq!(change.fields, ["source", "outputs"]);
        assert_eq!(change.old_source.as_deref(), Some("a"));
        assert_eq!(change.new_source.as_deref(), Some("b"));
        assert_eq!(change.new_outputs.as_ref().map(Vec::len), Some(1));
        assert_eq!(ChangeKind::Removed.as_str(), "removed");
        assert_eq!(VersionKind::Named.as_str(), "named");
    }
}
