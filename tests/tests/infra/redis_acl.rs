//! Redis as `infra/` runs it: `infra/redis/start.sh` with `infra/redis/redis.conf`, on a port
//! of the test's own. A cluster (two collab nodes, one runtime node) logged in as the ACL's
//! `tandem` user does everything a deployment does: tokens, notebooks, edits relayed between
//! nodes, compaction, sharing, comments, versions, secrets, and cells run through the Redis
//! queues, and Redis refuses none of its commands (`ACL LOG` stays empty). Without the
//! password nothing answers, and `tandem` cannot run what would change the server or touch
//! keys outside `tandem:` (not even through a Lua script), and those refusals do reach
//! `ACL LOG`, so its emptiness above means something.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{Client, DocConnection};
use tandem_crdt::Notebook;
use tandem_tests::cluster::Cluster;
use tandem_tests::{require_kernel_venv, workspace_root};
use tempfile::TempDir;

const TANDEM_PASSWORD: &str = "acl-test-tandem-password-0123";
const ADMIN_PASSWORD: &str = "acl-test-admin-password-4567";
/// Base64 of 32 bytes: the collab nodes' key for users' secrets.
const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET_VALUE: &str = "acl-secret-value-5e2a";
/// Kernel start-up and two cells on a loaded two-core machine.
const RUN_WAIT: Duration = Duration::from_secs(120);

/// `redis-server` started by `infra/redis/start.sh`, killed when dropped.
struct AclRedis {
    port: u16,
    child: Child,
    _dir: TempDir,
}

impl AclRedis {
    async fn start() -> Result<AclRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = tempfile::Builder::new()
            .prefix("tandem-acl-redis-")
            .tempdir()?;
        let child = Command::new("sh")
            .arg(workspace_root().join("infra/redis/start.sh"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .env("REDIS_PASSWORD", TANDEM_PASSWORD)
            .env("REDIS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("REDIS_ACL_FILE", dir.path().join("users.acl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning infra/redis/start.sh (is redis-server installed?)")?;
        let mut redis = AclRedis {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while redis.admin().is_err() {
            if let Some(status) = redis.child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = redis.child.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr)?;
                }
                bail!("start.sh exited ({status}): {stderr}");
            }
            if Instant::now() > deadline {
                bail!("Redis from start.sh never let `admin` in");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(redis)
    }

    fn url(&self, credentials: &str) -> String {
        format!("redis://{credentials}127.0.0.1:{}/0", self.port)
    }

    fn connect(&self, credentials: &str) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url(credentials))?.get_connection()
    }

    /// PING as `credentials` (`user:password@`, or empty): the answer, or why not.
    fn ping(&self, credentials: &str) -> redis::RedisResult<String> {
        redis::cmd("PING").query(&mut self.connect(credentials)?)
    }

    fn admin(&self) -> redis::RedisResult<redis::Connection> {
        self.connect(&format!("admin:{ADMIN_PASSWORD}@"))
    }

    /// `ACL LOG` as "user: reason object (context)" lines, oldest last.
    fn acl_log(&self) -> Vec<String> {
        let entries: Vec<HashMap<String, redis::Value>> = redis::cmd("ACL")
            .arg("LOG")
            .query(&mut self.admin().unwrap())
            .unwrap();
        let field = |entry: &HashMap<String, redis::Value>, name: &str| {
            entry
                .get(name)
                .cloned()
                .and_then(|v| redis::from_redis_value::<String>(v).ok())
                .unwrap_or_default()
        };
        entries
            .iter()
            .map(|e| {
                format!(
                    "{}: {} {} ({})",
                    field(e, "username"),
                    field(e, "reason"),
                    field(e, "object"),
                    field(e, "context")
                )
            })
            .collect()
    }
}

