//! Worker pools (`WPSDaemonProcess`, `WPSProcessGroup`) against a real Apache: bursts, a full
//! queue, request timeouts, panicking processes, graceful restarts and config reloads.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Event MPM settings that leave exactly one Apache child, so that every request of a test
/// meets the same worker pool. They follow (and so override) the harness's MPM settings.
const ONE_CHILD: &str = "StartServers 1\nServerLimit 1\nMinSpareThreads 1\nMaxSpareThreads 25\n\
                         ThreadsPerChild 25\nMaxRequestWorkers 25\n";

/// The number of files a process has open.
fn open_files(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The pids of the parent's children (the Apache worker processes).
fn children(parent: i32) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may contain spaces and parentheses
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(parent) {
            v.push(pid);
        }
    }
    v.sort();
    v
}

/// Waits until the server runs exactly one child and returns its pid.
fn single_child(a: &Apache) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // the pid file is written a little after the port starts listening
        let c = a.pid().map(children).unwrap_or_default();
        if c.len() == 1 {
            return c[0];
        }
        assert!(
            Instant::now() < deadline,
            "expected one Apache child, found {c:?}\n{}",
            a.error_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Error-log lines at warn level or above (Apache's complaints about the configuration).
fn complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            [":warn]", ":error]", ":crit]", ":alert]", ":emerg]"]
                .iter()
                .any(|k| l.contains(k))
        })
        .collect()
}

/// One GET over a fresh connection that reports failures instead of panicking:
/// Ok((status, body)) or Err(description).
fn try_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read: {e} after {} bytes", raw.len()))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    Ok((status, text))
}

// ---------------------------------------------------------------------------------------------

/// 64 concurrent sleeps on a pool of 2 threads (queue 100): all wait their turn and succeed.
#[test]
fn burst_of_64_executes_on_two_threads_event() {
    let a = Apache::builder("burst-event")
        .pool("pywps threads=2")
        .start();
    let t0 = Instant::now();
    let rs = burst(&a, 64, &exec_sleep("0.02"));
    let took = t0.elapsed();
    for r in &rs {
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert!(t.contains("<wps:ProcessSucceeded>"), "{t}");
        assert!(t.contains(">done sleeping</wps:LiteralData>"), "{t}");
    }
    assert_valid(&rs[0].body);
    // 64 jobs of ~0.1 s on at most 2 threads per child (<= 4 children): at least 0.8 s
    // (unbounded, they would all finish after ~0.1 s)
    assert!(
        took >= Duration::from_millis(600),
        "too fast for 2 threads per child: {took:?}"
    );
    a.assert_clean_log();
}

/// The same burst on the prefork MPM (one request per child, a pool in every child).
#[test]
fn burst_of_64_executes_prefork() {
    let a = Apache::builder("burst-prefork")
        .mpm(Mpm::Prefork)
        .pool("pywps threads=2")
        .start();
    let rs = burst(&a, 64, &exec_hello("Burst"));
    for r in &rs {
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert!(t.contains(">Hello Burst</wps:LiteralData>"), "{t}");
    }
    assert_valid(&rs[0].body);
    let rs = burst(&a, 16, &exec_sleep("0.02"));
    for r in &rs {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains(">done sleeping</wps:LiteralData>"));
    }
    a.assert_clean_log();
}

