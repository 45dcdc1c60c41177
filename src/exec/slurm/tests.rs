//! The Slurm executor without Slurm: `sbatch`, `squeue` and `scancel` are stand-ins (small
//! shell scripts) that record what they were asked and answer what the test wrote; the worker's
//! writes are made by the test through a detached claim, as `mod_wps-worker` makes them.

use super::cli::Tools;
use super::*;
use crate::engine::Submission;
use crate::exec::dispatcher::Dispatcher;
use crate::exec::pool::{Pool, PoolConfig};
use crate::exec::testing::{self, literal};
use crate::jobs::{JobOutput, JobRecord, StoredValue};
use crate::model::Input;
use std::path::{Path, PathBuf};

struct Fake {
    dir: PathBuf,
    service: Arc<Service>,
    runner: Arc<Runner>,
    dispatcher: Arc<Dispatcher>,
    log: Arc<Mutex<Vec<(LogLevel, String)>>>,
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn hello() -> Vec<Input> {
    literal("name", "x")
}

fn delay(secs: &str) -> Vec<Input> {
    literal("delay", secs)
}

impl Fake {
    /// A service with these `[server]` and `[processes]` lines and a fake Slurm.
    fn new(server: &str, processes: &str) -> Fake {
        let dir = std::env::temp_dir().join(format!("mod_wps-slurm-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let d = dir.display();
        // sbatch: the script on stdin is kept, the arguments logged, ids count up
        script(
            &dir.join("bin/sbatch"),
            &format!(
                "if [ -e {d}/sbatch.fail ]; then cat {d}/sbatch.fail >&2; exit 1; fi\n\
                 n=$(( $(cat {d}/n 2>/dev/null || echo 0) + 1 )); echo $n > {d}/n\n\
                 cat > {d}/script.$n; echo \"$*\" >> {d}/sbatch.log; echo \"$n;cluster\""
            ),
        );
        script(
            &dir.join("bin/squeue"),
            &format!(
                "if [ -e {d}/squeue.fail ]; then echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1; fi\n\
                 cat {d}/squeue.out 2>/dev/null; exit 0"
            ),
        );
        script(
            &dir.join("bin/scancel"),
            &format!("echo \"$*\" >> {d}/scancel.log"),
        );
        let text = format!(
            "[server]\nworkdir = {}\n{server}\n[processes]\nbuiltin = sleep, say_hello\n{processes}\n",
            dir.join("work").display()
        );
        let service = testing::service(&dir, &text);
        let (log, logger) = testing::captured_log();
        let tools = Tools {
            sbatch: dir.join("bin/sbatch"),
            squeue: dir.join("bin/squeue"),
            scancel: dir.join("bin/scancel"),
            worker: PathBuf::from("/usr/lib/apache2/modules/mod_wps-worker"),
        };
        let slurm = SlurmExecutor::start(service.clone(), Ok(tools), logger.clone());
        let runner = Runner::new(
            service.clone(),
            Pool::start(PoolConfig::new("t")),
            logger.clone(),
        );
        let dispatcher =
            Dispatcher::start_with(service.clone(), vec![slurm, runner.clone()], true, logger);
        runner.on_wake(dispatcher.waker());
        Fake {
            dir,
            service,
            runner,
            dispatcher,
            log,
        }
    }

    fn submit(&self, process: &str, inputs: Vec<Input>) -> JobRecord {
        self.service
            .submit(
                self.runner.as_ref(),
                Submission {
                    process: process.into(),
                    inputs,
                    outputs: vec![],
                    user: None,
                    protocol: serde_json::Value::Null,
                },
            )
            .unwrap()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// What `squeue` answers from now on (`id|name|state|reason` lines).
    fn squeue(&self, lines: &str) {
        std::fs::write(self.dir.join("squeue.out"), lines).unwrap();
    }

    fn record(&self, id: &str) -> Option<JobRecord> {
        self.service.store.get(id).unwrap()
    }

    /// Waits up to 15 s for `pred`.
    fn until(&self, what: &str, pred: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(15);
        while !pred() {
            assert!(
                Instant::now() < end,
                "{what}; log: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|(_, m)| m.contains(needle))
    }

    fn running(&self) -> usize {
        self.service.store.counts().unwrap().running.len()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.dispatcher.shutdown();
        self.runner.pool.shutdown(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_job_is_submitted_once_and_left_to_the_worker_to_record() {
    let fx = Fake::new("parallelprocesses = 1", "sleep.dispatch = slurm");
    let job = fx.submit("sleep", delay("0"));
    let name = format!("wps-{}.1", job.id);
    fx.squeue(&format!("1|{name}|PENDING|Priority\n"));
    fx.until("sbatch is called", || {
        fx.file("sbatch.log").lines().count() == 1
    });
    let args = fx.file("sbatch.log");
    assert!(args.contains("--parsable --no-requeue"), "{args}");
    assert!(args.contains(&format!("--job-name={name}")), "{args}");
    let script = fx.file("script.1");
    assert!(
        script.starts_with("#!/usr/lib/apache2/modules/mod_wps-worker\n"),
        "{script}"
    );
    assert!(
        script.contains(&format!("job={}\nattempt=1\n", job.id)),
        "{script}"
    );
    assert!(script.contains(&format!("config={}", fx.dir.join("wps.cfg").display())));
    fx.until("the Slurm job id is recorded", || {
        fx.record(&job.id).unwrap().message == "Queued in Slurm as job 1"
    });
    let r = fx.record(&job.id).unwrap();
    assert_eq!((r.state, r.attempt), (JobState::Running, 1));
    // no parallelprocesses slot is taken: a local job runs meanwhile in the only one
    let local = fx.submit("say_hello", hello());
    fx.until("the local job ends", || {
        fx.record(&local.id).unwrap().state.is_final()
    });
    // the worker records progress and the end through a detached claim
    fx.squeue(&format!("1|{name}|RUNNING|None\n"));
    let claim = Claim::detached(r.clone());
    fx.service
        .store
        .progress(&claim, 40, "Running in Slurm job 1 on n1")
        .unwrap();
    let results = vec![JobOutput {
        identifier: "sleep_output".into(),
        value: StoredValue::Literal("done".into()),
        reference: None,
    }];
    let end = Finish::Succeeded {
        message: "Process sleep finished successfully".into(),
        results: results.clone(),
    };
    assert!(fx.service.store.finish(claim, end).unwrap());
    fx.squeue(&format!("1|{name}|COMPLETED|None\n"));
    let released = format!("job {} (sleep, Slurm job 1): ended in Slurm", job.id);
    fx.until("the claim is released", || fx.logged(&released));
    // (the local job's record is final a moment before its claim's file is removed)
    fx.until("the claims' files are gone", || {
        std::fs::read_dir(fx.dir.join("work/running"))
            .unwrap()
            .count()
            == 0
    });
    let r = fx.record(&job.id).unwrap();
    assert_eq!(r.state, JobState::Succeeded, "the worker's end stands");
    assert_eq!(r.results, results);
    assert_eq!(fx.file("sbatch.log").lines().count(), 1, "submitted once");
    assert!(fx.file("scancel.log").is_empty());
}

#[test]
fn slurm_ending_a_job_without_its_end_recorded_fails_it_saying_so() {
    let fx = Fake::new("", "sleep.dispatch = slurm");
    let job = fx.submit("sleep", delay("0"));
    let name = format!("wps-{}.1", job.id);
    fx.until("submitted", || !fx.file("sbatch.log").is_empty());
    fx.squeue(&format!("1|{name}|CANCELLED by 0|None\n"));
    fx.until("failed", || {
        fx.record(&job.id).unwrap().state == JobState::Failed
    });
    let r = fx.record(&job.id).unwrap();
    assert_eq!(
        r.message,
        "Process 'sleep' failed in Slurm: its Slurm job 1 was cancelled before the job's end was recorded"
    );
    assert_eq!(fx.running(), 0);
    // a job Slurm forgot (not listed past the grace) is lost
    let job = fx.submit("sleep", delay("0"));
    fx.until("submitted", || fx.file("sbatch.log").lines().count() == 2);
    fx.squeue("");
    fx.until("failed", || {
        fx.record(&job.id).unwrap().state == JobState::Failed
    });
    assert!(
        fx.record(&job.id)
            .unwrap()
            .message
            .contains("its Slurm job 2 is no longer known to Slurm"),
        "{:?}",
        fx.record(&job.id)
    );
}

#[test]
fn dismiss_and_the_time_limit_cancel_the_slurm_job() {
    let fx = Fake::new("", "sleep.dispatch = slurm\nsleep.timeout = 1s");
    let job = fx.submit("sleep", delay("30"));
    let name = format!("wps-{}.1", job.id);
    fx.until("submitted", || !fx.file("sbatch.log").is_empty());
    fx.squeue(&format!("1|{name}|PENDING|Priority\n"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fx.record(&job.id).unwrap().state,
        JobState::Running,
        "the time limit counts from when it runs in Slurm"
    );
    fx.squeue(&format!("1|{name}|RUNNING|None\n"));
    fx.until("stopped at its time limit", || {
        fx.record(&job.id).unwrap().state == JobState::Failed
    });
    assert_eq!(
        fx.record(&job.id).unwrap().message,
        "Process 'sleep' exceeded its time limit of 1 s and was stopped"
    );
    // scancel runs once the end is recorded (so that the worker's own end is refused)
    fx.until("cancelled", || fx.file("scancel.log").contains(&name));
    assert_eq!(fx.file("scancel.log"), format!("--me --name={name}\n"));
    // dismissed while queued in Slurm
    let job = fx.submit("sleep", delay("30"));
    let name = format!("wps-{}.1", job.id);
    fx.until("submitted", || fx.file("sbatch.log").lines().count() == 2);
    fx.squeue(&format!("2|{name}|PENDING|Priority\n"));
    assert!(fx.service.store.dismiss(&job.id).unwrap().is_some());
    fx.until("cancelled", || fx.file("scancel.log").contains(&name));
    fx.until("released", || fx.running() == 0);
    assert!(fx.record(&job.id).is_none(), "a dismissed job is gone");
}

#[test]
fn an_orphan_still_in_slurm_is_followed_again_and_one_not_in_slurm_requeued() {
    let fx = Fake::new("", "sleep.dispatch = slurm\nsay_hello.dispatch = slurm");
    // a child claims a job and dies after sbatch: its claim goes with it
    fx.squeue("1|other|RUNNING|None\n");
    std::fs::write(
        fx.dir.join("sbatch.fail"),
        "sbatch: error: Invalid partition name specified",
    )
    .unwrap();
    let job = fx.submit("sleep", delay("30"));
    fx.until("the bad submission fails the job", || {
        fx.record(&job.id).unwrap().state == JobState::Failed
    });
    assert_eq!(
        fx.record(&job.id).unwrap().message,
        "Process 'sleep' could not be submitted to Slurm: sbatch: error: Invalid partition name specified"
    );
    // a dead child's job: claimed elsewhere, then the claim dropped
    std::fs::write(
        fx.dir.join("sbatch.fail"),
        "Unable to contact slurm controller",
    )
    .unwrap();
    fx.dispatcher.shutdown();
    let store = fx.service.store.clone();
    let a = fx.submit("sleep", delay("30"));
    let b = fx.submit("say_hello", hello());
    let (ca, cb) = (
        store.claim().unwrap().unwrap(),
        store.claim().unwrap().unwrap(),
    );
    assert_eq!(
        (ca.record.id.clone(), cb.record.id.clone()),
        (a.id.clone(), b.id.clone())
    );
    fx.squeue(&format!("7|wps-{}.1|RUNNING|None\n", a.id));
    drop((ca, cb));
    let fx2 = Fake::new_over(&fx);
    fx2.until("a is followed again", || {
        fx2.logged(&format!("job {} (sleep, Slurm job 7): the Apache child that followed it is gone; followed again here", a.id))
    });
    fx2.until("b is re-queued", || {
        fx2.logged(&format!("job {} (say_hello): the Apache child that dispatched it is gone and it is not in Slurm; re-queued", b.id))
    });
    let ra = fx2.record(&a.id).unwrap();
    assert_eq!((ra.state, ra.attempt), (JobState::Running, 1), "not re-run");
    // b comes back for attempt 2; sbatch fails transiently: it waits, still claimed
    fx2.until("b waits for Slurm", || {
        fx2.record(&b.id).unwrap().message == "Waiting for Slurm (its controller does not answer)"
    });
    assert_eq!(fx2.record(&b.id).unwrap().attempt, 2);
    assert!(fx2.logged("cannot submit to Slurm now, trying again in 10 s"));
}

impl Fake {
    /// Another Apache child of the same service (its own executor and dispatcher), over the
    /// same store and fake Slurm.
    fn new_over(other: &Fake) -> Fake {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        let logger: Logger = Arc::new(move |level, m: &str| {
            l2.lock().unwrap().push((level, m.to_owned()));
        });
        let dir = other.dir.clone();
        let tools = Tools {
            sbatch: dir.join("bin/sbatch"),
            squeue: dir.join("bin/squeue"),
            scancel: dir.join("bin/scancel"),
            worker: PathBuf::from("/usr/lib/apache2/modules/mod_wps-worker"),
        };
        let service = other.service.clone();
        let slurm = SlurmExecutor::start(service.clone(), Ok(tools), logger.clone());
        let runner = Runner::new(
            service.clone(),
            Pool::start(PoolConfig::new("t2")),
            logger.clone(),
        );
        let dispatcher =
            Dispatcher::start_with(service.clone(), vec![slurm, runner.clone()], true, logger);
        runner.on_wake(dispatcher.waker());
        Fake {
            dir: std::env::temp_dir().join(format!("mod_wps-slurm-none-{}", uuid::Uuid::new_v4())),
            service,
            runner,
            dispatcher,
            log,
        }
    }
}

#[test]
fn maxjobs_holds_slurm_jobs_back_but_not_local_ones() {
    let fx = Fake::new(
        "parallelprocesses = 1",
        "sleep.dispatch = slurm\n[slurm]\nmaxjobs = 1\npartition = gpu\noptions = --mem=1G",
    );
    let a = fx.submit("sleep", delay("30"));
    let b = fx.submit("sleep", delay("30"));
    let c = fx.submit("say_hello", hello());
    fx.squeue(&format!("1|wps-{}.1|PENDING|Priority\n", a.id));
    fx.until("the local job behind them runs", || {
        fx.record(&c.id).unwrap().state.is_final()
    });
    fx.until("a is submitted", || !fx.file("sbatch.log").is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let log = fx.file("sbatch.log");
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.contains(&a.id) && log.contains("--partition=gpu --mem=1G"),
        "{log}"
    );
    assert_eq!(fx.record(&b.id).unwrap().state, JobState::Accepted);
    // a ends: b goes
    fx.squeue(&format!("1|wps-{}.1|FAILED|NonZeroExitCode\n", a.id));
    fx.until("b is submitted", || {
        fx.file("sbatch.log").lines().count() == 2
    });
    let a = fx.record(&a.id).unwrap();
    assert_eq!(a.state, JobState::Failed);
    assert_eq!(
        a.message,
        "Process 'sleep' failed in Slurm: the worker of its Slurm job 1 failed (NonZeroExitCode) before the job's end was recorded"
    );
}
