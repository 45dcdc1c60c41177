//! `mod_wps-worker`: runs one job of a service on a Slurm node.
//!
//! Slurm runs it as the interpreter of the batch script mod_wps submitted (`#!…/mod_wps-worker`),
//! so its argument is the script, which names the service config, the job and its attempt
//! (`mod_wps-worker --config=FILE --job=ID --attempt=N` does the same by hand). It loads the same
//! service config as Apache, runs the process (built-in or command-line, never through a
//! shell), and writes progress, outputs and the end through the job store, with a detached
//! claim of that attempt: should the job have been taken over, dismissed or ended meanwhile,
//! its writes are refused. On SIGTERM (`scancel`, a Slurm time limit, preemption, a node going
//! down), SIGINT or SIGHUP it records the failure and exits at once.

use super::cli::{parse_script, WorkOrder};
use crate::config::service::ServiceConfig;
use crate::engine::{Outcome, Service};
use crate::exec::runner::{job_end, run_job};
use crate::jobs::{Claim, Finish, JobState};
use crate::model::{CancelToken, Context, LogLevel, WpsError};
use nix::sys::signal::{SigSet, Signal};
use std::ffi::OsString;
use std::sync::{mpsc, Arc};

const NAME: &str = "mod_wps-worker";

/// Exit status: the job ran (whatever its outcome, it is recorded).
pub const EXIT_DONE: i32 = 0;
/// Exit status: the job could not be read or recorded (the store failed).
pub const EXIT_STORE: i32 = 1;
/// Exit status: bad arguments, or the service config does not load.
pub const EXIT_USAGE: i32 = 2;

/// What the worker is to run, from its arguments: the batch script, or `--config= --job=
/// --attempt=`.
pub fn work_order(args: &[OsString]) -> Result<WorkOrder, String> {
    let usage = || format!("usage: {NAME} SCRIPT | {NAME} --config=FILE --job=ID --attempt=N");
    let strs: Vec<String> = args
        .iter()
        .map(|a| a.to_str().map(str::to_owned).ok_or_else(usage))
        .collect::<Result<_, _>>()?;
    if strs.iter().any(|a| a.starts_with("--")) {
        let mut text = String::new();
        for a in &strs {
            let kv = a
                .strip_prefix("--")
                .filter(|kv| kv.contains('='))
                .ok_or_else(usage)?;
            text.push_str(kv);
            text.push('\n');
        }
        return parse_script(&text).map_err(|m| format!("{m}; {}", usage()));
    }
    match strs.as_slice() {
        [script] => {
            let text = std::fs::read_to_string(script)
                .map_err(|e| format!("cannot read the batch script {script}: {e}"))?;
            parse_script(&text).map_err(|m| format!("{script}: {m}"))
        }
        _ => Err(usage()),
    }
}

enum Event {
    Signal(Signal),
    Done(Outcome),
}

/// Runs the worker with its arguments (without the program name); returns the exit status.
pub fn main(args: &[OsString]) -> i32 {
    // Before any thread exists: the signals are waited for by one thread (every thread started
    // later, and every program it runs, inherits the mask; the command supervisor resets it for
    // the command).
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("{NAME}: cannot block signals: {e}");
        return EXIT_USAGE;
    }
    let order = match work_order(args) {
        Ok(o) => o,
        Err(m) => {
            eprintln!("{NAME}: {m}");
            return EXIT_USAGE;
        }
    };
    let (tx, rx) = mpsc::channel::<Event>();
    let tx2 = tx.clone();
    std::thread::spawn(move || loop {
        if let Ok(sig) = signals.wait() {
            let _ = tx2.send(Event::Signal(sig));
        }
    });
    // the same service as Apache's (Slurm's client programs need not be on this node)
    let service = match ServiceConfig::load(&order.config).and_then(Service::from_config) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{NAME}: {e}");
            return EXIT_USAGE;
        }
    };
    run(service, &order, tx, rx)
}

