//! The durable job store: plain files under the service's `workdir`, shared by every Apache
//! child (and every generation of children) of the server.
//!
//! ```text
//! workdir/queue/<key>.json      accepted jobs, oldest key first (key = submit time + id)
//! workdir/running/<id>.json     claimed jobs (the spec, with the owner's pid)
//! workdir/running/<id>.lock     flock'ed by the owner while it runs the job
//! workdir/done/<id>.json        finished jobs (kept for retention)
//! workdir/slots/<n>.lock        `parallelprocesses` slots, flock'ed while a job runs
//! workdir/queue.lock            serialises enqueue (the `maxprocesses` check)
//! outputpath/<id>.xml           status document (statusLocation)
//! outputpath/<id>/<output>.ext  stored outputs (asReference)
//! ```
//!
//! Every file is written to a temporary name and renamed into place, so a reader never sees a
//! torn file. The kernel releases a dead child's flocks, which is how an orphaned job (owner
//! gone) is told from a running one.

use crate::front::wps1::request::ResponseDocument;
use crate::model::Input;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An accepted job, as stored on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// UUID.
    pub id: String,
    /// Queue order: submit time in nanoseconds + id; kept when a job is re-queued.
    pub key: String,
    pub process: String,
    pub inputs: Vec<Input>,
    pub response: ResponseDocument,
    pub lang: String,
    /// `serviceInstance` of the ExecuteResponse.
    pub service_instance: String,
    /// Base URL of the status document and stored outputs (ends with '/').
    pub output_url: String,
    /// Unix time (seconds) of submission.
    pub submitted: u64,
    /// How often the job was started (re-queued after its owner died).
    pub attempts: u32,
    /// Pid of the Apache child running it (0 while queued).
    pub owner: u32,
}

impl JobSpec {
    pub fn new_key(id: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!("{nanos:024}-{id}")
    }

    pub fn status_url(&self) -> String {
        format!("{}{}.xml", self.output_url, self.id)
    }
}

/// Why a job was not accepted.
#[derive(Debug)]
pub enum EnqueueError {
    /// `maxprocesses` jobs are already waiting.
    Full(u32),
    Io(io::Error),
}

/// A held `parallelprocesses` slot; released when dropped (or when the holder dies).
#[derive(Debug)]
pub struct Slot {
    _file: Option<File>,
    pub index: u32,
}

impl Slot {
    /// No slot (for finalising a job that holds none).
    pub fn none() -> Slot {
        Slot {
            _file: None,
            index: u32::MAX,
        }
    }
}

/// The lock a job's owner holds while the job runs.
#[derive(Debug)]
pub struct JobLock {
    file: File,
    path: PathBuf,
}

/// A dispatcher's view of the queue: one directory listing, consumed in order, so a busy queue
/// is not re-listed for every claim. Entries claimed elsewhere meanwhile are skipped.
#[derive(Debug, Default)]
pub struct QueueCursor(std::collections::VecDeque<PathBuf>);

#[derive(Debug, Clone)]
pub struct JobStore {
    root: PathBuf,
    outputs: PathBuf,
    slots: u32,
    max_queued: u32,
}

/// A job id is a UUID in its canonical lower-case form.
pub fn valid_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string() == id)
        .unwrap_or(false)
}

fn write_atomic(dir: &Path, name: &str, data: &[u8], sync: bool) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    drop(f);
    fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Takes an exclusive flock on `path` without waiting. Job lock files are removed when a job
