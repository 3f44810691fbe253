//! Writing one running cell's outputs into the document.
//!
//! - Stream text is buffered and written at most once per [`STREAM_FLUSH_INTERVAL`] (the
//!   first chunk after a quiet interval goes at once, so a lone `print` is not delayed).
//!   Buffered operations keep their order; a `clear_output` drops the text buffered before
//!   it, so a progress bar redrawn a thousand times between two flushes costs one write.
//! - Rich outputs (display data, results, errors) are written at once, after the buffered
//!   text, so output never overtakes earlier output.
//! - `clear_output(wait=True)` clears just before the next output arrives, as Jupyter does
//!   to avoid flicker; if nothing follows, the old outputs stay.
//! - The cap: once the cell's outputs (stream text, plus the JSON size of rich outputs)
//!   exceed the cap, nothing more goes into the document. One `display_data` notice says so
//!   and, when the cell ends, how much was cut; everything the cell printed (stream text,
//!   and the `text/plain` of rich outputs beyond the cap) is kept in a file whose path the
//!   notice's `metadata.tandem.truncated.full_output` holds. The cap counts what the cell
//!   shows now: `clear_output` starts the count again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use tandem_crdt::Notebook;

use crate::kernel::{Output, StreamName};

/// How often buffered stream text reaches the document while a cell prints. Collaborators'
/// screens redraw at about this rate; writing more often only multiplies transactions and
/// network frames (a loop of 100 000 prints would otherwise be 100 000 updates).
pub const STREAM_FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Where displays with a display id are, so `update_display_data` can find them again:
/// display id → (cell id, output index), across every cell of the notebook.
#[derive(Debug, Default)]
pub(crate) struct Displays {
    by_id: HashMap<String, Vec<(String, u32)>>,
}

impl Displays {
    fn register(&mut self, display_id: String, cell: &str, index: u32) {
        self.by_id
            .entry(display_id)
            .or_default()
            .push((cell.to_owned(), index));
    }

    /// Forgets the displays of a cell whose outputs were cleared.
    pub(crate) fn forget_cell(&mut self, cell: &str) {
        self.by_id.retain(|_, places| {
            places.retain(|(id, _)| id != cell);
            !places.is_empty()
        });
    }

    /// Replaces data and metadata of every output shown with `display_id`.
    pub(crate) fn update(
        &self,
        notebook: &Notebook,
        display_id: &str,
        data: &serde_json::Map<String, Value>,
        metadata: &serde_json::Map<String, Value>,
    ) {
        for (cell, index) in self.by_id.get(display_id).into_iter().flatten() {
            if !notebook.replace_output_data(cell, *index, data, metadata) {
                tracing::debug!(cell, index, display_id, "display to update is gone");
            }
        }
    }
}

#[derive(Debug)]
enum Op {
    Clear,
    Stream(StreamName, String),
}

/// Where the text beyond the cap goes.
#[derive(Debug)]
struct Spill {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    cut_bytes: u64,
    notice_index: u32,
}

/// The outputs of the cell that is running.
#[derive(Debug)]
pub(crate) struct CellOutput {
    cell_id: String,
    ops: Vec<Op>,
    clear_on_next: bool,
    last_flush: Option<Instant>,
    flush_at: Option<Instant>,
    cap: usize,
    /// Bytes the document shows (or will once `ops` are flushed) since the last clear.
    shown: usize,
    /// The text shown since the last clear, so the spill file can start with it.
    kept: String,
    spill_path: PathBuf,
    spill: Option<Spill>,
}

impl CellOutput {
    /// `spill_path`: the file that receives the full output if the cell exceeds `cap`.
    pub(crate) fn new(cell_id: &str, cap: usize, spill_path: PathBuf) -> Self {
        CellOutput {
            cell_id: cell_id.to_owned(),
            ops: Vec::new(),
            clear_on_next: false,
            last_flush: None,
            flush_at: None,
            cap,
            shown: 0,
            kept: String::new(),
            spill_path,
            spill: None,
        }
    }

