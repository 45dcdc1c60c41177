//! The file job store: plain files under the service's `workdir`, shared by every Apache child
//! (and every generation of children) of one host.
//!
//! ```text
//! workdir/store-version          "2" (layout version; see `layout.rs`)
//! workdir/records/<id>.json      the job record (state, progress, results, protocol options)
//! workdir/records/.<id>.spare    the record's previous content, rewritten by the next write
//! workdir/records/.lock-<0-f>    serialise a record's read-modify-write across processes
//! workdir/queue/<key>.json       queued jobs, oldest key first (key = submit time + id): a
//!                                hard link of the job's index entry (no inode of its own)
//! workdir/running/<id>.json      the queue entry of a claimed job, flock'ed by its owner
//! workdir/cancel/<id>            a client dismissed the running job
//! workdir/slots/<n>.lock         `parallelprocesses` slots, flock'ed while a job runs
//! workdir/queue.lock             serialises enqueue (the `maxprocesses` check; `queue.rs`)
//! workdir/index/<key>.<state>.<process>.<user>   the job list's index (see `index.rs`)
//! outputpath/<id>/<output>.ext   output files
//! ```
//!
//! A reader never sees a torn file: a record is created before anything names it and is
//! rewritten through its spare, which is then exchanged with it (`records.rs`); other files
//! are written to a temporary name and renamed into place. The kernel releases a dead child's
//! flocks, which is how an orphaned job (owner gone) is told from a running one on this host;
//! a job's claim is an flock on its queue entry (`claims.rs`).
//!
//! A job makes three inodes (its record, the record's spare at the first rewrite, its index
//! entry) and frees none until it is removed: its queue entry is a name, it moves by rename
//! and rewrites exchange. On ext4 without a journal, each inode freed in the last minute (or
//! more, while its inode table block is not written back) is passed over, its table block
//! looked up, by every new file of its block group: with four inodes freed per job, that was
//! half of the Apache children's CPU time while 10,000 jobs were submitted.

use super::{
    unix_now, valid_id, valid_output_name, Claim, Finish, JobCounts, JobQuery, JobRecord, JobState,
    JobStore, Slot, StoreError, StoreResult, WaitingLine,
};
mod claims;
mod fs_util;
mod index;
mod layout;
mod queue;
mod records;
mod waiting;

use fs_util::{json_files, try_lock, write_atomic};
use index::Index;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How long a claim holds without renewal (informational here: the flock decides).
const LEASE: u64 = 60;
/// How long a retention sweep works before it pauses as long again.
const SWEEP_SLICE: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    outputs: PathBuf,
    slots: u32,
    max_queued: u32,
    /// This process's view of the queue: one directory listing, consumed in order, so a busy
    /// queue is not re-listed for every claim. Entries claimed elsewhere are skipped.
    cursor: Mutex<VecDeque<PathBuf>>,
    /// Serialises this process's read-modify-write of records (progress vs. lease renewal).
    records: Mutex<()>,
    /// This process's `queue.lock` (`queue.rs`).
    queue_file: queue::QueueFile,
    /// The job list's index.
    index: Index,
    /// Whether record rewrites exchange the record with its spare (cleared when the file
    /// system cannot; see `fs_util::rewrite`).
    exchange: AtomicBool,
    /// This process's place in the line for a slot (`waiting.rs`).
    waiting: waiting::Waiting,
}

