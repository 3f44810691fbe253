//! No hidden state, against a real collab service and real kernels: stale marks after an
//! upstream cell changes and runs again, warnings about names from below or from cells never
//! run, and "run stale" bringing the notebook back to consistency. A second document client
//! (the observer) edits and checks what every collaborator sees.
//!
//! Needs the kernel venv (`scripts/setup-python`).

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::{Cell, ExecutionState, Notebook};
use tandem_runtime::kernel::KernelOptions;
use tandem_runtime::session::{Requester, Session, SessionConfig};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The runtime's credential on the test's collab service.
const SERVICE_TOKEN: &str = "session-test-service-token";

/// Generous: a debug-build kernel starts in about a second, but CI machines are slow.
const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    _dir: TempDir,
    stop: CancellationToken,
    session: Session,
    observer: DocConnection,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Harness {
    async fn start(cells: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = tandem_collab::Config::with_data(dir.path().join("data"))?;
        // The session joins as a runtime does: only the service credential may write outputs,
        // counts and `state.kernel`.
        config.service_token = Some(SERVICE_TOKEN.to_owned());
        let server = tandem_collab::Server::bind(config).await?;
        let addr = server.local_addr();
        let app = server.app().clone();
        let (_, token) =
            tandem_collab::auth::create_token(app.store.as_ref(), "ada@example.com", "Ada").await?;
        let stop = CancellationToken::new();
        tokio::spawn(server.run(stop.clone()));

        let client = Client::new(&format!("http://{addr}"), &token)?;
        let cells: Vec<Value> = cells
            .iter()
            .map(|(id, source)| {
                json!({"cell_type": "code", "id": id, "metadata": {}, "source": source,
                       "outputs": [], "execution_count": null})
            })
            .collect();
        let ipynb = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells});
        let notebook = client.create_notebook("stale test", Some(ipynb)).await?;
        let ws = client.ws_base()?;
        let observer = DocConnection::connect(&ws, &notebook.id, Some(&token)).await?;
        observer.synced().await?;
        let kernel = KernelOptions {
            program: env!("CARGO_BIN_EXE_tandem-kernel").into(),
            args: Vec::new(),
            venv: concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-kernel").into(),
            workdir: dir.path().join("kernel"),
            memory_limit_bytes: None,
            env: Vec::new(),
            scratch: None,
            isolation: Default::default(),
            gpu: false,
        };
        let config = SessionConfig::new(&ws, &notebook.id, SERVICE_TOKEN, kernel);
        let session = Session::start(config).await?;
        Ok(Harness {
            _dir: dir,
            stop,
            session,
            observer,
        })
    }

    fn notebook(&self) -> Notebook {
        Notebook::from_doc(self.observer.doc().clone())
    }

    fn cell(&self, id: &str) -> Cell {
        let cells = self.notebook().cells();
        cells
            .into_iter()
            .find(|c| c.id == id)
            .expect("no such cell")
    }

    /// `state.kernel.stale` as the observer sees it.
    fn stale(&self) -> Value {
        self.notebook()
            .state_value("kernel")
            .and_then(|k| k.get("stale").cloned())
            .unwrap_or(Value::Null)
    }

    /// The cells the observer sees marked `tandem_stale`.
    fn marked(&self) -> Vec<String> {
        let nb = self.notebook();
        let cells = nb.cells();
        cells
            .into_iter()
            .filter(|c| nb.is_stale(&c.id))
            .map(|c| c.id)
            .collect()
    }

    async fn wait(&self, what: &str, mut check: impl FnMut(&Notebook) -> bool) -> Result<()> {
        self.observer
            .wait_until(|doc| check(&Notebook::from_doc(doc.clone())), WAIT)
            .await
            .with_context(|| {
                format!(
                    "waiting for {what}; cells: {:#?}; kernel: {:?}",
                    self.notebook().cells(),
                    self.notebook().state_value("kernel")
                )
            })
    }

    /// Runs cells (one request) and waits until the last is done.
    async fn run(&self, ids: &[&str]) -> Result<()> {
        let before = self.cell(ids[ids.len() - 1]).execution_count;
        let queued = self
            .session
            .execute(ids.iter().map(|id| id.to_string()).collect(), None)
            .await?;
        assert_eq!(queued, ids);
        self.finished(ids[ids.len() - 1], before).await
    }

    /// Waits until cell `id` is idle with a count other than `before`.
    async fn finished(&self, id: &str, before: Option<i64>) -> Result<()> {
        self.wait(&format!("cell {id} to finish"), |nb| {
            nb.cells().iter().any(|c| {
                c.id == id
                    && c.execution_state == Some(ExecutionState::Idle)
                    && c.execution_count.is_some()
                    && c.execution_count != before
            })
        })
        .await
    }

    async fn wait_stale(&self, wanted: &[&str]) -> Result<()> {
        let wanted_json = json!(wanted);
        self.wait(&format!("stale = {wanted:?}"), |nb| {
            let stale = nb
                .state_value("kernel")
                .and_then(|k| k.get("stale").cloned());
            stale.as_ref() == Some(&wanted_json)
        })
        .await?;
        assert_eq!(self.marked(), wanted, "the cells' own marks");
        Ok(())
    }

    /// Replaces cell `id`'s source, as another collaborator typing would.
    fn edit(&self, id: &str, source: &str) {
        let nb = self.notebook();
        let len = self.cell(id).source.encode_utf16().count() as u32;
        nb.edit_source(id, 0, len, source).unwrap();
    }
}

