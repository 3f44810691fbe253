//! Sharing as in Google Docs: `GET/PUT /api/notebooks/{id}/sharing` and
//! `POST /api/notebooks/{id}/owner`.
//!
//! Every change is announced on the access bus, so open connections of people who lost
//! access are cut, and those whose role changed are downgraded or upgraded, within a second.
//!
//! The settings include `editors_may_run` ("Editors may run code in my runtime"): whether
//! editors may run code in a kernel someone else started. The runtime applies it on each
//! execute, interrupt and restart (`tandem_protocol::runtime::RuntimeAccess` has the rule).

use axum::Json;
use axum::extract::{Path, State};
use tandem_protocol::{Grant, Role, Sharing, TransferOwnership};

use super::ApiJson;
use crate::App;
use crate::auth::events::AccessEvent;
use crate::auth::{Caller, SignedIn, caller_access};
use crate::error::ApiError;
use crate::store::NotebookRecord;

/// Most people one notebook may be shared with by email.
const MAX_GRANTS: usize = 500;

/// `GET /api/notebooks/{id}/sharing`: for signed-in editors and the owner.
pub(super) async fn get_sharing(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Sharing>, ApiError> {
    let (record, role) = caller_access(&app, &caller, &id).await?;
    // The list holds people's email addresses: not for someone who only has the link.
    if matches!(caller, Caller::Anonymous) {
        return Err(ApiError::unauthorized());
    }
    if !role.can_edit() {
        return Err(ApiError::forbidden(format!(
            "a {role} cannot see who the notebook is shared with"
        )));
    }
    Ok(Json(current(&app, &record).await?))
}

/// `PUT /api/notebooks/{id}/sharing`: the owner replaces the whole set.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn put_sharing(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Sharing>,
) -> Result<Json<Sharing>, ApiError> {
    let (record, role) = caller_access(&app, &Caller::User(user.clone()), &id).await?;
    if role != Role::Owner {
        return Err(ApiError::forbidden("only the owner can change sharing"));
    }
    let grants = validate(&body, &user.email)?;
    // Absent: unchanged, so clients that predate the setting never turn it back on.
    let editors_may_run = body.editors_may_run.unwrap_or(record.editors_may_run);
    app.store
        .set_sharing(
            &id,
            body.general_access,
            body.link_role,
            editors_may_run,
            &grants,
        )
        .await?;
    app.access.publish(AccessEvent::Notebook(id.clone()));
    tracing::info!(
        general_access = body.general_access.as_str(),
        link_role = %body.link_role,
        editors_may_run,
        grants = grants.len(),
        "sharing changed"
    );
    let record = NotebookRecord {
        general_access: body.general_access,
        link_role: body.link_role,
        editors_may_run,
        ..record
    };
    Ok(Json(current(&app, &record).await?))
}

/// `POST /api/notebooks/{id}/owner`: the owner hands the notebook to someone who has signed
/// in at least once; the previous owner stays on as an editor.
#[tracing::instrument(skip_all, fields(doc_id = %id, user_id = %user.id))]
pub(super) async fn transfer_ownership(
    State(app): State<App>,
    SignedIn(user): SignedIn,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferOwnership>,
) -> Result<Json<Sharing>, ApiError> {
    let (record, role) = caller_access(&app, &Caller::User(user.clone()), &id).await?;
    if role != Role::Owner {
        return Err(ApiError::forbidden("only the owner can transfer ownership"));
    }
    let new_owner = app.store.user_by_email(&body.email).await?.ok_or_else(|| {
        ApiError::bad_request(
            "unknown_user",
            format!(
                "{} has never signed in to Tandem; share the notebook with them first",
                body.email.trim()
            ),
        )
    })?;
    if new_owner.id == user.id {
        return Err(ApiError::bad_request(
            "invalid_owner",
            "you already own this notebook",
        ));
    }
    app.store
        .transfer_ownership(&id, &new_owner.id, &new_owner.email, &user.email)
        .await?;
    app.access.publish(AccessEvent::Notebook(id.clone()));
    tracing::info!(new_owner = %new_owner.id, "ownership transferred");
    let record = NotebookRecord {
        owner_id: new_owner.id,
        ..record
    };
    Ok(Json(current(&app, &record).await?))
}

async fn current(app: &App, record: &NotebookRecord) -> Result<Sharing, ApiError> {
    let grants = app.store.grants(&record.id).await?;
    let owner = app
        .store
        .user_by_id(&record.owner_id)
        .await?
        .map(|owner| owner.email);
    Ok(Sharing {
        general_access: record.general_access,
        link_role: record.link_role,
        grants,
        owner,
        editors_may_run: Some(record.editors_may_run),
    })
}

/// Checks a sharing request; returns the grants with emails normalized and duplicates
/// folded (the last role given for an email wins).
fn validate(body: &Sharing, owner_email: &str) -> Result<Vec<Grant>, ApiError> {
    if body.link_role == Role::Owner {
        return Err(ApiError::bad_request(
            "invalid_role",
            "the link role is viewer, commenter or editor",
        ));
    }
    if body.grants.len() > MAX_GRANTS {
        return Err(ApiError::bad_request(
            "too_many_grants",
            format!("a notebook can be shared with at most {MAX_GRANTS} people"),
        ));
    }
    let mut grants: Vec<Grant> = Vec::with_capacity(body.grants.len());
    for grant in &body.grants {
        let email = grant.email.trim().to_lowercase();
        if !crate::auth::session::valid_email(&email) {
            return Err(ApiError::bad_request(
                "invalid_email",
                format!("{:?} is not an email address", grant.email),
            ));
        }
        if grant.role == Role::Owner {
            return Err(ApiError::bad_request(
                "invalid_role",
                "grant viewer, commenter or editor; transfer ownership with POST .../owner",
            ));
        }
        if email == owner_email.to_lowercase() {
            return Err(ApiError::bad_request(
                "invalid_grant",
                "the owner already has full access",
            ));
        }
        match grants.iter_mut().find(|g| g.email == email) {
            Some(existing) => existing.role = grant.role,
            None => grants.push(Grant {
                email,
                role: grant.role,
            }),
        }
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_protocol::GeneralAccess;

    fn sharing(grants: Vec<(&str, Role)>) -> Sharing {
        Sharing {
            general_access: GeneralAccess::Restricted,
            link_role: Role::Viewer,
            grants: grants
                .into_iter()
                .map(|(email, role)| Grant {
                    email: email.into(),
                    role,
                })
                .collect(),
            owner: None,
            editors_may_run: None,
        }
    }

    #[test]
    fn grants_are_normalized_and_checked() {
        let ok = validate(
            &sharing(vec![
                (" Bob@Example.com", Role::Viewer),
                ("bob@example.com", Role::Editor),
            ]),
            "owner@example.com",
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].email, "bob@example.com");
        assert_eq!(ok[0].role, Role::Editor);

        for (body, code) in [
            (sharing(vec![("bob", Role::Viewer)]), "invalid_email"),
            (
                sharing(vec![("bob@example.com", Role::Owner)]),
                "invalid_role",
            ),
            (
                sharing(vec![("OWNER@example.com", Role::Viewer)]),
                "invalid_grant",
            ),
            (
                Sharing {
                    link_role: Role::Owner,
                    ..sharing(vec![])
                },
                "invalid_role",
            ),
        ] {
            let err = validate(&body, "owner@example.com").unwrap_err();
            assert_eq!(err.code, code);
        }
    }
}
