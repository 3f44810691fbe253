//! What every [`Store`] backend must do, as test bodies that take any store. Each backend's
//! tests instantiate the whole suite with [`suite!`], giving it an expression that opens a
//! fresh store (and a guard that cleans up after it).

use tandem_protocol::{GeneralAccess, Grant, Role};

use super::comments::{Anchor, CommentRecord, ThreadRecord};
use super::{NotebookRecord, PendingLogin, SessionRecord, Store, StoreError, User};
use crate::ids;

mod activity;
pub(crate) use activity::activity_opened_and_last_editor;

mod versions;
pub(crate) use versions::versions_round_trip_prune_and_cascade;

mod secrets;
pub(crate) use secrets::{RawSecrets, secrets_names_and_grants, secrets_sealed_at_rest};

/// Generates one `#[tokio::test]` per conformance check, each on a store from `$open` (an
/// expression evaluating to a future of `(store, guard)`).
macro_rules! suite {
    ($open:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;

            macro_rules! check {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let (store, _guard) = $open.await;
                        crate::store::conformance::$name(&store).await;
                    }
                };
            }

            check!(users_tokens_and_notebooks);
            check!(log_compaction_keeps_later_updates);
            check!(missing_notebooks_fail_cleanly);
            check!(sessions_expire_and_logins_are_single_use);
            check!(a_login_is_taken_once_under_races);
            check!(local_sign_in_tokens_live_until_they_lapse);
            check!(sharing_grants_and_ownership);
            check!(threads_round_trip_and_cascade);
            check!(versions_round_trip_prune_and_cascade);
            check!(secrets_names_and_grants);
            check!(secrets_sealed_at_rest);
            check!(activity_opened_and_last_editor);
        }
    };
}
pub(crate) use suite;

fn record(id: &str, owner: &str) -> NotebookRecord {
    NotebookRecord {
        id: id.into(),
        title: "t".into(),
        owner_id: owner.into(),
        created_at_ms: 1,
        updated_at_ms: 1,
        general_access: GeneralAccess::Restricted,
        link_role: Role::Viewer,
        editors_may_run: true,
    }
}

