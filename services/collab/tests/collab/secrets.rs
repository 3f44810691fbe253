//! Secrets through the API: names only on the way back, grants per notebook and per user, the
//! runtime's lookup (service credential), and no value in any log line.

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::Client;

use tandem_protocol::redis_link::{self as keys, Queued};
use tandem_protocol::runtime::AskOutcome;

use crate::support::{TestServer, ask_secret, control};

const SERVICE: &str = "service-credential-for-secrets";

async fn server() -> TestServer {
    TestServer::start_with(|config| config.service_token = Some(SERVICE.into())).await
}

/// `(status, code)` of a failed call.
fn failure<T: std::fmt::Debug>(result: Result<T, tandem_client::ApiError>) -> (u16, String) {
    let err = result.expect_err("the call should fail");
    (
        err.status().unwrap_or(0),
        err.code().unwrap_or("").to_owned(),
    )
}

async fn put(client: &Client, name: &str, value: &str) -> Result<Value, tandem_client::ApiError> {
    client
        .send_json(
            Method::PUT,
            &format!("api/secrets/{name}"),
            Some(json!({ "value": value })),
        )
        .await
}

async fn grant(client: &Client, name: &str, nb: &str) -> Result<Value, tandem_client::ApiError> {
    client
        .send_json(
            Method::PUT,
            &format!("api/secrets/{name}/notebooks/{nb}"),
            None,
        )
        .await
}

/// The secret as a runtime reads it for a running cell: an ask up the control channel.
async fn lookup(
    server: &TestServer,
    nb: &str,
    user_id: &str,
    name: &str,
) -> Result<String, String> {
    let mut runtime = control(server, SERVICE).await.unwrap();
    ask_secret(&mut runtime, nb, user_id, name).await
}

#[tokio::test]
async fn owners_set_list_and_delete_names_but_never_read_values_back() {
    let server = server().await;
    let alice = server.client("alice@example.com").await;
    let list = alice
        .send_json(Method::GET, "api/secrets", None)
        .await
        .unwrap();
    assert_eq!(list, json!([]));

    for bad in ["lower", "1ST", "A-B", &"A".repeat(65)] {
        assert_eq!(
            failure(put(&alice, bad, "v").await),
            (400, "invalid_name".into()),
            "{bad}"
        );
    }
    let big = "x".repeat(64 * 1024 + 1);
    assert_eq!(failure(put(&alice, "BIG", &big).await).1, "too_large");
    assert!(put(&alice, "EXACT", &"x".repeat(64 * 1024)).await.is_ok());

    let info = put(&alice, "OPENAI_API_KEY", "sk-alice-1").await.unwrap();
    assert_eq!(info["name"], "OPENAI_API_KEY");
    assert_eq!(info["notebooks"], json!([]));
    put(&alice, "OPENAI_API_KEY", "sk-alice-2").await.unwrap();
    let list = alice
        .send_json(Method::GET, "api/secrets", None)
        .await
        .unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["EXACT", "OPENAI_API_KEY"]);
    assert!(!list.to_string().contains("sk-alice"), "{list}");

    // Another user sees none of them.
    let bob = server.client("bob@example.com").await;
    let theirs = bob
        .send_json(Method::GET, "api/secrets", None)
        .await
        .unwrap();
    assert_eq!(theirs, json!([]));
    assert_eq!(
        failure(
            bob.send_json(Method::DELETE, "api/secrets/OPENAI_API_KEY", None)
                .await
        ),
        (404, "secret_not_found".into())
    );

    alice
        .send_json(Method::DELETE, "api/secrets/OPENAI_API_KEY", None)
        .await
        .unwrap();
    assert_eq!(
        failure(
            alice
                .send_json(Method::DELETE, "api/secrets/OPENAI_API_KEY", None)
                .await
        )
        .1,
        "secret_not_found"
    );

    // Anonymous callers and the service credential are refused.
    let anonymous = reqwest::get(format!("{}/api/secrets", server.http_url()))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let service = Client::new(&server.http_url(), SERVICE).unwrap();
    assert_eq!(
        failure(service.send_json(Method::GET, "api/secrets", None).await).0,
        403
    );
}

