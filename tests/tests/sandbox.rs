//! The kernel sandbox, attacked from inside real kernels through `tandem serve`: each test
//! runs cells written as an attacker would write them in one person's notebook and checks
//! that the attack fails and the victim (another person's kernel) is unharmed.
//!
//! The attacker is given every host path it could want (the data dir, the kernel dir, the
//! victim's drive folder, the server's port): the sandbox must hold even when they are known.
//! These tests need what the sandbox needs (root, bubblewrap, slirp4netns, cgroups); where
//! the host lacks it the server says so and the tests fail with its reason.
//!
//! One test checks the sandbox's own processes on the host instead: each kernel's bwrap and
//! slirp4netns end with the kernel, and none outlives a SIGKILLed server (slirp4netns once
//! did: it inherited the write end of its own `--exit-fd` pipe, and of every earlier
//! kernel's, so those pipes never closed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::{NewCell, Notebook};
use tandem_tests::{TestServer, require_kernel_venv};
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Transact};

/// Generous: the first cell also starts a kernel, and CI machines are small.
const RUN_WAIT: Duration = Duration::from_secs(120);

/// One person with one notebook open.
struct Person {
    client: Client,
    id: String,
    user_id: String,
    conn: DocConnection,
}

impl Person {
    async fn new(server: &TestServer, email: &str) -> Person {
        let client = server.client_for(email).await.unwrap();
        let user_id = client.me().await.unwrap().id;
        let nb = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []});
        let id = client.create_notebook(email, Some(nb)).await.unwrap().id;
        let conn = DocConnection::connect(&server.ws_url(), &id, Some(client.token()))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), conn.synced())
            .await
            .unwrap()
            .unwrap();
        Person {
            client,
            id,
            user_id,
            conn,
        }
    }

    fn notebook(&self) -> Notebook {
        Notebook::from_doc(self.conn.doc().clone())
    }

    /// Adds `code` as a new cell, runs it and returns what it printed (stream text, results
    /// and errors as `Name: value`).
    async fn run(&self, code: &str) -> String {
        let nb = self.notebook();
        let cell = nb
            .insert_cell(nb.cell_count(), NewCell::code(code))
            .unwrap();
        let state_vector = {
            let txn = self.conn.doc().transact();
            base64_sv(&txn.state_vector().encode_v1())
        };
        self.client
            .send_json(
                Method::POST,
                &format!("api/notebooks/{}/execute", self.id),
                Some(json!({"cell_ids": [cell], "state_vector": state_vector})),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            let view = self.notebook().to_ipynb();
            let found = view["cells"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == cell)
                .cloned()
                .unwrap();
            let kernel = self.notebook().state_value("kernel").unwrap_or(Value::Null);
            // Finished, or ended with its kernel (the cell then holds the reason).
            let dead = kernel["status"] == "dead" && !text_of(&found).is_empty();
            if (found["execution_count"].is_number() || dead) && kernel["running"].is_null() {
                return text_of(&found);
            }
            assert!(
                Instant::now() < deadline,
                "the cell never finished: {found:#}\nkernel: {kernel}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn restart(&self) {
        self.client
            .send_json(
                Method::POST,
                &format!("api/notebooks/{}/restart", self.id),
                None,
            )
            .await
            .unwrap();
    }
}

fn base64_sv(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn text_of(cell: &Value) -> String {
    cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| match o["output_type"].as_str() {
            Some("stream") => o["text"].as_str().unwrap_or_default().to_owned(),
            Some("execute_result" | "display_data") => {
                format!("{}\n", o["data"]["text/plain"].as_str().unwrap_or_default())
            }
            Some("error") => format!(
                "{}: {}\n",
                o["ename"].as_str().unwrap_or_default(),
                o["evalue"].as_str().unwrap_or_default()
            ),
            _ => String::new(),
        })
        .collect()
}

/// The command line of `pid`, one entry per argument; empty once it is gone.
fn args_of(pid: i32) -> Vec<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(<[u8]>::to_vec)
        .collect()
}

/// What /proc/<pid>/stat says of a process: its state letter, its parent, and its start time
/// (clock ticks after boot, which tells it from a later process given the same pid).
struct Stat {
    state: char,
    parent: i32,
    started: u64,
}

