//! Who is calling, and what they may do with a notebook.
//!
//! Users authenticate with a personal access token, sent as `Authorization: Bearer <token>`
//! or, for WebSocket clients that cannot set headers, as the `token` query parameter. Tokens
//! are stored only as hashes. Runtime nodes present the service credential instead, which
//! lets them join any notebook as an editor and open the control channel, and nothing else.
//! Notebook access is decided here for every route and the WebSocket alike, so the two can
//! never disagree.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tandem_protocol::{Role, TOKEN_QUERY_PARAM};

use crate::App;
use crate::error::ApiError;
use crate::ids;
use crate::store::{NotebookRecord, Store, StoreError, User};

/// Creates the user if absent and issues a new personal access token for them. The token is
/// returned once and never stored in the clear.
pub async fn create_token(
    store: &dyn Store,
    email: &str,
    name: &str,
) -> Result<(User, String), StoreError> {
    let user = store.upsert_user(email, name).await?;
    let token = ids::new_token();
    store
        .insert_token(&user.id, &ids::token_hash(&token))
        .await?;
    Ok((user, token))
}

/// An authenticated caller; extracting it answers 401 when there is none.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A signed-in user.
    User(User),
    /// A runtime node holding the service credential.
    Service,
}

impl Caller {
    /// An id for logs: the user's id, or `service`.
    pub fn log_id(&self) -> &str {
        match self {
            Caller::User(user) => &user.id,
            Caller::Service => "service",
        }
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)
            .or_else(|| query_token(parts))
            .ok_or_else(ApiError::unauthorized)?;
        let hash = ids::token_hash(&token);
        // Compared as hashes, so the comparison's timing says nothing about the secret.
        if app.service_token_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Caller::Service);
        }
        let user = app.store.user_by_token(&hash).await?;
        user.map(Caller::User).ok_or_else(ApiError::unauthorized)
    }
}

/// A request from a signed-in user; the service credential is refused here.
#[derive(Debug, Clone)]
pub struct SignedIn(pub User);

impl FromRequestParts<App> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, app).await? {
            Caller::User(user) => Ok(SignedIn(user)),
            Caller::Service => Err(ApiError::forbidden(
                "the service credential is for runtimes only",
            )),
        }
    }
}

fn bearer_token(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == TOKEN_QUERY_PARAM)
        .map(|(_, v)| v.into_owned())
}

/// A user's role on a notebook, or 404 when it does not exist or they have none (the two
/// look the same to outsiders).
pub async fn notebook_access(
    app: &App,
    user: &User,
    notebook_id: &str,
) -> Result<(NotebookRecord, Role), ApiError> {
    let record = app
        .store
        .notebook(notebook_id)
        .await?
        .ok_or_else(ApiError::notebook_not_found)?;
    let role = role_of(&record, user).ok_or_else(ApiError::notebook_not_found)?;
    Ok((record, role))
}

/// Any caller's role on a notebook: runtimes edit every notebook (they write outputs).
pub async fn caller_access(
    app: &App,
    caller: &Caller,
    notebook_id: &str,
) -> Result<(NotebookRecord, Role), ApiError> {
    match caller {
        Caller::User(user) => notebook_access(app, user, notebook_id).await,
        Caller::Service => {
            let record = app
                .store
                .notebook(notebook_id)
                .await?
                .ok_or_else(ApiError::notebook_not_found)?;
            Ok((record, Role::Editor))
        }
    }
}

/// Until sharing exists, a notebook is its owner's alone.
fn role_of(record: &NotebookRecord, user: &User) -> Option<Role> {
    (record.owner_id == user.id).then_some(Role::Owner)
}

/// 403 unless `role` may run code.
pub fn require_editor(role: Role) -> Result<(), ApiError> {
    if role.can_edit() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "a {role} cannot run or control the notebook's runtime"
        )))
    }
}
