//! Users' secrets (API keys, tokens) sealed under the server's key.
//!
//! A secret is a value a user stores once (`PUT /api/secrets/{name}`) and reads from the
//! kernels of the notebooks they granted it to (`tandem.secrets.get`,
//! `google.colab.userdata.get`). The store only ever holds it sealed with ChaCha20-Poly1305:
//! a fresh random nonce per value, and the owner's id and the secret's name as associated
//! data, so a sealed value copied to another user or another name does not open.
//!
//! The key is 32 bytes: `--secrets-key` (base64), or, with the embedded store and no flag,
//! `secrets.key` in `--data`, made on first start with mode 0600. Collab nodes on Redis share
//! nothing on disk, so they need the flag; without it the secrets routes answer 503
//! `secrets_unconfigured`.
//!
//! Sealed layout: `[VERSION][nonce: 12 bytes][ciphertext + tag]`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

/// Name of the key file in the data directory.
pub const KEY_FILE: &str = "secrets.key";

/// Longest value accepted, in bytes: room for a service-account JSON or a PEM key, small
/// enough that secrets never weigh on the store.
pub use tandem_protocol::secrets::MAX_VALUE_BYTES;

/// Longest secret name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The first byte of every sealed value: lets a later format (another cipher, a rotated key
/// id) be told apart from this one.
const VERSION: u8 = 1;

const NONCE_BYTES: usize = 12;

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The value was changed, belongs to another user or name, or was sealed under another key.
    #[error("the sealed secret does not verify (tampered, moved, or another key)")]
    Verify,
    /// The stored bytes are not a sealed value of a known format.
    #[error("the sealed secret has an unknown format")]
    Format,
}

/// The server's secrets key. Its `Debug` output never shows the key.
pub struct SecretsKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

impl SecretsKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        }
    }

    /// A key from its base64 form (standard or URL-safe alphabet, padded or not).
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| anyhow::anyhow!("the secrets key is not base64"))?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|bytes: Vec<u8>| {
            anyhow::anyhow!("the secrets key must be 32 bytes, got {}", bytes.len())
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh random key and its base64 form.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        (Self::from_bytes(&bytes), text)
    }

    /// The key in `path`, created (0600, never replaced) when the file does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Self::from_base64(&text).with_context(|| format!("in {}", path.display()));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        }
        let (key, text) = Self::generate();
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                file.write_all(format!("{text}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(path = %path.display(), "created the secrets key");
                Ok(key)
            }
            // Another process (a second `tandem` on the same data) made it first: use theirs.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load_or_create(path)
            }
            Err(err) => Err(err).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// Seals `value` for `user_id`'s secret `name`.
    pub fn seal(&self, user_id: &str, name: &str, value: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(user_id, name);
        // Encryption with ChaCha20-Poly1305 fails only past 256 GiB of plaintext.
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens what [`seal`](Self::seal) made for the same user and name.
    pub fn open(&self, user_id: &str, name: &str, sealed: &[u8]) -> Result<String, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Format)?;
        if version != VERSION || rest.len() < NONCE_BYTES + 16 {
            return Err(SealError::Format);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let aad = associated_data(user_id, name);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Verify)?;
        String::from_utf8(plain).map_err(|_| SealError::Format)
    }
}

/// Binds a sealed value to its owner and name; the NUL cannot occur in either.
fn associated_data(user_id: &str, name: &str) -> Vec<u8> {
    format!("tandem-secret-v1\0{user_id}\0{name}").into_bytes()
}

/// Whether `name` is a valid secret name: `[A-Z_][A-Z0-9_]{0,63}`, like an environment
/// variable, so it reads the same in code, in URLs and in Colab notebooks.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= MAX_NAME_CHARS
        && (first.is_ascii_uppercase() || first == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The key the service uses: `--secrets-key`, else (embedded store only) `secrets.key` in
/// the data directory. `None` with Redis and no flag: secrets are then unavailable.
pub fn configure(config: &crate::Config) -> anyhow::Result<Option<SecretsKey>> {
    if let Some(text) = &config.secrets_key {
        return SecretsKey::from_base64(text)
            .context("--secrets-key (TANDEM_SECRETS_KEY)")
            .map(Some);
    }
    if config.store.redis_url.is_some() {
        tracing::warn!(
            "secrets are off: collab nodes on Redis need the same --secrets-key \
             (TANDEM_SECRETS_KEY, base64 of 32 bytes)"
        );
        return Ok(None);
    }
    let dir = &config.store.data;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    SecretsKey::load_or_create(&dir.join(KEY_FILE)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_user_and_name() {
        let (key, _) = SecretsKey::generate();
        let sealed = key.seal("u1", "API_KEY", "hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open("u1", "API_KEY", &sealed).unwrap(), "hunter2");
        assert!(matches!(
            key.open("u2", "API_KEY", &sealed),
            Err(SealError::Verify)
        ));
        assert!(matches!(
            key.open("u1", "OTHER", &sealed),
            Err(SealError::Verify)
        ));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            key.open("u1", "API_KEY", &tampered),
            Err(SealError::Verify)
        ));
        let (other, _) = SecretsKey::generate();
        assert!(other.open("u1", "API_KEY", &sealed).is_err());
        assert!(matches!(
            key.open("u1", "API_KEY", b""),
            Err(SealError::Format)
        ));
        // A fresh nonce each time: sealing twice gives different bytes.
        assert_ne!(sealed, key.seal("u1", "API_KEY", "hunter2"));
    }

    #[test]
    fn keys_parse_and_persist() {
        let (_, text) = SecretsKey::generate();
        assert!(SecretsKey::from_base64(&text).is_ok());
        assert!(SecretsKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretsKey::from_base64("not base64!").is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let first = SecretsKey::load_or_create(&path).unwrap();
        let sealed = first.seal("u", "N", "v");
        let again = SecretsKey::load_or_create(&path).unwrap();
        assert_eq!(again.open("u", "N", &sealed).unwrap(), "v");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(format!("{first:?}"), "SecretsKey(..)");
    }

    #[test]
    fn names_look_like_environment_variables() {
        for ok in ["A", "_", "API_KEY", "HF_TOKEN2", &"A".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1A",
            "api_key",
            "A-B",
            "A B",
            "É",
            &"A".repeat(65),
            "A/B",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
