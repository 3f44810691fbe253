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
//! room's document includes that state (the room answers after the batch that brings it,
//! [`RoomHandle::includes`]), then passes it on, and the runtime waits likewise for
//! its own replica before it reads the cells' code. The caller's last keystroke always runs.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use tandem_crdt::{CellType, Notebook};
use tandem_protocol::ids::NotebookId;
use tandem_protocol::runtime::{
    Caller as RuntimeCaller, ErrorCode, Execute, Interrupt, ReadOutput, Refusal, Request, Restart,
    RuntimeAccess, RuntimeKind, SetRuntime, Target,
};
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
    let target = if body.stale {
        Target::Stale
    } else if body.all {
        Target::All(cell_ids)
    } else {
        Target::Cells(cell_ids)
    };
    let execute = Execute {
        target,
        caller: runtime_caller(&user),
        state_vector,
        access: access(&record),
    };
    let queued = call(&app, &id, execute).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { queued })))
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
    let included = room
        .includes(wanted, CATCH_UP)
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    if included {
        return Ok(Some(encoded.to_owned()));
    }
    tracing::warn!(
        wait = ?CATCH_UP,
        "the caller's edits did not reach the room in time; running what it has"
    );
    Ok(None)
}

pub(super) async fn interrupt(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = RuntimeCaller {
        user_id: user.id.clone(),
        user_name: String::new(),
    };
    control(&app, &user, id, |access| Interrupt { caller, access }).await
}

pub(super) async fn restart(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = runtime_caller(&user);
    control(&app, &user, id, |access| Restart { caller, access }).await
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
    let Some(runtime) = RuntimeKind::parse(&body.kind) else {
        return Err(ApiError::bad_request(
            "invalid_runtime",
            format!(
                "the runtime type is \"cpu\" or \"gpu\", not {:?}",
                body.kind
            ),
        ));
    };
    let switch = SetRuntime {
        runtime,
        caller: runtime_caller(&user),
        access: access(&record),
    };
    call(&app, &id, switch).await?;
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
    let read = ReadOutput { file: file.clone() };
    let text = call(&app, &id, read).await?;
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

/// Interrupt and restart: editors only, answered 202 once the runtime took the command.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn control<R: Request<Response = ()>>(
    app: &App,
    user: &User,
    id: String,
    make: impl FnOnce(RuntimeAccess) -> R,
) -> Result<StatusCode, ApiError> {
    let (record, role) = notebook_access(app, user, &id).await?;
    require_editor(role)?;
    call(app, &id, make(access(&record))).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The signed-in caller, as the runtime records who ran a cell or holds a kernel.
fn runtime_caller(user: &User) -> RuntimeCaller {
    RuntimeCaller {
        user_id: user.id.clone(),
        user_name: user.name.clone(),
    }
}

/// What callers may do in a kernel someone else holds, from the notebook's sharing.
pub(super) fn access(record: &NotebookRecord) -> RuntimeAccess {
    RuntimeAccess {
        owner_id: record.owner_id.clone(),
        editors_may_run: record.editors_may_run,
    }
}

/// Sends `request` to the notebook's runtime and gives back its answer; the runtime's
/// refusals and failures become HTTP errors.
pub(super) async fn call<R: Request>(
    app: &App,
    notebook_id: &str,
    request: R,
) -> Result<R::Response, ApiError> {
    // Ids the store made always parse; anything else names no notebook.
    let notebook_id = NotebookId::parse(notebook_id).map_err(|_| ApiError::notebook_not_found())?;
    let timeout = app.config.runtime_timeout;
    match app.runtimes.call(timeout, &notebook_id, request).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(refusal)) => Err(refused(refusal)),
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

/// The HTTP answer to a runtime's refusal, under the same code.
fn refused(refusal: Refusal) -> ApiError {
    let status = match refusal.code {
        // Someone else's runtime (or cell) is theirs: a permission, not a conflict.
        ErrorCode::RuntimeNotShared | ErrorCode::InputNotYours => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::UnknownCell
        | ErrorCode::KernelLimit
        | ErrorCode::GpuUnavailable
        | ErrorCode::NoKernel
        | ErrorCode::KernelBusy
        | ErrorCode::NoInput
        | ErrorCode::RuntimeError => StatusCode::CONFLICT,
    };
    ApiError::new(status, refusal.code.as_str(), refusal.message)
}
