//! Running code: `POST /api/notebooks/{id}/execute`, `/interrupt` and `/restart`.
//!
//! The collab service checks the caller's role and the cell ids against the live document,
//! then hands the work to the runtime over the control channel and answers 202 once the
//! runtime has queued it. Outputs arrive in the document, written by the runtime.
//!
//! Each command carries the caller and a [`RuntimeAccess`] (the notebook's owner and its
//! `editors_may_run` setting): the runtime, which knows whose kernel is running, applies the
//! rule and may answer `runtime_not_shared`, which is 403 here.
//!
//! An execute may carry the caller's state vector: its edits travel over its WebSocket while
//! the request travels over HTTP, so the service first waits (up to [`CATCH_UP`]) until the
//! room's document includes that state, then passes it on, and the runtime waits likewise for
//! its own replica before it reads the cells' code. The caller's last keystroke always runs.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use tandem_crdt::{CellType, Notebook};
use tandem_protocol::runtime::{Command, Reply, RuntimeAccess};
use tandem_protocol::{ExecuteRequest, Queued, RuntimeType};

use super::ApiJson;
use crate::App;
use crate::auth::{Caller, SignedIn, caller_access, notebook_access, require_editor};
use crate::error::ApiError;
use crate::room::RoomHandle;
use crate::runtime_hub::HubError;
use crate::store::{NotebookRecord, User};

/// How long an execute waits for the caller's edits to reach the room. They are normally
/// there within a round trip; past this the cells run with what the room has (and a warning
/// is logged), so a bogus state vector cannot hold a request for long.
const CATCH_UP: Duration = Duration::from_secs(2);

/// How often the room is asked again while waiting for the caller's edits.
const CATCH_UP_POLL: Duration = Duration::from_millis(5);

#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn execute(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExecuteRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let (record, role) = notebook_access(&app, &user, &id).await?;
    require_editor(role)?;
    // Exactly one of the three forms: a non-empty list, run-all, or run-stale.
    let has_ids = !body.cell_ids.is_empty();
    if [has_ids, body.all, body.stale]
        .iter()
        .filter(|&&f| f)
        .count()
        != 1
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            "send one of {\"cell_ids\": [...]} (non-empty), {\"all\": true} or {\"stale\": true}",
        ));
    }
    let room = app.rooms.get(&id);
    let state_vector = match &body.state_vector {
        Some(encoded) => caught_up(&room, encoded).await?,
        None => None,
    };
    let code_cells = room
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
    } else if body.stale {
        // The runtime knows which cells are stale; it resolves them.
        Vec::new()
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
    if cell_ids.is_empty() && !body.stale {
        return Ok((StatusCode::ACCEPTED, Json(Queued { queued: Vec::new() })));
    }
    let reply = call(&app, |request| Command::Execute {
        request,
        notebook_id: id.clone(),
        cell_ids,
        stop_on_error: body.all,
        stale: body.stale,
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        state_vector,
        access: access(&record),
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { queued: reply })))
}

/// Waits until the room's document includes the caller's state vector (v1, base64). Returns
/// it to pass on to the runtime, or `None` when the room did not catch up in time (the
/// runtime then need not wait either). 400 when it does not decode.
async fn caught_up(room: &RoomHandle, encoded: &str) -> Result<Option<String>, ApiError> {
    use yrs::updates::decoder::Decode;
    let invalid = |what: String| {
        ApiError::bad_request(
            "invalid_state_vector",
            format!("`state_vector` is a base64 Yjs state vector (v1): {what}"),
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| invalid(e.to_string()))?;
    let wanted = yrs::StateVector::decode_v1(&bytes).map_err(|e| invalid(e.to_string()))?;
    let wanted = std::sync::Arc::new(wanted);
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let check = std::sync::Arc::clone(&wanted);
        let included = room
            .read(move |doc| tandem_crdt::doc_includes(doc, &check))
            .await
            .map_err(|_| ApiError::notebook_not_found())?;
        if included {
            return Ok(Some(encoded.to_owned()));
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                wait = ?CATCH_UP,
                "the caller's edits did not reach the room in time; running what it has"
            );
            return Ok(None);
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

pub(super) async fn interrupt(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user_id = user.id.clone();
    control(&app, &user, id, |request, notebook_id, access| {
        Command::Interrupt {
            request,
            notebook_id,
            user_id,
            access,
        }
    })
    .await
}

pub(super) async fn restart(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (user_id, user_name) = (user.id.clone(), user.name.clone());
    control(&app, &user, id, |request, notebook_id, access| {
        Command::Restart {
            request,
            notebook_id,
            user_id,
            user_name,
            access,
        }
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
    let (record, role) = notebook_access(&app, &user, &id).await?;
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
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        access: access(&record),
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
        Ok(_) => Err(ApiError::internal(anyhow::anyhow!(
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
    make: impl FnOnce(u64, String, RuntimeAccess) -> Command,
) -> Result<StatusCode, ApiError> {
    let (record, role) = notebook_access(app, user, &id).await?;
    require_editor(role)?;
    call(app, |request| make(request, id, access(&record))).await?;
    Ok(StatusCode::ACCEPTED)
}

/// What callers may do in a kernel someone else holds, from the notebook's sharing.
pub(super) fn access(record: &NotebookRecord) -> RuntimeAccess {
    RuntimeAccess {
        owner_id: record.owner_id.clone(),
        editors_may_run: record.editors_may_run,
    }
}

/// Calls the runtime and maps its answer and failures to HTTP.
async fn call(app: &App, make: impl FnOnce(u64) -> Command) -> Result<Vec<String>, ApiError> {
    match call_reply(app, make).await? {
        Reply::Ok { queued, .. } => Ok(queued),
        other => Err(ApiError::internal(anyhow::anyhow!(
            "unexpected reply: {other:?}"
        ))),
    }
}

/// Calls the runtime; its refusals and failures become HTTP errors, any other reply is
/// the caller's to read.
pub(super) async fn call_reply(
    app: &App,
    make: impl FnOnce(u64) -> Command,
) -> Result<Reply, ApiError> {
    match app.runtimes.call(app.config.runtime_timeout, make).await {
        Ok(Reply::Error { code, message, .. }) => {
            let code = runtime_code(&code);
            // Someone else's runtime (or cell) is theirs: a permission, not a conflict.
            let status = if matches!(code, "runtime_not_shared" | "input_not_yours") {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::CONFLICT
            };
            Err(ApiError::new(status, code, message))
        }
        Ok(reply) => Ok(reply),
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
        "runtime_not_shared" => "runtime_not_shared",
        "no_kernel" => "no_kernel",
        "kernel_busy" => "kernel_busy",
        "no_input" => "no_input",
        "input_not_yours" => "input_not_yours",
        _ => "runtime_error",
    }
}