fn stat_of(pid: i32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After `pid (comm) `: state, ppid, ...; the start time is the 22nd field of the line.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

fn parent_of(pid: i32) -> Option<i32> {
    stat_of(pid).map(|stat| stat.parent)
}

/// Every pid in /proc now.
fn host_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// Host uids of `server`'s kernel workers running now, read from the host's /proc: the
/// `tandem kernel` processes that bwrap started (not what they forked) below the server.
fn kernel_uids(server: &TestServer) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let server_pid = server.pid().unwrap() as i32;
    let mut uids = Vec::new();
    for pid in host_pids() {
        let args = args_of(pid);
        let is_kernel = args.len() > 1 && args[0].ends_with(b"tandem") && args[1] == b"kernel";
        let Some(parent) = parent_of(pid) else {
            continue;
        };
        if !is_kernel
            || !args_of(parent)
                .first()
                .is_some_and(|a| a.ends_with(b"bwrap"))
        {
            continue;
        }
        let mut ancestor = Some(parent);
        while let Some(p) = ancestor.filter(|p| *p > 1 && *p != server_pid) {
            ancestor = parent_of(p);
        }
        if ancestor == Some(server_pid)
            && let Ok(meta) = std::fs::metadata(format!("/proc/{pid}"))
        {
            uids.push(meta.uid());
        }
    }
    uids
}

/// A process on the host, remembered well enough to tell later whether that same process
/// still runs, and to name it in a failure.
#[derive(Debug, Clone)]
struct HostProcess {
    pid: i32,
    parent: i32,
    started: u64,
    args: String,
}

impl HostProcess {
    /// Still running: the same pid and start time, and not a zombie (a process whose parent
    /// died is reaped by init, which may be slow to do so).
    fn alive(&self) -> bool {
        stat_of(self.pid)
            .is_some_and(|stat| stat.started == self.started && !matches!(stat.state, 'Z' | 'X'))
    }

    fn program_is(&self, name: &str) -> bool {
        let program = self.args.split(' ').next().unwrap_or_default();
        program.rsplit('/').next() == Some(name)
    }
}

/// Every living process on the host now.
fn host_processes() -> Vec<HostProcess> {
    host_pids()
        .into_iter()
        .filter_map(|pid| {
            let stat = stat_of(pid).filter(|stat| !matches!(stat.state, 'Z' | 'X'))?;
            let args = args_of(pid)
                .iter()
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            Some(HostProcess {
                pid,
                parent: stat.parent,
                started: stat.started,
                args: shortened(args.trim_end()),
            })
        })
        .collect()
}

/// A command line short enough to read in a failure: bwrap's runs to thousands of
/// characters, the program and its last arguments say what it is.
fn shortened(args: &str) -> String {
    let chars: Vec<char> = args.chars().collect();
    if chars.len() <= 240 {
        return args.to_owned();
    }
    let head: String = chars[..40].iter().collect();
    let tail: String = chars[chars.len() - 180..].iter().collect();
    format!("{head} … {tail}")
}

/// The processes of `all` below `root`: its children, theirs, and so on. Read while the
/// server runs: once it is killed its orphans belong to init and no longer show whose they
/// were.
fn below(all: &[HostProcess], root: i32) -> Vec<HostProcess> {
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for process in all.iter().filter(|p| p.parent == parent) {
            parents.push(process.pid);
            found.push(process.clone());
        }
    }
    found
}

/// The processes of each kernel of the server `server_pid`: the bwrap the server started,
/// everything below it (the sandbox's init and the `tandem kernel` worker), and the
/// slirp4netns that gives the sandbox its network, found by the `/proc/<init>/ns/net` path it
/// was given.
fn kernel_processes(server_pid: i32) -> Vec<Vec<HostProcess>> {
    let all = host_processes();
    let server = below(&all, server_pid);
    server
        .iter()
        .filter(|p| p.parent == server_pid && p.program_is("bwrap"))
        .map(|bwrap| {
            let mut kernel = vec![bwrap.clone()];
            kernel.extend(below(&all, bwrap.pid));
            let namespaces: Vec<String> = kernel
                .iter()
                .map(|p| format!("/proc/{}/ns/net", p.pid))
                .collect();
            let slirp = server.iter().filter(|p| {
                p.program_is("slirp4netns")
                    && p.args.split(' ').any(|a| namespaces.iter().any(|n| n == a))
            });
            kernel.extend(slirp.cloned());
            kernel
        })
        .collect()
}

