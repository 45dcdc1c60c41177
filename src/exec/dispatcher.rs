//! The dispatcher thread of one service in one Apache child: claims queued jobs for its
//! executor, re-queues (or fails) jobs whose owner died, removes expired jobs, and lets the
//! executor supervise what it runs.

use super::{Executor, Logger};
use crate::engine::Service;
use crate::jobs::{Finish, JobStore};
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
}

impl Shared {
    fn notify(&self) {
        *lock(&self.wake) = true;
        self.cond.notify_all();
    }
}

pub struct Dispatcher {
    service: Arc<Service>,
    executor: Arc<dyn Executor>,
    /// Whether it claims queued jobs and adopts orphans (one dispatcher per service and child
    /// does; others only supervise synchronous work on another pool).
    claims: bool,
    shared: Arc<Shared>,
    log: Logger,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Starts the dispatcher thread (in an Apache child, never in the parent).
    pub fn start(
        service: Arc<Service>,
        executor: Arc<dyn Executor>,
        claims: bool,
        log: Logger,
    ) -> Arc<Dispatcher> {
        let d = Arc::new(Dispatcher {
            service,
            executor,
            claims,
            shared: Arc::new(Shared {
                wake: Mutex::new(false),
                cond: Condvar::new(),
                shutdown: AtomicBool::new(false),
                draining: AtomicBool::new(false),
            }),
            log,
            thread: Mutex::new(None),
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
    }

    fn store(&self) -> &dyn JobStore {
        self.service.store.as_ref()
    }

    /// Re-queues (or fails) jobs whose owner is gone.
    fn adopt_orphans(&self) {
        let orphans = match self.store().orphans() {
            Ok(o) => o,
            Err(e) => {
                (self.log)(LogLevel::Error, &format!("orphan scan failed: {e}"));
                return;
            }
        };
        for claim in orphans {
            let r = &claim.record;
            let owner = r.owner.clone().unwrap_or_default();
            let pid = owner.rsplit(':').next().unwrap_or("?").to_owned();
            let rerun = self
                .service
                .process(&r.process)
                .is_some_and(|p| p.rerunnable());
            if rerun && r.attempt < MAX_ATTEMPTS {
                (self.log)(
                    LogLevel::Warning,
                    &format!(
                        "job {} ({}): the Apache child {pid} running it is gone; re-queued",
                        r.id, r.process
                    ),
                );
                if let Err(e) = self.store().requeue(claim) {
                    (self.log)(LogLevel::Error, &format!("re-queue failed: {e}"));
                }
            } else {
                let why = if rerun {
                    format!("it was interrupted {} times", r.attempt)
                } else {
                    "the process is not safe to run again".to_string()
                };
                let e = WpsError::no_applicable(format!(
                    "The Apache child running this job (pid {pid}) exited before it finished, and {why}"
                ));
                (self.log)(LogLevel::Warning, &format!("job {}: {}", r.id, e.text));
                if let Err(e) = self.store().finish(claim, Finish::Failed(e)) {
                    (self.log)(LogLevel::Error, &format!("cannot fail an orphan: {e}"));
                }
            }
        }
    }

    /// Claims as many queued jobs as the executor and the free slots allow.
    fn claim_jobs(&self) {
        while !self.shared.shutdown.load(Ordering::SeqCst) && self.executor.has_capacity() {
            if !self.store().may_have_work() {
                break;
            }
            let Ok(Some(slot)) = self.store().try_slot() else {
                break;
            };
            match self.store().claim() {
                Ok(Some(claim)) => {
                    if let Err(claim) = self.executor.clone().start(claim, slot) {
                        let _ = self.store().requeue(*claim);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    (self.log)(LogLevel::Error, &format!("cannot claim a job: {e}"));
                    break;
                }
            }
        }
    }

    fn run(self: Arc<Self>) {
        let mut last_scan = Instant::now() - ORPHAN_SCAN;
        let mut last_sweep = Instant::now() - RETENTION_SWEEP;
        loop {
            let r = catch_unwind(AssertUnwindSafe(|| {
                self.executor.supervise();
                if !self.claims || self.shared.draining.load(Ordering::SeqCst) {
                    return;
                }
                if last_scan.elapsed() >= ORPHAN_SCAN {
                    last_scan = Instant::now();
                    self.adopt_orphans();
                }
                if let Some(age) = self.service.config.server.retention {
                    if last_sweep.elapsed() >= RETENTION_SWEEP {
                        last_sweep = Instant::now();
                        match self.store().remove_expired(age) {
                            Ok(0) => {}
                            Ok(n) => (self.log)(
                                LogLevel::Info,
                                &format!("removed {n} finished job(s) older than the retention"),
                            ),
                            Err(e) => (self.log)(LogLevel::Warning, &format!("retention: {e}")),
                        }
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
