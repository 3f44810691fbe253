//! What a running cell produces, as the manager hands it to its caller.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub use tandem_protocol::kernel::{ExecStatus, Names, StreamName, Variable};

/// One event of a cell, in the order the cell produced it. The last one is always
/// [`KernelEvent::Done`], even when the kernel dies mid-cell.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelEvent {
    /// An output to append to the cell's `outputs`.
    Output(Output),
    /// `update_display_data`: replace `data` and `metadata` of every output shown earlier
    /// with this display id (in this cell or an earlier one), keeping its place.
    UpdateDisplay {
        /// The display id the outputs were created with.
        display_id: String,
        /// The new mime bundle.
        data: Map<String, Value>,
        /// The new per-mime metadata.
        metadata: Map<String, Value>,
    },
    /// `clear_output()`: drop the cell's outputs, at once or (`wait`) when the next output
    /// arrives, which avoids flicker in animations.
    ClearOutput {
        /// Defer the clearing until the next output.
        wait: bool,
    },
    /// What the cell defines and uses, and the same for the peer sources it was submitted
    /// with ([`Kernel::execute_analyzed`](super::Kernel::execute_analyzed)); comes first,
    /// before the cell runs. `None`: the code does not parse.
    Names {
        /// The cell's names.
        cell: Option<Names>,
        /// The peers' names, in the order given.
        peers: Vec<Option<Names>>,
    },
    /// The notebook's variables after the cell, when they changed (the variable
    /// inspector; comes right before [`KernelEvent::Done`]).
    Variables(Vec<Variable>),
    /// The cell asks for a secret of whoever ran it (`tandem.secrets.get`); answer with
    /// [`Kernel::answer_secret`](super::Kernel::answer_secret) and this id, or the cell
    /// waits until the kernel's own timeout.
    SecretRequest {
        /// The request's id.
        id: u64,
        /// The secret's name.
        name: String,
    },
    /// The cell reads a line from stdin (`input()`, `getpass`); answer with
    /// [`Kernel::answer_input`](super::Kernel::answer_input) and this id. The cell waits for
    /// it (or an interrupt).
    InputRequest {
        /// The request's id.
        id: u64,
        /// The prompt shown beside the answer field.
        prompt: String,
        /// Whether the answer is a password (hidden as it is typed, not echoed).
        password: bool,
    },
    /// The cell finished.
    Done {
        /// `Error` if an exception escaped or the kernel died (an error output came first).
        status: ExecStatus,
        /// The cell's `[n]`; `None` for cells IPython does not count (blank ones) and cells
        /// cut short by the kernel's death.
        execution_count: Option<u32>,
    },
}

/// One nbformat v4 output. Serializes to exactly the JSON nbformat stores (`output_type`
/// plus the type's fields), so the caller can write it into the document as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "output_type", rename_all = "snake_case")]
pub enum Output {
    /// Text the cell wrote to `sys.stdout` or `sys.stderr` (a chunk: consecutive chunks
    /// of one stream belong together, as Jupyter merges them).
    Stream {
        /// Which stream.
        name: StreamName,
        /// The text.
        text: String,
    },
    /// A `display()` call (also inline matplotlib figures).
    DisplayData {
        /// The mime bundle (`text/plain`, `text/html`, `image/png` as base64, ...).
        data: Map<String, Value>,
        /// Per-mime metadata (image sizes, ...).
        metadata: Map<String, Value>,
        /// The id later [`KernelEvent::UpdateDisplay`]s target. Transient: not part of
        /// the nbformat output, so never serialized.
        #[serde(skip)]
        display_id: Option<String>,
    },
    /// The value of the cell's last expression.
    ExecuteResult {
        /// The cell's `[n]`.
        execution_count: Option<u32>,
        /// The mime bundle.
        data: Map<String, Value>,
        /// Per-mime metadata.
        metadata: Map<String, Value>,
    },
    /// An exception escaped the cell (or the kernel died under it).
    Error {
        /// The exception's class name.
        ename: String,
        /// Its message.
        evalue: String,
        /// IPython's formatted traceback, with ANSI colors, one entry per block.
        traceback: Vec<String>,
    },
}

/// The events of one submitted cell. Read it to the end (or drop it): the kernel's event
/// pipe waits while this buffer is full, which is how a slow reader slows a chatty cell
/// down instead of growing memory.
#[derive(Debug)]
pub struct Execution {
    pub(crate) id: u64,
    pub(crate) events: mpsc::Receiver<KernelEvent>,
}

impl Execution {
    /// The request id the manager gave this cell (unique per kernel).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event; `None` after [`KernelEvent::Done`].
    pub async fn recv(&mut self) -> Option<KernelEvent> {
        self.events.recv().await
    }

    /// All events up to and including [`KernelEvent::Done`].
    pub async fn collect(mut self) -> Vec<KernelEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.recv().await {
            events.push(event);
        }
        events
    }
}

impl Stream for Execution {
    type Item = KernelEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<KernelEvent>> {
        self.events.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_serialize_as_nbformat() {
        let mut data = Map::new();
        data.insert(
            "text/plain".into(),
            json!("<IPython.core.display.HTML object>"),
        );
        data.insert("text/html".into(), json!("<b>hi</b>"));
        let display = Output::DisplayData {
            data: data.clone(),
            metadata: Map::new(),
            display_id: Some("abc".into()),
        };
        assert_eq!(
            serde_json::to_value(&display).unwrap(),
            json!({"output_type": "display_data", "data": data, "metadata": {}})
        );
        let stream = Output::Stream {
            name: StreamName::Stderr,
            text: "oops\n".into(),
        };
        assert_eq!(
            serde_json::to_value(&stream).unwrap(),
            json!({"output_type": "stream", "name": "stderr", "text": "oops\n"})
        );
        let result = Output::ExecuteResult {
            execution_count: Some(3),
            data: Map::new(),
            metadata: Map::new(),
        };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({"output_type": "execute_result", "execution_count": 3, "data": {}, "metadata": {}})
        );
    }
}
