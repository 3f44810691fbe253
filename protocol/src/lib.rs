//! Wire types shared by the Tandem services and their clients.
//!
//! The HTTP API speaks JSON with the bodies defined here; every error is an [`ErrorBody`]. The
//! WebSocket at `GET /ws/{notebook_id}` speaks the y-websocket protocol (`yrs::sync`), and when
//! the server ends a connection it uses one of the [`close`] codes with a human-readable reason.
//!
//! # Layout
//! - [`Role`]: what a caller may do with a notebook.
//! - HTTP bodies: [`Me`], [`CreateNotebook`], [`UpdateNotebook`], [`NotebookInfo`] (with
//!   [`Person`]), [`Sharing`],
//!   [`ErrorBody`].
//! - [`close`]: WebSocket close codes and what a client should do on each.
//! - [`ExecuteRequest`]: the body of `POST /api/notebooks/{id}/execute`.
//! - Code intelligence and stdin: [`CompleteRequest`] → [`Completions`],
//!   [`InspectRequest`] → [`Inspection`], [`InputAnswer`].
//! - [`runtime`]: the control channel between the collab service and runtime nodes.
//! - [`redis_link`]: the same commands through Redis when nodes are scaled out.
//! - [`comments`]: comment threads on cells, their routes and bodies.
//! - [`git`]: notebooks opened from a git repository and committed back to it.
//! - [`versions`]: version history: automatic and named versions, diffs, restore.
//! - [`secrets`]: per-user secrets, granted per notebook, and the runtime's lookup.
//! - [`drive`]: each user's persistent files (the Drive) and their routes.

pub mod comments;
pub mod drive;
pub mod git;
pub mod ids;
pub mod kernel;
pub mod runtime;
pub mod secrets;
pub mod versions;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The query parameter that carries a personal access token on WebSocket and HTTP requests,
/// for clients (such as the stock y-websocket provider) that cannot set an `Authorization` header.
pub const TOKEN_QUERY_PARAM: &str = "token";

/// A caller's role on one notebook, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May read the notebook.
    Viewer,
    /// May read the notebook and comment on it.
    Commenter,
    /// May change the notebook's content and run it.
    Editor,
    /// May do everything, including sharing and deleting.
    Owner,
}

impl Role {
    /// Whether this role may change the document's content.
    pub fn can_edit(self) -> bool {
        self >= Role::Editor
    }

    /// Whether this role may write comments.
    pub fn can_comment(self) -> bool {
        self >= Role::Commenter
    }

    /// The role's name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Commenter => "commenter",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    /// Parses the JSON name of a role.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Commenter, Role::Editor, Role::Owner]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /api/me`: the signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Me {
    /// The user's id.
    pub id: String,
    /// The user's email address, unique per user.
    pub email: String,
    /// The user's display name.
    pub name: String,
}

/// `GET /api/session`: whether the caller is signed in, and as whom. Always 200, so a
/// signed-out page can ask without an error in the browser's console (`GET /api/me` answers
/// 401 then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Session {
    /// Whether the request carried a valid session cookie or token.
    pub signed_in: bool,
    /// The signed-in user; absent when signed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub user: Option<Me>,
}

/// `POST /api/notebooks`: a new notebook, empty or imported from an nbformat v4 document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateNotebook {
    /// The notebook's title.
    pub title: String,
    /// An nbformat v4 notebook to import; absent for an empty notebook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipynb: Option<serde_json::Value>,
}

/// `PATCH /api/notebooks/{id}` (editors and the owner): renames a notebook. The title is
/// trimmed; an empty one becomes "Untitled"; at most 500 characters. Open pages see it at
/// once: the server mirrors it into the document's `state.title`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UpdateNotebook {
    /// The new title.
    pub title: String,
}

/// A notebook as the HTTP API lists and describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct NotebookInfo {
    /// The notebook's unguessable id (URL-safe, at least 128 random bits).
    pub id: String,
    /// The notebook's title.
    pub title: String,
    /// The caller's role on it.
    pub role: Role,
    /// When the notebook's content or title last changed, RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub updated_at: Option<String>,
    /// When the notebook was created, RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub created_at: Option<String>,
    /// Its owner (in `GET /api/notebooks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub owner: Option<Person>,
    /// The last signed-in person who changed its content or title (in `GET /api/notebooks`,
    /// once someone has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_editor: Option<Person>,
    /// When the caller last opened it, RFC 3339 in UTC (in `GET /api/notebooks`, once they
    /// have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_opened_at: Option<String>,
}

/// A person as a notebook's listing names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Person {
    /// The user's id.
    pub id: String,
    /// The user's display name.
    pub name: String,
    /// The user's email address, shown only to the notebook's editors and owner (who see
    /// the sharing list anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub email: Option<String>,
}