    /// When buffered text must be written, if any is buffered.
    pub(crate) fn flush_at(&self) -> Option<Instant> {
        self.flush_at
    }

    /// Takes one output of the cell.
    pub(crate) fn push(&mut self, nb: &Notebook, displays: &mut Displays, output: Output) {
        match output {
            Output::Stream { name, text } => self.stream(nb, displays, name, text),
            Output::DisplayData {
                data,
                metadata,
                display_id,
            } => {
                let json =
                    json!({"output_type": "display_data", "data": data, "metadata": metadata});
                self.rich(nb, displays, json, display_id);
            }
            other => match serde_json::to_value(&other) {
                Ok(json) => self.rich(nb, displays, json, None),
                Err(error) => tracing::warn!(%error, "unserializable output dropped"),
            },
        }
    }

    /// `clear_output(wait)`.
    pub(crate) fn clear(&mut self, nb: &Notebook, displays: &mut Displays, wait: bool) {
        if wait {
            self.clear_on_next = true;
        } else {
            self.clear_on_next = false;
            self.push_clear();
            self.schedule(nb, displays);
        }
    }

    /// Writes what is buffered now.
    pub(crate) fn flush(&mut self, nb: &Notebook, displays: &mut Displays) {
        self.flush_at = None;
        if self.ops.is_empty() {
            return;
        }
        self.last_flush = Some(Instant::now());
        for op in std::mem::take(&mut self.ops) {
            let result = match op {
                Op::Clear => {
                    displays.forget_cell(&self.cell_id);
                    nb.clear_outputs(&self.cell_id)
                }
                Op::Stream(name, text) => nb.append_stream(&self.cell_id, stream_name(name), &text),
            };
            if let Err(error) = result {
                // The cell was deleted while it ran: its output has nowhere to go.
                tracing::debug!(cell = %self.cell_id, %error, "output not written");
            }
        }
    }

    /// The cell ended: writes what is buffered and completes the truncation notice.
    pub(crate) fn finish(&mut self, nb: &Notebook, displays: &mut Displays) {
        self.flush(nb, displays);
        let Some(spill) = &mut self.spill else { return };
        if let Some(file) = &mut spill.file
            && let Err(error) = file.flush()
        {
            tracing::warn!(path = %spill.path.display(), %error, "could not write the full output");
        }
        let (data, metadata) = notice(self.cap, self.shown, spill, true);
        nb.replace_output_data(&self.cell_id, spill.notice_index, &data, &metadata);
    }

    fn stream(&mut self, nb: &Notebook, displays: &mut Displays, name: StreamName, text: String) {
        if self.clear_on_next {
            self.clear_on_next = false;
            self.push_clear();
        }
        let room = if self.spill.is_some() {
            0
        } else {
            self.cap.saturating_sub(self.shown)
        };
        let split = floor_char_boundary(&text, room);
        let (shown, cut) = text.split_at(split);
        if !shown.is_empty() {
            self.shown += shown.len();
            self.kept.push_str(shown);
            match self.ops.last_mut() {
                Some(Op::Stream(last, buffered)) if *last == name => buffered.push_str(shown),
                _ => self.ops.push(Op::Stream(name, shown.to_owned())),
            }
        }
        if cut.is_empty() {
            self.schedule(nb, displays);
        } else {
            self.overflow(nb, displays, cut);
        }
    }

