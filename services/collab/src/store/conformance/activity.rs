//! Conformance checks for [`ActivityStore`](crate::store::ActivityStore): opens per person,
//! the last editor per notebook, and both gone with a deleted notebook.

use crate::store::{Activity, Store};

pub(crate) async fn activity_opened_and_last_editor(store: &dyn Store) {
    let alice = store.upsert_user("alice@a.test", "Alice").await.unwrap();
    let bob = store.upsert_user("bob@a.test", "Bob").await.unwrap();
    for id in ["anb1", "anb2"] {
        store
            .create_notebook(&super::record(id, &alice.id), b"s")
            .await
            .unwrap();
    }
    let ids = vec!["anb1".to_owned(), "anb2".to_owned(), "missing".to_owned()];
    assert!(store.activity(&alice.id, &ids).await.unwrap().is_empty());

    store.note_opened(&alice.id, "anb1", 10).await.unwrap();
    store.note_opened(&alice.id, "anb1", 20).await.unwrap();
    store.note_opened(&bob.id, "anb2", 30).await.unwrap();
    store.note_edited("anb2", &bob.id).await.unwrap();
    // Notes about a notebook that does not exist change nothing and fail nothing.
    store.note_opened(&alice.id, "missing", 40).await.unwrap();
    store.note_edited("missing", &alice.id).await.unwrap();
    assert!(store.notebook("missing").await.unwrap().is_none());

    let seen = store.activity(&alice.id, &ids).await.unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen["anb1"],
        Activity {
            opened_at_ms: Some(20),
            last_editor_id: None
        }
    );
    assert_eq!(
        seen["anb2"],
        Activity {
            opened_at_ms: None,
            last_editor_id: Some(bob.id.clone())
        }
    );
    let by_bob = store.activity(&bob.id, &ids).await.unwrap();
    assert_eq!(by_bob["anb2"].opened_at_ms, Some(30));
    assert!(!by_bob.contains_key("anb1"));

    store.note_edited("anb2", &alice.id).await.unwrap();
    let seen = store.activity(&bob.id, &ids[1..2]).await.unwrap();
    assert_eq!(
        seen["anb2"].last_editor_id.as_deref(),
        Some(alice.id.as_str())
    );

    assert!(store.delete_notebook("anb2").await.unwrap());
    assert!(store.activity(&bob.id, &ids).await.unwrap().is_empty());
    assert!(store.activity(&alice.id, &[]).await.unwrap().is_empty());
}
