//! Comments: threads anchored to a cell, or to a range of its source, with replies.
//!
//! Routes (all under `/api/notebooks/{id}`):
//!
//! - `GET comments` (viewer and up): every thread, oldest first, as [`Thread`]s.
//! - `POST comments` (commenter and up): [`NewThread`] → 201 and the [`Thread`].
//! - `GET comments/{thread_id}` (viewer and up): one [`Thread`].
//! - `PATCH comments/{thread_id}` (commenter and up): [`ThreadUpdate`] → the [`Thread`].
//! - `DELETE comments/{thread_id}` (its author, editors and the owner): 204.
//! - `POST comments/{thread_id}/replies` (commenter and up): [`NewReply`] → 201 and the
//!   [`Comment`].
//! - `DELETE comments/{thread_id}/replies/{comment_id}` (its author, editors and the owner):
//!   204. A thread's first comment goes only with the whole thread.
//!
//! Errors: `unknown_cell` (404) for a cell not in the notebook, `unknown_comment` (404) for a
//! thread or comment not in the notebook, `invalid_range` (400), `invalid_text` (400) for an
//! empty or too long text.
//!
//! Reading needs only view access (anonymous callers included, where the notebook is shared
//! with anyone who has the link); writing needs a signed-in user. Authors' emails
//! ([`CommentAuthor::email`]) are shown to editors and the owner only; everyone else sees
//! names. Comments are stored beside
//! the notebook, not in its document: `GET .../ipynb` carries none unless asked with
//! `?comments=true`, which puts the threads under `metadata.tandem.comments`.
//!
//! # Offsets
//!
//! `from` and `to` count **UTF-16 code units** of the cell's source, as JavaScript strings,
//! Yjs (`Y.Text`) and CodeMirror do: `"é"` is 1, `"😀"` is 2. An offset inside a surrogate
//! pair is refused. The range follows the text as people edit it: text typed inside it
//! grows it, text typed right before or right after it does not.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Longest comment accepted, in characters (Unicode scalar values).
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// `POST /api/notebooks/{id}/comments`: opens a thread on a cell, or on a range of its source
/// when `from` and `to` are given (both or neither).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct NewThread {
    /// The cell the thread is about.
    pub cell_id: String,
    /// The opening comment.
    pub text: String,
    /// Start of the range, in UTF-16 code units of the cell's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub from: Option<u32>,
    /// End of the range (exclusive), in UTF-16 code units; at least `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub to: Option<u32>,
}

/// `POST /api/notebooks/{id}/comments/{thread_id}/replies`: a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct NewReply {
    /// The reply's text.
    pub text: String,
}

/// `PATCH /api/notebooks/{id}/comments/{thread_id}`: resolves or reopens a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ThreadUpdate {
    /// Whether the thread is resolved.
    pub resolved: bool,
}

/// Who wrote a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CommentAuthor {
    /// The user's id.
    pub id: String,
    /// The user's display name.
    pub name: String,
    /// The user's email address, shown only to editors and the owner (who see the sharing
    /// list anyway); left out for viewers and commenters, signed in or not, so a link shared
    /// with anyone does not hand out every commenter's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub email: Option<String>,
}

/// One comment of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Comment {
    /// The comment's id.
    pub id: String,
    /// Who wrote it.
    pub author: CommentAuthor,
    /// Its text.
    pub text: String,
    /// When it was written, RFC 3339 in UTC.
    pub created_at: String,
}

/// A comment thread as the API shows it, its range resolved against the live document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Thread {
    /// The thread's id.
    pub id: String,
    /// The cell it is about.
    pub cell_id: String,
    /// Where its range starts now, in UTF-16 code units; `null` for a thread on the whole
    /// cell, on a deleted cell, or whose text could not be found again.
    pub from: Option<u32>,
    /// Where its range ends now (exclusive); `null` when `from` is.
    pub to: Option<u32>,
    /// The text of the range now; `null` when `from` is.
    pub quote: Option<String>,
    /// The text of the range when the thread was opened; `null` for a thread on the whole
    /// cell.
    pub original_quote: Option<String>,
    /// The cell is no longer in the notebook.
    pub orphaned: bool,
    /// Whether the thread is resolved.
    pub resolved: bool,
    /// When it was resolved, RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub resolved_at: Option<String>,
    /// Who resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub resolved_by: Option<CommentAuthor>,
    /// When it was opened, RFC 3339 in UTC.
    pub created_at: String,
    /// Who opened it.
    pub author: CommentAuthor,
    /// Its comments in order; the first is the opening text.
    pub comments: Vec<Comment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_thread_range_is_optional() {
        let body: NewThread = serde_json::from_str(r#"{"cell_id": "c", "text": "hi"}"#).unwrap();
        assert_eq!((body.from, body.to), (None, None));
        let body: NewThread =
            serde_json::from_str(r#"{"cell_id": "c", "text": "hi", "from": 1, "to": 3}"#).unwrap();
        assert_eq!((body.from, body.to), (Some(1), Some(3)));
    }

    #[test]
    fn thread_shows_missing_ranges_as_null() {
        let thread = Thread {
            id: "t".into(),
            cell_id: "c".into(),
            from: None,
            to: None,
            quote: None,
            original_quote: None,
            orphaned: true,
            resolved: false,
            resolved_at: None,
            resolved_by: None,
            created_at: "2024-01-01T00:00:00.000Z".into(),
            author: CommentAuthor {
                id: "u".into(),
                name: "U".into(),
                email: None,
            },
            comments: vec![],
        };
        let json = serde_json::to_value(&thread).unwrap();
        assert!(json["from"].is_null() && json.get("from").is_some());
        assert!(json.get("resolved_by").is_none());
        assert!(json["author"].get("email").is_none());
    }
}
