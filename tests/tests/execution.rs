//! Execution end to end through `tandem serve`: cells run on the server's runtime, and two
//! connected document clients see the same outputs, counters and states.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::notebook::code_notebook;
use tandem_tests::{TestServer, require_kernel_venv};

/// Generous: the first cell also starts a kernel, and CI machines are small.
const RUN_WAIT: Duration = Duration::from_secs(60);

struct Setup {
    server: TestServer,
    owner: Client,
    id: String,
    alice: DocConnection,
    bob: DocConnection,
}

async fn setup(cells: &[(&str, &str)]) -> Setup {
    setup_with(cells, &[]).await
}

async fn setup_with(cells: &[(&str, &str)], flags: &[&str]) -> Setup {
    require_kernel_venv().unwrap();
    let server = TestServer::start_with(flags).await.unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let id = owner
        .create_notebook("run", Some(code_notebook(cells)))
        .await
        .unwrap()
        .id;
    let alice = connect(&server, &owner, &id).await;
    let bob = connect(&server, &owner, &id).await;
    Setup {
        server,
        owner,
        id,
        alice,
        bob,
    }
}

async fn connect(server: &TestServer, client: &Client, id: &str) -> DocConnection {
    let conn = DocConnection::connect(&server.ws_url(), id, Some(client.token()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.synced())
        .await
        .unwrap()
        .unwrap();
    conn
}

/// The notebook as `conn` sees it, exported.
fn view(conn: &DocConnection) -> Value {
    Notebook::from_doc(conn.doc().clone()).to_ipynb()
}

fn cell<'a>(nb: &'a Value, id: &str) -> &'a Value {
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

/// `state.kernel` as `conn` sees it.
fn kernel(conn: &DocConnection) -> Value {
    Notebook::from_doc(conn.doc().clone())
        .state_value("kernel")
        .unwrap_or(Value::Null)
}