#[tokio::test]
async fn a_grant_is_per_notebook_and_per_user_and_lookups_follow_it() {
    let server = server().await;
    let alice = server.client("alice@example.com").await;
    let bob = server.client("bob@example.com").await;
    let alice_id = alice.me().await.unwrap().id;
    let bob_id = bob.me().await.unwrap().id;
    let granted = alice.create_notebook("granted", None).await.unwrap().id;
    let other = alice.create_notebook("other", None).await.unwrap().id;
    put(&alice, "HF_TOKEN", "hf-alice").await.unwrap();

    assert_eq!(
        failure(grant(&alice, "NOPE", &granted).await),
        (404, "secret_not_found".into())
    );
    assert_eq!(failure(grant(&alice, "HF_TOKEN", "missing").await).0, 404);
    grant(&alice, "HF_TOKEN", &granted).await.unwrap();
    let list = alice
        .send_json(Method::GET, "api/secrets", None)
        .await
        .unwrap();
    assert_eq!(list[0]["notebooks"], json!([granted]));

    // The runtime reads it for Alice in the granted notebook only.
    assert_eq!(
        lookup(&server, &granted, &alice_id, "HF_TOKEN")
            .await
            .unwrap(),
        "hf-alice"
    );
    assert_eq!(
        lookup(&server, &other, &alice_id, "HF_TOKEN")
            .await
            .unwrap_err(),
        "notebook_access"
    );
    assert_eq!(
        lookup(&server, &granted, &alice_id, "MISSING")
            .await
            .unwrap_err(),
        "secret_not_found"
    );
    // A user's token cannot open the runtime's link, and the HTTP side channel is gone.
    assert!(control(&server, alice.token()).await.is_err());
    let old_route = Client::new(&server.http_url(), SERVICE)
        .unwrap()
        .send_json(
            Method::POST,
            "internal/secrets/lookup",
            Some(json!({"notebook_id": granted, "user_id": alice_id, "name": "HF_TOKEN"})),
        )
        .await;
    assert_eq!(failure(old_route).0, 404);

    // Bob cannot grant his secrets to a notebook he cannot see, nor to one he only views.
    put(&bob, "HF_TOKEN", "hf-bob").await.unwrap();
    assert_eq!(failure(grant(&bob, "HF_TOKEN", &granted).await).0, 404);
    let share = |role: &str| {
        json!({"general_access": "restricted", "link_role": "viewer",
               "grants": [{"email": "bob@example.com", "role": role}]})
    };
    alice
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{granted}/sharing"),
            Some(share("viewer")),
        )
        .await
        .unwrap();
    assert_eq!(failure(grant(&bob, "HF_TOKEN", &granted).await).0, 403);

    // Shared as editor: Bob running Alice's notebook gets his own secrets and grants, never
    // Alice's.
    alice
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{granted}/sharing"),
            Some(share("editor")),
        )
        .await
        .unwrap();
    assert_eq!(
        lookup(&server, &granted, &bob_id, "HF_TOKEN")
            .await
            .unwrap_err(),
        "notebook_access"
    );
    grant(&bob, "HF_TOKEN", &granted).await.unwrap();
    assert_eq!(
        lookup(&server, &granted, &bob_id, "HF_TOKEN")
            .await
            .unwrap(),
        "hf-bob"
    );
    assert_eq!(
        lookup(&server, &granted, &alice_id, "HF_TOKEN")
            .await
            .unwrap(),
        "hf-alice"
    );

    // Bob's grant stops working when he can no longer edit the notebook.
    alice
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{granted}/sharing"),
            Some(share("viewer")),
        )
        .await
        .unwrap();
    assert_eq!(
        lookup(&server, &granted, &bob_id, "HF_TOKEN")
            .await
            .unwrap_err(),
        "notebook_access"
    );

    // Revoking (idempotent) ends Alice's access too.
    for _ in 0..2 {
        alice
            .send_json(
                Method::DELETE,
                &format!("api/secrets/HF_TOKEN/notebooks/{granted}"),
                None,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        lookup(&server, &granted, &alice_id, "HF_TOKEN")
            .await
            .unwrap_err(),
        "notebook_access"
    );
}

