//! Notebooks opened from a git repository and saved back to it as commits.
//!
//! - `POST /api/notebooks/import/git` ([`IMPORT_PATH`], signed in) with a [`GitImport`]:
//!   clones the branch shallowly, reads the one `.ipynb` file and answers 201 with a
//!   [`NotebookInfo`](crate::NotebookInfo) whose role is `owner`. Where the notebook came from
//!   (a [`GitOrigin`]) is kept in the document at `state.git` (`tandem_crdt::schema::STATE_GIT`,
//!   a `Y.Map`, so `base_commit` can change alone; only the server writes it).
//! - `POST /api/notebooks/{id}/git/commit` (signed-in editor or owner) with a [`GitCommit`]:
//!   exports the notebook as the `.ipynb` file, commits it on top of the origin's
//!   `base_commit` and pushes; answers a [`GitCommitted`] and moves `state.git.base_commit`
//!   to the new commit.
//! - `GET /api/notebooks/{id}/git` (anyone who may read the notebook): the [`GitOrigin`].
//!
//! Tokens are sent to the git server as an HTTP `Authorization` header (Basic,
//! `x-access-token:TOKEN`, which GitHub and any smart-HTTP server accept) and are never
//! stored, logged or echoed.
//!
//! Errors (the usual [`ErrorBody`](crate::ErrorBody)), by code:
//! - 400 `invalid_url`: not an `https://` URL (`http://` only to a loopback host), or one with
//!   credentials in it; 400 `invalid_path`, `invalid_branch`, `invalid_message`,
//!   `invalid_author`: the other fields; 400 `invalid_ipynb`: the file is not a notebook
//!   Tandem can import (as for `POST /api/notebooks`); 413 `too_large`: the file is larger
//!   than the import limit.
//! - 400 `git_auth`: the git server refused the credentials (or wants some).
//! - 404 `git_not_found`: no such repository, branch or file.
//! - 409 `git_conflict`: the branch moved since the notebook was imported or last committed
//!   (its head is no longer `base_commit`), or the push was rejected as not a fast-forward;
//!   nothing was pushed.
//! - 409 `git_rejected`: the server refused the push for another reason (a protected branch,
//!   a hook).
//! - 409 `not_from_git` (404 on `GET …/git`): the notebook was not opened from git.
//! - 502 `git_unavailable`: the git server could not be reached or failed, or git took longer
//!   than the server's `--git-timeout`.

use serde::{Deserialize, Serialize};

/// The route that opens a notebook from git.
pub const IMPORT_PATH: &str = "/api/notebooks/import/git";

/// `POST /api/notebooks/import/git`: where to read the notebook from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitImport {
    /// The repository: `https://host/owner/repo(.git)`; `http://` only to a loopback host.
    pub url: String,
    /// The branch; the repository's default branch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The notebook's path in the repository, relative, ending in `.ipynb`.
    pub path: String,
    /// A token for private repositories (a GitHub personal access token, a GitLab or Gitea
    /// token, ...). Used for this request only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for GitImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitImport")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("url", &self.url)
            .finish()
    }
}

/// `POST /api/notebooks/{id}/git/commit`: the commit to make.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCommit {
    /// The commit message.
    pub message: String,
    /// A token with push access. Used for this request only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The repository URL the token is for; required with a token and must equal the
    /// notebook's origin. The origin lives in the shared document, which every editor can
    /// change, so the caller names where their token may go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The commit's author name; the signed-in user's name by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
    /// The commit's author email; the signed-in user's email by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_email: Option<String>,
}

impl std::fmt::Debug for GitCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCommit")
            .field("message", &self.message)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("url", &self.url)
            .field("author_name", &self.author_name)
            .field("author_email", &self.author_email)
            .finish()
    }
}

/// The answer to a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCommitted {
    /// The branch's head now: the new commit, or `base_commit` when the file was unchanged.
    pub commit: String,
    /// Whether a commit was made and pushed (`false` when the file in the branch already
    /// matched the notebook).
    pub changed: bool,
}

/// Where a notebook came from, as kept in the document at `state.git`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitOrigin {
    /// The repository URL, as given at import (never with credentials).
    pub url: String,
    /// The branch.
    pub branch: String,
    /// The notebook's path in the repository.
    pub path: String,
    /// The commit the document's content is based on: the branch's head at import, then each
    /// commit made from Tandem.
    pub base_commit: String,
}
