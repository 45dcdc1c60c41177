//! Claims of the file store: taking a queue entry (with its job lock), releasing it, and the
//! lock that makes a record's read-modify-write atomic across processes.

use super::fs_util::{host_pid, id_of_entry, json_files, try_lock};
use super::{FileStore, JobLock, LEASE};
use crate::jobs::{unix_now, Claim, JobState, StoreResult};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Mutex;

impl FileStore {
    pub(super) fn claim_entry(&self, path: &Path) -> io::Result<Option<Claim>> {
        let Some(id) = id_of_entry(path) else {
            // A damaged queue entry: keep it out of the way, never lose it silently.
            let _ = fs::rename(path, path.with_extension("bad"));
            return Ok(None);
        };
        let lock_path = self.dir("running").join(format!("{id}.lock"));
        let Some(file) = try_lock(&lock_path)? else {
            return Ok(None);
        };
        let running = self.dir("running").join(format!("{id}.json"));
        match fs::rename(path, &running) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None), // taken elsewhere
            Err(e) => return Err(e),
        }
        self.adjust_queued(-1)?;
        let lock = JobLock {
            file,
            path: lock_path,
        };
        let _g = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let _l = self.record_lock(&id)?;
        let Some(mut r) = self.read_record(&id)? else {
            // dismissed while queued
            let _ = fs::remove_file(&running);
            let _ = fs::remove_file(&lock.path);
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
        Ok(Some(Claim::new(r, Box::new(Mutex::new(Some(lock))))))
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

    /// Releases the claim's lock and its queue entry.
    pub(super) fn release(&self, claim: &Claim) {
        if let Some(m) = claim.hold().downcast_ref::<Mutex<Option<JobLock>>>() {
            if let Some(lock) = m.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = fs::remove_file(
                    self.dir("running")
                        .join(format!("{}.json", claim.record.id)),
                );
                let _ = fs::remove_file(&lock.path);
                drop(lock.file);
            }
        }
    }
}