    fn rich(
        &mut self,
        nb: &Notebook,
        displays: &mut Displays,
        json: Value,
        display_id: Option<String>,
    ) {
        self.flush(nb, displays);
        if self.clear_on_next {
            self.clear_on_next = false;
            self.push_clear();
            self.flush(nb, displays);
        }
        let size = json.to_string().len();
        if self.spill.is_some() || self.shown + size > self.cap {
            let text = json
                .pointer("/data/text~1plain")
                .or_else(|| json.get("evalue"))
                .and_then(Value::as_str)
                .unwrap_or("[output without text]");
            let kind = json
                .get("output_type")
                .and_then(Value::as_str)
                .unwrap_or("output");
            self.overflow(nb, displays, &format!("\n[{kind}, {size} bytes]\n{text}\n"));
            return;
        }
        if let Err(error) = nb.append_output(&self.cell_id, &json) {
            tracing::debug!(cell = %self.cell_id, %error, "output not written");
            return;
        }
        self.shown += size;
        if let Some(text) = json.pointer("/data/text~1plain").and_then(Value::as_str) {
            self.kept.push_str(text);
            self.kept.push('\n');
        }
        if let Some(display_id) = display_id {
            let index = nb.output_count(&self.cell_id).saturating_sub(1);
            displays.register(display_id, &self.cell_id, index);
        }
    }

    /// Text beyond the cap: to the spill file, with the notice added the first time.
    fn overflow(&mut self, nb: &Notebook, displays: &mut Displays, cut: &str) {
        if self.spill.is_none() {
            self.flush(nb, displays);
            let file = open_spill(&self.spill_path, &self.kept);
            let mut spill = Spill {
                file,
                path: self.spill_path.clone(),
                cut_bytes: 0,
                notice_index: 0,
            };
            let (data, metadata) = notice(self.cap, self.shown, &spill, false);
            let output = json!({"output_type": "display_data", "data": data, "metadata": metadata});
            if let Err(error) = nb.append_output(&self.cell_id, &output) {
                tracing::debug!(cell = %self.cell_id, %error, "truncation notice not written");
            }
            spill.notice_index = nb.output_count(&self.cell_id).saturating_sub(1);
            self.kept = String::new();
            self.spill = Some(spill);
        }
        if let Some(spill) = &mut self.spill {
            spill.cut_bytes += cut.len() as u64;
            if let Some(file) = &mut spill.file
                && let Err(error) = file.write_all(cut.as_bytes())
            {
                tracing::warn!(path = %spill.path.display(), %error, "could not keep the full output");
                spill.file = None;
            }
        }
    }

    /// A clear supersedes everything buffered before it and restarts the cap's count.
    fn push_clear(&mut self) {
        self.ops.clear();
        self.ops.push(Op::Clear);
        self.shown = 0;
        self.kept.clear();
        if let Some(mut spill) = self.spill.take()
            && let Some(file) = &mut spill.file
        {
            let _ = file.flush();
        }
    }

    fn schedule(&mut self, nb: &Notebook, displays: &mut Displays) {
        let now = Instant::now();
        match self.last_flush {
            Some(last) if now < last + STREAM_FLUSH_INTERVAL => {
                self.flush_at.get_or_insert(last + STREAM_FLUSH_INTERVAL);
            }
            _ => self.flush(nb, displays),
        }
    }
}

/// The notice's `data` and `metadata`.
fn notice(
    cap: usize,
    shown: usize,
    spill: &Spill,
    finished: bool,
) -> (
    serde_json::Map<String, Value>,
    serde_json::Map<String, Value>,
) {
    // Only the file's name goes into the document: server paths are nobody's business, and
    // `GET /api/notebooks/{id}/outputs/{name}` serves the file.
    let path = spill.file.as_ref().and_then(|_| {
        spill
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
    });
    let mut text = format!(
        "Output truncated: this cell's output exceeded {}",
        human(cap as u64)
    );
    if finished {
        text.push_str(&format!("; {} more was not shown", human(spill.cut_bytes)));
    }
    match &path {
        Some(path) => text.push_str(&format!(". The full output can be downloaded ({path})")),
        None => text.push_str(". The full output could not be saved"),
    }
    text.push('.');
    let data = json!({"text/plain": text});
    let truncated = json!({
        "shown_bytes": shown, "cut_bytes": spill.cut_bytes, "full_output": path,
        "finished": finished,
    });
    let metadata = json!({"tandem": {"truncated": truncated}});
    match (data, metadata) {
        (Value::Object(data), Value::Object(metadata)) => (data, metadata),
        _ => Default::default(),
    }
}

