//! `POST /api/notebooks/{id}/outputs/clear`: "Clear output" and "Clear all outputs".
//!
//! Outputs are the runtime's: the document guard refuses any client update that writes them
//! (`tandem_crdt::guard`), so an editor's page cannot clear them over its WebSocket. This
//! route clears them for an editor as the server's own edit of the live document (through the
//! notebook's room), which is persisted and broadcast like anyone's typing: every open page
//! sees the outputs go at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing};
use tandem_crdt::EditError;
use tandem_crdt::clear::{Clear, clear_outputs};
use tandem_protocol::{ClearOutputs, ClearedOutputs};
use tokio::sync::oneshot;

use super::ApiJson;
use crate::App;
use crate::auth::{Caller, caller_access};
use crate::error::ApiError;

/// The outputs routes, merged into the API router.
pub fn routes() -> Router<App> {
    Router::new().route("/api/notebooks/{id}/outputs/clear", routing::post(clear))
}

/// Clears the outputs, execution counts and "run by" of the cells named (all code cells when
/// `cell_ids` is absent). Editors and the owner; 403 for viewers and commenters; 404
/// `unknown_cell` when an id names no cell, 400 `not_code` when it names a markdown or raw
/// cell (nothing is cleared then).
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %caller.log_id()))]
async fn clear(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ClearOutputs>,
) -> Result<Json<ClearedOutputs>, ApiError> {
    let (_, role) = caller_access(&app, &caller, &id).await?;
    if !role.can_edit() {
        return Err(ApiError::forbidden(format!(
            "a {role} cannot clear the notebook's outputs"
        )));
    }
    if body.cell_ids.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`cell_ids` names no cell: leave it out to clear every code cell",
        ));
    }
    let (reply, answer) = oneshot::channel();
    app.rooms
        .get(&id)
        .edit(move |txn| {
            let which = match &body.cell_ids {
                Some(ids) => Clear::Cells(ids),
                None => Clear::All,
            };
            let _ = reply.send(clear_outputs(txn, which));
        })
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    let cleared = answer
        .await
        .map_err(|_| ApiError::notebook_not_found())?
        .map_err(|err| match err {
            EditError::CellNotFound(cell) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_cell",
                format!("no cell with id {cell:?} in this notebook"),
            ),
            EditError::NotACodeCell(cell) => ApiError::bad_request(
                "not_code",
                format!("cell {cell:?} is not a code cell: only code cells have outputs"),
            ),
            other => ApiError::internal(anyhow::Error::new(other)),
        })?;
    tracing::info!(cells = cleared.len(), "outputs cleared");
    Ok(Json(ClearedOutputs { cleared }))
}