impl FileStore {
    /// `slots`: parallelprocesses (`u32::MAX` = unlimited); `max_queued`: maxprocesses.
    pub fn new(root: PathBuf, outputs: PathBuf, slots: u32, max_queued: u32) -> Self {
        FileStore {
            outputs,
            slots,
            max_queued,
            cursor: Mutex::new(VecDeque::new()),
            records: Mutex::new(()),
            queue_file: queue::QueueFile::default(),
            index: Index::new(root.join("index")),
            exchange: AtomicBool::new(true),
            waiting: waiting::Waiting::new(root.join("waiting"), root.join("slots").join("freed")),
            root,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn outputs(&self) -> &Path {
        &self.outputs
    }

    fn dir(&self, d: &str) -> PathBuf {
        self.root.join(d)
    }

    fn cancel_path(&self, id: &str) -> PathBuf {
        self.dir("cancel").join(id)
    }

    /// A free slot, if any; giving it back is `told` (see `waiting.rs`).
    fn take_slot(&self, told: bool) -> StoreResult<Option<Slot>> {
        if self.slots == u32::MAX {
            return Ok(Some(Slot::new(u32::MAX, None)));
        }
        let start = (std::process::id().wrapping_mul(2_654_435_761)) % self.slots.max(1);
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            if let Some(f) = try_lock(&self.dir("slots").join(format!("{i}.lock")))? {
                let hold: Box<dyn std::any::Any + Send + Sync> = if told {
                    Box::new(self.waiting.told(f))
                } else {
                    Box::new(f)
                };
                return Ok(Some(Slot::new(i, Some(hold))));
            }
        }
        Ok(None)
    }
}

impl JobStore for FileStore {
    fn prepare(&self, owner: Option<(u32, u32)>) -> StoreResult<Vec<String>> {
        fs::create_dir_all(&self.root)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.root.display())))?;
        let mut notes = self.retire_old_layout()?;
        let dirs = [
            self.root.clone(),
            self.dir("records"),
            self.dir("queue"),
            self.dir("running"),
            self.dir("cancel"),
            self.dir("slots"),
            self.dir("waiting"),
            self.outputs.clone(),
        ];
        for d in &dirs {
            fs::create_dir_all(d)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .map_err(|e| io::Error::new(e.kind(), format!("chown {}: {e}", d.display())))?;
            }
        }
        self.waiting.prepare(owner)?;
        if !self.index.exists() {
            let n = self.index.build(&self.dir("records"), owner)?;
            if n > 0 {
                notes.push(format!(
                    "job store {}: the job list's index was built from {n} job record(s)",
                    self.root.display()
                ));
            }
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&self.index.dir, Some(uid), Some(gid))?;
        }
        // a fresh queue-length hint, owned by the children's user
        let lock = self.root.join("queue.lock");
        self.queue_lock()?.store(self.queued() as u64)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&lock, Some(uid), Some(gid))?;
        }
        Ok(notes)
    }

    /// The record is written and synced, and its index entry made, before the queue lock is
    /// taken; under it are only the count and the queue entry, whose name says everything:
    /// a second name of the (empty) index entry, which costs no inode (a new file where
    /// there is no index or the link is refused). The directory sync at the end makes the new
    /// names durable (one journal commit on ext4) before the job is answered. On ext4 without
    /// a journal, the sync of the new record also writes its name in `records/` (the kernel
    /// syncs the parent of a file created since its last sync), and this one the queue's;
    /// the index entry's name is not synced there.
    fn enqueue(&self, job: &JobRecord) -> StoreResult<()> {
        let queue = self.dir("queue");
        let entry = queue.join(format!("{}.json", job.key));
        let write = || -> io::Result<Option<PathBuf>> {
            self.create_record(job)?;
            self.index.add(job)
        };
        let placed = write().map_err(StoreError::from).and_then(|indexed| {
            let mut lock = self.queue_lock()?;
            if lock.count >= u64::from(self.max_queued) {
                // the count is a hint (a child may die between a claim and its update): recount
                lock.store(self.queued() as u64)?;
                if lock.count >= u64::from(self.max_queued) {
                    return Err(StoreError::Full(self.max_queued));
                }
            }
            if indexed.is_none_or(|i| fs::hard_link(i, &entry).is_err()) {
                File::create(&entry)?;
            }
            lock.store(lock.count + 1)?;
            Ok(())
        });
        if placed.is_err() {
            let _ = fs::remove_file(self.record_path(&job.id));
            self.index.remove(job);
        }
        placed?;
        File::open(&queue).and_then(|d| d.sync_all())?;
        Ok(())
    }

    fn try_slot(&self) -> StoreResult<Option<Slot>> {
        self.take_slot(true)
    }

    fn try_slot_for_a_moment(&self) -> StoreResult<Option<Slot>> {
        self.take_slot(false)
    }

    fn waiting_line(&self) -> Option<&dyn WaitingLine> {
        (self.slots != u32::MAX).then_some(&self.waiting as &dyn WaitingLine)
    }

    fn claim(&self) -> StoreResult<Option<Claim>> {
        self.claim_first(None)
    }

    fn claim_matching(&self, wanted: &dyn Fn(&str) -> bool) -> StoreResult<Option<Claim>> {
        self.claim_first(Some(wanted))
    }

    /// The flock is what keeps the claim on one host; the lease is kept for other readers.
    fn renew(&self, claim: &Claim) -> StoreResult<()> {
        let attempt = claim.record.attempt;
        Ok(self.update(&claim.record.id, |r| {
            if r.attempt == attempt && r.state == JobState::Running {
                r.lease_until = Some(unix_now() + LEASE);
            }
        })?)
    }

    fn progress(&self, claim: &Claim, percent: u32, message: &str) -> StoreResult<()> {
        let attempt = claim.record.attempt;
        Ok(self.update(&claim.record.id, |r| {
            if r.attempt == attempt && r.state == JobState::Running {
                r.progress = percent.min(100);
                r.message = message.to_owned();
            }
        })?)
    }

    fn finish(&self, claim: Claim, how: Finish) -> StoreResult<bool> {
        let id = claim.record.id.clone();
        let dismissed = self.cancel_path(&id).exists();
        let written = if dismissed {
            self.remove_job(&id);
            false
        } else {
            let _g = self.records.lock().unwrap_or_else(|e| e.into_inner());
            let _l = self.record_lock(&id)?;
            match self.read_record(&id)? {
                Some(mut r)
                    if r.attempt == claim.record.attempt && r.state == JobState::Running =>
                {
                    let now = unix_now();
                    match how {
                        Finish::Succeeded { message, results } => {
                            r.state = JobState::Succeeded;
                            r.progress = 100;
                            r.message = message;
                            r.results = results;
                        }
                        Finish::Failed(e) => {
                            r.state = JobState::Failed;
                            r.message = e.text.clone();
                            r.error = Some(e);
                        }
                    }
                    r.finished = Some(now);
                    r.updated = now;
                    r.owner = None;
                    r.lease_until = None;
                    self.write_record(&r, true)?;
                    self.index.set(&r, r.state);
                    true
                }
                _ => false,
            }
        };
        self.release(&claim);
        Ok(written)
    }

    fn requeue(&self, claim: Claim) -> StoreResult<()> {
        let id = claim.record.id.clone();
        {
            let _g = self.records.lock().unwrap_or_else(|e| e.into_inner());
            let _l = self.record_lock(&id)?;
            if let Some(mut r) = self.read_record(&id)? {
                r.state = JobState::Accepted;
                r.owner = None;
                r.lease_until = None;
                r.progress = 0;
                r.message = "Process accepted and queued".into();
                r.updated = unix_now();
                self.write_record(&r, true)?;
                self.index.set(&r, JobState::Accepted);
            }
        }
        Ok(self.put_back(&claim)?)
    }

    fn orphans(&self) -> StoreResult<Vec<Claim>> {
        self.find_orphans()
    }

    fn cancel_requested(&self, claim: &Claim) -> bool {
        self.cancel_path(&claim.record.id).exists()
    }

    fn dismiss(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        if !valid_id(id) || self.cancel_path(id).exists() {
            return Ok(None);
        }
        let Some(r) = self.read_record(id)? else {
            return Ok(None);
        };
        if r.state == JobState::Accepted {
            let entry = self.dir("queue").join(format!("{}.json", r.key));
            let taken = self.dir("queue").join(format!(".{}.dismissed", r.key));
            if fs::rename(&entry, &taken).is_ok() {
                let _ = fs::remove_file(&taken);
                self.adjust_queued(-1)?;
                self.remove_job(id);
                return Ok(Some(r));
            }
            // claimed meanwhile: cancel it like a running job
        }
        let running = self.dir("running").join(format!("{id}.json"));
        if running.exists() {
            // the owner (any child) sees the request, stops the job and removes it
            write_atomic(&self.dir("cancel"), id, b"", true)?;
        } else {
            self.remove_job(id);
        }
        Ok(Some(r))
    }

    fn get(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        if !valid_id(id) || self.cancel_path(id).exists() {
            return Ok(None);
        }
        Ok(self.read_record(id)?)
    }

    fn list(&self, q: &JobQuery) -> StoreResult<Vec<JobRecord>> {
        if self.index.exists() {
            return self.list_indexed(q);
        }
        let mut v: Vec<JobRecord> = json_files(&self.dir("records"))?
            .iter()
            .filter_map(|p| records::read_path(p))
            .filter(|r| !self.cancel_path(&r.id).exists())
            .filter(|r| q.matches(r))
            .collect();
        v.sort_by(|a, b| b.key.cmp(&a.key));
        Ok(v.into_iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .collect())
    }

    fn counts(&self) -> StoreResult<JobCounts> {
        let running: Vec<JobRecord> = json_files(&self.dir("running"))?
            .iter()
            .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
            .filter_map(|id| self.read_record(&id).ok().flatten())
            .filter(|r| r.state == JobState::Running)
            .collect();
        let queued = self.queued();
        let records = json_files(&self.dir("records"))?.len();
        Ok(JobCounts {
            queued,
            finished: records.saturating_sub(queued + running.len()),
            running,
        })
    }

    fn write_output(&self, id: &str, name: &str, data: &[u8]) -> StoreResult<()> {
        if !valid_id(id) || !valid_output_name(name) {
            return Err(StoreError::Unavailable(format!(
                "invalid output name '{id}/{name}'"
            )));
        }
        let dir = self.outputs.join(id);
        fs::create_dir_all(&dir)?;
        Ok(write_atomic(&dir, name, data, false)?)
    }

    fn read_output(&self, id: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
        if !valid_id(id) || !valid_output_name(name) || self.cancel_path(id).exists() {
            return Ok(None);
        }
        let path = self.outputs.join(id).join(name);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(fs::read(&path)?)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Finished jobs by their finish time; outputs of synchronous requests (no record) and
    /// status documents of the previous layout by their modification time. Queued and
    /// running jobs are never touched.
    fn remove_expired(&self, age: Duration, go_on: &dyn Fn() -> bool) -> StoreResult<usize> {
        // one sweep at a time across the children (the others would race it for the same
        // files and double the work); a child that finds it taken skips this round
        let Some(_sweeping) = try_lock(&self.root.join("sweep.lock"))? else {
            return Ok(0);
        };
        let cutoff = SystemTime::now() - age;
        let mut n = 0;
        let older = |p: &Path| {
            fs::metadata(p)
                .and_then(|m| m.modified())
                .map(|t| t < cutoff)
                .unwrap_or(false)
        };
        let expired = |p: &Path| {
            // a finished record is not written again: its modification time is its end
            if !older(p) {
                return false;
            }
            let finished = records::read_path(p).is_some_and(|r| r.state.is_final());
            if let (true, Some(id)) = (finished, p.file_stem().and_then(|s| s.to_str())) {
                self.remove_job(id);
                return true;
            }
            false
        };
        if self.index.exists() {
            // Only jobs submitted before the cutoff can have finished before it. A finished
            // job's entry says so (its record is not written again), so only the record's
            // time is looked at; other entries may lag behind their record, which decides.
            // The sweep pauses as long as it worked after every few milliseconds of work (at
            // most half a core, in slices short enough for the requests served meanwhile to
            // keep their latency; a bucket can hold thousands of jobs).
            let secs = cutoff
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut slice = Instant::now();
            let mut stopped = false;
            self.index.submitted_before(secs, &mut |aged| {
                let mut removed = None;
                for a in aged {
                    if slice.elapsed() >= SWEEP_SLICE {
                        std::thread::sleep(slice.elapsed());
                        slice = Instant::now();
                        if !go_on() {
                            stopped = true;
                            break;
                        }
                    }
                    let record = self.record_path(&a.id);
                    let gone = if a.state == 's' || a.state == 'f' {
                        older(&record) && {
                            let _g = self.records.lock().unwrap_or_else(|e| e.into_inner());
                            let _l = self.record_lock(&a.id);
                            self.remove_files(&a.id);
                            let _ = fs::remove_file(&a.entry);
                            true
                        }
                    } else {
                        expired(&record)
                    };
                    if gone {
                        n += 1;
                        removed = Some(a.key);
                    }
                }
                if let Some(key) = removed {
                    self.index.prune(&key);
                }
                !stopped
            })?;
            if stopped {
                return Ok(n);
            }
        } else {
            for p in json_files(&self.dir("records"))? {
                if !go_on() {
                    return Ok(n);
                }
                n += usize::from(expired(&p));
            }
        }
        let old = |e: &fs::DirEntry| {
            e.metadata()
                .and_then(|m| m.modified())
                .map(|t| t < cutoff)
                .unwrap_or(false)
        };
        for e in fs::read_dir(&self.outputs)?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".xml").unwrap_or(&name);
            if valid_id(id) && !self.record_path(id).exists() && old(&e) {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
        Ok(n)
    }

    fn legacy_status(&self, id: &str) -> Option<Vec<u8>> {
        if !valid_id(id) {
            return None;
        }
        fs::read(self.outputs.join(format!("{id}.xml"))).ok()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_files;
