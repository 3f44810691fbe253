//! The home page's side of the API: the listing's owner, last editor and "last opened"
//! ([`describe`]), what opening a notebook records ([`note_opened`]), and "Make a copy"
//! (`POST /api/notebooks/{id}/copy`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tandem_crdt::Notebook;
use tandem_protocol::{NotebookInfo, Person, Role};

use super::{MAX_TITLE_CHARS, import_notebook, info};
use crate::App;
use crate::auth::{Caller, SignedIn, caller_access};
use crate::error::ApiError;
use crate::ids;
use crate::store::{NotebookRecord, User};

/// The caller's notebooks as listed, each with its owner, its last editor and when the caller
/// last opened it. Users are looked up once each however many notebooks name them.
pub(super) async fn describe(
    app: &App,
    caller: &User,
    notebooks: Vec<(NotebookRecord, Role)>,
) -> Result<Vec<NotebookInfo>, ApiError> {
    let ids: Vec<String> = notebooks.iter().map(|(r, _)| r.id.clone()).collect();
    let activity = app.store.activity(&caller.id, &ids).await?;
    let mut people: HashMap<String, Option<User>> = HashMap::new();
    let mut list = Vec::with_capacity(notebooks.len());
    for (record, role) in notebooks {
        let seen = activity.get(&record.id);
        let mut described = info(&record, role);
        described.owner = person(app, &mut people, &record.owner_id, role).await?;
        if let Some(editor) = seen.and_then(|a| a.last_editor_id.as_deref()) {
            described.last_editor = person(app, &mut people, editor, role).await?;
        }
        described.last_opened_at = seen.and_then(|a| a.opened_at_ms).map(ids::rfc3339);
        list.push(described);
    }
    Ok(list)
}

/// A user as a listing shows them to someone with `role` (emails for editors and the owner
/// only), or `None` for a user who no longer exists.
async fn person(
    app: &App,
    cache: &mut HashMap<String, Option<User>>,
    id: &str,
    role: Role,
) -> Result<Option<Person>, ApiError> {
    let user = match cache.get(id) {
        Some(user) => user.clone(),
        None => {
            let user = app.store.user_by_id(id).await?;
            cache.insert(id.to_owned(), user.clone());
            user
        }
    };
    Ok(user.map(|user| Person {
        id: user.id,
        name: user.name,
        email: role.can_edit().then_some(user.email),
    }))
}

/// Records, on the side, that `caller` opened a notebook (a signed-in person's WebSocket to
/// it): the home page sorts by it. A failure is logged; it never stops the connection.
pub(crate) fn note_opened(app: &App, caller: &Caller, notebook_id: &str) {
    let Caller::User(user) = caller else { return };
    let (store, user_id, notebook_id) =
        (app.store.clone(), user.id.clone(), notebook_id.to_owned());
    app.tracker.spawn(async move {
        if let Err(error) = store
            .note_opened(&user_id, &notebook_id, ids::now_ms())
            .await
        {
            tracing::warn!(doc_id = %notebook_id, %error, "could not record an open");
        }
    });
}

/// "Copy of …", cut to the longest title accepted.
fn copy_title(title: &str) -> String {
    format!("Copy of {title}")
        .chars()
        .take(MAX_TITLE_CHARS)
        .collect()
}

/// `POST /api/notebooks/{id}/copy`: a new notebook owned by the caller with the cells of this
/// one, outputs included (as Colab's "Save a copy"), titled "Copy of …". Anyone signed in who
/// may open the notebook may copy it, a viewer by its link included; comments, sharing,
/// versions and secrets' grants stay with the original, as does the full text of outputs
/// that were cut short. 401 signed out, 404 for a notebook the caller cannot open.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn copy_notebook(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<NotebookInfo>), ApiError> {
    let (record, _) = caller_access(&app, &Caller::User(user.clone()), &id).await?;
    let ipynb = app
        .rooms
        .get(&id)
        .read(|doc| Notebook::from_doc(doc.clone()).to_ipynb())
        .await
        .map_err(|_| ApiError::notebook_not_found())?;
    let copy = import_notebook(&app, &user.id, copy_title(&record.title), ipynb, |_| {}).await?;
    tracing::info!(copy_id = %copy.id, "notebook copied");
    Ok((StatusCode::CREATED, Json(info(&copy, Role::Owner))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_titled_within_the_limit() {
        assert_eq!(copy_title("Plots"), "Copy of Plots");
        let long = "x".repeat(MAX_TITLE_CHARS);
        assert_eq!(copy_title(&long).chars().count(), MAX_TITLE_CHARS);
        assert!(copy_title(&long).starts_with("Copy of x"));
    }
}
