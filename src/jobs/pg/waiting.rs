//! The line of the waiting requests for a slot across the hosts of the store (`WaitingLine`):
//! a row per child in `wps_waiting`, with when its longest-waiting request came on the
//! database's clock (each host's own clock is `CLOCK_MONOTONIC`; a time is carried over as
//! its age). The row is kept fresh by the child's store thread (`seen`, every second); one
//! not refreshed for `STALE` (a host frozen or gone), or of a process gone from this machine,
//! is passed over. Publishing a row is told (`NOTIFY`, `w`): until a child hears of one, it
//! takes it that no other child waits and asks the database nothing. A slot given back is
//! told too (`s`), and wakes the first in line of every child (`PgFreedWatch`).

use super::{lock, Inner, PgStore, CHANNEL, NO_FLUSH};
use crate::jobs::pg::ident::is_gone;
use crate::jobs::{monotonic_ns, FreedWatch, StoreResult, WaitingLine};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long a row not refreshed still counts (its child refreshes it every second).
pub(super) const STALE: Duration = Duration::from_secs(4);
/// How long a row not refreshed is kept before the next child that stops waiting removes it.
const FORGOTTEN: Duration = Duration::from_secs(60);

/// Seconds since `since` (this host's monotonic nanoseconds).
fn age(since: u64) -> f64 {
    monotonic_ns().saturating_sub(since) as f64 / 1e9
}

impl Inner {
    /// Writes (or refreshes) this child's row: its first in line came at `since`.
    pub(super) fn publish_waiting(&self, since: u64) -> StoreResult<()> {
        let me = self.me();
        self.db(|c| {
            c.execute(
                &format!(
                    "WITH {NO_FLUSH}, up AS (
                       INSERT INTO wps_waiting (owner_ns, owner_pid, owner_start, owner, since, seen)
                       VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5), now())
                       ON CONFLICT (owner_ns, owner_pid, owner_start)
                       DO UPDATE SET since = EXCLUDED.since, seen = now())
                     SELECT pg_notify($6, 'w') FROM no_flush"
                ),
                &[&me.ns, &me.pid, &me.start, &me.name, &age(since), &CHANNEL],
            )
        })?;
        Ok(())
    }

    /// Refreshes this child's row, if it waits (the store thread, every second). Under the
    /// lock of `waiting_since`, as `publish`: a refresh that read the time before the row was
    /// removed would write it again for a child that no longer waits.
    pub(super) fn refresh_waiting(&self) {
        let since = lock(&self.waiting_since);
        if let Some(since) = *since {
            let _ = self.publish_waiting(since);
        }
    }

    /// Heard of a row published (`w`), or may have missed some (the LISTEN connection was
    /// (re)made).
    pub(super) fn others_may_wait(&self) {
        self.waiting_news.fetch_add(1, Ordering::SeqCst);
    }

    /// A slot was given back (here, or told by `s`), or may have been (the LISTEN connection
    /// was (re)made): the next `try_slot` asks the database, and the waiting requests look.
    pub(super) fn slot_given_back(&self) {
        self.slot_freed.store(true, Ordering::SeqCst);
        let (n, cv) = &self.freed_news;
        *lock(n) += 1;
        cv.notify_all();
    }
}

impl WaitingLine for PgStore {
    fn publish(&self, since: Option<u64>) -> StoreResult<()> {
        let inner = &self.inner;
        let mut published = lock(&inner.waiting_since);
        *published = since;
        match since {
            Some(since) => inner.publish_waiting(since),
            None => {
                let me = inner.me();
                inner.db(|c| {
                    c.execute(
                        &format!(
                            "WITH {NO_FLUSH} DELETE FROM wps_waiting
                             WHERE ((owner_ns = $1 AND owner_pid = $2 AND owner_start = $3)
                                    OR seen < now() - make_interval(secs => $4))
                               AND EXISTS (SELECT FROM no_flush)"
                        ),
                        &[&me.ns, &me.pid, &me.start, &FORGOTTEN.as_secs_f64()],
                    )
                })?;
                Ok(())
            }
        }
    }

    fn someone_before(&self, since: u64) -> StoreResult<bool> {
        let inner = &self.inner;
        // no row published since the last look found none: none waits (when listening)
        let news = inner.waiting_news.load(Ordering::SeqCst);
        if inner.listening.load(Ordering::SeqCst)
            && inner.waiting_seen.load(Ordering::SeqCst) == news
        {
            return Ok(false);
        }
        let me = inner.me();
        let rows = inner.db(|c| {
            c.query(
                "SELECT owner_ns, owner_pid, owner_start,
                        since < now() - make_interval(secs => $4)
                 FROM wps_waiting
                 WHERE NOT (owner_ns = $1 AND owner_pid = $2 AND owner_start = $3)
                   AND seen > now() - make_interval(secs => $5)",
                &[
                    &me.ns,
                    &me.pid,
                    &me.start,
                    &age(since),
                    &STALE.as_secs_f64(),
                ],
            )
        })?;
        let mut others = false;
        let mut before = false;
        for r in rows {
            let (ns, pid, start, earlier): (String, i32, i64, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if ns == me.ns && is_gone(pid, start) {
                // a child of this machine that died while it waited
                let _ = inner.db(|c| {
                    c.execute(
                        "DELETE FROM wps_waiting WHERE owner_ns = $1 AND owner_pid = $2 AND owner_start = $3",
                        &[&ns, &pid, &start],
                    )
                });
                continue;
            }
            others = true;
            before |= earlier;
        }
        if !others {
            // until a row is published again (a `w` heard meanwhile keeps the news unseen)
            inner.waiting_seen.store(news, Ordering::SeqCst);
        }
        Ok(before)
    }

    fn freed_watch(&self) -> StoreResult<Option<Box<dyn FreedWatch>>> {
        let inner = &self.inner;
        if !inner.listening.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let seen = *lock(&inner.freed_news.0);
        Ok(Some(Box::new(PgFreedWatch {
            inner: inner.clone(),
            seen: std::sync::Mutex::new(seen),
        })))
    }
}

/// Waits for the news of a slot given back in any child of any host (`NOTIFY`, `s`).
struct PgFreedWatch {
    inner: Arc<Inner>,
    seen: std::sync::Mutex<u64>,
}

impl FreedWatch for PgFreedWatch {
    fn wait(&self, timeout: Duration) -> StoreResult<()> {
        let (n, cv) = &self.inner.freed_news;
        let mut seen = lock(&self.seen);
        let news = lock(n);
        let (news, _) = cv
            .wait_timeout_while(news, timeout, |news| *news == *seen)
            .unwrap_or_else(|e| e.into_inner());
        *seen = *news;
        Ok(())
    }
}
