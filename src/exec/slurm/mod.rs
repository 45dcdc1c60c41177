//! The Slurm executor of one service in one Apache child: asynchronous jobs of processes with
//! `dispatch = slurm` are submitted with `sbatch --parsable --no-requeue`, run by
//! `mod_wps-worker` (src/bin) on a Slurm node, and followed with `squeue` until they end.
//!
//! **Who holds the claim.** The Apache child that claimed a job keeps its claim (in the file
//! store: the flock of `running/<id>.lock`) for as long as the job is in Slurm, but takes no
//! `parallelprocesses` slot: the work is not on this host. The worker holds a *detached* claim
//! of the same attempt and records progress, outputs and the end through the store. Each
//! record write is one atomic read-modify-write, and an end is recorded once: whichever of the
//! worker and this monitor records it first wins, the other's is refused.
//!
//! **When the Apache child goes** (graceful restart, crash, `kill -9`), its claims go with it
//! and another child finds the job orphaned. The dispatcher offers it to this executor, which
//! looks for it in Slurm by its job name (`wps-<id>.<attempt>`, set at submission, so even a
//! child that died right after `sbatch` leaves it findable) and follows it again instead of
//! re-queueing it: a job Slurm still runs never runs twice. Only a job that never reached
//! Slurm goes back to the queue.
//!
//! **The monitor** (one thread per service and child) submits, polls `squeue` every second
//! for all its jobs at once (`sacct` would need slurmdbd), and ends the job `ProcessFailed`
//! with a message that says so when Slurm ended it without the worker recording an end
//! (cancelled, killed, timed out, node failure, lost). Dismiss and mod_wps's own time limit
//! (counted from when the job starts running in Slurm) record the end here and `scancel`
//! the Slurm job. While Slurm's controller does not answer, jobs are left alone (they go on
//! running on their nodes) and submissions are retried.

pub mod cli;
pub mod worker;

use super::dispatcher::orphan_fate;
use super::runner::{Runner, RENEW_EVERY};
use super::{Executor, Logger};
use crate::config::slurm::{Dispatch, SlurmConfig};
use crate::engine::Service;
use crate::jobs::{Claim, Finish, JobState, Slot};
use crate::model::{LogLevel, WpsError};
use cli::{job_name, SlurmJob, Tools, COMMAND_TIMEOUT};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often `squeue` is asked.
pub const POLL: Duration = Duration::from_secs(1);
/// The monitor's tick (cancel requests, time limits, ends recorded by the worker).
const TICK: Duration = Duration::from_millis(250);
/// How long after a failed submission it is tried again (the controller was unreachable).
const RESUBMIT: Duration = Duration::from_secs(10);
/// How long a submitted job may be missing from `squeue` before it counts as lost.
const SUBMIT_GRACE: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 10 });
/// How often the number of this service's jobs in Slurm (all children) is counted again.
const RECOUNT: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a followed job is.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// To be submitted at (or after) this time.
    Submit(Instant),
    /// Given to Slurm at this time.
    Submitted(Instant),
    /// Taken over from an Apache child that is gone; not seen in Slurm yet.
    Adopted,
}

/// A job this child follows in Slurm.
struct Followed {
    claim: Claim,
    name: String,
    phase: Phase,
    slurm_id: Option<String>,
    /// When it was first seen running in Slurm (its time limit counts from there).
    running_since: Option<Instant>,
    renewed: Instant,
}

impl Followed {
    fn new(claim: Claim, phase: Phase) -> Followed {
        Followed {
            name: job_name(&claim.record.id, claim.record.attempt),
            claim,
            phase,
            slurm_id: None,
            running_since: None,
            renewed: Instant::now(),
        }
    }

    fn describe(&self) -> String {
        let r = &self.claim.record;
        match &self.slurm_id {
            Some(s) => format!("job {} ({}, Slurm job {s})", r.id, r.process),
            None => format!("job {} ({})", r.id, r.process),
        }
    }
}

pub struct SlurmExecutor {
    service: Arc<Service>,
    cfg: SlurmConfig,
    tools: Result<Tools, String>,
    log: Logger,
    jobs: Mutex<Vec<Followed>>,
    wake: (Mutex<bool>, Condvar),
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// This service's jobs in Slurm, all children: (counted at, count).
    in_slurm: Mutex<(Option<Instant>, usize)>,
    /// Whether the last `squeue` failed (logged once per outage).
    unreachable: AtomicBool,
}

