//! The layout version of the file store (`store-version`), and what happens to a store of the
//! previous layout.

use super::fs_util::{json_files, write_atomic};
use super::FileStore;
use crate::jobs::unix_now;
use std::fs;
use std::io;

/// The layout version this code writes.
const LAYOUT: &str = "2";

impl FileStore {
    /// Moves the queue, running and done directories of the previous layout (version 1,
    /// whose jobs carried a rendered WPS 1.0.0 document) out of the way.
    pub(super) fn retire_old_layout(&self) -> io::Result<Vec<String>> {
        let version = self.root.join("store-version");
        if fs::read_to_string(&version).is_ok_and(|v| v.trim() == LAYOUT) {
            return Ok(Vec::new());
        }
        let mut notes = Vec::new();
        let old: Vec<&str> = ["queue", "running", "done"]
            .into_iter()
            .filter(|d| self.dir(d).is_dir())
            .collect();
        if !old.is_empty() {
            let count = |d: &str| json_files(&self.dir(d)).map(|v| v.len()).unwrap_or(0);
            let (q, r, d) = (count("queue"), count("running"), count("done"));
            let aside = self.dir(&format!("layout-1-{}", unix_now()));
            fs::create_dir_all(&aside)?;
            for d in old {
                fs::rename(self.dir(d), aside.join(d))?;
            }
            notes.push(format!(
                "job store {}: the previous layout (version 1) is not migrated: {q} queued and {r} running job(s) were not re-queued and {d} finished job record(s) were set aside in {}; the status documents of finished jobs stay readable at their statusLocation until retention removes them",
                self.root.display(),
                aside.display()
            ));
        }
        write_atomic(&self.root, "store-version", LAYOUT.as_bytes(), true)?;
        Ok(notes)
    }
}
