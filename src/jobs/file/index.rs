//! The job index of the file store: one empty file per job in `workdir/index/`, named
//! `<key>.<state>.<process>.<user>` (key = submit time + id, state one letter, process and
//! user as 64-bit FNV-1a hashes in hex, `-` for no user). Listing jobs reads this one
//! directory and only the records of the page it returns, so `/jobs` stays fast with
//! 100 000 jobs in the store; the records stay the truth (every listed record is checked
//! against the query, and an entry whose state lags behind its record is corrected).
//!
//! Entries change by rename (atomic) when a job changes state, and go with the job. The
//! index is built from the records when the store is prepared without one (a store of an
//! earlier version), under a temporary name, so a half-built index is never used.

use super::super::{JobQuery, JobRecord, JobState, Owner, StoreResult};
use super::FileStore;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const STATES: [JobState; 4] = [
    JobState::Accepted,
    JobState::Running,
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

impl Index {
    pub fn new(dir: PathBuf) -> Index {
        Index { dir }
    }

    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Adds a job (in its record's state); nothing to do without an index.
    pub fn add(&self, r: &JobRecord) -> io::Result<()> {
        match fs::File::create(self.dir.join(entry(r, r.state))) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.exists() => Ok(()),
            r => r.map(drop),
        }
    }

    /// Moves a job's entry to `to` (wherever it was).
    pub fn set(&self, r: &JobRecord, to: JobState) {
        let target = self.dir.join(entry(r, to));
        for s in std::iter::once(r.state).chain(STATES) {
            if s != to && fs::rename(self.dir.join(entry(r, s)), &target).is_ok() {
                return;
            }
        }
        if !target.exists() && self.exists() {
            let _ = fs::File::create(&target);
        }
    }

    /// Removes a job's entry.
    pub fn remove(&self, r: &JobRecord) {
        for s in STATES {
            let _ = fs::remove_file(self.dir.join(entry(r, s)));
        }
    }

    /// The ids of the jobs that may match `q`, newest first (all of them: paging is the
    /// caller's, which checks each record).
    pub fn candidates(&self, q: &JobQuery) -> io::Result<Vec<(String, char)>> {
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
        let mut keys: Vec<(String, char)> = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let Ok(e) = e else { continue };
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(p) = parse(name) else { continue };
            let ok = (processes.is_empty() || processes.iter().any(|h| h == p.process))
                // a running job may have finished since: its record decides
                && (states.is_empty() || states.contains(&p.state) || p.state == 'r' || p.state == 'a')
                && user.as_deref().is_none_or(|u| u == p.user)
                && from.as_deref().is_none_or(|f| &p.key[..24] >= f)
                && to.as_deref().is_none_or(|t| &p.key[..24] < t);
            if ok {
                keys.push((p.key.to_owned(), p.state));
            }
        }
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.dedup_by(|a, b| a.0 == b.0);
        Ok(keys
            .into_iter()
            .map(|(k, s)| (k[25..].to_owned(), s))
            .collect())
    }

    /// Builds the index of `records` (every `<id>.json`) when there is none.
    pub fn build(&self, records: &Path) -> io::Result<usize> {
        let tmp = self
            .dir
            .with_file_name(format!(".index-{}.tmp", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        let mut n = 0;
        for p in super::fs_util::json_files(records)? {
            let Some(r) = fs::read(&p)
                .ok()
                .and_then(|d| serde_json::from_slice::<JobRecord>(&d).ok())
            else {
                continue;
            };
            fs::File::create(tmp.join(entry(&r, r.state)))?;
            n += 1;
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
        for (id, state) in self.index.candidates(q)? {
            if v.len() >= limit {
                break;
            }
            // a finished job's entry is as good as its record for skipping
            if skipped < q.offset && (state == 's' || state == 'f') {
                skipped += 1;
                continue;
            }
            let Ok(Some(r)) = self.read_record(&id) else {
                continue;
            };
            if letter(r.state) != state && r.state != JobState::Dismissed {
                self.index.set(&r, r.state); // it lagged behind the record
            }
            if !q.matches(&r) || self.cancel_path(&id).exists() {
                continue;
            }
            if skipped < q.offset {
                skipped += 1;
                continue;
            }
            v.push(r);
        }
        Ok(v)
    }
}
