//! The deployment files in `infra/`:
//! - parse and say what the scale-out needs: Redis with AOF and no eviction, probes on
//!   `/healthz` and `/readyz`, resource limits, an autoscaler for the collab nodes, replicas
//!   in the compose file;
//! - validate against Kubernetes' schemas (1.30 and 1.37, strict) and the compose spec's, and
//!   the validator fails on broken copies of them, so a manifest error cannot slip through as
//!   a pass ([`schemas`]; the build context's `.dockerignore` too);
//! - lock Redis: a password from a Secret (compose: from the environment, required), a
//!   NetworkPolicy that admits only collab and runtime pods, `infra/redis/start.sh` that
//!   refuses to start without a password, and (in [`redis_acl`]) a real cluster that works
//!   as the ACL's `tandem` user while nobody gets in without the password;
//! - run every pod unprivileged except the runtime, whose kernel sandbox needs privileges.
//!
//! YAML is read by PyYAML in the interop venv.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "infra/redis_acl.rs"]
mod redis_acl;
#[path = "infra/schemas.rs"]
mod schemas;

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

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `name`'s entry in a container's `env`.
fn env_var<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {}", container["name"]))
}

fn containers(workload: &Value) -> &Vec<Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
}

#[tokio::test]
async fn redis_takes_a_password_from_a_secret_and_admits_only_collab_and_runtime() {
    let files = yaml_documents().await;
    // Redis reads its password from the Secret `tandem-redis`.
    let redis = kind(&files, "StatefulSet")[0];
    let container = &containers(redis)[0];
    assert_eq!(
        container["command"],
        serde_json::json!(["sh", "/etc/redis/start.sh"])
    );
    let from = &env_var(container, "REDIS_PASSWORD")["valueFrom"]["secretKeyRef"];
    assert_eq!(from["name"], "tandem-redis");
    assert_eq!(from["key"], "password");

    // Every Tandem node gets the same password and a URL built from it, in that order
    // (Kubernetes expands `$(VAR)` from variables defined before it).
    for deployment in kind(&files, "Deployment") {
        let container = &containers(deployment)[0];
        let env = container["env"].as_array().unwrap();
        let position = |name: &str| env.iter().position(|e| e["name"] == name).unwrap();
        assert!(position("REDIS_PASSWORD") < position("TANDEM_REDIS_URL"));
        assert_eq!(
            env_var(container, "REDIS_PASSWORD")["valueFrom"]["secretKeyRef"],
            *from
        );
        assert_eq!(
            env_var(container, "TANDEM_REDIS_URL")["value"],
            "redis://tandem:$(REDIS_PASSWORD)@tandem-redis:6379/0",
            "{}",
            deployment["metadata"]["name"]
        );
    }
    // No password-less URL left in the shared ConfigMap.
    for config in kind(&files, "ConfigMap") {
        assert!(config["data"]["TANDEM_REDIS_URL"].is_null(), "{config}");
    }

    // The network policies: one shuts Redis off, one opens 6379 to collab and runtime pods.
    let policies = kind(&files, "NetworkPolicy");
    let redis_selector =
        serde_json::json!({"matchLabels": {"app.kubernetes.io/name": "tandem-redis"}});
    let deny = policies
        .iter()
        .find(|p| p["metadata"]["name"] == "tandem-redis-deny-all")
        .unwrap();
    assert_eq!(deny["spec"]["podSelector"], redis_selector);
    assert!(deny["spec"]["ingress"].is_null() && deny["spec"]["egress"].is_null());
    assert_eq!(
        deny["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let allow = policies
        .iter()
        .find(|p| p["metadata"]["name"] == "tandem-redis-clients")
        .unwrap();
    assert_eq!(allow["spec"]["podSelector"], redis_selector);
    let rules = allow["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["ports"],
        serde_json::json!([{"protocol": "TCP", "port": 6379}])
    );
    assert_eq!(
        rules[0]["from"],
        serde_json::json!([{"podSelector": {"matchExpressions": [{
            "key": "app.kubernetes.io/name", "operator": "In",
            "values": ["tandem-collab", "tandem-runtime"]}]}}])
    );

    // Compose: the same user and password, the password required.
    let compose = &files["compose/compose.yaml"][0]["services"];
    for service in ["collab", "runtime"] {
        let url = compose[service]["environment"]["TANDEM_REDIS_URL"]
            .as_str()
            .unwrap();
        assert!(
            url.starts_with("redis://tandem:${REDIS_PASSWORD:?"),
            "{service}: {url}"
        );
    }
    let password = compose["redis"]["environment"]["REDIS_PASSWORD"]
        .as_str()
        .unwrap();
    assert!(password.starts_with("${REDIS_PASSWORD:?"), "{password}");
    // Compose's stand-in for the NetworkPolicy: Redis alone on an internal network that the
    // proxy is not on.
    assert_eq!(compose["redis"]["networks"], serde_json::json!(["redis"]));
    assert!(
        compose["proxy"]["networks"].is_null(),
        "the proxy joins only `default`"
    );
    let networks = &files["compose/compose.yaml"][0]["networks"];
    assert_eq!(networks["redis"]["internal"], true, "{networks}");

    // redis.conf no longer opens Redis up on its own.
    let conf = std::fs::read_to_string(workspace_root().join("infra/redis/redis.conf")).unwrap();
    assert!(conf.lines().any(|l| l.trim() == "protected-mode yes"));
    assert!(!conf.lines().any(|l| l.trim() == "protected-mode no"));
}

#[tokio::test]
async fn pods_run_unprivileged_except_the_runtime_and_its_sandbox_is_documented() {
    let files = yaml_documents().await;
    let mut workloads = kind(&files, "Deployment");
    workloads.extend(kind(&files, "StatefulSet"));
    assert_eq!(workloads.len(), 3);
    for workload in workloads {
        let name = workload["metadata"]["name"].as_str().unwrap();
        let pod = &workload["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        assert_eq!(pod["enableServiceLinks"], false, "{name}");
        let container = &containers(workload)[0];
        let context = &container["securityContext"];
        if name == "tandem-runtime" {
            assert_eq!(context["privileged"], true);
            continue;
        }
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert!(
            pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0,
            "{name}"
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(
            context["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(context["capabilities"]["add"].is_null(), "{name}");
        // What a read-only root still needs to write is a volume.
        for mount in container["volumeMounts"].as_array().unwrap() {
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"]);
            let claimed = workload["spec"]["volumeClaimTemplates"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["metadata"]["name"] == mount["name"]));
            assert!(volume.is_some() || claimed, "{name}: {mount}");
        }
    }

    // The runtime's file says what the sandbox needs and what gVisor changes.
    let runtime = std::fs::read_to_string(workspace_root().join("infra/k8s/runtime.yaml")).unwrap();
    for needle in [
        "bwrap",
        "slirp4netns",
        "idmapped bind mount",
        "cgroup",
        "CAP_SYS_ADMIN",
        "CAP_NET_ADMIN",
        "user namespaces",
        "runtimeClassName: gvisor",
        "--kernel-sandbox off",
    ] {
        assert!(
            runtime.contains(needle),
            "runtime.yaml does not mention {needle}"
        );
    }
    // And the image has the sandbox's tools.
    let dockerfile =
        std::fs::read_to_string(workspace_root().join("infra/docker/Dockerfile")).unwrap();
    for package in ["bubblewrap", "slirp4netns", "iproute2"] {
        assert!(dockerfile.contains(package), "the image lacks {package}");
    }
}

#[test]
fn redis_will_not_start_without_a_usable_password() {
    let script = workspace_root().join("infra/redis/start.sh");
    for (password, complaint) in [
        (None, "REDIS_PASSWORD is not set"),
        (Some(""), "REDIS_PASSWORD is not set"),
        (Some("short"), "shorter than 16 characters"),
        (Some("has spaces and @ signs in it"), "may hold only"),
    ] {
        let mut command = std::process::Command::new("sh");
        command
            .arg(&script)
            .env_remove("REDIS_PASSWORD")
            .env("REDIS_ACL_FILE", "/nonexistent/never-written.acl");
        if let Some(password) = password {
            command.env("REDIS_PASSWORD", password);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{password:?} was accepted");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(complaint), "{password:?}: {stderr}");
    }
}
