//! The file store's files: record rewrites through a spare, what a crash leaves behind, and
//! how many files a job makes and removes.

use super::tests::{index_entries, index_names, job, store, succeeded};
use super::*;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;

fn ino(p: &Path) -> Option<u64> {
    fs::metadata(p).ok().map(|m| m.ino())
}

/// The names in `records/` other than the shard locks.
fn record_files(s: &FileStore) -> BTreeSet<String> {
    fs::read_dir(s.root().join("records"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".lock-"))
        .collect()
}

#[test]
fn a_rewrite_exchanges_the_record_with_its_spare() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let (record, spare) = (s.record_path(&a.id), s.spare_path(&a.id));
    let first = ino(&record).unwrap();
    assert!(!spare.exists(), "a new record has no spare yet");
    let c = s.claim().unwrap().unwrap();
    // the claim's rewrite made the spare, and the first record is the spare now
    assert_eq!(ino(&spare), Some(first));
    let second = ino(&record).unwrap();
    assert_ne!(second, first);
    s.progress(&c, 50, "half").unwrap();
    assert_eq!((ino(&record), ino(&spare)), (Some(first), Some(second)));
    assert_eq!(s.get(&a.id).unwrap().unwrap().message, "half");
    assert!(s.finish(c, succeeded()).unwrap());
    assert_eq!((ino(&record), ino(&spare)), (Some(second), Some(first)));
    let r = s.get(&a.id).unwrap().unwrap();
    assert_eq!((r.state, r.progress), (JobState::Succeeded, 100));
    // the record of a job that ended is not written again: its spare keeps no blocks
    assert_eq!(fs::metadata(&spare).unwrap().len(), 0);
    // no temporary files: the record and its spare only
    assert_eq!(
        record_files(&s),
        BTreeSet::from([format!("{}.json", a.id), format!(".{}.spare", a.id)])
    );
    // listings do not take the spare for a record
    assert_eq!(s.list(&JobQuery::default()).unwrap().len(), 1);
    assert_eq!(s.counts().unwrap().finished, 1);
}

/// Where the file system cannot exchange two names, the spare is a temporary file renamed
/// over the record.
#[test]
fn without_exchange_the_spare_is_renamed_over_the_record() {
    let (s, _dir) = store(2, 10);
    s.exchange.store(false, Ordering::Relaxed);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let spare = s.spare_path(&a.id);
    let c = s.claim().unwrap().unwrap();
    assert!(!spare.exists(), "renamed over the record");
    s.progress(&c, 50, "half").unwrap();
    assert!(!spare.exists(), "renamed over the record");
    assert_eq!(s.get(&a.id).unwrap().unwrap().message, "half");
    assert!(s.finish(c, succeeded()).unwrap());
    assert_eq!(s.get(&a.id).unwrap().unwrap().state, JobState::Succeeded);
    assert_eq!(record_files(&s), BTreeSet::from([format!("{}.json", a.id)]));
}

/// A reader that opened the record just before it became the spare, and reads it while the
/// next rewrite goes into it, waits for that write instead of reading it half-done.
#[test]
fn readers_never_see_a_rewrite_half_done() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let c = s.claim().unwrap().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let long = "x".repeat(256 * 1024);
    std::thread::scope(|t| {
        for _ in 0..2 {
            t.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    let r = s.get(&a.id).expect("a whole record").unwrap();
                    assert!(r.message == "short" || r.message == long || r.progress == 0);
                    reads += 1;
                }
            });
        }
        for i in 0..300 {
            let m = if i % 2 == 0 { long.as_str() } else { "short" };
            s.progress(&c, i % 100, m).unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
}

/// A reader that opened the record just before the job ended, and got its shared lock once
/// the old record (the spare now) was emptied, reads the record again by its name.
#[test]
fn a_reader_of_an_emptied_spare_reads_the_record_again() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let record = s.record_path(&a.id);
    // a writer holds the record's inode
    let old = fs::File::options().write(true).open(&record).unwrap();
    old.lock().unwrap();
    std::thread::scope(|t| {
        let reader = t.spawn(|| s.get(&a.id).unwrap().unwrap());
        std::thread::sleep(Duration::from_millis(200));
        // the job's last record goes into the spare, which is exchanged with the record, and
        // the old record is emptied
        let mut end = a.clone();
        end.state = JobState::Succeeded;
        let data = serde_json::to_vec(&end).unwrap();
        let exchange = std::sync::atomic::AtomicBool::new(true);
        let spare = s.spare_path(&a.id);
        assert!(fs_util::rewrite(&record, &spare, &data, false, &exchange).unwrap());
        old.set_len(0).unwrap();
        drop(old);
        assert_eq!(reader.join().unwrap().state, JobState::Succeeded);
    });
}

