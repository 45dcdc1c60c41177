//! The executor and the dispatcher without Apache: jobs submitted through the engine are
//! claimed, run, recorded, dismissed, stopped at their time limit, and survive panics.

use super::*;
use crate::engine::{Caller, Submission};
use crate::exec::dispatcher::Dispatcher;
use crate::exec::testing::{literal, Fixture};
use crate::jobs::{JobRecord, JobState};
use crate::model::Input;

fn delay(secs: &str) -> Vec<Input> {
    literal("delay", secs)
}

fn hello(name: &str) -> Vec<Input> {
    literal("name", name)
}

fn submit(fx: &Fixture, process: &str, inputs: Vec<Input>) -> JobRecord {
    fx.service
        .submit(
            fx.runner.as_ref(),
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

/// Waits until `pred` holds for the job's record (None: gone), up to 20 s.
fn wait(fx: &Fixture, id: &str, pred: impl Fn(Option<&JobRecord>) -> bool) -> Option<JobRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = fx.service.store.get(id).unwrap();
        if pred(r.as_ref()) {
            return r;
        }
        assert!(Instant::now() < deadline, "job {id} stuck at {r:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn final_state(fx: &Fixture, id: &str) -> JobRecord {
    wait(fx, id, |r| r.is_some_and(|r| r.state.is_final())).unwrap()
}

fn one_slot() -> Fixture {
    Fixture::new(
        "parallelprocesses = 1",
        "builtin = sleep, say_hello, selftest_panic",
        crate::exec::pool::PoolConfig::new("t"),
    )
}

#[test]
fn a_job_runs_reports_progress_and_keeps_its_results() {
    let fx = one_slot();
    let job = submit(&fx, "sleep", delay("0.3"));
    assert_eq!(job.state, JobState::Accepted);
    let running = wait(&fx, &job.id, |r| {
        r.is_some_and(|r| r.state == JobState::Running && r.progress > 0)
    })
    .unwrap();
    assert_eq!(running.attempt, 1);
    assert!(running.owner.is_some());
    let done = final_state(&fx, &job.id);
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.progress, 100);
    let out = done.output("sleep_output").expect("the output is stored");
    let value = fx.service.load_output(&done.id, out).unwrap();
    assert!(
        matches!(value, crate::model::OutputValue::Literal(ref s) if s.contains("done sleeping"))
    );
    assert!(fx.logs(&format!(
        "job {} (sleep) finished in slot 0: succeeded",
        job.id
    )));
}

#[test]
fn dismissing_a_running_job_frees_its_slot_at_once() {
    let fx = one_slot();
    let long = submit(&fx, "sleep", delay("30"));
    wait(&fx, &long.id, |r| {
        r.is_some_and(|r| r.state == JobState::Running)
    });
    // a second job waits for the only slot
    let next = submit(&fx, "sleep", delay("0"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fx.service
            .job(&next.id, Caller::anonymous())
            .unwrap()
            .unwrap()
            .state,
        JobState::Accepted
    );
    let before = fx
        .service
        .dismiss(&long.id, Caller::anonymous())
        .unwrap()
        .unwrap();
    assert_eq!(before.id, long.id);
    // gone for every job operation at once
    assert!(fx
        .service
        .job(&long.id, Caller::anonymous())
        .unwrap()
        .is_none());
    assert!(fx
        .service
        .dismiss(&long.id, Caller::anonymous())
        .unwrap()
        .is_none());
    // the slot goes to the next job, long before the 30 s sleep would end
    let t0 = Instant::now();
    assert_eq!(final_state(&fx, &next.id).state, JobState::Succeeded);
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(fx.logs("was dismissed"));
    // a queued job dismissed never runs
    let blocker = submit(&fx, "sleep", delay("30"));
    wait(&fx, &blocker.id, |r| {
        r.is_some_and(|r| r.state == JobState::Running)
    });
    let queued = submit(&fx, "say_hello", hello("x"));
    assert!(fx
        .service
        .dismiss(&queued.id, Caller::anonymous())
        .unwrap()
        .is_some());
    fx.service
        .dismiss(&blocker.id, Caller::anonymous())
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(fx
        .service
        .job(&queued.id, Caller::anonymous())
        .unwrap()
        .is_none());
    assert!(!fx.logged(&format!("job {} (say_hello) started", queued.id)));
}

#[test]
fn a_panic_fails_one_job_and_frees_its_slot_and_worker() {
    let mut pool = crate::exec::pool::PoolConfig::new("t");
    pool.threads = 2;
    let fx = Fixture::new(
        "parallelprocesses = 2",
        "builtin = sleep, selftest_panic",
        pool,
    );
    let bad: Vec<JobRecord> = (0..2)
        .map(|_| submit(&fx, "selftest_panic", vec![]))
        .collect();
    for b in &bad {
        let r = final_state(&fx, &b.id);
        assert_eq!(r.state, JobState::Failed);
        assert!(r.message.contains("crashed"), "{}", r.message);
    }
    // both slots and both workers are free again: two jobs run at the same time
    let a = submit(&fx, "sleep", delay("1"));
    let b = submit(&fx, "sleep", delay("1"));
    wait(&fx, &a.id, |r| {
        r.is_some_and(|r| r.state != JobState::Accepted)
    });
    let both = wait(&fx, &b.id, |r| {
        r.is_some_and(|r| r.state != JobState::Accepted)
    })
    .unwrap();
    assert!(
        both.state == JobState::Running || both.state == JobState::Succeeded,
        "{both:?}"
    );
    assert!(
        fx.service
            .job(&a.id, Caller::anonymous())
            .unwrap()
            .unwrap()
            .state
            != JobState::Accepted
    );
    assert_eq!(final_state(&fx, &a.id).state, JobState::Succeeded);
    assert_eq!(final_state(&fx, &b.id).state, JobState::Succeeded);
    assert!(fx.logs("panicked: selftest_panic was asked to panic"));
}

#[test]
fn a_time_limit_fails_the_job_and_frees_the_slot() {
    let fx = Fixture::new(
        "parallelprocesses = 1",
        "builtin = sleep, say_hello\nsleep.timeout = 1s",
        crate::exec::pool::PoolConfig::new("t"),
    );
    let slow = submit(&fx, "sleep", delay("30"));
    let r = final_state(&fx, &slow.id);
    assert_eq!(r.state, JobState::Failed);
    assert!(r.message.contains("time limit of 1 s"), "{}", r.message);
    let next = submit(&fx, "say_hello", hello("x"));
    assert_eq!(final_state(&fx, &next.id).state, JobState::Succeeded);
}

#[test]
fn an_orphan_is_requeued_and_runs_again() {
    let fx = one_slot();
    // another "child" claims a job and dies without finishing it
    let store = crate::jobs::FileStore::new(
        fx.dir.join("work"),
        fx.dir.join("work/outputs"),
        u32::MAX,
        100,
    );
    fx.dispatcher.shutdown();
    let job = submit(&fx, "sleep", delay("0"));
    let claim = crate::jobs::JobStore::claim(&store).unwrap().unwrap();
    assert_eq!(claim.record.id, job.id);
    drop(claim); // the lock is released as when the process dies
    let fx2 = Fixture {
        dir: fx.dir.clone(),
        service: fx.service.clone(),
        runner: fx.runner.clone(),
        dispatcher: Dispatcher::start(
            fx.service.clone(),
            fx.runner.clone(),
            true,
            Arc::new(|_, _| {}),
        ),
        log: fx.log.clone(),
    };
    fx.runner.on_wake(fx2.dispatcher.waker());
    let r = final_state(&fx2, &job.id);
    assert_eq!((r.state, r.attempt), (JobState::Succeeded, 2));
    std::mem::forget(fx2);
}

#[test]
fn with_jobaccess_owner_a_job_answers_only_its_owner_and_admins() {
    let fx = Fixture::new(
        "jobaccess = owner\njobadmins = root",
        "builtin = say_hello",
        crate::exec::pool::PoolConfig::new("t"),
    );
    let submit_as = |user: Option<&str>| {
        fx.service
            .submit(
                fx.runner.as_ref(),
                Submission {
                    process: "say_hello".into(),
                    inputs: hello("x"),
                    outputs: vec![crate::model::OutputRequest {
                        identifier: "response".into(),
                        as_reference: true,
                        ..Default::default()
                    }],
                    user: user.map(str::to_owned),
                    protocol: serde_json::Value::Null,
                },
            )
            .unwrap()
    };
    let (ann, bob, anon) = (
        submit_as(Some("ann")),
        submit_as(Some("bob")),
        submit_as(None),
    );
    for j in [&ann, &bob, &anon] {
        let r = wait(&fx, &j.id, |r| r.is_some_and(|r| r.state.is_final())).unwrap();
        assert_eq!(r.state, JobState::Succeeded, "{r:?}");
    }
    let (a, b, root, nobody) = (
        Caller::new(Some("ann")),
        Caller::new(Some("bob")),
        Caller::new(Some("root")),
        Caller::anonymous(),
    );
    let sees = |id: &str, c| fx.service.job(id, c).unwrap().is_some();
    assert!(sees(&ann.id, a) && !sees(&ann.id, b) && !sees(&ann.id, nobody) && sees(&ann.id, root));
    // anonymous jobs stay readable by id
    assert!(sees(&anon.id, a) && sees(&anon.id, nobody));
    // outputs: the same rule
    let file = fx.service.job(&ann.id, a).unwrap().unwrap().results[0]
        .reference
        .clone()
        .unwrap();
    assert!(fx.service.output_file(&ann.id, &file, a).unwrap().is_some());
    assert!(fx.service.output_file(&ann.id, &file, b).unwrap().is_none());
    // lists: each user their own, the admin all
    let ids = |c| -> Vec<String> {
        fx.service
            .list_jobs(&crate::jobs::JobQuery::default(), c)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(a), vec![ann.id.clone()]);
    assert_eq!(ids(b), vec![bob.id.clone()]);
    assert_eq!(ids(nobody), vec![anon.id.clone()]);
    assert_eq!(ids(root).len(), 3);
    // dismiss: someone else's job is unknown and stays
    assert!(fx.service.dismiss(&ann.id, b).unwrap().is_none());
    assert!(sees(&ann.id, a));
    assert!(fx.service.dismiss(&ann.id, a).unwrap().is_some());
    assert!(!sees(&ann.id, root));
    assert!(fx.service.dismiss(&bob.id, root).unwrap().is_some());
    assert!(!sees(&bob.id, b));
}

/// A process that answers with the name of the thread it ran on.
struct WhereAmI {
    description: crate::model::ProcessDescription,
    quick: bool,
}

impl Process for WhereAmI {
    fn description(&self) -> &crate::model::ProcessDescription {
        &self.description
    }
    fn execute(&self, _: &Inputs, _: &Context) -> Result<Outputs, crate::model::ProcessError> {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        Ok(Outputs(vec![(
            "response".into(),
            crate::model::OutputValue::Literal(name),
        )]))
    }
    fn quick(&self) -> bool {
        self.quick
    }
}

#[test]
fn a_quick_process_runs_on_the_requests_thread_others_on_a_worker() {
    let fx = one_slot();
    let hello = fx.service.process("say_hello").unwrap();
    assert!(hello.quick() && !fx.service.process("sleep").unwrap().quick());
    let thread = |quick| {
        let p = WhereAmI {
            description: hello.description().clone(),
            quick,
        };
        match fx
            .runner
            .run_sync(Arc::new(p), Inputs(vec![]))
            .unwrap()
            .0
            .pop()
        {
            Some((_, crate::model::OutputValue::Literal(name))) => name,
            other => panic!("{other:?}"),
        }
    };
    let caller = std::thread::current().name().unwrap_or("").to_owned();
    assert_eq!(thread(true), caller);
    assert!(thread(false).starts_with("wps-t-"));
    // the slot of parallelprocesses was taken and given back both times
    assert_eq!(thread(true), caller);
}

/// A quick process that finds its group's threads busy for the whole request timeout fails
/// with a clear error and gives its parallelprocesses slot back.
#[test]
fn a_quick_process_that_finds_no_free_thread_fails_and_frees_its_slot() {
    let mut pool = crate::exec::pool::PoolConfig::new("t");
    pool.threads = 1;
    pool.request_timeout = Duration::from_millis(300);
    let fx = Fixture::new("parallelprocesses = 2", "builtin = say_hello", pool);
    let hello = fx.service.process("say_hello").unwrap();
    let quick = || {
        let p = WhereAmI {
            description: hello.description().clone(),
            quick: true,
        };
        fx.runner.run_sync(Arc::new(p), Inputs(vec![]))
    };
    // the one thread is held by a job on the worker (not a job slot: a task of the pool)
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    fx.runner
        .pool
        .spawn(move || {
            let _ = rx.recv();
        })
        .unwrap();
    while fx.runner.pool.has_idle_worker() {
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..3 {
        let e = quick().unwrap_err();
        assert!(
            e.text
                .contains("did not start within the request timeout of 0 s")
                && e.text.contains("all its 1 threads stayed busy"),
            "{}",
            e.text
        );
    }
    drop(tx);
    assert!(quick().is_ok());
}
