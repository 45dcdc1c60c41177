//! The server status page (`SetHandler wps-status`, like mod_status): a snapshot of the
//! worker pools and services of the Apache child that answers, plus the server-wide state of
//! each service's job store, rendered as HTML or (with `?json`) as JSON.
//!
//! What is per child and what is server-wide:
//!
//! - **per child** (the Apache child that serves the status request): the pools (threads
//!   busy/idle, queue length, completed/panicked/timed-out totals, from [`PoolStats`]) and the
//!   succeeded/failed/rejected totals of each service ([`JobCounters`], counted by the
//!   runners of this child since it started);
//! - **server-wide** (read from the job store shared by all children): each service's running
//!   jobs (with the pid of the child running them), queued jobs and finished jobs still kept
//!   (`done/`, subject to `retention`).
//!
//! This module is safe Rust with no Apache types; `apache::status` collects the data.

use crate::engine::service::{HttpResponse, Service};
use crate::exec::pool::Pool;
use crate::exec::runner::Runner;
use crate::jobs::store::JobSpec;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

impl From<&JobSpec> for RunningJob {
    fn from(s: &JobSpec) -> Self {
        RunningJob {
            id: s.id.clone(),
            process: s.process.clone(),
            owner: s.owner,
            submitted: s.submitted,
            attempts: s.attempts,
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
    /// child's runners of the service).
    pub fn collect<'a>(
        url: &str,
        vhost: Option<String>,
        service: &Service,
        process_group: &str,
        runners: impl IntoIterator<Item = &'a Runner>,
    ) -> ServiceStatus {
        let store = &service.store;
        let mut running: Vec<RunningJob> = store.running().iter().map(RunningJob::from).collect();
        running.sort_by(|a, b| (a.submitted, &a.id).cmp(&(b.submitted, &b.id)));
        let finished_kept = std::fs::read_dir(store.root().join("done"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0);
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
            queued: store.queued(),
            finished_kept,
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

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the status serialises")
    }

    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>mod_wps status</title>\n<style>body{{font-family:sans-serif}}\
             table{{border-collapse:collapse;margin-bottom:1em}}\
             th,td{{border:1px solid #999;padding:2px 6px;text-align:left}}\
             td.n{{text-align:right}}</style></head><body>\n\
             <h1>mod_wps status</h1>\n<dl>\
             <dt>Version</dt><dd>mod_wps {}</dd>\
             <dt>Current time</dt><dd>{}</dd>\
             <dt>Server (re)started</dt><dd>{}</dd><dt>Server uptime</dt><dd>{}</dd>\
             <dt>Child pid</dt><dd>{}</dd><dt>Child started</dt><dd>{}</dd>\
             <dt>Child uptime</dt><dd>{}</dd></dl>\n",
            esc(&self.version),
            rfc3339(self.now),
            rfc3339(self.server_started),
            duration(self.server_uptime),
            self.pid,
            rfc3339(self.child_started),
            duration(self.child_uptime),
        );
        h.push_str(
            "<h2>Worker pools (this child)</h2>\n<table><tr><th>Process group</th>\
             <th>Threads</th><th>Busy</th><th>Idle</th><th>Queued</th><th>Queue size</th>\
             <th>Completed</th><th>Panicked</th><th>Timed out</th></tr>\n",
        );
        for p in &self.pools {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&p.name),
                p.threads,
                p.busy,
                p.idle,
                p.queued,
                p.queue_capacity,
                p.completed,
                p.panicked,
                p.timed_out
            );
        }
        h.push_str("</table>\n<h2>Services</h2>\n");
        if self.services.is_empty() {
            h.push_str("<p>No WPSScriptAlias is configured.</p>\n");
        }
        h.push_str(
            "<table><tr><th>URL</th><th>Virtual host</th><th>Title</th><th>Config</th>\
             <th>Process group</th><th>Running (server)</th><th>Queued (server)</th>\
             <th>Finished, kept (server)</th><th>Succeeded (child)</th>\
             <th>Failed (child)</th><th>Rejected (child)</th></tr>\n",
        );
        for s in &self.services {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&s.url),
                esc(s.vhost.as_deref().unwrap_or("(main server)")),
                esc(&s.title),
                esc(&s.config),
                esc(&s.process_group),
                s.running.len(),
                s.queued,
                s.finished_kept,
                s.succeeded,
                s.failed,
                s.rejected
            );
        }
        h.push_str("</table>\n");
        let running: Vec<_> = self
            .services
            .iter()
            .flat_map(|s| s.running.iter().map(move |j| (s, j)))
            .collect();
        if !running.is_empty() {
            h.push_str(
                "<h2>Running jobs (server)</h2>\n<table><tr><th>Service</th><th>Job</th>\
                 <th>Process</th><th>Child pid</th><th>Submitted</th><th>Attempt</th></tr>\n",
            );
            for (s, j) in running {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
                     <td class=\"n\">{}</td></tr>",
                    esc(&s.url),
                    esc(&j.id),
                    esc(&j.process),
                    j.owner,
                    rfc3339(j.submitted),
                    j.attempts
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str(
            "<p>Pools and succeeded/failed/rejected totals are those of the Apache child that \
             answered this request; running, queued and finished jobs are server-wide. \
             <a href=\"?json\">JSON</a></p>\n</body></html>\n",
        );
        h
    }
}

