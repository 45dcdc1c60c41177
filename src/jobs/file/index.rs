//! The job index of the file store: one empty file per job, named
//! `<key>.<state>.<process>.<user>` (key = submit time + id, state one letter, process and
//! user as 64-bit FNV-1a hashes in hex, `-` for no user), in a directory per second of submit
//! time under a directory per 1,000 seconds: `workdir/index/<key[..12]>/<key[12..15]>/`.
//! Listing jobs newest first reads the newest of these small directories until the page is
//! full, and only the records of the page, so `/jobs?limit=10` costs the same with 100,000
//! jobs in the store as with ten (one flat directory of 100,000 names took 30–200 ms to
//! read on the benchmark machine); the retention sweep looks only at the directories of jobs
//! submitted before its cutoff. The records stay the truth (every listed record is checked
//! against the query, and an entry whose state lags behind its record is corrected).
//!
//! Entries change by rename (atomic, within their directory) when a job changes state, and go
//! with the job. A job's queue entry is another name (a hard link) of its index entry, made at
//! submit: no inode of its own (see `mod.rs`); nothing here depends on it. The index is built
//! from the records when the store is prepared without one (a store of an earlier version, or
//! the flat index of version 2), under a temporary name, so a half-built index is never used;
//! `index/.buckets` marks this layout.

use super::super::{JobQuery, JobRecord, JobState, Owner, StoreResult};
use super::FileStore;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The states of entries, in the order `set` looks for one: a job ends or goes back to the
/// queue from running, and leaves the queue from accepted.
const STATES: [JobState; 4] = [
    JobState::Running,
    JobState::Accepted,
    JobState::Succeeded,
    JobState::Failed,
];

pub(super) fn letter(s: JobState) -> char {
    match s {
        JobState::Accepted => 'a',
        JobState::Running => 'r',
        JobState::Succeeded => 's',
        JobState::Failed => 'f',
        JobState::Dismissed => 'd',
    }
}

fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn user_tag(user: Option<&str>) -> String {
    user.map(fnv).unwrap_or_else(|| "-".into())
}

/// The entry name of a job in `state`.
pub(super) fn entry(r: &JobRecord, state: JobState) -> String {
    format!(
        "{}.{}.{}.{}",
        r.key,
        letter(state),
        fnv(&r.process),
        user_tag(r.user.as_deref())
    )
}

#[derive(Debug)]
pub(super) struct Index {
    pub dir: PathBuf,
}

/// One parsed entry.
struct Entry<'a> {
    key: &'a str,
    state: char,
    process: &'a str,
    user: &'a str,
}

fn parse(name: &str) -> Option<Entry<'_>> {
    let mut it = name.split('.');
    let e = Entry {
        key: it.next()?,
        state: it.next()?.chars().next()?,
        process: it.next()?,
        user: it.next()?,
    };
    (it.next().is_none() && e.key.len() > 25).then_some(e)
}

/// The bucket levels: digits of the key (nanoseconds) that name a directory at each level,
/// i.e. 1,000 s, then 10 s, then 0.1 s of submit time.
const LEVELS: [(usize, usize); 3] = [(0, 12), (12, 14), (14, 16)];

/// The directory of a key's entries, below the index: `<key[..12]>/<key[12..14]>/<key[14..16]>`.
fn bucket(key: &str) -> PathBuf {
    LEVELS
        .iter()
        .map(|&(a, b)| key.get(a..b).unwrap_or(""))
        .collect()
}

/// Names of a directory's entries that are bucket directories of `digits` digits, newest
/// (largest) first.
fn buckets(dir: &Path, digits: usize) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.len() == digits && n.bytes().all(|b| b.is_ascii_digit()))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    v.sort_unstable_by(|a, b| b.cmp(a));
    Ok(v)
}

