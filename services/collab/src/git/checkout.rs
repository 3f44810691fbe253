//! A shallow clone of one branch and the git commands run in it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{Author, GitError, Remote, check_branch, check_path, scrub};

/// A shallow clone of one branch in a temporary folder, removed when dropped.
pub struct Checkout {
    dir: tempfile::TempDir,
    repo: PathBuf,
    config: Vec<(String, String)>,
    secrets: Vec<String>,
    deadline: Instant,
    timeout: Duration,
    /// The branch checked out.
    pub branch: String,
    /// The branch's head commit.
    pub head: String,
}

/// An entry of a tree: mode, type and object id.
struct TreeEntry {
    mode: String,
    kind: String,
    oid: String,
}

impl Checkout {
    /// Clones `branch` (the default branch when `None`) of `remote` with a depth of one and
    /// no blobs. Everything done with the checkout must end within `timeout` from now.
    pub async fn shallow_clone(
        remote: &Remote,
        branch: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, GitError> {
        if let Some(branch) = branch {
            check_branch(branch)?;
        }
        let dir = tempfile::Builder::new().prefix("tandem-git-").tempdir()?;
        let repo = dir.path().join("repo");
        let mut config = vec![
            // Only the transports Tandem allows, for the clone and anything it leads to
            // (submodules, a promisor fetch).
            ("protocol.allow".to_owned(), "never".to_owned()),
            ("protocol.https.allow".to_owned(), "always".to_owned()),
            ("core.hooksPath".to_owned(), "/dev/null".to_owned()),
            ("credential.helper".to_owned(), String::new()),
        ];
        if remote.url.starts_with("http:") {
            // Plain http only ever for the loopback URL `Remote::new` let through.
            config.push(("protocol.http.allow".to_owned(), "always".to_owned()));
        }
        // A redirect could lead anywhere, past the address check (and it must not carry a
        // token's header to another host either).
        config.push(("http.followRedirects".to_owned(), "false".to_owned()));
        if let Some(pin) = &remote.pin {
            // Connect only to the address `Remote::resolve` checked: no second DNS lookup.
            config.push(("http.curloptResolve".to_owned(), pin.clone()));
        }
        let mut secrets = Vec::new();
        if let Some(token) = &remote.token {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            config.push((
                "http.extraHeader".to_owned(),
                format!("Authorization: Basic {basic}"),
            ));
            secrets.push(token.clone());
            secrets.push(basic);
        }
        let mut checkout = Self {
            repo: repo.clone(),
            dir,
            config,
            secrets,
            deadline: Instant::now() + timeout,
            timeout,
            branch: String::new(),
            head: String::new(),
        };
        let mut args = vec![
            "clone",
            "--quiet",
            "--depth=1",
            "--filter=blob:none",
            "--no-checkout",
            "--single-branch",
            "--no-tags",
        ];
        let branch_arg;
        if let Some(branch) = branch {
            branch_arg = format!("--branch={branch}");
            args.push(&branch_arg);
        }
        let repo_arg = repo.to_string_lossy().into_owned();
        args.extend(["--", remote.url.as_str(), repo_arg.as_str()]);
        let out = match checkout.run(&args, None, &[], false).await {
            Ok(out) => out,
            Err(GitError::Timeout(after)) => {
                return Err(fetch_failed(format!(
                    "git clone took longer than {after:?}"
                )));
            }
            Err(err) => return Err(err),
        };
        if !out.status.success() {
            return Err(fetch_failed(
                checkout.scrub(&String::from_utf8_lossy(&out.stderr)),
            ));
        }
        let head = checkout
            .run(
                &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
                None,
                &[],
                true,
            )
            .await?;
        if !head.status.success() {
            return Err(fetch_failed("the branch has no commits".into()));
        }
        checkout.head = text(&head.stdout);
        checkout.branch = match branch {
            Some(branch) => branch.to_owned(),
            None => {
                let name = checkout
                    .local(&["symbolic-ref", "--short", "HEAD"], None, &[])
                    .await?;
                text(&name)
            }
        };
        tracing::info!(url = %remote.url, branch = %checkout.branch, head = %checkout.head, "git clone");
        Ok(checkout)
    }

    /// The file at `path` in the head commit, read only if it has at most `limit` bytes.
    pub async fn read_file(&self, path: &str, limit: usize) -> Result<Vec<u8>, GitError> {
        check_path(path)?;
        let Some(entry) = self.entry(path).await? else {
            return Err(GitError::NotFound(format!(
                "no file {path:?} in branch {:?}",
                self.branch
            )));
        };
        if entry.kind != "blob" || entry.mode == "120000" {
            return Err(GitError::InvalidPath(format!(
                "{path:?} is not a regular file"
            )));
        }
        self.read_blob(&entry.oid, limit).await
    }

    /// Commits `content` at `path` on top of the head, as `author`, with `message`. Returns
    /// the new commit, or `None` when the file already holds exactly `content`.
    pub async fn commit_file(
        &self,
        path: &str,
        content: &[u8],
        message: &str,
        author: &Author,
    ) -> Result<Option<String>, GitError> {
        check_path(path)?;
        let entry = self.entry(path).await?;
        let mode = match &entry {
            Some(entry) if entry.kind != "blob" || entry.mode == "120000" => {
                return Err(GitError::InvalidPath(format!(
                    "{path:?} is not a regular file in the branch"
                )));
            }
            Some(entry) => entry.mode.clone(),
            None => "100644".to_owned(),
        };
        let blob = text(
            &self
                .local(&["hash-object", "-w", "--stdin"], Some(content), &[])
                .await?,
        );
        if entry.is_some_and(|e| e.oid == blob) {
            return Ok(None);
        }
        // The index only ever holds trees' entries; `--missing-ok` keeps `write-tree` from
        // fetching the blobs a partial clone does not have.
        self.local(&["read-tree", "HEAD"], None, &[]).await?;
        let cacheinfo = format!("{mode},{blob},{path}");
        self.local(
            &["update-index", "--add", "--cacheinfo", &cacheinfo],
            None,
            &[],
        )
        .await?;
        let tree = text(
            &self
                .local(&["write-tree", "--missing-ok"], None, &[])
                .await?,
        );
        let mut message = message.trim_end().to_owned();
        message.push('\n');
        let env = [
            ("GIT_AUTHOR_NAME", author.name.as_str()),
            ("GIT_AUTHOR_EMAIL", author.email.as_str()),
            ("GIT_COMMITTER_NAME", author.name.as_str()),
            ("GIT_COMMITTER_EMAIL", author.email.as_str()),
        ];
        let commit = self
            .local(
                &["commit-tree", &tree, "-p", &self.head],
                Some(message.as_bytes()),
                &env,
            )
            .await?;
        Ok(Some(text(&commit)))
    }

    /// Pushes `commit` to the branch, as a fast-forward only.
    pub async fn push(&self, commit: &str) -> Result<(), GitError> {
        let refspec = format!("{commit}:refs/heads/{}", self.branch);
        let out = self
            .run(
                &["push", "--porcelain", "--quiet", "origin", &refspec],
                None,
                &[],
                true,
            )
            .await?;
        if out.status.success() {
            tracing::info!(branch = %self.branch, commit, "git push");
            return Ok(());
        }
        let said = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lower = said.to_lowercase();
        let message = self.scrub(&said);
        tracing::warn!(branch = %self.branch, message = %message, "git push refused");
        if lower.contains("[remote rejected]") {
            Err(GitError::Rejected(message))
        } else if lower.contains("[rejected]")
            || lower.contains("non-fast-forward")
            || lower.contains("fetch first")
        {
            Err(GitError::NonFastForward(message))
        } else {
            Err(self.remote_error(&out))
        }
    }

    async fn entry(&self, path: &str) -> Result<Option<TreeEntry>, GitError> {
        let out = self
            .local(&["ls-tree", "-z", "HEAD", "--", path], None, &[])
            .await?;
        for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let record = String::from_utf8_lossy(record);
            let Some((info, name)) = record.split_once('\t') else {
                continue;
            };
            if name != path {
                continue;
            }
            let mut parts = info.split(' ');
            if let (Some(mode), Some(kind), Some(oid)) = (parts.next(), parts.next(), parts.next())
            {
                return Ok(Some(TreeEntry {
                    mode: mode.to_owned(),
                    kind: kind.to_owned(),
                    oid: oid.to_owned(),
                }));
            }
        }
        Ok(None)
    }

