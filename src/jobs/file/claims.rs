//! Claims of the file store: taking a queue entry, releasing it, putting it back, and finding
//! the claims of dead owners.
//!
//! A claim is an flock on the job's queue entry itself. The claimer locks
//! `queue/<key>.json`, checks that the name still leads to the file it locked (a lock on a
//! file unlinked or replaced meanwhile is worthless), and renames it to `running/<id>.json`;
//! the lock belongs to the file, so it follows it there and is held until the job ends (the
//! entry is removed, then the lock dropped) or goes back to the queue (the entry is renamed
//! back). A dead owner's locks are released by the kernel: an entry in `running/` that no one
//! holds is an orphan. Earlier versions held a separate `running/<id>.lock` instead; while one
//! exists (an old child still running its job through a graceful restart), it is honoured too.

use super::fs_util::{id_of_entry, json_files, try_lock_existing};
use super::{FileStore, LEASE};
use crate::jobs::{host_pid, unix_now, valid_id, Claim, JobState, StoreResult};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The lock a job's owner holds while the job runs: on its entry in `running/` (and on the
/// entry's `.lock` file, when an owner of an earlier version left one).
pub(super) struct JobLock {
    _file: File,
    legacy: Option<(File, PathBuf)>,
}

impl JobLock {
    /// Lets go of the lock (the caller has removed or moved the entry); an earlier version's
    /// lock file is removed first.
    fn unlock(self) {
        if let Some((_f, path)) = self.legacy {
            let _ = fs::remove_file(path);
        }
    }
}

fn hold(lock: JobLock) -> Box<Mutex<Option<JobLock>>> {
    Box::new(Mutex::new(Some(lock)))
}

impl FileStore {
    fn running_entry(&self, id: &str) -> PathBuf {
        self.dir("running").join(format!("{id}.json"))
    }

    pub(super) fn claim_entry(&self, path: &Path) -> io::Result<Option<Claim>> {
        let Some(id) = id_of_entry(path) else {
            // A damaged queue entry: keep it out of the way, never lose it silently.
            let _ = fs::rename(path, path.with_extension("bad"));
            return Ok(None);
        };
        let Some(file) = try_lock_existing(path)? else {
            return Ok(None); // taken (or being taken) elsewhere, or dismissed
        };
        let running = self.running_entry(&id);
        match fs::rename(path, &running) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None), // taken elsewhere
            Err(e) => return Err(e),
        }
        let lock = JobLock {
            _file: file,
            legacy: None,
        };
        self.adjust_queued(-1)?;
        let _g = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let _l = self.record_lock(&id)?;
        let Some(mut r) = self.read_record(&id)? else {
            // dismissed while queued
            let _ = fs::remove_file(&running);
            return Ok(None);
        };
        let now = unix_now();
        r.state = JobState::Running;
        r.attempt += 1;
        r.owner = Some(host_pid());
        r.lease_until = Some(now + LEASE);
        r.started = Some(now);
        r.progress = 0;
        r.message = "Process started".into();
        r.updated = now;
        self.write_record(&r, false)?;
        self.index.set(&r, JobState::Running);
        Ok(Some(Claim::new(r, hold(lock))))
    }

    /// Claims the first queued job (of a process `wanted` accepts). Entries passed over stay
    /// in this process's cursor, in order, for the next call.
    pub(super) fn claim_first(
        &self,
        wanted: Option<&dyn Fn(&str) -> bool>,
    ) -> StoreResult<Option<Claim>> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let mut refilled = false;
        let mut i = 0;
        loop {
            if i >= cursor.len() {
                if refilled {
                    return Ok(None);
                }
                *cursor = json_files(&self.dir("queue"))?.into();
                refilled = true;
                i = 0;
                continue;
            }
            if let Some(wanted) = wanted {
                let process = id_of_entry(&cursor[i])
                    .and_then(|id| self.read_record(&id).ok().flatten())
                    .map(|r| r.process);
                match process {
                    Some(p) if !wanted(&p) => {
                        i += 1;
                        continue;
                    }
                    // unwanted jobs keep their place; gone or damaged ones are dealt with below
                    _ => {}
                }
            }
            let Some(path) = cursor.remove(i) else {
                continue;
            };
            if let Some(c) = self.claim_entry(&path)? {
                return Ok(Some(c));
            }
        }
    }

    /// The claim's lock, if this process holds it (a detached claim holds none).
    fn take_lock(claim: &Claim) -> Option<JobLock> {
        let m = claim.hold().downcast_ref::<Mutex<Option<JobLock>>>()?;
        m.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Releases the claim: its entry in `running/` is removed, then its lock dropped.
    pub(super) fn release(&self, claim: &Claim) {
        if let Some(lock) = Self::take_lock(claim) {
            let _ = fs::remove_file(self.running_entry(&claim.record.id));
            lock.unlock();
        }
    }

    /// Puts a claimed job's entry back in the queue (its record says accepted already), under
    /// its old name, and makes that durable.
    pub(super) fn put_back(&self, claim: &Claim) -> io::Result<()> {
        let queue = self.dir("queue");
        let entry = queue.join(format!("{}.json", claim.record.key));
        let moved = Self::take_lock(claim).is_some_and(|lock| {
            let moved = fs::rename(self.running_entry(&claim.record.id), &entry).is_ok();
            lock.unlock();
            moved
        });
        if !moved {
            File::create(&entry)?;
        }
        self.adjust_queued(1)?;
        File::open(&queue).and_then(|d| d.sync_all())
    }

    /// The running jobs whose owner is gone, claimed; entries of jobs that ended (or never
    /// started: the claimer died before recording it) are cleared up or put back.
    pub(super) fn find_orphans(&self) -> StoreResult<Vec<Claim>> {
        let mut out = Vec::new();
        for entry in json_files(&self.dir("running"))? {
            let Some(id) = entry
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| valid_id(s))
                .map(str::to_owned)
            else {
                continue;
            };
            let Some(file) = try_lock_existing(&entry)? else {
                continue; // its owner is alive, or released it meanwhile
            };
            let old = self.dir("running").join(format!("{id}.lock"));
            let legacy = if old.exists() {
                match try_lock_existing(&old)? {
                    Some(f) => Some((f, old)),
                    None => continue, // an owner of an earlier version is alive
                }
            } else {
                None
            };
            let lock = JobLock {
                _file: file,
                legacy,
            };
            match self.read_record(&id) {
                Ok(Some(r)) if r.state == JobState::Running => {
                    out.push(Claim::new(r, hold(lock)));
                }
                Ok(Some(r)) if r.state == JobState::Accepted => {
                    // claimed (or being re-queued) by a child that died before it wrote the
                    // record: back to the queue
                    let _ = fs::rename(&entry, self.dir("queue").join(format!("{}.json", r.key)));
                    lock.unlock();
                    self.adjust_queued(1)?;
                }
                Ok(_) => {
                    // finished (or dismissed) but not released: a stale entry
                    let _ = fs::remove_file(&entry);
                    lock.unlock();
                    if self.cancel_path(&id).exists() {
                        self.remove_job(&id);
                    }
                }
                Err(_) => {
                    let _ = fs::rename(&entry, entry.with_extension("bad"));
                    lock.unlock();
                }
            }
        }
        Ok(out)
    }
}