/// All text of a cell's outputs, streams and `text/plain`, and errors as `ename: evalue`.
fn text(cell: &Cell) -> String {
    cell.outputs
        .iter()
        .map(|o| match o["output_type"].as_str() {
            Some("stream") => o["text"].as_str().unwrap_or_default().to_owned(),
            Some("error") => format!("{}: {}\n", o["ename"], o["evalue"]),
            _ => o["data"]["text/plain"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn an_upstream_edit_and_rerun_mark_cells_stale_and_run_stale_fixes_them() -> Result<()> {
    let h = Harness::start(&[
        ("a", "x = 1"),
        ("b", "y = x * 2"),
        ("c", "print(y)"),
        ("n", "never = 'run'"),
    ])
    .await?;
    h.run(&["a", "b", "c"]).await?;
    h.wait_stale(&[]).await?;
    assert_eq!(text(&h.cell("c")), "2\n");

    // Another collaborator edits `a`: it is stale, and so is everything downstream of it.
    h.edit("a", "x = 5");
    h.wait_stale(&["a", "b", "c"]).await?;
    // Running `a` clears it; `b` and `c` still hold what the old `x` gave.
    h.run(&["a"]).await?;
    h.wait_stale(&["b", "c"]).await?;

    // "Run stale" runs them in order, and nothing is stale afterwards.
    let before = h.cell("c").execution_count;
    let queued = h
        .session
        .execute_stale(Some(1), Requester::default())
        .await?;
    assert_eq!(queued, ["b", "c"]);
    h.finished("c", before).await?;
    h.wait_stale(&[]).await?;
    assert_eq!(text(&h.cell("c")), "10\n");

    // An edit that only changes `c` marks only `c`; undoing it clears the mark again.
    h.edit("c", "print(y, 'edited')");
    h.wait_stale(&["c"]).await?;
    h.edit("c", "print(y)");
    h.wait_stale(&[]).await?;

    // A restart forgets the kernel's state: every cell that ran is stale, and "run stale"
    // runs them all again, definers first.
    h.session.restart().await?;
    h.wait_stale(&["a", "b", "c"]).await?;
    let before = h.cell("c").execution_count;
    let queued = h
        .session
        .execute_stale(Some(2), Requester::default())
        .await?;
    assert_eq!(queued, ["a", "b", "c"]);
    h.finished("c", before).await?;
    h.wait_stale(&[]).await?;
    assert_eq!(text(&h.cell("c")), "10\n");
    assert_eq!(h.stale(), json!([]));
    // The marks stay out of the export.
    assert!(!h.notebook().to_ipynb().to_string().contains("tandem_stale"));
    Ok(())
}

#[tokio::test]
async fn names_from_below_or_from_cells_never_run_get_a_warning() -> Result<()> {
    let h = Harness::start(&[
        ("a", "y = 1"),
        ("b", "%time z = 0\nprint(x + y)"),
        ("c", "x = 2"),
    ])
    .await?;
    // Nothing ran: `y` comes from `a`, which has not been run, `x` from `c` below. The
    // cell still runs (and fails as Python would).
    h.run(&["b"]).await?;
    let b = text(&h.cell("b"));
    assert!(
        b.contains(
            "`x` is defined in cell 3 below (id c), which runs after this one and has not been run"
        ),
        "{b}"
    );
    assert!(
        b.contains("`y` is defined in cell 1 (id a), which has not been run"),
        "{b}"
    );
    assert!(b.contains("NameError"), "{b}");

    // Once both ran, only the name from below still warns, and the cell works.
    h.run(&["a"]).await?;
    h.run(&["c"]).await?;
    h.run(&["b"]).await?;
    let b = text(&h.cell("b"));
    assert!(
        b.contains("`x` is defined in cell 3 below (id c), which runs after this one\n"),
        "{b}"
    );
    assert!(!b.contains("`y`"), "{b}");
    assert!(b.ends_with("3\n"), "{b}");
    Ok(())
}
