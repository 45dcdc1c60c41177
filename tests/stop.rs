//! How a child lets go of running asynchronous jobs, against a real Apache (event and prefork):
//! a hard stop (`-k stop`, `-k restart`) does not wait for them (no `AH00046 ... SIGKILL`), and
//! the next server or children re-queue them (attempt 2); a graceful restart lets them finish
//! (attempt 1).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const EXEC: &str = "/wps?service=WPS&version=1.0.0&request=Execute";

/// The process `long`: its first run sleeps `first` seconds (`sleep <first>`, a marker for
/// /proc), later runs answer at once.
fn long_process(dir: &Path, first: &str) -> String {
    let marks = dir.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    chmod(&marks, 0o777); // the Apache user makes the mark
    let script = dir.join("long.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif mkdir {marks}/first 2>/dev/null; then sleep {first}; echo first run; exit 0; fi\necho later run\n",
            marks = marks.display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    format!(
        "\n[process:long]\ncommand = {}\noutput.o = literal string\n",
        script.display()
    )
}

/// A server on `dir` (its service config with the `long` process) and its directives.
fn start(dir: PathBuf, mpm: Mpm, first: &str) -> (Apache, String) {
    let extra = long_process(&dir, first);
    let cfg = write_service_config(&dir, "wps.cfg", &extra);
    let directives = format!("WPSScriptAlias /wps {}\n", cfg.display());
    (Apache::start_in(dir, mpm, &directives), directives)
}

/// Submits `long` asynchronously; returns the job id.
fn submit(a: &Apache) -> String {
    let r = a.get(&format!(
        "{EXEC}&identifier=long&storeExecuteResponse=true&status=true"
    ));
    let t = r.text();
    assert_eq!(r.status, 200, "{t}");
    let key = "/wps/outputs/";
    let at = t
        .find(key)
        .unwrap_or_else(|| panic!("no statusLocation: {t}"))
        + key.len();
    t[at..at + 36].to_owned()
}

/// A job's record in the file store.
fn record(dir: &Path, id: &str) -> serde_json::Value {
    let p = dir.join("work").join("records").join(format!("{id}.json"));
    std::fs::read(&p)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Pids of the processes whose command line contains `marker`.
fn processes_containing(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits until the job runs and its command's `sleep <first>` is there.
fn wait_running(dir: &Path, id: &str, first: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while record(dir, id)["state"] != "running"
        || processes_containing(&format!("sleep\0{first}")).is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "job never ran: {}",
            record(dir, id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the job's final state; returns its record.
fn wait_final(a: &Apache, id: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let r = record(&a.dir, id);
        if r["state"] == "succeeded" || r["state"] == "failed" {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "not final: {r}\n{}",
            a.error_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn apachectl(a: &Apache, what: &str) {
    let out = Command::new("apache2")
        .arg("-f")
        .arg(&a.conf)
        .args(["-k", what])
        .output()
        .unwrap();
    assert!(out.status.success(), "apache2 -k {what}: {out:?}");
}

fn assert_no_sigkill(log: &str) {
    assert!(
        !log.contains("AH00046") && !log.contains("SIGKILL"),
        "Apache had to kill a child:\n{log}"
    );
}

/// The job's (succeeded) output, from its status document.
fn assert_output(a: &Apache, id: &str, text: &str) {
    let doc = a.get(&format!("/wps/outputs/{id}.xml")).text();
    assert!(doc.contains("<wps:ProcessSucceeded"), "{doc}");
    assert!(doc.contains(text), "{doc}");
}

/// `-k stop` while a job runs a 30 s command: the server is gone within seconds, without
/// SIGKILL, and the command with it; a new server on the same config re-queues the job, whose
/// second run succeeds.
fn stop_leaves_running_job_to_next_server(mpm: Mpm, name: &str) {
    let first = "30.4711";
    let dir = scratch(name);
    let (mut a, directives) = start(dir.clone(), mpm, first);
    let id = submit(&a);
    wait_running(&dir, &id, first);
    let pid = a.pid().expect("the server's pid");
    let t0 = Instant::now();
    a.stop(); // `apache2 -k stop`, then waits (up to 30 s) for the parent to exit
    let took = t0.elapsed();
    eprintln!("{mpm:?}: apache2 -k stop took {took:?}");
    // the old behaviour waited out graceful-timeout (15 s) and was killed after ~9 s
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    // SAFETY: kill with signal 0 only checks that the process exists
    assert!(
        unsafe { libc::kill(pid, 0) } != 0,
        "the server is still there"
    );
    let log = a.error_log();
    assert_no_sigkill(&log);
    assert!(
        log.contains("still running at a hard stop; they are left to the next children"),
        "{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_containing(&format!("sleep\0{first}")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the job's command outlived Apache"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(record(&dir, &id)["state"], "running");
    // the same directory (and job store) for the next server; `a` must not remove it
    std::mem::forget(a);
    let b = Apache::start_in(dir, mpm, &directives);
    let done = wait_final(&b, &id, Duration::from_secs(20));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_output(&b, &id, "later run");
}

#[test]
fn stop_does_not_wait_for_running_jobs_event() {
    stop_leaves_running_job_to_next_server(Mpm::Event, "stop-event");
}

#[test]
fn stop_does_not_wait_for_running_jobs_prefork() {
    stop_leaves_running_job_to_next_server(Mpm::Prefork, "stop-prefork");
}

/// `-k restart` while a job runs a 30 s command: the new children start within seconds and
/// re-queue the job (attempt 2); no child is killed.
fn restart_requeues_running_job(mpm: Mpm, name: &str) {
    let first = "30.4712";
    let (a, _) = start(scratch(name), mpm, first);
    let id = submit(&a);
    wait_running(&a.dir, &id, first);
    let before = a.error_log().matches("resuming normal operations").count();
    let t0 = Instant::now();
    apachectl(&a, "restart");
    while a.error_log().matches("resuming normal operations").count() == before {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", a.error_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "restart took {:?}",
        t0.elapsed()
    );
    let done = wait_final(&a, &id, Duration::from_secs(20));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_output(&a, &id, "later run");
    assert_no_sigkill(&a.error_log());
}

#[test]
fn restart_does_not_wait_for_running_jobs_event() {
    restart_requeues_running_job(Mpm::Event, "restart-event");
}

#[test]
fn restart_does_not_wait_for_running_jobs_prefork() {
    restart_requeues_running_job(Mpm::Prefork, "restart-prefork");
}

/// `-k graceful` while a job runs a 3 s command: the old child waits for it, and it finishes
/// in its first run.
fn graceful_lets_running_job_finish(mpm: Mpm, name: &str) {
    let first = "3.4713";
    let (a, _) = start(scratch(name), mpm, first);
    let id = submit(&a);
    wait_running(&a.dir, &id, first);
    a.graceful();
    let done = wait_final(&a, &id, Duration::from_secs(20));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    assert_output(&a, &id, "first run");
    let log = a.error_log();
    assert!(!log.contains("re-queued"), "{log}");
    assert_no_sigkill(&log);
}

#[test]
fn graceful_waits_for_running_jobs_event() {
    graceful_lets_running_job_finish(Mpm::Event, "graceful-event");
}

#[test]
fn graceful_waits_for_running_jobs_prefork() {
    graceful_lets_running_job_finish(Mpm::Prefork, "graceful-prefork");
}