fn run(
    service: Arc<Service>,
    order: &WorkOrder,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
) -> i32 {
    let record = match service.store.get(&order.job) {
        Ok(Some(r)) if r.state == JobState::Running && r.attempt == order.attempt => r,
        Ok(r) => {
            let now = r.map_or("unknown or dismissed".to_string(), |r| {
                format!("{} in attempt {}", r.state.as_str(), r.attempt)
            });
            eprintln!(
                "{NAME}: job {} attempt {} is not to be run: it is {now}",
                order.job, order.attempt
            );
            return EXIT_DONE;
        }
        Err(e) => {
            eprintln!("{NAME}: job {}: {e}", order.job);
            return EXIT_STORE;
        }
    };
    let slurm_job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "?".into());
    let node = std::env::var("SLURMD_NODENAME")
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .unwrap_or_default();
    let claim = Arc::new(Claim::detached(record.clone()));
    let _ = service.store.progress(
        &claim,
        0,
        &format!("Running in Slurm job {slurm_job} on {}", node.trim()),
    );
    let cancel = Arc::new(CancelToken::default());
    {
        let (service, record, cancel, claim) = (
            service.clone(),
            record.clone(),
            cancel.clone(),
            claim.clone(),
        );
        std::thread::spawn(move || {
            let store = service.store.clone();
            let progress = Arc::new(move |pct: u32, msg: &str| {
                let _ = store.progress(&claim, pct, msg);
            });
            let log = Arc::new(|level: LogLevel, m: &str| eprintln!("{NAME}: {level:?}: {m}"));
            let ctx = Context::new(cancel, progress).with_log(log);
            let outcome = run_job(&service, &record, &ctx);
            let _ = tx.send(Event::Done(outcome));
        });
    }
    let detached = || Claim::detached(record.clone());
    let (how, code) = match rx.recv() {
        Ok(Event::Done(outcome)) => {
            // stored outputs of a job that was ended meanwhile would stay behind
            let current = service.store.get(&record.id).ok().flatten();
            if !current.is_some_and(|r| r.state == JobState::Running && r.attempt == record.attempt)
            {
                eprintln!(
                    "{NAME}: job {} was ended meanwhile; nothing recorded",
                    record.id
                );
                return EXIT_DONE;
            }
            let (how, state) = job_end(&service, &record, &outcome);
            eprintln!("{NAME}: job {} ({}): {state}", record.id, record.process);
            (how, EXIT_DONE)
        }
        Ok(Event::Signal(sig)) => {
            cancel.cancel();
            let e = WpsError::no_applicable(format!(
                "Process '{}' was stopped in Slurm: its Slurm job {slurm_job} got {sig} (scancel, a Slurm time limit, preemption or its node going down)",
                record.process
            ));
            eprintln!("{NAME}: job {}: {}", record.id, e.text);
            (Finish::Failed(e), 128 + sig as i32)
        }
        Err(_) => (
            Finish::Failed(WpsError::no_applicable(format!(
                "Process '{}' ended without an outcome in Slurm job {slurm_job}",
                record.process
            ))),
            EXIT_DONE,
        ),
    };
    match service.store.finish(detached(), how) {
        Ok(true) => code,
        Ok(false) => {
            eprintln!(
                "{NAME}: job {} was dismissed, ended or taken over meanwhile; its end is not recorded",
                record.id
            );
            code
        }
        Err(e) => {
            eprintln!("{NAME}: job {}: cannot record its end: {e}", record.id);
            EXIT_STORE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_work_order_comes_from_the_script_or_the_options() {
        let o = work_order(&os(&[
            "--config=/etc/wps/wps.cfg",
            "--job=abc",
            "--attempt=2",
        ]))
        .unwrap();
        assert_eq!(
            o,
            WorkOrder {
                config: "/etc/wps/wps.cfg".into(),
                job: "abc".into(),
                attempt: 2
            }
        );
        let dir = std::env::temp_dir().join(format!("mod_wps-worker-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("slurm_script");
        std::fs::write(
            &script,
            "#!/x/mod_wps-worker\n# c\nconfig=/a b.cfg\njob=j\nattempt=1\n",
        )
        .unwrap();
        let o = work_order(&[script.clone().into_os_string()]).unwrap();
        assert_eq!(o.config, std::path::Path::new("/a b.cfg"));
        std::fs::remove_dir_all(&dir).unwrap();
        for bad in [
            &[][..],
            &["a", "b"],
            &["--config"],
            &["--config=/x", "--job=j"],
        ] {
            let e = work_order(&os(bad)).unwrap_err();
            assert!(
                e.contains("usage") || e.contains("cannot read"),
                "{bad:?}: {e}"
            );
        }
        assert!(work_order(&os(&["/nonexistent/script"]))
            .unwrap_err()
            .contains("cannot read the batch script"));
    }
}
