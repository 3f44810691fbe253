//! `tests/infra/validate.py` (in the interop venv): the manifests validate against
//! Kubernetes' schemas (1.30 and 1.37, strict) and the compose spec's, the validator fails on
//! broken copies of them (so a manifest error cannot pass as a success), and the build
//! context leaves out build outputs, venvs and local data.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tandem_tests::{python, workspace_root};

use super::text;

/// Runs `tests/infra/validate.py ARGS` with the interop venv's Python; its output, whatever
/// its exit status.
async fn validate(args: &[&Path]) -> Output {
    let mut command = tokio::process::Command::new(python().unwrap());
    command
        .arg(workspace_root().join("tests/infra/validate.py"))
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("validate.py took over two minutes")
        .unwrap()
}

#[tokio::test]
async fn manifests_validate_against_the_kubernetes_and_compose_schemas() {
    let infra = workspace_root().join("infra");
    let output = validate(&[Path::new("manifests"), &infra]).await;
    assert!(
        output.status.success(),
        "validate.py manifests infra/ failed:\n{}",
        text(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let objects: Vec<String> = summary["kubernetes"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    // What kustomization.yaml renders (the ConfigMap from its generator included) and the
    // example Secrets it leaves out: all of them were validated.
    for expected in [
        "ConfigMap/tandem",
        "ConfigMap/tandem-redis-conf",
        "StatefulSet/tandem-redis",
        "NetworkPolicy/tandem-redis-deny-all",
        "NetworkPolicy/tandem-redis-clients",
        "Deployment/tandem-collab",
        "Deployment/tandem-runtime",
        "HorizontalPodAutoscaler/tandem-collab",
        "Ingress/tandem",
        "Secret/tandem",
        "Secret/tandem-redis",
    ] {
        assert!(
            objects.iter().any(|o| o == expected),
            "{expected} not validated: {objects:?}"
        );
    }
    assert_eq!(
        summary["kubernetes"]["versions"],
        serde_json::json!(["1.30", "1.37"])
    );
    // Compose refuses to start without either secret: no default makes it work insecurely.
    let required = &summary["compose"]["required"];
    for variable in ["REDIS_PASSWORD", "TANDEM_SERVICE_TOKEN"] {
        assert!(
            required.as_array().unwrap().iter().any(|v| v == variable),
            "compose does not require {variable}: {required}"
        );
    }
}

/// Copies the files under `from` into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Replaces the first `old` in `file` by `new`; fails when `old` is not there (a manifest
/// changed under this test), so a case can never pass by breaking nothing.
fn break_file(file: &Path, old: &str, new: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(old), "{} has no {old:?}", file.display());
    std::fs::write(file, text.replacen(old, new, 1)).unwrap();
}

#[tokio::test]
async fn the_validator_rejects_broken_manifests() {
    type Breakage = fn(&Path);
    let cases: [(&str, Breakage, &str); 7] = [
        (
            "a misspelt field",
            |infra| {
                break_file(
                    &infra.join("k8s/collab.yaml"),
                    "readOnlyRootFilesystem: true",
                    "readOnlyRootFileSystem: true",
                )
            },
            "'readOnlyRootFileSystem' was unexpected",
        ),
        (
            "a wrong type",
            |infra| {
                break_file(
                    &infra.join("k8s/redis.yaml"),
                    "replicas: 1",
                    "replicas: one",
                )
            },
            "'one' is not of type",
        ),
        (
            "a kind without a schema",
            |infra| {
                std::fs::write(
                    infra.join("k8s/widget.yaml"),
                    "apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n",
                )
                .unwrap();
                break_file(
                    &infra.join("kustomization.yaml"),
                    "resources:\n",
                    "resources:\n  - k8s/widget.yaml\n",
                );
            },
            "Couldn't find schema for kind Widget",
        ),
        (
            "a missing resource",
            |infra| {
                break_file(
                    &infra.join("kustomization.yaml"),
                    "resources:\n",
                    "resources:\n  - k8s/missing.yaml\n",
                )
            },
            "resource k8s/missing.yaml is missing",
        ),
        (
            "a kustomization field the validator does not render",
            |infra| {
                break_file(
                    &infra.join("kustomization.yaml"),
                    "resources:\n",
                    "patches: []\nresources:\n",
                )
            },
            "field `patches` is not rendered",
        ),
        (
            "an unknown compose key",
            |infra| {
                break_file(
                    &infra.join("compose/compose.yaml"),
                    "    user: \"10001:10001\"",
                    "    usr: \"10001:10001\"",
                )
            },
            "'usr' does not match any of the regexes",
        ),
        (
            "a compose variable that would silently be empty",
            |infra| {
                break_file(
                    &infra.join("compose/compose.yaml"),
                    "${REDIS_PASSWORD:?set REDIS_PASSWORD (see env.example)}@",
                    "${REDIS_PASSWORD}@",
                )
            },
            "${REDIS_PASSWORD} has neither a default nor `?`",
        ),
    ];
    // The untouched copy passes, so each failure below is its breakage's.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&workspace_root().join("infra"), copy.path());
    let output = validate(&[Path::new("manifests"), copy.path()]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));

    for (what, breakage, expected) in cases {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&workspace_root().join("infra"), copy.path());
        breakage(copy.path());
        let output = validate(&[Path::new("manifests"), copy.path()]).await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{what} passed validation");
        assert!(
            stderr.contains(expected),
            "{what}: expected {expected:?} in:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn the_build_context_leaves_out_builds_venvs_and_local_data() {
    let dockerignore = workspace_root().join(".dockerignore");
    let output = validate(&[Path::new("dockerignore"), &dockerignore]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));

    // And the check bites: without the venv rule, venvs would ship.
    let copy = tempfile::tempdir().unwrap();
    let broken = copy.path().join(".dockerignore");
    let original = std::fs::read_to_string(&dockerignore).unwrap();
    std::fs::write(&broken, original.replace(".venv*\n", "")).unwrap();
    let output = validate(&[Path::new("dockerignore"), &broken]).await;
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(".venv-kernel/bin/python would be sent"),
        "{}",
        text(&output.stderr)
    );
}