/// Who may open a notebook by its link, beyond the people it is shared with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum GeneralAccess {
    /// Only the owner and the people in `grants`.
    #[default]
    Restricted,
    /// Anyone who has the link, signed in or not, with the link role.
    AnyoneWithLink,
}

impl GeneralAccess {
    /// The name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GeneralAccess::Restricted => "restricted",
            GeneralAccess::AnyoneWithLink => "anyone_with_link",
        }
    }

    /// Parses the JSON name.
    pub fn parse(name: &str) -> Option<GeneralAccess> {
        [GeneralAccess::Restricted, GeneralAccess::AnyoneWithLink]
            .into_iter()
            .find(|access| access.as_str() == name)
    }
}

/// One person a notebook is shared with, by email. An email that has never signed in gets
/// the role when its owner first does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Grant {
    /// The person's email address (compared case-insensitively).
    pub email: String,
    /// Their role: viewer, commenter or editor (ownership moves by transfer, not by grant).
    pub role: Role,
}

/// `GET/PUT /api/notebooks/{id}/sharing`: a notebook's sharing settings, as in Google Docs.
/// A PUT replaces the whole set; `owner` is answered by GET and ignored in a PUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Sharing {
    /// Restricted, or anyone with the link.
    pub general_access: GeneralAccess,
    /// The role of someone who opens the link without a grant (viewer, commenter or editor).
    pub link_role: Role,
    /// The people the notebook is shared with.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// The owner's email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub owner: Option<String>,
    /// "Editors may run code in my runtime": whether editors may run, interrupt and restart
    /// code in a kernel someone else started (its holder, see
    /// [`runtime::RuntimeAccess`]). GET always answers it (`true` unless the owner turned it
    /// off); a PUT without it keeps the current setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub editors_may_run: Option<bool>,
}

/// `POST /api/notebooks/{id}/owner`: hands the notebook to another signed-up user; the
/// previous owner keeps editor access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct TransferOwnership {
    /// The new owner's email address.
    pub email: String,
}

/// The body of every HTTP error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ErrorDetail {
    /// A stable snake_case code for programs, such as `not_found` or `invalid_ipynb`.
    pub code: String,
    /// A sentence for humans.
    pub message: String,
}

/// `POST /api/notebooks/{id}/execute`: which cells to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ExecuteRequest {
    /// Cells to run, in order.
    #[serde(default)]
    pub cell_ids: Vec<String>,
    /// Run every code cell, top to bottom, stopping at the first error.
    #[serde(default)]
    pub all: bool,
    /// Run the stale cells (and those that use what they define), definers first, stopping
    /// at the first error: afterwards no cell is stale. Exactly one of `cell_ids`, `all` and
    /// `stale` may be given.
    #[serde(default)]
    pub stale: bool,
    /// The caller's Yjs state vector (v1 encoding, base64), so the cells run with every edit
    /// the caller had made when it asked, even those still on their way over its WebSocket:
    /// the server waits (briefly) until its copy of the document includes that state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub state_vector: Option<String>,
}

/// The answer to an accepted execute request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Queued {
    /// The cells now queued, in run order.
    pub queued: Vec<String>,
}

/// `POST /api/notebooks/{id}/complete`: completions at the caret of a cell's code, from the
/// notebook's running kernel (IPython's completer with jedi). Answered to the caller only;
/// nothing is written to the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CompleteRequest {
    /// The cell's code (as the caller's editor holds it).
    pub code: String,
    /// The caret, in UTF-16 code units (CodeMirror's and Yjs's unit), at most the code's
    /// length.
    pub cursor: u32,
}

/// One completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Completion {
    /// The text that replaces `cursor_start..cursor_end`.
    pub text: String,
    /// Jedi's kind: `module`, `function`, `class`, `instance`, `keyword`, `path`, `param`,
    /// `statement`, `magic`, … (empty when unknown).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// A function's signature, such as `(path)`, when known (else empty).
    #[serde(default)]
    pub signature: String,
}

/// The answer to [`CompleteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Completions {
    /// The completions, best first (at most 500).
    pub matches: Vec<Completion>,
    /// Start of the text the matches replace (UTF-16 code units).
    pub cursor_start: u32,
    /// End of the text the matches replace (UTF-16 code units).
    pub cursor_end: u32,
}

/// `POST /api/notebooks/{id}/inspect`: what the name at the caret is (inside a call's
/// parentheses, the function called), as Jupyter's `inspect_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct InspectRequest {
    /// The cell's code.
    pub code: String,
    /// The caret (or the mouse), in UTF-16 code units, at most the code's length.
    pub cursor: u32,
    /// 0 (default): signature and docstring; 1: also the source, when Python has it.
    #[serde(default)]
    pub detail_level: u8,
}

