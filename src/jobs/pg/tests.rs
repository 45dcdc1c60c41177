//! The PostgreSQL store against a throwaway cluster (Debian's `postgresql`, started in a temp
//! dir); several "hosts" are stores in this process that pretend to be other processes.

use super::*;
use crate::jobs::{new_id, Finish, JobOutput, JobQuery, JobStore, StoredValue};
use crate::model::WpsError;
use std::sync::Arc;

#[path = "../../../tests/support/pg_cluster.rs"]
mod pg_cluster;
use pg_cluster::PgCluster;

type Lines = Arc<Mutex<Vec<String>>>;

struct Host {
    store: PgStore,
    log: Lines,
}

fn host(pg: &PgCluster, db: &str, out: &Path, slots: u32, lease: u64, pid: i32) -> Host {
    let pass = pg.dir.join(format!("pgpass-{db}-{pid}"));
    pg.write_passfile(&pass);
    let cfg = conn::settings(&pg.conn_string(db), Some(&pass)).unwrap();
    let store = PgStore::new(
        cfg,
        out.join("work"),
        out.to_path_buf(),
        slots,
        3,
        4,
        Duration::from_secs(lease),
    )
    .pretend(pid);
    store.prepare(None).unwrap();
    let log: Lines = Arc::default();
    let l2 = log.clone();
    store.start_child(
        Arc::new(move |_, m: &str| l2.lock().unwrap().push(m.to_owned())),
        None,
    );
    Host { store, log }
}

