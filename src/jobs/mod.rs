//! Jobs: the protocol-neutral [`JobRecord`] and the [`JobStore`] trait every store implements:
//! the file store under `workdir`, shared by all Apache children of one host, and the
//! PostgreSQL store, shared by several hosts (`[server] jobstore`).
//!
//! A store keeps the records, the queue (oldest first, bounded by `maxprocesses`), the
//! `parallelprocesses` slots, who runs which job (claims, orphans of a dead owner), cancel
//! requests, and the output files of each job.

pub mod file;
pub mod pg;
pub mod record;

pub use file::FileStore;
pub use pg::PgStore;
pub use record::{new_id, unix_now, valid_id, Finish, JobOutput, JobRecord, JobState, StoredValue};

use crate::model::LogLevel;
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Where a store's own log lines go (the server's error log).
pub type StoreLog = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;
/// Wakes a dispatcher (a job was queued or a slot freed, perhaps on another host).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Why a store operation failed.
#[derive(Debug)]
pub enum StoreError {
    /// `maxprocesses` jobs are already waiting.
    Full(u32),
    /// The store cannot be read or written.
    Unavailable(String),
    /// The store cannot be reached now (a database that is down or restarting): retry later.
    Down(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Full(n) => write!(f, "{n} jobs are already waiting (maxprocesses)"),
            StoreError::Unavailable(m) => write!(f, "job store error: {m}"),
            StoreError::Down(m) => write!(f, "the job store is not reachable now: {m}"),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A held `parallelprocesses` slot; released when dropped (or when its holder dies).
pub struct Slot {
    pub index: u32,
    _hold: Option<Box<dyn Any + Send + Sync>>,
}

impl Slot {
    pub fn new(index: u32, hold: Option<Box<dyn Any + Send + Sync>>) -> Slot {
        Slot { index, _hold: hold }
    }
    /// No slot (for finalising a job that holds none).
    pub fn none() -> Slot {
        Slot::new(u32::MAX, None)
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slot({})", self.index)
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for all the processes of a host (the times
/// of `WaitingLine`).
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Who waits for a `parallelprocesses` slot in the other processes (Apache children) that
/// share the store: each publishes when its longest-waiting synchronous request came, so that
/// a freed slot goes to the one that has waited longest, whichever child frees it. Times are
/// `CLOCK_MONOTONIC` nanoseconds (one clock for the processes of a host; a store shared by
/// hosts carries them over to its own clock as ages).
pub trait WaitingLine: Send + Sync {
    /// Publishes when this process's longest-waiting request came, or (`None`) that none waits.
    fn publish(&self, since: Option<u64>) -> StoreResult<()>;
    /// Whether a request of another process has been waiting since before `since`.
    fn someone_before(&self, since: u64) -> StoreResult<bool>;
    /// Something to wait on until a slot may have been freed, by any process (`None`: the
    /// store cannot tell; the waiting request looks again after a pause).
    fn freed_watch(&self) -> StoreResult<Option<Box<dyn FreedWatch>>> {
        Ok(None)
    }
}

/// See `WaitingLine::freed_watch`.
pub trait FreedWatch: Send {
    /// Returns when a slot may have been freed since the watch was made or last returned, or
    /// after `timeout`.
    fn wait(&self, timeout: Duration) -> StoreResult<()>;
}

/// A job taken from the queue (or adopted as an orphan) by this process: while the claim is
/// held, no one else runs the job. It is given back with `finish` or `requeue`.
pub struct Claim {
    pub record: JobRecord,
    hold: Box<dyn Any + Send + Sync>,
}

impl Claim {
    pub fn new(record: JobRecord, hold: Box<dyn Any + Send + Sync>) -> Claim {
        Claim { record, hold }
    }
    /// A claim held elsewhere: the job's attempt `record.attempt` is claimed by another process
    /// (e.g. the Apache child that dispatched it to Slurm), and the process that runs it (the
    /// Slurm worker) records progress and the end through this one. Writes are checked against
    /// the job's attempt like any claim's; finishing it releases nothing.
    pub fn detached(record: JobRecord) -> Claim {
        Claim {
            record,
            hold: Box::new(()),
        }
    }
    /// The store's own hold on the claim (e.g. a lock file).
    pub fn hold(&self) -> &(dyn Any + Send + Sync) {
        self.hold.as_ref()
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Claim({} attempt {})",
            self.record.id, self.record.attempt
        )
    }
}

/// Whose jobs `list` returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Owner {
    #[default]
    Any,
    /// Submitted by this user.
    User(String),
    /// Submitted without authentication.
    Anonymous,
}

impl JobQuery {
    /// Whether a record passes the filters (not the paging).
    pub fn matches(&self, r: &JobRecord) -> bool {
        (self.processes.is_empty() || self.processes.contains(&r.process))
            && (self.states.is_empty() || self.states.contains(&r.state))
            && self.owner.matches(r.user.as_deref())
            && self.submitted_from.is_none_or(|t| r.submitted >= t)
            && self.submitted_to.is_none_or(|t| r.submitted <= t)
    }
}

impl Owner {
    pub fn matches(&self, user: Option<&str>) -> bool {
        match self {
            Owner::Any => true,
            Owner::User(u) => user == Some(u.as_str()),
            Owner::Anonymous => user.is_none(),
        }
    }
}

/// Which jobs `list` returns, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobQuery {
    /// Only these processes (any when empty).
    pub processes: Vec<String>,
    /// Only these states (any when empty).
    pub states: Vec<JobState>,
    /// Only the jobs of this owner.
    pub owner: Owner,
    /// Only jobs submitted at or after this unix time (seconds).
    pub submitted_from: Option<u64>,
    /// Only jobs submitted at or before this unix time (seconds).
    pub submitted_to: Option<u64>,
    pub offset: usize,
    /// At most this many (all when `None`).
    pub limit: Option<usize>,
}

/// Server-wide numbers of a store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobCounts {
    pub queued: usize,
    /// The records of the running jobs.
    pub running: Vec<JobRecord>,
    /// Finished jobs still kept (see `retention`).
    pub finished: usize,
}

/// A job store. Every operation is safe to call from any thread of any Apache child.
pub trait JobStore: Send + Sync {
    /// Creates what the store needs; `owner` is the uid/gid Apache's children run as (when the
    /// server starts as root). Returns lines for the error log (e.g. about an old layout).
    fn prepare(&self, owner: Option<(u32, u32)>) -> StoreResult<Vec<String>>;
    /// Adds an accepted job to the queue durably, unless `maxprocesses` jobs wait already.
    fn enqueue(&self, job: &JobRecord) -> StoreResult<()>;
    /// Takes a free `parallelprocesses` slot without waiting.
    fn try_slot(&self) -> StoreResult<Option<Slot>>;
    /// Takes a slot, like `try_slot`, for a moment (a quick process): giving it back need not
    /// be told to the requests waiting in line (`WaitingLine::freed_watch`), who look again
    /// after a pause anyway. A store where taking a slot costs far more than a quick process
    /// may only find one free (the slot returned then holds nothing).
    fn try_slot_for_a_moment(&self) -> StoreResult<Option<Slot>> {
        self.try_slot()
    }
    /// The line of the processes' waiting requests for a slot, if the store keeps one (and
    /// the slots are limited).
    fn waiting_line(&self) -> Option<&dyn WaitingLine> {
        None
    }
    /// Claims the oldest queued job (the caller holds a slot): attempt + 1, state running.
    fn claim(&self) -> StoreResult<Option<Claim>>;
    /// Claims the oldest queued job of a process `wanted` accepts (the others keep their
    /// place), like `claim`: the dispatcher uses it when jobs of some processes run elsewhere
    /// (Slurm) and only some executors can take a job now.
    fn claim_matching(&self, _wanted: &dyn Fn(&str) -> bool) -> StoreResult<Option<Claim>> {
        Err(StoreError::Unavailable(
            "this job store cannot claim the jobs of some processes only (needed by dispatch = slurm)"
                .into(),
        ))
    }
    /// Extends the claim's lease.
    fn renew(&self, claim: &Claim) -> StoreResult<()>;
    /// Records progress of a claimed job.
    fn progress(&self, claim: &Claim, percent: u32, message: &str) -> StoreResult<()>;
    /// Records the end of a claimed job and releases it. Returns false (and writes nothing)
    /// when the claim is no longer the job's current attempt, the job was dismissed, or its
    /// end is recorded already (by a detached claim of the same attempt). Progress, renewals
    /// and ends may come from several processes at once (an Apache child and a Slurm worker):
    /// each is one atomic read-modify-write of the record.
    fn finish(&self, claim: Claim, how: Finish) -> StoreResult<bool>;
    /// Puts a claimed job back at its old place in the queue.
    fn requeue(&self, claim: Claim) -> StoreResult<()>;
    /// Claims the running jobs whose owner is gone.
    fn orphans(&self) -> StoreResult<Vec<Claim>>;
    /// Whether a client asked to dismiss this claimed job.
    fn cancel_requested(&self, claim: &Claim) -> bool;
    /// Dismisses a job: a queued one leaves the queue, a running one is cancelled by its
    /// owner (whichever child or host runs it), a finished one loses its outputs. The job is
    /// gone for `get` at once. Returns its record as it was, `None` for an unknown job.
    fn dismiss(&self, id: &str) -> StoreResult<Option<JobRecord>>;
    /// A job's record (`None`: unknown or dismissed).
    fn get(&self, id: &str) -> StoreResult<Option<JobRecord>>;
    fn list(&self, query: &JobQuery) -> StoreResult<Vec<JobRecord>>;
    fn counts(&self) -> StoreResult<JobCounts>;
    /// Stores an output file of a job (or of a synchronous request, with an id of its own).
    fn write_output(&self, id: &str, name: &str, data: &[u8]) -> StoreResult<()>;
    /// An output file (`None` when there is none by that name).
    fn read_output(&self, id: &str, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Removes finished jobs, and outputs of synchronous requests, older than `age`; stops
    /// early (between jobs) once `go_on` says no.
    fn remove_expired(&self, age: Duration, go_on: &dyn Fn() -> bool) -> StoreResult<usize>;
    /// A status document written by an earlier version of the store, if any.
    fn legacy_status(&self, _id: &str) -> Option<Vec<u8>> {
        None
    }
    /// Called in each Apache child (never in the parent) before the store is used there:
    /// a store with connections or threads of its own starts them now. `wake` is called when
    /// work may be waiting (a job queued or a slot freed elsewhere).
    fn start_child(&self, _log: StoreLog, _wake: Option<Waker>) {}
    /// Whether `claim` may find a queued job: false when nothing was queued or freed since the
    /// last empty `claim` (a store that is told of new jobs saves the dispatcher a query).
    fn may_have_work(&self) -> bool {
        true
    }
}

/// `host:pid` of this process, as a claim's holder is shown to people (logs, the status page,
/// the job record's owner). The host name is read once per process.
pub(crate) fn host_pid() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let host = HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_owned()
    });
    format!("{host}:{}", std::process::id())
}

/// A file name of a job's output: letters, digits, `._-`, not hidden, not too long.
pub fn valid_output_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}
