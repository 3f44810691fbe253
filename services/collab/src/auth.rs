//! Who is calling, and what they may do with a notebook.
//!
//! A caller is one of: a user holding a personal access token (`Authorization: Bearer`, or
//! the `token` query parameter for WebSocket clients that cannot set headers), a user with a
//! sign-in session cookie, a runtime node holding the service credential, or nobody. Tokens
//! and session ids are stored only as hashes. Notebook roles are decided here, by
//! [`resolve_role`], for every route and the WebSocket alike, so the two can never disagree.
//!
//! # Layout
//! - [`config`]: [`AuthConfig`], the sign-in settings.
//! - [`session`]: session cookies, CSRF and sign-out.
//! - [`oauth`]: sign-in with OAuth 2.0 / OpenID Connect providers.
//! - [`local`]: the "name and email" sign-in on loopback, behind the token each node prints.
//! - [`pages`]: the server-rendered sign-in page.
//! - [`limits`]: rate limits on sign-in and token attempts.
//! - [`events`]: access changes (sharing edits, sign-outs) that open connections re-check.

pub mod config;
pub mod events;
pub mod limits;
pub mod local;
pub mod oauth;
pub mod pages;
pub mod session;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tandem_protocol::{GeneralAccess, Role, TOKEN_QUERY_PARAM};

pub use config::AuthConfig;

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

/// Who is calling. Extracting it never fails for a request without credentials (that is
/// [`Caller::Anonymous`]); it answers 401 for a token that is not valid, 403 for a
/// cookie-authenticated change without its CSRF token, and 429 past the attempt limit.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A signed-in user.
    User(User),
    /// A runtime node holding the service credential.
    Service,
    /// No credentials: may open notebooks shared with anyone who has the link.
    Anonymous,
}

impl Caller {
    /// An id for logs: the user's id, `service` or `anonymous`.
    pub fn log_id(&self) -> &str {
        match self {
            Caller::User(user) => &user.id,
            Caller::Service => "service",
            Caller::Anonymous => "anonymous",
        }
    }
}

/// How a caller proved who they are; kept by long-lived connections to check again when
/// access changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A personal access token, by hash.
    Token(String),
    /// A sign-in session, by hash of its id.
    Session(String),
    /// The service credential.
    Service,
    /// None.
    None,
}

/// A caller together with the credential it presented.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who is calling.
    pub caller: Caller,
    /// How they proved it.
    pub credential: Credential,
}

impl FromRequestParts<App> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer_token(parts).or_else(|| query_token(parts)) {
            let hash = ids::token_hash(&token);
            // Compared as hashes, so the comparison's timing says nothing about the secret.
            if app.service_token_hash.as_deref() == Some(hash.as_str()) {
                return Ok(Self {
                    caller: Caller::Service,
                    credential: Credential::Service,
                });
            }
            let user = user_for(app, &Credential::Token(hash.clone())).await?;
            let Some(user) = user else {
                app.limits.token_failure(app.limits.client(parts))?;
                return Err(ApiError::unauthorized());
            };
            return Ok(Self {
                caller: Caller::User(user),
                credential: Credential::Token(hash),
            });
        }
        if let Some((session, user)) = session::from_cookie(app, parts).await? {
            session::check_csrf(app, parts, &session)?;
            return Ok(Self {
                caller: Caller::User(user),
                credential: Credential::Session(session.hash),
            });
        }
        Ok(Self {
            caller: Caller::Anonymous,
            credential: Credential::None,
        })
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        Ok(Authenticated::from_request_parts(parts, app).await?.caller)
    }
}

/// A request from a signed-in user: 401 without credentials; the service credential is
/// refused here.
#[derive(Debug, Clone)]
pub struct SignedIn(pub User);

impl FromRequestParts<App> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, app).await? {
            Caller::User(user) => Ok(SignedIn(user)),
            Caller::Anonymous => Err(ApiError::unauthorized()),
            Caller::Service => Err(ApiError::forbidden(
                "the service credential is for runtimes only",
            )),
        }
    }
}

