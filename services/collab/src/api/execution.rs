//! Running code: `POST /api/notebooks/{id}/execute`, `/interrupt` and `/restart`.
//!
//! The collab service checks the caller's role and the cell ids against the live document,
//! then hands the work to the runtime over the control channel and answers 202 once the
//! runtime has queued it. Outputs arrive in the document, written by the runtime.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tandem_crdt::{CellType, Notebook};
use tandem_protocol::runtime::{Command, Reply};
use tandem_protocol::{ExecuteRequest, Queued, RuntimeType};

use super::ApiJson;
use crate::App;
use crate::auth::{Caller, SignedIn, caller_access, notebook_access, require_editor};
use crate::error::ApiError;
use crate::runtime_hub::HubError;
use crate::store::User;

#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn execute(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExecuteRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let (_, role) = notebook_access(&app, &user, &id).await?;
    require_editor(role)?;
    // Exactly one of the two forms: run-all, or a non-empty list.
    let has_ids = !body.cell_ids.is_empty();
    if body.all == has_ids {
        return Err(ApiError::bad_request(
            "invalid_request",
            "send either {\"cell_ids\": [...]} (non-empty) or {\"all\": true}",
        ));
    }
    let code_cells = app
        .rooms
        .get(&id)
        .read(|doc| {
            let notebook = Notebook::from_doc(doc.clone());
            notebook
                .cells()
                .into_iter()
                .filter(|c| c.cell_type == CellType::Code)
                .map(|c| c.id)
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    let cell_ids = if body.all {
        code_cells
    } else {
        if let Some(unknown) = body.cell_ids.iter().find(|id| !code_cells.contains(id)) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_cell",
                format!("no code cell with id {unknown:?} in this notebook"),
            ));
        }
        body.cell_ids
    };
    if cell_ids.is_empty() {
        return Ok((StatusCode::ACCEPTED, Json(Queued { queued: Vec::new() })));
    }
    let reply = call(&app, |request| Command::Execute {
        request,
        notebook_id: id.clone(),
        cell_ids,
        stop_on_error: body.all,
        user_id: user.id.clone(),
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { queued: reply })))
}

pub(super) async fn interrupt(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    control(&app, &user, id, |request, notebook_id| Command::Interrupt {
        request,
        notebook_id,
    })
    .await
}

pub(super) async fn restart(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    control(&app, &user, id, |request, notebook_id| Command::Restart {
        request,
        notebook_id,
    })
    .await
}

/// `PUT /api/notebooks/{id}/runtime`: CPU or GPU; the runtime restarts the kernel there, or
/// answers 409 `gpu_unavailable` when it has no GPU (the notebook stays as it was).
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn set_runtime(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuntimeType>,
) -> Result<Json<RuntimeType>, ApiError> {
    let (_, role) = notebook_access(&app, &user, &id).await?;
    require_editor(role)?;
    if !matches!(body.kind.as_str(), "cpu" | "gpu") {
        return Err(ApiError::bad_request(
            "invalid_runtime",
            format!(
                "the runtime type is \"cpu\" or \"gpu\", not {:?}",
                body.kind
            ),
        ));
    }
    let runtime = body.kind.clone();
    call(&app, |request| Command::SetRuntime {
        request,
        notebook_id: id,
        runtime,
    })
    .await?;
    Ok(Json(body))
}

/// `GET /api/notebooks/{id}/outputs/{file}`: the full text of a truncated output, for anyone
/// who may see the notebook.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %caller.log_id()))]
pub(super) async fn full_output(
    State(app): State<App>,
    caller: Caller,
    Path((id, file)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    caller_access(&app, &caller, &id).await?;
    let reply = app
        .runtimes
        .call(app.config.runtime_timeout, |request| Command::ReadOutput {
            request,
            notebook_id: id.clone(),
            file: file.clone(),
        })
        .await;
    match reply {
        Ok(Reply::Output { text, .. }) => {
            let disposition = format!("attachment; filename=\"{}\"", file.replace('"', ""));
            let headers = [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_owned(),
                ),
                (axum::http::header::CONTENT_DISPOSITION, disposition),
            ];
            Ok((headers, text).into_response())
        }
        Ok(Reply::Error { message, .. }) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", message))
        }
        Ok(Reply::Ok { .. }) => Err(ApiError::internal(anyhow::anyhow!(
            "the runtime answered a read with no text"
        ))),
        Err(err) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime_unavailable",
            err.to_string(),
        )),
    }
}

/// Interrupt and restart: editors only, answered 202 once the runtime took the command.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn control(
    app: &App,
    user: &User,
    id: String,
    make: impl FnOnce(u64, String) -> Command,
) -> Result<StatusCode, ApiError> {
    let (_, role) = notebook_access(app, user, &id).await?;
    require_editor(role)?;
    call(app, |request| make(request, id)).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Calls the runtime and maps its answer and failures to HTTP.
async fn call(app: &App, make: impl FnOnce(u64) -> Command) -> Result<Vec<String>, ApiError> {
    match app.runtimes.call(app.config.runtime_timeout, make).await {
        Ok(Reply::Ok { queued, .. }) => Ok(queued),
        Ok(Reply::Output { .. }) => Err(ApiError::internal(anyhow::anyhow!(
            "unexpected output reply"
        ))),
        Ok(Reply::Error { code, message, .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            runtime_code(&code),
            message,
        )),
        Err(err @ HubError::NoRuntime) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime_unavailable",
            format!("{err}; start one with `tandem runtime` or use `tandem serve`"),
        )),
        Err(err) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime_unavailable",
            err.to_string(),
        )),
    }
}

/// Error codes are `&'static str` at the edge; the runtime's are mapped onto known ones.
fn runtime_code(code: &str) -> &'static str {
    match code {
        "unknown_cell" => "unknown_cell",
        "kernel_limit" => "kernel_limit",
        "venv_missing" => "venv_missing",
        "gpu_unavailable" => "gpu_unavailable",
        _ => "runtime_error",
    }
}