/// Whether the query string asks for JSON (`?json`, also `json=1` or `format=json`).
pub fn wants_json(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| {
        k.eq_ignore_ascii_case("json") || (k.eq_ignore_ascii_case("format") && v == "json")
    })
}

/// The HTTP answer for a status request with `query`.
pub fn response(status: &ServerStatus, query: &str) -> HttpResponse {
    let (content_type, body) = if wants_json(query) {
        ("application/json", status.to_json())
    } else {
        ("text/html; charset=utf-8", status.to_html())
    };
    HttpResponse {
        status: 200,
        content_type: content_type.to_owned(),
        headers: vec![("Cache-Control".to_owned(), "no-store".to_owned())],
        body: body.into_bytes(),
        log: Vec::new(),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

/// `3 days 4 hours 5 minutes 6 seconds`-style uptime, like mod_status.
fn duration(mut secs: u64) -> String {
    let mut parts = Vec::new();
    for (unit, len) in [("day", 86_400), ("hour", 3_600), ("minute", 60)] {
        let n = secs / len;
        secs %= len;
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    if secs > 0 || parts.is_empty() {
        parts.push(format!("{secs} second{}", if secs == 1 { "" } else { "s" }));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::pool::PoolConfig;

    fn sample() -> ServerStatus {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        ServerStatus::new(
            t0 + Duration::from_secs(90_061),
            t0,
            t0 + Duration::from_secs(90_000),
            vec![PoolStatus {
                name: "py<wps>".into(),
                threads: 5,
                busy: 2,
                idle: 3,
                queued: 1,
                queue_capacity: 100,
                completed: 7,
                panicked: 1,
                timed_out: 0,
            }],
            vec![ServiceStatus {
                url: "/wps".into(),
                vhost: Some("a&b:8080".into()),
                config: "/etc/wps/wps.cfg".into(),
                title: "Demo <script>alert('x')</script> & \"more\"".into(),
                process_group: "pywps".into(),
                running: vec![RunningJob {
                    id: "2b7b3f4e-0000-4000-8000-000000000001".into(),
                    process: "sleep".into(),
                    owner: 4242,
                    submitted: 1_700_000_100,
                    attempts: 1,
                }],
                queued: 3,
                finished_kept: 9,
                succeeded: 5,
                failed: 2,
                rejected: 1,
            }],
        )
    }

    #[test]
    fn uptimes_and_durations() {
        let s = sample();
        assert_eq!(s.server_uptime, 90_061);
        assert_eq!(s.child_uptime, 61);
        assert_eq!(duration(90_061), "1 day 1 hour 1 minute 1 second");
        assert_eq!(duration(0), "0 seconds");
        assert_eq!(duration(7_200), "2 hours");
    }

    #[test]
    fn html_is_escaped() {
        let h = sample().to_html();
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains(
            "Demo &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"
        ));
        assert!(h.contains("<td>py&lt;wps&gt;</td>"));
        assert!(h.contains("<td>a&amp;b:8080</td>"));
        assert!(h.contains("1 day 1 hour 1 minute 1 second"));
        assert!(h.contains("2b7b3f4e-0000-4000-8000-000000000001"));
        assert!(h.contains("<h2>Running jobs (server)</h2>"));
        // every '&' in the text starts an entity
        for (i, _) in h.match_indices('&') {
            let rest = &h[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare & at {}",
                &rest[..rest.len().min(20)]
            );
        }
    }

    #[test]
    fn json_round_trips_the_model() {
        let s = sample();
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["pools"][0]["name"], "py<wps>");
        assert_eq!(v["pools"][0]["busy"], 2);
        assert_eq!(v["pools"][0]["timed_out"], 0);
        assert_eq!(v["services"][0]["running"][0]["process"], "sleep");
        assert_eq!(v["services"][0]["queued"], 3);
        assert_eq!(v["services"][0]["succeeded"], 5);
        assert_eq!(v["server_uptime"], 90_061);
        assert_eq!(v["pid"], std::process::id());
    }

    #[test]
    fn response_format_follows_the_query() {
        let s = sample();
        assert!(wants_json("json"));
        assert!(wants_json("a=1&JSON"));
        assert!(wants_json("format=json"));
        assert!(!wants_json(""));
        assert!(!wants_json("jsonx=1"));
        let r = response(&s, "json");
        assert_eq!(r.content_type, "application/json");
        assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_ok());
        let r = response(&s, "");
        assert!(r.content_type.starts_with("text/html"));
        assert_eq!(r.status, 200);
    }

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
        pool.shutdown();
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