impl Drop for AclRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `client`'s JSON request; panics on an error answer.
async fn send(client: &Client, method: Method, path: String, body: Option<Value>) -> Value {
    client
        .send_json(method, &path, body)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The server's error for a command, or a panic if it succeeded.
fn refused<T: redis::FromRedisValue + std::fmt::Debug>(
    result: redis::RedisResult<T>,
    what: &str,
) -> String {
    match result {
        Ok(value) => panic!("{what} succeeded: {value:?}"),
        Err(err) => err.to_string(),
    }
}

fn code_cell(id: &str, source: &str) -> Value {
    json!({"id": id, "cell_type": "code", "source": source, "metadata": {}, "outputs": [],
           "execution_count": null})
}

/// The text of a cell's stream outputs.
fn stream_text(doc: &yrs::Doc, cell_id: &str) -> String {
    let nb = Notebook::from_doc(doc.clone()).to_ipynb();
    nb["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["id"] == cell_id)
        .flat_map(|c| c["outputs"].as_array().cloned().unwrap_or_default())
        .filter_map(|o| o["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_works_as_the_acl_user_and_nobody_gets_in_without_the_password() {
    require_kernel_venv().unwrap();
    let redis = AclRedis::start().await.unwrap();

    // A process that merely reaches the port (a kernel, say) can do nothing: not even PING,
    // let alone write a token record.
    let err = refused(redis.ping(""), "PING without a password");
    assert!(err.contains("NOAUTH"), "{err}");
    let mut anonymous = redis::Client::open(redis.url(""))
        .unwrap()
        .get_connection()
        .unwrap();
    let err = refused(
        redis::cmd("HSET")
            .arg("tandem:token:forged")
            .arg("user_id")
            .arg("someone")
            .query::<i64>(&mut anonymous),
        "HSET without a password",
    );
    assert!(err.contains("NOAUTH"), "{err}");
    for credentials in [
        "default:@".to_owned(),
        "tandem:wrong-password-0123456789@".to_owned(),
        format!(":{TANDEM_PASSWORD}@"),
    ] {
        refused(redis.ping(&credentials), &credentials);
    }
    assert_eq!(
        redis.ping(&format!("tandem:{TANDEM_PASSWORD}@")).unwrap(),
        "PONG"
    );
    // The failed logins are in ACL LOG; start it afresh for the cluster.
    let log = redis.acl_log();
    assert!(
        log.iter().any(|l| l.starts_with("tandem: auth")),
        "{log:#?}"
    );
    redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query::<()>(&mut redis.admin().unwrap())
        .unwrap();

    // The cluster, as `tandem`, under the default prefix the ACL allows.
    let url = redis.url(&format!("tandem:{TANDEM_PASSWORD}@"));
    let mut cluster = Cluster::on_redis(&url).unwrap().with_prefix("tandem");
    let collab_args = ["--compact-after", "4", "--secrets-key", SECRETS_KEY];
    cluster.start_collab(&collab_args).await.unwrap();
    cluster.start_collab(&collab_args).await.unwrap();
    cluster.start_runtime(0, &[]).await.unwrap();
    let ada_token = cluster.token_for("ada@example.com").await.unwrap();
    let bob_token = cluster.token_for("bob@example.com").await.unwrap();
    let ada = Client::new(&cluster.collabs[0].http_url(), &ada_token).unwrap();
    let bob = Client::new(&cluster.collabs[1].http_url(), &bob_token).unwrap();
    let notebook = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        code_cell("answer", "print(6 * 7)"),
        code_cell("secret", "import tandem\nprint(tandem.secrets.get('API_KEY')[::-1])"),
    ]});
    let id = ada.create_notebook("acl", Some(notebook)).await.unwrap().id;
    send(
        &ada,
        Method::PUT,
        "api/secrets/API_KEY".into(),
        Some(json!({"value": SECRET_VALUE})),
    )
    .await;
    send(
        &ada,
        Method::PUT,
        format!("api/secrets/API_KEY/notebooks/{id}"),
        None,
    )
    .await;
    send(
        &ada,
        Method::PUT,
        format!("api/notebooks/{id}/sharing"),
        Some(
            json!({"general_access": "restricted", "link_role": "viewer",
                    "grants": [{"email": "bob@example.com", "role": "editor"}]}),
        ),
    )
    .await;
    ada.rename_notebook(&id, "acl, renamed").await.unwrap();
    send(
        &ada,
        Method::POST,
        format!("api/notebooks/{id}/comments"),
        Some(json!({"cell_id": "answer", "text": "why 42?", "from": 0, "to": 5})),
    )
    .await;
    send(
        &ada,
        Method::POST,
        format!("api/notebooks/{id}/versions"),
        Some(json!({"name": "before running"})),
    )
    .await;

    // Bob, on the other node, sees the shared notebook and watches it; Ada runs it on hers:
    // the run goes through Redis's queues, the outputs through the document stream.
    assert!(
        bob.list_notebooks()
            .await
            .unwrap()
            .iter()
            .any(|n| n.id == id)
    );
    let watcher = DocConnection::connect(&bob.ws_base().unwrap(), &id, Some(&bob_token))
        .await
        .unwrap();
    watcher.synced().await.unwrap();
    send(
        &ada,
        Method::POST,
        format!("api/notebooks/{id}/execute"),
        Some(json!({"all": true})),
    )
    .await;
    let reversed: String = SECRET_VALUE.chars().rev().collect();
    let ran = watcher
        .wait_until(
            |doc| {
                stream_text(doc, "answer").contains("42")
                    && stream_text(doc, "secret").contains(&reversed)
            },
            RUN_WAIT,
        )
        .await;
    assert!(
        ran.is_ok(),
        "the cells never ran: answer {:?}, secret {:?}",
        stream_text(watcher.doc(), "answer"),
        stream_text(watcher.doc(), "secret")
    );
    let versions = send(
        &bob,
        Method::GET,
        format!("api/notebooks/{id}/versions"),
        None,
    )
    .await;
    assert!(
        versions.to_string().contains("before running"),
        "{versions}"
    );

    // Redis refused none of it.
    let log = redis.acl_log();
    assert!(
        log.is_empty(),
        "Redis refused Tandem's commands:\n{}",
        log.join("\n")
    );

    // `tandem` cannot change the server, reach other keys, or escape through Lua.
    let mut tandem = redis
        .connect(&format!("tandem:{TANDEM_PASSWORD}@"))
        .unwrap();
    let denied: [(&str, redis::Cmd); 9] = [
        (
            "CONFIG SET",
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("dir")
                .arg("/tmp")
                .clone(),
        ),
        ("FLUSHALL", redis::cmd("FLUSHALL")),
        ("KEYS", redis::cmd("KEYS").arg("*").clone()),
        (
            "ACL SETUSER",
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg("default")
                .arg("on")
                .clone(),
        ),
        ("CLIENT LIST", redis::cmd("CLIENT").arg("LIST").clone()),
        ("SCRIPT FLUSH", redis::cmd("SCRIPT").arg("FLUSH").clone()),
        (
            "REPLICAOF",
            redis::cmd("REPLICAOF").arg("127.0.0.1").arg("1").clone(),
        ),
        (
            "SET other:key",
            redis::cmd("SET").arg("other:key").arg("1").clone(),
        ),
        (
            "PUBLISH other",
            redis::cmd("PUBLISH").arg("other").arg("1").clone(),
        ),
    ];
    for (what, command) in denied {
        let err = refused(command.query::<redis::Value>(&mut tandem), what);
        assert!(err.to_lowercase().contains("noperm"), "{what}: {err}");
    }
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return redis.call('FLUSHALL')")
        .query(&mut tandem)
        .unwrap();
    refused(
        redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(0)
            .query::<redis::Value>(&mut tandem),
        "FLUSHALL from Lua",
    );
    let log = redis.acl_log();
    for refusal in [
        "flushall (toplevel)",
        "config|set (toplevel)",
        "flushall (lua)",
    ] {
        assert!(
            log.iter().any(|l| l.ends_with(refusal)),
            "ACL LOG did not record {refusal}: {log:#?}"
        );
    }
    assert!(
        redis::cmd("DBSIZE")
            .query::<i64>(&mut redis.admin().unwrap())
            .unwrap()
            > 0,
        "the data survived"
    );
}
