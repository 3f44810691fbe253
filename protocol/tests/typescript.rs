//! The web client's TypeScript types of the HTTP API's bodies (the answers, and the requests
//! whose every field is required or optional in TypeScript too) are generated from the Rust
//! types, so the two cannot drift: this test fails when the committed file differs from
//! what the types say. `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript`
//! writes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tandem_protocol::comments::{Comment, CommentAuthor, Thread};
use tandem_protocol::{
    ClearOutputs, ClearedOutputs, CompleteRequest, Completion, Completions, ErrorBody, ErrorDetail,
    GeneralAccess, Grant, InputAnswer, Inspection, Me, NotebookInfo, Person, Queued, Role,
    RuntimeType, Session, Sharing, TransferOwnership, UpdateNotebook,
};
use ts_rs::TS;

/// Where the client keeps the generated types.
const GENERATED: &str = "../client/web/src/generated/api.ts";

fn generated() -> String {
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
    let mut out = String::from(
        "// Generated from protocol/src (the HTTP API's bodies) by\n\
         // `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript`; do not edit.\n",
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

#[test]
fn the_clients_api_types_are_generated_from_the_rust_ones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GENERATED);
    let expected = generated();
    if std::env::var_os("TANDEM_WRITE_TS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is out of date with protocol/src; run \
         `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript`\n--- expected ---\n{expected}",
        path.display()
    );
}
