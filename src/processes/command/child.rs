//! The command's child: the supervisor that runs it (a subreaper that kills every
//! descendant at the end), finding it next to the module, and stopping and reaping it.

use super::{STOP_GRACE, SUPERVISOR};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The file the code of this module was loaded from (from /proc/self/maps: the mapping that
/// holds this function): `mod_wps.so` in Apache, the test executable in unit tests.
pub(super) fn module_file() -> Option<PathBuf> {
    let here = module_file as fn() -> Option<PathBuf> as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        if !(lo..hi).contains(&here) {
            return None;
        }
        // perms offset dev inode path (the path may contain spaces)
        let path = rest.splitn(5, ' ').nth(4)?.trim_start();
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        path.starts_with('/').then(|| PathBuf::from(path))
    })
}

/// The supervisor `mod_wps-supervise`: next to the module file, or (cargo's layout, the
/// module or test binary in `target/<profile>/deps/`) in the directory above.
pub fn find_supervisor() -> Result<PathBuf, String> {
    find_helper(SUPERVISOR, "the command supervisor")
}

/// A helper program installed next to the module (`mod_wps-supervise`, `mod_wps-worker`),
/// found as the supervisor is; `what` says what it is for in the error.
pub fn find_helper(name: &str, what: &str) -> Result<PathBuf, String> {
    let module = module_file().ok_or("cannot tell where the module was loaded from")?;
    helper_near(&module, name, what)
}

/// The supervisor next to the module file `module`.
#[cfg(test)]
pub(super) fn supervisor_near(module: &Path) -> Result<PathBuf, String> {
    helper_near(module, SUPERVISOR, "the command supervisor")
}

/// Helper program `name` next to the module file `module`.
fn helper_near(module: &Path, name: &str, what: &str) -> Result<PathBuf, String> {
    let dir = module.parent().unwrap_or(Path::new("/"));
    let mut candidates = vec![dir.join(name)];
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent() {
            candidates.push(up.join(name));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let usable = |p: &PathBuf| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    candidates.iter().find(|p| usable(p)).cloned().ok_or_else(|| {
        let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        format!(
            "{what} {name} is not installed (looked for {}; .ci/install puts it next to the module)",
            list.join(" and ")
        )
    })
}

/// SIGKILL to the process group `pgid` (the child leads its own group, so that is its pid).
/// Only called while the group leader is not yet reaped, so the id cannot have been reused.
pub(super) fn kill_group(pgid: u32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // ESRCH (the group is already gone) is fine.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// The state letter of a process from /proc (`Z` for an exited, unreaped child).
pub(super) fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Reaps the child once it has exited, after killing what is left of its process group
/// (while the leader is a zombie, its pid, and so the group id, cannot be reused).
pub(super) fn reap_if_exited(
    child: &mut Child,
    have_proc: bool,
) -> std::io::Result<Option<ExitStatus>> {
    if !have_proc {
        return child.try_wait();
    }
    match proc_state(child.id()) {
        Some('Z') | None => {
            kill_group(child.id());
            child.wait().map(Some)
        }
        Some(_) => Ok(None),
    }
}

/// Stops the supervisor while it runs, and reaps it: SIGTERM, on which it kills every process
/// below it and exits; should it not exit within `STOP_GRACE`, SIGKILL to its process group.
pub(super) fn stop(child: &mut Child, have_proc: bool) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        // not reaped yet, so the pid is still the supervisor's
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let end = Instant::now() + STOP_GRACE;
    while Instant::now() < end {
        match reap_if_exited(child, have_proc) {
            Ok(Some(_)) => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break,
        }
    }
    kill_group(child.id());
    let _ = child.wait();
}