    /// Reads a blob (fetching it from the promisor remote), stopping past `limit` bytes.
    async fn read_blob(&self, oid: &str, limit: usize) -> Result<Vec<u8>, GitError> {
        let mut child = self
            .command(&["cat-file", "blob", oid], &[], true)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(GitError::Io(std::io::Error::other(
                "git's pipes are missing",
            )));
        };
        let read = async {
            let mut content = Vec::new();
            let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            stdout.take(cap).read_to_end(&mut content).await?;
            if content.len() > limit {
                return Ok::<_, std::io::Error>(None);
            }
            let mut said = Vec::new();
            stderr.read_to_end(&mut said).await?;
            let status = child.wait().await?;
            Ok(Some((content, said, status)))
        };
        let result = tokio::time::timeout_at(self.deadline, read)
            .await
            .map_err(|_| GitError::Timeout(self.timeout))??;
        // On every early return the child is killed when dropped (`kill_on_drop`).
        let Some((content, said, status)) = result else {
            return Err(GitError::TooLarge { limit });
        };
        if !status.success() {
            let out = std::process::Output {
                status,
                stdout: Vec::new(),
                stderr: said,
            };
            return Err(self.remote_error(&out));
        }
        Ok(content)
    }

    /// Runs a local git command that must succeed; returns its stdout.
    async fn local(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
    ) -> Result<Vec<u8>, GitError> {
        let out = self.run(args, stdin, env, true).await?;
        if !out.status.success() {
            return Err(GitError::Local {
                command: args.first().copied().unwrap_or_default().to_owned(),
                message: self.scrub(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(out.stdout)
    }

    async fn run(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
        in_repo: bool,
    ) -> Result<std::process::Output, GitError> {
        let mut child = self
            .command(args, env, in_repo)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let input = child.stdin.take();
        let write = async move {
            if let (Some(mut pipe), Some(data)) = (input, stdin) {
                // A command that stops reading early (it failed) closes the pipe; its exit
                // status tells what happened.
                let _ = pipe.write_all(data).await;
            }
        };
        let both = async { tokio::join!(write, child.wait_with_output()).1 };
        Ok(tokio::time::timeout_at(self.deadline, both)
            .await
            .map_err(|_| GitError::Timeout(self.timeout))??)
    }

    fn command(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        in_repo: bool,
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("git");
        command
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_COUNT", self.config.len().to_string())
            .current_dir(if in_repo {
                self.repo.as_path()
            } else {
                self.dir.path()
            })
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        for (i, (key, value)) in self.config.iter().enumerate() {
            command
                .env(format!("GIT_CONFIG_KEY_{i}"), key)
                .env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// What a failed clone, fetch or push means, from git's message.
    fn remote_error(&self, out: &std::process::Output) -> GitError {
        let said = String::from_utf8_lossy(&out.stderr);
        let lower = said.to_lowercase();
        let message = self.scrub(&said);
        tracing::warn!(message = %message, "git failed");
        let auth = [
            "authentication failed",
            "could not read username",
            "could not read password",
            "invalid username or password",
            "terminal prompts disabled",
            "returned error: 401",
            "returned error: 403",
            "permission to",
        ];
        let not_found = [
            "not found",
            "couldn't find remote ref",
            "returned error: 404",
            "does not appear to be a git repository",
            "not our ref",
        ];
        if auth.iter().any(|s| lower.contains(s)) {
            GitError::Auth(message)
        } else if not_found.iter().any(|s| lower.contains(s)) {
            GitError::NotFound(message)
        } else {
            GitError::Unavailable(message)
        }
    }

    /// Git's message without the token (in any form), on one line, its end kept.
    fn scrub(&self, said: &str) -> String {
        scrub(said, &self.secrets)
    }
}

/// Why a clone failed, logged, behind the one answer every failed fetch gets.
fn fetch_failed(detail: String) -> GitError {
    tracing::warn!(detail = %detail, "git clone failed");
    GitError::Fetch(detail)
}

/// A command's output as a trimmed string (object ids, names).
fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).trim().to_owned()
}
