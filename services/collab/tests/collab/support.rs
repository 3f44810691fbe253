//! The shared harness: start, stop and restart a server; make users, tokens and clients.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_client::{Client, DocConnection};
use tandem_collab::{App, Config, Server};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use yrs::{GetString, Text, Transact};

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running collab service.
pub struct TestServer {
    pub app: App,
    pub addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server with default settings on a fresh data directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server on a fresh data directory with settings adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let mut server = Self::start_in(&data, tweak).await;
        server._dir = Some(dir);
        server
    }

    /// A server over an existing data directory.
    pub async fn start_in(data: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::with_data(data).unwrap();
        tweak(&mut config);
        let server = Server::bind(config).await.unwrap();
        let (app, addr) = (server.app().clone(), server.local_addr());
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone()));
        Self {
            app,
            addr,
            stop,
            task,
            data: data.to_path_buf(),
            _dir: None,
        }
    }

    /// Stops gracefully and starts again on the same data directory.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = self._dir.take();
        let data = self.data.clone();
        self.shutdown().await;
        let mut server = Self::start_in(&data, tweak).await;
        server._dir = dir;
        server
    }

    /// Graceful shutdown; returns once every room flushed.
    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        (&mut self.task).await.unwrap().unwrap();
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The data directory (`--data`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The local sign-in token, as a script reads it: from `local-signin-token` in the data
    /// directory.
    pub fn sign_in_token(&self) -> String {
        let path = self.data.join(tandem_collab::auth::local::TOKEN_FILE);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
            .trim()
            .to_owned()
    }

    /// A personal access token for `email`, creating the user if needed.
    pub async fn token(&self, email: &str) -> String {
        let (_, token) = tandem_collab::auth::create_token(self.app.store.as_ref(), email, "Test")
            .await
            .unwrap();
        token
    }

    /// An API client signed in as `email`.
    pub async fn client(&self, email: &str) -> Client {
        Client::new(&self.http_url(), &self.token(email).await).unwrap()
    }

    /// A synced document connection for `client`.
    pub async fn connect(&self, client: &Client, notebook: &str) -> DocConnection {
        self.connect_with_token(client.token(), notebook).await
    }

    /// A synced document connection with any credential (a user's token or the service's).
    pub async fn connect_with_token(&self, token: &str, notebook: &str) -> DocConnection {
        let conn = DocConnection::connect(&self.ws_url(), notebook, Some(token))
            .await
            .unwrap();
        tokio::time::timeout(WAIT, conn.synced())
            .await
            .unwrap()
            .unwrap();
        conn
    }
}

/// An HTTP client that shows redirects instead of following them and keeps no cookies.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every `Set-Cookie` header of a response.
pub fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Status and error code of an answer.
pub async fn status_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The `Set-Cookie` header for cookie `name`.
pub fn set_cookie<'a>(cookies: &'a [String], name: &str) -> &'a str {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

/// The value and attributes of a `Set-Cookie` header.
pub fn parse_cookie(header: &str) -> (String, Vec<String>) {
    let mut parts = header.split(';').map(str::trim);
    let value = parts.next().unwrap().split_once('=').unwrap().1.to_owned();
    (value, parts.map(str::to_owned).collect())
}

/// The text of the root `Y.Text` called `name`.
pub fn text_of(conn: &DocConnection, name: &str) -> String {
    let text = conn.doc().get_or_insert_text(name);
    text.get_string(&conn.doc().transact())
}

/// Appends `s` to the root `Y.Text` called `name`, one transaction.
pub fn append(conn: &DocConnection, name: &str, s: &str) {
    let text = conn.doc().get_or_insert_text(name);
    let mut txn = conn.doc().transact_mut();
    let len = text.len(&txn);
    text.insert(&mut txn, len, s);
}

/// Waits until the root text `name` of `conn` equals `expected`.
pub async fn wait_for_text(conn: &DocConnection, name: &str, expected: &str) {
    let want = expected.to_owned();
    let root = name.to_owned();
    let result = conn
        .wait_until(
            move |doc| {
                doc.get_or_insert_text(root.as_str())
                    .get_string(&doc.transact())
                    == want
            },
            WAIT,
        )
        .await;
    if let Err(err) = result {
        panic!(
            "text {name:?} never became {expected:?} ({err}); it is {:?}",
            text_of(conn, name)
        );
    }
}

/// A raw WebSocket, for tests that need to see or send exact frames.
pub type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a raw socket received.
#[derive(Debug)]
pub enum Received {
    /// A y-websocket message.
    Message(yrs::sync::Message),
    /// The server's close frame.
    Close(u16, String),
    /// The connection ended without a close frame.
    Ended,
}

/// Opens a raw WebSocket to a notebook with `token`.
pub async fn raw_connect(server: &TestServer, notebook: &str, token: &str) -> RawSocket {
    let url = format!("{}/{notebook}?token={token}", server.ws_url());
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
}

