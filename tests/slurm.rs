//! Jobs dispatched to a real one-node Slurm (started by the test, see slurm/cluster.rs) through
//! a real Apache: a job succeeds with its outputs (a built-in and a command-line process),
//! synchronous Execute stays in Apache, `scancel` from outside fails the job saying so, Dismiss
//! and the time limit cancel the Slurm job, slurmctld restarted during a job does not stop
//! it, and a graceful restart or killed Apache children do not run a job twice.
//!
//! The tests share one machine's Slurm setup (ports, `SLURM_CONF`): they run one at a time.

#[path = "slurm/cluster.rs"]
mod cluster;
mod common;

use cluster::Cluster;
use common::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ECHO: &str = "[process:echo_text]
command = scripts/echo_text.py --text={text} --delay={delay} --out={output:copy}
input.text = literal string
input.delay = literal float default=0 allowed=0..5
output.length = literal integer
output.copy = complex text/plain
dispatch = slurm
";

/// A Slurm cluster and an Apache whose `sleep` and `say_hello` (and `echo_text`) jobs go to
/// it, with these `[processes]` lines more.
/// Bound as `let (_one, cluster, a)`: dropped in reverse, Apache stops first, then Slurm, and
/// only then may the next test start.
fn setup(name: &str, processes: &str) -> (std::sync::MutexGuard<'static, ()>, Cluster, Apache) {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start();
    // the Apache children (and so sbatch, squeue, scancel and the jobs) use this Slurm
    std::env::set_var("SLURM_CONF", &cluster.conf);
    let echo = std::fs::read(manifest_dir().join("conf/scripts/echo_text.py")).unwrap();
    let a = Apache::builder(name)
        .server_lines("parallelprocesses = 1")
        .file("scripts/echo_text.py", echo, 0o755)
        .processes(&format!(
            "sleep.dispatch = slurm\nsay_hello.dispatch = slurm\n{processes}\n{ECHO}"
        ))
        .start();
    (guard, cluster, a)
}

