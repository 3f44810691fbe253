//! Rust client for Tandem, used by its integration tests, benchmarks and tools.
//!
//! Two halves, one per interface of docs/design.md:
//! - [`Client`]: the JSON HTTP API (`/api/me`, `/api/notebooks`, ...) with a Bearer token;
//!   error answers become [`ApiError::Status`] carrying the status and the error body.
//! - [`DocConnection`]: one y-websocket connection (`GET /ws/{notebook_id}`) on
//!   tokio-tungstenite, keeping a local [`yrs::Doc`] in sync through `yrs::sync`. Local
//!   transactions are sent as updates automatically; the server's close code and reason, and
//!   any permission-denied auth message, are kept for tests to assert on.
//!
//! Both halves speak TLS (`https://`, `wss://`) with rustls, trusting the webpki roots;
//! [`DocConnection::connect_with_tls`] takes other roots.
//!
//! It speaks the stock y-websocket protocol, so it works against any y-websocket server;
//! [`reference::ReferenceServer`] starts the Node reference server for interop tests and
//! benchmarks.
//!
//! # Layout
//! - `api.rs`: [`Client`], [`ApiError`].
//! - `connection.rs`: [`DocConnection`], [`ConnectOptions`], [`UpdateEvent`],
//!   [`ConnectionError`]; `connection/io.rs`: the reader and writer tasks.
//! - `reference.rs`: the `y-websocket@2` reference server as a child process.
//!
//! # Quick start
//! ```no_run
//! use std::time::Duration;
//! use tandem_client::{Client, DocConnection};
//! use yrs::{GetString, Text, Transact};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let client = Client::new("http://127.0.0.1:8080", "my-personal-access-token")?;
//! let notebook = client.create_notebook("Scratch", None).await?;
//!
//! let ws = client.ws_base()?; // ws://127.0.0.1:8080/ws
//! let alice = DocConnection::connect(&ws, &notebook.id, Some(client.token())).await?;
//! let bob = DocConnection::connect(&ws, &notebook.id, Some(client.token())).await?;
//! alice.synced().await?;
//! bob.synced().await?;
//!
//! let text = alice.doc().get_or_insert_text("scratch");
//! text.insert(&mut alice.doc().transact_mut(), 0, "hello");
//!
//! let bobs = bob.doc().get_or_insert_text("scratch");
//! bob.wait_until(|doc| bobs.get_string(&doc.transact()) == "hello", Duration::from_secs(5))
//!     .await?;
//! alice.close().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod connection;
pub mod reference;

pub use api::{ApiError, Client};
pub use connection::{
    ConnectOptions, ConnectionError, DocConnection, REMOTE_ORIGIN, UpdateEvent, UpdateKind,
};
/// Re-exported so callers build TLS settings with the same `rustls` as the client.
pub use rustls;
pub use tandem_protocol::{Me, NotebookInfo, Role, close};
/// Re-exported so callers use the same `yrs` as the client.
pub use yrs;