#[test]
fn a_rewrite_does_not_bring_back_a_removed_record() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let c = s.claim().unwrap().unwrap();
    let r = s.get(&a.id).unwrap().unwrap();
    // removed between a writer's read and its write
    fs::remove_file(s.record_path(&a.id)).unwrap();
    for exchange in [true, false] {
        s.exchange.store(exchange, Ordering::Relaxed);
        s.write_record(&r, false).unwrap();
        assert!(!s.record_path(&a.id).exists() && !s.spare_path(&a.id).exists());
    }
    s.progress(&c, 10, "gone").unwrap();
    assert!(s.get(&a.id).unwrap().is_none());
}

#[test]
fn the_spare_goes_with_the_job() {
    let (s, _dir) = store(4, 10);
    let jobs: Vec<JobRecord> = (1..=4).map(job).collect();
    for j in &jobs {
        s.enqueue(j).unwrap();
    }
    let claims: Vec<Claim> = (0..4).map(|_| s.claim().unwrap().unwrap()).collect();
    let mut claims = claims.into_iter();
    let running = claims.next().unwrap();
    for c in claims {
        assert!(s.finish(c, succeeded()).unwrap());
    }
    for j in &jobs {
        assert!(s.spare_path(&j.id).exists());
    }
    // dismissed when finished
    s.dismiss(&jobs[1].id).unwrap();
    // dismissed while running: its owner removes it when it ends
    s.dismiss(&jobs[0].id).unwrap();
    assert!(!s.finish(running, succeeded()).unwrap());
    // expired: through the index, and without one
    std::thread::sleep(Duration::from_millis(20));
    let old = SystemTime::now() - Duration::from_secs(10);
    let record = fs::File::options()
        .write(true)
        .open(s.record_path(&jobs[2].id))
        .unwrap();
    record.set_modified(old).unwrap();
    assert_eq!(
        s.remove_expired(Duration::from_secs(5), &|| true).unwrap(),
        1
    );
    fs::remove_dir_all(s.root().join("index")).unwrap();
    assert_eq!(
        s.remove_expired(Duration::from_millis(10), &|| true)
            .unwrap(),
        1
    );
    assert_eq!(record_files(&s), BTreeSet::new());
}

/// A crash (kill -9) can leave a spare half-written: the next rewrite writes it whole.
#[test]
fn a_half_written_spare_is_rewritten() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    fs::write(s.spare_path(&a.id), b"{\"id\":").unwrap();
    let c = s.claim().unwrap().unwrap();
    assert_eq!(s.get(&a.id).unwrap().unwrap().state, JobState::Running);
    assert!(s.finish(c, succeeded()).unwrap());
    assert_eq!(s.get(&a.id).unwrap().unwrap().state, JobState::Succeeded);
    assert_eq!(index_names(&s).len(), 1);
}

fn ids(v: Vec<JobRecord>) -> Vec<String> {
    v.into_iter().map(|r| r.id).collect()
}

