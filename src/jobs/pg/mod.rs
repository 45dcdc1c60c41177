//! The PostgreSQL job store (`[server] jobstore = <connection string>`): one database shared by
//! several Apache hosts, output files under an `outputpath` they all share.
//!
//! - Jobs are rows of `wps_jobs`; the queue is the `accepted` rows by key (submit time + id).
//!   A claim takes the oldest with `FOR UPDATE SKIP LOCKED` (no job runs twice), sets a claim
//!   token, the owner and a lease on the database clock. Every later write of the claimant
//!   (progress, finish, requeue, output files) is compare-and-set on (id, attempt, token): a
//!   host that lost its claim cannot overwrite a newer attempt.
//! - `parallelprocesses` are rows of `wps_slots`, taken the same way, with a lease.
//! - Each child renews its leases and reads cancel requests in a thread of its own, which also
//!   `LISTEN`s, so a job queued or a slot freed on any host wakes idle dispatchers at once
//!   (they poll every few seconds as a fallback).
//! - A claim whose lease expired is an orphan for any host (attempt + 1 when it runs again);
//!   on the same machine, a dead holder is seen at once in `/proc`.
//! - Synchronous requests waiting for a slot wait in one line across the hosts: each child's
//!   longest-waiting request is a row of `wps_waiting` (`waiting`).
//! - Connections are made in Apache children only (`start_child`), a few per child.

mod background;
pub mod conn;
mod ident;
mod schema;
mod waiting;

use super::{valid_id, Claim, JobRecord, JobState, Slot, StoreError, StoreResult, Waker};
use crate::model::LogLevel;
use conn::Pool;
use ident::Ident;
use postgres::{Client, Row};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The columns a record is read from.
const COLS: &str = "id, key, process, state, progress, message, error, submitted, started, \
    finished, updated, attempt, owner, extract(epoch from lease_until)::bigint AS lease, \
    user_name, request, results";
/// The database clock in unix seconds.
const NOW_S: &str = "extract(epoch from now())::bigint";
/// The NOTIFY channel (payloads: `q` a job was queued, `s` a slot freed, `w` a child waits for
/// a slot, `c <id>` cancel).
pub const CHANNEL: &str = "mod_wps";
/// A statement's first common table expression that makes its commit not wait for the WAL to
/// be flushed (`synchronous_commit = off` for its transaction; the statement must read
/// `no_flush`): for the rows of slots and of the line, which a database crash may only make
/// stale (leases and freshness cover that), never for jobs.
const NO_FLUSH: &str = "no_flush AS (SELECT set_config('synchronous_commit', 'off', true))";
/// How long a `try_slot` that found every slot taken is believed without a slot being freed.
const SLOTS_FULL_BELIEF: Duration = Duration::from_millis(500);
/// How often an idle dispatcher looks at the queue without being told (LISTEN works / not).
const POLL_LISTENING: Duration = Duration::from_secs(5);
const POLL_DEAF: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A claim this child holds: what the background thread learnt about it.
#[derive(Debug, Clone)]
struct Held {
    id: String,
    /// A client dismissed the job.
    cancel: bool,
    /// Another host took it over (or it ended): stop, nothing will be recorded.
    lost: bool,
}

