//! Git repositories through the `git` command: a shallow clone of one branch, one file read
//! from it, one file committed to it and pushed.
//!
//! Every run of `git` gets a clean environment (only `PATH`; `HOME` is the clone's temporary
//! folder; no system or global configuration, no terminal prompts, English messages), its
//! arguments after `--` where git allows it, and the request's deadline. A token travels only
//! in the environment, as the `http.extraHeader` of `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`
//! (argv is world-readable in `/proc`, a process's environment is not), and is scrubbed from
//! any message git prints before that message is logged or answered.
//!
//! Clones are `--depth 1 --filter=blob:none --no-checkout`: the commit and its trees, and
//! later the one blob read, whatever the repository's size. Commits are made without a
//! working tree (`read-tree`, `hash-object`, `update-index`, `write-tree`, `commit-tree`),
//! so no other file of the repository is ever fetched or written to disk.

//!
//! A repository's host must be on the public internet (see `address`), unless the server runs
//! with `--git-allow-private`; git connects only to the address checked, and follows no
//! redirect. Whatever stops a clone (no such host, a refused connection, TLS, not a git
//! repository, no such branch, an empty one, a timeout, a refused address) is answered the
//! same way ([`GitError::Fetch`]), so the route tells a prober nothing about what listens
//! where; the detail goes to the log.
//!
//! # Layout
//! - this file: what is accepted ([`Remote`], [`check_branch`], [`check_path`]) and
//!   [`GitError`];
//! - `address`: which addresses are public, and pinning git to one;
//! - `checkout`: [`Checkout`], the clone and the commands run in it.

mod address;
mod checkout;

use std::time::Duration;

pub use checkout::Checkout;

/// The longest branch name accepted, in bytes.
const MAX_BRANCH_BYTES: usize = 255;
/// The longest path accepted, in bytes (Linux's `PATH_MAX`).
const MAX_PATH_BYTES: usize = 4096;
/// How much of git's message an error keeps: the end, where `fatal:` lines are.
const MAX_MESSAGE_CHARS: usize = 600;

/// What went wrong talking to a repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL is not one Tandem clones from.
    #[error("{0}")]
    InvalidUrl(String),
    /// The branch name is not a plain branch name.
    #[error("{0}")]
    InvalidBranch(String),
    /// The path is not a relative path to an `.ipynb` file.
    #[error("{0}")]
    InvalidPath(String),
    /// The server refused the credentials, or wants some.
    #[error("the git server refused the credentials: {0}")]
    Auth(String),
    /// The repository could not be fetched, for whatever reason (the detail, for the log,
    /// is never answered: see the module documentation).
    #[error("could not fetch the repository: check the URL, the branch and the token")]
    Fetch(String),
    /// No such repository, branch or file.
    #[error("{0}")]
    NotFound(String),
    /// The branch's head is not the commit the notebook is based on.
    #[error(
        "the branch moved: its head is {head}, but the notebook is based on {base}; \
         nothing was pushed"
    )]
    Moved {
        /// The branch's head on the server.
        head: String,
        /// The commit the notebook is based on.
        base: String,
    },
    /// The push was not a fast-forward: the branch moved meanwhile.
    #[error("the push was rejected because the branch moved meanwhile: {0}")]
    NonFastForward(String),
    /// The server refused the push for another reason (a protected branch, a hook).
    #[error("the git server rejected the push: {0}")]
    Rejected(String),
    /// The server could not be reached or failed.
    #[error("the git server failed: {0}")]
    Unavailable(String),
    /// Git took longer than allowed.
    #[error("git took longer than {0:?}")]
    Timeout(Duration),
    /// The file is larger than allowed.
    #[error("the file is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A local git command failed.
    #[error("git {command} failed: {message}")]
    Local {
        /// The subcommand.
        command: String,
        /// What git said, scrubbed.
        message: String,
    },
    /// Git could not be started, or its temporary folder not made.
    #[error("running git: {0}")]
    Io(#[from] std::io::Error),
}

