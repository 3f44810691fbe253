//! Ids that travel between the services and become file names, Redis keys and URL parts:
//! checked once, when they are parsed (from a URL, a command, a stored record), so code that
//! holds one never has to ask again whether it is safe.
//!
//! Both are what the collab service makes (URL-safe base64 of random bytes, 22 characters):
//! ASCII letters, digits, `-` and `_`, 1 to 64 of them. That makes each a single path
//! component (no `/`, no `.`, never empty) and a plain Redis key segment (no `:`).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 64;

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    what: &'static str,
    text: String,
}

impl std::error::Error for IdError {}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a {}: ids are 1 to {MAX_ID_LEN} ASCII letters, digits, '-' or '_'",
            self.text, self.what
        )
    }
}

fn valid(text: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `text` and makes it an id.
            pub fn parse(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                if valid(&text) {
                    Ok(Self(text))
                } else {
                    Err(IdError { what: $what, text })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(text: String) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

id_type!(
    /// A notebook's id.
    NotebookId,
    "notebook id"
);

id_type!(
    /// A user's id.
    UserId,
    "user id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_when_parsed() {
        let id = NotebookId::parse("Ab-_9xYz").unwrap();
        assert_eq!(id.as_str(), "Ab-_9xYz");
        assert_eq!(
            std::path::Path::new("/k").join(&id),
            std::path::Path::new("/k/Ab-_9xYz")
        );
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a:b",
            "é",
            " a",
            &"x".repeat(65),
        ] {
            let error = NotebookId::parse(bad).unwrap_err();
            assert!(error.to_string().contains("not a notebook id"), "{error}");
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UserId::parse("x".repeat(64)).is_ok());
    }

    #[test]
    fn ids_are_checked_when_deserialized() {
        let id: NotebookId = serde_json::from_str("\"n1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"n1\"");
        let error = serde_json::from_str::<NotebookId>("\"../../etc\"").unwrap_err();
        assert!(error.to_string().contains("not a notebook id"), "{error}");
    }
}