/// A crash while a job is submitted can leave its record half-written (it is created under
/// its own name), with neither index nor queue entry: no reader of `records/` trips over it.
#[test]
fn a_half_written_record_of_a_crashed_submit_is_skipped() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let c = s.claim().unwrap().unwrap();
    assert!(s.finish(c, succeeded()).unwrap());
    let half = job(2);
    let text = serde_json::to_vec(&half).unwrap();
    fs::write(s.record_path(&half.id), &text[..text.len() / 2]).unwrap();
    // and one that crashed right after it was created
    fs::write(s.record_path(&job(3).id), b"").unwrap();
    let all = JobQuery::default();
    let only = vec![a.id.clone()];
    assert_eq!(ids(s.list(&all).unwrap()), only);
    // without the index: the full scan, then the index built again at start-up
    fs::remove_dir_all(s.root().join("index")).unwrap();
    assert_eq!(ids(s.list(&all).unwrap()), only);
    let notes = s.prepare(None).unwrap();
    assert!(
        notes.iter().any(|n| n.contains("built from 1 job record")),
        "{notes:?}"
    );
    assert_eq!(ids(s.list(&all).unwrap()), only);
    assert_eq!(s.counts().unwrap().queued, 0);
    assert!(s.claim().unwrap().is_none());
    assert!(s
        .remove_expired(Duration::from_secs(3600), &|| true)
        .is_ok());
    // the store goes on
    let b = job(4);
    s.enqueue(&b).unwrap();
    assert_eq!(s.claim().unwrap().unwrap().record.id, b.id);
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A claim is an flock on the job's queue entry, which moves to `running/` and back.
#[test]
fn a_claim_locks_its_queue_entry() {
    let (s, d) = store(2, 10);
    let other = FileStore::new(d.join("work"), d.join("out"), 2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let entry = s.root().join("queue").join(format!("{}.json", a.key));
    let file = ino(&entry).unwrap();
    assert_eq!(
        index_inodes(&s),
        BTreeSet::from([file]),
        "a name of the index entry"
    );
    // a claimer that has locked the entry and not yet moved it: others pass it over
    let claiming = fs::File::open(&entry).unwrap();
    claiming.lock().unwrap();
    assert!(other.claim().unwrap().is_none());
    assert!(entry.exists());
    drop(claiming);
    let c = s.claim().unwrap().unwrap();
    let running = s.root().join("running");
    assert_eq!(names(&running), BTreeSet::from([format!("{}.json", a.id)]));
    assert_eq!(ino(&running.join(format!("{}.json", a.id))), Some(file));
    // for another child it is not an orphan
    assert!(other.orphans().unwrap().is_empty());
    let held = fs::File::open(running.join(format!("{}.json", a.id))).unwrap();
    assert!(held.try_lock().is_err(), "the owner holds it");
    drop(held);
    // re-queued: the same file goes back under its old name
    s.requeue(c).unwrap();
    assert_eq!(ino(&entry), Some(file));
    assert!(names(&running).is_empty());
    assert_eq!(s.queued(), 1);
    let c = other.claim().unwrap().unwrap();
    assert_eq!(c.record.attempt, 2);
    assert!(other.finish(c, succeeded()).unwrap());
    assert!(names(&running).is_empty() && names(&s.root().join("queue")).is_empty());
}

/// A child that died between taking a queue entry and recording the claim (or between
/// recording a re-queue and moving the entry back) left an entry in `running/` of a job
/// whose record says accepted: it goes back to the queue.
#[test]
fn an_entry_taken_but_not_recorded_goes_back_to_the_queue() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let running = s.root().join("running").join(format!("{}.json", a.id));
    fs::rename(
        s.root().join("queue").join(format!("{}.json", a.key)),
        &running,
    )
    .unwrap();
    s.adjust_queued(-1).unwrap();
    assert!(s.orphans().unwrap().is_empty());
    assert!(!running.exists());
    assert_eq!(s.queue_lock().unwrap().count, 1);
    let c = s.claim().unwrap().unwrap();
    assert_eq!((c.record.id.as_str(), c.record.attempt), (a.id.as_str(), 1));
}

/// A job claimed by a child of an earlier version (`running/<id>.lock`, during a graceful
/// restart onto this one) is not taken for an orphan while that child holds its lock file.
#[test]
fn a_claim_of_an_earlier_version_is_honoured() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let running = s.root().join("running");
    fs::rename(
        s.root().join("queue").join(format!("{}.json", a.key)),
        running.join(format!("{}.json", a.id)),
    )
    .unwrap();
    s.update(&a.id, |r| {
        r.state = JobState::Running;
        r.attempt = 1;
    })
    .unwrap();
    let old_lock = running.join(format!("{}.lock", a.id));
    let old_owner = fs::File::create(&old_lock).unwrap();
    old_owner.lock().unwrap();
    assert!(s.orphans().unwrap().is_empty(), "its owner is alive");
    drop(old_owner);
    let orphans = s.orphans().unwrap();
    assert_eq!(orphans.len(), 1);
    s.requeue(orphans.into_iter().next().unwrap()).unwrap();
    assert!(names(&running).is_empty(), "the old lock file went too");
    assert_eq!(s.claim().unwrap().unwrap().record.attempt, 2);
}