/// A repository to talk to: a checked URL and, for private ones, a token.
pub struct Remote {
    url: String,
    token: Option<String>,
    /// The address git must connect to, as a `http.curloptResolve` entry, once resolved.
    pin: Option<String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("pin", &self.pin)
            .finish()
    }
}

impl Remote {
    /// Checks `url`: `https://`, or `http://` to a loopback host (a git server on the same
    /// machine, tests); no credentials, query or fragment in it (a token goes in `token`, so
    /// that it is never stored with the URL). Never `file://`, `ext::`, `ssh` or an option.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, GitError> {
        let invalid = |why: &str| GitError::InvalidUrl(format!("{why}: {url:?}"));
        if url.starts_with('-') {
            return Err(invalid("a repository URL cannot start with `-`"));
        }
        let parsed = url::Url::parse(url).map_err(|_| invalid("not a URL"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(&parsed) => {}
            "http" => {
                return Err(invalid(
                    "plain http is allowed only to a loopback host; use https",
                ));
            }
            _ => return Err(invalid("only https:// repository URLs are supported")),
        }
        if parsed.host().is_none() {
            return Err(invalid("the URL has no host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "put credentials in `token`, not in the URL (the URL is kept with the notebook)",
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("a repository URL has no query or fragment"));
        }
        let token = token.filter(|t| !t.is_empty());
        if let Some(token) = &token
            && token.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(GitError::Auth(
                "the token contains spaces or control characters".into(),
            ));
        }
        Ok(Self {
            url: parsed.into(),
            token,
            pin: None,
        })
    }

    /// The URL as it is used and kept (normalized: `http://0x7f000001/` is
    /// `http://127.0.0.1/`, which is what git is given).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Resolves the host and pins git to its address. Unless `allow_private`, every address
    /// the host has must be public: an IP address in the URL that is not is refused as an
    /// invalid URL; a name that resolves to one is refused like any failed fetch.
    pub async fn resolve(mut self, allow_private: bool) -> Result<Self, GitError> {
        let parsed = url::Url::parse(&self.url)
            .map_err(|_| GitError::InvalidUrl(format!("not a URL: {:?}", self.url)))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let (host, addresses): (String, Vec<std::net::IpAddr>) = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![ip.into()]),
            Some(url::Host::Ipv6(ip)) => (format!("[{ip}]"), vec![ip.into()]),
            Some(url::Host::Domain(name)) => {
                let found = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|err| GitError::Fetch(format!("resolving {name}: {err}")))?;
                (name.to_owned(), found.map(|addr| addr.ip()).collect())
            }
            None => return Err(GitError::InvalidUrl("the URL has no host".into())),
        };
        if !allow_private && let Some(ip) = addresses.iter().find(|ip| !address::is_public(**ip)) {
            return Err(match parsed.host() {
                Some(url::Host::Domain(_)) => {
                    GitError::Fetch(format!("{host} resolves to {ip}, which is not public"))
                }
                _ => GitError::InvalidUrl(format!(
                    "{ip} is a loopback, private, link-local or otherwise non-public \
                     address; the server fetches only from the public internet"
                )),
            });
        }
        if addresses.is_empty() {
            return Err(GitError::Fetch(format!("{host} has no address")));
        }
        if matches!(parsed.host(), Some(url::Host::Domain(_))) {
            self.pin = Some(address::resolve_entry(&host, port, &addresses));
        }
        Ok(self)
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks a branch name: the characters of ordinary branch names, none of git's special
/// forms, and never something `git` could read as an option.
pub fn check_branch(branch: &str) -> Result<(), GitError> {
    let invalid = |why: &str| GitError::InvalidBranch(format!("{why}: {branch:?}"));
    if branch.is_empty() || branch.len() > MAX_BRANCH_BYTES {
        return Err(invalid("a branch name has 1 to 255 bytes"));
    }
    if !branch
        .chars()
        .all(|c| c.is_alphanumeric() || "._-/+".contains(c))
    {
        return Err(invalid(
            "a branch name has letters, digits and `._-/+` only",
        ));
    }
    let bad_form = branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("/.");
    if bad_form {
        return Err(invalid("not a valid branch name"));
    }
    Ok(())
}