pub(crate) struct Inner {
    pool: Pool,
    workdir: PathBuf,
    outputs: PathBuf,
    slots: u32,
    max_queued: u32,
    lease: Duration,
    /// This process (the store is made in the Apache parent: see `me`).
    me: Mutex<Ident>,
    /// Tests: `me` is fixed.
    pretend: bool,
    schema: Mutex<bool>,
    /// A job may be waiting (queued here or announced by NOTIFY).
    work: AtomicBool,
    last_empty: Mutex<Option<Instant>>,
    /// When `try_slot` last found every slot taken, and whether one was freed since.
    slots_full_at: Mutex<Option<Instant>>,
    slot_freed: AtomicBool,
    listening: AtomicBool,
    /// When this child's first in line for a slot came, while one waits (`waiting`).
    waiting_since: Mutex<Option<u64>>,
    /// Counts the news of other children waiting for a slot, and the count when a look last
    /// found none waiting.
    waiting_news: AtomicU64,
    waiting_seen: AtomicU64,
    /// Counts the news of slots given back, for the waiting requests.
    freed_news: (Mutex<u64>, Condvar),
    /// Claims (by token) and slots (tokens) this child holds.
    held: Mutex<HashMap<String, Held>>,
    held_slots: Mutex<HashSet<String>>,
    wakers: Mutex<Vec<Waker>>,
    /// The process whose background thread runs (0: none).
    thread_pid: AtomicI32,
    stop: AtomicBool,
}

/// The store; see the module documentation.
pub struct PgStore {
    inner: Arc<Inner>,
}

/// The store's hold on a claim: its token.
struct ClaimHold(String);

/// A held slot, given back when dropped.
struct SlotHold {
    inner: Arc<Inner>,
    n: i32,
    token: String,
}

impl Drop for SlotHold {
    fn drop(&mut self) {
        lock(&self.inner.held_slots).remove(&self.token);
        let _ = self.inner.db(|c| {
            c.execute(
                &format!(
                    "WITH {NO_FLUSH}, freed AS (
                       UPDATE wps_slots SET token = NULL, owner = NULL, owner_ns = NULL, owner_pid = NULL,
                       owner_start = NULL, lease_until = NULL WHERE n = $1 AND token = $2)
                     SELECT pg_notify($3, 's') FROM no_flush"
                ),
                &[&self.n, &self.token, &CHANNEL],
            )
        });
        self.inner.slot_given_back();
        self.inner.wake();
    }
}

fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn bad_row(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("a damaged job row: {e}"))
}

fn state_of(s: &str) -> StoreResult<JobState> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(bad_row)
}

/// A job record from a row read with `COLS`.
fn record(r: &Row) -> StoreResult<JobRecord> {
    let request: Value = r.get("request");
    let field = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
    let error: Option<Value> = r.get("error");
    Ok(JobRecord {
        id: r.get("id"),
        key: r.get("key"),
        process: r.get("process"),
        inputs: serde_json::from_value(field("inputs")).map_err(bad_row)?,
        outputs: serde_json::from_value(field("outputs")).map_err(bad_row)?,
        state: state_of(r.get("state"))?,
        progress: r.get::<_, i32>("progress").clamp(0, 100) as u32,
        message: r.get("message"),
        error: error
            .map(serde_json::from_value)
            .transpose()
            .map_err(bad_row)?,
        submitted: r.get::<_, i64>("submitted").max(0) as u64,
        started: r.get::<_, Option<i64>>("started").map(|t| t.max(0) as u64),
        finished: r.get::<_, Option<i64>>("finished").map(|t| t.max(0) as u64),
        updated: r.get::<_, i64>("updated").max(0) as u64,
        attempt: r.get::<_, i32>("attempt").max(0) as u32,
        owner: r.get("owner"),
        lease_until: r.get::<_, Option<i64>>("lease").map(|t| t.max(0) as u64),
        user: r.get("user_name"),
        results: serde_json::from_value(r.get("results")).map_err(bad_row)?,
        protocol: field("protocol"),
    })
}

pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", token()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

