//! The control channel between the collab service and runtime nodes: JSON text frames on
//! the WebSocket `GET /internal/runtime`, which only the service credential may open (or
//! Redis lists and streams, see [`redis_link`](crate::redis_link)). The collab service checks
//! roles and cell ids, then sends a [`Command`]: an envelope of a request number, the
//! notebook, and one request ([`Body`]). The runtime answers each with a [`Reply`] carrying the
//! same request number and an [`Outcome`]. The link is two-way: the runtime node sends
//! [`Ask`]s up the same link (the secret a running cell reads) and gets [`Answer`]s back, so
//! frames down are [`Down`] and frames up are [`Up`].
//!
//! Each request type says what answers it ([`Request::Response`]): callers get that type or
//! a [`Refusal`] with an [`ErrorCode`], and a reply of the wrong kind is an error in one place
//! ([`Request::response`]), not at every call site.
//!
//! On the wire a command is one flat object, `{"type":"execute","request":7,"notebook_id":…,
//! "cell_ids":[…],"stop_on_error":false,…}`, and a reply `{"type":"ok","request":7,…}` or
//! `{"type":"error","request":7,"code":"no_kernel","message":…}`: peers of older versions
//! understand it.

use serde::{Deserialize, Serialize};

use crate::ids::{NotebookId, UserId};
use crate::kernel::{SecretFailure, SecretText};
use crate::{Completions, Inspection};

/// Path of the control WebSocket.
pub const CONTROL_PATH: &str = "/internal/runtime";

/// A command to a runtime node: which request it is, which notebook, what it asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Matches the reply.
    pub request: u64,
    /// The notebook (checked when the command is parsed: a command with an id that could
    /// not name a file or key is refused whole).
    pub notebook_id: NotebookId,
    /// What is asked.
    #[serde(flatten)]
    pub body: Body,
}

/// What a [`Command`] asks of the notebook's runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// Queue cells.
    Execute(Execute),
    /// Interrupt the running cell and clear the queue.
    Interrupt(Interrupt),
    /// Restart the kernel.
    Restart(Restart),
    /// Switch the runtime type (restarts the kernel on that device).
    SetRuntime(SetRuntime),
    /// Completions at a caret, from the running kernel.
    Complete(Complete),
    /// What the name at a caret is, from the running kernel.
    Inspect(Inspect),
    /// The line typed for the running cell's `input()`.
    Input(Input),
    /// The full text of a truncated output.
    ReadOutput(ReadOutput),
}

impl Body {
    /// Whether the request only reads the kernel (completions, inspection): it may be
    /// answered out of order, while later commands go ahead.
    pub fn is_query(&self) -> bool {
        matches!(self, Body::Complete(_) | Body::Inspect(_))
    }

    /// Whether the request starts a kernel when none runs (so a runtime node must take the
    /// notebook to answer it).
    pub fn starts_kernel(&self) -> bool {
        matches!(self, Body::Execute(_) | Body::SetRuntime(_))
    }
}

/// Who asks, as the runtime records it ("run by", the holder of a kernel it starts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The user id (empty from older collab services: then only the access rule applies).
    #[serde(default)]
    pub user_id: String,
    /// The display name, written beside the id.
    #[serde(default)]
    pub user_name: String,
}

/// Which cells an [`Execute`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// These code cells, in order, already checked to exist.
    Cells(Vec<String>),
    /// A run-all: these cells as one group that stops at its first error.
    All(Vec<String>),
    /// The notebook's stale cells (the runtime resolves them), as one group that stops at its
    /// first error.
    Stale,
}

/// Queue cells of a notebook (answered with the cells queued).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ExecuteWire", into = "ExecuteWire")]
pub struct Execute {
    /// The cells.
    pub target: Target,
    /// Who asked.
    pub caller: Caller,
    /// The caller's Yjs state vector (v1, base64) that the collab service's document
    /// included when it sent this: the runtime reads a cell's code only once its own replica
    /// includes it too (or after a short wait, with a warning).
    pub state_vector: Option<String>,
    /// What the caller may do in a kernel someone else holds.
    pub access: RuntimeAccess,
}

