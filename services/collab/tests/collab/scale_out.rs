//! Several collab nodes on one Redis (`--redis-url`): clients spread over them converge,
//! awareness and access changes cross nodes, late and restarted nodes catch up, and compaction
//! racing live writes loses nothing.
//!
//! Each test keeps its keys under a prefix of its own on the test Redis
//! (`TANDEM_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) and deletes them at the end.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_client::DocConnection;
use tandem_collab::Config;
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact};

use crate::support::{
    TestServer, WAIT, append, expect_close, raw_connect, receive, text_of, wait_for_text,
};

/// A prefix of one test's own on the test Redis; its keys are deleted when dropped.
struct SharedRedis {
    url: String,
    prefix: String,
}

impl SharedRedis {
    fn new() -> Self {
        let url = std::env::var("TANDEM_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("tandem-test-{}", tandem_collab::ids::random_id());
        Self { url, prefix }
    }

    /// A collab node on this Redis with settings adjusted by `tweak`.
    async fn node(&self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_with(|config| {
            config.store.redis_url = Some(self.url.clone());
            config.store.redis_prefix = self.prefix.clone();
            tweak(config);
        })
        .await
    }
}

impl Drop for SharedRedis {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

/// Random edits of one client: inserts of a unique token at a random place, and deletions of
/// a few characters, in separate transactions. Returns the tokens inserted.
fn random_edits(conn: &DocConnection, rng: &mut StdRng, who: usize, round: usize) -> String {
    let text = conn.doc().get_or_insert_text("t");
    let mut txn = conn.doc().transact_mut();
    let len = text.len(&txn);
    if len > 20 && rng.random_bool(0.3) {
        let at = rng.random_range(0..len - 3);
        // Deletions land between tokens' brackets only in tests that check tokens; here the
        // text just has to converge.
        text.remove_range(&mut txn, at, rng.random_range(1..3));
        return String::new();
    }
    let token = format!("<{who}:{round}>");
    let at = rng.random_range(0..=len);
    text.insert(&mut txn, at, &token);
    token
}

/// Waits until every connection holds the same text and returns it.
async fn converged(conns: &[DocConnection]) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let texts: Vec<String> = conns.iter().map(|c| text_of(c, "t")).collect();
        if texts.iter().all(|t| *t == texts[0]) {
            return texts[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clients never converged: {texts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn clients_on_three_nodes_converge_on_seeded_random_edits() {
    let redis = SharedRedis::new();
    let nodes = [
        redis.node(|_| {}).await,
        redis.node(|_| {}).await,
        redis.node(|_| {}).await,
    ];
    let owner = nodes[0].client("owner@example.com").await;
    for seed in [1_u64, 2, 3] {
        let nb = owner.create_notebook("spread", None).await.unwrap();
        let mut conns = Vec::new();
        for i in 0..6 {
            conns.push(nodes[i % 3].connect(&owner, &nb.id).await);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        for round in 0..30 {
            for (who, conn) in conns.iter().enumerate() {
                random_edits(conn, &mut rng, who, round);
            }
            if rng.random_bool(0.5) {
                tokio::task::yield_now().await;
            }
        }
        let text = converged(&conns).await;
        assert!(!text.is_empty(), "seed {seed}: edits went somewhere");
        // What is stored is what everyone sees: a client of any node, connecting afresh.
        let late = nodes[(seed as usize) % 3].connect(&owner, &nb.id).await;
        wait_for_text(&late, "t", &text).await;
    }
}

#[tokio::test]
async fn edits_from_two_nodes_lose_no_keystroke() {
    let redis = SharedRedis::new();
    let (a, b) = (redis.node(|_| {}).await, redis.node(|_| {}).await);
    let owner = a.client("owner@example.com").await;
    let nb = owner.create_notebook("two", None).await.unwrap();
    let conns = [
        a.connect(&owner, &nb.id).await,
        b.connect(&owner, &nb.id).await,
        b.connect(&owner, &nb.id).await,
    ];
    for round in 0..40 {
        for (who, conn) in conns.iter().enumerate() {
            append(conn, "t", &format!("<{who}:{round}>"));
        }
        tokio::task::yield_now().await;
    }
    let text = converged(&conns).await;
    for who in 0..3 {
        for round in 0..40 {
            assert!(
                text.contains(&format!("<{who}:{round}>")),
                "lost <{who}:{round}>"
            );
        }
    }
}

#[tokio::test]
async fn awareness_crosses_nodes_and_departures_follow() {
    let redis = SharedRedis::new();
    let (a, b) = (redis.node(|_| {}).await, redis.node(|_| {}).await);
    let owner = a.client("owner@example.com").await;
    let nb = owner.create_notebook("presence", None).await.unwrap();
    let on_a = a.connect(&owner, &nb.id).await;
    let on_b = b.connect(&owner, &nb.id).await;
    on_a.set_awareness(serde_json::json!({"user": {"name": "Ada"}}))
        .unwrap();
    let ada = on_a.client_id();
    let sees_ada = |conn: &DocConnection| {
        conn.with_awareness(|aw| {
            aw.state::<serde_json::Value>(yrs::ClientID::new(ada))
                .is_some_and(|s| s["user"]["name"] == "Ada")
        })
    };
    wait_until(|| sees_ada(&on_b), "B sees the cursor of A's client").await;

    // A client joining B later gets it too (B answers from what it learned).
    let later = b.connect(&owner, &nb.id).await;
    wait_until(|| sees_ada(&later), "a later client on B sees it").await;

    // And a room loading on a third node asks for it.
    let c = redis.node(|_| {}).await;
    let on_c = c.connect(&owner, &nb.id).await;
    wait_until(|| sees_ada(&on_c), "a client on a new node sees it").await;

    // Leaving A removes the state on B.
    on_a.close().await;
    wait_until(
        || !sees_ada(&on_b),
        "B drops the state of A's departed client",
    )
    .await;
}

async fn wait_until(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_late_node_and_a_restarted_node_catch_up() {
    let redis = SharedRedis::new();
    let a = redis.node(|_| {}).await;
    let mut b = redis.node(|_| {}).await;
    let owner = a.client("owner@example.com").await;
    let nb = owner.create_notebook("late", None).await.unwrap();
    let on_a = a.connect(&owner, &nb.id).await;
    let on_b = b.connect(&owner, &nb.id).await;
    append(&on_a, "t", "one;");
    wait_for_text(&on_b, "t", "one;").await;

    // B goes away; A goes on; B comes back and its clients see everything.
    on_b.close().await;
    b.shutdown().await;
    append(&on_a, "t", "two;");
    wait_for_text(&on_a, "t", "one;two;").await;
    let b = redis.node(|_| {}).await;
    let on_b = b.connect(&owner, &nb.id).await;
    wait_for_text(&on_b, "t", "one;two;").await;

    // A node that never had the notebook open, started last.
    let c = redis.node(|_| {}).await;
    let on_c = c.connect(&owner, &nb.id).await;
    wait_for_text(&on_c, "t", "one;two;").await;
    append(&on_c, "t", "three;");
    for conn in [&on_a, &on_b, &on_c] {
        wait_for_text(conn, "t", "one;two;three;").await;
    }
}

#[tokio::test]
async fn revoking_access_on_one_node_cuts_a_socket_on_another() {
    let redis = SharedRedis::new();
    let (a, b) = (redis.node(|_| {}).await, redis.node(|_| {}).await);
    let owner = a.client("owner@example.com").await;
    let nb = owner.create_notebook("shared", None).await.unwrap();
    let sharing = |grants: serde_json::Value| {
        serde_json::json!({
            "general_access": "restricted",
            "link_role": "viewer",
            "grants": grants,
        })
    };
    let path = format!("api/notebooks/{}/sharing", nb.id);
    owner
        .send_json(
            reqwest::Method::PUT,
            &path,
            Some(sharing(
                serde_json::json!([{"email": "bob@example.com", "role": "editor"}]),
            )),
        )
        .await
        .unwrap();
    let bob = b.token("bob@example.com").await;
    let mut socket = raw_connect(&b, &nb.id, &bob).await;
    // The room's first message: Bob is in.
    assert!(matches!(
        receive(&mut socket).await,
        crate::support::Received::Message(_)
    ));

    owner
        .send_json(
            reqwest::Method::PUT,
            &path,
            Some(sharing(serde_json::json!([]))),
        )
        .await
        .unwrap();
    let (code, _) = tokio::time::timeout(WAIT, expect_close(&mut socket))
        .await
        .expect("Bob's socket on B was not cut");
    assert_eq!(code, 1008);
}

#[tokio::test]
async fn compaction_racing_live_writes_from_two_nodes_loses_nothing() {
    for seed in [7_u64, 8, 9] {
        let redis = SharedRedis::new();
        // Compact all the time, on both nodes.
        let compact = |c: &mut Config| c.compact_after = 3;
        let (a, b) = (redis.node(compact).await, redis.node(compact).await);
        let owner = a.client("owner@example.com").await;
        let nb = owner.create_notebook("race", None).await.unwrap();
        let conns = [
            a.connect(&owner, &nb.id).await,
            b.connect(&owner, &nb.id).await,
            a.connect(&owner, &nb.id).await,
            b.connect(&owner, &nb.id).await,
        ];
        let mut rng = StdRng::seed_from_u64(seed);
        let mut tokens = Vec::new();
        for round in 0..40 {
            let who = rng.random_range(0..conns.len());
            let token = format!("<{who}:{round}>");
            append(&conns[who], "t", &token);
            tokens.push(token);
            if rng.random_bool(0.4) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..3))).await;
            }
        }
        let text = converged(&conns).await;
        for token in &tokens {
            assert!(text.contains(token), "seed {seed}: lost {token} in {text}");
        }
        // What is stored (snapshot + the stream's rest) has everything too.
        let c = redis.node(|_| {}).await;
        let fresh = c.connect(&owner, &nb.id).await;
        wait_for_text(&fresh, "t", &text).await;
        let stored = c.app.store.load_document(&nb.id).await.unwrap();
        let doc = yrs::Doc::new();
        {
            let mut txn = doc.transact_mut();
            for update in stored.snapshot.iter().chain(&stored.updates) {
                txn.apply_update(yrs::Update::decode_v1(update).unwrap())
                    .unwrap();
            }
        }
        let stored_text = doc.get_or_insert_text("t").get_string(&doc.transact());
        assert_eq!(stored_text, text, "seed {seed}");
        assert!(
            stored.updates.len() < tokens.len(),
            "seed {seed}: the stream was compacted ({} entries left)",
            stored.updates.len()
        );
    }
}

#[tokio::test]
async fn a_node_that_missed_trimmed_entries_catches_up() {
    let redis = SharedRedis::new();
    let (a, b) = (redis.node(|_| {}).await, redis.node(|_| {}).await);
    let owner = a.client("owner@example.com").await;
    let nb = owner.create_notebook("trimmed", None).await.unwrap();
    let on_a = a.connect(&owner, &nb.id).await;
    let on_b = b.connect(&owner, &nb.id).await;
    append(&on_a, "t", "first;");
    wait_for_text(&on_b, "t", "first;").await;

    // Another writer appends an entry and folds it into the snapshot in one transaction, so
    // the nodes' readers never see the entry itself.
    sneak_in(&redis, &a, &nb.id, "missed;").await;

    // The next entry shows the gap; every node fills it from the snapshot.
    append(&on_a, "t", "after;");
    for conn in [&on_a, &on_b] {
        conn.wait_until(
            |doc| {
                let text = doc.get_or_insert_text("t").get_string(&doc.transact());
                text.contains("missed;") && text.contains("after;")
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("no catch-up ({e}): {}", text_of(conn, "t")));
    }

    // Without a later entry, the compacting node's notice makes the others look.
    let seq = sneak_in(&redis, &a, &nb.id, "silent;").await;
    let mut notice = vec![5];
    notice.extend_from_slice(format!("ghostc{seq}").as_bytes());
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("PUBLISH")
        .arg(format!("{}:room:{}", redis.prefix, nb.id))
        .arg(notice)
        .query_async(&mut conn)
        .await
        .unwrap();
    for conn in [&on_a, &on_b] {
        conn.wait_until(
            |doc| {
                let text = doc.get_or_insert_text("t").get_string(&doc.transact());
                text.contains("silent;")
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("no catch-up on notice ({e}): {}", text_of(conn, "t")));
    }
}

/// Appends `text` as another writer would and folds that entry into the snapshot in the same
/// transaction, so no node's reader sees the entry. Returns its seq.
async fn sneak_in(redis: &SharedRedis, node: &TestServer, notebook: &str, text: &str) -> u64 {
    let stored = node.app.store.load_document(notebook).await.unwrap();
    let doc = yrs::Doc::new();
    let delta = {
        let mut txn = doc.transact_mut();
        for update in stored.snapshot.iter().chain(&stored.updates) {
            txn.apply_update(yrs::Update::decode_v1(update).unwrap())
                .unwrap();
        }
        drop(txn);
        let root = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        let len = root.len(&txn);
        root.insert(&mut txn, len, text);
        txn.encode_update_v1()
    };
    let full = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    let seq = stored.last_seq + 1;
    let (stream, snapshot) = (
        format!("{}:doc:{notebook}:updates", redis.prefix),
        format!("{}:doc:{notebook}:snapshot", redis.prefix),
    );
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(&stream)
        .arg("0-*")
        .arg("u")
        .arg(delta)
        .arg("n")
        .arg("elsewhere")
        .ignore()
        .cmd("HSET")
        .arg(&snapshot)
        .arg("state")
        .arg(full)
        .arg("seq")
        .arg(seq)
        .ignore()
        .cmd("XTRIM")
        .arg(&stream)
        .arg("MINID")
        .arg(format!("0-{}", seq + 1))
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    seq
}

#[tokio::test]
async fn the_clients_of_a_node_that_died_time_out() {
    let redis = SharedRedis::new();
    let b = redis
        .node(|c| c.awareness_timeout = Duration::from_millis(800))
        .await;
    let owner = b.client("owner@example.com").await;
    let nb = owner.create_notebook("ghost", None).await.unwrap();
    let on_b = b.connect(&owner, &nb.id).await;

    // A node that then dies without a word: one awareness message on the notebook's channel,
    // in the nodes' wire format (`[node id length][node id]a[awareness update]`).
    let mut ghost = yrs::sync::Awareness::new(yrs::Doc::new());
    ghost
        .set_local_state(serde_json::json!({"user": {"name": "Ghost"}}))
        .unwrap();
    let ghost_id = ghost.client_id();
    let update = ghost.update_with_clients([ghost_id]).unwrap();
    let mut message = vec![5];
    message.extend_from_slice(b"ghosta");
    message.extend_from_slice(&yrs::updates::encoder::Encode::encode_v1(&update));
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let sees_ghost = || on_b.with_awareness(|aw| aw.state::<serde_json::Value>(ghost_id).is_some());
    // The room may still be subscribing: repeat until it shows.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !sees_ghost() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ghost never showed"
        );
        let () = redis::cmd("PUBLISH")
            .arg(format!("{}:room:{}", redis.prefix, nb.id))
            .arg(&message)
            .query_async(&mut conn)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = tokio::time::Instant::now();
    wait_until(|| !sees_ghost(), "the dead node's client times out").await;
    assert!(
        shown.elapsed() >= Duration::from_millis(500),
        "removed only after the timeout"
    );
}

#[tokio::test]
async fn one_nodes_sign_in_token_works_on_every_node_while_it_runs() {
    let redis = SharedRedis::new();
    // Each node has a data directory of its own, as on separate machines.
    let (mut a, b) = (redis.node(|_| {}).await, redis.node(|_| {}).await);
    let (token_a, token_b) = (a.sign_in_token(), b.sign_in_token());
    assert_ne!(token_a, token_b);
    let sign_in = |node: &TestServer, token: &str| {
        let body = serde_json::json!({"name": "Ada", "email": "ada@example.com", "token": token});
        crate::support::http()
            .post(format!("{}/auth/local", node.http_url()))
            .json(&body)
            .send()
    };
    for (node, token) in [(&a, &token_b), (&b, &token_a), (&a, &token_a)] {
        assert_eq!(sign_in(node, token).await.unwrap().status(), 200);
    }
    // A node that stops takes its token with it.
    a.shutdown().await;
    let refused = sign_in(&b, &token_a).await.unwrap();
    assert_eq!(
        crate::support::status_code(refused).await,
        (403, "invalid_sign_in_token".to_owned())
    );
    assert_eq!(sign_in(&b, &token_b).await.unwrap().status(), 200);
}