impl Inner {
    /// Who this process is: found again after a fork (the store is made in the parent, which
    /// never uses it; its children do).
    fn me(&self) -> Ident {
        let mut me = lock(&self.me);
        if !self.pretend && me.pid != std::process::id() as i32 {
            *me = Ident::me();
        }
        me.clone()
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    fn log(&self, level: LogLevel, msg: &str) {
        self.pool.log(level, msg)
    }

    /// What `try_slot` answers without the database (`None`: ask it): a slot when they are
    /// unlimited; none when it found every slot taken a moment ago and none was freed since.
    fn slot_without_asking(&self) -> Option<Option<Slot>> {
        if self.slots == u32::MAX {
            return Some(Some(Slot::new(u32::MAX, None)));
        }
        let believed_full = lock(&self.slots_full_at)
            .is_some_and(|t| t.elapsed() < SLOTS_FULL_BELIEF)
            && !self.slot_freed.swap(false, Ordering::SeqCst);
        believed_full.then_some(None)
    }

    fn wake(&self) {
        for w in lock(&self.wakers).iter() {
            w();
        }
    }

    /// Creates or migrates the schema once in this process, then checks the shared outputpath.
    fn ensure_schema(&self) -> StoreResult<()> {
        let mut done = lock(&self.schema);
        if *done {
            return Ok(());
        }
        let mut c = self.pool.get()?;
        match schema::ensure(&mut c, self.slots) {
            Ok(Ok(notes)) => {
                for n in notes {
                    self.log(LogLevel::Warning, &format!("{}: {n}", self.pool.location()));
                }
            }
            Ok(Err(m)) => {
                self.log(LogLevel::Error, &m);
                return Err(StoreError::Unavailable(m));
            }
            Err(e) => return Err(conn::store_err(&e)),
        }
        let me = self.me();
        let host = me.name.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
        match schema::check_hosts(&mut c, host, &self.outputs, self.slots) {
            Ok(complaints) => {
                for m in complaints {
                    self.log(LogLevel::Error, &format!("job store: {m}"));
                }
            }
            Err(m) => self.log(LogLevel::Error, &format!("job store: {m}")),
        }
        *done = true;
        Ok(())
    }

    /// Runs `f` on a connection of this child's pool (the schema is ready).
    fn db<T>(&self, f: impl FnMut(&mut Client) -> Result<T, postgres::Error>) -> StoreResult<T> {
        self.ensure_schema()?;
        self.pool.run(f)
    }

    fn remove_outputs(&self, id: &str) {
        if valid_id(id) {
            let _ = std::fs::remove_dir_all(self.outputs.join(id));
        }
    }

    fn hold(&self, id: &str, token: &str) {
        lock(&self.held).insert(
            token.to_owned(),
            Held {
                id: id.to_owned(),
                cancel: false,
                lost: false,
            },
        );
    }

    fn release(&self, token: &str) {
        lock(&self.held).remove(token);
    }
}

fn claim_token(claim: &Claim) -> String {
    claim
        .hold()
        .downcast_ref::<ClaimHold>()
        .map(|h| h.0.clone())
        .unwrap_or_default()
}

impl PgStore {
    /// A store for the connection `settings` (see [`conn::settings`]); no connection is made
    /// before `start_child`. `slots`: parallelprocesses (`u32::MAX` = unlimited);
    /// `max_queued`: maxprocesses; `connections`: the pool size of each child.
    pub fn new(
        settings: postgres::Config,
        workdir: PathBuf,
        outputs: PathBuf,
        slots: u32,
        max_queued: u32,
        connections: u32,
        lease: Duration,
    ) -> PgStore {
        PgStore {
            inner: Arc::new(Inner {
                pool: Pool::new(settings, connections as usize),
                workdir,
                outputs,
                slots,
                max_queued,
                lease,
                me: Mutex::new(Ident::me()),
                pretend: false,
                schema: Mutex::new(false),
                work: AtomicBool::new(true),
                last_empty: Mutex::new(None),
                slots_full_at: Mutex::new(None),
                slot_freed: AtomicBool::new(true),
                listening: AtomicBool::new(false),
                waiting_since: Mutex::new(None),
                waiting_news: AtomicU64::new(1),
                waiting_seen: AtomicU64::new(0),
                freed_news: (Mutex::new(0), Condvar::new()),
                held: Mutex::new(HashMap::new()),
                held_slots: Mutex::new(HashSet::new()),
                wakers: Mutex::new(Vec::new()),
                thread_pid: AtomicI32::new(0),
                stop: AtomicBool::new(false),
            }),
        }
    }

