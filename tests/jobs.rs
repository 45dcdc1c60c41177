//! Asynchronous execution and the durable job store against a real Apache: the status
//! document's lifecycle, `parallelprocesses` across children (async and sync), graceful
//! restarts, killed children (orphans), stop/start, time limits, panics, outputs by
//! reference, the output URL space, the queue limit and retention.

mod common;
use common::*;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Starts a server whose service config has these extra `[server]` and `[processes]` lines,
/// mounted at /wps.
fn start(name: &str, server: &str, processes: &str) -> Apache {
    Apache::builder(name)
        .server_lines(server)
        .processes(processes)
        .start()
}

/// The time of an error-log line (`[Wed Nov 25 04:30:15.129557 2026] ...`) in seconds
/// since the start of the month (enough to order the lines of one test).
fn log_time(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let parts: Vec<&str> = stamp.split_whitespace().collect();
    let day: f64 = parts.get(2)?.parse().ok()?;
    let mut hms = parts.get(3)?.split(':');
    let h: f64 = hms.next()?.parse().ok()?;
    let m: f64 = hms.next()?.parse().ok()?;
    let s: f64 = hms.next()?.parse().ok()?;
    Some(day * 86_400.0 + h * 3600.0 + m * 60.0 + s)
}

/// (time, +1 for "started", -1 for "finished", job id) of every job start and end logged (a
/// run whose child is gone, e.g. after `apachectl stop`, ends when the job is re-queued).
fn job_events(log: &str) -> Vec<(f64, i32, String)> {
    let mut v = Vec::new();
    for l in log.lines() {
        if l.contains("AH00491: caught SIGTERM, shutting down") {
            // the server stopped: the runs of its children ended with them (a run they left
            // is logged as re-queued only when a child of the next server adopts it)
            let t = log_time(l).unwrap_or_else(|| panic!("no timestamp: {l}"));
            v.push((t, 0, String::new()));
            continue;
        }
        let Some(pos) = l.find("job ") else { continue };
        let delta = if l.contains(") started in slot ") {
            1
        } else if l.contains(") finished in slot ") || l.contains(" running it is gone; re-queued")
        {
            -1
        } else {
            continue;
        };
        let id: String = l[pos + 4..].chars().take(36).collect();
        let t = log_time(l).unwrap_or_else(|| panic!("no timestamp: {l}"));
        v.push((t, delta, id));
    }
    // at equal times, an end before a start
    v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    v
}

/// The largest number of jobs running at the same time, from the error log. A stopped
/// server's runs end at its stop.
fn max_concurrency(log: &str) -> i32 {
    let mut running = std::collections::HashSet::new();
    let mut max = 0;
    for (_, d, id) in job_events(log) {
        match d {
            1 => {
                running.insert(id);
            }
            -1 => {
                running.remove(&id);
            }
            _ => running.clear(),
        }
        max = max.max(running.len() as i32);
    }
    max
}

/// The time of the first log line containing all of `needles`.
fn logged_at(log: &str, needles: &[&str]) -> f64 {
    log.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(log_time)
        .unwrap_or_else(|| panic!("no log line with {needles:?}:\n{log}"))
}

fn workdir(a: &Apache) -> PathBuf {
    a.dir.join("work")
}

/// A job's record in the file store (`None`: no record).
fn record(a: &Apache, id: &str) -> Option<serde_json::Value> {
    let d = std::fs::read(workdir(a).join("records").join(format!("{id}.json"))).ok()?;
    serde_json::from_slice(&d).ok()
}

// ---------------------------------------------------------------------------------------------