/// threads=1 queue=1 in a single child: one job runs, one waits, the next is refused at once
/// with 503 ServerBusy and Retry-After; the two accepted jobs complete.
#[test]
fn full_queue_answers_server_busy() {
    let a = Apache::builder("busy")
        // no server-wide limit: the pool's own queue is what fills up here
        .server_lines("parallelprocesses = -1")
        .directives(ONE_CHILD)
        .pool("tiny threads=1 queue=1")
        .start();
    let child = single_child(&a);
    let c = complaints(&a.error_log()).join("\n");
    assert!(
        c.is_empty(),
        "Apache complained about the MPM settings:\n{c}"
    );

    std::thread::scope(|s| {
        let t0 = Instant::now();
        let running = s.spawn(|| a.get(&exec_sleep("1"))); // 5 s on the only worker
        std::thread::sleep(Duration::from_millis(500));
        let queued = s.spawn(|| a.get(&exec_sleep("1"))); // waits in the queue
        std::thread::sleep(Duration::from_millis(500));

        let t = Instant::now();
        let r = a.get(&exec_sleep("1"));
        r.assert_exception(503, "ServerBusy", None);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "busy answer took {:?} (it must not wait for a worker)",
            t.elapsed()
        );
        let retry = r.header("Retry-After").expect("Retry-After header");
        assert!(
            retry.parse::<u32>().is_ok_and(|n| n > 0),
            "Retry-After: {retry}"
        );
        assert!(r.text().contains("process group 'tiny'"), "{}", r.text());
        // any Execute is refused while the pool is full, but other operations are served
        a.get(&exec_hello("x"))
            .assert_exception(503, "ServerBusy", None);
        let caps = a.get(GET_CAPS);
        assert_eq!(caps.status, 200, "{}", caps.text());

        for h in [running, queued] {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(
                r.text().contains(">done sleeping</wps:LiteralData>"),
                "{}",
                r.text()
            );
        }
        // the queued job ran after the first one: ~10 s in all
        assert!(t0.elapsed() >= Duration::from_secs(9), "{:?}", t0.elapsed());
    });
    // the pool is free again
    let r = a.get(&exec_hello("again"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(single_child(&a), child, "the Apache child changed");
}

/// request-timeout=1: a 10 s sleep is answered after ~1 s with NoApplicableCode naming the
/// timeout; the job is cancelled, so the single worker serves the next request at once.
#[test]
fn request_timeout_cancels_the_job_and_frees_the_worker() {
    let a = Apache::builder("timeout")
        .directives(ONE_CHILD)
        .pool("slow threads=1 request-timeout=1")
        .start();
    let child = single_child(&a);
    for round in 0..2 {
        let t = Instant::now();
        let r = a.get(&exec_sleep("2"));
        let took = t.elapsed();
        r.assert_exception(500, "NoApplicableCode", None);
        let text = r.text();
        assert!(text.contains("request timeout of 1 s"), "{text}");
        assert!(text.contains("process group 'slow'"), "{text}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(15),
            "round {round}: timeout answer after {took:?}"
        );
        // The only worker is free: were it still sleeping, this would time out too.
        let r = a.get(&exec_hello("after"));
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        assert!(r.text().contains(">Hello after</wps:LiteralData>"));
    }
    assert_eq!(single_child(&a), child, "the Apache child changed");
    let log = a.error_log();
    assert!(
        log.contains("request timeout of 1 s"),
        "timeout not logged:\n{log}"
    );
}

/// A panicking process is answered with an ExceptionReport; the child keeps serving.
#[test]
fn panicking_process_is_contained() {
    let a = Apache::builder("panic")
        .service_config(
            "[metadata:main]\nidentification_title = Panic WPS\n\n\
             [processes]\nbuiltin = say_hello, selftest_panic\n",
        )
        .directives(ONE_CHILD)
        .pool("p threads=2")
        .start();
    let child = single_child(&a);
    let caps = a.get(GET_CAPS);
    assert!(caps
        .text()
        .contains("<ows:Identifier>selftest_panic</ows:Identifier>"));
    for i in 0..6 {
        let r = a.get(&format!("{EXEC}&identifier=selftest_panic"));
        r.assert_exception(500, "NoApplicableCode", None);
        assert!(r.text().contains("crashed"), "{}", r.text());
        assert!(
            !r.text().contains("asked to panic"),
            "panic details leaked: {}",
            r.text()
        );

        let r = a.get(GET_CAPS);
        assert_eq!(r.status, 200, "after panic {i}: {}", r.text());
        assert!(r.text().contains("<ows:Title>Panic WPS</ows:Title>"));
        let r = a.get(&exec_hello(&format!("n{i}")));
        assert_eq!(r.status, 200, "after panic {i}: {}", r.text());
        assert!(r.text().contains(&format!(">Hello n{i}</wps:LiteralData>")));
    }
    assert_valid(&a.get(GET_CAPS).body);
    assert_eq!(single_child(&a), child, "the Apache child was replaced");
    let log = a.error_log();
    assert!(log.contains("panicked"), "{log}");
    assert_eq!(
        log.matches("process 'selftest_panic' panicked: selftest_panic was asked to panic")
            .count(),
        6,
        "{log}"
    );
    assert_log_lacks(&log, &["exit signal", "Segmentation fault"]);
}

/// `WPSProcessGroup` in <Location> overrides the alias's process-group.
#[test]
fn location_process_group_overrides_alias() {
    let a = Apache::builder("location")
        .directives("WPSDaemonProcess a threads=1 request-timeout=1\n")
        .pool("b threads=2")
        .alias("/other")
        .directives_after("<Location /wps>\n  WPSProcessGroup a\n</Location>\n")
        .start();
    let r = a.get(&exec_sleep("2"));
    r.assert_exception(500, "NoApplicableCode", None);
    assert!(r.text().contains("process group 'a'"), "{}", r.text());
    // the alias outside the <Location> runs on 'b' (no timeout: 1.5 s > a's 1 s)
    let r = a.get(&exec_sleep("0.3").replacen("/wps", "/other", 1));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(">done sleeping</wps:LiteralData>"));
}

/// Ten graceful restarts under steady traffic: every request is answered with 200.
#[test]
fn graceful_restarts_under_load_event() {
    graceful_restarts_under_load(Mpm::Event);
}

#[test]
fn graceful_restarts_under_load_prefork() {
    graceful_restarts_under_load(Mpm::Prefork);
}