/// Calls `leaf` with every leaf bucket directory below `dir` (at `level`, whose path so far
/// spells `prefix`) whose key prefix `keep` accepts, newest first (oldest first with
/// `oldest_first`), until it returns false.
fn walk(
    dir: &Path,
    prefix: &str,
    level: usize,
    oldest_first: bool,
    keep: &dyn Fn(&str) -> bool,
    leaf: &mut dyn FnMut(&Path) -> io::Result<bool>,
) -> io::Result<bool> {
    let Some(&(a, b)) = LEVELS.get(level) else {
        return leaf(dir);
    };
    let mut names = buckets(dir, b - a)?;
    if oldest_first {
        names.reverse();
    }
    for name in names {
        let p = format!("{prefix}{name}");
        if keep(&p) && !walk(&dir.join(&name), &p, level + 1, oldest_first, keep, leaf)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The parsed entries of one leaf bucket directory, with their names.
fn leaf_entries(dir: &Path) -> io::Result<Vec<String>> {
    match fs::read_dir(dir) {
        Ok(d) => Ok(d
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| parse(n).is_some())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The marker of the bucketed layout.
const MARKER: &str = ".buckets";

/// A job the retention sweep looks at: its id, key, state letter and index entry.
pub(super) struct Aged {
    pub id: String,
    pub key: String,
    pub state: char,
    pub entry: PathBuf,
}

impl Index {
    pub fn new(dir: PathBuf) -> Index {
        Index { dir }
    }

    /// Whether there is an index of this layout (a flat index of the previous one is not).
    pub fn exists(&self) -> bool {
        self.dir.join(MARKER).exists()
    }

    fn path(&self, r: &JobRecord, state: JobState) -> PathBuf {
        self.dir.join(bucket(&r.key)).join(entry(r, state))
    }

    /// Adds a job (in its record's state) and returns its entry; nothing to do without an
    /// index.
    pub fn add(&self, r: &JobRecord) -> io::Result<Option<PathBuf>> {
        let path = self.path(r, r.state);
        // a retention sweep removes empty bucket directories: make it again, a few times
        for _ in 0..3 {
            match fs::File::create(&path) {
                Ok(_) => return Ok(Some(path)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !self.exists() {
                        return Ok(None);
                    }
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent)?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        fs::File::create(&path)?;
        Ok(Some(path))
    }

    /// Moves a job's entry to `to` (wherever it was).
    pub fn set(&self, r: &JobRecord, to: JobState) {
        let target = self.path(r, to);
        for s in std::iter::once(r.state).chain(STATES) {
            if s != to && fs::rename(self.path(r, s), &target).is_ok() {
                return;
            }
        }
        if !target.exists() && self.exists() {
            let mut with_state = r.clone();
            with_state.state = to;
            let _ = self.add(&with_state);
        }
    }

    /// Removes a job's entry.
    pub fn remove(&self, r: &JobRecord) {
        for s in STATES {
            let _ = fs::remove_file(self.path(r, s));
        }
    }

    /// Removes the bucket directories of `key` that are empty (after a sweep).
    pub fn prune(&self, key: &str) {
        let mut b = self.dir.join(bucket(key));
        for _ in LEVELS {
            if fs::remove_dir(&b).is_err() {
                return;
            }
            b.pop();
        }
    }

    /// Calls `visit` with the (id, state letter) of the jobs that may match `q`, newest first,
    /// until it returns false (paging is the caller's, which checks each record). Reads one
    /// bucket directory at a time.
    pub fn candidates(
        &self,
        q: &JobQuery,
        mut visit: impl FnMut(&str, char) -> bool,
    ) -> io::Result<()> {
        let processes: Vec<String> = q.processes.iter().map(|p| fnv(p)).collect();
        let states: Vec<char> = q.states.iter().map(|s| letter(*s)).collect();
        let user = match &q.owner {
            Owner::Any => None,
            Owner::User(u) => Some(fnv(u)),
            Owner::Anonymous => Some("-".to_owned()),
        };
        // submit times are in the key (nanoseconds, 24 digits)
        let bound = |t: u64| format!("{:024}", u128::from(t) * 1_000_000_000);
        let from = q.submitted_from.map(bound);
        let to = q.submitted_to.map(|t| bound(t + 1));
        let keep = |prefix: &str| {
            from.as_deref().is_none_or(|f| prefix >= &f[..prefix.len()])
                && to.as_deref().is_none_or(|t| prefix <= &t[..prefix.len()])
        };
        walk(&self.dir, "", 0, false, &keep, &mut |leaf| {
            let names = leaf_entries(leaf)?;
            let mut keys: Vec<(&str, char)> = Vec::new();
            for name in &names {
                let Some(p) = parse(name) else { continue };
                let ok = (processes.is_empty() || processes.iter().any(|h| h == p.process))
                    // a running job may have finished since: its record decides
                    && (states.is_empty() || states.contains(&p.state) || p.state == 'r' || p.state == 'a')
                    && user.as_deref().is_none_or(|u| u == p.user)
                    && from.as_deref().is_none_or(|f| &p.key[..24] >= f)
                    && to.as_deref().is_none_or(|t| &p.key[..24] < t);
                if ok {
                    keys.push((p.key, p.state));
                }
            }
            keys.sort_unstable_by(|a, b| b.cmp(a));
            keys.dedup_by(|a, b| a.0 == b.0);
            Ok(keys.iter().all(|(k, s)| visit(&k[25..], *s)))
        })?;
        Ok(())
    }

    /// The jobs submitted before `cutoff` (unix seconds), oldest buckets first: those a
    /// retention sweep must look at (a job finishes after it is submitted). Calls `f` with
    /// the jobs of one leaf bucket at a time, until it returns false.
    pub fn submitted_before(
        &self,
        cutoff: u64,
        f: &mut dyn FnMut(Vec<Aged>) -> bool,
    ) -> io::Result<()> {
        let limit = format!("{:024}", u128::from(cutoff) * 1_000_000_000);
        let keep = |prefix: &str| prefix <= &limit[..prefix.len()];
        walk(&self.dir, "", 0, true, &keep, &mut |leaf| {
            let aged = leaf_entries(leaf)?
                .into_iter()
                .filter_map(|name| {
                    let p = parse(&name)?;
                    (&p.key[..24] < limit.as_str()).then(|| Aged {
                        id: p.key[25..].to_owned(),
                        key: p.key.to_owned(),
                        state: p.state,
                        entry: leaf.join(&name),
                    })
                })
                .collect();
            Ok(f(aged))
        })?;
        Ok(())
    }

    /// Builds the index of `records` (every `<id>.json`) when there is none; a flat index of
    /// the previous layout is replaced. `owner`: the children's user, who must be able to add
    /// bucket directories and entries.
    pub fn build(&self, records: &Path, owner: Option<(u32, u32)>) -> io::Result<usize> {
        let tmp = self
            .dir
            .with_file_name(format!(".index-{}.tmp", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        let chown = |p: &Path| match owner {
            Some((uid, gid)) => std::os::unix::fs::chown(p, Some(uid), Some(gid)),
            None => Ok(()),
        };
        let mut n = 0;
        let mut made = std::collections::HashSet::new();
        for p in super::fs_util::json_files(records)? {
            let Some(r) = super::records::read_path(&p) else {
                continue;
            };
            let b = bucket(&r.key);
            if made.insert(b.clone()) {
                let mut d = tmp.clone();
                for part in b.iter() {
                    d.push(part);
                    if !d.exists() {
                        fs::create_dir(&d)?;
                        chown(&d)?;
                    }
                }
            }
            fs::File::create(tmp.join(&b).join(entry(&r, r.state)))?;
            n += 1;
        }
        fs::File::create(tmp.join(MARKER))?;
        if self.dir.exists() {
            // the flat index of the previous layout
            let old = self
                .dir
                .with_file_name(format!(".index-old-{}", std::process::id()));
            fs::rename(&self.dir, &old)?;
            let _ = fs::remove_dir_all(&old);
        }
        fs::rename(&tmp, &self.dir)?;
        Ok(n)
    }
}

impl FileStore {
    /// `list` through the index: only the records of the page are read.
    pub(super) fn list_indexed(&self, q: &JobQuery) -> StoreResult<Vec<JobRecord>> {
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut skipped = 0;
        let mut v = Vec::new();
        if limit == 0 {
            return Ok(v);
        }
        self.index.candidates(q, |id, state| {
            // a finished job's entry is as good as its record for skipping
            if skipped < q.offset && (state == 's' || state == 'f') {
                skipped += 1;
                return true;
            }
            let Ok(Some(r)) = self.read_record(id) else {
                return true;
            };
            if letter(r.state) != state && r.state != JobState::Dismissed {
                self.index.set(&r, r.state); // it lagged behind the record
            }
            if !q.matches(&r) || self.cancel_path(id).exists() {
                return true;
            }
            if skipped < q.offset {
                skipped += 1;
                return true;
            }
            v.push(r);
            v.len() < limit
        })?;
        Ok(v)
    }
}
