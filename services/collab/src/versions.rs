//! Version history: when a room takes automatic versions, who each version credits, and which
//! automatic versions are kept as they age.
//!
//! A room keeps a [`Tracker`]: every document change from a connection marks it, with the
//! signed-in author if there is one. Once someone has changed the notebook, an automatic
//! version is due when the edits settle (no change for a quarter of `--version-interval`) but
//! no sooner than `--version-interval` after the previous version, and no later than four
//! intervals after the first unsaved change, so long sessions of typing are saved too. A room
//! that unloads (idle, shutdown) with unsaved changes of anyone, the runtime's outputs
//! included, takes one then. Changes from other collab nodes are credited by the node their
//! author is connected to.
//!
//! Each version lists the people who changed the notebook since the version before it. Named
//! versions are kept until the notebook is deleted; automatic ones are thinned after each new
//! one ([`plan_pruning`]): within `--version-recent` one per `--version-recent-spacing`, older
//! ones one per `--version-older-spacing`, and at most `--version-max-auto` in all. A dropped
//! version's authors move to the next newer version, which now covers its changes.
//!
//! The routes are in `api/versions.rs`, storage in `store/versions.rs`, the room's side in
//! `room/actor/versions.rs`.

use std::collections::HashMap;
use std::time::Duration;

use tandem_crdt::history::{Contents, RestoreSummary};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::store::{Store, VersionKind, VersionRecord};

/// Version history settings (flags of `tandem serve` and `tandem collab`).
#[derive(Debug, Clone, clap::Args)]
pub struct VersionConfig {
    /// Least time between two automatic versions of a notebook; one is taken once someone
    /// changed it and the edits settled.
    #[arg(long = "version-interval", env = "TANDEM_VERSION_INTERVAL", default_value = "2m", value_parser = humantime::parse_duration)]
    pub interval: Duration,

    /// How long automatic versions are kept at `--version-recent-spacing`.
    #[arg(long = "version-recent", env = "TANDEM_VERSION_RECENT", default_value = "1day", value_parser = humantime::parse_duration)]
    pub recent: Duration,

    /// Within `--version-recent`, at most one automatic version per this much time.
    #[arg(long = "version-recent-spacing", env = "TANDEM_VERSION_RECENT_SPACING", default_value = "10m", value_parser = humantime::parse_duration)]
    pub recent_spacing: Duration,

    /// Beyond `--version-recent`, at most one automatic version per this much time.
    #[arg(long = "version-older-spacing", env = "TANDEM_VERSION_OLDER_SPACING", default_value = "1day", value_parser = humantime::parse_duration)]
    pub older_spacing: Duration,

    /// Most automatic versions kept per notebook (the oldest go first); named versions do
    /// not count.
    #[arg(
        long = "version-max-auto",
        env = "TANDEM_VERSION_MAX_AUTO",
        default_value_t = 200
    )]
    pub max_auto: usize,
}

/// What a room is asked to do with its history (see [`crate::room::RoomHandle::version`]).
pub enum Request {
    /// Save the document as it is now as a named version.
    Name {
        /// The version's name.
        name: String,
        /// The stored version.
        reply: oneshot::Sender<anyhow::Result<VersionRecord>>,
    },
    /// Save the document as the named version `before_name`, then turn it into `contents` in
    /// one ordinary edit credited to `author`.
    Restore {
        /// What to restore.
        contents: Box<Contents>,
        /// The name of the version saved first, so the restore can be undone.
        before_name: String,
        /// Who restores (a user id).
        author: String,
        /// The version saved first and what the restore changed.
        reply: oneshot::Sender<anyhow::Result<(VersionRecord, RestoreSummary)>>,
    },
}

/// What a room remembers between versions.
#[derive(Debug)]
pub struct Tracker {
    interval: Duration,
    /// Signed-in authors since the last version, in the order they first changed something.
    authors: Vec<String>,
    /// Whether anything changed since the last version (the runtime's outputs included).
    changed: bool,
    last_version: Instant,
    /// The first and the latest change by a signed-in author since the last version.
    authored: Option<(Instant, Instant)>,
    /// Changes noted since the room loaded (see [`Tracker::credit`]).
    count: u64,
}

