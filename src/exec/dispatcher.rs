//! The dispatcher thread of one service in one Apache child: claims queued jobs for its
//! executors (each job for the first that runs its process: Slurm for processes dispatched
//! there, then the local pool), re-queues (or fails) jobs whose owner died unless an executor
//! adopts them, removes expired jobs, and lets the executors supervise what they run.

use super::{Executor, Logger};
use crate::engine::Service;
use crate::jobs::{Claim, Finish, JobStore, Slot};
use crate::model::{panic_message, LogLevel, WpsError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often running jobs are checked for a dead owner.
pub const ORPHAN_SCAN: Duration = Duration::from_secs(1);
/// How often expired jobs are removed.
pub const RETENTION_SWEEP: Duration = Duration::from_secs(60);
/// How often a job may be started before an interrupted one is failed instead of re-queued.
pub const MAX_ATTEMPTS: u32 = 3;
/// The longest the dispatcher sleeps without being woken.
const TICK: Duration = Duration::from_millis(200);

/// What becomes of a running job whose work stopped without recording an end: it goes back to
/// its old place in the queue when its process may run again and it has attempts left, else it
/// fails. `what` says what happened (for the log), `failed` the same for the client.
pub fn orphan_fate(service: &Service, claim: Claim, what: &str, failed: &str, log: &Logger) {
    let r = &claim.record;
    let rerun = service.process(&r.process).is_some_and(|p| p.rerunnable());
    if rerun && r.attempt < MAX_ATTEMPTS {
        log(
            LogLevel::Warning,
            &format!("job {} ({}): {what}; re-queued", r.id, r.process),
        );
        if let Err(e) = service.store.requeue(claim) {
            log(LogLevel::Error, &format!("re-queue failed: {e}"));
        }
    } else {
        let why = if rerun {
            format!("it was interrupted {} times", r.attempt)
        } else {
            "the process is not safe to run again".to_string()
        };
        let e = WpsError::no_applicable(format!("{failed}, and {why}"));
        log(LogLevel::Warning, &format!("job {}: {}", r.id, e.text));
        if let Err(e) = service.store.finish(claim, Finish::Failed(e)) {
            log(LogLevel::Error, &format!("cannot fail an orphan: {e}"));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Shared {
    wake: Mutex<bool>,
    cond: Condvar,
    shutdown: AtomicBool,
    /// Stopping: no more claims, orphans or retention, but the jobs that run here are still
    /// supervised (time limits, Dismiss from any child) until `shutdown`.
    draining: AtomicBool,
    /// Set while claiming, and left set when claiming stopped for want of a free worker or
    /// slot with jobs perhaps still queued: only then does a job's end wake the dispatcher
    /// (see `capacity_waker`).
    starved: AtomicBool,
}

impl Shared {
    fn notify(&self) {
        *lock(&self.wake) = true;
        self.cond.notify_all();
    }
}

pub struct Dispatcher {
    service: Arc<Service>,
    /// In order of precedence: a job goes to the first that runs its process.
    executors: Vec<Arc<dyn Executor>>,
    /// Whether it claims queued jobs and adopts orphans (one dispatcher per service and child
    /// does; others only supervise synchronous work on another pool).
    claims: bool,
    shared: Arc<Shared>,
    log: Logger,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The retention sweep running in its own thread, if any (see `sweep`).
    sweep: Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Starts the dispatcher thread (in an Apache child, never in the parent).
    pub fn start(
        service: Arc<Service>,
        executor: Arc<dyn Executor>,
        claims: bool,
        log: Logger,
    ) -> Arc<Dispatcher> {
        Self::start_with(service, vec![executor], claims, log)
    }

    /// Starts the dispatcher thread with several executors: a job goes to the first that
    /// runs its process (the local runner, which runs every process, comes last).
    pub fn start_with(
        service: Arc<Service>,
        executors: Vec<Arc<dyn Executor>>,
        claims: bool,
        log: Logger,
    ) -> Arc<Dispatcher> {
        assert!(!executors.is_empty(), "a dispatcher needs an executor");
        let d = Arc::new(Dispatcher {
            service,
            executors,
            claims,
            shared: Arc::new(Shared {
                wake: Mutex::new(false),
                cond: Condvar::new(),
                shutdown: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                starved: AtomicBool::new(false),
            }),
            log,
            thread: Mutex::new(None),
            sweep: Mutex::new(None),
        });
        let d2 = d.clone();
        let handle = std::thread::Builder::new()
            .name("wps-dispatch".into())
            .spawn(move || d2.run())
            .expect("cannot start the dispatcher thread");
        *lock(&d.thread) = Some(handle);
        d
    }

    /// A function that wakes this dispatcher (a job was queued, a worker is free).
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let shared = self.shared.clone();
        Arc::new(move || shared.notify())
    }

    /// A function that wakes this dispatcher after a worker or slot was freed (a job ended),
    /// if it could not claim a queued job for want of one; otherwise it costs an atomic load
    /// (a synchronous request that ends wakes no thread). The dispatcher sets `starved`
    /// before it looks for a free worker or slot, and the caller frees them before it calls
    /// this, so one of the two sees the other.
    pub fn capacity_waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let shared = self.shared.clone();
        Arc::new(move || {
            if shared.starved.load(Ordering::SeqCst) {
                shared.notify();
            }
        })
    }

    /// Stops claiming jobs (and adopting orphans) but keeps supervising the jobs this child
    /// runs, so that a graceful stop still honours their time limits and Dismiss while the
    /// pools drain.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        self.shared.notify();
    }

    /// Stops claiming jobs and waits for the thread. Jobs still running when the child exits
    /// are left to the next children (their claims die with this process).
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.notify();
        if let Some(h) = lock(&self.thread).take() {
            let _ = h.join();
        }
        // the sweep stops after the job it is removing
        if let Some(h) = lock(&self.sweep).take() {
            let _ = h.join();
        }
        for e in &self.executors {
            e.shutdown();
        }
    }

    fn store(&self) -> &dyn JobStore {
        self.service.store.as_ref()
    }

    /// The executor that runs the jobs of `process`.
    fn route(&self, process: &str) -> usize {
        self.executors
            .iter()
            .position(|e| e.runs(process))
            .unwrap_or(self.executors.len() - 1)
    }

    /// Re-queues (or fails) jobs whose owner is gone, unless their executor adopts them.
    fn adopt_orphans(&self) {
        let orphans = match self.store().orphans() {
            Ok(o) => o,
            Err(e) => {
                (self.log)(LogLevel::Error, &format!("orphan scan failed: {e}"));
                return;
            }
        };
        for claim in orphans {
            let executor = self.executors[self.route(&claim.record.process)].clone();
            if let Err(claim) = executor.adopt(claim) {
                let owner = claim.record.owner.clone().unwrap_or_default();
                let pid = owner.rsplit(':').next().unwrap_or("?").to_owned();
                orphan_fate(
                    &self.service,
                    *claim,
                    &format!("the Apache child {pid} running it is gone"),
                    &format!(
                        "The Apache child running this job (pid {pid}) exited before it finished"
                    ),
                    &self.log,
                );
            }
        }
    }

    /// Claims as many queued jobs as the executors and the free slots allow.
    fn claim_jobs(&self) {
        let starved = &self.shared.starved;
        if !self.store().may_have_work() {
            starved.store(false, Ordering::SeqCst);
            return;
        }
        let n = self.executors.len();
        while !self.shared.shutdown.load(Ordering::SeqCst) {
            starved.store(true, Ordering::SeqCst);
            let free: Vec<bool> = self.executors.iter().map(|e| e.has_capacity()).collect();
            // a slot only when an executor that needs one could start a job
            let needs_slot = (0..n).any(|i| free[i] && self.executors[i].uses_slots());
            let mut slot = if needs_slot {
                self.store().try_slot().ok().flatten()
            } else {
                None
            };
            let can = |i: usize| free[i] && (slot.is_some() || !self.executors[i].uses_slots());
            if !(0..n).any(can) {
                break;
            }
            let claimed = if n == 1 {
                self.store().claim()
            } else {
                self.store()
                    .claim_matching(&|process: &str| can(self.route(process)))
            };
            match claimed {
                Ok(Some(claim)) => {
                    let e = &self.executors[self.route(&claim.record.process)];
                    let slot = match (e.uses_slots(), slot.take()) {
                        (true, Some(s)) => s,
                        _ => Slot::none(),
                    };
                    if let Err(claim) = e.clone().start(claim, slot) {
                        let _ = self.store().requeue(*claim);
                        break;
                    }
                }
                Ok(None) => {
                    starved.store(false, Ordering::SeqCst);
                    break;
                }
                Err(e) => {
                    (self.log)(LogLevel::Error, &format!("cannot claim a job: {e}"));
                    break;
                }
            }
        }
    }

    /// Starts a retention sweep in a thread of its own unless the last one still runs (false
    /// then): the dispatcher goes on claiming and supervising jobs meanwhile (a sweep of
    /// 100,000 jobs takes a minute or more; the store paces it). It stops after the job at
    /// hand when the child drains or stops.
    fn sweep(self: &Arc<Self>, age: Duration) -> bool {
        let mut running = lock(&self.sweep);
        if running.as_ref().is_some_and(|h| !h.is_finished()) {
            return false;
        }
        let d = self.clone();
        let spawned = std::thread::Builder::new()
            .name("wps-retention".into())
            .spawn(move || {
                let go_on = || {
                    !d.shared.shutdown.load(Ordering::SeqCst)
                        && !d.shared.draining.load(Ordering::SeqCst)
                };
                let r = catch_unwind(AssertUnwindSafe(|| d.store().remove_expired(age, &go_on)));
                match r {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => (d.log)(
                        LogLevel::Info,
                        &format!("removed {n} finished job(s) older than the retention"),
                    ),
                    Ok(Err(e)) => (d.log)(LogLevel::Warning, &format!("retention: {e}")),
                    Err(p) => (d.log)(
                        LogLevel::Error,
                        &format!("retention sweep error (panic): {}", panic_message(&*p)),
                    ),
                }
            });
        match spawned {
            Ok(h) => {
                *running = Some(h);
                true
            }
            Err(e) => {
                (self.log)(
                    LogLevel::Warning,
                    &format!("retention: cannot start the sweep's thread: {e}"),
                );
                true
            }
        }
    }

    fn run(self: Arc<Self>) {
        let mut last_scan = Instant::now() - ORPHAN_SCAN;
        let mut last_sweep = Instant::now() - RETENTION_SWEEP;
        loop {
            let r = catch_unwind(AssertUnwindSafe(|| {
                for e in &self.executors {
                    e.supervise();
                }
                if !self.claims || self.shared.draining.load(Ordering::SeqCst) {
                    return;
                }
                if last_scan.elapsed() >= ORPHAN_SCAN {
                    last_scan = Instant::now();
                    self.adopt_orphans();
                }
                if let Some(age) = self.service.config.server.retention {
                    if last_sweep.elapsed() >= RETENTION_SWEEP && self.sweep(age) {
                        last_sweep = Instant::now();
                    }
                }
                self.claim_jobs();
            }));
            if let Err(p) = r {
                (self.log)(
                    LogLevel::Error,
                    &format!("job dispatcher error (panic): {}", panic_message(&*p)),
                );
            }
            if self.shared.shutdown.load(Ordering::SeqCst) {
                return;
            }
            let mut woken = lock(&self.shared.wake);
            if !*woken {
                woken = self
                    .shared
                    .cond
                    .wait_timeout(woken, TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
        }
    }
}
