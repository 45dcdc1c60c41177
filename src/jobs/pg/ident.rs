//! Who holds a claim or a slot: `host:pid` for people, and for this machine a namespace key
//! (kernel boot id and pid namespace) with the process's start time, so that a process on the
//! same machine can tell at once that a holder died (its claims and slots are then free without
//! waiting for the lease, as the file store's flocks are).

use std::fs;

/// The identity of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// `host:pid`.
    pub name: String,
    /// Boot id and pid namespace: processes with the same key see each other in `/proc`.
    pub ns: String,
    pub pid: i32,
    /// Start time (clock ticks since boot), which tells a reused pid from the holder.
    pub start: i64,
}

fn stat_fields(pid: i32) -> Option<(char, i64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces and parentheses: fields start after the last ')'
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19]
    let state = f.first()?.chars().next()?;
    let start = f.get(19)?.parse().ok()?;
    Some((state, start))
}

impl Ident {
    /// This process.
    pub fn me() -> Ident {
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let pidns = fs::read_link("/proc/self/ns/pid")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let pid = std::process::id() as i32;
        Ident {
            name: crate::jobs::host_pid(),
            ns: format!("{}/{pidns}", boot.trim()),
            pid,
            start: stat_fields(pid).map(|(_, s)| s).unwrap_or(0),
        }
    }
}

/// Whether the process `pid` that started at `start` is gone (a zombie counts as gone). Only
/// meaningful for a holder with this process's namespace key.
pub fn is_gone(pid: i32, start: i64) -> bool {
    match stat_fields(pid) {
        None => true,
        Some((state, s)) => s != start || state == 'Z' || state == 'X',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_lives_and_a_finished_one_is_gone() {
        let me = Ident::me();
        assert!(me.start > 0 && me.ns.contains("pid:["), "{me:?}");
        assert!(!is_gone(me.pid, me.start));
        assert!(
            is_gone(me.pid, me.start + 1),
            "another start time: a reused pid"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(is_gone(pid, 0));
    }
}