fn graceful_restarts_under_load(mpm: Mpm) {
    let a = Apache::builder("graceful")
        .mpm(mpm)
        .pool("pywps threads=2")
        .start();
    let stop = AtomicBool::new(false);
    /// Stops the clients even when the restart loop panics (else the scope never ends).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (oks, failures) = std::thread::scope(|s| {
        let guard = StopOnDrop(&stop);
        // two clients alternate GetCapabilities and say_hello; a third keeps a 0.5 s sleep
        // job in flight, so restarts hit running jobs (the old child must finish them)
        let clients: Vec<_> = (0..3)
            .map(|k| {
                let (a, stop) = (&a, &stop);
                s.spawn(move || {
                    let (mut oks, mut failures) = (0usize, Vec::new());
                    let mut i = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let path = if k == 2 {
                            exec_sleep("0.1")
                        } else if (i + k).is_multiple_of(2) {
                            GET_CAPS.to_string()
                        } else {
                            exec_hello(&format!("g{i}"))
                        };
                        match try_get(a.port, &path) {
                            Ok((200, body)) if k < 2 || body.contains("done sleeping") => oks += 1,
                            Ok((st, body)) => failures.push(format!("{path}: {st}\n{body}")),
                            Err(e) => failures.push(format!("{path}: {e}")),
                        }
                        i += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    (oks, failures)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // the parent's open files after the first restart and after the last: one more per
        // restart would be a leak of each generation's (e.g. the job store's files)
        let mut parent_fds = Vec::new();
        for _ in 0..10 {
            a.graceful();
            parent_fds.push(open_files(a.pid().expect("the parent's pid")));
            std::thread::sleep(Duration::from_millis(200));
        }
        drop(guard);
        assert_eq!(parent_fds.first(), parent_fds.last(), "{parent_fds:?}");
        clients.into_iter().fold((0, Vec::new()), |(o, mut f), h| {
            let (o2, f2) = h.join().unwrap();
            f.extend(f2);
            (o + o2, f)
        })
    });
    assert!(
        failures.is_empty(),
        "{} of {} requests failed:\n{}",
        failures.len(),
        oks + failures.len(),
        failures.join("\n")
    );
    assert!(oks >= 20, "only {oks} requests during the restarts");
    let r = a.get(&exec_hello("end"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&a.get(GET_CAPS).body);
    let log = a.error_log();
    assert_eq!(
        log.matches("resuming normal operations").count(),
        11,
        "{log}"
    );
    assert_clean_log(&log);
}

/// A graceful restart re-reads the service config file.
#[test]
fn graceful_picks_up_service_config_changes() {
    let a = Apache::builder("reload")
        .service_config(
            "[metadata:main]\nidentification_title = First\n[processes]\nbuiltin = say_hello\n",
        )
        .start();
    let t = a.get(GET_CAPS).text();
    assert!(t.contains("<ows:Title>First</ows:Title>"), "{t}");
    assert!(
        t.contains("<ows:Identifier>say_hello</ows:Identifier>"),
        "{t}"
    );
    assert!(!t.contains("<ows:Identifier>sleep</ows:Identifier>"), "{t}");
    a.get(&exec_sleep("0"))
        .assert_exception(400, "InvalidParameterValue", Some("identifier"));

    write_file(
        &a.dir,
        "wps.cfg",
        "[metadata:main]\nidentification_title = Second\n[processes]\nbuiltin = sleep, ultimate_question\n",
        0o644,
    );
    a.graceful();
    let r = a.get(GET_CAPS);
    let t = r.text();
    assert!(t.contains("<ows:Title>Second</ows:Title>"), "{t}");
    assert!(t.contains("<ows:Identifier>sleep</ows:Identifier>"), "{t}");
    assert!(
        t.contains("<ows:Identifier>ultimate_question</ows:Identifier>"),
        "{t}"
    );
    assert!(
        !t.contains("<ows:Identifier>say_hello</ows:Identifier>"),
        "{t}"
    );
    assert_valid(&r.body);
    let r = a.get(&exec_sleep("0"));
    assert_eq!(r.status, 200, "{}", r.text());
    a.get(&exec_hello("x"))
        .assert_exception(400, "InvalidParameterValue", Some("identifier"));
}

/// Warnings about unsupported settings are logged once per configuration read, not twice at
/// startup (post_config runs twice then).
#[test]
fn config_warnings_are_logged_once() {
    let a = Apache::builder("warnings")
        .service_config(
            "[metadata:main]\nidentification_title = Warn\n\n[server]\nsethomedir = true\n\n\
             [logging]\nlevel = INFO\n",
        )
        .start();
    let cfg = a.dir.join("wps.cfg");
    let key = format!(
        "{}:5: [server] key 'sethomedir' is not supported by mod_wps and is ignored",
        cfg.display()
    );
    let section = format!(
        "{}:7: section [logging] is not used by mod_wps and is ignored",
        cfg.display()
    );
    // (the server has logged that it runs: `start` waits for that)
    let log = a.error_log();
    assert_eq!(log.matches(&key).count(), 1, "{log}");
    assert_eq!(log.matches(&section).count(), 1, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(&key) && l.contains(":warn]")),
        "not at warn level: {log}"
    );
    assert_eq!(a.get(GET_CAPS).status, 200);
    // one more config read, one more warning
    a.graceful();
    let log = a.error_log();
    assert_eq!(log.matches(&key).count(), 2, "{log}");
    assert_eq!(log.matches(&section).count(), 2, "{log}");
}