impl Tracker {
    /// A tracker for a room loaded now.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            authors: Vec::new(),
            changed: false,
            last_version: Instant::now(),
            authored: None,
            count: 0,
        }
    }

    /// How many changes were noted so far; pass it to [`Tracker::credit`].
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Credits `author` with the changes noted since [`Tracker::count`] returned `since` (the
    /// room notes changes as it applies a connection's messages, then credits the
    /// connection's user).
    pub fn credit(&mut self, since: u64, author: Option<&str>) {
        if self.count > since && author.is_some() {
            self.changed(author);
        }
    }

    /// Notes a change to the document by `author` (a user id; `None` for the runtime or an
    /// anonymous editor).
    pub fn changed(&mut self, author: Option<&str>) {
        self.changed_at(author, Instant::now());
    }

    fn changed_at(&mut self, author: Option<&str>, now: Instant) {
        self.changed = true;
        self.count += 1;
        let Some(author) = author else { return };
        self.authored = Some(match self.authored {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
        if !self.authors.iter().any(|a| a == author) {
            self.authors.push(author.to_owned());
        }
    }

    /// Whether anything changed since the last version.
    pub fn has_changes(&self) -> bool {
        self.changed
    }

    /// When an automatic version is due, if one will be (see the module doc).
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = self.authored?;
        let settled = last + self.interval / 4;
        let overdue = first + self.interval * 4;
        Some((self.last_version + self.interval).max(settled.min(overdue)))
    }

    /// Starts a new version: returns the authors since the previous one and forgets them.
    pub fn take(&mut self) -> Vec<String> {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> Vec<String> {
        self.changed = false;
        self.authored = None;
        self.last_version = now;
        std::mem::take(&mut self.authors)
    }

    /// Puts back the authors of a version that could not be stored, so the next one credits
    /// them; it is tried again after an interval.
    pub fn give_back(&mut self, authors: Vec<String>) {
        self.changed = true;
        let now = Instant::now();
        if !authors.is_empty() {
            self.authored.get_or_insert((now, now));
        }
        for author in authors {
            if !self.authors.contains(&author) {
                self.authors.push(author);
            }
        }
    }
}

/// Resolves at `deadline` (a room's [`Tracker::deadline`]); never without one.
pub async fn due(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Which automatic versions to drop, and the new author lists of the versions that take over
/// their changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruning {
    /// Versions to delete.
    pub drop: Vec<String>,
    /// (version id, authors) to store.
    pub authors: Vec<(String, Vec<String>)>,
}

/// Plans the thinning of a notebook's history (`versions` newest first, as the store lists
/// them) at `now_ms`: the newest automatic version always stays; of older ones, the newest in
/// each spacing bucket stays, then at most `max_auto` of those.
pub fn plan_pruning(versions: &[VersionRecord], now_ms: i64, config: &VersionConfig) -> Pruning {
    let millis = |d: Duration| (d.as_millis() as i64).max(1);
    let (recent, recent_spacing, older_spacing) = (
        millis(config.recent),
        millis(config.recent_spacing),
        millis(config.older_spacing),
    );
    let mut buckets = std::collections::HashSet::new();
    let mut kept_auto = 0usize;
    let mut dropped = std::collections::HashSet::new();
    for version in versions.iter().filter(|v| v.kind == VersionKind::Auto) {
        let age = now_ms - version.created_at_ms;
        let bucket = if age < recent {
            (0, version.created_at_ms.div_euclid(recent_spacing))
        } else {
            (1, version.created_at_ms.div_euclid(older_spacing))
        };
        let new_bucket = buckets.insert(bucket);
        if kept_auto == 0 || (new_bucket && kept_auto < config.max_auto) {
            kept_auto += 1;
        } else {
            dropped.insert(version.id.as_str());
        }
    }
    if dropped.is_empty() {
        return Pruning::default();
    }
    // Walk oldest to newest, carrying dropped versions' authors to the next kept one.
    let mut carried: Vec<String> = Vec::new();
    let mut authors: HashMap<&str, Vec<String>> = HashMap::new();
    for version in versions.iter().rev() {
        if dropped.contains(version.id.as_str()) {
            for author in &version.author_ids {
                if !carried.contains(author) {
                    carried.push(author.clone());
                }
            }
            continue;
        }
        if carried.is_empty() {
            continue;
        }
        let mut merged = std::mem::take(&mut carried);
        for author in &version.author_ids {
            if !merged.contains(author) {
                merged.push(author.clone());
            }
        }
        if merged != version.author_ids {
            authors.insert(version.id.as_str(), merged);
        }
    }
    Pruning {
        drop: versions
            .iter()
            .filter(|v| dropped.contains(v.id.as_str()))
            .map(|v| v.id.clone())
            .collect(),
        authors: versions
            .iter()
            .filter_map(|v| Some((v.id.clone(), authors.remove(v.id.as_str())?)))
            .collect(),
    }
}

/// Thins a notebook's automatic versions (see [`plan_pruning`]).
pub async fn prune(store: &dyn Store, notebook_id: &str, config: &VersionConfig) {
    let result = async {
        let versions = store.versions(notebook_id).await?;
        let plan = plan_pruning(&versions, crate::ids::now_ms(), config);
        if !plan.drop.is_empty() {
            store
                .prune_versions(notebook_id, &plan.drop, &plan.authors)
                .await?;
            tracing::debug!(dropped = plan.drop.len(), "automatic versions thinned");
        }
        Ok::<_, crate::store::StoreError>(())
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "cannot thin the version history");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn config(max_auto: usize) -> VersionConfig {
        VersionConfig {
            interval: Duration::from_secs(120),
            recent: Duration::from_secs(24 * 3600),
            recent_spacing: Duration::from_secs(600),
            older_spacing: Duration::from_secs(24 * 3600),
            max_auto,
        }
    }

    fn version(id: &str, at: i64, kind: VersionKind, authors: &[&str]) -> VersionRecord {
        VersionRecord {
            id: id.into(),
            notebook_id: "nb".into(),
            created_at_ms: at,
            kind,
            name: None,
            author_ids: authors.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn recent_versions_keep_one_per_spacing_and_old_ones_one_per_day() {
        let now = 100 * 24 * HOUR;
        // Newest first: three in the same ten minutes, a named one, two on one old day.
        let versions = vec![
            version("a3", now - MIN, VersionKind::Auto, &["u3"]),
            version("a2", now - 2 * MIN, VersionKind::Auto, &["u2"]),
            version("n1", now - 3 * MIN, VersionKind::Named, &[]),
            version("a1", now - 4 * MIN, VersionKind::Auto, &["u1"]),
            version("o2", now - 48 * HOUR + MIN, VersionKind::Auto, &["u5"]),
            version("o1", now - 48 * HOUR, VersionKind::Auto, &["u4"]),
        ];
        let plan = plan_pruning(&versions, now, &config(100));
        assert_eq!(plan.drop, ["a2", "a1", "o1"]);
        let authors = |ids: &[&str]| ids.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            plan.authors,
            [
                ("a3".to_string(), authors(&["u2", "u3"])),
                ("n1".to_string(), authors(&["u1"])),
                ("o2".to_string(), authors(&["u4", "u5"])),
            ]
        );
    }

    #[test]
    fn the_cap_drops_the_oldest_and_authors_carry_forward() {
        let now = 100 * 24 * HOUR;
        let versions: Vec<VersionRecord> = (0..5)
            .map(|i| {
                let id = format!("v{i}");
                version(&id, now - i * HOUR, VersionKind::Auto, &[&format!("u{i}")])
            })
            .collect();
        let plan = plan_pruning(&versions, now, &config(2));
        assert_eq!(plan.drop, ["v2", "v3", "v4"]);
        assert_eq!(
            plan.authors,
            [(
                "v1".to_string(),
                vec!["u4".into(), "u3".into(), "u2".into(), "u1".into()]
            )]
        );
        assert_eq!(
            plan_pruning(&versions[..2], now, &config(2)),
            Pruning::default()
        );
    }

    #[test]
    fn a_version_is_due_when_edits_settle_but_not_before_the_interval() {
        let mut tracker = Tracker::new(Duration::from_secs(120));
        let start = tracker.last_version;
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(tracker.deadline(), None);
        tracker.changed_at(None, at(0));
        assert!(tracker.has_changes());
        assert_eq!(
            tracker.deadline(),
            None,
            "the runtime's changes wait for unload"
        );
        let since = tracker.count();
        tracker.changed_at(None, at(1));
        tracker.credit(since, Some("alice"));
        assert_eq!(tracker.deadline(), Some(at(120)));
        tracker.changed_at(Some("bob"), at(119));
        tracker.changed_at(Some("alice"), at(119));
        assert_eq!(tracker.deadline(), Some(at(119 + 30)));
        // Typing without pause is saved after four intervals at the latest.
        for i in 1..=30 {
            tracker.changed_at(Some("bob"), at(119 + 20 * i));
        }
        let first = tracker.authored.map(|(first, _)| first);
        assert_eq!(
            tracker.deadline(),
            first.map(|f| f + Duration::from_secs(480))
        );
        assert_eq!(tracker.take_at(at(800)), ["alice", "bob"]);
        assert_eq!(tracker.deadline(), None);
        tracker.give_back(vec!["carol".into()]);
        assert!(tracker.deadline().is_some());
        // Changes credited to nobody (no change since `count`) credit nobody.
        let mut quiet = Tracker::new(Duration::from_secs(1));
        let since = quiet.count();
        quiet.credit(since, Some("dave"));
        assert!(!quiet.has_changes());
    }
}
