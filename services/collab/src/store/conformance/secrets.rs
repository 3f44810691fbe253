//! Conformance checks for [`SecretStore`](crate::store::SecretStore): names, grants, and
//! values that are sealed at rest and refuse to open once tampered with.

use crate::secrets::{SealError, SecretsKey};
use crate::store::{SecretLookup, Store, StoreError};

/// What a backend's own tests can see that the traits hide: the bytes as the engine holds
/// them, and a way to change them behind the store's back.
#[allow(async_fn_in_trait)]
pub(crate) trait RawSecrets {
    /// Everything the engine stores for the secret (its row or hash), concatenated.
    async fn raw_sealed(&self, user_id: &str, name: &str) -> Option<Vec<u8>>;
    /// Replaces the sealed value as stored.
    async fn overwrite_sealed(&self, user_id: &str, name: &str, bytes: Vec<u8>);
}

fn record(id: &str, owner: &str) -> crate::store::NotebookRecord {
    super::record(id, owner)
}

pub(crate) async fn secrets_names_and_grants(store: &dyn Store) {
    let alice = store.upsert_user("alice@s.test", "Alice").await.unwrap();
    let bob = store.upsert_user("bob@s.test", "Bob").await.unwrap();
    store
        .create_notebook(&record("snb1", &alice.id), b"s")
        .await
        .unwrap();
    store
        .create_notebook(&record("snb2", &alice.id), b"s")
        .await
        .unwrap();
    assert!(store.secrets(&alice.id).await.unwrap().is_empty());

    store
        .put_secret(&alice.id, "B_KEY", b"sealed-b", 5)
        .await
        .unwrap();
    store
        .put_secret(&alice.id, "A_KEY", b"sealed-a", 6)
        .await
        .unwrap();
    store
        .put_secret(&bob.id, "A_KEY", b"bobs", 7)
        .await
        .unwrap();
    let listed = store.secrets(&alice.id).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["A_KEY", "B_KEY"]);
    assert_eq!(listed[0].updated_at_ms, 6);
    assert!(listed[0].notebooks.is_empty());

    // Grants: to existing secrets and notebooks only; idempotent.
    assert!(matches!(
        store.grant_secret(&alice.id, "NOPE", "snb1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.grant_secret(&alice.id, "A_KEY", "missing").await,
        Err(StoreError::NotFound(_))
    ));
    store
        .grant_secret(&alice.id, "A_KEY", "snb2")
        .await
        .unwrap();
    store
        .grant_secret(&alice.id, "A_KEY", "snb1")
        .await
        .unwrap();
    store
        .grant_secret(&alice.id, "A_KEY", "snb1")
        .await
        .unwrap();
    let listed = store.secrets(&alice.id).await.unwrap();
    assert_eq!(listed[0].notebooks, ["snb1", "snb2"]);

    // Lookups tell a missing secret from one not granted to this notebook, per user.
    assert_eq!(
        store
            .secret_for_notebook(&alice.id, "A_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::Granted(b"sealed-a".to_vec())
    );
    assert_eq!(
        store
            .secret_for_notebook(&alice.id, "B_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::NotGranted
    );
    assert_eq!(
        store
            .secret_for_notebook(&alice.id, "C_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::Missing
    );
    // Bob's secret of the same name is his: Alice's grant does not reach it.
    assert_eq!(
        store
            .secret_for_notebook(&bob.id, "A_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::NotGranted
    );

    // A new value keeps the grants.
    store
        .put_secret(&alice.id, "A_KEY", b"sealed-a2", 9)
        .await
        .unwrap();
    assert_eq!(
        store
            .secret_for_notebook(&alice.id, "A_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::Granted(b"sealed-a2".to_vec())
    );
    assert_eq!(
        store.sealed_secret(&alice.id, "A_KEY").await.unwrap(),
        Some(b"sealed-a2".to_vec())
    );

    // Revoke, then delete (which takes the remaining grants along).
    assert!(
        store
            .revoke_secret(&alice.id, "A_KEY", "snb1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_secret(&alice.id, "A_KEY", "snb1")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .secret_for_notebook(&alice.id, "A_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::NotGranted
    );
    // A deleted notebook's grant is no longer listed.
    assert!(store.delete_notebook("snb2").await.unwrap());
    assert!(
        store.secrets(&alice.id).await.unwrap()[0]
            .notebooks
            .is_empty()
    );

    store
        .grant_secret(&alice.id, "A_KEY", "snb1")
        .await
        .unwrap();
    assert!(store.delete_secret(&alice.id, "A_KEY").await.unwrap());
    assert!(!store.delete_secret(&alice.id, "A_KEY").await.unwrap());
    assert_eq!(
        store
            .secret_for_notebook(&alice.id, "A_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::Missing
    );
    // Re-created under the same name, it starts without the old grants.
    store
        .put_secret(&alice.id, "A_KEY", b"again", 10)
        .await
        .unwrap();
    assert_eq!(
        store
            .secret_for_notebook(&alice.id, "A_KEY", "snb1")
            .await
            .unwrap(),
        SecretLookup::NotGranted
    );
    let names: Vec<String> = store
        .secrets(&alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["A_KEY", "B_KEY"]);
    assert_eq!(store.secrets(&bob.id).await.unwrap().len(), 1);
}

pub(crate) async fn secrets_sealed_at_rest<S: Store + RawSecrets>(store: &S) {
    let alice = store.upsert_user("alice@rest.test", "Alice").await.unwrap();
    let (key, _) = SecretsKey::generate();
    let plain = "hf_PLAINTEXT_VALUE_0123456789";
    let sealed = key.seal(&alice.id, "HF_TOKEN", plain);
    store
        .put_secret(&alice.id, "HF_TOKEN", &sealed, 1)
        .await
        .unwrap();

    let raw = store.raw_sealed(&alice.id, "HF_TOKEN").await.unwrap();
    assert!(
        !raw.windows(plain.len()).any(|w| w == plain.as_bytes()),
        "the stored bytes hold the plaintext"
    );
    let stored = store
        .sealed_secret(&alice.id, "HF_TOKEN")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.open(&alice.id, "HF_TOKEN", &stored).unwrap(), plain);

    // One flipped bit anywhere in the ciphertext and the value no longer opens.
    let mut tampered = stored.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    store
        .overwrite_sealed(&alice.id, "HF_TOKEN", tampered)
        .await;
    let read = store
        .sealed_secret(&alice.id, "HF_TOKEN")
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        key.open(&alice.id, "HF_TOKEN", &read),
        Err(SealError::Verify)
    ));
    // Nor does a value moved to another user.
    let bob = store.upsert_user("bob@rest.test", "Bob").await.unwrap();
    store
        .put_secret(&bob.id, "HF_TOKEN", &stored, 2)
        .await
        .unwrap();
    let moved = store
        .sealed_secret(&bob.id, "HF_TOKEN")
        .await
        .unwrap()
        .unwrap();
    assert!(key.open(&bob.id, "HF_TOKEN", &moved).is_err());
}