/// The user a credential stands for now (`None` once a session ended or for the service).
pub async fn user_for(app: &App, credential: &Credential) -> Result<Option<User>, ApiError> {
    Ok(match credential {
        Credential::Token(hash) => app.store.user_by_token(hash).await?,
        Credential::Session(hash) => app.store.session(hash).await?.map(|(_, user)| user),
        Credential::Service | Credential::None => None,
    })
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

/// A signed-in user's role on a notebook, or 404 when it does not exist or they have none
/// (the two look the same to outsiders).
pub async fn notebook_access(
    app: &App,
    user: &User,
    notebook_id: &str,
) -> Result<(NotebookRecord, Role), ApiError> {
    caller_access(app, &Caller::User(user.clone()), notebook_id).await
}

/// Any caller's role on a notebook. Runtimes edit every notebook (they write outputs). An
/// anonymous caller gets the link role of a notebook shared with anyone who has the link,
/// and 401 otherwise (whether or not the notebook exists); a signed-in user without access
/// gets 404.
pub async fn caller_access(
    app: &App,
    caller: &Caller,
    notebook_id: &str,
) -> Result<(NotebookRecord, Role), ApiError> {
    let record = app.store.notebook(notebook_id).await?;
    let role = match (&record, caller) {
        (Some(_), Caller::Service) => Some(Role::Editor),
        (Some(record), Caller::User(user)) => {
            let grant = app.store.grant_for(&record.id, &user.email).await?;
            resolve_role(record, Some(user), grant)
        }
        (Some(record), Caller::Anonymous) => resolve_role(record, None, None),
        (None, _) => None,
    };
    match (record, role) {
        (Some(record), Some(role)) => Ok((record, role)),
        _ if matches!(caller, Caller::Anonymous) => Err(ApiError::unauthorized()),
        _ => Err(ApiError::notebook_not_found()),
    }
}

/// The role of `user` (or of someone with only the link, for `None`) on a notebook: the
/// highest of ownership, their grant, and the link role when anyone with the link may open it.
pub fn resolve_role(
    record: &NotebookRecord,
    user: Option<&User>,
    grant: Option<Role>,
) -> Option<Role> {
    if user.is_some_and(|user| user.id == record.owner_id) {
        return Some(Role::Owner);
    }
    let link = (record.general_access == GeneralAccess::AnyoneWithLink).then_some(record.link_role);
    grant.max(link)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(access: GeneralAccess, link_role: Role) -> NotebookRecord {
        NotebookRecord {
            id: "nb".into(),
            title: "t".into(),
            owner_id: "owner".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
            general_access: access,
            link_role,
            editors_may_run: true,
        }
    }

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            email: format!("{id}@example.com"),
            name: id.into(),
        }
    }

    #[test]
    fn roles_combine_ownership_grants_and_the_link() {
        let restricted = record(GeneralAccess::Restricted, Role::Editor);
        let owner = user("owner");
        let bob = user("bob");
        assert_eq!(
            resolve_role(&restricted, Some(&owner), None),
            Some(Role::Owner)
        );
        assert_eq!(resolve_role(&restricted, Some(&bob), None), None);
        assert_eq!(resolve_role(&restricted, None, None), None);
        assert_eq!(
            resolve_role(&restricted, Some(&bob), Some(Role::Commenter)),
            Some(Role::Commenter)
        );

        let link = record(GeneralAccess::AnyoneWithLink, Role::Commenter);
        assert_eq!(resolve_role(&link, None, None), Some(Role::Commenter));
        // The higher of the grant and the link role wins, either way round.
        assert_eq!(
            resolve_role(&link, Some(&bob), Some(Role::Viewer)),
            Some(Role::Commenter)
        );
        assert_eq!(
            resolve_role(&link, Some(&bob), Some(Role::Editor)),
            Some(Role::Editor)
        );
    }
}