/// What the server's `/readyz` answers.
async fn readyz(server: &TestServer) -> Value {
    reqwest::get(format!("{}/readyz", server.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn sandboxed_server(flags: &[&str]) -> TestServer {
    require_kernel_venv().unwrap();
    let server = TestServer::start_with(flags).await.unwrap();
    let ready = readyz(&server).await;
    assert_eq!(
        ready["kernel_sandbox"]["state"], "on",
        "the kernel sandbox must be on for these tests: {ready}"
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_reaches_no_other_persons_files_processes_or_the_servers() {
    let server = sandboxed_server(&[]).await;
    let bob = Person::new(&server, "bob@example.com").await;
    let mallory = Person::new(&server, "mallory@example.com").await;

    // The victim keeps a file in his drive and a module in his scratch folder.
    let victim = bob
        .run(
            "import os\n\
             open('drive/diary.txt', 'w').write('dear diary')\n\
             open('helper.py', 'w').write('VALUE = 1')\n\
             print(os.getuid(), os.getcwd(), sorted(os.listdir('.')))",
        )
        .await;
    assert_eq!(victim, "1000 /content ['.ipython', 'drive', 'helper.py']\n");

    let drive_dir = server.drive_dir().display().to_string();
    let attack = format!(
        r#"import os, glob, signal
targets = {{
    "bob's drive": {bob_drive:?},
    "every drive": {drive_dir:?},
    "the data dir": {data:?},
    "the kernel dir": {kernels:?},
    "the sign-in token": {token:?},
}}
for name, path in targets.items():
    try:
        print(name, "listed" if os.path.isdir(path) and os.listdir(path) is not None else
              ("read" if open(path).read() is not None else "?"))
    except Exception as e:
        print(name, "refused", type(e).__name__)
# Plant a module wherever another kernel might import from.
for folder in glob.glob("/run/tandem/sandbox/*") + [{kernels:?}, "/content"]:
    try:
        open(os.path.join(folder, "helper.py"), "w").write("VALUE = 666")
        print("planted in", folder)
    except Exception as e:
        print("plant refused", folder, type(e).__name__)
# Signal every process this kernel can name (its own processes and their threads aside).
procs = {{int(p) for p in os.listdir("/proc") if p.isdigit()}}
mine = procs | {{int(t) for p in procs for t in os.listdir(f"/proc/{{p}}/task")}}
hit = []
for pid in range(2, 65536):
    if pid in mine:
        continue
    try:
        os.kill(pid, signal.SIGKILL)
        hit.append(pid)
    except ProcessLookupError:
        pass
    except PermissionError:
        hit.append(-pid)
print("killed others:", hit)
print("processes visible:", len(procs) < 20, sorted(procs)[:3])
print("saved outputs:", [p for p in glob.glob("{kernels}/*") + glob.glob("/content/../*/full-outputs")])
print("server env:", [k for k in os.environ if k.startswith("TANDEM") and k != "TANDEM_RUNTIME"])
"#,
        bob_drive = format!("{drive_dir}/{}", bob.user_id),
        data = server.data_dir().display().to_string(),
        kernels = server.kernel_dir().display().to_string(),
        token = server
            .data_dir()
            .join("local-signin-token")
            .display()
            .to_string(),
    );
    let out = mallory.run(&attack).await;
    for name in [
        "bob's drive",
        "every drive",
        "the data dir",
        "the kernel dir",
        "the sign-in token",
    ] {
        assert!(
            out.contains(&format!("{name} refused FileNotFoundError")),
            "{name} must not exist inside the sandbox:\n{out}"
        );
    }
    assert!(
        out.contains("planted in /content\n"),
        "a kernel writes its own folder:\n{out}"
    );
    assert_eq!(
        out.matches("planted in").count(),
        1,
        "only its own folder:\n{out}"
    );
    assert!(out.contains("killed others: []\n"), "{out}");
    assert!(out.contains("processes visible: True [1, 2"), "{out}");
    assert!(out.contains("saved outputs: []\n"), "{out}");
    assert!(out.contains("server env: []\n"), "{out}");

    // Bob is unharmed: his kernel answers, his module is his own, his drive is intact.
    let after = bob
        .run("import helper\nprint(1 + 1, helper.VALUE, open('drive/diary.txt').read())")
        .await;
    assert_eq!(after, "2 1 dear diary\n");

    // Each kernel runs as a uid of its own, none of them root or the server's.
    let uids = kernel_uids(&server);
    assert!(uids.len() >= 2, "kernels: {uids:?}");
    let mut distinct = uids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), uids.len(), "one uid per kernel: {uids:?}");
    assert!(uids.iter().all(|uid| *uid >= 600000), "{uids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_cannot_reach_the_host_or_private_networks() {
    let server = sandboxed_server(&[]).await;
    let mallory = Person::new(&server, "mallory@example.com").await;
    let port = server.addr().port();
    // The host's own addresses other than loopback (the server may listen on them too).
    let host_ips: Vec<String> = nix::ifaddrs::getifaddrs()
        .unwrap()
        .filter_map(|i| i.address?.as_sockaddr_in().map(|a| a.ip().to_string()))
        .filter(|ip| !ip.starts_with("127."))
        .collect();
    let attack = format!(
        r#"import socket, urllib.request, json
targets = [("127.0.0.1", {port}), ("10.0.2.2", {port}), ("127.0.0.1", 6379),
           ("10.0.2.2", 6379), ("10.255.255.1", 80), ("172.16.0.1", 80),
           ("192.168.1.1", 80), ("169.254.169.254", 80), ("100.100.100.200", 80)]
targets += [(ip, {port}) for ip in {host_ips:?}] + [(ip, 6379) for ip in {host_ips:?}]
for host, port in targets:
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((host, port))
        print("CONNECTED", host, port)
    except OSError as e:
        print("refused", host, port, e.errno)
    finally:
        s.close()
try:
    body = json.dumps({{"name": "Bob", "email": "bob@example.com"}}).encode()
    request = urllib.request.Request("http://127.0.0.1:{port}/auth/local", data=body,
                                     headers={{"content-type": "application/json"}})
    print("sign-in answered", urllib.request.urlopen(request, timeout=5).status)
except Exception as e:
    print("sign-in refused", type(e).__name__)
# Control: the kernel's own loopback works, so the refusals above are the sandbox's.
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
client = socket.create_connection(server.getsockname(), timeout=5)
print("own loopback ok")
"#
    );
    let out = mallory.run(&attack).await;
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(out.contains("sign-in refused URLError"), "{out}");
    assert!(out.contains("own loopback ok"), "{out}");
    // Every refusal is immediate (no route, refused), not a timeout that could mean a slow
    // but open path.
    for line in out.lines().filter(|l| l.starts_with("refused")) {
        let errno: i32 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            [111, 113, 101].contains(&errno),
            "{line}: expected ECONNREFUSED/EHOSTUNREACH/ENETUNREACH\n{out}"
        );
    }

    // Public egress works when the host has it (pip, datasets): checked only when the
    // host itself resolves and reaches PyPI, so a machine without a network still tests
    // the refusals above.
    let host_online = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect("pypi.org:443"),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if host_online {
        let out = mallory
            .run(
                "import socket\n\
                 socket.create_connection(('pypi.org', 443), timeout=10).close()\n\
                 print('public ok')",
            )
            .await;
        assert_eq!(out, "public ok\n");
    } else {
        eprintln!("the host cannot reach pypi.org: public egress not checked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_network_a_kernel_has_only_its_loopback() {
    let server = sandboxed_server(&["--kernel-network", "none"]).await;
    let mallory = Person::new(&server, "mallory@example.com").await;
    let out = mallory
        .run(
            "import socket\n\
             for host in ('pypi.org', '1.1.1.1'):\n\
             \x20   try:\n\
             \x20       socket.create_connection((host, 443), timeout=5)\n\
             \x20       print('CONNECTED', host)\n\
             \x20   except OSError as e:\n\
             \x20       print('refused', host, type(e).__name__)",
        )
        .await;
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(out.contains("refused pypi.org gaierror"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_and_memory_bombs_stay_in_their_kernel() {
    let server = sandboxed_server(&[
        "--kernel-memory-mib",
        "1024",
        "--kernel-max-processes",
        "64",
    ])
    .await;
    let bob = Person::new(&server, "bob@example.com").await;
    let mallory = Person::new(&server, "mallory@example.com").await;
    assert_eq!(bob.run("1 + 1").await, "2\n");

    // A fork bomb: children that never exit, forked until the OS says no.
    let out = mallory
        .run(
            "import os, time\n\
             children = 0\n\
             try:\n\
             \x20   while children < 10000:\n\
             \x20       if os.fork() == 0:\n\
             \x20           time.sleep(3600)\n\
             \x20           os._exit(0)\n\
             \x20       children += 1\n\
             except OSError as e:\n\
             \x20   print('stopped after', children, type(e).__name__)",
        )
        .await;
    assert!(out.contains("stopped after"), "{out}");
    assert!(
        out.contains("reached its limit of 64 processes and threads"),
        "the bomber's notebook says why: {out}"
    );
    assert_eq!(bob.run("1 + 1").await, "2\n", "the victim still answers");

    // A memory bomb that fills the in-memory scratch space past the kernel's memory limit:
    // the OOM killer ends the bomber's kernel, and only it.
    let out = mallory
        .run(
            "chunk = b'x' * (16 << 20)\n\
             with open('/tmp/fill', 'wb') as f:\n\
             \x20   for _ in range(128):\n\
             \x20       f.write(chunk)\n\
             \x20       f.flush()",
        )
        .await;
    assert!(
        out.contains("the kernel ran out of memory (1 GiB limit)"),
        "the bomber's notebook says why: {out}"
    );
    assert_eq!(bob.run("1 + 1").await, "2\n", "the victim still answers");
    // The bomber starts afresh.
    assert_eq!(mallory.run("1 + 1").await, "2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_kernel_does_not_starve_another() {
    let server = sandboxed_server(&[]).await;
    let bob = Person::new(&server, "bob@example.com").await;
    let mallory = Person::new(&server, "mallory@example.com").await;
    assert_eq!(bob.run("1 + 1").await, "2\n");
    assert_eq!(mallory.run("1 + 1").await, "2\n");
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    async fn timed(person: &Person) -> Duration {
        let started = Instant::now();
        assert_eq!(person.run("1 + 1").await, "2\n");
        started.elapsed()
    }
    let mut before = Vec::new();
    for _ in 0..7 {
        before.push(timed(&bob).await);
    }
    // As many spinning processes as the machine has CPUs, and then some.
    let spinners = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let spin = format!(
        "import multiprocessing, time\n\
         def spin():\n\
         \x20   while True: pass\n\
         procs = [multiprocessing.Process(target=spin, daemon=True) for _ in range({spinners})]\n\
         for p in procs: p.start()\n\
         print('spinning', len(procs))"
    );
    assert!(mallory.run(&spin).await.starts_with("spinning"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut during = Vec::new();
    for _ in 0..7 {
        during.push(timed(&bob).await);
    }
    let (before, during) = (median(before), median(during));
    // 2x the quiet median, plus 30 ms for timer and scheduler granularity on a loaded box.
    assert!(
        during <= before * 2 + Duration::from_millis(30),
        "Bob's 1+1 took {during:?} with Mallory's kernel spinning, {before:?} before"
    );
    mallory.restart().await;
}

/// A wheel of the package `name` whose module holds `VALUE = value`, written by the cell
/// itself (no network: pip installs it with `--no-index`).
fn make_wheel(name: &str, value: u32) -> String {
    format!(
        r#"import base64, hashlib, zipfile
def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{{path}},sha256={{digest}},{{len(data)}}"
files = {{
    "{name}/__init__.py": b"VALUE = {value}\n",
    "{name}-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    "{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}}
record = "\n".join(record_line(p, d) for p, d in files.items()) + "\n{name}-1.0.dist-info/RECORD,,\n"
wheel = "/content/{name}-1.0-py3-none-any.whl"
with zipfile.ZipFile(wheel, "w") as z:
    for path, data in files.items():
        z.writestr(path, data)
    z.writestr("{name}-1.0.dist-info/RECORD", record)
print("built", wheel)
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_install_lands_in_that_kernel_only() {
    let server = sandboxed_server(&[]).await;
    let alice = Person::new(&server, "alice@example.com").await;
    let bob = Person::new(&server, "bob@example.com").await;

    assert!(
        alice
            .run(&make_wheel("tandemtoy", 7))
            .await
            .starts_with("built")
    );
    let out = alice
        .run("%pip install --no-index --quiet /content/tandemtoy-1.0-py3-none-any.whl\nimport tandemtoy\nprint('value', tandemtoy.VALUE)")
        .await;
    assert!(
        out.contains("value 7"),
        "%pip install is importable at once: {out}"
    );
    assert!(
        alice
            .run(&make_wheel("tandembang", 9))
            .await
            .starts_with("built")
    );
    let out = alice
        .run("!pip install --no-index --quiet /content/tandembang-1.0-py3-none-any.whl\nimport tandembang\nprint('value', tandembang.VALUE)")
        .await;
    assert!(out.contains("value 9"), "!pip install too: {out}");
    let where_ = alice
        .run("import tandemtoy, numpy\nprint(tandemtoy.__file__)\nprint(numpy.__file__)")
        .await;
    assert!(where_.starts_with("/opt/kernel-venv/"), "{where_}");

    // The shared venv never changed, and other kernels do not see the package.
    let venv = tandem_tests::kernel_venv();
    let shared = std::fs::read_dir(venv.join("lib/python3.11/site-packages"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("tandemtoy"));
    assert!(!shared, "the shared venv must not change");
    let other = bob.run("import tandemtoy").await;
    assert!(other.contains("ModuleNotFoundError"), "{other}");

    // Gone with the kernel.
    alice.restart().await;
    let after = alice.run("import tandemtoy").await;
    assert!(after.contains("ModuleNotFoundError"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_what_kernels_run_in() {
    let on = sandboxed_server(&[]).await;
    let ready = readyz(&on).await;
    assert_eq!(
        ready["kernel_sandbox"]["cgroups"]
            .as_str()
            .map(|v| !v.is_empty()),
        Some(true)
    );

    let off = TestServer::start_with(&["--kernel-sandbox", "off"])
        .await
        .unwrap();
    let ready = readyz(&off).await;
    assert_eq!(ready["kernel_sandbox"]["state"], "off", "{ready}");
    assert!(
        off.logs().contains("notebook code is not sandboxed"),
        "the server warns at start"
    );
}

/// How long a sandbox's processes may take to end once their kernel or server has: a kernel
/// sees its pipes close at once, Python's shutdown takes a moment on a loaded machine.
const ENDED_WITHIN: Duration = Duration::from_secs(30);

/// Waits until none of `processes` runs; otherwise kills what is left (so a failure does not
/// leave them behind on the machine) and fails naming them.
async fn wait_ended(processes: &[HostProcess], what: &str) {
    let deadline = Instant::now() + ENDED_WITHIN;
    loop {
        let left: Vec<&HostProcess> = processes.iter().filter(|p| p.alive()).collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for process in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(process.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            panic!(
                "{} processes still ran {ENDED_WITHIN:?} after {what} (killed now):\n{left:#?}",
                left.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The processes of each kernel of the server `server_pid` once every kernel is fully up (a
/// spare kernel may still be starting): a worker and a slirp4netns beside each bwrap.
async fn settled_kernels(server_pid: i32) -> Vec<Vec<HostProcess>> {
    let deadline = Instant::now() + RUN_WAIT;
    loop {
        let kernels = kernel_processes(server_pid);
        let complete = |kernel: &Vec<HostProcess>| {
            let count = |name| kernel.iter().filter(|p| p.program_is(name)).count();
            (count("slirp4netns"), count("tandem")) == (1, 1)
        };
        if kernels.iter().all(complete) {
            return kernels;
        }
        assert!(
            Instant::now() < deadline,
            "each kernel has one slirp4netns and one worker: {kernels:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sandbox_process_outlives_its_kernel_or_a_killed_server() {
    let mut server = sandboxed_server(&[]).await;
    let server_pid = server.pid().unwrap() as i32;
    let mut people = Vec::new();
    for email in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        let person = Person::new(&server, email).await;
        assert_eq!(person.run("1 + 1").await, "2\n");
        people.push(person);
    }
    let kernels = settled_kernels(server_pid).await;
    assert!(
        kernels.len() >= 3,
        "one per notebook, and a spare: {kernels:#?}"
    );

    // A kernel that ends while the server runs takes its processes along, and only its own.
    people[0].restart().await;
    let deadline = Instant::now() + ENDED_WITHIN;
    let ended = loop {
        let ended: Vec<&Vec<HostProcess>> = kernels
            .iter()
            .filter(|kernel| kernel.iter().all(|p| !p.alive()))
            .collect();
        if let [ended] = ended[..] {
            break ended;
        }
        let running: Vec<Vec<&HostProcess>> = kernels
            .iter()
            .map(|kernel| kernel.iter().filter(|p| p.alive()).collect())
            .collect();
        assert!(
            ended.is_empty() && Instant::now() < deadline,
            "a restart ends exactly one kernel's processes; still running, per kernel: \
             {running:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for kernel in kernels
        .iter()
        .filter(|kernel| !std::ptr::eq(*kernel, ended))
    {
        assert!(kernel.iter().all(HostProcess::alive), "{kernel:#?}");
    }
    assert_eq!(people[0].run("1 + 1").await, "2\n");

    // SIGKILL: no shutdown code runs, and still nothing the server started outlives it.
    assert!(settled_kernels(server_pid).await.len() >= 3);
    let processes = below(&host_processes(), server_pid);
    server.kill_9().unwrap();
    wait_ended(&processes, "the server was killed").await;
}
