//! The per-child runner of one service: runs synchronous Execute requests and asynchronous
//! jobs on the service's pool, within the server-wide `parallelprocesses` slots, and keeps a
//! dispatcher thread that claims queued jobs, enforces time limits, re-queues jobs whose
//! Apache child died, and removes expired jobs.

use crate::engine::service::Service;
use crate::exec::pool::{panic_message, Pool, PoolError};
use crate::front::wps1::response::{self, ExecuteDoc, Lineage, OutputEntry, Status};
use crate::jobs::store::{EnqueueError, JobLock, JobSpec, JobStore, QueueCursor, Slot};
use crate::model::format::extension_for;
use crate::model::LogLevel;
use crate::model::{CancelToken, Context, Inputs, OutputSpec, OutputValue, Process, ProcessError};
use crate::model::{ExceptionCode, OutputRequest, WpsError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often running jobs are checked for a dead owner.
pub const ORPHAN_SCAN: Duration = Duration::from_secs(1);
/// How long a cancelled job may take to return before its worker is written off.
pub const WRITE_OFF_GRACE: Duration = Duration::from_secs(2);
/// How often a job may be started before an interrupted one is failed instead of re-queued.
pub const MAX_ATTEMPTS: u32 = 3;

pub type Logger = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// What a job produced.
pub enum Outcome {
    Done(crate::model::Outputs),
    Failed(WpsError),
    /// The process panicked (the message is for the error log, not for clients).
    Crashed {
        process: String,
        message: String,
    },
}

impl Outcome {
    /// The error a client sees for a failed or crashed job.
    fn client_error(&self) -> Option<WpsError> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Failed(e) => Some(e.clone()),
            Outcome::Crashed { process, .. } => Some(WpsError::no_applicable(format!(
                "Process '{process}' crashed with an internal error; the details are in the server's error log"
            ))),
        }
    }
}

/// A job in progress in this child. Whoever finalises it first (the worker when it returns,
/// or the watchdog at the time limit) takes `hold` and with it the slot and the job lock.
struct Ticket {
    spec: Option<JobSpec>,
    process: String,
    deadline: Instant,
    /// What the job is told when it is stopped at its deadline.
    expired: String,
    cancel: Arc<CancelToken>,
    hold: Mutex<Option<(Slot, Option<JobLock>)>>,
    returned: AtomicBool,
    cancelled_at: Mutex<Option<Instant>>,
    replaced: AtomicBool,
}

struct Shared {
    wake: Mutex<bool>,
    cond: Condvar,
    shutdown: AtomicBool,
    tickets: Mutex<Vec<Arc<Ticket>>>,
}

impl Shared {
    fn notify(&self) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cond.notify_all();
    }
}

pub struct Runner {
    pub service: Arc<Service>,
    pub pool: Arc<Pool>,
    /// Whether this runner claims queued jobs and adopts orphans (one runner per service and
    /// child does; others only run synchronous requests on another pool).
    claims: bool,
    shared: Arc<Shared>,
    log: Logger,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Succeeded/failed totals of this runner (in this child), for the status page.
    pub counters: crate::front::status::JobCounters,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
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

/// An output with the URL it was stored at (when asked `asReference`).
/// (spec, value, reference URL when stored, base64 asked)
type StoredEntry<'a> = (&'a OutputSpec, &'a OutputValue, Option<String>, bool);

/// Stores the outputs asked for `asReference` and returns the ExecuteResponse entries.
fn entries<'a>(
    store: &JobStore,
    job_id: &str,
    output_url: &str,
    specs: &'a [OutputSpec],
    requested: &[OutputRequest],
    outputs: &'a crate::model::Outputs,
) -> Result<Vec<StoredEntry<'a>>, WpsError> {
    let mut v = Vec::new();
    for r in requested {
        let spec = specs
            .iter()
            .find(|s| s.identifier == r.identifier)
            .ok_or_else(|| WpsError::no_applicable(format!("no output '{}'", r.identifier)))?;
        let value = outputs
            .get_format(&r.identifier, r.mime_type.as_deref())
            .ok_or_else(|| {
                WpsError::no_applicable(format!(
                    "the process produced no output '{}'",
                    r.identifier
                ))
            })?;
        let b64 = matches!(value, OutputValue::Complex { .. })
            && crate::model::format::is_base64(r.encoding.as_deref());
        let reference = if r.as_reference {
            let (data, mime): (Vec<u8>, &str) = match value {
                OutputValue::Literal(s) => (s.clone().into_bytes(), "text/plain"),
                OutputValue::Complex { mime_type, data } => (data.clone(), mime_type),
                OutputValue::BoundingBox(_) => (
                    crate::engine::service::bbox_document(value).into_bytes(),
                    "text/xml",
                ),
            };
            let data = match b64 {
                true => crate::model::format::encode_base64(&data).into_bytes(),
                false => data,
            };
            let name = format!("{}.{}", r.identifier, extension_for(mime));
            let rel = store.write_output(job_id, &name, &data).map_err(|e| {
                WpsError::no_applicable(format!("cannot store output '{}': {e}", r.identifier))
            })?;
            Some(format!("{output_url}{rel}"))
        } else {
            None
        };
        v.push((spec, value, reference, b64));
    }
    Ok(v)
}

