//! The line of the synchronous requests waiting for a `parallelprocesses` slot. In a child
//! they are served in the order they came: only the first in line tries to take a slot, and a
//! request that finds others waiting goes behind them. Between the children the store's
//! `WaitingLine` decides: each child publishes when its first in line came, and a first in
//! line takes a slot only when no other child's has waited longer. The first in line waits
//! on the store's news of a slot freed in any child (`FreedWatch`), or, when the store has
//! none, looks again every `PAUSE` (a slot freed in its own child wakes it at once).
//!
//! Without a line every waiting request looked on its own with a pause growing to 20 ms, and
//! a request that had just come took a slot freed meanwhile: with `parallelprocesses = 2`
//! (PyWPS's default) and 8 connections of a 17 ms job, 1 % of the requests waited 0.7–1.5 s
//! (bench/RESULTS.md).

use crate::jobs::{monotonic_ns as now_ns, FreedWatch, StoreResult, WaitingLine};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the first in line waits before it looks again when the store cannot tell it of
/// slots freed elsewhere (looking more often costs the busy processes more than the slot's
/// time left unused: bench/RESULTS.md)...
const PAUSE: Duration = Duration::from_millis(2);
/// ...and when it can (for what the store does not tell: a slot a quick process held for a
/// moment, a longer-waiting request of another child that gave up).
const WATCHED_PAUSE: Duration = Duration::from_millis(5);

#[derive(Default)]
pub struct SlotLine {
    /// The requests in line (their number, and when they came), first in line first.
    line: Mutex<VecDeque<(u64, u64)>>,
    changed: Condvar,
    /// How many are in line (read without the lock: an empty line is passed by).
    waiting: AtomicUsize,
    /// The number the next request in line gets.
    next: AtomicU64,
    /// Counts the slots freed in this child and the moves of the line, so that one between
    /// a look and the wait is not missed.
    moves: AtomicU64,
}

/// A place in the line, left when dropped (also on an error or a panic of `try_take`).
struct Place<'a> {
    line: &'a SlotLine,
    others: &'a dyn WaitingLine,
    number: u64,
    since: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut line = self.line.lock();
        if let Some(i) = line.iter().position(|&(n, _)| n == self.number) {
            line.remove(i);
            if i == 0 {
                // the next one is first now (or none waits): an error leaves the old time,
                // which only makes this child's next request look as old as this one
                let _ = self.others.publish(line.front().map(|&(_, since)| since));
            }
        }
        self.line.waiting.fetch_sub(1, SeqCst);
        self.line.moves.fetch_add(1, SeqCst);
        self.line.changed.notify_all();
    }
}

