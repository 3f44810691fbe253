//! The Drive end to end through `tandem serve` and real kernels: what a cell writes to
//! `drive/` outlives the kernel and shows in the API, the scratch folder beside it does not,
//! checkpoints come back in a later kernel, files uploaded through the API are there for
//! cells to read, and writes past the quota get a warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::notebook::code_notebook;
use tandem_tests::{TestServer, require_kernel_venv};

/// Generous: the first cell also starts a kernel, and CI machines are small.
const RUN_WAIT: Duration = Duration::from_secs(90);

const WRITE: &str = "import os\n\
open('drive/kept.txt', 'w').write('persistent')\n\
open('scratch.txt', 'w').write('temporary')\n\
sorted(n for n in os.listdir('.') if not n.startswith('.'))";

const SAVE: &str = "import numpy as np, tandem\n\
w = tandem.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))\n\
tandem.checkpoint({'step': 7, 'w': w, 'half': w.to(tandem.float16), 'dt': tandem.float16}, 'run1')\n\
tandem.checkpoints()";

const CHECK: &str = "import os, tandem\n\
state = tandem.restore('run1')\n\
print(open('drive/kept.txt').read(), os.path.exists('scratch.txt'), state['step'])\n\
print(type(state['w']).__name__, state['w'].tolist(), state['half'].dtype, state['dt'])\n\
print(open('drive/uploaded.txt').read())";

const MISSING: &str = "import tandem\n\
try:\n    tandem.restore('never-saved')\n\
except KeyError as e:\n    print(type(e).__name__, '|', e)";

struct Setup {
    server: TestServer,
    owner: Client,
    id: String,
    conn: DocConnection,
    http: reqwest::Client,
}

impl Setup {
    async fn new(cells: &[(&str, &str)], flags: &[&str]) -> Setup {
        require_kernel_venv().unwrap();
        let server = TestServer::start_with(flags).await.unwrap();
        let owner = server.client_for("owner@example.com").await.unwrap();
        let id = owner
            .create_notebook("drive", Some(code_notebook(cells)))
            .await
            .unwrap()
            .id;
        let conn = DocConnection::connect(&server.ws_url(), &id, Some(owner.token()))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), conn.synced())
            .await
            .unwrap()
            .unwrap();
        Setup {
            server,
            owner,
            id,
            conn,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.http_url())
    }

    async fn post(&self, path: &str, body: Value) -> u16 {
        self.http
            .post(self.url(path))
            .bearer_auth(self.owner.token())
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn run(&self, cells: &[&str]) {
        let path = format!("/api/notebooks/{}/execute", self.id);
        assert_eq!(self.post(&path, json!({"cell_ids": cells})).await, 202);
    }

    async fn restart(&self) {
        let path = format!("/api/notebooks/{}/restart", self.id);
        assert_eq!(self.post(&path, Value::Null).await, 202);
    }

    async fn drive(&self, method: reqwest::Method, route: &str, path: &str) -> reqwest::Response {
        self.http
            .request(method, self.url(route))
            .query(&[("path", path)])
            .bearer_auth(self.owner.token())
            .send()
            .await
            .unwrap()
    }

    fn view(&self) -> Value {
        Notebook::from_doc(self.conn.doc().clone()).to_ipynb()
    }

    fn cell(&self, id: &str) -> Value {
        self.view()["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    }

    /// Waits until `id` ran with execution count `count` and nothing runs.
    async fn ran(&self, id: &str, count: u64) -> String {
        let deadline = tokio::time::Instant::now() + RUN_WAIT;
        loop {
            let kernel = Notebook::from_doc(self.conn.doc().clone())
                .state_value("kernel")
                .unwrap_or(Value::Null);
            let cell = self.cell(id);
            if cell["execution_count"] == count && kernel["running"].is_null() {
                return text_of(&cell);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cell {id} never ran as [{count}]; cell: {cell:#}\nkernel: {kernel}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Every file below `dir`, following no links.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}

fn text_of(cell: &Value) -> String {
    cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| match o["output_type"].as_str() {
            Some("stream") => o["text"].as_str().unwrap_or_default().to_owned(),
            Some("execute_result" | "display_data") => o["data"]["text/plain"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Some("error") => format!("{}: {}", o["ename"], o["evalue"]),
            _ => String::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drive_outlives_the_kernel_and_the_scratch_folder_does_not() {
    let setup = Setup::new(
        &[
            ("write", WRITE),
            ("save", SAVE),
            ("check", CHECK),
            ("missing", MISSING),
        ],
        &[],
    )
    .await;
    setup.run(&["write", "save"]).await;
    assert_eq!(
        setup.ran("write", 1).await,
        "['drive', 'scratch.txt']",
        "the kernel works beside its drive"
    );
    assert_eq!(setup.ran("save", 2).await, "['run1']");

    // What the kernel wrote to its drive is the owner's, through the API.
    let kept = setup
        .drive(reqwest::Method::GET, "/api/drive/file", "kept.txt")
        .await;
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.text().await.unwrap(), "persistent");
    let listing: Value = setup
        .drive(reqwest::Method::GET, "/api/drive", "")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [".checkpoints", "kept.txt"], "{listing}");

    // A file uploaded through the API is there for the next kernel's cells.
    let uploaded = setup
        .http
        .put(setup.url("/api/drive/file"))
        .query(&[("path", "uploaded.txt")])
        .bearer_auth(setup.owner.token())
        .body("from the API")
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);

    setup.restart().await;
    setup.run(&["check", "missing"]).await;
    let checked = setup.ran("check", 1).await;
    assert_eq!(
        checked,
        "persistent False 7\nTensor [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] float16 float16\nfrom the API\n",
        "the drive and the checkpoint survive a restart; the scratch file does not"
    );
    let leftovers: Vec<_> = walk(setup.server.kernel_dir())
        .into_iter()
        .filter(|path| path.ends_with("scratch.txt"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the old kernel's scratch folder is gone: {leftovers:?}"
    );
    let missing = setup.ran("missing", 2).await;
    assert!(
        missing.starts_with("CheckpointNotFound | no checkpoint 'never-saved'")
            && missing.contains("'run1'"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_past_the_quota_is_flagged_under_the_cell() {
    let big = "open('drive/big.bin', 'wb').write(b'x' * (3 << 20))";
    let setup = Setup::new(
        &[("big", big), ("small", "1 + 1")],
        &["--drive-quota-mib", "2"],
    )
    .await;
    setup.run(&["big"]).await;
    let output = setup.ran("big", 1).await;
    assert!(
        output.contains("more than its quota of 2.0 MiB"),
        "{output}"
    );
    // Uploads are refused while the drive is over its quota.
    let refused = setup
        .http
        .put(setup.url("/api/drive/file"))
        .query(&[("path", "more.txt")])
        .bearer_auth(setup.owner.token())
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
    assert_eq!(
        setup
            .drive(reqwest::Method::DELETE, "/api/drive/file", "big.bin")
            .await
            .status(),
        204
    );
    setup.run(&["small"]).await;
    assert_eq!(
        setup.ran("small", 2).await,
        "2",
        "no warning once under the quota"
    );
}