/// [`Execute`] as older peers write it: the target as two flags and a list.
#[derive(Serialize, Deserialize)]
struct ExecuteWire {
    #[serde(default)]
    cell_ids: Vec<String>,
    #[serde(default)]
    stop_on_error: bool,
    #[serde(default)]
    stale: bool,
    #[serde(flatten)]
    caller: Caller,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_vector: Option<String>,
    #[serde(default)]
    access: RuntimeAccess,
}

impl From<ExecuteWire> for Execute {
    fn from(wire: ExecuteWire) -> Self {
        let target = if wire.stale {
            Target::Stale
        } else if wire.stop_on_error {
            Target::All(wire.cell_ids)
        } else {
            Target::Cells(wire.cell_ids)
        };
        Execute {
            target,
            caller: wire.caller,
            state_vector: wire.state_vector,
            access: wire.access,
        }
    }
}

impl From<Execute> for ExecuteWire {
    fn from(execute: Execute) -> Self {
        let (cell_ids, stop_on_error, stale) = match execute.target {
            Target::Cells(cells) => (cells, false, false),
            Target::All(cells) => (cells, true, false),
            Target::Stale => (Vec::new(), false, true),
        };
        ExecuteWire {
            cell_ids,
            stop_on_error,
            stale,
            caller: execute.caller,
            state_vector: execute.state_vector,
            access: execute.access,
        }
    }
}

/// Interrupt the running cell and clear the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interrupt {
    /// Who asked.
    #[serde(flatten)]
    pub caller: Caller,
    /// What the caller may do in a kernel someone else holds.
    #[serde(default)]
    pub access: RuntimeAccess,
}

/// Restart the notebook's kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {
    /// Who asked: the holder of the kernel the restart starts, when it is a takeover or no
    /// kernel ran (see [`RuntimeAccess`]).
    #[serde(flatten)]
    pub caller: Caller,
    /// What the caller may do in a kernel someone else holds.
    #[serde(default)]
    pub access: RuntimeAccess,
}

/// The device a notebook's kernel runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// The CPU (every runtime node).
    Cpu,
    /// The first CUDA device (nodes whose kernel program opens one).
    Gpu,
}

impl RuntimeKind {
    /// `"cpu"` or `"gpu"`, as the HTTP API and the kernel's `TANDEM_RUNTIME` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Cpu => "cpu",
            RuntimeKind::Gpu => "gpu",
        }
    }

    /// Parses `"cpu"` or `"gpu"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cpu" => Some(RuntimeKind::Cpu),
            "gpu" => Some(RuntimeKind::Gpu),
            _ => None,
        }
    }
}

/// Switch the notebook's runtime type (restarts its kernel on that device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRuntime {
    /// The device.
    pub runtime: RuntimeKind,
    /// Who asked, as for [`Restart`].
    #[serde(flatten)]
    pub caller: Caller,
    /// What the caller may do in a kernel someone else holds.
    #[serde(default)]
    pub access: RuntimeAccess,
}

/// Completions at a caret, from the notebook's running kernel (`no_kernel` when none runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complete {
    /// The cell's code.
    pub code: String,
    /// The caret, in UTF-16 code units.
    pub cursor: u32,
    /// Who asked.
    pub user_id: String,
    /// What the caller may do in a kernel someone else holds (as for an execute).
    #[serde(default)]
    pub access: RuntimeAccess,
}

/// What the name at a caret is, from the notebook's running kernel (`no_kernel` when none
/// runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspect {
    /// The cell's code.
    pub code: String,
    /// The caret, in UTF-16 code units.
    pub cursor: u32,
    /// 0: signature and docstring; 1: also the source.
    #[serde(default)]
    pub detail_level: u8,
    /// Who asked.
    pub user_id: String,
    /// What the caller may do in a kernel someone else holds (as for an execute).
    #[serde(default)]
    pub access: RuntimeAccess,
}

/// The line typed for the running cell's `input()`; refused (`input_not_yours`) unless
/// `user_id` ran that cell, `no_input` when no cell waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Who answers.
    pub user_id: String,
    /// The line.
    pub value: String,
}

