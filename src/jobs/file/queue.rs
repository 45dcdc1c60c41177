//! The queue lock of the file store (`queue.lock`, which serialises enqueue) and the queue
//! length it records.

use super::fs_util::json_files;
use super::FileStore;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};

impl FileStore {
    /// Number of jobs waiting in the queue.
    pub fn queued(&self) -> usize {
        json_files(&self.dir("queue")).map(|v| v.len()).unwrap_or(0)
    }

    /// Takes the queue lock; returns it with the queue length recorded in it (a hint kept
    /// up to date by enqueue, claim and requeue; recounted when missing).
    pub(super) fn queue_lock(&self) -> io::Result<(File, u64)> {
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

    pub(super) fn store_count(f: &mut File, count: u64) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        write!(f, "{count}")
    }

    pub(super) fn adjust_queued(&self, delta: i64) -> io::Result<()> {
        let (mut f, count) = self.queue_lock()?;
        Self::store_count(&mut f, count.saturating_add_signed(delta))
    }
}