fn job(process: &str) -> JobRecord {
    JobRecord::new(
        new_id(),
        process,
        vec![],
        vec![],
        serde_json::json!({"lang": "en-US"}),
    )
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

fn succeeded() -> Finish {
    Finish::Succeeded {
        message: "done".into(),
        results: vec![JobOutput {
            identifier: "o".into(),
            value: StoredValue::Literal("42".into()),
            reference: None,
        }],
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mod_wps-pgunit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn two_hosts_share_queue_slots_claims_and_cancel() {
    let Some(pg) = PgCluster::start() else { return };
    let db = pg.create_db("shared");
    let out = scratch("shared");
    let a = host(&pg, &db, &out, 2, 3, 1001);
    let b = host(&pg, &db, &out, 2, 3, 1002);
    let (a, b) = (&a.store, &b.store);

    // the queue: global maxprocesses, oldest first
    let jobs: Vec<JobRecord> = (0..3).map(|_| job("sleep")).collect();
    for j in &jobs {
        a.enqueue(j).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(matches!(a.enqueue(&job("sleep")), Err(StoreError::Full(3))));
    assert!(matches!(b.enqueue(&job("sleep")), Err(StoreError::Full(3))));
    assert_eq!(
        b.get(&jobs[0].id).unwrap().unwrap().state,
        JobState::Accepted
    );

    // parallelprocesses across hosts
    let sa = a.try_slot().unwrap().expect("a slot on A");
    let sb = b.try_slot().unwrap().expect("a slot on B");
    assert!(a.try_slot().unwrap().is_none(), "2 slots in all");
    assert!(b.try_slot().unwrap().is_none(), "2 slots in all");

    let c1 = a.claim().unwrap().expect("A claims");
    let c2 = b.claim().unwrap().expect("B claims");
    assert_eq!(
        (c1.record.id.as_str(), c1.record.attempt),
        (jobs[0].id.as_str(), 1)
    );
    assert_eq!(
        c2.record.id, jobs[1].id,
        "SKIP LOCKED: B takes the next one"
    );
    assert_eq!(c1.record.owner.as_deref(), Some("host1001:1001"));

    a.progress(&c1, 50, "half way").unwrap();
    let seen = b.get(&jobs[0].id).unwrap().unwrap();
    assert_eq!(
        (seen.state, seen.progress, seen.message.as_str()),
        (JobState::Running, 50, "half way")
    );
    assert!(seen.lease_until.is_some());

    // outputs: only the claimant writes a job's files; everyone reads them
    a.write_output(&jobs[0].id, "o.txt", b"from A").unwrap();
    let e = b.write_output(&jobs[0].id, "o.txt", b"from B").unwrap_err();
    assert!(
        e.to_string().contains("no longer run by this process"),
        "{e}"
    );
    assert_eq!(
        b.read_output(&jobs[0].id, "o.txt").unwrap().unwrap(),
        b"from A"
    );
    let sync_id = new_id();
    b.write_output(&sync_id, "x.txt", b"sync").unwrap();

    assert!(a.finish(c1, succeeded()).unwrap());
    let done = b.get(&jobs[0].id).unwrap().unwrap();
    assert_eq!((done.state, done.progress), (JobState::Succeeded, 100));
    assert_eq!(done.results.len(), 1);
    assert!(done.owner.is_none() && done.finished.is_some());

    // a freed slot is seen by the other host
    drop(sa);
    let sb2 = until(5, "a freed slot", || b.try_slot().unwrap());
    drop((sb, sb2));

    // a host that stops renewing loses its claim after the lease; its late writes are refused
    let c3 = a.claim().unwrap().expect("A claims the third");
    assert_eq!(c3.record.id, jobs[2].id);
    a.freeze();
    let t0 = Instant::now();
    let orphan = until(15, "the orphan", || b.orphans().unwrap().into_iter().next());
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "not before the lease expires"
    );
    assert_eq!(
        (orphan.record.id.as_str(), orphan.record.attempt),
        (jobs[2].id.as_str(), 1)
    );
    b.requeue(orphan).unwrap();
    let again = b.claim().unwrap().expect("B claims it again");
    assert_eq!(
        (again.record.id.as_str(), again.record.attempt),
        (jobs[2].id.as_str(), 2)
    );
    a.renew(&c3).unwrap();
    assert!(a.cancel_requested(&c3), "A learns that its claim is lost");
    a.progress(&c3, 90, "late").unwrap();
    assert!(a.write_output(&jobs[2].id, "o.txt", b"late").is_err());
    assert!(!a
        .finish(c3, Finish::Failed(WpsError::no_applicable("late")))
        .unwrap());
    assert_eq!(
        b.get(&jobs[2].id).unwrap().unwrap().message,
        "Process started"
    );
    assert!(b.finish(again, succeeded()).unwrap());
    let r = a.get(&jobs[2].id).unwrap().unwrap();
    assert_eq!((r.state, r.attempt), (JobState::Succeeded, 2));

    // Dismiss of a job running on the other host reaches it through the database
    b.requeue(c2).unwrap();
    let c2 = b.claim().unwrap().expect("B runs jobs[1]");
    let old = a.dismiss(&jobs[1].id).unwrap().expect("known");
    assert_eq!(old.state, JobState::Running);
    assert!(
        a.get(&jobs[1].id).unwrap().is_none(),
        "gone for get at once"
    );
    until(5, "the cancel request", || {
        b.cancel_requested(&c2).then_some(())
    });
    assert!(!b.finish(c2, succeeded()).unwrap());
    let rows: i64 = pg
        .client(&db)
        .query_one(
            "SELECT count(*) FROM wps_jobs WHERE id = $1",
            &[&jobs[1].id],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "its owner removed the dismissed job");
    assert!(a.dismiss(&jobs[1].id).unwrap().is_none());

    // a queued job leaves the queue
    let q = job("say_hello");
    a.enqueue(&q).unwrap();
    assert!(b.dismiss(&q.id).unwrap().is_some());
    assert!(b.claim().unwrap().is_none());

    // list and counts
    let h = job("say_hello");
    a.enqueue(&h).unwrap();
    let all = b.list(&JobQuery::default()).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].id, h.id, "newest first");
    let q = JobQuery {
        processes: vec!["sleep".into()],
        states: vec![JobState::Succeeded],
        limit: Some(1),
        ..Default::default()
    };
    let one = b.list(&q).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].id, jobs[2].id);
    // submission time windows (the OGC API's `datetime`)
    let window = |from: Option<u64>, to: Option<u64>| {
        b.list(&JobQuery {
            submitted_from: from,
            submitted_to: to,
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    let first = all.iter().map(|r| r.submitted).min().unwrap();
    assert_eq!(window(Some(first), None), 3);
    assert_eq!(
        window(Some(h.submitted), Some(h.submitted)),
        all.iter().filter(|r| r.submitted == h.submitted).count()
    );
    assert_eq!(window(Some(h.submitted + 3600), None), 0);
    assert_eq!(window(None, Some(h.submitted.saturating_sub(3600))), 0);
    let n = b.counts().unwrap();
    assert_eq!((n.queued, n.finished, n.running.len()), (1, 2, 0));

    // retention
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        b.remove_expired(Duration::from_secs(0), &|| true).unwrap(),
        2
    );
    assert!(!out.join(&jobs[0].id).exists(), "outputs go with the job");
    assert!(a.get(&jobs[0].id).unwrap().is_none());
    let _ = std::fs::remove_dir_all(&out);
}

/// The line for a slot across hosts: each child publishes when its longest-waiting request
/// came; the others see it (not their own), ordered on the database's clock; a row its child
/// no longer refreshes (a frozen host) or of a process gone from this machine is passed over;
/// a slot given back on one host wakes the waiting requests of the others.
#[test]
fn waiting_line_across_hosts() {
    let Some(pg) = PgCluster::start() else { return };
    let db = pg.create_db("line");
    let out = scratch("line");
    let (a, b, c) = (
        host(&pg, &db, &out, 1, 3, 2001),
        host(&pg, &db, &out, 1, 3, 2002),
        host(&pg, &db, &out, 1, 3, 2003),
    );
    let (a, b, c) = (&a.store, &b.store, &c.store);
    let (la, lb, lc) = (
        a.waiting_line().unwrap(),
        b.waiting_line().unwrap(),
        c.waiting_line().unwrap(),
    );
    let now = crate::jobs::monotonic_ns;
    let ms = |n: u64| n * 1_000_000;
    assert!(!lb.someone_before(now()).unwrap(), "no one waits");

    // A's first in line came 300 ms ago
    la.publish(Some(now() - ms(300))).unwrap();
    until(5, "B hears that A waits", || {
        lb.someone_before(now()).unwrap().then_some(())
    });
    assert!(
        !lb.someone_before(now() - ms(2000)).unwrap(),
        "A's request came after one that waits for 2 s"
    );
    assert!(
        !la.someone_before(now()).unwrap(),
        "its own place does not count"
    );
    // A's line moves on: its first in line now came just now
    la.publish(Some(now())).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !lb.someone_before(now() - ms(150)).unwrap(),
        "A's new time, not its old one"
    );
    la.publish(None).unwrap();
    assert!(!lb.someone_before(now()).unwrap());

    // a child of this machine that died waiting: passed over and removed
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id() as i32;
    dead.wait().unwrap();
    let client = &mut pg.client(&db);
    client
        .execute(
            "INSERT INTO wps_waiting VALUES ('test-host-2002', $1, 1, 'x:1', now() - interval '1 s', now())",
            &[&dead_pid],
        )
        .unwrap();
    la.publish(Some(now())).unwrap(); // told: B looks again
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !lb.someone_before(now() - ms(500)).unwrap(),
        "the dead one passed over"
    );
    let rows = |cl: &mut postgres::Client| -> i64 {
        cl.query_one("SELECT count(*) FROM wps_waiting", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(rows(client), 1, "and removed (A's row is left)");
    la.publish(None).unwrap();

    // a live host's row is kept fresh past STALE; a frozen host's is passed over after it
    lc.publish(Some(now() - ms(10_000))).unwrap();
    la.publish(Some(now())).unwrap();
    c.freeze();
    let t0 = now();
    until(5, "B hears of C", || {
        lb.someone_before(now() - ms(5_000)).unwrap().then_some(())
    });
    std::thread::sleep(waiting::STALE + Duration::from_millis(1500));
    assert!(
        !lb.someone_before(t0 - ms(5_000)).unwrap(),
        "C's row counts no more"
    );
    assert!(lb.someone_before(now()).unwrap(), "A's still counts");
    la.publish(None).unwrap();
    lc.publish(None).unwrap();
    assert_eq!(rows(client), 0);

    // a slot given back on A wakes a request of B waiting on its watch; taking one does not
    let watch = lb.freed_watch().unwrap().expect("B listens");
    let held = a.try_slot().unwrap().expect("the slot");
    let t = Instant::now();
    watch.wait(Duration::from_millis(300)).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "woken for nothing"
    );
    let giver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
    });
    let t = Instant::now();
    watch.wait(Duration::from_secs(5)).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "not woken by the slot given back"
    );
    giver.join().unwrap();
    assert!(b.try_slot().unwrap().is_some());

    // a quick process only looks: it runs while a slot is free, and takes none
    let held = a.try_slot().unwrap().expect("the slot");
    assert!(
        b.try_slot_for_a_moment().unwrap().is_none(),
        "the slot is taken"
    );
    drop(held);
    let moment = until(5, "the slot free again", || {
        b.try_slot_for_a_moment().unwrap()
    });
    let taken = c.try_slot().unwrap();
    assert!(taken.is_some(), "the quick process took no slot");
    drop((moment, taken));

    // the store thread's refresh never writes the row again once its child stopped waiting
    let inner = b.inner.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let refresher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                inner.refresh_waiting();
            }
        })
    };
    for _ in 0..100 {
        lb.publish(Some(now())).unwrap();
        std::thread::sleep(Duration::from_micros(500));
        lb.publish(None).unwrap();
        assert_eq!(rows(client), 0, "a row written again after it was removed");
    }
    stop.store(true, Ordering::SeqCst);
    refresher.join().unwrap();
    let unlimited = host(&pg, &db, &out, u32::MAX, 3, 2004);
    assert!(unlimited.store.waiting_line().is_none());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn database_down_parent_safety_schema_and_shared_outputs() {
    let Some(pg) = PgCluster::start() else { return };
    let db = pg.create_db("life");
    let out = scratch("life");

    // never a connection before start_child (the Apache parent)
    let cfg = conn::settings(&pg.conn_string(&db), None).unwrap();
    let parent = PgStore::new(
        cfg,
        out.join("w"),
        out.clone(),
        2,
        30,
        4,
        Duration::from_secs(5),
    );
    parent.prepare(None).unwrap();
    let e = parent.get(&new_id()).unwrap_err();
    assert!(e.to_string().contains("Apache children"), "{e}");
    assert_eq!(pg.mod_wps_connections(&db), 0);

    let a = host(&pg, &db, &out, 2, 5, 2001);
    let j = job("sleep");
    a.store.enqueue(&j).unwrap();
    assert!(pg.mod_wps_connections(&db) >= 1);
    let budget = 4 + 1;
    assert!(pg.mod_wps_connections(&db) <= budget);

    // down: a quick error saying so, never a hang
    pg.stop_server();
    let t0 = Instant::now();
    let e = a.store.get(&j.id).unwrap_err();
    assert!(matches!(e, StoreError::Down(_)), "{e}");
    assert!(matches!(a.store.try_slot(), Err(StoreError::Down(_))));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let log = a.log.lock().unwrap().join("\n");
    assert!(log.contains("job store unavailable"), "{log}");
    assert!(!log.contains(pg_cluster::PASSWORD));

    // back: recovers by itself, nothing lost
    pg.start_server();
    let r = until(10, "the database back", || a.store.get(&j.id).ok());
    assert_eq!(r.unwrap().state, JobState::Accepted);
    until(10, "the recovery logged", || {
        a.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("reachable again"))
            .then_some(())
    });

    // hosts whose outputpath differs are told so
    let other = scratch("life-other");
    let b = host(&pg, &db, &other, 3, 5, 2002);
    b.store.get(&j.id).unwrap();
    let log = b.log.lock().unwrap().join("\n");
    assert!(log.contains("is not shared with"), "{log}");
    assert!(log.contains("parallelprocesses is 3 here but 2"), "{log}");

    // a schema from a newer mod_wps is refused with a clear message
    pg.client(&db)
        .batch_execute("UPDATE wps_meta SET value = '99' WHERE key = 'schema_version'")
        .unwrap();
    let c = host(&pg, &db, &out, 2, 5, 2003);
    let e = c.store.get(&j.id).unwrap_err();
    assert!(
        matches!(e, StoreError::Unavailable(_)) && e.to_string().contains("newer"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn connection_settings_and_password_sources() {
    let dir = scratch("settings");
    let pass = dir.join("pgpass");
    std::fs::write(
        &pass,
        "# comment\nother:5432:*:wps:nope\ndb.example:5433:wps:wps:pa\\:ss\n*:*:*:*:fallback\n",
    )
    .unwrap();
    let cfg = conn::settings("host=db.example port=5433 user=wps dbname=wps", Some(&pass)).unwrap();
    assert_eq!(cfg.get_password(), Some(&b"pa:ss"[..]));
    assert_eq!(conn::describe(&cfg), "postgresql://wps@db.example:5433/wps");
    let cfg = conn::settings("postgresql://wps:inline@db.example/wps", Some(&pass)).unwrap();
    assert_eq!(
        cfg.get_password(),
        Some(&b"inline"[..]),
        "the string's own password first"
    );
    assert!(!conn::describe(&cfg).contains("inline"));
    let cfg = conn::settings("host=h user=u", Some(&pass)).unwrap();
    assert_eq!(cfg.get_password(), Some(&b"fallback"[..]));
    let e = conn::settings("host=h", None).unwrap_err();
    assert!(e.contains("no user"), "{e}");
    let e = conn::settings("host=h user=u sslmode=require", None).unwrap_err();
    assert!(e.contains("sslmode"), "{e}");
    let e = conn::settings("host=h user=u password=topsecret bogus=1", None).unwrap_err();
    assert!(!e.contains("topsecret"), "{e}");
    let e = conn::settings("host=h user=u", Some(&dir.join("missing"))).unwrap_err();
    assert!(e.contains("cannot read the password file"), "{e}");

    // the service config keys
    let cfg = crate::config::service::ServiceConfig::parse(
        "[server]\njobstore = host=db user=wps password=pw\njoblease = 5s\njobstoreconnections = 2\njobstorepassfile = pgpass\n",
        Path::new("/etc/wps/wps.cfg"),
    )
    .unwrap();
    let s = &cfg.server;
    assert_eq!(
        s.jobstore.as_ref().unwrap().0 .0,
        "host=db user=wps password=pw"
    );
    assert!(!format!("{s:?}").contains("pw"), "never in Debug output");
    assert_eq!(
        (s.joblease, s.jobstoreconnections),
        (Duration::from_secs(5), 2)
    );
    assert_eq!(
        s.jobstorepassfile.as_deref(),
        Some(Path::new("/etc/wps/pgpass"))
    );
    for bad in [
        "joblease = 1s",
        "jobstoreconnections = 0",
        "jobstoreconnections = 65",
    ] {
        let text = format!("[server]\n{bad}\n");
        assert!(
            crate::config::service::ServiceConfig::parse(&text, Path::new("/x.cfg")).is_err(),
            "{bad}"
        );
    }
    let file = crate::config::service::ServiceConfig::parse(
        "[server]\njobstore = file\n",
        Path::new("/x.cfg"),
    )
    .unwrap();
    assert!(file.server.jobstore.is_none());
    let e = crate::engine::Service::from_config(
        crate::config::service::ServiceConfig::parse(
            "[server]\njobstore = host=h\n",
            Path::new("/x.cfg"),
        )
        .unwrap(),
    )
    .err()
    .unwrap();
    assert_eq!(e.line, Some(2));
    assert!(
        e.message
            .contains("[server] jobstore: the connection string names no user"),
        "{}",
        e.message
    );
    let _ = std::fs::remove_dir_all(&dir);
}