/// The answer to [`InspectRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Inspection {
    /// Whether there is an object at the caret that the kernel knows.
    pub found: bool,
    /// IPython's description, plain text: `Signature: …`, `Docstring: …`, `Type: …`.
    pub text: String,
}

/// `POST /api/notebooks/{id}/input`: the line typed for the running cell's `input()` (or
/// `getpass`), accepted only from who ran that cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct InputAnswer {
    /// The line, without its newline.
    pub value: String,
}

/// `POST /api/notebooks/{id}/outputs/clear`: which code cells to clear (outputs, execution
/// count and who ran them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ClearOutputs {
    /// The code cells to clear; absent (or null) clears every code cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cell_ids: Option<Vec<String>>,
}

/// The answer to a clear: the cells cleared, in notebook order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ClearedOutputs {
    /// Ids of the code cells whose outputs were cleared.
    pub cleared: Vec<String>,
}

/// `PUT /api/notebooks/{id}/runtime`: the runtime type of a notebook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RuntimeType {
    /// `"cpu"` or `"gpu"`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Runtime nodes reached through Redis (`--redis-url`), so that any collab node can reach the
/// runtime node that runs a notebook, and a notebook moves to a live node when its node dies.
///
/// Keys, under a prefix (`tandem` by default):
/// - `{p}:runtime:lease:{notebook}`: the id of the runtime node that owns the notebook's
///   session (`SET … NX PX` [`LEASE_TTL_MS`]), renewed every [`LEASE_RENEW_MS`] while the
///   session lives and deleted when it stops. At most one owner at a time.
/// - `{p}:runtime:sessions`: hash notebook → owner, so live runtime nodes, and collab nodes
///   with the notebook open, can find the notebooks of a node whose leases expired and mark
///   their kernels dead ([`TAKE_ORPHAN`]).
/// - `{p}:runtime:nodes`: sorted set of runtime node ids scored by when their heartbeat
///   expires (ms since the Unix epoch); a collab node with no live entry answers "no runtime".
/// - `{p}:runtime:queue:{node}`: list of [`Queued`] frames (JSON) for one runtime node: the
///   [`Envelope`]s of commands for notebooks it owns, and the [`Answer`]s to its asks.
/// - `{p}:runtime:asks`: list of [`AskEnvelope`]s (JSON) that every collab node pops: a
///   runtime node's asks (a running cell's secret), answered to the asking node's queue.
/// - `{p}:runtime:unassigned`: a stream (field `envelope`) read by the consumer group
///   [`GROUP`] of all runtime nodes, so exactly one node takes a notebook nobody owns.
/// - `{p}:runtime:replies:{collab}`: list of [`Reply`]s (JSON) for one collab node, matched to
///   calls by their request number.
///
/// [`Reply`]: super::runtime::Reply
/// [`Answer`]: super::runtime::Answer
pub mod redis_link {
    use serde::{Deserialize, Serialize};

    use super::runtime::{Answer, Ask, Command};

    /// Default key prefix.
    pub const DEFAULT_PREFIX: &str = "tandem";
    /// Lifetime of a notebook lease and of a node's heartbeat: how long after a runtime node
    /// dies its notebooks can still look owned.
    pub const LEASE_TTL_MS: u64 = 10_000;
    /// How often a runtime node renews its leases and heartbeat (well inside the TTL).
    pub const LEASE_RENEW_MS: u64 = 3_000;
    /// How long queues and reply lists of nodes that went away linger.
    pub const QUEUE_TTL_MS: u64 = 60_000;
    /// Consumer group of the runtime nodes on the unassigned stream.
    pub const GROUP: &str = "runtimes";
    /// The stream field holding an [`Envelope`].
    pub const FIELD: &str = "envelope";
    /// Times a command may be forwarded between runtime nodes chasing a moving lease.
    pub const MAX_HOPS: u8 = 3;

    /// A Lua script that takes the cleanup of a notebook whose owner's lease expired: it
    /// returns 1 for exactly one caller (a live runtime node, or a collab node with the
    /// notebook open), which then marks the kernel dead, and 0 to everyone else. It deletes
    /// the sessions entry only while the lease is gone and the entry still names the owner
    /// the caller saw. KEYS: lease, sessions hash; ARGV: notebook, owner.
    pub const TAKE_ORPHAN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
";

    /// The reason written into `state.kernel` when a notebook's runtime went away unseen.
    pub fn orphan_reason(owner: &str) -> String {
        format!(
            "the runtime node running this kernel ({owner}) stopped responding or lost the \
             notebook; run a cell to start a new kernel"
        )
    }

