use super::*;
use crate::jobs::{new_id, JobOutput, StoredValue};
use crate::model::WpsError;
use std::time::Instant;

/// A test's directory, removed when the test ends, also when it fails.
pub(super) struct TestDir(PathBuf);

impl TestDir {
    pub(super) fn new() -> TestDir {
        TestDir(std::env::temp_dir().join(format!("mod_wps-store-{}", uuid::Uuid::new_v4())))
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) fn store(slots: u32, max: u32) -> (FileStore, TestDir) {
    let d = TestDir::new();
    let s = FileStore::new(d.join("work"), d.join("out"), slots, max);
    assert!(s.prepare(None).unwrap().is_empty());
    (s, d)
}

pub(super) fn job(n: u32) -> JobRecord {
    let mut r = JobRecord::new(new_id(), "sleep", vec![], vec![], serde_json::Value::Null);
    r.key = format!("{n:024}-{}", r.id);
    r
}

pub(super) fn succeeded() -> Finish {
    Finish::Succeeded {
        message: "done".into(),
        results: vec![JobOutput {
            identifier: "o".into(),
            value: StoredValue::Literal("x".into()),
            reference: None,
        }],
    }
}

#[test]
fn fifo_claim_finish_and_queue_limit() {
    let (s, _dir) = store(2, 2);
    let (a, b, c) = (job(2), job(1), job(3));
    s.enqueue(&a).unwrap();
    s.enqueue(&b).unwrap();
    assert!(matches!(s.enqueue(&c), Err(StoreError::Full(2))));
    // a refused job leaves no record
    assert!(s.get(&c.id).unwrap().is_none());
    assert_eq!(s.get(&a.id).unwrap().unwrap().state, JobState::Accepted);
    let first = s.claim().unwrap().unwrap();
    assert_eq!(first.record.id, b.id, "oldest key first");
    assert_eq!(first.record.attempt, 1);
    assert_eq!(first.record.state, JobState::Running);
    assert!(first
        .record
        .owner
        .as_deref()
        .unwrap()
        .ends_with(&format!(":{}", std::process::id())));
    assert_eq!(s.get(&b.id).unwrap().unwrap().state, JobState::Running);
    assert_eq!(s.counts().unwrap().running.len(), 1);
    // our own lock is held: not an orphan
    assert!(s.orphans().unwrap().is_empty());
    s.progress(&first, 40, "half").unwrap();
    let r = s.get(&b.id).unwrap().unwrap();
    assert_eq!((r.progress, r.message.as_str()), (40, "half"));
    assert!(s.finish(first, succeeded()).unwrap());
    let r = s.get(&b.id).unwrap().unwrap();
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(r.results.len(), 1);
    assert!(r.finished.is_some() && r.owner.is_none());
    let counts = s.counts().unwrap();
    assert_eq!(
        (counts.queued, counts.running.len(), counts.finished),
        (1, 0, 1)
    );
    let second = s.claim().unwrap().unwrap();
    assert_eq!(second.record.id, a.id);
    assert!(s.claim().unwrap().is_none());
}

#[test]
fn a_cursor_skips_jobs_claimed_elsewhere_and_sees_new_ones() {
    let (s, d) = store(4, 10);
    // another child: the same directories, its own cursor
    let other = FileStore::new(d.join("work"), d.join("out"), 4, 10);
    let (a, b) = (job(1), job(2));
    s.enqueue(&a).unwrap();
    s.enqueue(&b).unwrap();
    let first = s.claim().unwrap().unwrap();
    assert_eq!(first.record.id, a.id);
    // the other child takes b, which my cursor still lists
    let second = other.claim().unwrap().unwrap();
    assert_eq!(second.record.id, b.id);
    assert!(s.claim().unwrap().is_none());
    let c = job(3);
    s.enqueue(&c).unwrap();
    assert_eq!(s.claim().unwrap().unwrap().record.id, c.id);
    // the queue-length hint followed all of it
    assert_eq!(s.queue_lock().unwrap().count, 0);
}

#[test]
fn slots_are_exclusive_and_released_on_drop() {
    let (s, d) = store(2, 10);
    let a = s.try_slot().unwrap().unwrap();
    let b = s.try_slot().unwrap().unwrap();
    assert_ne!(a.index, b.index);
    assert!(s.try_slot().unwrap().is_none());
    drop(a);
    assert!(s.try_slot().unwrap().is_some());
    let unlimited = FileStore::new(d.join("u"), d.join("uo"), u32::MAX, 1);
    assert!(unlimited.try_slot().unwrap().is_some());
}

/// The line for a slot between processes: each store (a child) publishes when its
/// longest-waiting request came; a store sees the others' (not its own), ordered by that time,
/// and passes over and removes a file no one holds (left by a child that died).
#[test]
fn waiting_line_orders_the_processes_and_passes_over_left_overs() {
    let (a, d) = store(2, 10);
    let b = FileStore::new(d.join("work"), d.join("out"), 2, 10);
    let (la, lb) = (a.waiting_line().unwrap(), b.waiting_line().unwrap());
    assert!(!lb.someone_before(u64::MAX).unwrap(), "no one waits");
    la.publish(Some(100)).unwrap();
    assert!(lb.someone_before(101).unwrap());
    assert!(!lb.someone_before(100).unwrap(), "not before itself");
    assert!(
        !la.someone_before(u64::MAX).unwrap(),
        "a store's own place does not count"
    );
    // a's first in line changes: its file is renamed, and keeps its lock
    la.publish(Some(300)).unwrap();
    assert!(!lb.someone_before(200).unwrap());
    assert!(lb.someone_before(301).unwrap());
    la.publish(None).unwrap();
    assert!(!lb.someone_before(u64::MAX).unwrap());
    assert_eq!(fs::read_dir(d.join("work/waiting")).unwrap().count(), 0);
    // left by a child that died (no lock on it), long ago: passed over and removed; a recent
    // one is taken as it is (its lock is checked only once it is a second old)
    let left = d.join("work/waiting").join(format!("{:020}-1-0", 5));
    fs::write(&left, "").unwrap();
    assert!(!lb.someone_before(5 + 2_000_000_000).unwrap());
    assert!(!left.exists());
    let now = crate::jobs::monotonic_ns();
    let recent = d
        .join("work/waiting")
        .join(format!("{:020}-1-0", now - 1000));
    fs::write(&recent, "").unwrap();
    assert!(lb.someone_before(now).unwrap());
    // slots not limited: no line
    let unlimited = FileStore::new(d.join("u"), d.join("uo"), u32::MAX, 1);
    assert!(unlimited.waiting_line().is_none());
}

/// A slot given back in one process wakes a request waiting in another at once; taking a
/// slot, or failing to, does not.
#[test]
fn a_slot_given_back_is_told_to_the_other_processes() {
    let (a, d) = store(1, 10);
    let b = FileStore::new(d.join("work"), d.join("out"), 1, 10);
    let watch = b
        .waiting_line()
        .unwrap()
        .freed_watch()
        .unwrap()
        .expect("inotify");
    let long = Duration::from_secs(5);
    let held = a.try_slot().unwrap().unwrap();
    assert!(b.try_slot().unwrap().is_none());
    let t = Instant::now();
    watch.wait(Duration::from_millis(300)).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "woken without a slot given back"
    );
    let giver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
    });
    let t = Instant::now();
    watch.wait(long).unwrap();
    assert!(t.elapsed() < long / 2, "not woken by the slot given back");
    giver.join().unwrap();
    assert!(b.try_slot().unwrap().is_some());

    // a watch given back is used again by the next first in line (closing one is slow), and
    // what was told before that one began to watch is not news to it
    drop(watch);
    drop(a.try_slot().unwrap().expect("the slot"));
    let again = b.waiting_line().unwrap().freed_watch().unwrap().unwrap();
    let t = Instant::now();
    again.wait(Duration::from_millis(300)).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "woken by a slot given back before it watched"
    );
}

