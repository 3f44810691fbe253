//! The deployment files in `infra/` parse and say what the scale-out needs: Redis with AOF and
//! no eviction, probes on `/healthz` and `/readyz`, resource limits, an autoscaler for the
//! collab nodes, and replicas in the compose file. YAML is read by PyYAML in the interop venv.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use tandem_tests::{python, run_client, workspace_root};

/// Every document of every YAML file under `infra/`, as JSON: `{path: [doc, …]}`.
async fn yaml_documents() -> serde_json::Map<String, Value> {
    let script = r#"
import json, pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
out = {}
for path in sorted(root.rglob("*.y*ml")):
    out[str(path.relative_to(root))] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
print(json.dumps(out))
"#;
    let mut command = tokio::process::Command::new(python().unwrap());
    command
        .arg("-c")
        .arg(script)
        .arg(workspace_root().join("infra"));
    let output = run_client(command, "PyYAML", Duration::from_secs(60))
        .await
        .unwrap();
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    parsed.as_object().unwrap().clone()
}

fn kind<'a>(files: &'a serde_json::Map<String, Value>, kind: &str) -> Vec<&'a Value> {
    files
        .values()
        .flat_map(|docs| docs.as_array().unwrap())
        .filter(|doc| doc["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn manifests_parse_and_probe_health_and_readiness() {
    let files = yaml_documents().await;
    for expected in [
        "compose/compose.yaml",
        "k8s/collab.yaml",
        "k8s/runtime.yaml",
        "k8s/redis.yaml",
        "k8s/ingress.yaml",
        "kustomization.yaml",
    ] {
        assert!(
            files.contains_key(expected),
            "{expected} missing: {:?}",
            files.keys()
        );
    }

    let deployments = kind(&files, "Deployment");
    assert_eq!(deployments.len(), 2, "collab and runtime");
    for deployment in deployments {
        let name = &deployment["metadata"]["name"];
        for container in deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            assert_eq!(
                container["livenessProbe"]["httpGet"]["path"], "/healthz",
                "{name}"
            );
            assert_eq!(
                container["readinessProbe"]["httpGet"]["path"], "/readyz",
                "{name}"
            );
            assert!(
                container["resources"]["limits"]["memory"].is_string(),
                "{name}"
            );
            assert!(
                container["resources"]["requests"]["cpu"].is_string(),
                "{name}"
            );
        }
    }
    let autoscalers = kind(&files, "HorizontalPodAutoscaler");
    assert_eq!(autoscalers.len(), 1);
    assert_eq!(
        autoscalers[0]["spec"]["scaleTargetRef"]["name"],
        "tandem-collab"
    );
    assert_eq!(
        autoscalers[0]["spec"]["metrics"][0]["resource"]["name"],
        "cpu"
    );
    assert_eq!(kind(&files, "StatefulSet").len(), 1, "redis");
    assert_eq!(kind(&files, "Ingress").len(), 1);

    let compose = &files["compose/compose.yaml"][0]["services"];
    for service in ["redis", "collab", "runtime", "proxy"] {
        assert!(compose[service].is_object(), "compose has no {service}");
    }
    for service in ["collab", "runtime"] {
        assert!(compose[service]["deploy"]["replicas"].as_u64().unwrap() >= 1);
        let test = compose[service]["healthcheck"]["test"].to_string();
        assert!(test.contains("/readyz"), "{service}: {test}");
        assert!(compose[service]["environment"]["TANDEM_REDIS_URL"].is_string());
    }
}

#[test]
fn redis_keeps_every_write_and_never_evicts() {
    let conf = std::fs::read_to_string(workspace_root().join("infra/redis/redis.conf")).unwrap();
    let setting = |name: &str| {
        conf.lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| line.strip_prefix(name).map(str::trim))
            .map(str::to_owned)
    };
    assert_eq!(setting("appendonly ").as_deref(), Some("yes"));
    assert!(matches!(
        setting("appendfsync ").as_deref(),
        Some("always" | "everysec")
    ));
    assert_eq!(setting("maxmemory-policy ").as_deref(), Some("noeviction"));
}