fn open_spill(path: &PathBuf, kept: &str) -> Option<BufWriter<File>> {
    let open = || -> std::io::Result<BufWriter<File>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(kept.as_bytes())?;
        Ok(file)
    };
    match open() {
        Ok(file) => Some(file),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "could not keep the full output");
            None
        }
    }
}

fn human(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b if b >= KIB => format!("{:.1} KiB", b as f64 / KIB as f64),
        b => format!("{b} bytes"),
    }
}

fn stream_name(name: StreamName) -> &'static str {
    match name {
        StreamName::Stdout => "stdout",
        StreamName::Stderr => "stderr",
    }
}

/// The largest index ≤ `at` that is a char boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    let mut at = at;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_crdt::NewCell;

    fn setup(cap: usize) -> (Notebook, String, CellOutput, Displays, tempfile::TempDir) {
        let nb = Notebook::new();
        let id = nb.insert_cell(0, NewCell::code("")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = CellOutput::new(&id, cap, dir.path().join("full.txt"));
        (nb, id, out, Displays::default(), dir)
    }

    fn stdout(text: &str) -> Output {
        Output::Stream {
            name: StreamName::Stdout,
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn streams_coalesce_and_clears_drop_buffered_text() {
        let (nb, _, mut out, mut displays, _dir) = setup(1 << 20);
        out.push(&nb, &mut displays, stdout("a"));
        // The first chunk goes at once, the next ones wait for the interval.
        assert_eq!(nb.cells()[0].outputs[0]["text"], "a");
        out.push(&nb, &mut displays, stdout("b"));
        out.push(
            &nb,
            &mut displays,
            Output::Stream {
                name: StreamName::Stderr,
                text: "e".into(),
            },
        );
        out.push(&nb, &mut displays, stdout("c"));
        assert!(out.flush_at().is_some());
        assert_eq!(nb.cells()[0].outputs.len(), 1);
        out.clear(&nb, &mut displays, true);
        out.push(&nb, &mut displays, stdout("d"));
        out.finish(&nb, &mut displays);
        let outputs = &nb.cells()[0].outputs;
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert_eq!(outputs[0]["text"], "d");
    }

    #[tokio::test]
    async fn displays_update_in_place_and_the_cap_spills_to_a_file() {
        let (nb, id, mut out, mut displays, dir) = setup(100);
        let data = serde_json::Map::from_iter([("text/plain".to_owned(), json!("v1"))]);
        let display = Output::DisplayData {
            data,
            metadata: Default::default(),
            display_id: Some("d".into()),
        };
        out.push(&nb, &mut displays, display);
        let new = serde_json::Map::from_iter([("text/plain".to_owned(), json!("v2"))]);
        displays.update(&nb, "d", &new, &Default::default());
        assert_eq!(nb.cells()[0].outputs[0]["data"]["text/plain"], "v2");
        out.push(&nb, &mut displays, stdout(&"x".repeat(150)));
        out.push(&nb, &mut displays, stdout("tail"));
        out.finish(&nb, &mut displays);
        let outputs = nb.cells()[0].outputs.clone();
        assert_eq!(outputs.len(), 3, "{outputs:?}");
        let shown = outputs[1]["text"].as_str().unwrap().len();
        let truncated = &outputs[2]["metadata"]["tandem"]["truncated"];
        assert_eq!(
            truncated["cut_bytes"].as_u64().unwrap() as usize,
            154 - shown
        );
        let name = truncated["full_output"].as_str().unwrap();
        assert!(
            !name.contains('/'),
            "only the file's name goes into the document: {name}"
        );
        let full = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(
            full.ends_with(&format!("{}tail", "x".repeat(150))),
            "{full}"
        );
        assert!(
            outputs[2]["data"]["text/plain"]
                .as_str()
                .unwrap()
                .contains("not shown")
        );
        displays.forget_cell(&id);
        assert!(displays.by_id.is_empty());
    }
}