/// Read the full text of a truncated output (the file named in its notice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOutput {
    /// The file name from the notice's `metadata.tandem.truncated.full_output`.
    pub file: String,
}

/// Whose runtime it is. A notebook's kernel runs for its **holder**, the signed-in person
/// whose execute (or restart, or runtime switch) started it: its `drive/` is theirs, and the
/// runtime writes them to `state.kernel.holder` while it runs. Anyone else who runs a cell
/// acts inside the holder's runtime. The collab service fills this in from the notebook's
/// sharing; the runtime node applies it, since only it knows the holder:
///
/// - No kernel runs (status `not_started` or `dead`): an execute, restart or switch starts
///   one, and the caller holds it.
/// - The holder may always execute, interrupt and restart.
/// - The owner may always interrupt, and a restart (or switch) by the owner of a kernel
///   someone else holds **takes it over**: the fresh kernel is the owner's.
/// - Anyone else, and the owner's execute in someone else's kernel, go ahead (the holder
///   stays) only when [`editors_may_run`](Self::editors_may_run) is on; otherwise the runtime
///   answers `runtime_not_shared` (403 at the API) naming the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeAccess {
    /// The notebook's owner's user id.
    #[serde(default)]
    pub owner_id: String,
    /// The notebook's `editors_may_run` sharing setting.
    #[serde(default = "editors_may_run_default")]
    pub editors_may_run: bool,
}

/// Commands from collab services that predate [`RuntimeAccess`] keep the old rule: every
/// editor may run in anyone's kernel.
fn editors_may_run_default() -> bool {
    true
}

impl Default for RuntimeAccess {
    fn default() -> Self {
        RuntimeAccess {
            owner_id: String::new(),
            editors_may_run: editors_may_run_default(),
        }
    }
}

/// A runtime's answer to a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The command's request number.
    pub request: u64,
    /// What came of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What came of a command: its request type's answer, or a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// Done (an execute: the cells queued).
    Ok {
        /// For execute: the cells queued.
        #[serde(default)]
        queued: Vec<String>,
    },
    /// Completions, for [`Complete`].
    Completions(Completions),
    /// An inspection, for [`Inspect`].
    Inspection(Inspection),
    /// The full text of an output, for [`ReadOutput`].
    Output {
        /// The text.
        text: String,
    },
    /// Refused or failed.
    Error(Refusal),
}

/// Why a runtime refused or could not do a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// For humans.
    pub message: String,
}

impl Refusal {
    /// A refusal with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// The runtime's refusals, as stable snake_case codes (the HTTP API answers with the same
/// codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A cell id that is not a code cell of the notebook.
    UnknownCell,
    /// The caller holds as many running kernels as they may.
    KernelLimit,
    /// A GPU runtime was asked of a node that has none.
    GpuUnavailable,
    /// The kernel is someone else's and the notebook does not let editors run in it.
    RuntimeNotShared,
    /// No kernel runs to answer a query.
    NoKernel,
    /// The kernel did not answer a query.
    KernelBusy,
    /// No cell waits for input.
    NoInput,
    /// The cell waiting for input was run by someone else.
    InputNotYours,
    /// No such saved output.
    NotFound,
    /// Anything else that failed in the runtime (also a code this version does not know).
    #[serde(other)]
    RuntimeError,
}

impl ErrorCode {
    /// The code as the wire and the HTTP API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCell => "unknown_cell",
            ErrorCode::KernelLimit => "kernel_limit",
            ErrorCode::GpuUnavailable => "gpu_unavailable",
            ErrorCode::RuntimeNotShared => "runtime_not_shared",
            ErrorCode::NoKernel => "no_kernel",
            ErrorCode::KernelBusy => "kernel_busy",
            ErrorCode::NoInput => "no_input",
            ErrorCode::InputNotYours => "input_not_yours",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RuntimeError => "runtime_error",
        }
    }
}