/// Waits until a job's status document says it runs in Slurm; returns the Slurm job id.
fn wait_running_in_slurm(a: &Apache, job: &Job) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let t = fetch_status(a, &job.path).text();
        if let Some(rest) = t.split("Running in Slurm job ").nth(1) {
            return rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(
            job_state(&t) != "ProcessFailed" && job_state(&t) != "ProcessSucceeded",
            "{t}"
        );
        assert!(
            Instant::now() < end,
            "not running in Slurm: {t}\n{}",
            a.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until Slurm shows the job `name` in `state` (it shows it ending for a moment after
/// the worker recorded the end); returns its Slurm id.
fn wait_slurm_state(cluster: &Cluster, name: &str, state: &str) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let now = cluster.state_of(name);
        match &now {
            Some((id, s)) if s == state => return id.clone(),
            _ => assert!(Instant::now() < end, "{name}: {now:?}, not {state}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn name_of(job: &Job, attempt: u32) -> String {
    format!("wps-{}.{attempt}", job.id)
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn a_dispatched_job_succeeds_with_its_outputs_and_sync_execute_stays_in_apache() {
    let (_one, cluster, a) = setup("slurm-ok", "");
    let job = submit(&a, &format!("{}&status=true", hello_async("Slurm")));
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(90));
    assert_succeeded(&fin, "Hello Slurm");
    let id = wait_slurm_state(&cluster, &name_of(&job, 1), "COMPLETED");
    let log = a.error_log();
    assert!(
        log.contains(&format!(
            "submitted to Slurm as job {id} ({})",
            name_of(&job, 1)
        )),
        "{log}"
    );
    // a command-line process, its file output by reference, progress recorded by the worker
    let body = execute_xml(
        "echo_text",
        &literal_input("text", "a;b $(c) 'd'"),
        r#"<wps:ResponseDocument storeExecuteResponse="true" status="true"><wps:Output asReference="true"><ows:Identifier>copy</ows:Identifier></wps:Output><wps:Output><ows:Identifier>length</ows:Identifier></wps:Output></wps:ResponseDocument>"#,
    );
    let r = a.post("/wps", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = Job::from_accepted(&a, &r.text());
    let (fin, _) = wait_final(&a, &echo.path, Duration::from_secs(90));
    assert_succeeded(&fin, ">12</wps:LiteralData>");
    let t = fin.text();
    let href = t
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let copy = a.get(&url_path(href));
    assert_eq!((copy.status, copy.text().as_str()), (200, "a;b $(c) 'd'"));
    assert!(cluster.state_of(&name_of(&echo, 1)).is_some());
    // synchronous Execute runs in Apache, never in Slurm
    let before = count(&a.error_log(), "dispatched to Slurm");
    let r = a.get(&exec_hello("sync"));
    assert!(r.text().contains("Hello sync"), "{}", r.text());
    assert_eq!(count(&a.error_log(), "dispatched to Slurm"), before);
    a.assert_clean_log();
}

#[test]
fn scancel_from_outside_fails_the_job_saying_so() {
    let (_one, cluster, a) = setup("slurm-scancel", "");
    let job = submit(&a, &sleep_async("10"));
    let slurm_id = wait_running_in_slurm(&a, &job);
    assert!(cluster.run("scancel", &[&slurm_id]).is_some());
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(30));
    let t = fin.text();
    assert!(t.contains("<wps:ProcessFailed>"), "{t}");
    assert!(
        t.contains(&format!(
            "Process 'sleep' was stopped in Slurm: its Slurm job {slurm_id} got SIGTERM"
        )),
        "{t}"
    );
    assert_valid(&fin.body);
    wait_slurm_state(&cluster, &name_of(&job, 1), "CANCELLED");
}

#[test]
fn dismiss_and_the_time_limit_cancel_the_slurm_job() {
    let (_one, cluster, a) = setup("slurm-cancel", "sleep.timeout = 4s");
    // the time limit (counted from when the job runs in Slurm)
    let job = submit(&a, &sleep_async("3"));
    wait_running_in_slurm(&a, &job);
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(30));
    let t = fin.text();
    assert!(
        t.contains("Process 'sleep' exceeded its time limit of 4 s and was stopped"),
        "{t}"
    );
    wait_slurm_state(&cluster, &name_of(&job, 1), "CANCELLED");
    // Dismiss (through the job store, as every front does it)
    let job = submit(&a, &sleep_async("3"));
    wait_running_in_slurm(&a, &job);
    let work = a.dir.join("work");
    let store = mod_wps::jobs::FileStore::new(work.clone(), work.join("outputs"), 1, 30);
    use mod_wps::jobs::JobStore;
    assert!(store.dismiss(&job.id).unwrap().is_some());
    wait_slurm_state(&cluster, &name_of(&job, 1), "CANCELLED");
    assert_eq!(a.get(&job.path).status, 404, "a dismissed job is gone");
    let log = a.error_log();
    assert!(
        log.contains(&format!("job {} (sleep", job.id))
            && log.contains("dismissed; its Slurm job is cancelled"),
        "{log}"
    );
}

#[test]
fn a_job_survives_slurmctld_restarting_and_apache_restarting() {
    let (_one, mut cluster, a) = setup("slurm-restart", "");
    let job = submit(&a, &sleep_async("2"));
    wait_running_in_slurm(&a, &job);
    // the controller goes away for a while and comes back
    cluster.stop_ctld();
    std::thread::sleep(Duration::from_secs(3));
    cluster.start_ctld_again();
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(60));
    assert_succeeded(&fin, "sleep_output");
    // a graceful restart while a job runs: the new children follow it, it runs once
    let job = submit(&a, &sleep_async("2"));
    wait_running_in_slurm(&a, &job);
    a.graceful();
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(60));
    assert_succeeded(&fin, "sleep_output");
    let log = a.error_log();
    assert_eq!(count(&log, "submitted to Slurm as job"), 2, "{log}");
    assert!(
        log.contains(&format!("job {} (sleep", job.id)) && log.contains("followed again here"),
        "{log}"
    );
    assert!(
        cluster.state_of(&name_of(&job, 2)).is_none(),
        "no second attempt"
    );
    // every Apache child killed while a job runs: the same
    let job = submit(&a, &sleep_async("2"));
    wait_running_in_slurm(&a, &job);
    let parent = a.pid().unwrap();
    for child in children_of(parent) {
        unsafe {
            libc::kill(child, libc::SIGKILL);
        }
    }
    let (fin, _) = wait_final(&a, &job.path, Duration::from_secs(60));
    assert_succeeded(&fin, "sleep_output");
    assert!(
        cluster.state_of(&name_of(&job, 2)).is_none(),
        "no second attempt"
    );
    let log = a.error_log();
    assert_eq!(count(&log, "submitted to Slurm as job"), 3, "{log}");
}

/// The pids of the children of `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse::<i32>()
                        .ok()
                })
                == Some(parent)
        })
        .collect()
}

#[test]
fn configtest_names_the_file_and_line_of_slurm_mistakes() {
    for (processes, line, needle) in [
        ("sleep.dispatch = pbs", "pbs", "expected 'local' or 'slurm'"),
        (
            "nope.dispatch = slurm",
            "nope.dispatch",
            "unknown process 'nope'",
        ),
        ("[slurm]\nmaxjobs = 0", "maxjobs", "not a positive integer"),
        (
            "[slurm]\noptions = --mem=1G --requeue",
            "--requeue",
            "attempt count",
        ),
    ] {
        let t = Apache::builder("slurm-configtest")
            .processes(processes)
            .configtest();
        assert!(!t.ok, "{processes}: {}", t.output);
        let cfg = t.cfg.display().to_string();
        let at = t
            .output
            .lines()
            .find(|l| l.contains(&cfg))
            .unwrap_or_else(|| panic!("{processes}: {}", t.output));
        assert!(
            at.contains(line) && at.contains(needle),
            "{processes}: {at}"
        );
        // the line is the line of the key in the service config
        let text = std::fs::read_to_string(&t.cfg).unwrap();
        let key = processes.lines().last().unwrap();
        let n = text.lines().position(|l| l == key).unwrap() + 1;
        assert!(at.contains(&format!("{cfg}:{n}:")), "{processes}: {at}");
    }
    let t = Apache::builder("slurm-configtest")
        .processes("sleep.dispatch = slurm\n[slurm]\npartition = debug")
        .configtest();
    assert!(t.ok, "{}", t.output);
    // not with the PostgreSQL store (yet): said at configtest, not found out at run time
    let t = Apache::builder("slurm-configtest")
        .server_lines("jobstore = host=127.0.0.1 port=1 user=wps dbname=wps")
        .processes("sleep.dispatch = slurm")
        .configtest();
    assert!(
        !t.ok && t.output.contains("needs the file job store"),
        "{}",
        t.output
    );
}
