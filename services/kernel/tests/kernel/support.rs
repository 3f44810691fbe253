//! Starting test kernels and reading what their cells did.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use tandem_runtime::kernel::{ExecStatus, Kernel, KernelEvent, KernelOptions, Output, StreamName};
use tempfile::TempDir;

/// Longest any test cell may take before the test fails instead of hanging.
const CELL_TIMEOUT: Duration = Duration::from_secs(120);

/// The kernel venv: `TANDEM_VENV`, or `.venv-kernel` at the workspace root. Missing is a
/// failure, not a skip: these tests are the point of the crate.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("TANDEM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-kernel"));
    assert!(
        venv.join("bin/python").exists(),
        "no kernel venv at {}: run scripts/setup-python (or point TANDEM_VENV at one)",
        venv.display()
    );
    venv
}

/// Options for a kernel running this crate's `tandem-kernel` in `workdir`.
pub fn options(workdir: &TempDir) -> KernelOptions {
    KernelOptions {
        program: PathBuf::from(env!("CARGO_BIN_EXE_tandem-kernel")),
        args: Vec::new(),
        venv: venv(),
        workdir: workdir.path().join("work"),
        memory_limit_bytes: None,
        env: Vec::new(),
        scratch: None,
        isolation: Default::default(),
        gpu: false,
    }
}

/// A started kernel and the directory it works in.
pub struct TestKernel {
    pub kernel: Kernel,
    pub dir: TempDir,
}

pub async fn start() -> TestKernel {
    start_with(|_| {}).await
}

pub async fn start_with(configure: impl FnOnce(&mut KernelOptions)) -> TestKernel {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&dir);
    configure(&mut options);
    let kernel = Kernel::start(options).await.unwrap();
    TestKernel { kernel, dir }
}

impl TestKernel {
    /// Runs a cell to its end.
    pub async fn run(&self, code: &str) -> Cell {
        let execution = self.kernel.execute(code).unwrap();
        let events = tokio::time::timeout(CELL_TIMEOUT, execution.collect())
            .await
            .unwrap_or_else(|_| panic!("cell did not finish: {code}"));
        Cell { events }
    }
}

/// Everything one cell produced.
#[derive(Debug)]
pub struct Cell {
    pub events: Vec<KernelEvent>,
}

impl Cell {
    pub fn outputs(&self) -> Vec<&Output> {
        self.events
            .iter()
            .filter_map(|event| match event {
                KernelEvent::Output(output) => Some(output),
                _ => None,
            })
            .collect()
    }

    /// All text of one stream, joined.
    pub fn stream(&self, wanted: StreamName) -> String {
        self.outputs()
            .into_iter()
            .filter_map(|output| match output {
                Output::Stream { name, text } if *name == wanted => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn stdout(&self) -> String {
        self.stream(StreamName::Stdout)
    }

    /// The `Done` that ended the cell (always the last event).
    pub fn done(&self) -> (ExecStatus, Option<u32>) {
        match self.events.last() {
            Some(KernelEvent::Done {
                status,
                execution_count,
            }) => (*status, *execution_count),
            other => panic!("cell did not end with Done: {other:?}"),
        }
    }

    /// Asserts the cell succeeded, showing its outputs if not.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.done().0,
            ExecStatus::Ok,
            "cell failed: {:#?}",
            self.events
        );
        self
    }

    /// The execute_result's mime bundle.
    pub fn result(&self) -> &Map<String, Value> {
        self.outputs()
            .into_iter()
            .find_map(|output| match output {
                Output::ExecuteResult { data, .. } => Some(data),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no execute_result: {:#?}", self.events))
    }

    /// The execute_result's `text/plain`.
    pub fn result_text(&self) -> String {
        self.result()["text/plain"].as_str().unwrap().to_owned()
    }

    /// The error output: (ename, evalue, traceback).
    pub fn error(&self) -> (&str, &str, &[String]) {
        self.outputs()
            .into_iter()
            .find_map(|output| match output {
                Output::Error {
                    ename,
                    evalue,
                    traceback,
                } => Some((ename.as_str(), evalue.as_str(), traceback.as_slice())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no error output: {:#?}", self.events))
    }

    /// Display data bundles, in order.
    pub fn displays(&self) -> Vec<&Map<String, Value>> {
        self.outputs()
            .into_iter()
            .filter_map(|output| match output {
                Output::DisplayData { data, .. } => Some(data),
                _ => None,
            })
            .collect()
    }
}