    /// A command on its way to a runtime node.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Envelope {
        /// The collab node waiting for the reply (its reply list's id).
        pub reply_to: String,
        /// After this (ms since the Unix epoch) nobody waits for the reply: drop the command.
        pub deadline_ms: u64,
        /// Times the command was forwarded.
        #[serde(default)]
        pub hops: u8,
        /// The command.
        pub command: Command,
    }

    /// An ask on its way from a runtime node to whichever collab node pops it first.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AskEnvelope {
        /// The runtime node waiting for the answer (its queue's id).
        pub reply_to: String,
        /// After this (ms since the Unix epoch) nobody waits for the answer: drop the ask.
        pub deadline_ms: u64,
        /// The ask.
        pub ask: Ask,
    }

    /// What a runtime node's queue holds.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Queued {
        /// A command for a notebook the node owns.
        Command(Envelope),
        /// The answer to one of the node's asks.
        Answer(Answer),
    }

    /// `{prefix}:runtime:asks`.
    pub fn asks_key(prefix: &str) -> String {
        format!("{prefix}:runtime:asks")
    }

    /// `{prefix}:runtime:lease:{notebook}`.
    pub fn lease_key(prefix: &str, notebook: &str) -> String {
        format!("{prefix}:runtime:lease:{notebook}")
    }

    /// `{prefix}:runtime:sessions`.
    pub fn sessions_key(prefix: &str) -> String {
        format!("{prefix}:runtime:sessions")
    }

    /// `{prefix}:runtime:nodes`.
    pub fn nodes_key(prefix: &str) -> String {
        format!("{prefix}:runtime:nodes")
    }

    /// `{prefix}:runtime:queue:{node}`.
    pub fn queue_key(prefix: &str, node: &str) -> String {
        format!("{prefix}:runtime:queue:{node}")
    }

    /// `{prefix}:runtime:unassigned`.
    pub fn unassigned_key(prefix: &str) -> String {
        format!("{prefix}:runtime:unassigned")
    }

    /// `{prefix}:runtime:replies:{collab}`.
    pub fn replies_key(prefix: &str, collab: &str) -> String {
        format!("{prefix}:runtime:replies:{collab}")
    }

    /// The deadline `after` from now, in ms since the Unix epoch (an envelope's `deadline_ms`).
    pub fn deadline_after(after: std::time::Duration) -> u64 {
        now_ms().saturating_add(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// WebSocket close codes the collab service uses, with the reason text it sends alongside.
///
/// A stock y-websocket client reconnects after any close and resyncs from its state vector,
/// so closing is always safe for the document: nothing a client holds is lost.
pub mod close {
    /// The server is shutting down; reconnect (to this node after restart, or another).
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol itself (an unmasked frame, a fragment out of
    /// place, a malformed header); the reason names what.
    pub const PROTOCOL: u16 = 1002;
    /// A frame was not a well-formed y-websocket message, or carried an update that does not
    /// decode or apply. Only the offending connection is closed; the document is unharmed.
    pub const MALFORMED: u16 = 1007;
    /// The notebook was deleted, the caller's access to it ended, or a quota was passed (the
    /// connection's message or byte rate, the notebook's size); the reason says which.
    pub const POLICY: u16 = 1008;
    /// A message, or a presence (awareness) state, exceeded its configured size cap.
    pub const TOO_BIG: u16 = 1009;
    /// The server failed to store an update; the client should reconnect and resync.
    pub const INTERNAL: u16 = 1011;
    /// The client read too slowly and its outbound queue filled up. Rather than drop messages,
    /// the server disconnects it; it reconnects and resyncs from its state vector.
    pub const SLOW_READER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_serialize() {
        assert!(Role::Owner > Role::Editor && Role::Editor > Role::Commenter);
        assert!(Role::Commenter > Role::Viewer);
        assert!(Role::Editor.can_edit() && !Role::Commenter.can_edit());
        assert_eq!(
            serde_json::to_string(&Role::Commenter).unwrap(),
            "\"commenter\""
        );
        let parsed: Role = serde_json::from_str("\"owner\"").unwrap();
        assert_eq!(parsed, Role::Owner);
    }

    #[test]
    fn execute_requests_without_a_state_vector_parse() {
        let request: ExecuteRequest = serde_json::from_str(r#"{"cell_ids":["c"]}"#).unwrap();
        assert_eq!(request.state_vector, None);
    }

    #[test]
    fn sharing_without_editors_may_run_parses_and_keeps_it_out() {
        let put: Sharing = serde_json::from_str(
            r#"{"general_access":"restricted","link_role":"viewer","grants":[]}"#,
        )
        .unwrap();
        assert_eq!(put.editors_may_run, None);
        let answer = Sharing {
            editors_may_run: Some(false),
            ..put
        };
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["editors_may_run"], false);
    }

    #[test]
    fn error_body_shape() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "not_found".into(),
                message: "no such notebook".into(),
            },
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["error"]["code"], "not_found");
        assert_eq!(json["error"]["message"], "no such notebook");
    }
}
