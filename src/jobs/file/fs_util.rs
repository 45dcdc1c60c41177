//! File helpers of the file store: atomic writes (a temporary file renamed into place, or a
//! rewrite through a spare file exchanged with the original), reads that never see a rewrite
//! half-done, flocks that notice an unlinked file, and directory listings.

use super::super::valid_id;
use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Creates `path` with `data` (it must not exist), synced with `sync`. Only for a file no
/// reader can find before it is complete; a failed write removes it.
pub(super) fn create_new(path: &Path, data: &[u8], sync: bool) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(data)
        .and_then(|()| if sync { f.sync_all() } else { Ok(()) })
        .inspect_err(|_| {
            let _ = fs::remove_file(path);
        })
}

/// Replaces the content of `path` through `spare`, a file kept beside it, and returns whether
/// it did (false: `path` is gone — a removed file is not brought back — and so is the spare).
///
/// The new content is written into the spare, under an exclusive flock (see [`read_shared`])
/// and synced with `sync`, then the two names are swapped with `renameat2(RENAME_EXCHANGE)`:
/// the old content's inode is the next spare, so a rewrite allocates and frees no inode (on
/// ext4 without a journal, every inode freed in the last minute makes each new file of its
/// block group cost more). The spare is truncated before it is written and closed before the
/// exchange, so ext4 starts writing its blocks out then (`auto_da_alloc`), as it does for a
/// file renamed over another. Where the file system cannot exchange (EINVAL, ENOSYS,
/// EOPNOTSUPP; `exchange` is then cleared for good), the spare is renamed over `path` as a
/// temporary file would be. Writers of one `path` must be serialised by the caller.
pub(super) fn rewrite(
    path: &Path,
    spare: &Path,
    data: &[u8],
    sync: bool,
    exchange: &AtomicBool,
) -> io::Result<bool> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(spare)
    };
    let mut f = match open() {
        // a spare left by a writer running as another user: make one of ours
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::remove_file(spare)?;
            open()?
        }
        r => r?,
    };
    f.lock()?;
    f.set_len(0)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    drop(f);
    let gone = || {
        let _ = fs::remove_file(spare);
        Ok(false)
    };
    if exchange.load(Ordering::Relaxed) {
        match renameat2(None, spare, None, path, RenameFlags::RENAME_EXCHANGE) {
            Ok(()) => return Ok(true),
            Err(Errno::ENOENT) => return gone(),
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                exchange.store(false, Ordering::Relaxed)
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !path.exists() {
        return gone();
    }
    fs::rename(spare, path)?;
    Ok(true)
}

/// Empties the spare `spare` (its blocks are freed, its inode kept), under an exclusive flock,
/// when the file it stands beside will not be rewritten again.
pub(super) fn empty_spare(spare: &Path) -> io::Result<()> {
    let f = match OpenOptions::new().write(true).open(spare) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    f.lock()?;
    f.set_len(0)
}

/// Reads a file under a shared flock: a spare is rewritten in place under an exclusive one
/// (see [`rewrite`]), and a reader that opened it while it was still the record waits for
/// the rewrite to end instead of reading it half-done. An empty file is read once more by
/// its name: the reader had opened a spare emptied since ([`empty_spare`]).
pub(super) fn read_shared(path: &Path) -> io::Result<Vec<u8>> {
    let read = || {
        let mut f = File::open(path)?;
        f.lock_shared()?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(data)
    };
    match read() {
        Ok(data) if data.is_empty() => read(),
        r => r,
    }
}

/// Takes an exclusive flock on the lock file `path` (created if missing) without waiting.
pub(super) fn try_lock(path: &Path) -> io::Result<Option<File>> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    lock_if_same(f, path)
}

/// Takes an exclusive flock on the existing file `path` without waiting: `None` when someone
/// holds it or it is gone. A queue entry is removed when its job ends, so a lock taken on a
/// file that was unlinked (or replaced) meanwhile is worthless: it is dropped and reported as
/// not obtained.
pub(super) fn try_lock_existing(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => lock_if_same(f, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Locks `f`, opened as `path`, if no one else holds it and `path` still names it.
fn lock_if_same(f: File, path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
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