/// The next y-websocket message or close on a raw socket (pings are skipped).
pub async fn receive(socket: &mut RawSocket) -> Received {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message as Ws;
    use yrs::updates::decoder::Decode;
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("no frame in time");
        match frame {
            Some(Ok(Ws::Binary(data))) => {
                return Received::Message(yrs::sync::Message::decode_v1(&data).unwrap());
            }
            Some(Ok(Ws::Close(Some(frame)))) => {
                return Received::Close(frame.code.into(), frame.reason.to_string());
            }
            Some(Err(err)) => {
                eprintln!("socket error: {err}");
                return Received::Ended;
            }
            Some(Ok(Ws::Close(None))) | None => return Received::Ended,
            Some(Ok(_)) => {}
        }
    }
}

/// Sends one y-websocket message on a raw socket.
pub async fn send(socket: &mut RawSocket, message: &yrs::sync::Message) {
    use futures_util::SinkExt;
    use yrs::updates::encoder::Encode;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            message.encode_v1().into(),
        ))
        .await
        .unwrap();
}

/// Reads until the connection closes and returns the close code and reason.
pub async fn expect_close(socket: &mut RawSocket) -> (u16, String) {
    loop {
        match receive(socket).await {
            Received::Close(code, reason) => return (code, reason),
            Received::Ended => panic!("connection ended without a close frame"),
            Received::Message(_) => {}
        }
    }
}

/// The `node_modules` named by `TANDEM_NODE_MODULES` (scripts/test runs `npm ci` in
/// tests/interop/node and sets it), checked to hold `packages`. Panics with the fix when it
/// does not: a test that needs Node fails, it never skips.
pub fn node_modules(packages: &[&str]) -> PathBuf {
    let Some(path) = std::env::var_os("TANDEM_NODE_MODULES").filter(|p| !p.is_empty()) else {
        panic!(
            "TANDEM_NODE_MODULES is not set: run scripts/test, which runs npm ci in \
             tests/interop/node and sets it (or set it to that folder's node_modules)"
        );
    };
    let path = PathBuf::from(path);
    for package in packages {
        assert!(
            path.join(package).join("package.json").is_file(),
            "{package} is missing from TANDEM_NODE_MODULES={}: run scripts/test (npm ci in \
             tests/interop/node)",
            path.display()
        );
    }
    path
}

/// `node tests/interop/node/<script>`, with `packages` checked for. Node resolves ES module
/// imports next to the script, not through `NODE_PATH`, so the script is copied into a
/// temporary folder beside a link to the `node_modules`; keep the folder while it runs.
pub fn node_script(
    script: &str,
    packages: &[&str],
) -> (tokio::process::Command, tempfile::TempDir) {
    let modules = node_modules(packages);
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/node")
        .join(script);
    let dir = tempfile::Builder::new()
        .prefix("tandem-node-")
        .tempdir()
        .unwrap();
    std::fs::copy(&source, dir.path().join(script))
        .unwrap_or_else(|e| panic!("copying {}: {e}", source.display()));
    std::os::unix::fs::symlink(&modules, dir.path().join("node_modules")).unwrap();
    std::fs::write(dir.path().join("package.json"), r#"{"type":"module"}"#).unwrap();
    let mut command =
        tokio::process::Command::new(std::env::var_os("TANDEM_NODE").unwrap_or("node".into()));
    command.arg(dir.path().join(script));
    (command, dir)
}

/// `POST {path}` with `body` as `token`: the status and the JSON answer (null when none).
pub async fn post(
    server: &TestServer,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.http_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Connects to the control channel as a runtime would.
pub async fn control(
    server: &TestServer,
    token: &str,
) -> Result<RawSocket, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/internal/runtime", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// Asks for a secret up a control channel as a runtime does for a running cell: the value,
/// or the refusal's code.
pub async fn ask_secret(
    runtime: &mut RawSocket,
    notebook: &str,
    user_id: &str,
    name: &str,
) -> Result<String, String> {
    use futures_util::{SinkExt, StreamExt};
    use tandem_protocol::runtime::{AskOutcome, Down};
    use tokio_tungstenite::tungstenite::Message as Ws;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let ask = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let frame = serde_json::json!({"ask": ask, "notebook_id": notebook, "type": "secret",
                                   "user_id": user_id, "name": name});
    runtime
        .send(Ws::Text(frame.to_string().into()))
        .await
        .unwrap();
    loop {
        let frame = tokio::time::timeout(WAIT, runtime.next())
            .await
            .expect("no answer in time")
            .expect("the control channel closed")
            .unwrap();
        let Ws::Text(text) = frame else { continue };
        if let Down::Answer(answer) = serde_json::from_str(&text).unwrap() {
            assert_eq!(answer.ask, ask);
            return match answer.outcome {
                AskOutcome::Secret { value } => Ok(value.0),
                AskOutcome::Refused(failure) => Err(failure.code),
            };
        }
    }
}