/// Checks a notebook's path in a repository: relative, `/`-separated, no `.`, `..` or `.git`
/// component, ending in `.ipynb`.
pub fn check_path(path: &str) -> Result<(), GitError> {
    let invalid = |why: &str| GitError::InvalidPath(format!("{why}: {path:?}"));
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(invalid("a path has 1 to 4096 bytes"));
    }
    if !path.ends_with(".ipynb") {
        return Err(invalid("the path must name an .ipynb file"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(invalid("the path contains control characters or `\\`"));
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(invalid("a relative path without empty, `.` or `..` parts"));
        }
        if part.eq_ignore_ascii_case(".git") || part.starts_with('-') {
            return Err(invalid(
                "no part of the path may be `.git` or start with `-`",
            ));
        }
    }
    Ok(())
}

/// Who a commit is by.
#[derive(Debug, Clone)]
pub struct Author {
    /// The name.
    pub name: String,
    /// The email address.
    pub email: String,
}

fn scrub(said: &str, secrets: &[String]) -> String {
    let mut clean = said.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        clean = clean.replace(secret.as_str(), "***");
    }
    let clean = clean
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .collect::<Vec<_>>()
        .join(" ");
    let count = clean.chars().count();
    if count <= MAX_MESSAGE_CHARS {
        return clean;
    }
    let tail: String = clean.chars().skip(count - MAX_MESSAGE_CHARS).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http_without_credentials() {
        for ok in [
            "https://github.com/owner/repo.git",
            "https://git.example.com:8443/a/b",
            "http://127.0.0.1:9418/repo.git",
            "http://localhost/repo.git",
            "http://[::1]:80/r.git",
        ] {
            assert!(Remote::new(ok, None).is_ok(), "{ok}");
        }
        for bad in [
            "file:///etc/passwd",
            "ext::sh -c touch% /tmp/pwned",
            "-uhttps://x",
            "--upload-pack=touch /tmp/x",
            "ssh://git@github.com/a/b",
            "git@github.com:a/b.git",
            "git://example.com/a/b",
            "http://example.com/a/b",
            "http://10.0.0.1/a/b",
            "https://user:pass@github.com/a/b",
            "https://token@github.com/a/b",
            "https://github.com/a/b?x=1",
            "/srv/git/repo.git",
            "",
        ] {
            assert!(
                matches!(Remote::new(bad, None), Err(GitError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn branch_names_cannot_be_options_or_special_forms() {
        for ok in ["main", "feature/x", "release-1.2", "v1+fix"] {
            assert!(check_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-f",
            "--upload-pack=x",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "x:y",
            "HEAD@{1}",
            "/x",
            "x/",
            "x.lock",
            ".hidden",
            "a//b",
        ] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_relative_notebooks_inside_the_repository() {
        for ok in ["nb.ipynb", "dir/sub/My Notebook.ipynb", "é/ü.ipynb"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/x.ipynb",
            "../x.ipynb",
            "a/../x.ipynb",
            "./x.ipynb",
            "a//x.ipynb",
            ".git/x.ipynb",
            "-x.ipynb",
            "x.py",
            "a\nb.ipynb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scrubbing_removes_every_form_of_the_secret() {
        let secrets = vec!["s3cret".to_owned(), "eC1hY2Nlc3M=".to_owned()];
        let said = "fatal: s3cret\nhint: try again\nAuthorization: Basic eC1hY2Nlc3M=\n";
        let clean = scrub(said, &secrets);
        assert_eq!(clean, "fatal: *** Authorization: Basic ***");
        let long = "x".repeat(2000);
        assert_eq!(scrub(&long, &[]).chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
