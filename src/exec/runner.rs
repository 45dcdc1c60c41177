//! The local executor of one service in one Apache child: runs synchronous requests and claimed
//! jobs on a worker pool, within the server-wide `parallelprocesses` slots, and enforces time
//! limits and cancel requests (Dismiss, from any child) on what it runs.

use super::pool::{Pool, PoolError};
use super::slot_line::SlotLine;
use super::{Executor, Logger};
use crate::engine::{Backend, Outcome, Service};
use crate::jobs::{Claim, Finish, JobRecord, Slot};
use crate::model::{
    panic_message, CancelToken, Context, ExceptionCode, Inputs, LogLevel, Outputs, Process,
    ProcessError, WpsError, WpsResult,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a cancelled job may take to return before its worker is written off.
pub const WRITE_OFF_GRACE: Duration = Duration::from_secs(2);
/// How often a running job's claim is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(20);
/// A job's progress is written to the store at most this often: what is reported meanwhile
/// is kept, and the latest of it written when the interval is over (by the next report or
/// the dispatcher's next round), or replaced by the job's end. A process that reports per
/// feature (`buffer`: 832 reports for railroads.gml) would otherwise rewrite its record 832
/// times, and a `sleep` with delay 0 four times, for status documents nobody can read that
/// fast; each rewrite is a new file in the store (bench/RESULTS.md, issue 15).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a process, turning its errors and panics into an outcome.
pub fn run_process(process: &dyn Process, inputs: &Inputs, ctx: &Context) -> Outcome {
    let id = &process.description().identifier;
    match catch_unwind(AssertUnwindSafe(|| process.execute(inputs, ctx))) {
        Ok(Ok(o)) => Outcome::Done(o),
        Ok(Err(ProcessError::Failed(m))) => Outcome::Failed(WpsError::no_applicable(format!(
            "Process '{id}' failed: {m}"
        ))),
        Ok(Err(ProcessError::Cancelled)) => Outcome::Failed(WpsError::no_applicable(format!(
            "Process '{id}' was cancelled"
        ))),
        Err(p) => Outcome::Crashed {
            process: id.clone(),
            message: panic_message(&*p),
        },
    }
}

/// How a job ends after its work: outputs stored as the job's results (a success), or the
/// error a client sees; with a line for the error log.
pub fn job_end(service: &Service, job: &JobRecord, outcome: &Outcome) -> (Finish, String) {
    let (id, process) = (&job.id, &job.process);
    let how = match outcome {
        Outcome::Done(outputs) => {
            let stored = service
                .process(process)
                .map(|p| service.store_results(id, p.description(), &job.outputs, outputs));
            match stored {
                Some(Ok(results)) => Finish::Succeeded {
                    message: format!("Process {process} finished successfully"),
                    results,
                },
                Some(Err(e)) => Finish::Failed(e),
                None => Finish::Failed(WpsError::no_applicable(format!(
                    "process '{process}' is not offered by this service any more"
                ))),
            }
        }
        failed => Finish::Failed(failed.client_error().expect("a failed outcome")),
    };
    let state = match (&how, outcome) {
        (Finish::Succeeded { .. }, _) => "succeeded".to_string(),
        (_, Outcome::Crashed { process, message }) => {
            format!("process '{process}' panicked: {message}")
        }
        (Finish::Failed(e), _) => format!("failed: {}", e.text),
    };
    (how, state)
}

/// Runs a queued job's process: its inputs prepared (references fetched here), its panics
/// caught.
pub fn run_job(service: &Service, job: &JobRecord, ctx: &Context) -> Outcome {
    let work = catch_unwind(AssertUnwindSafe(|| {
        let Some(process) = service.process(&job.process).cloned() else {
            return Outcome::Failed(WpsError::no_applicable(format!(
                "process '{}' is not offered by this service any more",
                job.process
            )));
        };
        match service.prepare_inputs(process.description(), &job.inputs, None) {
            Ok(inputs) => run_process(process.as_ref(), &inputs, ctx),
            Err(e) => Outcome::Failed(e),
        }
    }));
    work.unwrap_or_else(|p| Outcome::Crashed {
        process: job.process.clone(),
        message: panic_message(&*p),
    })
}

/// Per-runner totals of finished work (synchronous and asynchronous Execute).
#[derive(Debug, Default)]
pub struct JobCounters {
    /// Jobs that produced their outputs.
    pub succeeded: AtomicU64,
    /// Jobs that failed, crashed, or passed their time limit.
    pub failed: AtomicU64,
    /// Synchronous requests refused before they ran (`ServerBusy`: queue full, restarting).
    pub rejected: AtomicU64,
}

impl JobCounters {
    pub fn succeeded(&self) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
    }
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Work in progress in this child. Whoever finalises it first (the worker when it returns, or
/// the watchdog at the time limit or on a cancel request) takes `hold`, with the slot and the
/// claim.
struct Ticket {
    process: String,
    deadline: Instant,
    /// What the job is told when it is stopped at its deadline.
    expired: String,
    cancel: Arc<CancelToken>,
    hold: Mutex<Option<(Slot, Option<Claim>)>>,
    returned: AtomicBool,
    cancelled_at: Mutex<Option<Instant>>,
    replaced: AtomicBool,
    renewed: Mutex<Instant>,
    /// When progress was last written to the store (at first: when the job was claimed,
    /// which wrote its record) and the latest report not written yet.
    progress: Mutex<(Instant, Option<(u32, String)>)>,
}

pub struct Runner {
    pub service: Arc<Service>,
    pub pool: Arc<Pool>,
    tickets: Mutex<Vec<Arc<Ticket>>>,
    log: Logger,
    /// Called when a job is queued (the dispatcher may claim it).
    wake: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    /// Called when a job ended and freed its worker and slot (the dispatcher may claim the
    /// next job); `wake` when not set.
    freed: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    /// Succeeded/failed totals of this runner (in this child), for the status page.
    pub counters: JobCounters,
    /// Wakes sleepers of `wait_slot` that look on their own (see there).
    slot_freed: (Mutex<()>, Condvar),
    /// This child's synchronous requests waiting for a slot in line (see there).
    slot_line: Arc<SlotLine>,
}

impl Runner {
    pub fn new(service: Arc<Service>, pool: Arc<Pool>, log: Logger) -> Arc<Runner> {
        Arc::new(Runner {
            service,
            pool,
            tickets: Mutex::new(Vec::new()),
            log,
            wake: Mutex::new(None),
            freed: Mutex::new(None),
            counters: JobCounters::default(),
            slot_freed: (Mutex::new(()), Condvar::new()),
            slot_line: Arc::new(SlotLine::default()),
        })
    }

    /// Sets what is called when a job is queued, and when a job ended unless `on_freed` set
    /// another (the dispatcher's wake).
    pub fn on_wake(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *lock(&self.wake) = Some(f);
    }

    /// Sets what is called when a job ended and freed its slot, and when its worker is free
    /// again (the dispatcher's `capacity_waker`).
    pub fn on_freed(&self, f: Arc<dyn Fn() + Send + Sync>) {
        self.pool.on_done(f.clone());
        *lock(&self.freed) = Some(f);
    }

    fn notify(&self) {
        if let Some(f) = lock(&self.wake).clone() {
            f();
        }
        self.slot_freed.1.notify_all();
        self.slot_line.freed();
    }

    /// A job ended: its slot and worker are free.
    fn notify_freed(&self) {
        if let Some(f) = self.freed_hook() {
            f();
        }
        self.slot_freed.1.notify_all();
        self.slot_line.freed();
    }

    fn freed_hook(&self) -> Option<Arc<dyn Fn() + Send + Sync>> {
        lock(&self.freed)
            .clone()
            .or_else(|| lock(&self.wake).clone())
    }

    fn ticket(
        &self,
        process: &str,
        limit: Duration,
        expired: String,
        slot: Slot,
        claim: Option<Claim>,
    ) -> Arc<Ticket> {
        let t = Arc::new(Ticket {
            process: process.to_owned(),
            deadline: Instant::now() + limit,
            expired,
            cancel: Arc::new(CancelToken::default()),
            hold: Mutex::new(Some((slot, claim))),
            returned: AtomicBool::new(false),
            cancelled_at: Mutex::new(None),
            replaced: AtomicBool::new(false),
            renewed: Mutex::new(Instant::now()),
            progress: Mutex::new((Instant::now(), None)),
        });
        lock(&self.tickets).push(t.clone());
        t
    }

    pub fn limit_message(process: &str, limit: Duration) -> String {
        format!(
            "Process '{process}' exceeded its time limit of {} s and was stopped",
            limit.as_secs()
        )
    }

    /// Waits for a server-wide slot until `deadline`: in line when the store keeps one
    /// (`SlotLine`), except for a quick process (it holds its slot for a moment, and would
    /// leave it free while the first in line of another child pauses); else looking on its
    /// own, with a pause growing to 20 ms.
    fn wait_slot(&self, deadline: Instant, quick: bool) -> WpsResult<Option<Slot>> {
        let store = &self.service.store;
        if let Some(others) = store.waiting_line().filter(|_| !quick) {
            return self
                .slot_line
                .wait(deadline, others, || store.try_slot())
                .map_err(crate::engine::jobs::store_error);
        }
        let mut pause = Duration::from_micros(200);
        loop {
            let slot = if quick {
                store.try_slot_for_a_moment()
            } else {
                store.try_slot()
            };
            match slot {
                Ok(Some(s)) => return Ok(Some(s)),
                Ok(None) => {}
                Err(e) => return Err(crate::engine::jobs::store_error(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let g = lock(&self.slot_freed.0);
            let _ = self.slot_freed.1.wait_timeout(g, pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn run_sync_uncounted(&self, process: Arc<dyn Process>, inputs: Inputs) -> WpsResult<Outputs> {
        let id = process.description().identifier.clone();
        let group = self.pool.config().name.clone();
        let request_timeout = self.pool.config().request_timeout;
        let start = Instant::now();
        let quick = process.quick();
        let slot = self.wait_slot(start + request_timeout, quick)?.ok_or_else(|| {
            WpsError::no_applicable(format!(
                "Process '{id}' did not start within the request timeout of {} s of process group '{group}': all {} parallelprocesses slots stayed busy",
                request_timeout.as_secs(),
                self.service.config.server.parallelprocesses
            ))
        })?;
        // The job's time limit, or what is left of the request timeout if that ends first.
        let own_limit = self.service.config.timeout_for(&id);
        let left = request_timeout.saturating_sub(start.elapsed());
        let timeout_msg = format!(
            "Process '{id}' did not finish within the request timeout of {} s of process group '{group}'; it was cancelled",
            request_timeout.as_secs()
        );
        let ticket = if own_limit <= left {
            self.ticket(
                &id,
                own_limit,
                Self::limit_message(&id, own_limit),
                slot,
                None,
            )
        } else {
            self.ticket(&id, left, timeout_msg.clone(), slot, None)
        };
        let t2 = ticket.clone();
        let ctx =
            Context::new(ticket.cancel.clone(), Arc::new(|_, _| {})).with_log(self.log.clone());
        let freed = self.slot_freed_notifier();
        let job = move || {
            let r = run_process(process.as_ref(), &inputs, &ctx);
            t2.returned.store(true, Ordering::SeqCst);
            lock(&t2.hold).take();
            freed();
            r
        };
        // a quick process runs on this thread, once one of its group's threads is free
        let result = if quick {
            self.pool.run_here(job)
        } else {
            self.pool.run(ticket.cancel.clone(), job)
        };
        let stopped = lock(&ticket.cancelled_at).is_some();
        match result {
            Ok(Outcome::Done(o)) => Ok(o),
            // stopped by the watchdog at its deadline (which logged it)
            Ok(Outcome::Failed(_)) if stopped => Err(WpsError::no_applicable(&ticket.expired)),
            Ok(Outcome::Failed(e)) => {
                (self.log)(LogLevel::Error, &e.text);
                Err(e)
            }
            Ok(crashed @ Outcome::Crashed { .. }) => {
                if let Outcome::Crashed { process, message } = &crashed {
                    (self.log)(
                        LogLevel::Error,
                        &format!("process '{process}' panicked: {message}"),
                    );
                }
                Err(crashed.client_error().expect("a failed outcome"))
            }
            Err(e) => {
                // never ran or never returned: free the slot unless the worker still holds it
                if !matches!(e, PoolError::Timeout(_)) {
                    lock(&ticket.hold).take();
                    ticket.returned.store(true, Ordering::SeqCst);
                }
                Err(match e {
                    PoolError::Busy => WpsError::new(
                        ExceptionCode::ServerBusy,
                        None,
                        format!(
                            "All workers of process group '{group}' are busy and its queue is full; retry later"
                        ),
                    ),
                    PoolError::ShutDown => WpsError::new(
                        ExceptionCode::ServerBusy,
                        None,
                        "The server is restarting; retry later",
                    ),
                    PoolError::NotStarted(t) => WpsError::no_applicable(format!(
                        "Process '{id}' did not start within the request timeout of {} s of process group '{group}': all its {} threads stayed busy",
                        t.as_secs(),
                        self.pool.config().threads
                    )),
                    PoolError::Timeout(_) if stopped => WpsError::no_applicable(&ticket.expired),
                    PoolError::Timeout(_) => {
                        (self.log)(LogLevel::Warning, &timeout_msg);
                        WpsError::no_applicable(timeout_msg)
                    }
                    PoolError::Panicked(m) => {
                        (self.log)(LogLevel::Error, &format!("process '{id}' panicked: {m}"));
                        WpsError::no_applicable(format!(
                            "Process '{id}' crashed with an internal error; the details are in the server's error log"
                        ))
                    }
                })
            }
        }
    }

    /// What a synchronous job calls when it has given its slot back: the dispatcher's hook,
    /// and this child's line for a slot.
    fn slot_freed_notifier(&self) -> impl Fn() + Send + 'static {
        let wake = self.freed_hook();
        let line = self.slot_line.clone();
        move || {
            if let Some(f) = &wake {
                f();
            }
            line.freed();
        }
    }

    /// Writes the end of a job to the store and releases its slot, once: returns false when
    /// the job was already finalised (e.g. stopped at its time limit).
    fn finalize(&self, ticket: &Ticket, outcome: Outcome) -> bool {
        let mut hold = lock(&ticket.hold);
        let Some((slot, claim)) = hold.take() else {
            return false;
        };
        if let Some(claim) = claim {
            let (id, process) = (claim.record.id.clone(), claim.record.process.clone());
            let (how, state) = job_end(&self.service, &claim.record, &outcome);
            match &how {
                Finish::Succeeded { .. } => self.counters.succeeded(),
                Finish::Failed(_) => self.counters.failed(),
            }
            match self.service.store.finish(claim, how) {
                Ok(true) => (self.log)(
                    LogLevel::Info,
                    &format!(
                        "job {id} ({process}) finished in slot {}: {state}",
                        slot.index
                    ),
                ),
                Ok(false) => (self.log)(
                    LogLevel::Info,
                    &format!(
                        "job {id} ({process}) was dismissed or taken over; its end is not recorded"
                    ),
                ),
                Err(e) => (self.log)(
                    LogLevel::Error,
                    &format!("job {id}: cannot record its end: {e}"),
                ),
            }
        }
        drop(slot);
        drop(hold);
        self.notify_freed();
        true
    }
}

impl Backend for Runner {
    fn run_sync(&self, process: Arc<dyn Process>, inputs: Inputs) -> WpsResult<Outputs> {
        let r = self.run_sync_uncounted(process, inputs);
        match &r {
            Ok(_) => self.counters.succeeded(),
            Err(e) if e.code == ExceptionCode::ServerBusy => self.counters.rejected(),
            Err(_) => self.counters.failed(),
        }
        r
    }

    fn wake(&self) {
        self.notify();
    }
}

impl Executor for Runner {
    fn has_capacity(&self) -> bool {
        self.pool.has_idle_worker()
    }

    fn start(self: Arc<Self>, claim: Claim, slot: Slot) -> Result<(), Box<Claim>> {
        let record = claim.record.clone();
        let (id, name) = (record.id.clone(), record.process.clone());
        let limit = self.service.config.timeout_for(&name);
        let slot_index = slot.index;
        let ticket = self.ticket(
            &name,
            limit,
            Self::limit_message(&name, limit),
            slot,
            Some(claim),
        );
        (self.log)(
            LogLevel::Info,
            &format!(
                "job {id} ({name}) started in slot {slot_index} (attempt {})",
                record.attempt
            ),
        );
        let me = self.clone();
        let t2 = ticket.clone();
        let t3 = ticket.clone();
        let store = self.service.store.clone();
        let progress = Arc::new(move |pct: u32, msg: &str| {
            let mut p = lock(&t3.progress);
            if p.0.elapsed() < PROGRESS_EVERY {
                p.1 = Some((pct, msg.to_owned()));
                return;
            }
            // under the hold lock, so a final record is never overwritten
            if let Some((_, Some(claim))) = lock(&t3.hold).as_ref() {
                let _ = store.progress(claim, pct, msg);
            }
            *p = (Instant::now(), None);
        });
        let spawned = self.pool.spawn(move || {
            let ctx = Context::new(t2.cancel.clone(), progress).with_log(me.log.clone());
            // references are fetched here, on the worker; a panic anywhere fails this job only
            let outcome = run_job(&me.service, &record, &ctx);
            t2.returned.store(true, Ordering::SeqCst);
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| me.finalize(&t2, outcome))) {
                (me.log)(
                    LogLevel::Error,
                    &format!(
                        "job {}: recording its end failed (panic): {}",
                        record.id,
                        panic_message(&*p)
                    ),
                );
            }
        });
        if spawned.is_err() {
            // the pool is shutting down: give the job back
            ticket.returned.store(true, Ordering::SeqCst);
            if let Some((_slot, Some(claim))) = lock(&ticket.hold).take() {
                return Err(Box::new(claim));
            }
        }
        Ok(())
    }

    /// Enforces time limits and cancel requests: stops overdue or dismissed jobs, records
    /// them at once (freeing their slot), renews claims, and replaces workers that do not
    /// return.
    fn supervise(&self) {
        let now = Instant::now();
        let tickets: Vec<Arc<Ticket>> = {
            let mut t = lock(&self.tickets);
            t.retain(|t| !t.returned.load(Ordering::SeqCst));
            t.clone()
        };
        for t in tickets {
            {
                // progress kept back for longer than the interval
                let mut p = lock(&t.progress);
                if p.1.is_some() && p.0.elapsed() >= PROGRESS_EVERY {
                    if let (Some((pct, msg)), Some((_, Some(claim)))) =
                        (p.1.take(), lock(&t.hold).as_ref())
                    {
                        let _ = self.service.store.progress(claim, pct, &msg);
                    }
                    p.0 = now;
                }
            }
            let dismissed = match lock(&t.hold).as_ref() {
                Some((_, Some(claim))) => {
                    let mut renewed = lock(&t.renewed);
                    if renewed.elapsed() >= RENEW_EVERY {
                        *renewed = now;
                        let _ = self.service.store.renew(claim);
                    }
                    self.service.store.cancel_requested(claim)
                }
                _ => false,
            };
            let mut cancelled = lock(&t.cancelled_at);
            match *cancelled {
                None if now >= t.deadline || dismissed => {
                    *cancelled = Some(now);
                    let e = if dismissed {
                        WpsError::no_applicable(format!("Process '{}' was dismissed", t.process))
                    } else {
                        WpsError::no_applicable(&t.expired)
                    };
                    // Finalise before cancelling: a cancelled worker returns at once and
                    // would otherwise win the race with a bare "was cancelled".
                    if self.finalize(&t, Outcome::Failed(e.clone())) {
                        (self.log)(LogLevel::Warning, &e.text);
                    }
                    t.cancel.cancel();
                }
                Some(at)
                    if now >= at + WRITE_OFF_GRACE && !t.replaced.swap(true, Ordering::SeqCst) =>
                {
                    // the slot was released by finalize (or by the sync caller); keep the
                    // pool at its size
                    lock(&t.hold).take();
                    self.pool.replace_stuck_worker();
                    (self.log)(
                        LogLevel::Error,
                        &format!(
                            "a worker of process group '{}' did not return from '{}' after it was cancelled; it is written off and replaced",
                            self.pool.config().name,
                            t.process
                        ),
                    );
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