/// One async sleep through Accepted -> Started (with percentCompleted) -> Succeeded; every
/// document validates, is served as text/xml and starts with the XML declaration; lineage is
/// reflected; the same through an XML POST; status without storage is refused.
#[test]
fn async_lifecycle_validates() {
    let a = start("lifecycle", "", "");
    let r = a.get(&format!("{}&lineage=true", sleep_async("0.3")));
    let t = r.text();
    assert_eq!(r.status, 200, "{t}");
    assert!(t.starts_with("<?xml"), "{t:?}");
    assert!(t.contains("<wps:ProcessAccepted>"), "{t}");
    assert_valid(&r.body);
    let job = Job::from_accepted(&a, &t);
    // the job's record is on disk before the answer
    assert!(workdir(&a)
        .join("records")
        .join(format!("{}.json", job.id))
        .exists());

    let t0 = Instant::now();
    let (fin, seen) = wait_final(&a, &job.path, Duration::from_secs(15));
    let took = t0.elapsed();
    for doc in &seen {
        assert_valid(&doc.body);
    }
    let states: Vec<&str> = seen.iter().map(|r| job_state(&r.text())).collect();
    assert!(
        seen.iter().any(|r| {
            let t = r.text();
            t.contains("<wps:ProcessStarted percentCompleted=\"")
        }),
        "never saw ProcessStarted with percentCompleted: {states:?}"
    );
    // progress is reported in order
    let percents: Vec<u32> = seen
        .iter()
        .filter_map(|r| {
            let t = r.text();
            let p = t.find("percentCompleted=\"")? + "percentCompleted=\"".len();
            t[p..].split('"').next()?.parse().ok()
        })
        .collect();
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {percents:?}"
    );
    assert!(percents.iter().any(|p| *p >= 20), "{percents:?}");
    assert_succeeded(&fin, ">done sleeping</wps:LiteralData>");
    let ft = fin.text();
    assert!(
        ft.contains(&format!("statusLocation=\"http://127.0.0.1:{}", a.port)),
        "{ft}"
    );
    // lineage=true: the inputs are repeated (OutputDefinitions only lists requested outputs,
    // and this request names none)
    assert!(ft.contains("<wps:DataInputs>"), "{ft}");
    assert!(
        ft.contains("<ows:Identifier>delay</ows:Identifier>"),
        "{ft}"
    );
    // 5 x 0.3 s
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert_eq!(record(&a, &job.id).unwrap()["state"], "succeeded");

    // without lineage there is none
    let j2 = submit(&a, &sleep_async("0"));
    let (fin, _) = wait_final(&a, &j2.path, Duration::from_secs(10));
    assert_succeeded(&fin, "done sleeping");
    assert!(!fin.text().contains("<wps:DataInputs>"), "{}", fin.text());

    // the same through an XML POST
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
    xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>sleep</ows:Identifier>
  <wps:DataInputs>
    <wps:Input>
      <ows:Identifier>delay</ows:Identifier>
      <wps:Data><wps:LiteralData>0.1</wps:LiteralData></wps:Data>
    </wps:Input>
  </wps:DataInputs>
  <wps:ResponseForm>
    <wps:ResponseDocument storeExecuteResponse="true" status="true" lineage="true">
      <wps:Output><ows:Identifier>sleep_output</ows:Identifier></wps:Output>
    </wps:ResponseDocument>
  </wps:ResponseForm>
</wps:Execute>"#;
    let r = a.post("/wps", body.as_bytes());
    let t = r.text();
    assert_eq!(r.status, 200, "{t}");
    assert!(t.contains("<wps:ProcessAccepted>"), "{t}");
    assert_valid(&r.body);
    let j3 = Job::from_accepted(&a, &t);
    let (fin, seen) = wait_final(&a, &j3.path, Duration::from_secs(10));
    for doc in &seen {
        assert_valid(&doc.body);
    }
    assert_succeeded(&fin, ">done sleeping</wps:LiteralData>");
    assert!(fin.text().contains("<wps:OutputDefinitions>"));

    // status=true without storeExecuteResponse=true
    a.get(&format!(
        "{EXEC}&identifier=sleep&DataInputs=delay=0&status=true"
    ))
    .assert_exception(400, "InvalidParameterValue", Some("storeExecuteResponse"));

    let log = a.error_log();
    for j in [&job, &j2, &j3] {
        assert!(
            log.contains(&format!("job {} (sleep) accepted", j.id)),
            "{log}"
        );
        assert!(
            log.contains(&format!("job {} (sleep) finished in slot", j.id)),
            "{log}"
        );
    }
    assert_clean_log(&log);
}