/// A runtime node asking the collab service for something while it serves a notebook: the
/// other direction of the link. Today one thing is asked: the secret a running cell reads
/// (`tandem.secrets.get`), looked up for the person who ran that cell.
///
/// On the wire: `{"ask":3,"notebook_id":…,"type":"secret","user_id":…,"name":"HF_TOKEN"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Matches the answer (numbered by the runtime node, apart from request numbers).
    pub ask: u64,
    /// The notebook whose kernel asks.
    pub notebook_id: NotebookId,
    /// What is asked.
    #[serde(flatten)]
    pub body: AskBody,
}

/// What an [`Ask`] asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AskBody {
    /// The value of `user_id`'s secret `name`, which must be granted to the notebook, whose
    /// owner must still be able to edit it.
    Secret {
        /// Who ran the cell that asks: their secrets and grants apply.
        user_id: UserId,
        /// The secret's name.
        name: String,
    },
}

/// The collab service's answer to an [`Ask`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The ask's number.
    pub ask: u64,
    /// What came of it.
    #[serde(flatten)]
    pub outcome: AskOutcome,
}

/// What came of an [`Ask`]: the value, or why there is none (`secret_not_found`,
/// `notebook_access`, `secrets_unconfigured`, `unavailable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AskOutcome {
    /// The secret's value (`Debug` never shows it).
    Secret {
        /// The value.
        value: SecretText,
    },
    /// No value, and why.
    Refused(SecretFailure),
}

/// A frame from the collab service to a runtime node: a command, or the answer to one of the
/// node's asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Down {
    /// A command to handle.
    Command(Command),
    /// The answer to an ask.
    Answer(Answer),
}

/// A frame from a runtime node to the collab service: the reply to a command, or an ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Up {
    /// A command's reply.
    Reply(Reply),
    /// Something the runtime asks.
    Ask(Ask),
}

/// A request type, with the answer that goes with it.
pub trait Request: Into<Body> {
    /// What answers this request when it is not refused.
    type Response;

    /// The answer as the wire carries it.
    fn outcome(response: Self::Response) -> Outcome;

    /// The answer in an outcome; a refusal, or an outcome of another request type (a
    /// confused peer), is given back.
    fn response(outcome: Outcome) -> Result<Self::Response, Outcome>;
}

/// Requests answered by a plain `ok`.
macro_rules! answered_ok {
    ($($request:ident),*) => {$(
        impl Request for $request {
            type Response = ();

            fn outcome((): ()) -> Outcome {
                Outcome::Ok { queued: Vec::new() }
            }

            fn response(outcome: Outcome) -> Result<(), Outcome> {
                match outcome {
                    Outcome::Ok { .. } => Ok(()),
                    other => Err(other),
                }
            }
        }
    )*};
}

answered_ok!(Interrupt, Restart, SetRuntime, Input);

impl Request for Execute {
    /// The cells queued.
    type Response = Vec<String>;

    fn outcome(queued: Vec<String>) -> Outcome {
        Outcome::Ok { queued }
    }

    fn response(outcome: Outcome) -> Result<Vec<String>, Outcome> {
        match outcome {
            Outcome::Ok { queued } => Ok(queued),
            other => Err(other),
        }
    }
}

impl Request for Complete {
    type Response = Completions;

    fn outcome(completions: Completions) -> Outcome {
        Outcome::Completions(completions)
    }

    fn response(outcome: Outcome) -> Result<Completions, Outcome> {
        match outcome {
            Outcome::Completions(completions) => Ok(completions),
            other => Err(other),
        }
    }
}

impl Request for Inspect {
    type Response = Inspection;

    fn outcome(inspection: Inspection) -> Outcome {
        Outcome::Inspection(inspection)
    }

    fn response(outcome: Outcome) -> Result<Inspection, Outcome> {
        match outcome {
            Outcome::Inspection(inspection) => Ok(inspection),
            other => Err(other),
        }
    }
}

impl Request for ReadOutput {
    /// The file's text.
    type Response = String;

    fn outcome(text: String) -> Outcome {
        Outcome::Output { text }
    }

    fn response(outcome: Outcome) -> Result<String, Outcome> {
        match outcome {
            Outcome::Output { text } => Ok(text),
            other => Err(other),
        }
    }
}