/// finishes, so a lock taken on a file that was unlinked (or replaced) meanwhile is worthless:
/// it is dropped and reported as not obtained.
fn try_lock(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    let held = f.metadata()?;
    match fs::metadata(path) {
        Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => Ok(Some(f)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_spec(path: &Path) -> io::Result<JobSpec> {
    let data = fs::read(path)?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl JobStore {
    /// `slots`: parallelprocesses (`u32::MAX` = unlimited); `max_queued`: maxprocesses.
    pub fn new(root: PathBuf, outputs: PathBuf, slots: u32, max_queued: u32) -> Self {
        JobStore {
            root,
            outputs,
            slots,
            max_queued,
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

    /// Creates the directories (and gives them to `owner`, the uid/gid Apache's children run
    /// as, when the server starts as root).
    pub fn prepare(&self, owner: Option<(u32, u32)>) -> io::Result<()> {
        let dirs = [
            self.root.clone(),
            self.dir("queue"),
            self.dir("running"),
            self.dir("done"),
            self.dir("slots"),
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
        // a fresh queue-length hint, owned by the children's user
        let lock = self.root.join("queue.lock");
        let (mut f, _) = self.queue_lock()?;
        Self::store_count(&mut f, self.queued() as u64)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&lock, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// Number of jobs waiting in the queue.
    pub fn queued(&self) -> usize {
        fs::read_dir(self.dir("queue"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Writes a new job to the queue durably (file and directory fsync'ed) unless
    /// `maxprocesses` are waiting. The slow part, writing and syncing the file, happens
    /// before the queue lock is taken; under it are only the count and the rename.
    pub fn enqueue(&self, spec: &JobSpec) -> Result<(), EnqueueError> {
        let queue = self.dir("queue");
        let data = serde_json::to_vec(spec).expect("a job spec serialises");
        let tmp = queue.join(format!(".{}.tmp", spec.key));
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()
        };
        write().map_err(EnqueueError::Io)?;
        let placed = (|| {
            let (mut guard, mut count) = self.queue_lock().map_err(EnqueueError::Io)?;
            if count >= u64::from(self.max_queued) {
                // the count is a hint (a child may die between a claim and its update): recount
                count = self.queued() as u64;
                if count >= u64::from(self.max_queued) {
                    Self::store_count(&mut guard, count).map_err(EnqueueError::Io)?;
                    return Err(EnqueueError::Full(self.max_queued));
                }
            }
            fs::rename(&tmp, queue.join(format!("{}.json", spec.key))).map_err(EnqueueError::Io)?;
            Self::store_count(&mut guard, count + 1).map_err(EnqueueError::Io)
        })();
        if placed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        placed?;
        File::open(&queue)
            .and_then(|d| d.sync_all())
            .map_err(EnqueueError::Io)
    }

    /// Takes the queue lock; returns it with the queue length recorded in it (a hint kept
    /// up to date by enqueue, claim and requeue; recounted when missing).
    fn queue_lock(&self) -> io::Result<(File, u64)> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.root.join("queue.lock"))?;
        f.lock()?;
        let mut text = String::new();
        io::Read::read_to_string(&mut f, &mut text)?;
        let count = match text.trim().parse() {
            Ok(n) => n,
            Err(_) => self.queued() as u64,
        };
        Ok((f, count))
    }

    fn store_count(f: &mut File, count: u64) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        write!(f, "{count}")
    }

    fn adjust_queued(&self, delta: i64) -> io::Result<()> {
        let (mut f, count) = self.queue_lock()?;
        Self::store_count(&mut f, count.saturating_add_signed(delta))
    }

    /// Tries to take a free `parallelprocesses` slot without waiting.
    pub fn try_slot(&self) -> io::Result<Option<Slot>> {
        if self.slots == u32::MAX {
            return Ok(Some(Slot {
                _file: None,
                index: u32::MAX,
            }));
        }
        let start = (std::process::id().wrapping_mul(2_654_435_761)) % self.slots.max(1);
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            if let Some(f) = try_lock(&self.dir("slots").join(format!("{i}.lock")))? {
                return Ok(Some(Slot {
                    _file: Some(f),
                    index: i,
                }));
            }
        }
        Ok(None)
    }

    /// Waits (polling with back-off) for a free slot until `deadline`.
    pub fn wait_slot(&self, deadline: Instant) -> io::Result<Option<Slot>> {
        let mut pause = Duration::from_micros(200);
        loop {
            if let Some(s) = self.try_slot()? {
                return Ok(Some(s));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn queue_files(&self) -> io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir("queue"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.ends_with(".json") && !n.starts_with('.')
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// Claims the oldest queued job for this process: takes its lock, moves it to running/
    /// and records the owner. The caller must hold a slot.
    pub fn claim_next(&self, cursor: &mut QueueCursor) -> io::Result<Option<(JobSpec, JobLock)>> {
        let mut refilled = false;
        loop {
            let Some(path) = cursor.0.pop_front() else {
                if refilled {
                    return Ok(None);
                }
                cursor.0 = self.queue_files()?.into();
                refilled = true;
                continue;
            };
            if let Some(claimed) = self.claim(&path)? {
                return Ok(Some(claimed));
            }
        }
    }

    fn claim(&self, path: &Path) -> io::Result<Option<(JobSpec, JobLock)>> {
        let spec = match read_spec(path) {
            Ok(s) if valid_id(&s.id) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None), // claimed elsewhere
            Ok(_) | Err(_) => {
                // A damaged queue entry: keep it out of the way, never lose it silently.
                let _ = fs::rename(path, path.with_extension("bad"));
                return Ok(None);
            }
        };
        let lock_path = self.dir("running").join(format!("{}.lock", spec.id));
        let Some(file) = try_lock(&lock_path)? else {
            return Ok(None);
        };
        let running = self.dir("running").join(format!("{}.json", spec.id));
        match fs::rename(path, &running) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        self.adjust_queued(-1)?;
        let mut spec = spec;
        spec.owner = std::process::id();
        spec.attempts += 1;
        self.write_running(&spec)?;
        Ok(Some((
            spec,
            JobLock {
                file,
                path: lock_path,
            },
        )))
    }

    fn write_running(&self, spec: &JobSpec) -> io::Result<()> {
        let data = serde_json::to_vec(spec).expect("a job spec serialises");
        write_atomic(
            &self.dir("running"),
            &format!("{}.json", spec.id),
            &data,
            false,
        )
    }

    /// Records that a job reached its final state (its status document is written).
    pub fn finish(&self, spec: &JobSpec, lock: JobLock) -> io::Result<()> {
        let running = self.dir("running").join(format!("{}.json", spec.id));
        let r = fs::rename(&running, self.dir("done").join(format!("{}.json", spec.id)));
        let _ = fs::remove_file(&lock.path);
        drop(lock.file);
        r
    }

    /// Finds jobs whose owner is gone (their lock is free). Each is passed to `decide` while
    /// this process holds its lock: `true` re-queues it at its old place, `false` leaves it to
    /// the caller, who must then write its final status and call `finish`.
    pub fn take_orphans(&self) -> io::Result<Vec<(JobSpec, JobLock)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.dir("running"))?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            let lock_path = self.dir("running").join(format!("{id}.lock"));
            let Some(file) = try_lock(&lock_path)? else {
                continue; // its owner is alive
            };
            // Re-check under the lock: the owner may have finished meanwhile.
            match read_spec(&e.path()) {
                Ok(spec) => out.push((
                    spec,
                    JobLock {
                        file,
                        path: lock_path,
                    },
                )),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    // finished meanwhile: our open re-created its lock file; remove it again
                    let _ = fs::remove_file(&lock_path);
                    drop(file);
                }
                Err(_) => {
                    let _ = fs::rename(e.path(), e.path().with_extension("bad"));
                    let _ = fs::remove_file(&lock_path);
                }
            }
        }
        Ok(out)
    }

    /// Puts an orphaned job back in the queue at its original place.
    pub fn requeue(&self, mut spec: JobSpec, lock: JobLock) -> io::Result<()> {
        spec.owner = 0;
        let data = serde_json::to_vec(&spec).expect("a job spec serialises");
        write_atomic(
            &self.dir("queue"),
            &format!("{}.json", spec.key),
            &data,
            true,
        )?;
        let _ = fs::remove_file(self.dir("running").join(format!("{}.json", spec.id)));
        let _ = fs::remove_file(&lock.path);
        drop(lock.file);
        Ok(())
    }

    /// The jobs currently running (claimed and locked by a live owner or not yet scanned).
    pub fn running(&self) -> Vec<JobSpec> {
        fs::read_dir(self.dir("running"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .filter_map(|e| read_spec(&e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn status_path(&self, id: &str) -> PathBuf {
        self.outputs.join(format!("{id}.xml"))
    }

    /// Writes a job's status document atomically.
    pub fn write_status(&self, id: &str, xml: &str) -> io::Result<()> {
        write_atomic(&self.outputs, &format!("{id}.xml"), xml.as_bytes(), false)
    }

    /// Stores an output file of a job; returns its file name relative to outputpath.
    pub fn write_output(&self, id: &str, name: &str, data: &[u8]) -> io::Result<String> {
        let dir = self.outputs.join(id);
        fs::create_dir_all(&dir)?;
        write_atomic(&dir, name, data, false)?;
        Ok(format!("{id}/{name}"))
    }

    /// Removes finished jobs (and their status documents and outputs) older than `age`.
    /// Outputs of synchronous requests (no job record) expire the same way; queued and
    /// running jobs are never touched.
    pub fn remove_older_than(&self, age: Duration) -> io::Result<usize> {
        let cutoff = SystemTime::now() - age;
        let old = |e: &fs::DirEntry| {
            e.metadata()
                .and_then(|m| m.modified())
                .map(|t| t < cutoff)
                .unwrap_or(false)
        };
        let mut n = 0;
        for e in fs::read_dir(self.dir("done"))?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            match name.strip_suffix(".json") {
                Some(id) if valid_id(id) && old(&e) => {
                    let _ = fs::remove_file(self.status_path(id));
                    let _ = fs::remove_dir_all(self.outputs.join(id));
                    fs::remove_file(e.path())?;
                    n += 1;
                }
                _ => {}
            }
        }
        let mut active: std::collections::HashSet<String> =
            self.running().into_iter().map(|s| s.id).collect();
        for q in self.queue_files()? {
            if let Ok(s) = read_spec(&q) {
                active.insert(s.id);
            }
        }
        for e in fs::read_dir(&self.outputs)?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".xml").unwrap_or(&name);
            let finished = self.dir("done").join(format!("{id}.json")).exists();
            if valid_id(id) && !active.contains(id) && !finished && old(&e) {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::wps1::request::ResponseDocument;

    fn store(slots: u32, max: u32) -> (JobStore, PathBuf) {
        let d = std::env::temp_dir().join(format!("mod_wps-store-{}", uuid::Uuid::new_v4()));
        let s = JobStore::new(d.join("work"), d.join("out"), slots, max);
        s.prepare(None).unwrap();
        (s, d)
    }

    fn spec(n: u32) -> JobSpec {
        let id = uuid::Uuid::new_v4().to_string();
        JobSpec {
            key: format!("{n:024}-{id}"),
            id,
            process: "sleep".into(),
            inputs: vec![],
            response: ResponseDocument::default(),
            lang: "en-US".into(),
            service_instance: "http://h/wps?service=WPS&request=GetCapabilities".into(),
            output_url: "http://h/wps/outputs/".into(),
            submitted: 0,
            attempts: 0,
            owner: 0,
        }
    }

    #[test]
    fn fifo_claim_finish_and_queue_limit() {
        let (s, d) = store(2, 2);
        let (a, b, c) = (spec(2), spec(1), spec(3));
        s.enqueue(&a).unwrap();
        s.enqueue(&b).unwrap();
        assert!(matches!(s.enqueue(&c), Err(EnqueueError::Full(2))));
        let (first, lock) = s.claim_next(&mut QueueCursor::default()).unwrap().unwrap();
        assert_eq!(first.id, b.id, "oldest key first");
        assert_eq!(first.owner, std::process::id());
        assert_eq!(first.attempts, 1);
        assert_eq!(s.running().len(), 1);
        // our own lock is held: not an orphan
        assert!(s.take_orphans().unwrap().is_empty());
        s.finish(&first, lock).unwrap();
        assert!(s.running().is_empty());
        assert!(d.join("work/done").join(format!("{}.json", b.id)).exists());
        let (second, _l) = s.claim_next(&mut QueueCursor::default()).unwrap().unwrap();
        assert_eq!(second.id, a.id);
        assert!(s.claim_next(&mut QueueCursor::default()).unwrap().is_none());
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn a_cursor_skips_jobs_claimed_elsewhere_and_sees_new_ones() {
        let (s, d) = store(4, 10);
        let (a, b) = (spec(1), spec(2));
        s.enqueue(&a).unwrap();
        s.enqueue(&b).unwrap();
        let mut mine = QueueCursor::default();
        let mut other = QueueCursor::default();
        let (first, _l1) = s.claim_next(&mut mine).unwrap().unwrap();
        assert_eq!(first.id, a.id);
        // another child takes b, which my cursor still lists
        let (second, _l2) = s.claim_next(&mut other).unwrap().unwrap();
        assert_eq!(second.id, b.id);
        assert!(s.claim_next(&mut mine).unwrap().is_none());
        let c = spec(3);
        s.enqueue(&c).unwrap();
        assert_eq!(s.claim_next(&mut mine).unwrap().unwrap().0.id, c.id);
        // the queue-length hint followed all of it
        assert_eq!(s.queue_lock().unwrap().1, 0);
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn slots_are_exclusive_and_released_on_drop() {
        let (s, d) = store(2, 10);
        let a = s.try_slot().unwrap().unwrap();
        let b = s.try_slot().unwrap().unwrap();
        assert_ne!(a.index, b.index);
        assert!(s.try_slot().unwrap().is_none());
        let t = Instant::now();
        assert!(s
            .wait_slot(Instant::now() + Duration::from_millis(50))
            .unwrap()
            .is_none());
        assert!(t.elapsed() >= Duration::from_millis(50));
        drop(a);
        assert!(s.try_slot().unwrap().is_some());
        let unlimited = JobStore::new(d.join("u"), d.join("uo"), u32::MAX, 1);
        assert!(unlimited.try_slot().unwrap().is_some());
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn orphans_are_found_and_requeued_in_place() {
        let (s, d) = store(1, 10);
        let a = spec(5);
        s.enqueue(&a).unwrap();
        let (claimed, lock) = s.claim_next(&mut QueueCursor::default()).unwrap().unwrap();
        // the owner "dies": its lock file description is closed without finishing
        drop(lock);
        let orphans = s.take_orphans().unwrap();
        assert_eq!(orphans.len(), 1);
        let (o, l) = orphans.into_iter().next().unwrap();
        assert_eq!(o.id, claimed.id);
        s.requeue(o, l).unwrap();
        assert!(s.running().is_empty());
        let later = spec(9);
        s.enqueue(&later).unwrap();
        let (again, _l) = s.claim_next(&mut QueueCursor::default()).unwrap().unwrap();
        assert_eq!(again.id, a.id, "a re-queued job keeps its place");
        assert_eq!(again.attempts, 2);
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn status_and_outputs_are_written_atomically_and_expire() {
        let (s, d) = store(1, 10);
        let a = spec(1);
        s.write_status(&a.id, "<x/>").unwrap();
        assert_eq!(fs::read_to_string(s.status_path(&a.id)).unwrap(), "<x/>");
        let rel = s.write_output(&a.id, "out.json", b"{}").unwrap();
        assert_eq!(rel, format!("{}/out.json", a.id));
        // no temporary files are left behind
        let names: Vec<_> = fs::read_dir(s.outputs())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        s.enqueue(&a).unwrap();
        let (j, l) = s.claim_next(&mut QueueCursor::default()).unwrap().unwrap();
        s.finish(&j, l).unwrap();
        // a job still waiting in the queue keeps its status document, however old
        let waiting = spec(7);
        s.write_status(&waiting.id, "<accepted/>").unwrap();
        s.enqueue(&waiting).unwrap();
        // a synchronous request's stored output (no job record) expires too
        let sync_id = uuid::Uuid::new_v4().to_string();
        s.write_output(&sync_id, "o.txt", b"x").unwrap();
        assert_eq!(s.remove_older_than(Duration::from_secs(3600)).unwrap(), 0);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(s.remove_older_than(Duration::from_millis(10)).unwrap(), 1);
        assert!(!s.status_path(&a.id).exists());
        assert!(!s.outputs().join(&a.id).exists());
        assert!(s.status_path(&waiting.id).exists());
        assert!(!s.outputs().join(&sync_id).exists());
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn ids_must_be_canonical_uuids() {
        assert!(valid_id("0b6a4f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert!(!valid_id("../etc/passwd"));
        assert!(!valid_id("0B6A4F7E-1C2D-4E5F-8A9B-0C1D2E3F4A5B"));
        assert!(!valid_id("0b6a4f7e1c2d4e5f8a9b0c1d2e3f4a5b"));
        assert!(!valid_id(""));
    }
}