/// 20 async sleeps on parallelprocesses=2: all succeed, and the error log's start/finish
/// lines never show more than two jobs running at once (across all Apache children).
#[test]
fn twenty_jobs_never_more_than_two_running() {
    let a = start("twenty", "parallelprocesses = 2\nmaxprocesses = 50", "");
    let jobs: Vec<Job> = (0..20).map(|_| submit(&a, &sleep_async("0.1"))).collect();
    let t0 = Instant::now();
    let mut finals = Vec::new();
    for j in &jobs {
        let left = Duration::from_secs(40).saturating_sub(t0.elapsed());
        let (fin, _) = wait_final(&a, &j.path, left.max(Duration::from_millis(100)));
        finals.push(fin);
    }
    let took = t0.elapsed();
    for f in &finals {
        assert_succeeded(f, ">done sleeping</wps:LiteralData>");
    }
    let log = a.error_log();
    let events = job_events(&log);
    assert_eq!(
        events.iter().filter(|e| e.1 == 1).count(),
        20,
        "starts:\n{log}"
    );
    assert_eq!(
        events.iter().filter(|e| e.1 == -1).count(),
        20,
        "ends:\n{log}"
    );
    let ids: HashSet<&str> = events.iter().map(|e| e.2.as_str()).collect();
    for j in &jobs {
        assert!(ids.contains(j.id.as_str()), "job {} not logged", j.id);
    }
    let max = max_concurrency(&log);
    assert!(max <= 2, "{max} jobs ran at once:\n{log}");
    assert_eq!(max, 2, "the two slots were never both used:\n{log}");
    // 20 x ~0.5 s on 2 slots: at least ~5 s (unbounded: ~0.5 s)
    assert!(took >= Duration::from_millis(3500), "too fast: {took:?}");
    // only slots 0 and 1 exist
    for l in log.lines().filter(|l| l.contains(" started in slot ")) {
        assert!(
            l.contains(" started in slot 0 ") || l.contains(" started in slot 1 "),
            "{l}"
        );
    }
    assert!(
        std::fs::read_dir(workdir(&a).join("queue"))
            .unwrap()
            .next()
            .is_none(),
        "queue not empty"
    );
    assert_clean_log(&log);
}

/// 64 concurrent synchronous sleeps with parallelprocesses=2 (pools of 4 threads in up to 4
/// children): all answered 200, and they take as long as two at a time would.
#[test]
fn sync_requests_obey_parallelprocesses() {
    let a = Apache::builder("sync-slots")
        .server_lines("parallelprocesses = 2")
        .pool("p threads=4")
        .start();
    let t0 = Instant::now();
    let rs = burst(&a, 64, &exec_sleep("0.01"));
    let took = t0.elapsed();
    for r in &rs {
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert!(t.contains(">done sleeping</wps:LiteralData>"), "{t}");
    }
    assert_valid(&rs[0].body);
    // 64 x >= 50 ms, two at a time: >= 1.6 s (16 threads unbounded: ~0.2 s)
    assert!(
        took >= Duration::from_millis(1500),
        "too fast for 2 slots: {took:?}"
    );
    // sync requests leave no job records
    assert!(std::fs::read_dir(workdir(&a).join("records"))
        .unwrap()
        .next()
        .is_none());
    a.assert_clean_log();
}

