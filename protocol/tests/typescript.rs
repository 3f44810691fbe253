//! The web client's TypeScript types are generated from the Rust ones, so the two cannot
//! drift: the HTTP API's bodies (the answers, and the requests whose every field is required
//! or optional in TypeScript too) from `tandem-protocol`, and `state.kernel` from
//! `tandem_crdt::kernel`. This test fails when a committed file differs from what the types
//! say; `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript` writes them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tandem_crdt::kernel::{
    InputPrompt, KernelRuntime, KernelState, KernelStatus, Person as KernelPerson, Resources,
    Variable,
};
use tandem_protocol::comments::{Comment, CommentAuthor, Thread};
use tandem_protocol::{
    ClearOutputs, ClearedOutputs, CompleteRequest, Completion, Completions, ErrorBody, ErrorDetail,
    GeneralAccess, Grant, InputAnswer, Inspection, Me, NotebookInfo, Person, Queued, Role,
    RuntimeType, Session, Sharing, TransferOwnership, UpdateNotebook,
};
use ts_rs::TS;

/// One generated module: a header naming where it comes from, then each declaration exported.
fn module(source: &str, declarations: &[String]) -> String {
    let mut out = format!(
        "// Generated from {source} by\n\
         // `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript`; do not edit.\n"
    );
    for declaration in declarations {
        out.push_str("\nexport ");
        out.push_str(declaration.trim());
        if !declaration.trim_end().ends_with(';') {
            out.push(';');
        }
        out.push('\n');
    }
    out
}

/// Compares (or with `TANDEM_WRITE_TS` set, writes) the client's file `name`.
fn check(name: &str, expected: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../client/web/src/generated")
        .join(name);
    if std::env::var_os("TANDEM_WRITE_TS").is_some() {
        std::fs::write(&path, expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is out of date with the Rust types; run \
         `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript`\n--- expected ---\n{expected}",
        path.display()
    );
}

#[test]
fn the_clients_kernel_state_types_are_generated_from_the_rust_ones() {
    let declarations = [
        KernelStatus::decl(),
        KernelRuntime::decl(),
        KernelPerson::decl(),
        InputPrompt::decl(),
        Resources::decl(),
        Variable::decl(),
        KernelState::decl(),
    ];
    check(
        "kernel.ts",
        &module("crdt/src/kernel.rs (`state.kernel`)", &declarations),
    );
}

#[test]
fn the_clients_api_types_are_generated_from_the_rust_ones() {
    let declarations = [
        Role::decl(),
        Me::decl(),
        Session::decl(),
        Person::decl(),
        NotebookInfo::decl(),
        UpdateNotebook::decl(),
        GeneralAccess::decl(),
        Grant::decl(),
        Sharing::decl(),
        TransferOwnership::decl(),
        ErrorDetail::decl(),
        ErrorBody::decl(),
        Queued::decl(),
        CompleteRequest::decl(),
        Completion::decl(),
        Completions::decl(),
        Inspection::decl(),
        InputAnswer::decl(),
        ClearOutputs::decl(),
        ClearedOutputs::decl(),
        RuntimeType::decl(),
        CommentAuthor::decl(),
        Comment::decl(),
        Thread::decl(),
    ];
    check(
        "api.ts",
        &module("protocol/src (the HTTP API's bodies)", &declarations),
    );
}
