//! `mod_wps-supervise --parent=PID PROGRAM [ARG...]`: runs one command of a command-line
//! process (`[process:ID]`) so that nothing it starts outlives it.
//!
//! mod_wps starts this program (installed next to the module) instead of the command itself.
//! It makes itself a *child subreaper* (`PR_SET_CHILD_SUBREAPER`), so every process the command
//! starts that loses its parent — a daemon that forked, called `setsid` and forked again
//! included — becomes its child instead of init's. It then runs `PROGRAM` with the arguments,
//! environment, directory and stdio it was given (no shell), and:
//!
//! - when `PROGRAM` exits, it SIGKILLs every process left below it, reaps them all and exits
//!   with `PROGRAM`'s status (a signal is raised again on itself);
//! - on SIGTERM, SIGINT, SIGHUP or SIGQUIT (mod_wps sends SIGTERM at a time limit, on
//!   cancellation and when stdout grows past its limit) it does the same and then dies of that
//!   signal;
//! - when its parent (the thread of the Apache child that runs the job) goes away, the kernel
//!   sends it SIGTERM (`PR_SET_PDEATHSIG`), which is handled the same way.
//!
//! The command starts with an empty signal mask (whatever the Apache thread had blocked).
//! Processes below it are found in /proc (their parent chain leads to it) and killed until it
//! has no child left. Exit status 127 means `PROGRAM` could not be started (the reason is on
//! stderr), 2 a usage error.
#![forbid(unsafe_code)]

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{kill, raise, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, getppid, Pid};
use std::collections::HashMap;
use std::process::{exit, Command};
use std::time::Duration;

const NAME: &str = "mod_wps-supervise";

fn die(code: i32, msg: &str) -> ! {
    eprintln!("{NAME}: {msg}");
    exit(code)
}

/// The pids of all processes below `root`, from the parent pids in /proc/*/stat.
fn descendants(root: Pid) -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue; // gone meanwhile
            };
            // "pid (comm) state ppid ...": comm may contain anything, so split after the last ')'
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root.as_raw()];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(Pid::from_raw(c));
            todo.push(c);
        }
    }
    out
}

/// Whether SIGCHLD is ignored (the `SigIgn` mask of /proc/self/status).
fn ignores_sigchld() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (Signal::SIGCHLD as i32 - 1)) != 0)
}

/// Reaps every child that has exited; returns false once there is no child at all. The status
/// of `main` is stored when it is reaped.
fn reap(main: Pid, status: &mut Option<WaitStatus>) -> bool {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(s) => {
                if s.pid() == Some(main) {
                    *status = Some(s);
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => return false,
            Err(e) => die(1, &format!("waitpid: {e}")),
        }
    }
}

/// SIGKILLs every process below this one and reaps them, until no child is left.
fn kill_all(main: Pid, status: &mut Option<WaitStatus>) {
    let me = getpid();
    loop {
        for p in descendants(me) {
            // ESRCH: gone meanwhile
            let _ = kill(p, Signal::SIGKILL);
        }
        if !reap(main, status) {
            return;
        }
        // the killed are not all reaped yet, or one forked before it died: look again
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `--exec PROGRAM [ARG...]`: the command's side. The signal mask is inherited through fork and
/// exec (std::process::Command does not reset it), and the supervisor blocks the signals it
/// waits for: the command gets an empty mask, then becomes PROGRAM.
fn exec(mut args: impl Iterator<Item = std::ffi::OsString>) -> ! {
    use std::os::unix::process::CommandExt;
    let Some(program) = args.next() else {
        die(2, "usage: mod_wps-supervise --exec PROGRAM [ARG...]")
    };
    if let Err(e) = SigSet::empty().thread_set_mask() {
        die(127, &format!("cannot reset the signal mask: {e}"));
    }
    let e = Command::new(&program).args(args).exec();
    die(
        127,
        &format!("cannot run {}: {e}", program.to_string_lossy()),
    )
}

fn main() {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "--exec") {
        args.next();
        exec(args);
    }
    let parent = args
        .next()
        .and_then(|a| a.to_str()?.strip_prefix("--parent=")?.parse::<i32>().ok())
        .unwrap_or_else(|| die(2, "usage: mod_wps-supervise --parent=PID PROGRAM [ARG...]"));
    let Some(program) = args.next() else {
        die(2, "usage: mod_wps-supervise --parent=PID PROGRAM [ARG...]")
    };
    // An ignored SIGCHLD (inherited through exec) would lose the command's status; it cannot be
    // reset without unsafe code, so it is refused (Apache does not ignore it).
    if ignores_sigchld() {
        die(1, "SIGCHLD is ignored by the parent; cannot supervise");
    }
    // Only this thread exists: the mask holds for the whole process until these are waited for
    // with sigwait (the command resets it, see `exec`).
    let mut handled = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        handled.add(s);
    }
    if let Err(e) = handled.thread_block() {
        die(1, &format!("cannot block signals: {e}"));
    }
    if let Err(e) = prctl::set_child_subreaper(true) {
        die(1, &format!("cannot become a child subreaper: {e}"));
    }
    if let Err(e) = prctl::set_pdeathsig(Signal::SIGTERM) {
        die(1, &format!("cannot set the parent-death signal: {e}"));
    }
    if getppid().as_raw() != parent {
        die(1, "the parent is gone");
    }
    let me =
        std::env::current_exe().unwrap_or_else(|e| die(1, &format!("cannot find myself: {e}")));
    let main = match Command::new(me)
        .arg("--exec")
        .arg(&program)
        .args(args)
        .spawn()
    {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => die(
            127,
            &format!("cannot run {}: {e}", program.to_string_lossy()),
        ),
    };
    let mut status = None;
    let mut received = None;
    loop {
        reap(main, &mut status);
        if status.is_some() {
            break;
        }
        match handled.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                received = Some(sig);
                break;
            }
        }
    }
    kill_all(main, &mut status);
    // exit as the command did (or of the termination signal received)
    let sig = match (received, status) {
        (Some(sig), _) | (None, Some(WaitStatus::Signaled(_, sig, _))) => sig,
        (None, Some(WaitStatus::Exited(_, code))) => exit(code),
        _ => exit(1),
    };
    // no core file of this process; a signal it ignores (SIGPIPE) ends it with 128 + signal
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let _ = SigSet::all().thread_unblock();
    let _ = raise(sig);
    exit(128 + sig as i32)
}
