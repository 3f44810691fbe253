//! Open connections re-check their access when it may have changed (a sharing change, an
//! ownership transfer, a deletion, a sign-out).

use std::sync::atomic::Ordering;

use tandem_protocol::{Role, close};

use super::Open;
use crate::App;
use crate::auth::events::AccessEvent;
use crate::auth::{Authenticated, Caller, Credential, caller_access, user_for};
use crate::error::ApiError;
use crate::room::Command;

/// Re-checks the connection's credential and role whenever an access event concerns it:
/// cuts the connection when access ended (code 1008), and downgrades or upgrades its right to
/// edit when the role changed. On an upgrade the room asks the client again for what it
/// holds, as a reconnect would, so edits it made before (refused then) are not stranded
/// beneath its later ones.
pub(super) async fn watch_access(
    open: &Open<'_>,
    mut events: tokio::sync::broadcast::Receiver<AccessEvent>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let Open {
        app,
        notebook_id,
        room,
        conn,
        auth,
        can_edit,
        closer,
    } = *open;
    if auth.credential == Credential::Service {
        return;
    }
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = closer.requested() => return,
        };
        let concerns_us = match &event {
            Ok(AccessEvent::Notebook(id)) => id == notebook_id,
            Ok(AccessEvent::SessionEnded(hash)) => {
                auth.credential == Credential::Session(hash.clone())
            }
            Ok(AccessEvent::UserSignedOut(user_id)) => {
                matches!(&auth.caller, Caller::User(user) if &user.id == user_id)
            }
            // Fell behind: some event may have concerned us.
            Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return,
        };
        if !concerns_us {
            continue;
        }
        // Boxed, like every await that is not the idle wait: an idle connection's task keeps
        // room only for what it waits on.
        match Box::pin(current_role(app, notebook_id, auth)).await {
            Ok(Some(role)) => {
                let before = can_edit.swap(role.can_edit(), Ordering::Relaxed);
                if before != role.can_edit() {
                    tracing::info!(%role, "role changed on an open connection");
                }
                if !before && role.can_edit() {
                    let _ = Box::pin(room.send(Command::Resync { conn })).await;
                }
            }
            Ok(None) => {
                tracing::info!("access ended; closing the connection");
                closer.close(close::POLICY, "your access to this notebook ended");
                return;
            }
            // A store hiccup is no reason to cut anyone off; the next event checks again.
            Err(err) => tracing::warn!(error = err.message, "cannot re-check access"),
        }
    }
}

/// The role the connection's credential has now, or `None` when it has none left.
async fn current_role(
    app: &App,
    notebook_id: &str,
    auth: &Authenticated,
) -> Result<Option<Role>, ApiError> {
    let caller = match &auth.credential {
        Credential::None => Caller::Anonymous,
        credential => match user_for(app, credential).await? {
            Some(user) => Caller::User(user),
            None => return Ok(None),
        },
    };
    match caller_access(app, &caller, notebook_id).await {
        Ok((_, role)) => Ok(Some(role)),
        Err(err) if err.status.is_client_error() => Ok(None),
        Err(err) => Err(err),
    }
}
