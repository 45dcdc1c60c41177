//! Several hosts on one PostgreSQL job store: two real Apache servers (two loopback ports,
//! one throwaway database, one shared `outputpath`). Submit on one and read on the other;
//! `parallelprocesses` across both; children killed or frozen mid-job (the job runs again,
//! attempt 2, and a late write is refused); the database restarted mid-job; Apache started
//! while the database is down; graceful restarts keep the connection count; synchronous
//! requests of both hosts wait for a slot in one line.

mod common;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;

use common::*;
use pg_cluster::PgCluster;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const EXEC: &str = "/wps?service=WPS&version=1.0.0&request=Execute";

fn sleep_async(delay: &str) -> String {
    format!(
        "{EXEC}&identifier=sleep&DataInputs=delay={delay}&storeExecuteResponse=true&status=true"
    )
}

/// One database, a shared outputpath, and service configs for Apache servers on it.
struct Site {
    pg: PgCluster,
    db: String,
    dir: PathBuf,
}

impl Site {
    fn new(name: &str) -> Option<Site> {
        let pg = PgCluster::start()?;
        let db = pg.create_db(name);
        let dir = scratch(&format!("pg-{name}"));
        std::fs::create_dir_all(dir.join("outputs")).unwrap();
        chmod(&dir.join("outputs"), 0o755);
        let pass = dir.join("pgpass");
        pg.write_passfile(&pass);
        chmod(&pass, 0o600);
        Some(Site { pg, db, dir })
    }

    /// Starts an Apache whose service uses the site's database (`[server]` lines `server`).
    fn apache(&self, name: &str, server: &str) -> Apache {
        let dir = scratch(name);
        let server = format!(
            "jobstore = {}\njobstorepassfile = {}\noutputpath = {}\n{server}",
            self.pg.conn_string(&self.db),
            self.dir.join("pgpass").display(),
            self.dir.join("outputs").display()
        );
        let cfg = write_service_config_with(&dir, "wps.cfg", &server, "");
        Apache::start_in(
            dir,
            Mpm::Event,
            &format!("WPSScriptAlias /wps {}\n", cfg.display()),
        )
    }

    fn client(&self) -> postgres::Client {
        self.pg.client(&self.db)
    }

    /// (state, attempt, owner pid) of a job's row.
    fn row(&self, id: &str) -> Option<(String, i32, Option<i32>)> {
        self.client()
            .query_opt(
                "SELECT state, attempt, split_part(owner, ':', 2)::int FROM wps_jobs WHERE id = $1",
                &[&id],
            )
            .unwrap()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
    }
}

/// Submits an asynchronous Execute and returns the job id.
fn submit(a: &Apache, path: &str) -> String {
    let r = a.get(path);
    let t = r.text();
    assert_eq!(r.status, 200, "{path}: {t}\n{}", a.error_log());
    assert!(t.contains("<wps:ProcessAccepted>"), "{t}");
    let start = t.find("/wps/outputs/").expect("statusLocation") + "/wps/outputs/".len();
    t[start..start + 36].to_owned()
}

fn status(a: &Apache, id: &str) -> Resp {
    a.get(&format!("/wps/outputs/{id}.xml"))
}

