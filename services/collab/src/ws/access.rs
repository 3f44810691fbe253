//! Open connections re-check their access when it may have changed (a sharing change, an
//! ownership transfer, a deletion, a sign-out).

use tandem_protocol::{Role, close};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{End, Open};
use crate::App;
use crate::auth::events::AccessEvent;
use crate::auth::{Caller, Credential, caller_access, user_for};
use crate::error::ApiError;
use crate::room::Command;

/// The next access event, or never when there are none to watch (the runtime's connection,
/// or the server's events have stopped).
pub(super) async fn next(
    events: &mut Option<broadcast::Receiver<AccessEvent>>,
) -> Result<AccessEvent, RecvError> {
    match events {
        Some(receiver) => {
            let event = receiver.recv().await;
            if let Err(RecvError::Closed) = event {
                *events = None;
            }
            event
        }
        None => std::future::pending().await,
    }
}

/// Re-checks the connection's credential and role when `event` concerns it: cuts the
/// connection when access ended (code 1008), and downgrades or upgrades its right to edit
/// when the role changed. On an upgrade the room asks the client again for what it holds, as
/// a reconnect would, so edits it made before (refused then) are not stranded beneath its
/// later ones.
pub(super) async fn recheck(open: &mut Open, event: Result<AccessEvent, RecvError>) -> Option<End> {
    let accepted = &mut open.accepted;
    let concerns_us = match &event {
        Ok(AccessEvent::Notebook(id)) => *id == accepted.notebook_id,
        Ok(AccessEvent::SessionEnded(hash)) => {
            matches!(&accepted.credential, Credential::Session(ours) if ours == hash)
        }
        Ok(AccessEvent::UserSignedOut(user_id)) => accepted.user_id.as_deref() == Some(user_id),
        // Fell behind: some event may have concerned us.
        Err(RecvError::Lagged(_)) => true,
        Err(RecvError::Closed) => false,
    };
    if !concerns_us {
        return None;
    }
    match current_role(&accepted.app, &accepted.notebook_id, &accepted.credential).await {
        Ok(Some(role)) => {
            let before = std::mem::replace(&mut accepted.can_edit, role.can_edit());
            if before != role.can_edit() {
                tracing::info!(%role, "role changed on an open connection");
            }
            if !before && role.can_edit() {
                let conn = accepted.conn;
                let _ = open.room.send(Command::Resync { conn }).await;
            }
            None
        }
        Ok(None) => {
            tracing::info!("access ended; closing the connection");
            open.link
                .close(close::POLICY, "your access to this notebook ended");
            Some(End::Closing)
        }
        // A store hiccup is no reason to cut anyone off; the next event checks again.
        Err(err) => {
            tracing::warn!(error = err.message, "cannot re-check access");
            None
        }
    }
}

/// The role the connection's credential has now, or `None` when it has none left.
async fn current_role(
    app: &App,
    notebook_id: &str,
    credential: &Credential,
) -> Result<Option<Role>, ApiError> {
    let caller = match credential {
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
