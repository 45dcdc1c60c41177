//! The line of the children's waiting requests for a slot (`WaitingLine`): a file per child
//! in `waiting/`, named after when its longest-waiting request came and who it is
//! (`<since, 20 digits>-<pid>-<n>`), held under an flock while the child waits. A file no one
//! holds is left over from a child that died: it is passed over and removed.
//!
//! A slot given back is told to every process at once: its holder closes `slots/freed`,
//! opened for writing, after its lock file (`SlotFile`), and a waiting request watches that
//! file with inotify (`IN_CLOSE_WRITE`; taking a slot or failing to writes nothing to it), on
//! an instance its process keeps for the next one (`Spares`).

use super::fs_util::{try_lock, try_lock_existing};
use crate::jobs::{monotonic_ns, FreedWatch, StoreResult, WaitingLine};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A held slot's lock file; given back when dropped, and then told (see above).
pub(super) struct SlotFile {
    file: Option<File>,
    freed: PathBuf,
}

impl Drop for SlotFile {
    fn drop(&mut self) {
        drop(self.file.take());
        // closing it for writing is the news (a missing file: waiting requests look anyway)
        let _ = OpenOptions::new().write(true).open(&self.freed);
    }
}

/// The inotify instances of this process not in use, and the process they belong to (the
/// store is made before Apache forks). A first in line takes one and gives it back when it
/// leaves: closing an instance waits for the kernel to free its marks, 0.06 ms on an idle
/// machine but 5-15 ms here while both cores ran jobs, and the first in line that closed its
/// own on leaving held up the next one for that long (one child with two slots ran 66
/// feature_count requests a second instead of 114).
#[derive(Debug, Default)]
struct Spares {
    pid: u32,
    free: Vec<Inotify>,
}

/// Waits for `slots/freed` to be closed for writing.
struct InotifyWatch {
    inotify: Option<Inotify>,
    spares: Arc<Mutex<Spares>>,
}

/// Takes in the news so far: the next wait waits for newer ones.
fn drain(inotify: &Inotify) {
    while let Ok(events) = inotify.read_events() {
        if events.is_empty() {
            break;
        }
    }
}

impl FreedWatch for InotifyWatch {
    fn wait(&self, timeout: Duration) -> StoreResult<()> {
        let Some(inotify) = &self.inotify else {
            return Ok(());
        };
        let ms = timeout.as_millis().clamp(1, 60_000) as u16;
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io::Error::from(e).into()),
        }
        drain(inotify);
        Ok(())
    }
}

impl Drop for InotifyWatch {
    fn drop(&mut self) {
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inotify) = self
            .inotify
            .take()
            .filter(|_| spares.pid == std::process::id())
        {
            spares.free.push(inotify);
        }
    }
}

/// How long a file of the line is taken for one of a live child without checking its lock,
/// in nanoseconds.
const LEFT_OVER: u64 = 1_000_000_000;

/// Tells the stores of one process apart (tests open several on one directory).
static STORES: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub(super) struct Waiting {
    dir: PathBuf,
    /// `slots/freed`.
    freed: PathBuf,
    /// This store's number in its process (the process's id is read when used: the store is
    /// made before Apache forks its children).
    n: u32,
    /// This process's file (its path and the handle that holds its flock), while it publishes.
    entry: Mutex<Option<(PathBuf, File)>>,
    spares: Arc<Mutex<Spares>>,
}

impl Waiting {
    pub(super) fn new(dir: PathBuf, freed: PathBuf) -> Waiting {
        let n = STORES.fetch_add(1, Ordering::Relaxed);
        Waiting {
            dir,
            freed,
            n,
            entry: Mutex::new(None),
            spares: Arc::default(),
        }
    }

    /// Makes `slots/freed` (at start-up, with the store's other files), owned by the
    /// children's user.
    pub(super) fn prepare(&self, owner: Option<(u32, u32)>) -> io::Result<()> {
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", self.freed.display()));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.freed)
            .map_err(named)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&self.freed, Some(uid), Some(gid)).map_err(named)?;
        }
        Ok(())
    }

    /// A slot's lock file, held: giving it back is told.
    pub(super) fn told(&self, file: File) -> SlotFile {
        SlotFile {
            file: Some(file),
            freed: self.freed.clone(),
        }
    }

    /// `<pid>-<n>`: who this store is, in its file's name.
    fn me(&self) -> String {
        format!("{}-{}", std::process::id(), self.n)
    }

    fn path(&self, since: u64) -> PathBuf {
        self.dir.join(format!("{since:020}-{}", self.me()))
    }
}

/// The time and the owner of a file of the line (`None`: not one).
fn parse(name: &str) -> Option<(u64, &str)> {
    let (since, who) = name.split_once('-')?;
    Some((since.parse().ok()?, who))
}

impl WaitingLine for Waiting {
    fn publish(&self, since: Option<u64>) -> StoreResult<()> {
        let mut entry = self.entry.lock().unwrap_or_else(|e| e.into_inner());
        match (since, entry.take()) {
            (None, None) => {}
            // removed before its lock is let go: no one takes it for a dead child's
            (None, Some((path, _file))) => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            },
            (Some(since), Some((path, file))) => {
                let new = self.path(since);
                if new != path {
                    if let Err(e) = fs::rename(&path, &new) {
                        let _ = fs::remove_file(&path);
                        return Err(e.into());
                    }
                }
                *entry = Some((new, file));
            }
            (Some(since), None) => {
                let path = self.path(since);
                match try_lock(&path)? {
                    Some(file) => *entry = Some((path, file)),
                    None => {
                        return Err(io::Error::other(format!("{} is held", path.display())).into())
                    }
                }
            }
        }
        Ok(())
    }

    fn someone_before(&self, since: u64) -> StoreResult<bool> {
        let me = self.me();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name();
            let Some((when, who)) = name.to_str().and_then(parse) else {
                continue;
            };
            if when >= since || who == me {
                continue;
            }
            // a file is renamed whenever its child's first in line changes: only one that is
            // older than `LEFT_OVER` may be left over, and only such a one is checked
            if monotonic_ns().saturating_sub(when) < LEFT_OVER {
                return Ok(true);
            }
            match try_lock_existing(&e.path())? {
                // no one holds it: its child is gone
                Some(_left_over) => {
                    let _ = fs::remove_file(e.path());
                }
                None => return Ok(true),
            }
        }
        Ok(false)
    }

    fn freed_watch(&self) -> StoreResult<Option<Box<dyn FreedWatch>>> {
        let pid = std::process::id();
        let spare = {
            let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
            if spares.pid != pid {
                // another process's (the parent's, were there any): not this one's to use
                spares.pid = pid;
                spares.free.clear();
            }
            spares.free.pop()
        };
        let inotify = match spare {
            Some(inotify) => inotify,
            None => {
                // without a watch (e.g. the user's inotify instances are all in use, or the
                // file is missing) the request looks again after a pause
                let Ok(inotify) = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
                else {
                    return Ok(None);
                };
                if inotify
                    .add_watch(&self.freed, AddWatchFlags::IN_CLOSE_WRITE)
                    .is_err()
                {
                    return Ok(None);
                }
                inotify
            }
        };
        // news from before are of no use: the caller looks next
        drain(&inotify);
        Ok(Some(Box::new(InotifyWatch {
            inotify: Some(inotify),
            spares: self.spares.clone(),
        })))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = self.publish(None);
    }
}