fn wait_final(a: &Apache, id: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let r = status(a, id);
        let t = r.text();
        if r.status == 200
            && (t.contains("<wps:ProcessSucceeded>") || t.contains("<wps:ProcessFailed>"))
        {
            assert_valid(&r.body);
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not final after {within:?}: {} {t}\n{}",
            r.status,
            a.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pids of an Apache's children.
fn children(a: &Apache) -> Vec<i32> {
    let parent = a.pid().expect("running");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 1..].to_owned();
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn signal(pids: &[i32], sig: i32) {
    for &p in pids {
        unsafe { libc::kill(p, sig) };
    }
}

fn no_secret_logged(logs: &[&Apache]) {
    for a in logs {
        let log = a.error_log();
        assert!(
            !log.contains(pg_cluster::PASSWORD),
            "the password is in the log:\n{log}"
        );
        for bad in [
            "panic",
            "Segmentation fault",
            "child_init failed",
            "dispatcher error",
        ] {
            assert!(!log.contains(bad), "{bad:?} in the error log:\n{log}");
        }
    }
}

#[test]
fn submit_on_one_host_read_on_the_other_and_parallelprocesses_across_both() {
    let Some(site) = Site::new("across") else {
        return;
    };
    let a = site.apache("pg-a", "parallelprocesses = 1");
    let b = site.apache("pg-b", "parallelprocesses = 1");

    // an output by reference, written by whichever host ran it, read through the other
    let hello = format!(
        "{EXEC}&identifier=say_hello&DataInputs=name=Hosts&storeExecuteResponse=true&ResponseDocument=response@asReference=true"
    );
    let h = submit(&a, &hello);
    let doc = wait_final(&b, &h, Duration::from_secs(20));
    assert!(doc.contains("<wps:ProcessSucceeded>"), "{doc}");
    let href = doc
        .split("href=\"")
        .nth(1)
        .expect("a reference")
        .split('"')
        .next()
        .unwrap();
    let path = &href[href.find("/wps/").unwrap()..];
    let out = b.get(path);
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "Hello Hosts"),
        "{path}"
    );

    // three jobs submitted on both hosts run one at a time in all
    let t0 = Instant::now();
    let ids = [
        submit(&a, &sleep_async("0.3")),
        submit(&b, &sleep_async("0.3")),
        submit(&a, &sleep_async("0.3")),
    ];
    let mut max_running = 0;
    let mut client = site.client();
    while ids.iter().any(|id| site.row(id).unwrap().0 != "succeeded") {
        // one snapshot of all rows
        let running: i64 = client
            .query_one("SELECT count(*) FROM wps_jobs WHERE state = 'running'", &[])
            .unwrap()
            .get(0);
        max_running = max_running.max(running);
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "jobs did not finish"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(
        max_running, 1,
        "parallelprocesses = 1 holds across both hosts"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(4400),
        "{:?}",
        t0.elapsed()
    );
    for id in &ids {
        // any host answers for any job
        for host in [&a, &b] {
            let t = wait_final(host, id, Duration::from_secs(5));
            assert!(t.contains(">done sleeping</wps:LiteralData>"), "{t}");
        }
    }
    // unknown ids are 404 on both
    let unknown = "0b6a4f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    assert_eq!(status(&a, unknown).status, 404);
    assert_eq!(status(&b, unknown).status, 404);
    no_secret_logged(&[&a, &b]);
}

/// Synchronous requests on both hosts wait for the one slot in one line: sent to A and B by
/// turns while the first holds the slot, they end in the order sent (without the line, the
/// host whose request gave the slot back served its own next one first).
#[test]
fn sync_requests_on_two_hosts_get_the_slot_in_the_order_they_came() {
    let Some(site) = Site::new("line") else {
        return;
    };
    let a = site.apache("pg-line-a", "parallelprocesses = 1");
    let b = site.apache("pg-line-b", "parallelprocesses = 1");
    let mut client = site.client();
    let mut held = || -> bool {
        client
            .query_one(
                "SELECT count(*) FROM wps_slots WHERE token IS NOT NULL",
                &[],
            )
            .map(|r| r.get::<_, i64>(0) > 0)
            .unwrap_or(false)
    };
    let t0 = Instant::now();
    let ends = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let ends = &ends;
        let send = |i: usize, host: &'static str, delay: &'static str| {
            let server = if host == "a" { &a } else { &b };
            s.spawn(move || {
                let r = server.get(&exec_sleep(delay));
                assert_eq!(r.status, 200, "{}", r.text());
                ends.lock().unwrap().push((t0.elapsed(), i));
            })
        };
        // the first (on A) holds the slot while the others come, 200 ms apart, to B, A, B
        send(0, "a", "1.0");
        let deadline = Instant::now() + Duration::from_secs(20);
        // held twice, 100 ms apart: a dispatcher looking for queued jobs holds it a moment
        while !(held() && {
            std::thread::sleep(Duration::from_millis(100));
            held()
        }) {
            assert!(
                Instant::now() < deadline,
                "the first request never took the slot"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        for (i, host) in [(1, "b"), (2, "a"), (3, "b")] {
            send(i, host, "0.04");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut ends = ends.into_inner().unwrap();
    ends.sort();
    let order: Vec<usize> = ends.iter().map(|&(_, i)| i).collect();
    assert_eq!(order, [0, 1, 2, 3], "ended at {ends:?}");
    let rows: i64 = site
        .client()
        .query_one("SELECT count(*) FROM wps_waiting", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "no one waits any more");

    // idle hosts leave the database quiet (a slot given back once made every dispatcher take
    // a slot, find no job and give it back, telling the others: thousands of commits a second)
    let commits = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0)
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut c = site.client();
    let before = commits(&mut c);
    std::thread::sleep(Duration::from_secs(3));
    let during = commits(&mut c) - before;
    assert!(during < 300, "{during} commits in 3 s of idling");
    no_secret_logged(&[&a, &b]);
}

/// kill -9 of every child of the host running a job: the job runs again (attempt 2) on a
/// live child; SIGSTOP of them instead: another host takes the job over after the lease, and
/// the frozen host's late end is refused.
#[test]
fn killed_or_frozen_host_loses_its_job_to_the_other() {
    let Some(site) = Site::new("takeover") else {
        return;
    };
    let a = site.apache("pg-ka", "joblease = 5s");
    let b = site.apache("pg-kb", "joblease = 5s");
    let owner_host = |pid: i32| -> (&Apache, &Apache) {
        if children(&a).contains(&pid) {
            (&a, &b)
        } else {
            assert!(
                children(&b).contains(&pid),
                "owner {pid} is a child of neither"
            );
            (&b, &a)
        }
    };

    // killed
    let id = submit(&a, &sleep_async("0.8"));
    let pid = until(20, "the job running", || match site.row(&id) {
        Some((s, 1, Some(p))) if s == "running" => Some(p),
        _ => None,
    });
    std::thread::sleep(Duration::from_millis(500));
    let (x, y) = owner_host(pid);
    signal(&children(x), libc::SIGKILL);
    let doc = wait_final(y, &id, Duration::from_secs(40));
    assert!(doc.contains(">done sleeping</wps:LiteralData>"), "{doc}");
    assert_eq!(site.row(&id).unwrap().1, 2, "it ran a second time");
    let logs = format!("{}{}", a.error_log(), b.error_log());
    assert!(
        logs.contains(&format!(
            "job {id} (sleep): the Apache child {pid} running it is gone; re-queued"
        )),
        "{logs}"
    );

    // frozen: its lease expires, the other host takes over; its late end is refused
    let id = submit(&b, &sleep_async("1.6"));
    let pid = until(20, "the job running", || match site.row(&id) {
        Some((s, 1, Some(p))) if s == "running" => Some(p),
        _ => None,
    });
    let (x, y) = owner_host(pid);
    let frozen = children(x);
    signal(&frozen, libc::SIGSTOP);
    let t0 = Instant::now();
    let new_owner = until(30, "the takeover", || match site.row(&id) {
        Some((s, 2, Some(p))) if s == "running" => Some(p),
        _ => None,
    });
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "not before the lease: {:?}",
        t0.elapsed()
    );
    assert!(children(y).contains(&new_owner), "the other host runs it");
    signal(&frozen, libc::SIGCONT);
    let doc = wait_final(y, &id, Duration::from_secs(30));
    assert!(doc.contains(">done sleeping</wps:LiteralData>"), "{doc}");
    let done: (i64, i32, String) = {
        let r = site
            .client()
            .query_one(
                "SELECT finished, attempt, state FROM wps_jobs WHERE id = $1",
                &[&id],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((done.1, done.2.as_str()), (2, "succeeded"));
    until(20, "the frozen host noticing", || {
        let log = x.error_log();
        (log.contains(&format!("job {id}: this child's claim was taken over"))
            || log.contains(&format!(
                "job {id} (sleep) was dismissed or taken over; its end is not recorded"
            )))
        .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let after: (i64, i32, String) = {
        let r = site
            .client()
            .query_one(
                "SELECT finished, attempt, state FROM wps_jobs WHERE id = $1",
                &[&id],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(
        after, done,
        "the late end did not overwrite the newer attempt"
    );
    no_secret_logged(&[&a, &b]);
}

#[test]
fn database_restart_mid_job_loses_nothing_and_answers_busy_meanwhile() {
    let Some(site) = Site::new("restart") else {
        return;
    };
    let a = site.apache("pg-ra", "");
    let b = site.apache("pg-rb", "");
    let id = submit(&a, &sleep_async("0.8"));
    until(20, "the job running", || {
        (site.row(&id).map(|r| r.0) == Some("running".into())).then_some(())
    });
    site.pg.stop_server();
    for host in [&a, &b] {
        let t0 = Instant::now();
        let r = host.get(&sleep_async("0.1"));
        r.assert_exception(503, "ServerBusy", None);
        assert!(r.header("Retry-After").is_some(), "{:?}", r.headers);
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "answered at once: {:?}",
            t0.elapsed()
        );
        assert_eq!(status(host, &id).status, 503);
        // what needs no store still works
        let caps = host.get("/wps?service=WPS&request=GetCapabilities");
        assert_eq!(caps.status, 200);
    }
    std::thread::sleep(Duration::from_secs(1));
    site.pg.start_server();
    let doc = wait_final(&b, &id, Duration::from_secs(40));
    assert!(doc.contains(">done sleeping</wps:LiteralData>"), "{doc}");
    assert_eq!(site.row(&id).unwrap().1, 1, "not run again");
    let next = submit(&b, &sleep_async("0.1"));
    wait_final(&a, &next, Duration::from_secs(20));
    let log = a.error_log();
    assert!(log.contains("job store unavailable"), "{log}");
    assert!(log.contains("is reachable again"), "{log}");
    no_secret_logged(&[&a, &b]);
}

#[test]
fn apache_starts_while_the_database_is_down_and_serves_once_it_is_up() {
    let Some(site) = Site::new("late") else {
        return;
    };
    site.pg.stop_server();
    let a = site.apache("pg-la", "");
    let r = a.get(&sleep_async("0.1"));
    r.assert_exception(503, "ServerBusy", None);
    assert!(r.header("Retry-After").is_some());
    site.pg.start_server();
    let id = until(20, "the database in use", || {
        let r = a.get(&sleep_async("0.1"));
        (r.status == 200).then(|| {
            let t = r.text();
            let start = t.find("/wps/outputs/").unwrap() + "/wps/outputs/".len();
            t[start..start + 36].to_owned()
        })
    });
    let doc = wait_final(&a, &id, Duration::from_secs(20));
    assert!(doc.contains("<wps:ProcessSucceeded>"), "{doc}");
    no_secret_logged(&[&a]);
}

#[test]
fn graceful_restarts_keep_the_connection_count() {
    let Some(site) = Site::new("graceful") else {
        return;
    };
    let a = site.apache("pg-ga", "jobstoreconnections = 2");
    let settle = |what: &str| -> i64 {
        // stable for two seconds
        let mut last = (-1, Instant::now());
        until(40, what, || {
            let n = site.pg.mod_wps_connections(&site.db);
            if n != last.0 {
                last = (n, Instant::now());
            }
            (last.1.elapsed() >= Duration::from_secs(2)).then_some(n)
        })
    };
    let work = |a: &Apache| {
        let id = submit(a, &sleep_async("0.1"));
        wait_final(a, &id, Duration::from_secs(20));
    };
    a.graceful();
    work(&a);
    let first = settle("connections after one graceful restart");
    assert!(first >= 1, "connections are made in the children");
    for _ in 0..10 {
        a.graceful();
        work(&a);
    }
    let last = settle("connections after ten more");
    // per child: jobstoreconnections + 1 (LISTEN); the test MPM has at most 4 children
    assert!(last <= 4 * 3, "{last} connections");
    assert!(
        (last - first).abs() <= 2,
        "after 1 graceful: {first}, after 11: {last}"
    );
    no_secret_logged(&[&a]);
}
