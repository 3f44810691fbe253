//! Black-box tests of the collab service: a real server on a loopback port with a SQLite
//! store in a temporary directory, driven by `tandem-client` connections (tokio-tungstenite)
//! and, for hostile input, raw WebSocket frames.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod api;
mod authz;
mod comments;
mod drive;
mod execution;
mod git;
mod git_ssrf;
mod git_support;
mod integrity;
mod local_sign_in;
mod oauth;
mod outputs;
mod persistence;
mod presence;
mod quotas;
mod robustness;
mod scale_out;
mod secrets;
mod sessions;
mod sync;
mod versions;