pub(crate) async fn users_tokens_and_notebooks(store: &dyn Store) {
    let alice = store
        .upsert_user("Alice@Example.com", "Alice")
        .await
        .unwrap();
    let again = store
        .upsert_user("alice@example.com", "Other")
        .await
        .unwrap();
    assert_eq!(
        alice, again,
        "email is case-insensitive and the first name sticks"
    );
    assert_eq!(alice.email, "alice@example.com");
    assert_eq!(
        store.user_by_id(&alice.id).await.unwrap(),
        Some(alice.clone())
    );
    store.insert_token(&alice.id, "h1").await.unwrap();
    assert_eq!(
        store.user_by_token("h1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.user_by_token("h2").await.unwrap(), None);

    let nb = record("nb1", &alice.id);
    store.create_notebook(&nb, b"state").await.unwrap();
    assert_eq!(store.notebook("nb1").await.unwrap(), Some(nb.clone()));
    assert_eq!(store.notebooks_owned_by(&alice.id).await.unwrap().len(), 1);
    assert!(store.rename_notebook("nb1", "Renamed").await.unwrap());
    let renamed = store.notebook("nb1").await.unwrap().unwrap();
    assert_eq!(renamed.title, "Renamed");
    assert!(renamed.updated_at_ms > 1);
    assert!(!store.rename_notebook("missing", "x").await.unwrap());
    assert!(store.notebook("missing").await.unwrap().is_none());

    // Most recently updated first.
    store
        .create_notebook(&record("nb2", &alice.id), b"state")
        .await
        .unwrap();
    // Later than the rename, even on a fast machine.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.append_updates("nb2", &[b"u".to_vec()]).await.unwrap();
    let owned: Vec<String> = store
        .notebooks_owned_by(&alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(owned, ["nb2", "nb1"]);

    assert!(store.delete_notebook("nb1").await.unwrap());
    assert!(!store.delete_notebook("nb1").await.unwrap());
    assert!(matches!(
        store.load_document("nb1").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.notebooks_owned_by(&alice.id).await.unwrap().len(), 1);
}

pub(crate) async fn log_compaction_keeps_later_updates(store: &dyn Store) {
    let user = store.upsert_user("a@b.c", "A").await.unwrap();
    store
        .create_notebook(&record("nb", &user.id), b"s0")
        .await
        .unwrap();
    let doc = store.load_document("nb").await.unwrap();
    assert_eq!(doc.snapshot.as_deref(), Some(&b"s0"[..]));
    assert!(doc.updates.is_empty());
    assert_eq!(doc.last_seq, 0);
    assert_eq!(
        store
            .append_updates("nb", &[b"u1".to_vec(), b"u2".to_vec()])
            .await
            .unwrap(),
        2
    );
    let doc = store.load_document("nb").await.unwrap();
    assert_eq!(doc.snapshot.as_deref(), Some(&b"s0"[..]));
    assert_eq!(doc.updates, vec![b"u1".to_vec(), b"u2".to_vec()]);
    assert_eq!(doc.last_seq, 2);

    // An update lands between the caller's snapshot (up to seq 2) and the compaction.
    assert_eq!(
        store.append_updates("nb", &[b"u3".to_vec()]).await.unwrap(),
        3
    );
    store.compact("nb", b"s2", 2).await.unwrap();
    let doc = store.load_document("nb").await.unwrap();
    assert_eq!(doc.snapshot.as_deref(), Some(&b"s2"[..]));
    assert_eq!(doc.updates, vec![b"u3".to_vec()]);
    assert_eq!(doc.last_seq, 3);

    // Sequence numbers keep growing after the log is emptied by compaction.
    store.compact("nb", b"s3", 3).await.unwrap();
    let doc = store.load_document("nb").await.unwrap();
    assert_eq!(doc.snapshot.as_deref(), Some(&b"s3"[..]));
    assert!(doc.updates.is_empty());
    assert_eq!(doc.last_seq, 3);
    assert_eq!(
        store.append_updates("nb", &[b"u4".to_vec()]).await.unwrap(),
        4
    );
}

pub(crate) async fn missing_notebooks_fail_cleanly(store: &dyn Store) {
    let err = store
        .append_updates("missing", &[b"u".to_vec()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Sqlite(_) | StoreError::NotFound(_)),
        "{err}"
    );
    assert!(matches!(
        store.load_document("missing").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_sharing(
                "missing",
                GeneralAccess::Restricted,
                Role::Viewer,
                true,
                &[]
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .transfer_ownership("missing", "u", "a@b.c", "b@b.c")
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) async fn sessions_expire_and_logins_are_single_use(store: &dyn Store) {
    let user = store.upsert_user("a@b.c", "A").await.unwrap();
    let now = ids::now_ms();
    let live = SessionRecord {
        hash: "live".into(),
        user_id: user.id.clone(),
        csrf_token: "c".into(),
        created_at_ms: now,
        expires_at_ms: now + 60_000,
    };
    let expired = SessionRecord {
        hash: "old".into(),
        expires_at_ms: now - 1,
        ..live.clone()
    };
    store.insert_session(&expired).await.unwrap();
    store.insert_session(&live).await.unwrap();
    let (found, found_user) = store.session("live").await.unwrap().unwrap();
    assert_eq!((found, found_user), (live.clone(), user.clone()));
    assert_eq!(store.session("old").await.unwrap(), None);
    assert_eq!(store.delete_user_sessions(&user.id).await.unwrap(), 1);
    assert_eq!(store.session("live").await.unwrap(), None);

    store.insert_session(&live).await.unwrap();
    assert!(store.delete_session("live").await.unwrap());
    assert!(!store.delete_session("live").await.unwrap());
    assert_eq!(store.session("live").await.unwrap(), None);

    let login = PendingLogin {
        provider: "p".into(),
        pkce_verifier: "v".into(),
        nonce: "n".into(),
        return_to: "/".into(),
        expires_at_ms: now + 60_000,
    };
    store.insert_login("s", &login).await.unwrap();
    assert_eq!(store.take_login("s").await.unwrap(), Some(login.clone()));
    assert_eq!(store.take_login("s").await.unwrap(), None, "single use");
    let stale = PendingLogin {
        expires_at_ms: now - 1,
        ..login
    };
    store.insert_login("t", &stale).await.unwrap();
    assert_eq!(store.take_login("t").await.unwrap(), None, "expired");
    assert_eq!(
        store.user_by_email(" A@B.C ").await.unwrap(),
        Some(user),
        "emails match case-insensitively"
    );
}

pub(crate) async fn a_login_is_taken_once_under_races(store: &dyn Store) {
    let login = PendingLogin {
        provider: "p".into(),
        pkce_verifier: "v".into(),
        nonce: "n".into(),
        return_to: "/".into(),
        expires_at_ms: ids::now_ms() + 60_000,
    };
    for round in 0..5 {
        let state = format!("race-{round}");
        store.insert_login(&state, &login).await.unwrap();
        let takes = futures_util::future::join_all((0..8).map(|_| store.take_login(&state))).await;
        let won = takes
            .into_iter()
            .map(Result::unwrap)
            .filter(Option::is_some)
            .count();
        assert_eq!(won, 1, "exactly one of the racing callbacks gets the login");
    }
}

pub(crate) async fn local_sign_in_tokens_live_until_they_lapse(store: &dyn Store) {
    let now = ids::now_ms();
    assert!(!store.local_sign_in_token_live("a").await.unwrap());
    store
        .put_local_sign_in_token("a", now + 60_000)
        .await
        .unwrap();
    store
        .put_local_sign_in_token("b", now + 60_000)
        .await
        .unwrap();
    assert!(store.local_sign_in_token_live("a").await.unwrap());
    assert!(store.local_sign_in_token_live("b").await.unwrap());

    // A renewal that has already lapsed ends the token; a later one brings it back.
    store.put_local_sign_in_token("a", now - 1).await.unwrap();
    assert!(!store.local_sign_in_token_live("a").await.unwrap());
    store
        .put_local_sign_in_token("a", now + 60_000)
        .await
        .unwrap();
    assert!(store.local_sign_in_token_live("a").await.unwrap());

    store.delete_local_sign_in_token("a").await.unwrap();
    assert!(!store.local_sign_in_token_live("a").await.unwrap());
    assert!(
        store.local_sign_in_token_live("b").await.unwrap(),
        "one node's stop leaves the others' tokens"
    );
    store.delete_local_sign_in_token("missing").await.unwrap();

    // A token whose node stopped renewing it lapses by itself.
    store
        .put_local_sign_in_token("c", ids::now_ms() + 150)
        .await
        .unwrap();
    assert!(store.local_sign_in_token_live("c").await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!store.local_sign_in_token_live("c").await.unwrap());
}

pub(crate) async fn sharing_grants_and_ownership(store: &dyn Store) {
    let alice = store.upsert_user("alice@x.org", "Alice").await.unwrap();
    let bob = store.upsert_user("bob@x.org", "Bob").await.unwrap();
    store
        .create_notebook(&record("nb", &alice.id), b"s")
        .await
        .unwrap();
    let grants = [
        Grant {
            email: "Bob@X.org".into(),
            role: Role::Viewer,
        },
        Grant {
            email: "carol@x.org".into(),
            role: Role::Commenter,
        },
    ];
    store
        .set_sharing(
            "nb",
            GeneralAccess::AnyoneWithLink,
            Role::Editor,
            false,
            &grants,
        )
        .await
        .unwrap();
    let nb = store.notebook("nb").await.unwrap().unwrap();
    assert_eq!(nb.general_access, GeneralAccess::AnyoneWithLink);
    assert_eq!(nb.link_role, Role::Editor);
    assert!(!nb.editors_may_run);
    let stored = store.grants("nb").await.unwrap();
    let emails: Vec<(&str, Role)> = stored.iter().map(|g| (g.email.as_str(), g.role)).collect();
    assert_eq!(
        emails,
        [
            ("bob@x.org", Role::Viewer),
            ("carol@x.org", Role::Commenter)
        ],
        "lowercased, by email"
    );
    assert_eq!(
        store.grant_for("nb", "BOB@x.org").await.unwrap(),
        Some(Role::Viewer)
    );
    let shared = store.notebooks_shared_with("bob@x.org").await.unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!((shared[0].0.id.as_str(), shared[0].1), ("nb", Role::Viewer));
    assert!(
        !shared[0].0.editors_may_run,
        "read back with the grant's role"
    );

    // Grants are replaced whole.
    store
        .set_sharing(
            "nb",
            GeneralAccess::Restricted,
            Role::Viewer,
            true,
            &[Grant {
                email: "carol@x.org".into(),
                role: Role::Editor,
            }],
        )
        .await
        .unwrap();
    assert!(
        store
            .notebooks_shared_with("bob@x.org")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.grant_for("nb", "bob@x.org").await.unwrap(), None);
    assert!(store.notebook("nb").await.unwrap().unwrap().editors_may_run);

    // Bob becomes the owner; Alice an editor; Carol keeps her grant.
    store
        .set_sharing(
            "nb",
            GeneralAccess::Restricted,
            Role::Viewer,
            true,
            &[
                Grant {
                    email: "bob@x.org".into(),
                    role: Role::Editor,
                },
                Grant {
                    email: "carol@x.org".into(),
                    role: Role::Editor,
                },
            ],
        )
        .await
        .unwrap();
    store
        .transfer_ownership("nb", &bob.id, "Bob@x.org", "alice@x.org")
        .await
        .unwrap();
    assert_eq!(
        store.notebook("nb").await.unwrap().unwrap().owner_id,
        bob.id
    );
    assert_eq!(store.notebooks_owned_by(&bob.id).await.unwrap().len(), 1);
    assert!(
        store
            .notebooks_owned_by(&alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.grant_for("nb", "bob@x.org").await.unwrap(), None);
    assert!(store.notebook("nb").await.unwrap().unwrap().editors_may_run);
    assert!(
        store
            .notebooks_shared_with("bob@x.org")
            .await
            .unwrap()
            .is_empty()
    );
    let shared = store.notebooks_shared_with("alice@x.org").await.unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].1, Role::Editor);
    assert_eq!(
        store.grant_for("nb", "carol@x.org").await.unwrap(),
        Some(Role::Editor)
    );

    assert!(store.delete_notebook("nb").await.unwrap());
    assert!(
        store
            .notebooks_shared_with("alice@x.org")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.grants("nb").await.unwrap().is_empty());
}

fn comment(id: &str, author: &User, at: i64) -> CommentRecord {
    CommentRecord {
        id: id.into(),
        author: User {
            id: author.id.clone(),
            email: String::new(),
            name: String::new(),
        },
        text: format!("text of {id}"),
        created_at_ms: at,
    }
}

pub(crate) async fn threads_round_trip_and_cascade(store: &dyn Store) {
    let user = store.upsert_user("a@example.com", "Ann").await.unwrap();
    store
        .create_notebook(&record("nb", &user.id), b"s")
        .await
        .unwrap();
    let anchor = Anchor {
        start: vec![1, 2, 0, 255],
        end: vec![3],
        from: 4,
        to: 9,
        quote: "hello".into(),
    };
    let thread = ThreadRecord {
        id: "t1".into(),
        notebook_id: "nb".into(),
        cell_id: "c1".into(),
        anchor: Some(anchor.clone()),
        author: user.clone(),
        created_at_ms: 10,
        resolved: None,
        comments: vec![comment("c1", &user, 10)],
    };
    store.create_thread(&thread).await.unwrap();
    let whole_cell = ThreadRecord {
        id: "t2".into(),
        anchor: None,
        created_at_ms: 11,
        comments: vec![comment("c2", &user, 11)],
        ..thread.clone()
    };
    store.create_thread(&whole_cell).await.unwrap();
    assert!(
        store
            .add_comment("nb", "t1", &comment("c3", &user, 12))
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_comment("other", "t1", &comment("c4", &user, 12))
            .await
            .unwrap(),
        "a thread of another notebook is absent"
    );
    assert!(
        store
            .set_resolved("nb", "t1", Some((&user.id, 13)))
            .await
            .unwrap()
    );

    let threads = store.threads("nb").await.unwrap();
    assert_eq!(threads.len(), 2);
    let t1 = &threads[0];
    assert_eq!(t1.anchor, Some(anchor));
    assert_eq!(t1.author, user, "authors are read back whole");
    assert_eq!(t1.resolved, Some((user.clone(), 13)));
    let ids: Vec<&str> = t1.comments.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c3"]);
    assert_eq!(t1.comments[0].author, user);
    assert_eq!(threads[1].anchor, None);
    assert_eq!(
        store
            .thread("nb", "t2")
            .await
            .unwrap()
            .unwrap()
            .comments
            .len(),
        1
    );
    assert!(store.thread("other", "t2").await.unwrap().is_none());

    assert!(store.set_resolved("nb", "t1", None).await.unwrap());
    let moved = Anchor {
        start: vec![9],
        end: vec![8],
        from: 1,
        to: 2,
        quote: "x".into(),
    };
    assert!(store.set_anchor("nb", "t1", &moved).await.unwrap());
    assert!(!store.set_anchor("nb", "nope", &moved).await.unwrap());
    let t1 = store.thread("nb", "t1").await.unwrap().unwrap();
    assert_eq!((t1.resolved, t1.anchor), (None, Some(moved)));

    assert!(store.delete_comment("nb", "t1", "c3").await.unwrap());
    assert!(!store.delete_comment("nb", "t1", "c3").await.unwrap());
    assert!(store.delete_thread("nb", "t2").await.unwrap());
    assert!(!store.delete_thread("nb", "t2").await.unwrap());

    assert!(store.delete_notebook("nb").await.unwrap());
    assert!(store.threads("nb").await.unwrap().is_empty());
    assert!(matches!(
        store.create_thread(&thread).await,
        Err(StoreError::NotFound(_))
    ));
}