/// With one slot, synchronous requests that wait for it get it in the order they came,
/// whichever child of the server each landed in (a request that just came, or that looked
/// for the slot first, does not pass one that waited longer).
#[test]
fn sync_requests_get_a_slot_in_the_order_they_came() {
    let a = Apache::builder("sync-line")
        .server_lines("parallelprocesses = 1")
        .pool("p threads=4")
        .start();
    let slot = workdir(&a).join("slots").join("0.lock");
    let held = || {
        std::fs::File::open(&slot)
            .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
    };
    let t0 = Instant::now();
    let ends = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let (a, ends) = (&a, &ends);
        let send = |i: usize, delay: &'static str| {
            s.spawn(move || {
                let r = a.get(&exec_sleep(delay));
                assert_eq!(r.status, 200, "{}", r.text());
                ends.lock().unwrap().push((t0.elapsed(), i));
            })
        };
        // the first holds the slot (5 x 0.4 s) while the others come, 200 ms apart
        send(0, "0.4");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !held() {
            assert!(
                Instant::now() < deadline,
                "the first request never took the slot"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 1..=3 {
            send(i, "0.04");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut ends = ends.into_inner().unwrap();
    ends.sort();
    let order: Vec<usize> = ends.iter().map(|&(_, i)| i).collect();
    assert_eq!(order, [0, 1, 2, 3], "ended at {ends:?}");
    a.assert_clean_log();
}

/// Graceful restarts while async jobs run and wait: every job still succeeds.
#[test]
fn graceful_keeps_accepted_and_running_jobs() {
    let a = start("graceful-jobs", "parallelprocesses = 2", "");
    let jobs: Vec<Job> = (0..6).map(|_| submit(&a, &sleep_async("0.4"))).collect();
    // wait until two run
    let deadline = Instant::now() + Duration::from_secs(10);
    while max_concurrency(&a.error_log()) < 2 {
        assert!(Instant::now() < deadline, "{}", a.error_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    a.graceful();
    std::thread::sleep(Duration::from_millis(700));
    a.graceful();
    let t0 = Instant::now();
    for j in &jobs {
        let left = Duration::from_secs(40).saturating_sub(t0.elapsed());
        let (fin, _) = wait_final(&a, &j.path, left.max(Duration::from_millis(100)));
        assert_succeeded(&fin, ">done sleeping</wps:LiteralData>");
    }
    let log = a.error_log();
    assert!(max_concurrency(&log) <= 2, "{log}");
    assert_eq!(log.matches("resuming normal operations").count(), 3);
    // no job was run twice or lost
    for j in &jobs {
        assert_eq!(
            log.matches(&format!("job {} (sleep) finished in slot", j.id))
                .count(),
            1,
            "{log}"
        );
    }
    assert_clean_log(&log);
}

/// kill -9 of the Apache child running a job: another child re-queues it and it runs again.
#[test]
fn killed_child_job_is_requeued() {
    let a = start("killed", "", "");
    let job = submit(&a, &sleep_async("0.6"));
    let record_file = workdir(&a).join("records").join(format!("{}.json", job.id));
    let deadline = Instant::now() + Duration::from_secs(10);
    let owner = loop {
        // the job's record names its owner as host:pid while it runs
        let owner = std::fs::read(&record_file)
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .filter(|v| v["state"] == "running")
            .and_then(|v| v["owner"].as_str()?.rsplit(':').next()?.parse::<i64>().ok())
            .filter(|o| *o > 0);
        if let Some(o) = owner {
            break o as i32;
        }
        assert!(Instant::now() < deadline, "job never ran");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(Some(owner), a.pid(), "the owner is a child, not the parent");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        job_state(&fetch_status(&a, &job.path).text()),
        "ProcessStarted"
    );
    let rc = unsafe { libc::kill(owner, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {owner}: {}", std::io::Error::last_os_error());
    let t0 = Instant::now();
    let (fin, seen) = wait_final(&a, &job.path, Duration::from_secs(20));
    for d in &seen {
        assert_valid(&d.body);
    }
    assert_succeeded(&fin, ">done sleeping</wps:LiteralData>");
    // the second run takes 3 s again
    assert!(
        t0.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    let log = a.error_log();
    assert!(
        log.contains(&format!(
            "job {} (sleep): the Apache child {owner} running it is gone; re-queued",
            job.id
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("job {} (sleep) started in slot", job.id))
            && log.contains("(attempt 2)"),
        "{log}"
    );
    let done = record(&a, &job.id).unwrap();
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["owner"].is_null(), "{done}");
    assert!(!workdir(&a)
        .join("running")
        .join(format!("{}.json", job.id))
        .exists());
}

/// `apache2 -k stop` with queued jobs, then a new server on the same config: the queued jobs
/// (and the one interrupted, if any) run to completion.
#[test]
fn stop_start_resumes_queued_jobs() {
    let server = || Apache::builder("stop-start").server_lines("parallelprocesses = 1");
    let a = server().start();
    let jobs: Vec<Job> = (0..3).map(|_| submit(&a, &sleep_async("0.4"))).collect();
    let old_port = a.port;
    // the same directory (and job store) for the next server
    let dir = a.stop_keeping_dir();
    let queued_or_running = ["queue", "running"]
        .iter()
        .map(|d| {
            std::fs::read_dir(dir.join("work").join(d))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".json")
                })
                .count()
        })
        .sum::<usize>();
    assert!(
        queued_or_running >= 2,
        "expected jobs left over after the stop: {queued_or_running}"
    );
    let b = server().in_dir(dir).start();
    assert_ne!(b.port, old_port);
    for j in &jobs {
        let (fin, _) = wait_final(&b, &j.path, Duration::from_secs(30));
        assert_succeeded(&fin, ">done sleeping</wps:LiteralData>");
        // the status location still names the server that accepted it
        assert!(fin
            .text()
            .contains(&format!("statusLocation=\"http://127.0.0.1:{old_port}/")));
    }
    let log = b.error_log();
    assert!(max_concurrency(&log) <= 1, "{log}");
    for j in &jobs {
        assert_eq!(
            log.matches(&format!("job {} (sleep) finished in slot", j.id))
                .count(),
            1,
            "{log}"
        );
    }
}

/// `sleep.timeout = 2s`: a 10 s sleep fails after ~2 s with a time-limit message, and the
/// only slot is free for the next job at once.
#[test]
fn time_limit_fails_job_and_frees_slot() {
    let a = start(
        "time-limit",
        "parallelprocesses = 1",
        "sleep.timeout = 2s\n",
    );
    let t0 = Instant::now();
    let ja = submit(&a, &sleep_async("2"));
    let jb = submit(&a, &hello_async("after"));
    let (fa, _) = wait_final(&a, &ja.path, Duration::from_secs(10));
    let ta = t0.elapsed();
    let t = fa.text();
    assert!(t.contains("<wps:ProcessFailed>"), "{t}");
    assert!(
        t.contains("exceeded its time limit of 2 s"),
        "no time-limit message: {t}"
    );
    assert_valid(&fa.body);
    assert!(
        ta >= Duration::from_millis(1900) && ta < Duration::from_secs(15),
        "failed after {ta:?}"
    );
    let (fb, _) = wait_final(&a, &jb.path, Duration::from_secs(10));
    assert_succeeded(&fb, ">Hello after</wps:LiteralData>");
    let log = a.error_log();
    let a_end = logged_at(&log, &[&format!("job {} (sleep) finished in slot", ja.id)]);
    let b_start = logged_at(&log, &[&format!("job {} (say_hello) started", jb.id)]);
    assert!(b_start >= a_end, "B started before A ended:\n{log}");
    assert!(
        log.contains("Process 'sleep' exceeded its time limit of 2 s"),
        "{log}"
    );
    assert!(max_concurrency(&log) <= 1, "{log}");
    // a synchronous request has the same limit
    let t = Instant::now();
    let r = a.get(&exec_sleep("2"));
    r.assert_exception(500, "NoApplicableCode", None);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(15),
        "sync answer after {took:?}"
    );
    // and the slot is free again at once
    let t = Instant::now();
    let r = a.get(&exec_hello("sync"));
    assert_eq!(r.status, 200, "{}", r.text());
    // (a slot still held would make it wait for the whole request timeout, 60 s)
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    a.assert_clean_log();
}

/// A panicking process run asynchronously ends ProcessFailed (never stuck in Accepted or
/// Started), without leaking the panic message, and the server keeps working.
///
/// The only panicking process, `selftest_panic`, declares whether it supports
/// storeExecuteResponse; while it declares `storeSupported="false"` an asynchronous request is
/// refused with StorageNotSupported instead (and the synchronous crash is checked).
#[test]
fn panicking_async_job_fails_cleanly() {
    let a = Apache::builder("async-panic")
        .service_config(
            "[metadata:main]\nidentification_title = Panic WPS\n\n\
             [server]\nworkdir = {work}\n\n[processes]\nbuiltin = sleep, selftest_panic\n",
        )
        .start();
    let d =
        a.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=selftest_panic");
    assert_eq!(d.status, 200, "{}", d.text());
    let store_supported = d.text().contains("storeSupported=\"true\"");
    let path = format!("{EXEC}&identifier=selftest_panic&storeExecuteResponse=true");
    if store_supported {
        let r = a.get(&path);
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert_valid(&r.body);
        let job = Job::from_accepted(&a, &t);
        let (fin, seen) = wait_final(&a, &job.path, Duration::from_secs(10));
        for d in &seen {
            assert_valid(&d.body);
        }
        let ft = fin.text();
        assert!(ft.contains("<wps:ProcessFailed>"), "{ft}");
        assert!(ft.contains("crashed"), "{ft}");
        assert!(!ft.contains("asked to panic"), "panic details leaked: {ft}");
        let log = a.error_log();
        assert!(
            log.contains(&format!("job {} (selftest_panic) finished in slot", job.id))
                && log.contains("selftest_panic was asked to panic"),
            "{log}"
        );
        assert_eq!(record(&a, &job.id).unwrap()["state"], "failed");
    } else {
        a.get(&path)
            .assert_exception(400, "StorageNotSupported", Some("storeExecuteResponse"));
        let r = a.get(&format!("{EXEC}&identifier=selftest_panic"));
        r.assert_exception(500, "NoApplicableCode", None);
        assert!(r.text().contains("crashed"), "{}", r.text());
        assert!(!r.text().contains("asked to panic"), "{}", r.text());
    }
    // the server (and its slots) still run jobs
    for _ in 0..3 {
        let j2 = submit(&a, &sleep_async("0"));
        let (f2, _) = wait_final(&a, &j2.path, Duration::from_secs(10));
        assert_succeeded(&f2, "done sleeping");
    }
    assert_log_lacks(
        &a.error_log(),
        &["exit signal", "Segmentation fault", "dispatcher error"],
    );
}

/// asReference outputs, sync and async: a wps:Reference whose href serves the JSON with its
/// media type; RawDataOutput still answers the bare value.
#[test]
fn outputs_by_reference() {
    let a = start("by-reference", "", "");
    let check_reference = |doc: &str| -> serde_json::Value {
        let start = doc
            .find("<wps:Reference href=\"")
            .unwrap_or_else(|| panic!("no wps:Reference: {doc}"))
            + "<wps:Reference href=\"".len();
        let href = &doc[start..start + doc[start..].find('"').unwrap()];
        let prefix = format!("http://127.0.0.1:{}/wps/outputs/", a.port);
        assert!(href.starts_with(&prefix), "href {href}");
        assert!(href.ends_with("/out.json"), "href {href}");
        assert!(
            doc.contains("mimeType=\"application/json\""),
            "no mimeType: {doc}"
        );
        assert!(!doc.contains("<wps:ComplexData"), "inline data too: {doc}");
        let r = a.get(&url_path(href));
        assert_eq!(r.status, 200, "{href}: {}", r.text());
        assert_eq!(
            r.header("Content-Type")
                .map(|c| c.split(';').next().unwrap()),
            Some("application/json"),
            "{:?}",
            r.headers
        );
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
    };

    // synchronous
    let r = a.get(&format!(
        "{EXEC}&identifier=testjson&DataInputs=name=Ref&ResponseDocument=out@asReference=true"
    ));
    let t = r.text();
    assert_eq!(r.status, 200, "{t}");
    assert!(t.contains("<wps:ProcessSucceeded>"), "{t}");
    assert_valid(&r.body);
    let v = check_reference(&t);
    assert_eq!(v["name"], "Ref");
    assert_eq!(v["greeting"], "Hello Ref");

    // asynchronous (KVP)
    let job = submit(
        &a,
        &format!(
            "{EXEC}&identifier=testjson&DataInputs=name=Later&ResponseDocument=out@asReference=true\
             &storeExecuteResponse=true&status=true"
        ),
    );
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(10));
    assert_succeeded(&fin, "<wps:Reference");
    let v = check_reference(&fin.text());
    assert_eq!(v["greeting"], "Hello Later");
    assert!(fin
        .text()
        .contains(&format!("/wps/outputs/{}/out.json\"", job.id)));
    assert!(workdir(&a)
        .join("outputs")
        .join(&job.id)
        .join("out.json")
        .exists());

    // asynchronous (XML)
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
    xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>testjson</ows:Identifier>
  <wps:DataInputs>
    <wps:Input>
      <ows:Identifier>name</ows:Identifier>
      <wps:Data><wps:LiteralData>Xml</wps:LiteralData></wps:Data>
    </wps:Input>
  </wps:DataInputs>
  <wps:ResponseForm>
    <wps:ResponseDocument storeExecuteResponse="true" status="true">
      <wps:Output asReference="true"><ows:Identifier>out</ows:Identifier></wps:Output>
    </wps:ResponseDocument>
  </wps:ResponseForm>
</wps:Execute>"#;
    let r = a.post("/wps", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let job = Job::from_accepted(&a, &r.text());
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(10));
    assert_succeeded(&fin, "<wps:Reference");
    assert_eq!(check_reference(&fin.text())["name"], "Xml");

    // a literal output by reference: text/plain
    let r = a.get(&format!(
        "{EXEC}&identifier=say_hello&DataInputs=name=Txt&ResponseDocument=response@asReference=true"
    ));
    let t = r.text();
    assert_eq!(r.status, 200, "{t}");
    assert_valid(&r.body);
    let start = t.find("<wps:Reference href=\"").expect(&t) + "<wps:Reference href=\"".len();
    let href = &t[start..start + t[start..].find('"').unwrap()];
    assert!(href.ends_with("/response.txt"), "{href}");
    let r = a.get(&url_path(href));
    assert_eq!(r.status, 200);
    r.assert_content_type("text/plain");
    assert_eq!(r.text(), "Hello Txt");

    // RawDataOutput still answers the bare value
    let r = a.get(&format!(
        "{EXEC}&identifier=testjson&DataInputs=name=Raw&RawDataOutput=out"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_content_type("application/json");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["greeting"], "Hello Raw");
    a.assert_clean_log();
}

/// Nothing but status documents and stored outputs is reachable under /wps/outputs/.
#[test]
fn bad_output_urls_are_refused() {
    let a = start("bad-urls", "", "");
    // a real job with a stored output, to aim next to
    let r = a.get(&format!(
        "{EXEC}&identifier=testjson&DataInputs=name=x&ResponseDocument=out@asReference=true"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    let start = t.find("/wps/outputs/").expect(&t) + "/wps/outputs/".len();
    let id = t[start..start + 36].to_owned();
    assert_eq!(a.get(&format!("/wps/outputs/{id}/out.json")).status, 200);
    let job = submit(&a, &sleep_async("0"));
    wait_final(&a, &job.path, Duration::from_secs(10));

    // files next to the outputs that must stay private
    let work = workdir(&a);
    std::fs::write(work.join("secret.txt"), "TOP-SECRET outside outputpath").unwrap();
    std::fs::write(
        work.join("outputs").join(&id).join(".hidden.txt"),
        "TOP-SECRET hidden",
    )
    .unwrap();
    std::fs::create_dir_all(work.join("outputs").join(&id).join("sub")).unwrap();
    std::fs::write(
        work.join("outputs").join(&id).join("sub").join("x.txt"),
        "TOP-SECRET nested",
    )
    .unwrap();
    std::fs::write(work.join("outputs").join("notes.txt"), "TOP-SECRET notes").unwrap();
    let unknown = "0b6a4f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    let paths = [
        "/wps/outputs/../../etc/passwd".to_string(),
        "/wps/outputs/../../../../../../etc/passwd".to_string(),
        "/wps/outputs/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/wps/outputs/%2e%2e/x".to_string(),
        "/wps/outputs/%2e%2e/secret.txt".to_string(),
        "/wps/outputs/..%2Fsecret.txt".to_string(),
        "/wps/outputs/..%2fsecret.txt".to_string(),
        "/wps/outputs/%2E%2E%2Fsecret.txt".to_string(),
        "/wps/outputs/....//secret.txt".to_string(),
        "/wps/outputs/..\\secret.txt".to_string(),
        "/wps/outputs/..%5csecret.txt".to_string(),
        format!("/wps/outputs/{unknown}.xml"),
        "/wps/outputs/not-a-uuid.xml".to_string(),
        format!("/wps/outputs/{}.xml", job.id.to_uppercase()),
        format!("/wps/outputs/{}.json", job.id),
        format!("/wps/outputs/{}.xml/", job.id),
        format!("/wps/outputs/{}.xml%00", job.id),
        format!("/wps/outputs/{}", job.id),
        format!("/wps/outputs/{id}/..%2Fx"),
        format!("/wps/outputs/{id}/..%2F..%2Fsecret.txt"),
        format!("/wps/outputs/{id}/%2e%2e/%2e%2e/secret.txt"),
        format!("/wps/outputs/{id}/.hidden.txt"),
        format!("/wps/outputs/{id}/sub/x.txt"),
        format!("/wps/outputs/{id}/sub"),
        format!("/wps/outputs/{id}/"),
        format!("/wps/outputs/{id}"),
        format!("/wps/outputs/{id}/out.json/"),
        format!("/wps/outputs/{id}/out.json%00.txt"),
        format!("/wps/outputs/{unknown}/out.json"),
        "/wps/outputs/notes.txt".to_string(),
        "/wps/outputs/".to_string(),
        "/wps/outputs".to_string(),
        "/wps/outputs/.".to_string(),
        "/wps/outputs//".to_string(),
        "/wps/outputs/x/../../work/secret.txt".to_string(),
        "/wps/secret.txt".to_string(),
        "/wps/outputs/%2fetc%2fpasswd".to_string(),
        "/wps/outputs//etc/passwd".to_string(),
        format!("/wps/outputs/{id}//etc/passwd"),
    ];
    for p in &paths {
        let r = a.get(p);
        let t = r.text();
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{p}: status {} {t}",
            r.status
        );
        assert!(
            !t.contains("root:") && !t.contains("TOP-SECRET") && !t.contains("<wps:"),
            "{p}: leaked {t}"
        );
    }
    // the module itself answers its plain 404 for its own URL space
    let r = a.get(&format!("/wps/outputs/{unknown}.xml"));
    assert_eq!(r.status, 404);
    let r = a.get("/wps/outputs/");
    assert_eq!(r.status, 404, "no listing: {}", r.text());
    // HEAD of a real status document has no body, of a missing one 404
    let r = a.request("HEAD", &job.path, None, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = a.request("HEAD", &format!("/wps/outputs/{unknown}.xml"), None, &[]);
    assert_eq!(r.status, 404);
    // the valid ones still work
    assert_eq!(fetch_status(&a, &job.path).status, 200);
    a.assert_clean_log();
}

/// parallelprocesses=1, maxprocesses=2: one runs, two wait, the next is refused with 503
/// ServerBusy and Retry-After; the accepted ones all complete and the queue opens again.
#[test]
fn queue_limit_answers_server_busy() {
    let a = start("queue-limit", "parallelprocesses = 1\nmaxprocesses = 2", "");
    let first = submit(&a, &sleep_async("0.3"));
    // wait until it runs (it left the queue)
    let running = workdir(&a)
        .join("running")
        .join(format!("{}.json", first.id));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !running.exists() {
        assert!(Instant::now() < deadline, "{}", a.error_log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let queued: Vec<Job> = (0..2).map(|_| submit(&a, &sleep_async("0.1"))).collect();
    let r = a.get(&sleep_async("0.1"));
    r.assert_exception(503, "ServerBusy", None);
    assert!(r.text().contains("maxprocesses"), "{}", r.text());
    let retry = r.header("Retry-After").expect("Retry-After header");
    assert!(
        retry.parse::<u32>().is_ok_and(|n| n > 0),
        "Retry-After: {retry}"
    );
    // a refused job leaves nothing behind: 3 job records only
    let docs = std::fs::read_dir(workdir(&a).join("records"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(docs, 3);
    // the XML form is refused the same way
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
    xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>say_hello</ows:Identifier>
  <wps:DataInputs><wps:Input><ows:Identifier>name</ows:Identifier>
    <wps:Data><wps:LiteralData>x</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs>
  <wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true"/></wps:ResponseForm>
</wps:Execute>"#;
    a.post("/wps", body.as_bytes())
        .assert_exception(503, "ServerBusy", None);
    // other requests are served meanwhile
    assert_eq!(
        a.get("/wps?service=WPS&request=GetCapabilities").status,
        200
    );
    for j in std::iter::once(&first).chain(&queued) {
        let (fin, _) = wait_final(&a, &j.path, Duration::from_secs(20));
        assert_succeeded(&fin, ">done sleeping</wps:LiteralData>");
    }
    // the queue is open again
    let again = submit(&a, &hello_async("again"));
    let (fin, _) = wait_final(&a, &again.path, Duration::from_secs(10));
    assert_succeeded(&fin, ">Hello again</wps:LiteralData>");
    a.assert_clean_log();
}

/// retention = 1s: finished jobs older than that are removed (with their status document and
/// outputs) by the next cleanup, which new children run when they start; the documents of
/// queued and running jobs are kept, however old.
#[test]
fn retention_removes_finished_jobs() {
    let a = start("retention", "retention = 1s\nparallelprocesses = 1", "");
    let job = submit(
        &a,
        &format!(
            "{EXEC}&identifier=testjson&DataInputs=name=old&ResponseDocument=out@asReference=true\
             &storeExecuteResponse=true"
        ),
    );
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(10));
    assert_succeeded(&fin, "<wps:Reference");
    let out = format!("/wps/outputs/{}/out.json", job.id);
    assert_eq!(a.get(&out).status, 200);
    let work = workdir(&a);
    assert!(work
        .join("records")
        .join(format!("{}.json", job.id))
        .exists());
    // one job runs (3 s), one waits behind it; both are older than the retention at the
    // cleanup
    let running = submit(&a, &sleep_async("0.6"));
    let queued = submit(&a, &hello_async("queued"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        job_state(&fetch_status(&a, &queued.path).text()),
        "ProcessAccepted"
    );
    // new children clean up at once
    a.graceful();
    let deadline = Instant::now() + Duration::from_secs(10);
    while work
        .join("records")
        .join(format!("{}.json", job.id))
        .exists()
    {
        assert!(Instant::now() < deadline, "not removed:\n{}", a.error_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(a.get(&job.path).status, 404);
    assert_eq!(a.get(&out).status, 404);
    assert!(!work.join("outputs").join(&job.id).exists());
    // the sweep logs once it has removed every file of the jobs it took
    while !a
        .error_log()
        .contains("removed 1 finished job(s) older than the retention")
    {
        assert!(Instant::now() < deadline, "no log line:\n{}", a.error_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // the running and the queued job were left alone (fetch_status asserts 200 every time)
    for j in [&running, &queued] {
        let (fin, _) = wait_final(&a, &j.path, Duration::from_secs(15));
        assert!(
            fin.text().contains("<wps:ProcessSucceeded>"),
            "{}",
            fin.text()
        );
    }
    a.assert_clean_log();
}