/// The outputs a ResponseDocument asks for (all when it names none).
pub fn requested_outputs(specs: &[OutputSpec], asked: &[OutputRequest]) -> Vec<OutputRequest> {
    if asked.is_empty() {
        specs
            .iter()
            .map(|o| OutputRequest {
                identifier: o.identifier.clone(),
                ..Default::default()
            })
            .collect()
    } else {
        asked.to_vec()
    }
}

impl Runner {
    /// Starts the dispatcher thread of `service` in this child. `log` writes to the error log.
    pub fn start(service: Arc<Service>, pool: Arc<Pool>, claims: bool, log: Logger) -> Arc<Runner> {
        let runner = Arc::new(Runner {
            service,
            pool,
            claims,
            shared: Arc::new(Shared {
                wake: Mutex::new(false),
                cond: Condvar::new(),
                shutdown: AtomicBool::new(false),
                tickets: Mutex::new(Vec::new()),
            }),
            log,
            thread: Mutex::new(None),
            counters: Default::default(),
        });
        let r2 = runner.clone();
        let handle = std::thread::Builder::new()
            .name("wps-dispatch".into())
            .spawn(move || r2.dispatch_loop())
            .expect("cannot start the dispatcher thread");
        *runner.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        runner
    }

    fn store(&self) -> &JobStore {
        &self.service.store
    }

    /// Stops claiming jobs and waits for the dispatcher thread. (The pool, which may be
    /// shared, is shut down by its owner: jobs still running when the child exits are left to
    /// the next generation of children, since their locks die with this process.)
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.notify();
        if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    fn new_ticket(
        &self,
        spec: Option<JobSpec>,
        process: &str,
        limit: Duration,
        slot: Slot,
        lock: Option<JobLock>,
    ) -> Arc<Ticket> {
        let expired = format!(
            "Process '{process}' exceeded its time limit of {} s and was stopped",
            limit.as_secs()
        );
        self.ticket_with(spec, process, limit, expired, slot, lock)
    }