impl SlurmExecutor {
    /// The Slurm executor of a service that dispatches some process to Slurm (`None`
    /// otherwise), with its monitor thread (in an Apache child, never in the parent).
    pub fn for_service(service: &Arc<Service>, log: Logger) -> Option<Arc<SlurmExecutor>> {
        if !service.config.uses_slurm() {
            return None;
        }
        let tools = Tools::find();
        if let Err(m) = &tools {
            log(
                LogLevel::Error,
                &format!(
                    "Slurm jobs of {} cannot run: {m}",
                    service.config.path.display()
                ),
            );
        }
        Some(Self::start(service.clone(), tools, log))
    }

    /// Starts an executor with these programs.
    pub fn start(service: Arc<Service>, tools: Result<Tools, String>, log: Logger) -> Arc<Self> {
        let e = Arc::new(SlurmExecutor {
            cfg: service.config.slurm_config(),
            service,
            tools,
            log,
            jobs: Mutex::new(Vec::new()),
            wake: (Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            in_slurm: Mutex::new((None, 0)),
            unreachable: AtomicBool::new(false),
        });
        let e2 = e.clone();
        let h = std::thread::Builder::new()
            .name("wps-slurm".into())
            .spawn(move || e2.monitor())
            .expect("cannot start the Slurm monitor thread");
        *lock(&e.thread) = Some(h);
        e
    }

    fn notify(&self) {
        *lock(&self.wake.0) = true;
        self.wake.1.notify_all();
    }

    /// How many jobs of this service are in Slurm (counted in the store, for all children).
    fn in_slurm(&self) -> usize {
        let mut c = lock(&self.in_slurm);
        if c.0.is_none_or(|t| t.elapsed() >= RECOUNT) {
            if let Ok(counts) = self.service.store.counts() {
                let n = counts
                    .running
                    .iter()
                    .filter(|r| self.runs(&r.process))
                    .count();
                *c = (Some(Instant::now()), n);
            }
        }
        c.1.max(lock(&self.jobs).len())
    }

    fn monitor(self: Arc<Self>) {
        let mut last_poll: Option<Instant> = None;
        while !self.stop.load(Ordering::SeqCst) {
            let taken = std::mem::take(&mut *lock(&self.jobs));
            let kept = self.step(taken, &mut last_poll);
            lock(&self.jobs).extend(kept);
            let mut woken = lock(&self.wake.0);
            if !*woken {
                woken = self
                    .wake
                    .1
                    .wait_timeout(woken, TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
        }
    }

    /// One round: each job checked, then (every `POLL`) Slurm's view.
    fn step(&self, jobs: Vec<Followed>, last_poll: &mut Option<Instant>) -> Vec<Followed> {
        let mut kept: Vec<Followed> = jobs.into_iter().filter_map(|j| self.check(j)).collect();
        let due = last_poll.is_none_or(|t| t.elapsed() >= POLL);
        if due && kept.iter().any(|j| !matches!(j.phase, Phase::Submit(_))) {
            *last_poll = Some(Instant::now());
            match self.squeue() {
                Ok(seen) => {
                    if self.unreachable.swap(false, Ordering::SeqCst) {
                        (self.log)(LogLevel::Warning, "Slurm answers again (squeue)");
                    }
                    kept = kept
                        .into_iter()
                        .filter_map(|j| self.reconcile(j, &seen))
                        .collect();
                }
                Err(m) => {
                    if !self.unreachable.swap(true, Ordering::SeqCst) {
                        (self.log)(
                            LogLevel::Warning,
                            &format!("cannot ask Slurm about {} job(s) (they are left running; asking again): {m}", kept.len()),
                        );
                    }
                }
            }
        }
        kept
    }

    fn squeue(&self) -> Result<HashMap<String, SlurmJob>, String> {
        let tools = self.tools.as_ref()?;
        let args: Vec<String> = cli::squeue_args().iter().map(|s| s.to_string()).collect();
        let out = cli::run(&tools.squeue, &args, None, COMMAND_TIMEOUT)?;
        if !out.success {
            return Err(format!("squeue: {}", out.stderr.trim()));
        }
        Ok(cli::parse_squeue(&out.stdout))
    }

    /// Cancels the Slurm job of `j` (by name: also one whose submission's answer was lost).
    /// Called after the end is recorded, so the worker's SIGTERM end is refused.
    fn scancel(&self, name: &str, what: &str) {
        let Ok(tools) = &self.tools else {
            return;
        };
        let args = vec!["--me".to_string(), format!("--name={name}")];
        match cli::run(&tools.scancel, &args, None, COMMAND_TIMEOUT) {
            Ok(o) if o.success => {}
            Ok(o) => (self.log)(
                LogLevel::Warning,
                &format!("{what}: scancel failed: {}", o.stderr.trim()),
            ),
            Err(m) => (self.log)(LogLevel::Warning, &format!("{what}: {m}")),
        }
    }

    /// Records the end of a job (unless the worker recorded one) and lets it go; then cancels
    /// its Slurm job when asked to.
    fn end(&self, j: Followed, e: Option<WpsError>, cancel: bool) {
        let what = j.describe();
        let e = e.unwrap_or_else(|| WpsError::no_applicable("ended"));
        let text = e.text.clone();
        let name = j.name.clone();
        let ended = self.service.store.finish(j.claim, Finish::Failed(e));
        if cancel {
            self.scancel(&name, &what);
        }
        match ended {
            Ok(true) => (self.log)(LogLevel::Warning, &format!("{what}: {text}")),
            Ok(false) => {}
            Err(e) => (self.log)(
                LogLevel::Error,
                &format!("{what}: cannot record its end: {e}"),
            ),
        }
        self.notify_dispatcher();
    }

    /// Lets go of a job whose end the worker recorded (the store refuses a second end).
    fn release(&self, j: Followed) {
        (self.log)(LogLevel::Info, &format!("{}: ended in Slurm", j.describe()));
        let _ = self
            .service
            .store
            .finish(j.claim, Finish::Failed(WpsError::no_applicable("released")));
        self.notify_dispatcher();
    }

    fn notify_dispatcher(&self) {
        // a job left Slurm: the count changes at the next recount
        lock(&self.in_slurm).0 = None;
    }

    /// The per-tick checks of one job; `None` when it is done with.
    fn check(&self, mut j: Followed) -> Option<Followed> {
        let store = &self.service.store;
        let process = j.claim.record.process.clone();
        if let Phase::Submit(at) = j.phase {
            if Instant::now() >= at {
                j = self.submit(j)?;
            }
        }
        if store.cancel_requested(&j.claim) {
            let e = WpsError::no_applicable(format!("Process '{process}' was dismissed"));
            (self.log)(
                LogLevel::Info,
                &format!("{}: dismissed; its Slurm job is cancelled", j.describe()),
            );
            self.end(j, Some(e), true);
            return None;
        }
        match store.get(&j.claim.record.id) {
            Ok(Some(r)) if r.state == JobState::Running && r.attempt == j.claim.record.attempt => {}
            Ok(_) => {
                self.release(j);
                return None;
            }
            Err(_) => return Some(j), // the store cannot be read now: try again
        }
        let limit = self.service.config.timeout_for(&process);
        if j.running_since.is_some_and(|t| t.elapsed() >= limit) {
            let e = WpsError::no_applicable(Runner::limit_message(&process, limit));
            self.end(j, Some(e), true);
            return None;
        }
        if j.renewed.elapsed() >= RENEW_EVERY {
            j.renewed = Instant::now();
            let _ = store.renew(&j.claim);
        }
        Some(j)
    }

    /// Submits a job; `None` when it failed for good (and is recorded so).
    fn submit(&self, mut j: Followed) -> Option<Followed> {
        let r = &j.claim.record;
        let process = r.process.clone();
        let tools = match &self.tools {
            Ok(t) => t,
            Err(m) => {
                let e = format!("Process '{process}' could not be submitted to Slurm: {m}");
                self.end(j, Some(WpsError::no_applicable(e)), false);
                return None;
            }
        };
        let script =
            match cli::batch_script(&tools.worker, &self.service.config.path, &r.id, r.attempt) {
                Ok(s) => s,
                Err(m) => {
                    let e = format!("Process '{process}' could not be submitted to Slurm: {m}");
                    self.end(j, Some(WpsError::no_applicable(e)), false);
                    return None;
                }
            };
        let args = cli::sbatch_args(&self.cfg, &j.name);
        let answer = cli::run(
            &tools.sbatch,
            &args,
            Some(script.as_bytes()),
            COMMAND_TIMEOUT,
        )
        .and_then(|o| {
            if o.success {
                cli::parse_sbatch(&o.stdout)
            } else {
                Err(o.stderr.trim().to_owned())
            }
        });
        match answer {
            Ok(id) => {
                (self.log)(
                    LogLevel::Info,
                    &format!(
                        "{}: submitted to Slurm as job {id} ({})",
                        j.describe(),
                        j.name
                    ),
                );
                let _ = self.service.store.progress(
                    &j.claim,
                    0,
                    &format!("Queued in Slurm as job {id}"),
                );
                j.slurm_id = Some(id);
                j.phase = Phase::Submitted(Instant::now());
                Some(j)
            }
            Err(m) if cli::transient_failure(&m) => {
                (self.log)(
                    LogLevel::Warning,
                    &format!(
                        "{}: cannot submit to Slurm now, trying again in {} s: {m}",
                        j.describe(),
                        RESUBMIT.as_secs()
                    ),
                );
                let _ = self.service.store.progress(
                    &j.claim,
                    0,
                    "Waiting for Slurm (its controller does not answer)",
                );
                j.phase = Phase::Submit(Instant::now() + RESUBMIT);
                Some(j)
            }
            Err(m) => {
                let e = format!("Process '{process}' could not be submitted to Slurm: {m}");
                self.end(j, Some(WpsError::no_applicable(e)), false);
                None
            }
        }
    }

    /// A job against Slurm's view; `None` when it is done with.
    fn reconcile(&self, mut j: Followed, seen: &HashMap<String, SlurmJob>) -> Option<Followed> {
        let process = j.claim.record.process.clone();
        match seen.get(&j.name) {
            Some(s) if !s.ended() => {
                if j.slurm_id.is_none() || j.phase == Phase::Adopted {
                    j.slurm_id = Some(s.id.clone());
                    if j.phase == Phase::Adopted {
                        (self.log)(
                            LogLevel::Warning,
                            &format!(
                                "{}: the Apache child that followed it is gone; followed again here ({})",
                                j.describe(),
                                s.state
                            ),
                        );
                    }
                    j.phase = Phase::Submitted(Instant::now());
                }
                if s.state == "RUNNING" && j.running_since.is_none() {
                    j.running_since = Some(Instant::now());
                }
                Some(j)
            }
            Some(s) => {
                // ended: the worker recorded the end, or it could not
                j.slurm_id = Some(s.id.clone());
                match self.service.store.get(&j.claim.record.id) {
                    Ok(Some(r))
                        if r.state == JobState::Running && r.attempt == j.claim.record.attempt =>
                    {
                        let e = WpsError::no_applicable(cli::ended_message(&process, s));
                        self.end(j, Some(e), false);
                    }
                    _ => self.release(j),
                }
                None
            }
            None => match j.phase {
                Phase::Submit(_) => Some(j),
                Phase::Submitted(at) if at.elapsed() < SUBMIT_GRACE => Some(j),
                Phase::Adopted => {
                    let what = "the Apache child that dispatched it is gone and it is not in Slurm";
                    orphan_fate(
                        &self.service,
                        j.claim,
                        what,
                        "The Apache child dispatching this job to Slurm exited before the job reached Slurm",
                        &self.log,
                    );
                    self.notify_dispatcher();
                    None
                }
                Phase::Submitted(_) => {
                    let id = j.slurm_id.clone().unwrap_or_else(|| "?".into());
                    let e = WpsError::no_applicable(format!(
                        "Process '{process}' failed in Slurm: its Slurm job {id} is no longer known to Slurm and the job's end was not recorded (lost)"
                    ));
                    self.end(j, Some(e), false);
                    None
                }
            },
        }
    }
}

impl Executor for SlurmExecutor {
    fn has_capacity(&self) -> bool {
        (self.in_slurm() as u64) < u64::from(self.cfg.maxjobs)
    }

    fn start(self: Arc<Self>, claim: Claim, slot: Slot) -> Result<(), Box<Claim>> {
        drop(slot); // the work is not on this host
        (self.log)(
            LogLevel::Info,
            &format!(
                "job {} ({}) dispatched to Slurm (attempt {})",
                claim.record.id, claim.record.process, claim.record.attempt
            ),
        );
        lock(&self.jobs).push(Followed::new(claim, Phase::Submit(Instant::now())));
        lock(&self.in_slurm).1 += 1;
        self.notify();
        Ok(())
    }

    fn supervise(&self) {
        // the monitor thread does it (squeue and sbatch may take a while)
    }

    fn runs(&self, process: &str) -> bool {
        self.service.config.dispatch_for(process) == Dispatch::Slurm
    }

    fn uses_slots(&self) -> bool {
        false
    }

    fn adopt(self: Arc<Self>, claim: Claim) -> Result<(), Box<Claim>> {
        if !self.runs(&claim.record.process) {
            return Err(Box::new(claim));
        }
        lock(&self.jobs).push(Followed::new(claim, Phase::Adopted));
        self.notify();
        Ok(())
    }

    /// Lets go of every job without recording anything: they go on in Slurm, and the next
    /// children adopt them.
    fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify();
        if let Some(h) = lock(&self.thread).take() {
            let _ = h.join();
        }
        let left = std::mem::take(&mut *lock(&self.jobs));
        if !left.is_empty() {
            (self.log)(
                LogLevel::Info,
                &format!(
                    "{} Slurm job(s) left to the next Apache children to follow",
                    left.len()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
