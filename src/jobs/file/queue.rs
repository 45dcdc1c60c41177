//! The queue lock of the file store (`queue.lock`, which serialises enqueue) and the queue
//! length it records.
//!
//! Each process keeps `queue.lock` open and takes the lock with its own mutex first, then
//! the flock (threads of one process would share the flock of one open file): taking and
//! updating it is four system calls (flock, pread, pwrite, flock) instead of ten with an
//! open, a read to the end, a truncation and a close each time; the waiting threads of a
//! process sleep on the mutex, so a release wakes one of them, not all. The count is written
//! as 20 characters, padded with spaces, which earlier versions (reading the trimmed text)
//! understand, as this one understands theirs.

use super::fs_util::json_files;
use super::FileStore;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, MutexGuard};

/// Width of the count in `queue.lock` (`u64::MAX` has 20 digits).
const WIDTH: usize = 20;

/// This process's `queue.lock`, opened by the process it belongs to (a child does not use
/// its parent's: the flock would be shared with it).
#[derive(Debug, Default)]
pub(super) struct QueueFile(Mutex<Option<(u32, File)>>);

/// The queue lock, held until dropped, and the queue length recorded in it.
pub(super) struct QueueLock<'a> {
    file: MutexGuard<'a, Option<(u32, File)>>,
    pub count: u64,
}

impl QueueLock<'_> {
    fn file(&self) -> &File {
        &self.file.as_ref().expect("an open queue.lock").1
    }

    /// Records `count` as the queue length.
    pub fn store(&mut self, count: u64) -> io::Result<()> {
        self.file()
            .write_all_at(format!("{count:<WIDTH$}").as_bytes(), 0)?;
        self.count = count;
        Ok(())
    }
}

impl Drop for QueueLock<'_> {
    fn drop(&mut self) {
        let _ = self.file().unlock();
    }
}

impl FileStore {
    /// Number of jobs waiting in the queue.
    pub fn queued(&self) -> usize {
        json_files(&self.dir("queue")).map(|v| v.len()).unwrap_or(0)
    }

    /// Takes the queue lock, with the queue length recorded in it (a hint kept up to date by
    /// enqueue, claim and requeue; recounted when missing).
    pub(super) fn queue_lock(&self) -> io::Result<QueueLock<'_>> {
        let mut file = self.queue_file.0.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if file.as_ref().is_none_or(|(owner, _)| *owner != pid) {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.root.join("queue.lock"))?;
            *file = Some((pid, f));
        }
        let mut lock = QueueLock { file, count: 0 };
        lock.file().lock()?;
        let mut buf = [0u8; 64];
        let mut len = 0;
        while len < buf.len() {
            match lock.file().read_at(&mut buf[len..], len as u64)? {
                0 => break,
                n => len += n,
            }
        }
        let text = std::str::from_utf8(&buf[..len]).unwrap_or("");
        match text.trim().parse() {
            Ok(n) if len <= WIDTH => lock.count = n,
            // missing, damaged or longer than written here: recount and rewrite
            _ => {
                lock.file().set_len(0)?;
                lock.store(self.queued() as u64)?;
            }
        }
        Ok(lock)
    }

    pub(super) fn adjust_queued(&self, delta: i64) -> io::Result<()> {
        let mut lock = self.queue_lock()?;
        lock.store(lock.count.saturating_add_signed(delta))
    }
}