    fn ticket_with(
        &self,
        spec: Option<JobSpec>,
        process: &str,
        limit: Duration,
        expired: String,
        slot: Slot,
        lock: Option<JobLock>,
    ) -> Arc<Ticket> {
        let t = Arc::new(Ticket {
            spec,
            process: process.to_owned(),
            deadline: Instant::now() + limit,
            expired,
            cancel: Arc::new(CancelToken::default()),
            hold: Mutex::new(Some((slot, lock))),
            returned: AtomicBool::new(false),
            cancelled_at: Mutex::new(None),
            replaced: AtomicBool::new(false),
        });
        self.shared
            .tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t.clone());
        t
    }

    /// Runs a synchronous Execute: waits for a server-wide slot (up to the request timeout),
    /// then runs the process on the pool and waits for its outputs.
    pub fn execute_sync(
        &self,
        process: Arc<dyn Process>,
        inputs: Inputs,
    ) -> Result<crate::model::Outputs, WpsError> {
        let r = self.execute_sync_uncounted(process, inputs);
        match &r {
            Ok(_) => self.counters.succeeded(),
            Err(e) if e.code == ExceptionCode::ServerBusy => self.counters.rejected(),
            Err(_) => self.counters.failed(),
        }
        r
    }

    fn execute_sync_uncounted(
        &self,
        process: Arc<dyn Process>,
        inputs: Inputs,
    ) -> Result<crate::model::Outputs, WpsError> {
        let id = process.description().identifier.clone();
        let group = self.pool.config().name.clone();
        let request_timeout = self.pool.config().request_timeout;
        let start = Instant::now();
        let slot = self
            .store()
            .wait_slot(start + request_timeout)
            .map_err(|e| WpsError::no_applicable(format!("job store error: {e}")))?
            .ok_or_else(|| {
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
            self.new_ticket(None, &id, own_limit, slot, None)
        } else {
            self.ticket_with(None, &id, left, timeout_msg.clone(), slot, None)
        };
        let t2 = ticket.clone();
        let shared = self.shared.clone();
        let ctx =
            Context::new(ticket.cancel.clone(), Arc::new(|_, _| {})).with_log(self.log.clone());
        let result = self.pool.run(ticket.cancel.clone(), move || {
            let r = run_process(process.as_ref(), &inputs, &ctx);
            t2.returned.store(true, Ordering::SeqCst);
            t2.hold.lock().unwrap_or_else(|e| e.into_inner()).take();
            shared.notify();
            r
        });
        let stopped = ticket
            .cancelled_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
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
                    ticket.hold.lock().unwrap_or_else(|e| e.into_inner()).take();
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

    /// The ExecuteResponse document of a job in `status`, with its outputs when done.
    pub fn status_document(
        &self,
        spec: &JobSpec,
        status: Status,
        outputs: &[OutputEntry],
        with_location: bool,
    ) -> Result<String, WpsError> {
        let process = self.service.process(&spec.process).ok_or_else(|| {
            WpsError::no_applicable(format!("process '{}' is no longer offered", spec.process))
        })?;
        let location = spec.status_url();
        let doc = ExecuteDoc {
            lang: &spec.lang,
            service_instance: &spec.service_instance,
            status_location: with_location.then_some(location.as_str()),
            process: process.description(),
            creation_time: &now_rfc3339(),
            status,
            lineage: spec.response.lineage.then_some(Lineage {
                inputs: &spec.inputs,
                outputs: &spec.response.outputs,
            }),
            outputs,
        };
        Ok(response::execute_response(&doc))
    }

    /// The final document of a job from its outcome (storing referenced outputs).
    pub fn final_document(&self, spec: &JobSpec, outcome: &Outcome, with_location: bool) -> String {
        let failed = |e: &WpsError| {
            self.status_document(spec, Status::Failed(e), &[], with_location)
                .unwrap_or_else(|e2| response::exception_report(&e2, &spec.lang))
        };
        match outcome {
            Outcome::Failed(_) | Outcome::Crashed { .. } => {
                failed(&outcome.client_error().expect("a failed outcome"))
            }
            Outcome::Done(outputs) => {
                let Some(process) = self.service.process(&spec.process) else {
                    return failed(&WpsError::no_applicable("process no longer offered"));
                };
                let specs = &process.description().outputs;
                let requested = requested_outputs(specs, &spec.response.outputs);
                match entries(
                    self.store(),
                    &spec.id,
                    &spec.output_url,
                    specs,
                    &requested,
                    outputs,
                ) {
                    Err(e) => failed(&e),
                    Ok(list) => {
                        let es: Vec<OutputEntry> = list
                            .iter()
                            .map(|(s, v, r, b64)| OutputEntry {
                                spec: s,
                                value: v,
                                reference: r.as_deref(),
                                base64: *b64,
                            })
                            .collect();
                        let msg = format!("Process {} finished successfully", spec.process);
                        self.status_document(spec, Status::Succeeded(&msg), &es, with_location)
                            .unwrap_or_else(|e| failed(&e))
                    }
                }
            }
        }
    }

    /// Accepts an asynchronous job: its status document (ProcessAccepted) and its queue entry
    /// are on disk before this returns.
    pub fn submit(&self, spec: &JobSpec) -> Result<String, WpsError> {
        let doc = self.status_document(
            spec,
            Status::Accepted("Process accepted and queued"),
            &[],
            true,
        )?;
        let store_err =
            |e: std::io::Error| WpsError::no_applicable(format!("cannot store the job: {e}"));
        self.store()
            .write_status(&spec.id, &doc)
            .map_err(store_err)?;
        match self.store().enqueue(spec) {
            Ok(()) => {}
            Err(EnqueueError::Full(n)) => {
                let _ = std::fs::remove_file(self.store().status_path(&spec.id));
                return Err(WpsError::new(
                    ExceptionCode::ServerBusy,
                    None,
                    format!("{n} jobs are already waiting (maxprocesses); retry later"),
                ));
            }
            Err(EnqueueError::Io(e)) => {
                let _ = std::fs::remove_file(self.store().status_path(&spec.id));
                return Err(store_err(e));
            }
        }
        (self.log)(
            LogLevel::Info,
            &format!("job {} ({}) accepted", spec.id, spec.process),
        );
        self.shared.notify();
        Ok(doc)
    }

    /// Writes the final status of a job and releases it, once: returns false when the job was
    /// already finalised (e.g. written off at its time limit).
    fn finalize(&self, ticket: &Ticket, outcome: &Outcome) -> bool {
        let mut hold = ticket.hold.lock().unwrap_or_else(|e| e.into_inner());
        let Some((slot, lock)) = hold.take() else {
            return false;
        };
        if let (Some(spec), Some(lock)) = (&ticket.spec, lock) {
            match outcome {
                Outcome::Done(_) => self.counters.succeeded(),
                _ => self.counters.failed(),
            }
            let doc = self.final_document(spec, outcome, true);
            if let Err(e) = self.store().write_status(&spec.id, &doc) {
                (self.log)(
                    LogLevel::Error,
                    &format!("job {}: cannot write its status document: {e}", spec.id),
                );
            }
            if let Err(e) = self.store().finish(spec, lock) {
                (self.log)(LogLevel::Error, &format!("job {}: {e}", spec.id));
            }
            let state = match outcome {
                Outcome::Done(_) => "succeeded".to_string(),
                Outcome::Failed(e) => format!("failed: {}", e.text),
                Outcome::Crashed { process, message } => {
                    format!("process '{process}' panicked: {message}")
                }
            };
            (self.log)(
                LogLevel::Info,
                &format!(
                    "job {} ({}) finished in slot {}: {state}",
                    spec.id, spec.process, slot.index
                ),
            );
        }
        drop(slot);
        true
    }

    fn start_job(self: &Arc<Self>, spec: JobSpec, slot: Slot, lock: JobLock) {
        let store = self.store();
        let Some(process) = self.service.process(&spec.process).cloned() else {
            let e = WpsError::no_applicable(format!(
                "process '{}' is not offered by this service any more",
                spec.process
            ));
            let t = self.new_ticket(Some(spec), "", Duration::ZERO, slot, Some(lock));
            self.finalize(&t, &Outcome::Failed(e));
            return;
        };
        let limit = self.service.config.timeout_for(&spec.process);
        let slot_index = slot.index;
        let ticket = self.new_ticket(Some(spec.clone()), &spec.process, limit, slot, Some(lock));
        (self.log)(
            LogLevel::Info,
            &format!(
                "job {} ({}) started in slot {slot_index} (attempt {})",
                spec.id, spec.process, spec.attempts
            ),
        );
        if let Ok(doc) = self.status_document(
            &spec,
            Status::Started {
                percent: 0,
                message: "Process started",
            },
            &[],
            true,
        ) {
            let _ = store.write_status(&spec.id, &doc);
        }
        let me = self.clone();
        let t2 = ticket.clone();
        let progress_spec = spec.clone();
        let me2 = self.clone();
        let t3 = ticket.clone();
        let progress = Arc::new(move |pct: u32, msg: &str| {
            if !progress_spec.response.status {
                return;
            }
            // under the hold lock, so a final document is never overwritten
            let hold = t3.hold.lock().unwrap_or_else(|e| e.into_inner());
            if hold.is_some() {
                if let Ok(doc) = me2.status_document(
                    &progress_spec,
                    Status::Started {
                        percent: pct,
                        message: msg,
                    },
                    &[],
                    true,
                ) {
                    let _ = me2.store().write_status(&progress_spec.id, &doc);
                }
            }
        });
        let spawned = self.pool.spawn(move || {
            let ctx = Context::new(t2.cancel.clone(), progress).with_log(me.log.clone());
            // references are fetched here, on the worker (see src/inputs.rs)
            let outcome = match me
                .service
                .prepare_inputs(process.description(), &spec.inputs, None)
            {
                Ok(inputs) => run_process(process.as_ref(), &inputs, &ctx),
                Err(e) => Outcome::Failed(e),
            };
            t2.returned.store(true, Ordering::SeqCst);
            me.finalize(&t2, &outcome);
            me.shared.notify();
        });
        if spawned.is_err() {
            // the pool is shutting down: give the job back
            let mut hold = ticket.hold.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some((_slot, Some(lock))), Some(spec)) = (hold.take(), &ticket.spec) {
                let _ = store.requeue(spec.clone(), lock);
            }
            ticket.returned.store(true, Ordering::SeqCst);
        }
    }

    /// Enforces time limits: cancels overdue jobs, fails them at once (freeing their slot), and
    /// replaces workers that do not return.
    fn watchdog(&self) {
        let now = Instant::now();
        let tickets: Vec<Arc<Ticket>> = {
            let mut t = self
                .shared
                .tickets
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            t.retain(|t| !t.returned.load(Ordering::SeqCst));
            t.clone()
        };
        for t in tickets {
            let mut cancelled = t.cancelled_at.lock().unwrap_or_else(|e| e.into_inner());
            match *cancelled {
                None if now >= t.deadline => {
                    *cancelled = Some(now);
                    let e = WpsError::no_applicable(&t.expired);
                    // Finalise before cancelling: a cancelled worker returns at once and
                    // would otherwise win the race with a bare "was cancelled".
                    if self.finalize(&t, &Outcome::Failed(e.clone())) {
                        (self.log)(LogLevel::Warning, &e.text);
                    }
                    t.cancel.cancel();
                }
                Some(at)
                    if now >= at + WRITE_OFF_GRACE && !t.replaced.swap(true, Ordering::SeqCst) =>
                {
                    // the slot was released by finalize (or by the sync caller); keep the
                    // pool at its size
                    t.hold.lock().unwrap_or_else(|e| e.into_inner()).take();
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

    /// Re-queues (or fails) jobs whose Apache child is gone.
    fn adopt_orphans(self: &Arc<Self>) {
        let orphans = match self.store().take_orphans() {
            Ok(o) => o,
            Err(e) => {
                (self.log)(LogLevel::Error, &format!("orphan scan failed: {e}"));
                return;
            }
        };
        for (spec, lock) in orphans {
            let rerun = self
                .service
                .process(&spec.process)
                .map(|p| p.rerunnable())
                .unwrap_or(false);
            if rerun && spec.attempts < MAX_ATTEMPTS {
                (self.log)(
                    LogLevel::Warning,
                    &format!(
                        "job {} ({}): the Apache child {} running it is gone; re-queued",
                        spec.id, spec.process, spec.owner
                    ),
                );
                if let Err(e) = self.store().requeue(spec, lock) {
                    (self.log)(LogLevel::Error, &format!("re-queue failed: {e}"));
                }
            } else {
                let why = if rerun {
                    format!("it was interrupted {} times", spec.attempts)
                } else {
                    "the process is not safe to run again".to_string()
                };
                let e = WpsError::no_applicable(format!(
                    "The Apache child running this job (pid {}) exited before it finished, and {why}",
                    spec.owner
                ));
                (self.log)(LogLevel::Warning, &format!("job {}: {}", spec.id, e.text));
                let limit = Duration::ZERO;
                let slot = Slot::none();
                let t = self.new_ticket(Some(spec.clone()), &spec.process, limit, slot, Some(lock));
                self.finalize(&t, &Outcome::Failed(e));
                t.returned.store(true, Ordering::SeqCst);
            }
        }
    }

    fn dispatch_loop(self: Arc<Self>) {
        let mut last_scan = Instant::now() - ORPHAN_SCAN;
        let mut last_cleanup = Instant::now() - Duration::from_secs(3600);
        let mut cursor = QueueCursor::default();
        loop {
            let r = catch_unwind(AssertUnwindSafe(|| {
                self.watchdog();
                if !self.claims {
                    return;
                }
                if last_scan.elapsed() >= ORPHAN_SCAN {
                    last_scan = Instant::now();
                    self.adopt_orphans();
                }
                if let Some(age) = self.service.config.server.retention {
                    if last_cleanup.elapsed() >= Duration::from_secs(60) {
                        last_cleanup = Instant::now();
                        match self.store().remove_older_than(age) {
                            Ok(0) => {}
                            Ok(n) => (self.log)(
                                LogLevel::Info,
                                &format!("removed {n} finished job(s) older than the retention"),
                            ),
                            Err(e) => (self.log)(LogLevel::Warning, &format!("retention: {e}")),
                        }
                    }
                }
                // claim as many queued jobs as there are free workers and slots
                while !self.shared.shutdown.load(Ordering::SeqCst) && self.pool.has_idle_worker() {
                    let Ok(Some(slot)) = self.store().try_slot() else {
                        break;
                    };
                    match self.store().claim_next(&mut cursor) {
                        Ok(Some((spec, lock))) => self.start_job(spec, slot, lock),
                        Ok(None) => break,
                        Err(e) => {
                            (self.log)(LogLevel::Error, &format!("cannot claim a job: {e}"));
                            break;
                        }
                    }
                }
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
            let mut woken = self.shared.wake.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken {
                woken = self
                    .shared
                    .cond
                    .wait_timeout(woken, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
        }
    }
}

/// The unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