impl SlotLine {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(u64, u64)>> {
        // a panic under the lock leaves a valid line: it only pushes and removes entries
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot with `try_take` (`None`: all taken) in the order of asking, or gives up at
    /// `deadline` (`Ok(None)`). An error of `try_take` or of the store's line ends the wait.
    pub fn wait<T>(
        &self,
        deadline: Instant,
        others: &dyn WaitingLine,
        mut try_take: impl FnMut() -> StoreResult<Option<T>>,
    ) -> StoreResult<Option<T>> {
        if self.waiting.load(SeqCst) == 0 && !others.someone_before(now_ns())? {
            if let Some(slot) = try_take()? {
                return Ok(Some(slot));
            }
        }
        let place = {
            let mut line = self.lock();
            let (number, since) = (self.next.fetch_add(1, SeqCst), now_ns());
            if line.is_empty() {
                others.publish(Some(since))?;
            }
            line.push_back((number, since));
            self.waiting.fetch_add(1, SeqCst);
            Place {
                line: self,
                others,
                number,
                since,
            }
        };
        // what the first in line waits on (made when it becomes first, before it looks)
        let mut watch: Option<Option<Box<dyn FreedWatch>>> = None;
        loop {
            let seen = self.moves.load(SeqCst);
            let first = self.lock().front().map(|&(n, _)| n) == Some(place.number);
            if first && watch.is_none() {
                watch = Some(others.freed_watch()?);
            }
            if first && !others.someone_before(place.since)? {
                if let Some(slot) = try_take()? {
                    return Ok(Some(slot));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if let (true, Some(Some(w))) = (first, &watch) {
                w.wait(WATCHED_PAUSE.min(deadline - now))?;
                continue;
            }
            let line = self.lock();
            if self.moves.load(SeqCst) != seen {
                continue; // a slot was freed or the line moved since the look: look again
            }
            let wait = if first { PAUSE } else { deadline - now };
            let _ = self.changed.wait_timeout(line, wait.min(deadline - now));
        }
    }

    /// A slot was freed in this child: the first in line looks at once.
    pub fn freed(&self) {
        self.moves.fetch_add(1, SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            let _line = self.lock();
            self.changed.notify_all();
        }
    }

    /// How many requests are in line.
    pub fn waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::StoreError;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// Slots free for the taking (a stand-in for the store's) and who took them, in order;
    /// and the store's line: what each child published.
    #[derive(Default)]
    struct Store {
        free: Mutex<usize>,
        taken: Mutex<Vec<&'static str>>,
        published: Mutex<HashMap<u32, u64>>,
    }

    impl Store {
        fn try_take(&self, who: &'static str) -> StoreResult<Option<()>> {
            let mut free = self.free.lock().unwrap();
            if *free == 0 {
                return Ok(None);
            }
            *free -= 1;
            self.taken.lock().unwrap().push(who);
            Ok(Some(()))
        }
        fn give(&self, n: usize) {
            *self.free.lock().unwrap() += n;
        }
        fn taken(&self) -> Vec<&'static str> {
            self.taken.lock().unwrap().clone()
        }
    }

    /// A child's view of the store's line.
    struct Child {
        store: Arc<Store>,
        id: u32,
    }

    impl WaitingLine for Child {
        fn publish(&self, since: Option<u64>) -> StoreResult<()> {
            let mut p = self.store.published.lock().unwrap();
            match since {
                Some(t) => p.insert(self.id, t),
                None => p.remove(&self.id),
            };
            Ok(())
        }
        fn someone_before(&self, since: u64) -> StoreResult<bool> {
            let p = self.store.published.lock().unwrap();
            Ok(p.iter().any(|(&id, &t)| id != self.id && t < since))
        }
    }

    /// A child: its line and its view of the store.
    fn child(store: &Arc<Store>, id: u32) -> (Arc<SlotLine>, Arc<Child>) {
        let view = Child {
            store: store.clone(),
            id,
        };
        (Arc::new(SlotLine::default()), Arc::new(view))
    }

    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "not {what} within 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `who` joins the line of child `(line, view)` on a thread of its own, and has joined
    /// when this returns; the thread answers whether it got a slot.
    fn join(
        (line, view): &(Arc<SlotLine>, Arc<Child>),
        who: &'static str,
        secs: u64,
    ) -> std::thread::JoinHandle<bool> {
        let before = line.waiting();
        let (l, v) = (line.clone(), view.clone());
        let h = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(secs);
            let store = v.store.clone();
            l.wait(deadline, v.as_ref(), || store.try_take(who))
                .unwrap()
                .is_some()
        });
        until("in line", || line.waiting() > before);
        h
    }

    #[test]
    fn slots_freed_here_go_to_the_requests_in_their_order() {
        let store = Arc::new(Store::default());
        let a = child(&store, 1);
        let waiters: Vec<_> = ["b", "c", "d"].map(|who| join(&a, who, 10)).into();
        for n in 1..=3 {
            store.give(1);
            a.0.freed();
            until("taken", || store.taken().len() == n);
        }
        assert_eq!(store.taken(), ["b", "c", "d"]);
        assert!(waiters.into_iter().all(|h| h.join().unwrap()));
        assert_eq!(a.0.waiting(), 0);
        assert!(
            store.published.lock().unwrap().is_empty(),
            "still published"
        );
    }