async fn wait_for(conn: &DocConnection, what: &str, mut done: impl FnMut(&DocConnection) -> bool) {
    let deadline = tokio::time::Instant::now() + RUN_WAIT;
    while !done(conn) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened; notebook: {:#}\nkernel: {}",
            view(conn),
            kernel(conn)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs `body` to `path` on the server, as `token` (anonymously without one).
async fn post(
    server: &TestServer,
    token: Option<&str>,
    path: &str,
    body: Value,
) -> reqwest::Response {
    let request = reqwest::Client::new()
        .post(format!("{}{path}", server.http_url()))
        .json(&body);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// GETs `path` on the server as `token`.
async fn get(server: &TestServer, token: &str, path: &str) -> reqwest::Response {
    let url = format!("{}{path}", server.http_url());
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn execute(setup: &Setup, body: Value) -> (u16, Value) {
    let path = format!("/api/notebooks/{}/execute", setup.id);
    let response = post(&setup.server, Some(setup.owner.token()), &path, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn control(setup: &Setup, action: &str) -> u16 {
    let path = format!("/api/notebooks/{}/{action}", setup.id);
    let response = post(&setup.server, Some(setup.owner.token()), &path, Value::Null).await;
    response.status().as_u16()
}

fn finished(conn: &DocConnection, id: &str) -> bool {
    let nb = view(conn);
    let cell = cell(&nb, id);
    cell["execution_count"].is_number() && kernel(conn)["running"].is_null()
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
async fn everyone_sees_the_same_outputs_and_counters() {
    let cells = [
        ("sum", "1+1"),
        ("print", "print('hello from the kernel')"),
        ("version", "import sys\nsys.version"),
        ("time", "%time x = sum(range(1000))"),
        ("shell", "!echo shell-says-hi"),
        (
            "plot",
            "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
        ),
        ("boom", "1/0"),
    ];
    let setup = setup(&cells).await;
    let ids: Vec<&str> = cells.iter().map(|(id, _)| *id).collect();
    let (status, body) = execute(&setup, json!({"cell_ids": ids})).await;
    assert_eq!((status, &body), (202, &json!({"queued": ids})));

    for conn in [&setup.alice, &setup.bob] {
        wait_for(conn, "the last cell to finish", |c| finished(c, "boom")).await;
    }
    let (a, b) = (view(&setup.alice), view(&setup.bob));
    assert_eq!(a, b, "both clients see the same notebook");
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            cell(&a, id)["execution_count"],
            json!(n + 1),
            "counter of {id}"
        );
    }
    assert_eq!(text_of(cell(&a, "sum")), "2");
    assert_eq!(text_of(cell(&a, "print")), "hello from the kernel\n");
    assert!(
        text_of(cell(&a, "version")).starts_with("'3.11.2"),
        "{}",
        text_of(cell(&a, "version"))
    );
    assert!(
        text_of(cell(&a, "time")).contains("Wall time"),
        "{}",
        text_of(cell(&a, "time"))
    );
    assert_eq!(text_of(cell(&a, "shell")).trim(), "shell-says-hi");
    let plot = cell(&a, "plot")["outputs"].as_array().unwrap();
    assert!(
        plot.iter().any(|o| o["data"]["image/png"].is_string()),
        "no inline PNG: {plot:?}"
    );
    let boom = &cell(&a, "boom")["outputs"][0];
    assert_eq!(
        (boom["output_type"].as_str(), boom["ename"].as_str()),
        (Some("error"), Some("ZeroDivisionError"))
    );
    assert!(
        boom["traceback"].to_string().contains("\\u001b["),
        "colored traceback: {boom}"
    );

    // A late joiner sees everything, and the server's export agrees.
    let carol = connect(&setup.server, &setup.owner, &setup.id).await;
    assert_eq!(view(&carol), a);
    let export = setup.owner.export_ipynb(&setup.id).await.unwrap();
    assert_eq!(export["cells"], a["cells"]);
    assert_eq!(kernel(&carol)["status"], "idle");
}

/// Base64 of the v1 state vector of `conn`'s document, as the web client sends it.
fn state_vector_of(conn: &DocConnection) -> String {
    use base64::Engine;
    use yrs::updates::encoder::Encode;
    use yrs::{ReadTxn, Transact};
    let sv = conn.doc().transact().state_vector().encode_v1();
    base64::engine::general_purpose::STANDARD.encode(sv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_sees_the_edit_typed_just_before_it_and_records_who_ran_it() {
    let setup = setup(&[("c", "print('never run')")]).await;
    let nb = Notebook::from_doc(setup.alice.doc().clone());
    for round in 1..=20 {
        // Edit and run at once: the edit goes over the WebSocket, the run over HTTP, and the
        // state vector makes the server (and the runtime) wait for the edit.
        let len = nb.cells()[0].source.chars().count() as u32;
        nb.edit_source("c", 0, len, &format!("print({round} * 1000)"))
            .unwrap();
        let body = json!({"cell_ids": ["c"], "state_vector": state_vector_of(&setup.alice)});
        let (status, body) = execute(&setup, body).await;
        assert_eq!((status, &body), (202, &json!({"queued": ["c"]})));
        wait_for(&setup.alice, "the run to finish", |conn| {
            let view = view(conn);
            cell(&view, "c")["execution_count"] == json!(round) && kernel(conn)["running"].is_null()
        })
        .await;
        let output = text_of(cell(&view(&setup.alice), "c"));
        assert_eq!(output, format!("{}\n", round * 1000), "round {round}");
    }
    // Who ran it is in the document, for late joiners too; never in the export.
    let me = setup.owner.me().await.unwrap();
    let carol = connect(&setup.server, &setup.owner, &setup.id).await;
    let by = Notebook::from_doc(carol.doc().clone()).execution_by("c");
    assert_eq!(by, Some(json!({"id": me.id, "name": me.name})));
    let export = setup.owner.export_ipynb(&setup.id).await.unwrap();
    assert!(cell(&export, "c").get("execution_by").is_none());

    // A state vector that does not decode is refused; one the server never catches up with
    // delays the run by a bounded wait, then it runs what the server has.
    let (status, body) = execute(&setup, json!({"cell_ids": ["c"], "state_vector": "!!"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_state_vector"))
    );
    let unseen = {
        use base64::Engine;
        use yrs::updates::encoder::Encode;
        let mut sv = yrs::StateVector::default();
        sv.set_max(yrs::ClientID::new(424_242), 7);
        base64::engine::general_purpose::STANDARD.encode(sv.encode_v1())
    };
    let started = std::time::Instant::now();
    let (status, _) = execute(&setup, json!({"cell_ids": ["c"], "state_vector": unseen})).await;
    assert_eq!(status, 202);
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_for(&setup.alice, "the run without catching up", |conn| {
        cell(&view(conn), "c")["execution_count"] == json!(21)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_a_runaway_cell_and_the_kernel_lives_on() {
    let spin = "print('spinning', flush=True)\nwhile True: pass";
    let setup = setup(&[("spin", spin), ("after", "21 * 2")]).await;
    assert_eq!(execute(&setup, json!({"cell_ids": ["spin"]})).await.0, 202);
    // Streamed output shows the loop is running, before the cell ends.
    wait_for(&setup.bob, "the loop to start", |c| {
        text_of(cell(&view(c), "spin")) == "spinning\n"
    })
    .await;
    assert_eq!(control(&setup, "interrupt").await, 202);
    wait_for(&setup.bob, "the interrupt", |c| finished(c, "spin")).await;
    assert!(text_of(cell(&view(&setup.bob), "spin")).contains("KeyboardInterrupt"));

    assert_eq!(execute(&setup, json!({"cell_ids": ["after"]})).await.0, 202);
    wait_for(&setup.alice, "the next cell", |c| finished(c, "after")).await;
    let nb = view(&setup.alice);
    assert_eq!(text_of(cell(&nb, "after")), "42");
    assert_eq!(
        cell(&nb, "after")["execution_count"],
        2,
        "same kernel, counter goes on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_kernel_is_contained_and_replaced() {
    let setup = setup(&[
        ("warm", "1"),
        ("crash", "import os\nos._exit(3)"),
        ("again", "'alive'"),
    ])
    .await;
    assert_eq!(
        execute(&setup, json!({"cell_ids": ["warm", "crash"]}))
            .await
            .0,
        202
    );
    wait_for(&setup.alice, "the kernel to die", |c| {
        kernel(c)["status"] == "dead"
    })
    .await;
    assert!(
        kernel(&setup.alice)["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    // The server is untouched...
    assert_eq!(setup.owner.healthz().await.unwrap()["status"], "ok");
    // ...and the next execute starts a fresh kernel, counting from 1.
    assert_eq!(execute(&setup, json!({"cell_ids": ["again"]})).await.0, 202);
    wait_for(&setup.bob, "the fresh kernel", |c| finished(c, "again")).await;
    let nb = view(&setup.bob);
    assert_eq!(text_of(cell(&nb, "again")), "'alive'");
    assert_eq!(cell(&nb, "again")["execution_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_forgets_state_and_resets_the_counter() {
    let setup = setup(&[("set", "x = 5"), ("get", "x")]).await;
    assert_eq!(execute(&setup, json!({"all": true})).await.0, 202);
    wait_for(&setup.alice, "both cells", |c| finished(c, "get")).await;
    assert_eq!(text_of(cell(&view(&setup.alice), "get")), "5");
    assert_eq!(control(&setup, "restart").await, 202);
    assert_eq!(execute(&setup, json!({"cell_ids": ["get"]})).await.0, 202);
    wait_for(&setup.alice, "the cell after restart", |c| {
        let nb = view(c);
        cell(&nb, "get")["execution_count"] == 1 && finished(c, "get")
    })
    .await;
    assert!(text_of(cell(&view(&setup.alice), "get")).contains("NameError"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_people_with_access_can_run_code() {
    let setup = setup(&[("c", "1")]).await;
    let stranger = setup
        .server
        .client_for("stranger@example.com")
        .await
        .unwrap();
    let path = format!("/api/notebooks/{}/execute", setup.id);
    let response = post(
        &setup.server,
        Some(stranger.token()),
        &path,
        json!({"all": true}),
    )
    .await;
    assert_eq!(response.status(), 404);
    let anonymous = post(&setup.server, None, &path, json!({"all": true})).await;
    assert_eq!(anonymous.status(), 401);
    // Nothing ran.
    assert!(view(&setup.alice)["cells"][0]["execution_count"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernels_see_neither_the_servers_secrets_nor_its_store() {
    let setup = setup(&[]).await;
    let db = setup.server.data_dir().join("tandem.db");
    let cells = [
        ("env", "import os\n# TANDEM_RUNTIME (cpu or gpu) is the one variable the runtime passes on purpose.\nsorted(k for k in os.environ if ('TANDEM' in k or 'TOKEN' in k or 'SECRET' in k) and k != 'TANDEM_RUNTIME')".to_owned()),
        ("store", format!("open({:?}, 'rb').read(16)", db.display().to_string())),
        ("home", "import os\nos.getcwd() == os.environ['HOME']".to_owned()),
    ];
    let nb = code_notebook(
        &cells
            .iter()
            .map(|(id, src)| (*id, src.as_str()))
            .collect::<Vec<_>>(),
    );
    let id = setup
        .owner
        .create_notebook("isolation", Some(nb))
        .await
        .unwrap()
        .id;
    let observer = connect(&setup.server, &setup.owner, &id).await;
    let body = json!({"all": false, "cell_ids": ["env", "store", "home"]});
    let response = post(
        &setup.server,
        Some(setup.owner.token()),
        &format!("/api/notebooks/{id}/execute"),
        body,
    )
    .await;
    assert_eq!(response.status(), 202);
    wait_for(&observer, "the cells", |c| {
        let nb = view(c);
        ["env", "store", "home"]
            .iter()
            .all(|id| !cell(&nb, id)["outputs"].as_array().unwrap().is_empty())
    })
    .await;
    let nb = view(&observer);
    assert_eq!(
        text_of(cell(&nb, "env")),
        "[]",
        "the kernel's environment is clean"
    );
    assert_eq!(
        text_of(cell(&nb, "home")),
        "True",
        "the kernel has its own home"
    );
    let running_as_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if running_as_root {
        // As root, kernels are sandboxed (the default): the store does not exist for them.
        assert!(
            text_of(cell(&nb, "store")).contains("FileNotFoundError"),
            "{}",
            text_of(cell(&nb, "store"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_may_hold_only_so_many_kernels() {
    let setup = setup_with(&[("c", "1")], &["--kernels-per-user", "1"]).await;
    assert_eq!(execute(&setup, json!({"all": true})).await.0, 202);
    wait_for(&setup.alice, "the first kernel", |c| finished(c, "c")).await;

    // A second notebook of the same person would need a second kernel.
    let other = setup
        .owner
        .create_notebook("second", Some(code_notebook(&[("d", "2")])))
        .await
        .unwrap();
    let path = format!("/api/notebooks/{}/execute", other.id);
    let response = post(
        &setup.server,
        Some(setup.owner.token()),
        &path,
        json!({"all": true}),
    )
    .await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "kernel_limit", "{body}");

    // Running again where the kernel already is does not count twice.
    assert_eq!(execute(&setup, json!({"all": true})).await.0, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_beyond_the_cap_is_cut_and_the_full_text_downloadable() {
    let setup = setup_with(
        &[("flood", "for i in range(3000): print(i)")],
        &["--output-cap", "1000"],
    )
    .await;
    assert_eq!(execute(&setup, json!({"all": true})).await.0, 202);
    wait_for(&setup.bob, "the flood", |c| finished(c, "flood")).await;
    let nb = view(&setup.bob);
    let outputs = cell(&nb, "flood")["outputs"].as_array().unwrap().clone();
    let notice = outputs
        .iter()
        .find(|o| o["metadata"]["tandem"]["truncated"].is_object())
        .unwrap();
    assert!(
        text_of(&json!({"outputs": [notice]})).contains("Output truncated"),
        "{notice}"
    );
    let file = notice["metadata"]["tandem"]["truncated"]["full_output"]
        .as_str()
        .unwrap();
    let path = format!("/api/notebooks/{}/outputs/{file}", setup.id);
    let response = get(&setup.server, setup.owner.token(), &path).await;
    assert_eq!(response.status(), 200);
    let full: String = (0..3000).map(|i| format!("{i}\n")).collect();
    assert_eq!(response.text().await.unwrap(), full);
    // Only people who may see the notebook, and only files of its own outputs.
    let stranger = setup
        .server
        .client_for("stranger@example.com")
        .await
        .unwrap();
    let refused = get(&setup.server, stranger.token(), &path).await;
    assert_eq!(refused.status(), 404);
    for bad in ["..%2F..%2Fetc%2Fpasswd", ".hidden", "nope.txt"] {
        let path = format!("/api/notebooks/{}/outputs/{bad}", setup.id);
        let response = get(&setup.server, setup.owner.token(), &path).await;
        assert_eq!(response.status(), 404, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collaborator_sees_the_variable_inspector() {
    let code = "import numpy as np\nimport tandem\nt = tandem.ones(2, 3)\na = np.zeros(4)\nx = 5";
    let setup = setup(&[("vars", code)]).await;
    assert_eq!(execute(&setup, json!({"all": true})).await.0, 202);
    wait_for(&setup.bob, "the inspector", |c| {
        kernel(c)["variables"]
            .as_array()
            .is_some_and(|v| v.len() == 3)
    })
    .await;
    let variables = kernel(&setup.bob)["variables"].clone();
    let find = |name: &str| {
        variables
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    let t = find("t");
    assert_eq!(
        (
            t["type"].as_str(),
            t["dtype"].as_str(),
            t["device"].as_str()
        ),
        (Some("tandem.Tensor"), Some("float32"), Some("cpu"))
    );
    assert_eq!(
        (t["shape"].clone(), t["bytes"].clone()),
        (json!([2, 3]), json!(24))
    );
    let a = find("a");
    assert_eq!(
        (a["type"].as_str(), a["shape"].clone(), a["bytes"].clone()),
        (Some("numpy.ndarray"), json!([4]), json!(32))
    );
    assert_eq!(find("x")["type"], "int");
    assert_eq!(
        kernel(&setup.alice)["variables"],
        variables,
        "both clients see the same"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gpu_the_runtime_switch_is_refused_and_the_notebook_stays_on_cpu() {
    let setup = setup(&[("dev", "import tandem\ntandem.default_device()")]).await;
    let put = |body: Value| {
        reqwest::Client::new()
            .put(format!(
                "{}/api/notebooks/{}/runtime",
                setup.server.http_url(),
                setup.id
            ))
            .bearer_auth(setup.owner.token())
            .json(&body)
            .send()
    };
    let refused = put(json!({"type": "gpu"})).await.unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "gpu_unavailable", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("CPU"),
        "{body}"
    );
    assert_eq!(put(json!({"type": "tpu"})).await.unwrap().status(), 400);
    let cpu = put(json!({"type": "cpu"})).await.unwrap();
    assert_eq!(cpu.status(), 200);

    assert_eq!(execute(&setup, json!({"all": true})).await.0, 202);
    wait_for(&setup.bob, "the cell", |c| finished(c, "dev")).await;
    assert_eq!(text_of(cell(&view(&setup.bob), "dev")), "'cpu'");
    assert_eq!(kernel(&setup.alice)["runtime"], "cpu");
}
