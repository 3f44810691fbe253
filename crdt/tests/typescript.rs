//! The web client's TypeScript types of `state.kernel` are generated from the Rust types
//! (`tandem_crdt::kernel`), so the two cannot drift: this test fails when the committed file
//! differs from what the types say. `TANDEM_WRITE_TS=1 cargo test -p tandem-crdt --test
//! typescript` writes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tandem_crdt::kernel::{
    InputPrompt, KernelRuntime, KernelState, KernelStatus, Person, Resources, Variable,
};
use ts_rs::TS;

/// Where the client keeps the generated types.
const GENERATED: &str = "../client/web/src/generated/kernel.ts";

fn generated() -> String {
    let declarations = [
        KernelStatus::decl(),
        KernelRuntime::decl(),
        Person::decl(),
        InputPrompt::decl(),
        Resources::decl(),
        Variable::decl(),
        KernelState::decl(),
    ];
    let mut out = String::from(
        "// Generated from crdt/src/kernel.rs (`state.kernel`) by\n\
         // `TANDEM_WRITE_TS=1 cargo test -p tandem-crdt --test typescript`; do not edit.\n",
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
fn the_clients_kernel_state_types_are_generated_from_the_rust_ones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GENERATED);
    let expected = generated();
    if std::env::var_os("TANDEM_WRITE_TS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is out of date with crdt/src/kernel.rs; run \
         `TANDEM_WRITE_TS=1 cargo test -p tandem-crdt --test typescript`\n--- expected ---\n{expected}",
        path.display()
    );
}