macro_rules! into_body {
    ($($request:ident),*) => {$(
        impl From<$request> for Body {
            fn from(request: $request) -> Body {
                Body::$request(request)
            }
        }
    )*};
}

into_body!(
    Execute, Interrupt, Restart, SetRuntime, Complete, Inspect, Input, ReadOutput
);

/// The outcome of handling request `R`: its answer, or the refusal.
pub fn outcome<R: Request>(result: Result<R::Response, Refusal>) -> Outcome {
    match result {
        Ok(response) => R::outcome(response),
        Err(refusal) => Outcome::Error(refusal),
    }
}

/// What a caller of request `R` gets from a reply's outcome: the answer, the refusal, or
/// (a reply of the wrong kind) a refusal saying so.
pub fn answer<R: Request>(outcome: Outcome) -> Result<R::Response, Refusal> {
    match R::response(outcome) {
        Ok(response) => Ok(response),
        Err(Outcome::Error(refusal)) => Err(refusal),
        Err(other) => Err(Refusal::new(
            ErrorCode::RuntimeError,
            format!("the runtime answered with an unexpected reply: {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_are_flat_objects_as_before() {
        let command = Command {
            request: 7,
            notebook_id: NotebookId::parse("n").unwrap(),
            body: Execute {
                target: Target::All(vec!["a".into(), "b".into()]),
                caller: Caller {
                    user_id: "u".into(),
                    user_name: "Ada".into(),
                },
                state_vector: None,
                access: RuntimeAccess::default(),
            }
            .into(),
        };
        let json = serde_json::to_value(&command).unwrap();
        assert_eq!(
            json,
            json!({"type": "execute", "request": 7, "notebook_id": "n",
                   "cell_ids": ["a", "b"], "stop_on_error": true, "stale": false,
                   "user_id": "u", "user_name": "Ada",
                   "access": {"owner_id": "", "editors_may_run": true}})
        );
        let back: Command = serde_json::from_value(json).unwrap();
        assert_eq!(back, command);

        let switch = json!({"type": "set_runtime", "request": 2, "notebook_id": "n",
                            "runtime": "gpu", "user_id": "u"});
        let command: Command = serde_json::from_value(switch).unwrap();
        assert!(matches!(
            command.body,
            Body::SetRuntime(SetRuntime {
                runtime: RuntimeKind::Gpu,
                ..
            })
        ));
        let bad = json!({"type": "set_runtime", "request": 2, "notebook_id": "n",
                         "runtime": "tpu"});
        assert!(serde_json::from_value::<Command>(bad).is_err());
        let escape = json!({"type": "read_output", "request": 3, "notebook_id": "../n",
                            "file": "f"});
        let error = serde_json::from_value::<Command>(escape).unwrap_err();
        assert!(error.to_string().contains("not a notebook id"), "{error}");
    }

    #[test]
    fn commands_from_older_peers_still_parse() {
        let old = r#"{"type":"execute","request":1,"notebook_id":"n","cell_ids":["c"],
            "stop_on_error":false,"user_id":"u"}"#;
        let command: Command = serde_json::from_str(old).unwrap();
        assert!(matches!(
            command.body,
            Body::Execute(Execute { target: Target::Cells(ref cells), ref caller, state_vector: None, .. })
                if cells == &["c"] && caller.user_name.is_empty()
        ));
        // Without an access rule, every editor may run in anyone's kernel, as before.
        let old = r#"{"type":"restart","request":2,"notebook_id":"n"}"#;
        let command: Command = serde_json::from_str(old).unwrap();
        assert!(matches!(
            command.body,
            Body::Restart(Restart { ref caller, ref access })
                if caller.user_id.is_empty() && access.editors_may_run && access.owner_id.is_empty()
        ));
    }

    #[test]
    fn replies_are_typed_per_request() {
        let reply = Reply {
            request: 3,
            outcome: outcome::<Execute>(Ok(vec!["a".into()])),
        };
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json, json!({"type": "ok", "request": 3, "queued": ["a"]}));
        let back: Reply = serde_json::from_value(json).unwrap();
        assert_eq!(answer::<Execute>(back.outcome), Ok(vec!["a".to_owned()]));

        let refused = json!({"type": "error", "request": 4, "code": "no_kernel", "message": "m"});
        let reply: Reply = serde_json::from_value(refused).unwrap();
        assert_eq!(
            answer::<Complete>(reply.outcome),
            Err(Refusal::new(ErrorCode::NoKernel, "m"))
        );
        // A code from a newer peer is a runtime error here, not an undecodable reply.
        let newer = json!({"type": "error", "request": 5, "code": "brand_new", "message": "m"});
        let reply: Reply = serde_json::from_value(newer).unwrap();
        assert_eq!(
            reply.outcome,
            Outcome::Error(Refusal::new(ErrorCode::RuntimeError, "m"))
        );
        // An answer of the wrong kind is refused in one place.
        let wrong = answer::<ReadOutput>(Outcome::Ok { queued: vec![] }).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::RuntimeError);
        assert!(
            wrong.message.contains("unexpected reply"),
            "{}",
            wrong.message
        );

        let completions = json!({"type": "completions", "request": 6, "matches": [],
                                 "cursor_start": 1, "cursor_end": 2});
        let reply: Reply = serde_json::from_value(completions.clone()).unwrap();
        assert_eq!(serde_json::to_value(&reply).unwrap(), completions);
        let answer = answer::<Complete>(reply.outcome).unwrap();
        assert_eq!((answer.cursor_start, answer.cursor_end), (1, 2));
    }

    #[test]
    fn error_codes_name_themselves_as_on_the_wire() {
        for code in [
            ErrorCode::UnknownCell,
            ErrorCode::KernelLimit,
            ErrorCode::GpuUnavailable,
            ErrorCode::RuntimeNotShared,
            ErrorCode::NoKernel,
            ErrorCode::KernelBusy,
            ErrorCode::NoInput,
            ErrorCode::InputNotYours,
            ErrorCode::NotFound,
            ErrorCode::RuntimeError,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                json!(code.as_str()),
                "{code:?}"
            );
        }
    }

    #[test]
    fn frames_each_way_tell_commands_from_asks() {
        let ask = json!({"ask": 3, "notebook_id": "n", "type": "secret",
                         "user_id": "u1", "name": "HF_TOKEN"});
        let Up::Ask(parsed) = serde_json::from_value(ask.clone()).unwrap() else {
            panic!("an ask read as a reply");
        };
        assert_eq!(parsed.ask, 3);
        assert_eq!(serde_json::to_value(Up::Ask(parsed)).unwrap(), ask);
        let reply = json!({"type": "ok", "request": 3, "queued": []});
        assert!(matches!(
            serde_json::from_value(reply).unwrap(),
            Up::Reply(Reply { request: 3, .. })
        ));

        let answer = json!({"ask": 3, "type": "secret", "value": "sk-1"});
        let Down::Answer(parsed) = serde_json::from_value(answer.clone()).unwrap() else {
            panic!("an answer read as a command");
        };
        assert!(!format!("{parsed:?}").contains("sk-1"), "{parsed:?}");
        assert_eq!(serde_json::to_value(Down::Answer(parsed)).unwrap(), answer);
        let refused = json!({"ask": 4, "type": "refused", "code": "notebook_access",
                             "message": "not granted"});
        assert!(matches!(
            serde_json::from_value(refused).unwrap(),
            Down::Answer(Answer {
                ask: 4,
                outcome: AskOutcome::Refused(_)
            })
        ));
        let command = json!({"type": "interrupt", "request": 9, "notebook_id": "n"});
        assert!(matches!(
            serde_json::from_value(command).unwrap(),
            Down::Command(Command { request: 9, .. })
        ));
        // An ask for another user's escape path does not parse at all.
        let bad = json!({"ask": 5, "notebook_id": "n", "type": "secret",
                         "user_id": "../u", "name": "X"});
        assert!(serde_json::from_value::<Up>(bad).is_err());
    }
}
