//! Users' secrets: `/api/secrets` for their owners (names and grants, never values back), and
//! the runtime's lookup ([`for_cell`], asked over the runtime's control link, not HTTP), which
//! opens a value only for the user who ran the asking cell, in a notebook they granted it to
//! and can still edit.
//!
//! Values are sealed here before they reach the store and opened here after; no handler logs
//! a value or puts one in an error message.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing};
use tandem_protocol::secrets::{MAX_VALUE_BYTES, PutSecret, SecretInfo};

use super::ApiJson;
use crate::App;
use crate::auth::{Caller, SignedIn, caller_access};
use crate::error::ApiError;
use crate::secrets::{SecretsKey, valid_name};
use crate::store::{SecretLookup, StoreError};
use crate::{ids, store};

/// The secrets routes, merged into the API's router.
pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/secrets", routing::get(list))
        .route("/api/secrets/{name}", routing::put(put).delete(delete))
        .route(
            "/api/secrets/{name}/notebooks/{notebook_id}",
            routing::put(grant).delete(revoke),
        )
}

fn key(app: &App) -> Result<&SecretsKey, ApiError> {
    app.secrets.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "secrets_unconfigured",
            "secrets are off on this server: collab nodes on Redis need --secrets-key \
             (TANDEM_SECRETS_KEY)",
        )
    })
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            "a secret's name is 1 to 64 of A-Z, 0-9 and _, not starting with a digit",
        ))
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "secret_not_found",
        format!("Secret {name} does not exist."),
    )
}

fn info(secret: store::SecretInfo) -> SecretInfo {
    SecretInfo {
        name: secret.name,
        updated_at: ids::rfc3339(secret.updated_at_ms),
        notebooks: secret.notebooks,
    }
}

/// `GET /api/secrets`: the caller's secrets, names and grants only.
async fn list(
    State(app): State<App>,
    SignedIn(user): SignedIn,
) -> Result<Json<Vec<SecretInfo>>, ApiError> {
    key(&app)?;
    let secrets = app.store.secrets(&user.id).await?;
    Ok(Json(secrets.into_iter().map(info).collect()))
}

/// `PUT /api/secrets/{name}` `{"value"}`: creates or replaces a value.
#[tracing::instrument(skip_all, fields(user_id = %user.id, secret = %name))]
async fn put(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PutSecret>,
) -> Result<Json<SecretInfo>, ApiError> {
    let key = key(&app)?;
    check_name(&name)?;
    if body.value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a secret's value is at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let sealed = key.seal(&user.id, &name, &body.value);
    drop(body);
    let now = ids::now_ms();
    app.store.put_secret(&user.id, &name, &sealed, now).await?;
    tracing::info!("secret set");
    let secret = app
        .store
        .secrets(&user.id)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or(store::SecretInfo {
            name,
            updated_at_ms: now,
            notebooks: Vec::new(),
        });
    Ok(Json(info(secret)))
}

/// `DELETE /api/secrets/{name}`: the secret and its grants.
#[tracing::instrument(skip_all, fields(user_id = %user.id, secret = %name))]
async fn delete(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    key(&app)?;
    check_name(&name)?;
    if !app.store.delete_secret(&user.id, &name).await? {
        return Err(not_found(&name));
    }
    tracing::info!("secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/secrets/{name}/notebooks/{notebook_id}`: grants the secret to a notebook the
/// caller can edit (a notebook they could not run gains nothing from it).
#[tracing::instrument(skip_all, fields(user_id = %user.id, secret = %name, doc_id = %notebook_id))]
async fn grant(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path((name, notebook_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    key(&app)?;
    check_name(&name)?;
    let (_, role) = caller_access(&app, &Caller::User(user.clone()), &notebook_id).await?;
    if !role.can_edit() {
        return Err(ApiError::forbidden(format!(
            "a {role} cannot run the notebook, so cannot give it secrets"
        )));
    }
    match app.store.grant_secret(&user.id, &name, &notebook_id).await {
        Ok(()) => {}
        Err(StoreError::NotFound("secret")) => return Err(not_found(&name)),
        Err(err) => return Err(err.into()),
    }
    tracing::info!("secret granted to a notebook");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/secrets/{name}/notebooks/{notebook_id}`: revokes a grant (idempotent).
#[tracing::instrument(skip_all, fields(user_id = %user.id, secret = %name, doc_id = %notebook_id))]
async fn revoke(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path((name, notebook_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    key(&app)?;
    check_name(&name)?;
    if app
        .store
        .revoke_secret(&user.id, &name, &notebook_id)
        .await?
    {
        tracing::info!("secret revoked from a notebook");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The value of `user_id`'s secret `name` for a cell they ran in `notebook_id`: a runtime's
/// ask ([`tandem_protocol::runtime::AskBody::Secret`]), which the runtime hub answers.
#[tracing::instrument(skip_all, fields(doc_id = %notebook_id, %user_id, secret = %name))]
pub(crate) async fn for_cell(
    app: &App,
    notebook_id: &str,
    user_id: &str,
    name: &str,
) -> Result<String, ApiError> {
    let key = key(app)?;
    check_name(name)?;
    let no_access = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "notebook_access",
            format!(
                "Notebook does not have access to secret {name}: grant it in the Secrets panel"
            ),
        )
    };
    let Some(user) = app.store.user_by_id(user_id).await? else {
        return Err(not_found(name));
    };
    // Whoever ran the cell must still be able to run it: a grant outlives lost access.
    let role = match caller_access(app, &Caller::User(user), notebook_id).await {
        Ok((_, role)) => role,
        Err(_) => return Err(no_access()),
    };
    if !role.can_edit() {
        return Err(no_access());
    }
    let sealed = match app
        .store
        .secret_for_notebook(user_id, name, notebook_id)
        .await?
    {
        SecretLookup::Missing => return Err(not_found(name)),
        SecretLookup::NotGranted => return Err(no_access()),
        SecretLookup::Granted(sealed) => sealed,
    };
    let value = key
        .open(user_id, name, &sealed)
        .map_err(ApiError::internal)?;
    tracing::info!("secret read by a kernel");
    Ok(value)
}
