//! What the status page shows, as data: the worker pools and services of this Apache child
//! (pool counters, succeeded/failed totals) and the server-wide state of each service's job
//! store. `front::status_page` renders it as HTML or JSON.
//!
//! What is per child and what is server-wide:
//!
//! - **per child** (the Apache child that serves the status request): the pools (threads
//!   busy/idle, queue length, completed/panicked/timed-out totals) and the
//!   succeeded/failed/rejected totals of each service ([`JobCounters`], counted by the
//!   runners of this child since it started);
//! - **server-wide** (read from the job store shared by all children): each service's running
//!   jobs (with the pid of the child running them), queued jobs and finished jobs still kept
//!   (subject to `retention`).

use super::pool::Pool;
pub use super::runner::JobCounters;
use super::runner::Runner;
use crate::engine::{Caller, Service};
use crate::jobs::JobRecord;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// One worker pool of this child.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub threads: usize,
    pub busy: usize,
    pub idle: usize,
    /// Jobs waiting for a worker of this pool (in this child).
    pub queued: usize,
    pub queue_capacity: usize,
    pub completed: usize,
    pub panicked: usize,
    pub timed_out: usize,
}

impl PoolStatus {
    pub fn of(pool: &Pool) -> PoolStatus {
        let s = &pool.stats;
        let cfg = pool.config();
        let busy = s.busy.load(Ordering::SeqCst);
        PoolStatus {
            name: cfg.name.clone(),
            threads: cfg.threads,
            busy,
            idle: cfg.threads.saturating_sub(busy),
            queued: s.queued.load(Ordering::SeqCst),
            queue_capacity: cfg.queue,
            completed: s.completed.load(Ordering::SeqCst),
            panicked: s.panicked.load(Ordering::SeqCst),
            timed_out: s.timed_out.load(Ordering::SeqCst),
        }
    }
}

/// A job in the store's `running/` directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningJob {
    pub id: String,
    pub process: String,
    /// Pid of the Apache child running it.
    pub owner: u32,
    /// Unix time of submission.
    pub submitted: u64,
    pub attempts: u32,
}

impl From<&JobRecord> for RunningJob {
    fn from(s: &JobRecord) -> Self {
        RunningJob {
            id: s.id.clone(),
            process: s.process.clone(),
            owner: s
                .owner
                .as_deref()
                .and_then(|o| o.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            submitted: s.submitted,
            attempts: s.attempt,
        }
    }
}

/// One mounted service (`WPSScriptAlias`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStatus {
    pub url: String,
    /// The virtual host it is mounted in (`None`: the main server, visible in every vhost).
    pub vhost: Option<String>,
    pub config: String,
    pub title: String,
    pub process_group: String,
    /// Server-wide: asynchronous jobs running now, in any child.
    pub running: Vec<RunningJob>,
    /// Server-wide: asynchronous jobs waiting in the queue.
    pub queued: usize,
    /// Server-wide: finished asynchronous jobs still kept in the store (see `retention`).
    pub finished_kept: usize,
    /// Per child: Execute requests and jobs that succeeded since the child started.
    pub succeeded: u64,
    /// Per child: Execute requests and jobs that failed since the child started.
    pub failed: u64,
    /// Per child: synchronous Execute requests refused with ServerBusy.
    pub rejected: u64,
}

impl ServiceStatus {
    /// Reads the server-wide part from the job store and sums the counters of `runners` (this
    /// child's runners of the service). Running jobs' ids (the only secret that protects a
    /// job) are shown only to whom `caller` may see every job (`jobaccess`, `jobadmins`).
    pub fn collect<'a>(
        url: &str,
        vhost: Option<String>,
        service: &Service,
        process_group: &str,
        runners: impl IntoIterator<Item = &'a Runner>,
        caller: Caller,
    ) -> ServiceStatus {
        let counts = service.store.counts().unwrap_or_default();
        let mut running: Vec<RunningJob> = counts.running.iter().map(RunningJob::from).collect();
        if !service.is_job_admin(caller) {
            for j in &mut running {
                j.id = "(hidden)".into();
            }
        }
        running.sort_by(|a, b| (a.submitted, &a.id).cmp(&(b.submitted, &b.id)));
        let (mut succeeded, mut failed, mut rejected) = (0, 0, 0);
        for r in runners {
            succeeded += r.counters.succeeded.load(Ordering::Relaxed);
            failed += r.counters.failed.load(Ordering::Relaxed);
            rejected += r.counters.rejected.load(Ordering::Relaxed);
        }
        ServiceStatus {
            url: url.to_owned(),
            vhost,
            config: service.config.path.display().to_string(),
            title: service.config.metadata.title.clone(),
            process_group: process_group.to_owned(),
            running,
            queued: counts.queued,
            finished_kept: counts.finished,
            succeeded,
            failed,
            rejected,
        }
    }
}

/// The whole page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStatus {
    pub version: String,
    /// Unix time of this snapshot.
    pub now: u64,
    /// Unix time the server last (re)read its configuration (start, restart, graceful).
    pub server_started: u64,
    pub server_uptime: u64,
    /// The Apache child that answered, and when it started.
    pub pid: u32,
    pub child_started: u64,
    pub child_uptime: u64,
    pub pools: Vec<PoolStatus>,
    pub services: Vec<ServiceStatus>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl ServerStatus {
    pub fn new(
        now: SystemTime,
        server_started: SystemTime,
        child_started: SystemTime,
        pools: Vec<PoolStatus>,
        services: Vec<ServiceStatus>,
    ) -> ServerStatus {
        let (n, s, c) = (unix(now), unix(server_started), unix(child_started));
        ServerStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            now: n,
            server_started: s,
            server_uptime: n.saturating_sub(s),
            pid: std::process::id(),
            child_started: c,
            child_uptime: n.saturating_sub(c),
            pools,
            services,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::pool::PoolConfig;
    use std::time::Duration;

    #[test]
    fn pool_status_reads_the_counters() {
        let mut cfg = PoolConfig::new("t");
        cfg.threads = 2;
        let pool = Pool::start(cfg);
        let token = std::sync::Arc::new(crate::model::CancelToken::default());
        assert_eq!(pool.run(token, || 1 + 1), Ok(2));
        // the worker counts the job as completed just after handing over its result
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while PoolStatus::of(&pool).completed == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let p = PoolStatus::of(&pool);
        assert_eq!((p.threads, p.busy, p.idle, p.queued), (2, 0, 2, 0));
        assert_eq!(p.completed, 1);
        assert_eq!(p.name, "t");
        pool.shutdown(true);
    }

    #[test]
    fn counters_count() {
        let c = JobCounters::default();
        c.succeeded();
        c.succeeded();
        c.failed();
        c.rejected();
        assert_eq!(c.succeeded.load(Ordering::Relaxed), 2);
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
        assert_eq!(c.rejected.load(Ordering::Relaxed), 1);
    }
}
