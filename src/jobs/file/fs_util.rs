//! File helpers of the file store: atomic writes, flocks that notice an unlinked file, and
//! directory listings.

use super::super::valid_id;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub(super) fn write_atomic(dir: &Path, name: &str, data: &[u8], sync: bool) -> io::Result<()> {
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
pub(super) fn try_lock(path: &Path) -> io::Result<Option<File>> {
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

pub(super) fn json_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)?
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

/// The job id of a queue entry `<key>.json` (key = 24 digits, '-', id).
pub(super) fn id_of_entry(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.strip_suffix(".json")?;
    let id = name.get(25..)?;
    valid_id(id).then(|| id.to_owned())
}

pub(super) fn host_pid() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}
