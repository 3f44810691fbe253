//! Sharing in SQLite: general access on the notebook row, grants by email in their own table.

use rusqlite::{Connection, OptionalExtension, params};
use tandem_protocol::{GeneralAccess, Grant, Role};

use super::{NOTEBOOK_COLUMN_COUNT, NOTEBOOK_COLUMNS, notebook_from_row};
use crate::store::{NotebookRecord, StoreError};

pub(super) fn notebooks_shared_with(
    conn: &mut Connection,
    email: &str,
) -> Result<Vec<(NotebookRecord, Role)>, StoreError> {
    let columns: String = NOTEBOOK_COLUMNS
        .split(", ")
        .map(|c| format!("n.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT {columns}, g.role FROM grants g JOIN notebooks n ON n.id = g.notebook_id \
         WHERE g.email = ?1 ORDER BY n.updated_at DESC, n.id"
    ))?;
    let rows = stmt.query_map([email], |row| {
        let record = notebook_from_row(row)?;
        let role: String = row.get(NOTEBOOK_COLUMN_COUNT)?;
        Ok((record, role))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (record, role) = row?;
        if let Some(role) = Role::parse(&role) {
            out.push((record, role));
        }
    }
    Ok(out)
}

pub(super) fn grants(conn: &mut Connection, id: &str) -> Result<Vec<Grant>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT email, role FROM grants WHERE notebook_id = ?1 ORDER BY email")?;
    let rows = stmt.query_map([id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (email, role) = row?;
        if let Some(role) = Role::parse(&role) {
            out.push(Grant { email, role });
        }
    }
    Ok(out)
}

pub(super) fn grant_for(
    conn: &mut Connection,
    id: &str,
    email: &str,
) -> Result<Option<Role>, StoreError> {
    let role: Option<String> = conn
        .prepare_cached("SELECT role FROM grants WHERE notebook_id = ?1 AND email = ?2")?
        .query_row(params![id, email], |r| r.get(0))
        .optional()?;
    Ok(role.as_deref().and_then(Role::parse))
}

/// The settings on the notebook's row that a sharing change replaces.
pub(super) struct Settings {
    pub general_access: GeneralAccess,
    pub link_role: Role,
    pub editors_may_run: bool,
}

pub(super) fn set_sharing(
    conn: &mut Connection,
    id: &str,
    settings: &Settings,
    grants: &[Grant],
) -> Result<(), StoreError> {
    let tx = super::write_tx(conn)?;
    let touched = tx.execute(
        "UPDATE notebooks SET general_access = ?2, link_role = ?3, editors_may_run = ?4 \
         WHERE id = ?1",
        params![
            id,
            settings.general_access.as_str(),
            settings.link_role.as_str(),
            settings.editors_may_run
        ],
    )?;
    if touched == 0 {
        return Err(StoreError::NotFound("notebook"));
    }
    tx.execute("DELETE FROM grants WHERE notebook_id = ?1", [id])?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO grants (notebook_id, email, role) VALUES (?1, ?2, ?3) \
             ON CONFLICT(notebook_id, email) DO UPDATE SET role = excluded.role",
        )?;
        for grant in grants {
            insert.execute(params![
                id,
                grant.email.trim().to_lowercase(),
                grant.role.as_str()
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn transfer_ownership(
    conn: &mut Connection,
    id: &str,
    (new_owner_id, new_owner_email): &(String, String),
    previous_owner_email: &str,
) -> Result<(), StoreError> {
    let tx = super::write_tx(conn)?;
    let touched = tx.execute(
        "UPDATE notebooks SET owner_id = ?2 WHERE id = ?1",
        params![id, new_owner_id],
    )?;
    if touched == 0 {
        return Err(StoreError::NotFound("notebook"));
    }
    tx.execute(
        "DELETE FROM grants WHERE notebook_id = ?1 AND email = ?2",
        params![id, new_owner_email],
    )?;
    tx.execute(
        "INSERT INTO grants (notebook_id, email, role) VALUES (?1, ?2, ?3) \
         ON CONFLICT(notebook_id, email) DO UPDATE SET role = excluded.role",
        params![id, previous_owner_email, Role::Editor.as_str()],
    )?;
    tx.commit()?;
    Ok(())
}
