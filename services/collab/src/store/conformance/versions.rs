//! Conformance checks of [`VersionStore`](crate::store::VersionStore).

use super::record;
use crate::store::{Store, StoreError, VersionKind, VersionRecord};

fn version(id: &str, at: i64, kind: VersionKind, authors: &[&str]) -> VersionRecord {
    VersionRecord {
        id: id.into(),
        notebook_id: "nb".into(),
        created_at_ms: at,
        kind,
        name: (kind == VersionKind::Named).then(|| format!("name of {id}")),
        author_ids: authors.iter().map(|a| a.to_string()).collect(),
    }
}

pub(crate) async fn versions_round_trip_prune_and_cascade(store: &dyn Store) {
    let user = store.upsert_user("v@example.com", "V").await.unwrap();
    store
        .create_notebook(&record("nb", &user.id), b"s")
        .await
        .unwrap();
    store
        .create_notebook(&record("other", &user.id), b"s")
        .await
        .unwrap();
    assert!(store.versions("nb").await.unwrap().is_empty());

    let v1 = version("v1", 10, VersionKind::Auto, &["u1", "u2"]);
    let v2 = version("v2", 20, VersionKind::Named, &[]);
    // Same time as v2, stored later: listed before it.
    let v3 = version("v3", 20, VersionKind::Auto, &["u3"]);
    store.insert_version(&v1, b"state one").await.unwrap();
    store.insert_version(&v2, &[0, 1, 2, 255]).await.unwrap();
    store.insert_version(&v3, b"three").await.unwrap();
    assert_eq!(
        store.versions("nb").await.unwrap(),
        [v3.clone(), v2.clone(), v1.clone()]
    );
    assert_eq!(
        store.version("nb", "v2").await.unwrap(),
        Some((v2.clone(), vec![0, 1, 2, 255]))
    );
    assert_eq!(store.version("nb", "nope").await.unwrap(), None);
    assert_eq!(store.version("other", "v2").await.unwrap(), None);
    assert!(store.versions("other").await.unwrap().is_empty());

    // A version of a missing notebook is refused.
    let mut orphan = version("v9", 1, VersionKind::Auto, &[]);
    orphan.notebook_id = "missing".into();
    assert!(matches!(
        store.insert_version(&orphan, b"x").await,
        Err(StoreError::NotFound(_))
    ));

    // Pruning drops versions and rewrites authors in one step; unknown ids are fine.
    store
        .prune_versions(
            "nb",
            &["v1".into(), "gone".into()],
            &[
                ("v2".into(), vec!["u1".into(), "u2".into()]),
                ("gone".into(), vec!["x".into()]),
            ],
        )
        .await
        .unwrap();
    let listed = store.versions("nb").await.unwrap();
    assert_eq!(
        listed.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["v3", "v2"]
    );
    assert_eq!(listed[1].author_ids, ["u1", "u2"]);
    assert_eq!(store.version("nb", "v1").await.unwrap(), None);
    assert_eq!(store.version("nb", "gone").await.unwrap(), None);
    // Pruning another notebook's versions by id does nothing here.
    store
        .prune_versions("other", &["v3".into()], &[])
        .await
        .unwrap();
    assert_eq!(store.versions("nb").await.unwrap().len(), 2);

    assert!(store.delete_notebook("nb").await.unwrap());
    assert!(store.versions("nb").await.unwrap().is_empty());
    assert_eq!(store.version("nb", "v3").await.unwrap(), None);
}
