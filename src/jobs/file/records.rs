//! Job records of the file store: `records/<id>.json`, and `records/.<id>.spare` beside it.
//!
//! A record is created once, at submit, directly under its name (no temporary file): nothing
//! can find it before its index and queue entries exist, which are made after it is written
//! and synced, and a record left half-written by a crash (with neither) is skipped by every
//! reader of `records/` (listing without an index, building the index, retention). Every
//! later write is a read-modify-write under the record's lock, and goes through the spare:
//! the new content is written into it and the two are exchanged (`fs_util::rewrite`), so
//! rewriting a record allocates and frees no inode. Readers read under a shared flock, so
//! they never see the spare half-rewritten. Once a job has ended, its spare is emptied: the
//! record is not written again, and the spare's inode is freed with the job. A job's files
//! are removed under its record's lock too, so a rewrite that was waiting for it finds the
//! record gone and does not bring it back.

use super::fs_util::{create_new, empty_spare, read_shared, rewrite};
use super::FileStore;
use crate::jobs::{unix_now, JobRecord};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A record's text, or `InvalidData` (a damaged or half-written record).
pub(super) fn parse(data: &[u8]) -> io::Result<JobRecord> {
    serde_json::from_slice(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The record in file `path` (`None`: unreadable or damaged), for listings.
pub(super) fn read_path(path: &Path) -> Option<JobRecord> {
    read_shared(path).ok().and_then(|d| parse(&d).ok())
}

impl FileStore {
    pub(super) fn record_path(&self, id: &str) -> PathBuf {
        self.dir("records").join(format!("{id}.json"))
    }

    /// The file the next rewrite of the record is written into (its previous content).
    pub(super) fn spare_path(&self, id: &str) -> PathBuf {
        self.dir("records").join(format!(".{id}.spare"))
    }

    pub(super) fn read_record(&self, id: &str) -> io::Result<Option<JobRecord>> {
        match read_shared(&self.record_path(id)) {
            Ok(data) => parse(&data).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a new job's record (synced).
    pub(super) fn create_record(&self, r: &JobRecord) -> io::Result<()> {
        let data = serde_json::to_vec(r).expect("a job record serialises");
        create_new(&self.record_path(&r.id), &data, true)
    }

    /// Rewrites an existing record (the caller holds its `record_lock`); a record removed
    /// meanwhile stays removed. The record of a job that ended is not written again: its
    /// spare is emptied (the inode stays, to be freed with the job).
    pub(super) fn write_record(&self, r: &JobRecord, sync: bool) -> io::Result<()> {
        let data = serde_json::to_vec(r).expect("a job record serialises");
        let spare = self.spare_path(&r.id);
        let written = rewrite(
            &self.record_path(&r.id),
            &spare,
            &data,
            sync,
            &self.exchange,
        )?;
        if written && r.state.is_final() {
            let _ = empty_spare(&spare); // only space: the record is written
        }
        Ok(())
    }

    /// Read-modify-write of a record.
    pub(super) fn update(&self, id: &str, f: impl FnOnce(&mut JobRecord)) -> io::Result<()> {
        let _g = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let _l = self.record_lock(id)?;
        if let Some(mut r) = self.read_record(id)? {
            f(&mut r);
            r.updated = unix_now();
            self.write_record(&r, false)?;
        }
        Ok(())
    }

    /// Serialises read-modify-writes of job `id`'s record across processes (an Apache child
    /// and the Slurm worker running the job write the same record): an flock on one of 16
    /// lock files in `records/`, taken while this process's `records` mutex is held.
    pub(super) fn record_lock(&self, id: &str) -> io::Result<File> {
        let shard = id
            .chars()
            .next()
            .filter(char::is_ascii_hexdigit)
            .unwrap_or('x');
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir("records").join(format!(".lock-{shard}")))?;
        f.lock()?;
        Ok(f)
    }

    /// Removes every trace of a job.
    pub(super) fn remove_job(&self, id: &str) {
        let _g = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(_l) = self.record_lock(id) else {
            return;
        };
        if let Ok(Some(r)) = self.read_record(id) {
            self.index.remove(&r);
        }
        self.remove_files(id);
    }

    /// Removes a job's outputs, record, spare and cancel request (the caller holds the
    /// record's lock).
    pub(super) fn remove_files(&self, id: &str) {
        let _ = fs::remove_dir_all(self.outputs.join(id));
        let _ = fs::remove_file(self.spare_path(id));
        let _ = fs::remove_file(self.record_path(id));
        let _ = fs::remove_file(self.cancel_path(id));
    }
}