#[test]
fn orphans_are_found_and_requeued_in_place() {
    let (s, _dir) = store(1, 10);
    let a = job(5);
    s.enqueue(&a).unwrap();
    let claimed = s.claim().unwrap().unwrap();
    // the owner "dies": its lock file description is closed without finishing
    if let Some(m) = claimed
        .hold()
        .downcast_ref::<Mutex<Option<claims::JobLock>>>()
    {
        drop(m.lock().unwrap().take());
    }
    std::mem::forget(claimed);
    let orphans = s.orphans().unwrap();
    assert_eq!(orphans.len(), 1);
    let o = orphans.into_iter().next().unwrap();
    assert_eq!(o.record.id, a.id);
    s.requeue(o).unwrap();
    assert!(s.counts().unwrap().running.is_empty());
    assert_eq!(s.get(&a.id).unwrap().unwrap().state, JobState::Accepted);
    let later = job(9);
    s.enqueue(&later).unwrap();
    let again = s.claim().unwrap().unwrap();
    assert_eq!(again.record.id, a.id, "a re-queued job keeps its place");
    assert_eq!(again.record.attempt, 2);
}

#[test]
fn finish_compares_the_attempt() {
    let (s, _dir) = store(1, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let mut stale = s.claim().unwrap().unwrap();
    // the job moved on to a later attempt meanwhile (re-queued and claimed elsewhere)
    s.update(&a.id, |r| r.attempt = 2).unwrap();
    stale.record.attempt = 1;
    assert!(!s
        .finish(stale, Finish::Failed(WpsError::no_applicable("x")))
        .unwrap());
    assert_eq!(s.get(&a.id).unwrap().unwrap().state, JobState::Running);
}

#[test]
fn dismiss_queued_running_and_finished_jobs() {
    let (s, _dir) = store(4, 10);
    let (q, r, f) = (job(1), job(2), job(3));
    for j in [&f, &r, &q] {
        s.enqueue(j).unwrap();
    }
    // f and r are claimed (oldest key first: q=1 is first, so claim it first and requeue order)
    let c1 = s.claim().unwrap().unwrap();
    assert_eq!(c1.record.id, q.id);
    s.requeue(c1).unwrap();
    // dismiss the queued job: gone at once, and never claimed
    assert_eq!(s.dismiss(&q.id).unwrap().unwrap().id, q.id);
    assert!(s.get(&q.id).unwrap().is_none());
    assert!(s.dismiss(&q.id).unwrap().is_none());
    let running = s.claim().unwrap().unwrap();
    assert_eq!(running.record.id, r.id);
    let done = s.claim().unwrap().unwrap();
    assert_eq!(done.record.id, f.id);
    s.write_output(&f.id, "o.txt", b"x").unwrap();
    assert!(s.finish(done, succeeded()).unwrap());
    // a finished job: record and outputs removed
    assert!(s.dismiss(&f.id).unwrap().is_some());
    assert!(s.get(&f.id).unwrap().is_none());
    assert!(s.read_output(&f.id, "o.txt").unwrap().is_none());
    // a running job: gone for readers at once; its owner sees the request
    assert!(!s.cancel_requested(&running));
    assert!(s.dismiss(&r.id).unwrap().is_some());
    assert!(s.get(&r.id).unwrap().is_none());
    assert!(s.cancel_requested(&running));
    assert!(s.list(&JobQuery::default()).unwrap().is_empty());
    // the owner's final write does not bring it back
    assert!(!s.finish(running, succeeded()).unwrap());
    assert!(s.get(&r.id).unwrap().is_none());
    assert!(!s.record_path(&r.id).exists() && !s.cancel_path(&r.id).exists());
    assert!(s.claim().unwrap().is_none());
}

#[test]
fn list_filters_and_pages_newest_first() {
    let (s, _dir) = store(4, 10);
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut j = job(n);
        if n % 2 == 0 {
            j.process = "other".into();
            j.user = Some("ann".into());
        }
        s.enqueue(&j).unwrap();
        ids.push(j.id);
    }
    let all = s.list(&JobQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids.iter().rev().cloned().collect::<Vec<_>>()
    );
    let q = JobQuery {
        processes: vec!["other".into()],
        limit: Some(2),
        offset: 1,
        ..Default::default()
    };
    let page: Vec<String> = s.list(&q).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(page, vec![ids[2].clone(), ids[0].clone()]);
    let q = JobQuery {
        owner: crate::jobs::Owner::User("ann".into()),
        states: vec![JobState::Running],
        ..Default::default()
    };
    assert!(s.list(&q).unwrap().is_empty());
    let mine = |owner| {
        s.list(&JobQuery {
            owner,
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    assert_eq!(mine(crate::jobs::Owner::User("ann".into())), 3);
    assert_eq!(mine(crate::jobs::Owner::Anonymous), 2);
    assert_eq!(mine(crate::jobs::Owner::User("bob".into())), 0);
}

#[test]
fn outputs_are_written_atomically_and_expire() {
    let (s, _dir) = store(1, 10);
    let a = job(1);
    s.write_output(&a.id, "out.json", b"{}").unwrap();
    assert_eq!(s.read_output(&a.id, "out.json").unwrap().unwrap(), b"{}");
    assert!(s.write_output(&a.id, "../x", b"").is_err());
    assert!(s.read_output(&a.id, "..").unwrap().is_none());
    // no temporary files are left behind
    let names: Vec<_> = fs::read_dir(s.outputs().join(&a.id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["out.json"]);
    s.enqueue(&a).unwrap();
    let c = s.claim().unwrap().unwrap();
    s.finish(c, succeeded()).unwrap();
    // a job still waiting in the queue is kept, however old
    let waiting = job(7);
    s.enqueue(&waiting).unwrap();
    // a synchronous request's stored output (no job record) expires too
    let sync_id = new_id();
    s.write_output(&sync_id, "o.txt", b"x").unwrap();
    assert_eq!(
        s.remove_expired(Duration::from_secs(3600), &|| true)
            .unwrap(),
        0
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        s.remove_expired(Duration::from_millis(10), &|| true)
            .unwrap(),
        1
    );
    assert!(s.get(&a.id).unwrap().is_none());
    assert!(!s.outputs().join(&a.id).exists());
    assert!(s.get(&waiting.id).unwrap().is_some());
    assert!(!s.outputs().join(&sync_id).exists());
}

#[test]
fn the_previous_layout_is_set_aside_with_a_note() {
    let d = TestDir::new();
    let work = d.join("work");
    for dir in ["queue", "running", "done"] {
        fs::create_dir_all(work.join(dir)).unwrap();
    }
    fs::write(work.join("queue/1.json"), "{}").unwrap();
    fs::write(work.join("done/2.json"), "{}").unwrap();
    fs::create_dir_all(d.join("out")).unwrap();
    let old_doc = new_id();
    fs::write(d.join("out").join(format!("{old_doc}.xml")), "<old/>").unwrap();
    let s = FileStore::new(work.clone(), d.join("out"), 1, 10);
    let notes = s.prepare(None).unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("1 queued") && notes[0].contains("1 finished"),
        "{notes:?}"
    );
    assert_eq!(s.queued(), 0);
    assert_eq!(s.legacy_status(&old_doc).unwrap(), b"<old/>");
    // a second start finds the current layout: nothing to say
    assert!(s.prepare(None).unwrap().is_empty());
}

/// The index's entries (in their bucket directories).
pub(super) fn index_entries(s: &FileStore) -> Vec<fs::DirEntry> {
    let mut out = Vec::new();
    let mut dirs = vec![s.root().join("index")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                out.push(e);
            }
        }
    }
    out
}

/// The names of the index's entries.
pub(super) fn index_names(s: &FileStore) -> Vec<String> {
    index_entries(s)
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn ids(v: Vec<JobRecord>) -> Vec<String> {
    v.into_iter().map(|r| r.id).collect()
}

#[test]
fn the_index_follows_every_state_and_lists_like_the_records() {
    let (s, _dir) = store(4, 100);
    let mut all = Vec::new();
    for n in 0..8u32 {
        let mut j = JobRecord::new(
            new_id(),
            if n % 2 == 0 { "a" } else { "b" },
            vec![],
            vec![],
            serde_json::Value::Null,
        );
        j.user = (n % 3 == 0).then(|| "ann".to_owned());
        s.enqueue(&j).unwrap();
        all.push(j.id);
    }
    let entries = || index_names(&s).len();
    assert_eq!(entries(), 8);
    // claim two (oldest first): one succeeds, one is re-queued; dismiss a queued one
    let c1 = s.claim().unwrap().unwrap();
    let c2 = s.claim().unwrap().unwrap();
    assert!(s.finish(c1, succeeded()).unwrap());
    s.requeue(c2).unwrap();
    s.dismiss(&all[7]).unwrap();
    assert_eq!(entries(), 7, "a dismissed job leaves the index");
    let names = index_names(&s);
    assert_eq!(names.iter().filter(|n| n.contains(".s.")).count(), 1);
    assert_eq!(names.iter().filter(|n| n.contains(".a.")).count(), 6);
    let q = |states: Vec<JobState>, processes: Vec<&str>, owner| JobQuery {
        states,
        processes: processes.into_iter().map(str::to_owned).collect(),
        owner,
        ..Default::default()
    };
    use crate::jobs::Owner;
    assert_eq!(
        ids(s
            .list(&q(vec![JobState::Succeeded], vec![], Owner::Any))
            .unwrap()),
        [all[0].clone()]
    );
    assert_eq!(
        ids(s.list(&q(vec![], vec!["b"], Owner::Any)).unwrap()),
        [all[5].clone(), all[3].clone(), all[1].clone()]
    );
    assert_eq!(
        ids(s
            .list(&q(vec![], vec![], Owner::User("ann".into())))
            .unwrap()),
        [all[6].clone(), all[3].clone(), all[0].clone()]
    );
    // an entry that lags behind its record (a child died between the two writes) is still
    // listed by the record's state, and corrected
    let mut r = s.get(&all[2]).unwrap().unwrap();
    r.state = JobState::Failed;
    s.write_record(&r, false).unwrap();
    assert_eq!(
        ids(s
            .list(&q(vec![JobState::Failed], vec![], Owner::Any))
            .unwrap()),
        [all[2].clone()]
    );
    assert!(index_names(&s).iter().any(|n| n.starts_with(&r.key)));
    // the same answers without the index (built again at prepare, as for an older store)
    let before = ids(s.list(&JobQuery::default()).unwrap());
    fs::remove_dir_all(s.root().join("index")).unwrap();
    assert_eq!(
        ids(s.list(&JobQuery::default()).unwrap()),
        before,
        "the full scan agrees"
    );
    let notes = s.prepare(None).unwrap();
    assert!(
        notes.iter().any(|n| n.contains("built from 7 job record")),
        "{notes:?}"
    );
    assert_eq!(ids(s.list(&JobQuery::default()).unwrap()), before);
    let page = JobQuery {
        offset: 2,
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(ids(s.list(&page).unwrap()), before[2..5]);
}

/// `cargo test --release --lib jobs::file::tests::listing_100k -- --ignored --nocapture`
#[test]
#[ignore]
fn listing_100k_jobs_reads_only_a_page() {
    let (s, _dir) = store(1, 1);
    let records = s.root().join("records");
    for n in 0..100_000u32 {
        let mut j = job(n);
        j.process = if n % 10 == 0 {
            "rare".into()
        } else {
            "sleep".into()
        };
        j.state = JobState::Succeeded;
        fs::write(
            records.join(format!("{}.json", j.id)),
            serde_json::to_vec(&j).unwrap(),
        )
        .unwrap();
    }
    fs::remove_dir_all(s.root().join("index")).unwrap();
    let t = Instant::now();
    s.prepare(None).unwrap();
    println!("index of 100 000 jobs built in {:?}", t.elapsed());
    for q in [
        JobQuery {
            limit: Some(11),
            ..Default::default()
        },
        JobQuery {
            limit: Some(11),
            offset: 5000,
            processes: vec!["rare".into()],
            ..Default::default()
        },
    ] {
        let t = Instant::now();
        assert_eq!(s.list(&q).unwrap().len(), 11);
        println!("{q:?}: {:?}", t.elapsed());
    }
}

#[test]
fn claims_can_be_limited_to_some_processes_and_others_keep_their_place() {
    let (s, _dir) = store(2, 10);
    let mut a = job(1);
    a.process = "heavy".into();
    let (b, c) = (job(2), job(3));
    for j in [&a, &b, &c] {
        s.enqueue(j).unwrap();
    }
    let light = |p: &str| p != "heavy";
    assert_eq!(s.claim_matching(&light).unwrap().unwrap().record.id, b.id);
    assert_eq!(s.claim_matching(&light).unwrap().unwrap().record.id, c.id);
    assert!(s.claim_matching(&light).unwrap().is_none());
    // the passed-over job is still first in line, for any claimer
    let heavy = s.claim().unwrap().unwrap();
    assert_eq!(
        (heavy.record.id.clone(), heavy.record.attempt),
        (a.id.clone(), 1)
    );
    assert!(s.claim_matching(&|_| true).unwrap().is_none());
}

#[test]
fn a_detached_claim_records_for_its_attempt_and_an_end_is_recorded_once() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let held = s.claim().unwrap().unwrap();
    // another process (the Slurm worker) writes with a detached claim of the same attempt
    let worker = Claim::detached(held.record.clone());
    s.progress(&worker, 50, "half").unwrap();
    assert_eq!(s.get(&a.id).unwrap().unwrap().progress, 50);
    assert!(s.finish(worker, succeeded()).unwrap());
    // the holder's later end is refused (the worker's stands) and releases the claim
    let late = Finish::Failed(WpsError::no_applicable("late"));
    assert!(!s.finish(held, late).unwrap());
    let r = s.get(&a.id).unwrap().unwrap();
    assert_eq!((r.state, r.message.as_str()), (JobState::Succeeded, "done"));
    assert!(s.orphans().unwrap().is_empty());
    assert_eq!(s.counts().unwrap().running.len(), 0);
    // a detached claim of an older attempt writes nothing
    let mut stale = r.clone();
    stale.attempt = 0;
    s.progress(&Claim::detached(stale), 10, "stale").unwrap();
    assert_eq!(s.get(&a.id).unwrap().unwrap().message, "done");
}

#[test]
fn record_writes_of_two_processes_do_not_lose_each_other() {
    // two stores over one directory stand for an Apache child and a Slurm worker
    let (s, d) = store(2, 10);
    let other = FileStore::new(d.join("work"), d.join("out"), 2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let held = s.claim().unwrap().unwrap();
    let worker = Claim::detached(held.record.clone());
    std::thread::scope(|t| {
        t.spawn(|| {
            for _ in 0..200 {
                s.renew(&held).unwrap();
            }
        });
        t.spawn(|| {
            for i in 0..200 {
                other
                    .progress(&worker, i % 100, &format!("step {i}"))
                    .unwrap();
            }
            assert!(other
                .finish(Claim::detached(worker.record.clone()), succeeded())
                .unwrap());
        });
    });
    let r = s.get(&a.id).unwrap().unwrap();
    assert_eq!(
        r.state,
        JobState::Succeeded,
        "a renewal never overwrites the end"
    );
}

/// Jobs submitted in different seconds and thousand-second spans: listed newest first across
/// bucket directories, a page reads only what it needs, and a retention sweep looks only at
/// jobs submitted before its cutoff and removes the buckets it empties.
#[test]
fn the_index_lists_across_buckets_and_the_sweep_prunes_them() {
    let (s, _dir) = store(4, 100);
    let now = unix_now();
    let mut all = Vec::new();
    // two jobs in each of: 5000 s ago, 1500 s ago, 2 s ago (and submitted now)
    for (k, ago) in [5000u64, 5000, 1500, 1500, 2, 2].into_iter().enumerate() {
        let mut j = JobRecord::new(new_id(), "p", vec![], vec![], serde_json::Value::Null);
        let nanos = u128::from(now - ago) * 1_000_000_000 + k as u128;
        j.key = format!("{nanos:024}-{}", j.id);
        s.enqueue(&j).unwrap();
        all.push(j);
    }
    let mut newest_first: Vec<String> = all.iter().rev().map(|j| j.id.clone()).collect();
    assert_eq!(ids(s.list(&JobQuery::default()).unwrap()), newest_first);
    let page = JobQuery {
        offset: 1,
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(ids(s.list(&page).unwrap()), newest_first[1..4]);
    let buckets = |d: &Path| {
        fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
            .count()
    };
    assert_eq!(
        buckets(&s.root().join("index")),
        3,
        "three thousand-second buckets"
    );
    // finish all; the four old ones' records are old, the new ones fresh
    while let Some(c) = s.claim().unwrap() {
        assert!(s.finish(c, succeeded()).unwrap());
    }
    let old = std::time::SystemTime::now() - Duration::from_secs(4000);
    for j in &all[..4] {
        let f = fs::File::options()
            .write(true)
            .open(s.root().join("records").join(format!("{}.json", j.id)))
            .unwrap();
        f.set_modified(old).unwrap();
    }
    assert_eq!(
        s.remove_expired(Duration::from_secs(1000), &|| true)
            .unwrap(),
        4
    );
    newest_first.truncate(2);
    assert_eq!(ids(s.list(&JobQuery::default()).unwrap()), newest_first);
    assert_eq!(
        buckets(&s.root().join("index")),
        1,
        "emptied buckets are removed"
    );
    // a job submitted into a bucket a sweep has just removed finds it again
    let mut j = JobRecord::new(new_id(), "p", vec![], vec![], serde_json::Value::Null);
    j.key = all[0].key.replacen(&all[0].id, &j.id, 1);
    s.enqueue(&j).unwrap();
    assert_eq!(
        ids(s.list(&JobQuery::default()).unwrap()).last(),
        Some(&j.id)
    );
}

/// A flat index of the previous layout (one directory of entries) is replaced by the
/// bucketed one at start-up.
#[test]
fn a_flat_index_is_rebuilt_in_buckets() {
    let (s, _dir) = store(4, 100);
    let mut all = Vec::new();
    for n in 0..3u32 {
        let j = job(n);
        s.enqueue(&j).unwrap();
        all.push(j.id);
    }
    let index = s.root().join("index");
    fs::remove_dir_all(&index).unwrap();
    fs::create_dir(&index).unwrap();
    fs::write(index.join(format!("{:024}-{}.a.0.-", 0, all[0])), "").unwrap();
    let notes = s.prepare(None).unwrap();
    assert!(
        notes.iter().any(|n| n.contains("built from 3 job record")),
        "{notes:?}"
    );
    all.reverse();
    assert_eq!(ids(s.list(&JobQuery::default()).unwrap()), all);
    assert_eq!(index_names(&s).len(), 3);
}

/// A sweep works in short slices and stops between jobs when told to (a child that drains);
/// the next sweep removes the rest.
#[test]
fn a_sweep_stops_when_told_and_the_next_one_finishes() {
    let (s, _dir) = store(u32::MAX, 1_000_000);
    let n = 400;
    for k in 0..n {
        s.enqueue(&job(k)).unwrap();
    }
    while let Some(c) = s.claim().unwrap() {
        assert!(s.finish(c, succeeded()).unwrap());
    }
    std::thread::sleep(Duration::from_millis(20));
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let first = s
        .remove_expired(Duration::from_millis(10), &|| {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        })
        .unwrap();
    assert!(
        first < n as usize && asked.into_inner() == 1,
        "removed {first} of {n} before it was told to stop"
    );
    assert_eq!(
        s.list(&JobQuery::default()).unwrap().len(),
        n as usize - first
    );
    let rest = s
        .remove_expired(Duration::from_millis(10), &|| true)
        .unwrap();
    assert_eq!(first + rest, n as usize);
    assert!(s.list(&JobQuery::default()).unwrap().is_empty());
}