#[tokio::test]
async fn the_key_is_kept_in_the_data_dir_and_values_survive_a_restart() {
    let server = server().await;
    let alice = server.client("alice@example.com").await;
    let alice_id = alice.me().await.unwrap().id;
    let nb = alice.create_notebook("nb", None).await.unwrap().id;
    put(&alice, "KEEP", "kept-value").await.unwrap();
    grant(&alice, "KEEP", &nb).await.unwrap();
    let key_file = server.app.config.store.data.join("secrets.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let server = server
        .restart(|config| config.service_token = Some(SERVICE.into()))
        .await;
    assert_eq!(
        lookup(&server, &nb, &alice_id, "KEEP").await.unwrap(),
        "kept-value"
    );
}

#[tokio::test]
async fn redis_nodes_without_a_key_refuse_secrets() {
    let url =
        std::env::var("TANDEM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("tandem-test-{}", tandem_collab::ids::random_id());
    let server = TestServer::start_with(|config| {
        config.store.redis_url = Some(url.clone());
        config.store.redis_prefix = prefix.clone();
    })
    .await;
    let alice = server.client("alice@example.com").await;
    assert_eq!(
        failure(put(&alice, "K", "v").await),
        (503, "secrets_unconfigured".into())
    );
    assert_eq!(
        failure(alice.send_json(Method::GET, "api/secrets", None).await).0,
        503
    );
    // Stopped, so it does not answer the asks below for the node that has the key.
    let mut server = server;
    server.shutdown().await;

    // With the flag, the same deployment works.
    let (_, key) = tandem_collab::secrets::SecretsKey::generate();
    let server = TestServer::start_with(|config| {
        config.store.redis_url = Some(url.clone());
        config.store.redis_prefix = prefix.clone();
        config.secrets_key = Some(key.clone());
    })
    .await;
    let alice = server.client("alice@example.com").await;
    put(&alice, "K", "v").await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();

    // A runtime node's ask through Redis: onto the shared asks list, answered to its queue.
    let alice_id = alice.me().await.unwrap().id;
    let nb = alice.create_notebook("nb", None).await.unwrap().id;
    grant(&alice, "K", &nb).await.unwrap();
    let ask = |ask: u64, name: &str| {
        json!({"reply_to": "rt-test", "deadline_ms": keys::now_ms() + 10_000,
               "ask": {"ask": ask, "notebook_id": nb, "type": "secret",
                       "user_id": alice_id, "name": name}})
        .to_string()
    };
    let asks = keys::asks_key(&prefix);
    let queue = keys::queue_key(&prefix, "rt-test");
    let mut answers = Vec::new();
    for (n, name) in [(1, "K"), (2, "NOT_THERE")] {
        // Async: the server's tasks run on this test's thread.
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("RPUSH")
            .arg(&asks)
            .arg(ask(n, name))
            .query_async(&mut conn)
            .await
            .unwrap();
        let (_, json): (String, String) = redis::cmd("BLPOP")
            .arg(&queue)
            .arg(10)
            .query_async(&mut conn)
            .await
            .unwrap();
        let Queued::Answer(answer) = serde_json::from_str(&json).unwrap() else {
            panic!("a command on the runtime's queue: {json}");
        };
        assert_eq!(answer.ask, n);
        answers.push(answer.outcome);
    }
    assert!(
        matches!(&answers[0], AskOutcome::Secret { value } if value.0 == "v"),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[1], AskOutcome::Refused(f) if f.code == "secret_not_found"),
        "{answers:?}"
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query(&mut conn).unwrap();
    }
}
