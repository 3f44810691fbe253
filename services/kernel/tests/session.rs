//! Notebook sessions against a real collab service: a [`Session`] runs real kernels and
//! writes into the shared document, and a second, plain document client (the observer)
//! checks what every collaborator would see.
//!
//! Needs the kernel venv (`scripts/setup-python`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::{Cell, ExecutionState, Notebook};
use tandem_runtime::kernel::KernelOptions;
use tandem_runtime::session::{Session, SessionConfig};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use yrs::types::ToJson;
use yrs::{DeepObservable, Map, Out, Transact};

/// The runtime's credential on the test's collab service.
const SERVICE_TOKEN: &str = "session-test-service-token";

/// Generous: a debug-build kernel starts in about a second, but CI machines are slow.
const WAIT: Duration = Duration::from_secs(60);

/// A collab service, a notebook on it, a session running it and an observer watching it.
struct Harness {
    _dir: TempDir,
    stop: CancellationToken,
    ws: String,
    token: String,
    notebook_id: String,
    session: Session,
    observer: DocConnection,
    /// Everything the observer saw change: `kernel:<status>` and `<cell>:<state>`, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn code_cell(id: &str, source: &str) -> Value {
    json!({"cell_type": "code", "id": id, "metadata": {}, "source": source,
           "outputs": [], "execution_count": null})
}

fn kernel_options(workdir: PathBuf) -> KernelOptions {
    KernelOptions {
        program: env!("CARGO_BIN_EXE_tandem-kernel").into(),
        args: Vec::new(),
        venv: concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-kernel").into(),
        workdir,
        memory_limit_bytes: None,
        env: Vec::new(),
        scratch: None,
        isolation: Default::default(),
        gpu: false,
    }
}

impl Harness {
    /// A notebook with these `(id, source)` code cells, and a session with `configure` applied.
    async fn start(
        cells: &[(&str, &str)],
        configure: impl FnOnce(&mut SessionConfig),
    ) -> Result<Self> {
        Self::start_inner(cells, configure, false).await
    }

    /// [`Harness::start`] with a kernel started beforehand and handed to the session.
    async fn start_with_spare(cells: &[(&str, &str)]) -> Result<Self> {
        Self::start_inner(cells, |_| {}, true).await
    }

    async fn start_inner(
        cells: &[(&str, &str)],
        configure: impl FnOnce(&mut SessionConfig),
        spare: bool,
    ) -> Result<Self> {
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
            .map(|(id, source)| code_cell(id, source))
            .collect();
        let ipynb = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells});
        let notebook = client.create_notebook("session test", Some(ipynb)).await?;
        let ws = client.ws_base()?;

        let observer = DocConnection::connect(&ws, &notebook.id, Some(&token)).await?;
        observer.synced().await?;
        let seen = record_changes(&observer);

        let mut config = SessionConfig::new(
            &ws,
            &notebook.id,
            SERVICE_TOKEN,
            kernel_options(dir.path().join("kernel")),
        );
        configure(&mut config);
        let kernel = match spare {
            true => Some(tandem_runtime::kernel::Kernel::start(config.kernel.clone()).await?),
            false => None,
        };
        let session = Session::start_with_kernel(config, kernel).await?;
        Ok(Harness {
            _dir: dir,
            stop,
            ws,
            token,
            notebook_id: notebook.id,
            session,
            observer,
            seen,
        })
    }

    async fn run(&self, ids: &[&str]) -> Result<Vec<String>> {
        let ids = ids.iter().map(|id| id.to_string()).collect();
        Ok(self.session.execute(ids, None).await?)
    }

    /// Waits until the observer's document satisfies `check(cells, state.kernel)`.
    async fn wait(&self, what: &str, mut check: impl FnMut(&[Cell], &Value) -> bool) -> Result<()> {
        let waited = self
            .observer
            .wait_until(|doc| check(&cells_of(doc), &kernel_of(doc)), WAIT)
            .await;
        waited.with_context(|| {
            format!(
                "waiting for {what}; cells: {:#?}; kernel: {}",
                cells_of(self.observer.doc()),
                kernel_of(self.observer.doc())
            )
        })
    }

    /// Waits until cell `id` is idle with an execution count, and returns it.
    async fn finished(&self, id: &str) -> Result<Cell> {
        self.wait(&format!("cell {id} to finish"), |cells, _| {
            cell(cells, id).is_some_and(|c| {
                c.execution_state == Some(ExecutionState::Idle) && c.execution_count.is_some()
            })
        })
        .await?;
        cell(&cells_of(self.observer.doc()), id).context("cell vanished")
    }

    fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