    /// `postgresql://user@host:port/db` (no password).
    pub fn location(&self) -> String {
        self.inner.pool.location().to_owned()
    }

    pub fn outputs(&self) -> &Path {
        &self.inner.outputs
    }

    /// The claim rows of the dead (gone from this machine, or lease expired) for adoption.
    /// Returns the rows as taken, the new token and the previous owner.
    fn adopt(&self, c: &mut Client) -> Result<Vec<(Row, String, Option<String>)>, postgres::Error> {
        let me = &self.inner.me();
        let rows = c.query(
            "SELECT id, token, owner_ns, owner_pid, owner_start, coalesce(lease_until < now(), true), owner
             FROM wps_jobs WHERE state = 'running' AND (lease_until < now() OR lease_until IS NULL OR owner_ns = $1)",
            &[&me.ns],
        )?;
        let held: HashSet<String> = lock(&self.inner.held).keys().cloned().collect();
        // after an outage, owners get a moment to renew before their leases count
        let leases_count = self.inner.pool.up_for() >= self.inner.lease / 2;
        let mut out = Vec::new();
        for r in rows {
            let old: Option<String> = r.get(1);
            if old.as_ref().is_some_and(|t| held.contains(t)) {
                continue;
            }
            let (ns, pid, start): (Option<String>, Option<i32>, Option<i64>) =
                (r.get(2), r.get(3), r.get(4));
            let expired: bool = r.get(5);
            let gone_here = ns.as_deref() == Some(me.ns.as_str())
                && pid.is_some_and(|p| p != me.pid && ident::is_gone(p, start.unwrap_or(0)));
            if !(gone_here || expired && leases_count) {
                continue;
            }
            let new = token();
            let id: String = r.get(0);
            let taken = c.query_opt(
                &format!(
                    "UPDATE wps_jobs SET token = $2, owner = $4, owner_ns = $5, owner_pid = $6, owner_start = $7,
                     lease_until = now() + make_interval(secs => $8)
                     WHERE id = $1 AND token IS NOT DISTINCT FROM $3 AND state = 'running'
                     RETURNING {COLS}, cancel"
                ),
                &[&id, &new, &old, &me.name, &me.ns, &me.pid, &me.start, &self.inner.lease_secs()],
            )?;
            if let Some(row) = taken {
                out.push((row, new, r.get(6)));
            }
        }
        // slots of holders gone from this machine
        for r in c.query(
            "SELECT n, token, owner_pid, owner_start FROM wps_slots
             WHERE token IS NOT NULL AND owner_ns = $1 AND owner_pid <> $2",
            &[&me.ns, &me.pid],
        )? {
            let (n, t, pid, start): (i32, String, i32, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if ident::is_gone(pid, start) {
                c.execute(
                    "UPDATE wps_slots SET token = NULL, owner = NULL, owner_ns = NULL, owner_pid = NULL, owner_start = NULL, lease_until = NULL WHERE n = $1 AND token = $2",
                    &[&n, &t],
                )?;
                c.execute("SELECT pg_notify($1, 's')", &[&CHANNEL])?;
            }
        }
        Ok(out)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
    }
}

mod store;

#[cfg(test)]
mod tests;

#[cfg(test)]
impl PgStore {
    /// Pretends to be process `pid` of another host (tests: several hosts in one process).
    fn pretend(mut self, pid: i32) -> PgStore {
        let inner = Arc::get_mut(&mut self.inner).expect("a new store");
        inner.me = Mutex::new(Ident {
            name: format!("host{pid}:{pid}"),
            ns: format!("test-host-{pid}"),
            pid,
            start: 1,
        });
        inner.pretend = true;
        self
    }

    /// Stops the background thread (a frozen host renews nothing).
    fn freeze(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
    }
}