/// The inodes of the index's entries.
fn index_inodes(s: &FileStore) -> BTreeSet<u64> {
    index_entries(s)
        .iter()
        .map(|e| e.metadata().unwrap().ino())
        .collect()
}

/// The inodes of a job's files: its record and spare, its index entry, its queue entry.
fn job_inodes(s: &FileStore, r: &JobRecord) -> BTreeSet<u64> {
    let queued = s.root().join("queue").join(format!("{}.json", r.key));
    let running = s.root().join("running").join(format!("{}.json", r.id));
    [s.record_path(&r.id), s.spare_path(&r.id), queued, running]
        .iter()
        .filter_map(|p| ino(p))
        .chain(index_inodes(s))
        .collect()
}

/// From submit to its end, a job makes three inodes and frees none.
#[test]
fn a_job_makes_three_inodes_and_frees_none() {
    let (s, _dir) = store(2, 10);
    let a = job(1);
    s.enqueue(&a).unwrap();
    let mut seen = job_inodes(&s, &a);
    assert_eq!(seen.len(), 2, "the record and the index entry");
    let c = s.claim().unwrap().unwrap();
    let now = job_inodes(&s, &a);
    assert!(now.is_superset(&seen));
    seen = now;
    assert_eq!(seen.len(), 3, "and the spare");
    s.progress(&c, 50, "half").unwrap();
    s.renew(&c).unwrap();
    assert_eq!(job_inodes(&s, &a), seen);
    assert!(s.finish(c, succeeded()).unwrap());
    assert_eq!(job_inodes(&s, &a), seen);
}

/// Without an index (removed, until the next start-up builds it), a queue entry is a file of
/// its own.
#[test]
fn without_an_index_a_queue_entry_is_a_file_of_its_own() {
    let (s, _dir) = store(2, 10);
    fs::remove_dir_all(s.root().join("index")).unwrap();
    let a = job(1);
    s.enqueue(&a).unwrap();
    let entry = s.root().join("queue").join(format!("{}.json", a.key));
    assert_eq!(fs::metadata(&entry).unwrap().nlink(), 1);
    let c = s.claim().unwrap().unwrap();
    assert!(s.finish(c, succeeded()).unwrap());
    assert!(names(&s.root().join("running")).is_empty());
    assert_eq!(s.get(&a.id).unwrap().unwrap().state, JobState::Succeeded);
}

/// `queue.lock` holds the queue length as padded text; what an earlier version wrote (the
/// bare number) is read, what cannot be read is recounted.
#[test]
fn the_queue_length_is_read_in_either_format_and_recounted_when_damaged() {
    let (s, _dir) = store(2, 10);
    let path = s.root().join("queue.lock");
    s.enqueue(&job(1)).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!((text.len(), text.trim()), (20, "1"));
    // an earlier version's count
    fs::write(&path, "7").unwrap();
    assert_eq!(s.queue_lock().unwrap().count, 7);
    s.adjust_queued(-1).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap().trim(), "6");
    // damaged, or longer than any count: the queue is counted again
    for bad in ["x", "", "123456789012345678901234567890"] {
        fs::write(&path, bad).unwrap();
        assert_eq!(s.queue_lock().unwrap().count, 1, "{bad:?}");
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), "1");
    }
}

/// Threads of one process and two processes' stores on one directory: every enqueue and
/// claim is counted once (the threads share the process's flock, so they take turns on a
/// mutex first).
#[test]
fn the_queue_length_follows_concurrent_enqueues_and_claims() {
    let (s, d) = store(2, 10_000);
    let other = FileStore::new(s.root().to_path_buf(), d.join("out"), 2, 10_000);
    std::thread::scope(|t| {
        for k in 0..4u32 {
            let st = if k % 2 == 0 { &s } else { &other };
            t.spawn(move || {
                for n in 0..25 {
                    st.enqueue(&job(k * 100 + n)).unwrap();
                }
                for _ in 0..10 {
                    st.claim().unwrap().unwrap();
                }
            });
        }
    });
    assert_eq!(s.queue_lock().unwrap().count, 60);
    assert_eq!(s.queued(), 60);
}