fn cells_of(doc: &yrs::Doc) -> Vec<Cell> {
    Notebook::from_doc(doc.clone()).cells()
}

fn kernel_of(doc: &yrs::Doc) -> Value {
    let notebook = Notebook::from_doc(doc.clone());
    let txn = doc.transact();
    match notebook.state().get(&txn, "kernel") {
        Some(Out::YMap(map)) => serde_json::to_value(map.to_json(&txn)).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn cell(cells: &[Cell], id: &str) -> Option<Cell> {
    cells.iter().find(|c| c.id == id).cloned()
}

fn text(output: &Value) -> String {
    match output
        .get("text")
        .or_else(|| output.pointer("/data/text~1plain"))
    {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Records every change of `state.kernel.status` and of cells' `execution_state` that the
/// observer's document goes through, from inside its transactions, so none is missed.
fn record_changes(observer: &DocConnection) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let notebook = Notebook::from_doc(observer.doc().clone());
    let cells = observer.doc().get_or_insert_array("cells");
    let log = Arc::clone(&seen);
    let last = Arc::new(Mutex::new(
        std::collections::HashMap::<String, String>::new(),
    ));
    let last_cells = Arc::clone(&last);
    cells.clone().observe_deep("test/cells", move |txn, _| {
        let all = serde_json::to_value(cells.to_json(txn)).unwrap_or(Value::Null);
        for c in all.as_array().into_iter().flatten() {
            let (Some(id), Some(state)) = (c["id"].as_str(), c["execution_state"].as_str()) else {
                continue;
            };
            let mut last = last_cells.lock().unwrap_or_else(PoisonError::into_inner);
            if last.get(id).map(String::as_str) != Some(state) {
                last.insert(id.to_owned(), state.to_owned());
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(format!("{id}:{state}"));
            }
        }
    });
    let log = Arc::clone(&seen);
    let state = notebook.state().clone();
    state.clone().observe_deep("test/state", move |txn, _| {
        let kernel = serde_json::to_value(state.to_json(txn)).unwrap_or(Value::Null);
        if let Some(status) = kernel.pointer("/kernel/status").and_then(Value::as_str) {
            let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
            if last.get("kernel").map(String::as_str) != Some(status) {
                last.insert("kernel".into(), status.to_owned());
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(format!("kernel:{status}"));
            }
        }
    });
    seen
}

/// Whether `wanted` occurs in `seen` in this order (not necessarily adjacent).
fn in_order(seen: &[String], wanted: &[&str]) -> bool {
    let mut rest = seen.iter();
    wanted.iter().all(|w| rest.any(|s| s == w))
}

#[tokio::test]
async fn results_streams_errors_displays_and_a_late_joiner() -> Result<()> {
    let h = Harness::start(
        &[
            ("a", "1+1"),
            ("b", "import sys, time\nprint('early', flush=True)\nprint('oops', file=sys.stderr)\ntime.sleep(1.0)\nprint('late')"),
            ("c", "2+2"),
            ("d", "1/0"),
            ("u", "from IPython.display import display\nh = display('v1', display_id=True)\nh.update('v2')"),
        ],
        |_| {},
    )
    .await?;
    h.wait("the session's first state", |_, k| {
        k["status"] == "not_started"
    })
    .await?;
    assert_eq!(h.run(&["a"]).await?, ["a"]);
    h.run(&["b"]).await?;
    h.run(&["c"]).await?;

    // Stream output shows while the cell still runs, not only at its end.
    h.wait("early output of b while it runs", |cells, _| {
        cell(cells, "b").is_some_and(|b| {
            b.execution_state == Some(ExecutionState::Running)
                && b.outputs.first().is_some_and(|o| text(o) == "early\n")
        })
    })
    .await?;
    // c waits behind b: queued, and listed in state.kernel.queue.
    let kernel = kernel_of(h.observer.doc());
    assert_eq!(kernel["status"], "busy", "{kernel}");
    assert_eq!(kernel["running"], "b", "{kernel}");
    assert_eq!(kernel["queue"], json!(["c"]), "{kernel}");
    assert_eq!(
        cell(&cells_of(h.observer.doc()), "c")
            .unwrap()
            .execution_state,
        Some(ExecutionState::Queued)
    );

    let a = h.finished("a").await?;
    assert_eq!(a.execution_count, Some(1));
    assert_eq!(a.outputs.len(), 1, "{:?}", a.outputs);
    assert_eq!(a.outputs[0]["output_type"], "execute_result");
    assert_eq!(a.outputs[0]["data"]["text/plain"], "2");
    let b = h.finished("b").await?;
    assert_eq!(b.execution_count, Some(2));
    let streams: Vec<(String, String)> = b
        .outputs
        .iter()
        .map(|o| (o["name"].as_str().unwrap_or("").to_owned(), text(o)))
        .collect();
    assert_eq!(
        streams,
        [
            ("stdout".into(), "early\n".into()),
            ("stderr".into(), "oops\n".into()),
            ("stdout".into(), "late\n".into())
        ]
    );
    let c = h.finished("c").await?;
    assert_eq!(c.execution_count, Some(3));
    assert_eq!(c.outputs[0]["data"]["text/plain"], "4");

    h.run(&["d", "u"]).await?;
    let u = h.finished("u").await?;
    let d = cell(&cells_of(h.observer.doc()), "d").unwrap();
    assert_eq!(d.execution_count, Some(4));
    assert_eq!(d.outputs.len(), 1);
    assert_eq!(d.outputs[0]["output_type"], "error");
    assert_eq!(d.outputs[0]["ename"], "ZeroDivisionError");
    assert!(!d.outputs[0]["traceback"].as_array().unwrap().is_empty());
    // Not a run-all: d's error does not stop u.
    assert_eq!(u.execution_count, Some(5));
    assert_eq!(u.outputs.len(), 1, "{:?}", u.outputs);
    assert_eq!(u.outputs[0]["data"]["text/plain"], "'v2'");

    let kernel = kernel_of(h.observer.doc());
    assert_eq!(kernel["status"], "idle", "{kernel}");
    assert_eq!(kernel["execution_count"], 5, "{kernel}");
    assert_eq!(kernel["runtime"], "cpu");
    assert_eq!(kernel["queue"], json!([]));
    assert_eq!(kernel["running"], Value::Null);
    // Only states that last a while are checked: the collab service may relay several
    // updates as one, so an observer can miss a state that lasted a few milliseconds.
    let seen = h.seen();
    for wanted in [
        &[
            "kernel:not_started",
            "kernel:starting",
            "kernel:busy",
            "kernel:idle",
        ][..],
        &["a:queued", "b:running", "b:idle"],
        &["c:queued", "c:idle"],
    ] {
        assert!(in_order(&seen, wanted), "{wanted:?} not in {seen:?}");
    }

    // A late joiner sees the same outputs and counts.
    let late = DocConnection::connect(&h.ws, &h.notebook_id, Some(&h.token)).await?;
    late.synced().await?;
    assert_eq!(cells_of(late.doc()), cells_of(h.observer.doc()));
    h.session.shutdown().await;
    h.wait("not_started after shutdown", |_, k| {
        k["status"] == "not_started"
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn run_all_stops_at_its_first_error_but_not_other_peoples_cells() -> Result<()> {
    let h = Harness::start(
        &[
            ("slow", "import time; time.sleep(0.5)"),
            ("g1", "x = 1\nx"),
            ("g2", "raise ValueError('stop here')"),
            ("g3", "'never'"),
            ("other", "'mine'"),
        ],
        |config| config.eager_start = true,
    )
    .await?;
    h.wait("the eager kernel", |_, k| k["status"] == "idle")
        .await?;
    h.run(&["slow"]).await?;
    let group = ["g1", "g2", "g3"].map(String::from).to_vec();
    assert_eq!(h.session.execute(group, Some(7)).await?, ["g1", "g2", "g3"]);
    h.run(&["other"]).await?;
    let other = h.finished("other").await?;
    assert_eq!(other.outputs[0]["data"]["text/plain"], "'mine'");
    let cells = cells_of(h.observer.doc());
    let g1 = cell(&cells, "g1").unwrap();
    let g2 = cell(&cells, "g2").unwrap();
    let g3 = cell(&cells, "g3").unwrap();
    assert_eq!(g1.execution_count, Some(2));
    assert_eq!(g2.outputs[0]["ename"], "ValueError");
    assert_eq!(g3.execution_state, Some(ExecutionState::Idle));
    assert_eq!(g3.execution_count, None);
    assert!(g3.outputs.is_empty());
    assert_eq!(other.execution_count, Some(4));
    assert!(
        in_order(&h.seen(), &["g3:queued", "other:queued", "g3:idle"]),
        "{:?}",
        h.seen()
    );

    // Unknown ids and non-code cells queue nothing.
    let unknown = h
        .session
        .execute(vec!["g1".into(), "nope".into()], None)
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
    assert_eq!(kernel_of(h.observer.doc())["queue"], json!([]));
    Ok(())
}

#[tokio::test]
async fn interrupt_stops_an_endless_loop_and_clears_the_queue() -> Result<()> {
    let endless = "print('looping', flush=True)\nwhile True: pass";
    let h = Harness::start(&[("loop", endless), ("next", "1+1")], |_| {}).await?;
    h.run(&["loop", "next"]).await?;
    // Interrupt once the loop is surely in user code (the print came out).
    h.wait("the loop to run", |cells, _| {
        cell(cells, "loop").is_some_and(|c| {
            c.execution_state == Some(ExecutionState::Running) && !c.outputs.is_empty()
        })
    })
    .await?;
    h.session.interrupt().await?;
    let stopped = h.finished("loop").await?;
    assert_eq!(stopped.execution_count, Some(1));
    let stopped = Cell {
        outputs: stopped.outputs[1..].to_vec(),
        ..stopped
    };
    assert_eq!(
        stopped.outputs[0]["ename"], "KeyboardInterrupt",
        "{:?}",
        stopped.outputs
    );
    let cells = cells_of(h.observer.doc());
    let next = cell(&cells, "next").unwrap();
    assert_eq!(next.execution_state, Some(ExecutionState::Idle));
    assert_eq!(next.execution_count, None);
    let kernel = kernel_of(h.observer.doc());
    assert_eq!(kernel["status"], "idle", "{kernel}");
    assert_eq!(kernel["queue"], json!([]));
    // The kernel lives on: the counter goes on.
    h.run(&["next"]).await?;
    assert_eq!(h.finished("next").await?.execution_count, Some(2));
    Ok(())
}

#[tokio::test]
async fn an_interrupt_that_does_not_stop_the_cell_kills_the_kernel() -> Result<()> {
    let stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n\
                    print('ignoring interrupts', flush=True)\ntime.sleep(60)";
    let h = Harness::start(&[("stubborn", stubborn), ("after", "1+1")], |config| {
        config.interrupt_grace = Duration::from_millis(500);
    })
    .await?;
    h.run(&["stubborn"]).await?;
    h.wait("the cell to ignore interrupts", |cells, _| {
        cell(cells, "stubborn").is_some_and(|c| !c.outputs.is_empty())
    })
    .await?;
    h.session.interrupt().await?;
    h.wait("a dead kernel", |_, k| k["status"] == "dead")
        .await?;
    let kernel = kernel_of(h.observer.doc());
    assert!(
        kernel["reason"].as_str().unwrap().contains("interrupt"),
        "{kernel}"
    );
    let cells = cells_of(h.observer.doc());
    let stubborn = cell(&cells, "stubborn").unwrap();
    assert_eq!(stubborn.execution_state, Some(ExecutionState::Idle));
    assert_eq!(
        stubborn.outputs[1]["ename"], "DeadKernelError",
        "{:?}",
        stubborn.outputs
    );
    h.run(&["after"]).await?;
    assert_eq!(h.finished("after").await?.execution_count, Some(1));
    Ok(())
}

#[tokio::test]
async fn a_dying_kernel_is_reported_and_replaced_and_restart_resets_the_counter() -> Result<()> {
    let h = Harness::start(
        &[
            ("set", "x = 41"),
            ("die", "import os; os._exit(1)"),
            ("get", "1+1"),
            ("queued", "'q'"),
        ],
        |_| {},
    )
    .await?;
    h.run(&["set"]).await?;
    assert_eq!(h.finished("set").await?.execution_count, Some(1));
    h.run(&["die", "queued"]).await?;
    h.wait("a dead kernel", |_, k| k["status"] == "dead")
        .await?;
    let kernel = kernel_of(h.observer.doc());
    assert!(
        kernel["reason"]
            .as_str()
            .unwrap()
            .contains("exited with code 1"),
        "{kernel}"
    );
    assert_eq!(kernel["queue"], json!([]));
    let cells = cells_of(h.observer.doc());
    let die = cell(&cells, "die").unwrap();
    assert_eq!(die.execution_state, Some(ExecutionState::Idle));
    assert_eq!(die.outputs[0]["output_type"], "error");
    assert!(text(&json!({"text": die.outputs[0]["evalue"]})).contains("exited with code 1"));
    let queued = cell(&cells, "queued").unwrap();
    assert_eq!(
        (queued.execution_state, queued.execution_count),
        (Some(ExecutionState::Idle), None)
    );

    // The next execute starts a fresh kernel: the counter starts again.
    h.run(&["get"]).await?;
    let get = h.finished("get").await?;
    assert_eq!(get.execution_count, Some(1));
    assert_eq!(get.outputs[0]["data"]["text/plain"], "2");
    let kernel = kernel_of(h.observer.doc());
    assert_eq!(kernel["status"], "idle", "{kernel}");
    assert!(kernel.get("reason").is_none(), "{kernel}");

    h.run(&["queued"]).await?;
    assert_eq!(h.finished("queued").await?.execution_count, Some(2));
    h.session.restart().await?;
    h.wait("the restarted kernel", |_, k| {
        k["status"] == "idle" && k["execution_count"].is_null()
    })
    .await?;
    h.run(&["get"]).await?;
    h.wait("get to run again", |cells, _| {
        cell(cells, "get").is_some_and(|c| c.execution_count == Some(1))
    })
    .await?;
    assert!(in_order(
        &h.seen(),
        &[
            "kernel:dead",
            "kernel:starting",
            "kernel:idle",
            "kernel:starting",
            "kernel:idle"
        ]
    ));
    Ok(())
}

#[tokio::test]
async fn code_is_read_when_the_cell_starts() -> Result<()> {
    let h = Harness::start(
        &[
            ("slow", "import time; time.sleep(1)"),
            ("later", "'before'"),
        ],
        |_| {},
    )
    .await?;
    h.run(&["slow", "later"]).await?;
    h.wait("slow to run", |cells, _| {
        cell(cells, "slow").is_some_and(|c| c.execution_state == Some(ExecutionState::Running))
    })
    .await?;
    // A collaborator edits the queued cell before it runs.
    let editor = Notebook::from_doc(h.observer.doc().clone());
    editor.edit_source("later", 1, 6, "after")?;
    let later = h.finished("later").await?;
    assert_eq!(later.outputs[0]["data"]["text/plain"], "'after'");
    Ok(())
}

#[tokio::test]
async fn an_execute_waits_for_the_requesters_edits_and_records_who_ran() -> Result<()> {
    use tandem_runtime::session::{CATCH_UP, Requester};
    use yrs::ReadTxn;
    let h = Harness::start(&[("first", "1")], |_| {}).await?;
    // A collaborator adds a cell and runs it at once: the session may not have the cell yet,
    // but the requester's state vector makes it wait for it rather than refuse it.
    let editor = Notebook::from_doc(h.observer.doc().clone());
    editor.insert_cell(1, tandem_crdt::NewCell::code("'fresh'").with_id("fresh"))?;
    let requester = Requester {
        user: Some(("u1".into(), "Ada".into())),
        state_vector: Some(h.observer.doc().transact().state_vector()),
    };
    let queued = h
        .session
        .execute_for(vec!["fresh".into()], None, requester)
        .await?;
    assert_eq!(queued, ["fresh"]);
    let fresh = h.finished("fresh").await?;
    assert_eq!(fresh.outputs[0]["data"]["text/plain"], "'fresh'");
    assert_eq!(
        editor.execution_by("fresh"),
        Some(json!({"id": "u1", "name": "Ada"}))
    );
    // A state vector that never arrives holds the execute for a bounded time only.
    let mut unseen = yrs::StateVector::default();
    unseen.set_max(yrs::ClientID::new(424_242), 3);
    let started = std::time::Instant::now();
    let requester = Requester {
        user: None,
        state_vector: Some(unseen),
    };
    h.session
        .execute_for(vec!["first".into()], None, requester)
        .await?;
    let waited = started.elapsed();
    assert!(
        waited >= CATCH_UP - Duration::from_millis(100) && waited < CATCH_UP * 3,
        "{waited:?}"
    );
    h.finished("first").await?;
    Ok(())
}

#[tokio::test]
async fn output_beyond_the_cap_is_cut_with_a_notice_and_kept_in_a_file() -> Result<()> {
    let h = Harness::start(
        &[
            ("flood", "for i in range(5000): print(i)"),
            ("after", "'ok'"),
        ],
        |config| {
            config.output_cap_bytes = 10_000;
        },
    )
    .await?;
    h.run(&["flood", "after"]).await?;
    let flood = h.finished("flood").await?;
    assert_eq!(flood.outputs.len(), 2, "{:?}", flood.outputs);
    let shown = text(&flood.outputs[0]);
    assert!(
        shown.len() <= 10_000 && shown.starts_with("0\n1\n"),
        "{} bytes",
        shown.len()
    );
    let notice = &flood.outputs[1];
    assert_eq!(notice["output_type"], "display_data");
    assert!(text(notice).contains("Output truncated"), "{notice}");
    let truncated = &notice["metadata"]["tandem"]["truncated"];
    let full: String = (0..5000).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        truncated["cut_bytes"].as_u64(),
        Some((full.len() - shown.len()) as u64),
        "{notice}"
    );
    let name = truncated["full_output"]
        .as_str()
        .context("no full output file")?;
    assert!(
        !name.contains('/'),
        "only a file name goes into the document: {name}"
    );
    let path = h
        ._dir
        .path()
        .join("kernel")
        .join(".tandem-outputs")
        .join(name);
    assert_eq!(std::fs::read_to_string(path)?, full);
    // The next cell starts from a clean slate.
    assert_eq!(h.finished("after").await?.outputs.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_flood_of_prints_is_coalesced_and_clear_output_waits() -> Result<()> {
    let progress = "from IPython.display import clear_output\nfor i in range(200):\n    \
                    clear_output(wait=True)\n    print(f'step {i}')";
    let h = Harness::start(
        &[
            ("flood", "for i in range(100000): print(i)"),
            ("bar", progress),
        ],
        |_| {},
    )
    .await?;
    h.run(&["bar"]).await?;
    let bar = h.finished("bar").await?;
    assert_eq!(bar.outputs.len(), 1, "{:?}", bar.outputs);
    assert_eq!(text(&bar.outputs[0]), "step 199\n");

    let before = h.observer.updates_received();
    h.run(&["flood"]).await?;
    let flood = h.finished("flood").await?;
    let full: String = (0..100_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(flood.outputs.len(), 1);
    assert_eq!(text(&flood.outputs[0]), full);
    // One write per ~50 ms, not one per print.
    let updates = h.observer.updates_received() - before;
    assert!(updates < 1_000, "{updates} updates for 100 000 prints");
    Ok(())
}

#[tokio::test]
async fn an_idle_kernel_is_announced_then_shut_down() -> Result<()> {
    let h = Harness::start(&[("a", "x = 1"), ("b", "x")], |config| {
        config.idle_timeout = Duration::from_millis(1500);
    })
    .await?;
    h.run(&["a"]).await?;
    h.finished("a").await?;
    // While idle, everyone can see when the kernel will go.
    h.wait("the idle shutdown to be announced", |_, k| {
        k["status"] == "idle"
            && k["idle_shutdown_at"].is_number()
            && k["lifetime_ends_at"].is_number()
    })
    .await?;
    let announced = kernel_of(h.observer.doc())["idle_shutdown_at"]
        .as_i64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    assert!(
        announced > now && announced <= now + 1600,
        "announced {announced}, now {now}"
    );
    h.wait("the idle shutdown", |_, k| k["status"] == "not_started")
        .await?;
    let kernel = kernel_of(h.observer.doc());
    assert!(
        kernel["reason"]
            .as_str()
            .unwrap()
            .contains("without running a cell"),
        "{kernel}"
    );
    assert!(kernel["idle_shutdown_at"].is_null(), "{kernel}");
    // The next execute starts a fresh kernel: the variable is gone, the counter restarts.
    h.run(&["b"]).await?;
    let b = h.finished("b").await?;
    assert_eq!(b.execution_count, Some(1));
    // (After a warning that `x` comes from a cell not run in this kernel.)
    let error = b.outputs.iter().find(|o| o["output_type"] == "error");
    assert_eq!(error.unwrap()["ename"], "NameError", "{:?}", b.outputs);
    Ok(())
}

#[tokio::test]
async fn a_kernel_is_stopped_at_its_maximum_lifetime_even_when_busy() -> Result<()> {
    let h = Harness::start(
        &[
            (
                "long",
                "import time\nprint('working', flush=True)\ntime.sleep(60)",
            ),
            ("next", "2+2"),
        ],
        |config| {
            config.max_lifetime = Duration::from_millis(1500);
        },
    )
    .await?;
    h.run(&["long"]).await?;
    h.wait("the cell to start", |cells, k| {
        k["lifetime_ends_at"].is_number()
            && cell(cells, "long").is_some_and(|c| !c.outputs.is_empty())
    })
    .await?;
    // Busy: no idle shutdown is announced.
    assert!(kernel_of(h.observer.doc())["idle_shutdown_at"].is_null());
    h.wait("the lifetime to end", |_, k| k["status"] == "dead")
        .await?;
    let kernel = kernel_of(h.observer.doc());
    assert!(
        kernel["reason"]
            .as_str()
            .unwrap()
            .contains("maximum lifetime"),
        "{kernel}"
    );
    let cells = cells_of(h.observer.doc());
    let long = cell(&cells, "long").unwrap();
    assert_eq!(long.execution_state, Some(ExecutionState::Idle));
    assert_eq!(
        long.outputs.last().unwrap()["ename"],
        "KernelLifetimeExceeded",
        "{:?}",
        long.outputs
    );
    h.run(&["next"]).await?;
    assert_eq!(h.finished("next").await?.execution_count, Some(1));
    Ok(())
}

#[tokio::test]
async fn a_spare_kernel_handed_over_runs_the_first_cell() -> Result<()> {
    let h = Harness::start_with_spare(&[("pid", "import os\nos.getpid()")]).await?;
    // Ready before anything was asked of it.
    h.wait("the spare to show as idle", |_, k| {
        k["status"] == "idle" && k["lifetime_ends_at"].is_number()
    })
    .await?;
    h.run(&["pid"]).await?;
    let cell = h.finished("pid").await?;
    assert_eq!(
        cell.execution_count,
        Some(1),
        "the spare's counter starts at 1"
    );
    assert!(
        !h.seen().iter().any(|s| s == "kernel:starting"),
        "no cold start: {:?}",
        h.seen()
    );
    Ok(())
}