    #[test]
    fn a_request_that_comes_while_others_wait_goes_behind_them() {
        let store = Arc::new(Store::default());
        let a = child(&store, 1);
        let b = join(&a, "b", 10);
        let c = join(&a, "c", 10);
        // a slot freed in another child (no wake-up here): the first in line finds it when it
        // looks again; the newcomer does not take it although it is free when it comes
        store.give(1);
        let newcomer =
            a.0.wait(
                Instant::now() + Duration::from_millis(300),
                a.1.as_ref(),
                || store.try_take("newcomer"),
            )
            .unwrap();
        assert!(newcomer.is_none());
        assert_eq!(store.taken(), ["b"]);
        assert!(b.join().unwrap());
        store.give(1);
        a.0.freed();
        assert!(c.join().unwrap());
        assert_eq!(store.taken(), ["b", "c"]);
        // the line is empty again: a request takes a free slot at once
        store.give(1);
        let e =
            a.0.wait(Instant::now(), a.1.as_ref(), || store.try_take("e"));
        assert_eq!(e.unwrap(), Some(()));
    }

    #[test]
    fn a_request_leaves_the_line_at_its_deadline_or_on_an_error() {
        let store = Arc::new(Store::default());
        let a = child(&store, 1);
        let late = a.0.wait(
            Instant::now() + Duration::from_millis(50),
            a.1.as_ref(),
            || store.try_take("b"),
        );
        assert_eq!(late.unwrap(), None, "no slot within its deadline");
        assert_eq!(a.0.waiting(), 0);
        // the store fails when the request, in line by then, looks again
        let mut looks = 0;
        let failing = a.0.wait(
            Instant::now() + Duration::from_secs(10),
            a.1.as_ref(),
            || {
                looks += 1;
                match looks {
                    1 => Ok(None::<()>),
                    _ => Err(StoreError::Unavailable("the store failed".into())),
                }
            },
        );
        assert!(matches!(failing, Err(StoreError::Unavailable(_))));
        assert_eq!(a.0.waiting(), 0);
        assert!(
            store.published.lock().unwrap().is_empty(),
            "still published"
        );
        // the one after a request that gave up is first in line, and is served
        let c = join(&a, "c", 1);
        let d = join(&a, "d", 10);
        assert!(!c.join().unwrap());
        store.give(1);
        a.0.freed();
        assert!(d.join().unwrap());
        assert_eq!(store.taken(), ["d"]);
    }

    /// Between children the request that has waited longest gets the slot, whichever child
    /// frees it: a slot freed in child b (which wakes b's first in line) goes to a's older
    /// request; a newcomer in b, whose own line is empty, goes behind it too.
    #[test]
    fn the_child_whose_request_waited_longest_gets_the_slot() {
        let store = Arc::new(Store::default());
        let (a, b) = (child(&store, 1), child(&store, 2));
        let a1 = join(&a, "a1", 10);
        let b1 = join(&b, "b1", 10);
        store.give(1);
        b.0.freed();
        until("taken", || !store.taken().is_empty());
        assert!(a1.join().unwrap());
        assert_eq!(store.taken(), ["a1"]);
        let a2 = join(&a, "a2", 10);
        store.give(1);
        a.0.freed();
        assert!(b1.join().unwrap());
        assert_eq!(store.taken(), ["a1", "b1"]);
        store.give(1);
        let newcomer = b.0.wait(
            Instant::now() + Duration::from_millis(200),
            b.1.as_ref(),
            || store.try_take("b2"),
        );
        assert!(a2.join().unwrap());
        assert_eq!(newcomer.unwrap(), None);
        assert_eq!(store.taken(), ["a1", "b1", "a2"]);
        assert!(
            store.published.lock().unwrap().is_empty(),
            "still published"
        );
    }
}
