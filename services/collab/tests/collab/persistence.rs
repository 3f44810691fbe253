//! Durability: restarts, compaction, idle unload.

use std::time::Duration;

use crate::support::{TestServer, append, text_of, wait_for_text};
use crate::sync::wait;

#[tokio::test]
async fn edits_survive_a_restart() {
    let server = TestServer::start().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("durable", None).await.unwrap();
    let conn = server.connect(&owner, &nb.id).await;
    append(&conn, "t", "remember me");
    let observer = server.connect(&owner, &nb.id).await;
    wait_for_text(&observer, "t", "remember me").await;
    drop((conn, observer));

    let token = owner.token().to_owned();
    let server = server.restart(|_| {}).await;
    let owner = tandem_client::Client::new(&server.http_url(), &token).unwrap();
    let conn = server.connect(&owner, &nb.id).await;
    assert_eq!(text_of(&conn, "t"), "remember me");
}

#[tokio::test]
async fn compaction_folds_the_log_without_losing_edits() {
    let server = TestServer::start_with(|c| c.compact_after = 5).await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("compact", None).await.unwrap();
    let conn = server.connect(&owner, &nb.id).await;
    let mut expected = String::new();
    for i in 0..60 {
        let piece = format!("[{i}]");
        append(&conn, "t", &piece);
        expected.push_str(&piece);
        // Separate batches, so the log really grows past the threshold several times.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let observer = server.connect(&owner, &nb.id).await;
    wait_for_text(&observer, "t", &expected).await;
    let stored = server.app.store.load_document(&nb.id).await.unwrap();
    assert!(
        stored.updates.len() < 30,
        "log still holds {} updates",
        stored.updates.len()
    );

    let token = owner.token().to_owned();
    drop((conn, observer));
    let server = server.restart(|c| c.compact_after = 5).await;
    let owner = tandem_client::Client::new(&server.http_url(), &token).unwrap();
    assert_eq!(
        text_of(&server.connect(&owner, &nb.id).await, "t"),
        expected
    );
}

#[tokio::test]
async fn idle_rooms_unload_and_reload() {
    let server = TestServer::start_with(|c| c.room_idle = Duration::from_millis(100)).await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("idle", None).await.unwrap();
    let conn = server.connect(&owner, &nb.id).await;
    append(&conn, "t", "still here");
    wait_for_text(&server.connect(&owner, &nb.id).await, "t", "still here").await;
    assert!(server.app.rooms.loaded(&nb.id).is_some());
    conn.close().await;
    wait(|| server.app.rooms.loaded(&nb.id).is_none()).await;
    // Unloading compacted the log into the snapshot.
    let stored = server.app.store.load_document(&nb.id).await.unwrap();
    assert!(
        stored.updates.is_empty(),
        "{} updates left in the log",
        stored.updates.len()
    );
    let back = server.connect(&owner, &nb.id).await;
    assert_eq!(text_of(&back, "t"), "still here");
}
