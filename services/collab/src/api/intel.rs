//! Code intelligence and stdin, answered to the caller alone (nothing enters the document):
//! `POST /api/notebooks/{id}/complete` and `/inspect` ask the notebook's running kernel, and
//! `POST /api/notebooks/{id}/input` answers a running cell's `input()`.
//!
//! All three take whoever may run code in the notebook: an editor or the owner (viewers and
//! commenters get 403), and in someone else's runtime only as the execute rule allows
//! (`runtime_not_shared`, see [`RuntimeAccess`]). The runtime applies that rule and, for
//! input, that the caller ran the waiting cell.
//!
//! [`RuntimeAccess`]: tandem_protocol::runtime::RuntimeAccess

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing};
use tandem_protocol::runtime::{Complete, Input, Inspect};
use tandem_protocol::{CompleteRequest, Completions, InputAnswer, InspectRequest, Inspection};

use super::ApiJson;
use super::execution::{access, call};
use crate::App;
use crate::auth::{SignedIn, notebook_access, require_editor};
use crate::error::ApiError;

/// Longest code sent for a completion or inspection, in bytes: far beyond any cell anyone
/// types, small enough that a request cannot make the kernel parse megabytes.
const MAX_CODE_BYTES: usize = 256 * 1024;

/// Longest line accepted for `input()`, in bytes.
const MAX_INPUT_BYTES: usize = 64 * 1024;

/// The routes, merged into the API's router.
pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/notebooks/{id}/complete", routing::post(complete))
        .route("/api/notebooks/{id}/inspect", routing::post(inspect))
        .route("/api/notebooks/{id}/input", routing::post(input))
}

#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn complete(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> Result<Json<Completions>, ApiError> {
    let (record, role) = notebook_access(&app, &user, &id).await?;
    require_editor(role)?;
    check_code(&body.code, body.cursor)?;
    let complete = Complete {
        code: body.code,
        cursor: body.cursor,
        user_id: user.id.clone(),
        access: access(&record),
    };
    Ok(Json(call(&app, &id, complete).await?))
}

#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn inspect(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InspectRequest>,
) -> Result<Json<Inspection>, ApiError> {
    let (record, role) = notebook_access(&app, &user, &id).await?;
    require_editor(role)?;
    check_code(&body.code, body.cursor)?;
    if body.detail_level > 1 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`detail_level` is 0 (signature and docstring) or 1 (also the source)",
        ));
    }
    let inspect = Inspect {
        code: body.code,
        cursor: body.cursor,
        detail_level: body.detail_level,
        user_id: user.id.clone(),
        access: access(&record),
    };
    Ok(Json(call(&app, &id, inspect).await?))
}

#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
async fn input(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InputAnswer>,
) -> Result<StatusCode, ApiError> {
    let (_, role) = notebook_access(&app, &user, &id).await?;
    require_editor(role)?;
    if body.value.len() > MAX_INPUT_BYTES {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("the answer is longer than {MAX_INPUT_BYTES} bytes"),
        ));
    }
    let answer = Input {
        user_id: user.id.clone(),
        value: body.value,
    };
    call(&app, &id, answer).await?;
    Ok(StatusCode::ACCEPTED)
}

/// 400 unless `code` is small enough and `cursor` lies within it (UTF-16 code units).
fn check_code(code: &str, cursor: u32) -> Result<(), ApiError> {
    if code.len() > MAX_CODE_BYTES {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("`code` is longer than {MAX_CODE_BYTES} bytes"),
        ));
    }
    let length = code.encode_utf16().count();
    if usize::try_from(cursor).unwrap_or(usize::MAX) > length {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("`cursor` ({cursor}) is past the end of `code` ({length} UTF-16 code units)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_count_utf16_units_and_stay_within_the_code() {
        assert!(check_code("os.pa", 5).is_ok());
        assert!(check_code("os.pa", 6).is_err());
        // An emoji is two UTF-16 units.
        assert!(check_code("x = '😀'", 8).is_ok());
        assert!(check_code("x = '😀'", 9).is_err());
        assert!(check_code(&"x".repeat(MAX_CODE_BYTES + 1), 0).is_err());
    }
}
