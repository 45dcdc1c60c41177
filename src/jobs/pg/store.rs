//! `JobStore` for [`PgStore`]: every operation is one short statement or transaction on a
//! pooled connection; writes of a claimant compare-and-set on (id, attempt, claim token).

use super::{
    background, claim_token, lock, record, token, write_atomic, ClaimHold, PgStore, SlotHold,
    CHANNEL, COLS, NOW_S, NO_FLUSH, POLL_DEAF, POLL_LISTENING,
};
use crate::jobs::pg::schema::LOCK_QUEUE;
use crate::jobs::{
    valid_id, valid_output_name, Claim, Finish, JobCounts, JobQuery, JobRecord, JobStore, Owner,
    Slot, StoreError, StoreLog, StoreResult, WaitingLine, Waker,
};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

impl JobStore for PgStore {
    /// Only the directories: no connection is made in the Apache parent.
    fn prepare(&self, owner: Option<(u32, u32)>) -> StoreResult<Vec<String>> {
        for d in [&self.inner.workdir, &self.inner.outputs] {
            std::fs::create_dir_all(d)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", d.display())))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .map_err(|e| StoreError::Unavailable(format!("chown {}: {e}", d.display())))?;
            }
        }
        Ok(Vec::new())
    }

    fn enqueue(&self, job: &JobRecord) -> StoreResult<()> {
        let request = json!({
            "inputs": job.inputs,
            "outputs": job.outputs,
            "protocol": job.protocol,
        });
        let max = self.inner.max_queued;
        let placed = self.inner.db(|c| {
            let mut t = c.transaction()?;
            t.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_QUEUE])?;
            if max != u32::MAX {
                let n: i64 = t
                    .query_one("SELECT count(*) FROM wps_jobs WHERE state = 'accepted'", &[])?
                    .get(0);
                if n >= i64::from(max) {
                    return Ok(false);
                }
            }
            t.execute(
                "INSERT INTO wps_jobs (id, key, process, state, progress, message, submitted, updated, attempt, user_name, request)
                 VALUES ($1, $2, $3, 'accepted', 0, $4, $5, $5, 0, $6, $7) ON CONFLICT (id) DO NOTHING",
                &[&job.id, &job.key, &job.process, &job.message, &(job.submitted as i64), &job.user, &request],
            )?;
            t.execute("SELECT pg_notify($1, 'q')", &[&CHANNEL])?;
            t.commit()?;
            Ok(true)
        })?;
        if !placed {
            return Err(StoreError::Full(max));
        }
        self.inner.work.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn try_slot(&self) -> StoreResult<Option<Slot>> {
        let inner = &self.inner;
        if let Some(answer) = inner.slot_without_asking() {
            return Ok(answer);
        }
        let t = token();
        let me = &inner.me();
        let n: Option<i32> = inner.db(|c| {
            Ok(c.query_opt(
                &format!(
                    "WITH {NO_FLUSH} UPDATE wps_slots SET token = $1, owner = $2, owner_ns = $3, owner_pid = $4,
                     owner_start = $5, lease_until = now() + make_interval(secs => $6)
                     WHERE n = (SELECT n FROM wps_slots WHERE n < $7 AND (token IS NULL OR lease_until < now())
                                ORDER BY n LIMIT 1 FOR UPDATE SKIP LOCKED)
                       AND EXISTS (SELECT FROM no_flush)
                     RETURNING n"
                ),
                &[&t, &me.name, &me.ns, &me.pid, &me.start, &inner.lease_secs(), &(inner.slots as i32)],
            )?
            .map(|r| r.get(0)))
        })?;
        match n {
            Some(n) => {
                lock(&inner.held_slots).insert(t.clone());
                let hold = SlotHold {
                    inner: inner.clone(),
                    n,
                    token: t,
                };
                Ok(Some(Slot::new(n as u32, Some(Box::new(hold)))))
            }
            None => {
                *lock(&inner.slots_full_at) = Some(Instant::now());
                Ok(None)
            }
        }
    }

    /// A quick process runs when a slot is free, without taking it: taking a row and giving
    /// it back costs two statements and a NOTIFY, hundreds of times the process's own time,
    /// and would hold the slot for those round trips (`say_hello` with two slots: 1,200
    /// requests a second, 1 % waiting 0.3 s).
    fn try_slot_for_a_moment(&self) -> StoreResult<Option<Slot>> {
        let inner = &self.inner;
        if let Some(answer) = inner.slot_without_asking() {
            return Ok(answer);
        }
        let n: Option<i32> = inner.db(|c| {
            Ok(c.query_opt(
                "SELECT n FROM wps_slots WHERE n < $1 AND (token IS NULL OR lease_until < now())
                 ORDER BY n LIMIT 1",
                &[&(inner.slots as i32)],
            )?
            .map(|r| r.get(0)))
        })?;
        match n {
            Some(n) => {
                // one is free: the next `try_slot` asks the database
                *lock(&inner.slots_full_at) = None;
                Ok(Some(Slot::new(n as u32, None)))
            }
            None => {
                *lock(&inner.slots_full_at) = Some(Instant::now());
                Ok(None)
            }
        }
    }

    fn waiting_line(&self) -> Option<&dyn WaitingLine> {
        (self.inner.slots != u32::MAX).then_some(self as &dyn WaitingLine)
    }

    fn claim(&self) -> StoreResult<Option<Claim>> {
        let inner = &self.inner;
        // cleared first: a job announced while the query runs is not missed
        inner.work.store(false, Ordering::SeqCst);
        let t = token();
        let me = &inner.me();
        let row = inner.db(|c| {
            c.query_opt(
                &format!(
                    "UPDATE wps_jobs SET state = 'running', attempt = attempt + 1, token = $1, owner = $2,
                     owner_ns = $3, owner_pid = $4, owner_start = $5, lease_until = now() + make_interval(secs => $6),
                     started = {NOW_S}, progress = 0, message = 'Process started', updated = {NOW_S}
                     WHERE id = (SELECT id FROM wps_jobs WHERE state = 'accepted' AND NOT cancel
                                 ORDER BY key LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING {COLS}"
                ),
                &[&t, &me.name, &me.ns, &me.pid, &me.start, &inner.lease_secs()],
            )
        });
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                inner.work.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        let Some(row) = row else {
            *lock(&inner.last_empty) = Some(Instant::now());
            return Ok(None);
        };
        // there may be more
        inner.work.store(true, Ordering::SeqCst);
        let r = record(&row)?;
        inner.hold(&r.id, &t);
        Ok(Some(Claim::new(r, Box::new(ClaimHold(t)))))
    }

    fn renew(&self, claim: &Claim) -> StoreResult<()> {
        let t = claim_token(claim);
        let n = self.inner.db(|c| {
            c.execute(
                "UPDATE wps_jobs SET lease_until = now() + make_interval(secs => $3)
                 WHERE id = $1 AND token = $2 AND state = 'running'",
                &[&claim.record.id, &t, &self.inner.lease_secs()],
            )
        })?;
        if n == 0 {
            if let Some(h) = lock(&self.inner.held).get_mut(&t) {
                h.lost = true;
            }
        }
        Ok(())
    }

    fn progress(&self, claim: &Claim, percent: u32, message: &str) -> StoreResult<()> {
        let t = claim_token(claim);
        self.inner.db(|c| {
            c.execute(
                &format!(
                    "UPDATE wps_jobs SET progress = $3, message = $4, updated = {NOW_S}
                     WHERE id = $1 AND token = $2 AND state = 'running'"
                ),
                &[&claim.record.id, &t, &(percent.min(100) as i32), &message],
            )
        })?;
        Ok(())
    }

    /// Retried while the database is down, for up to a lease: a restart of the database does
    /// not lose the end of a job.
    fn finish(&self, claim: Claim, how: Finish) -> StoreResult<bool> {
        let t = claim_token(&claim);
        let id = claim.record.id.clone();
        let attempt = claim.record.attempt as i32;
        let (state, message, error, results) = match how {
            Finish::Succeeded { message, results } => {
                ("succeeded", message, None, serde_json::to_value(results))
            }
            Finish::Failed(e) => (
                "failed",
                e.text.clone(),
                serde_json::to_value(&e).ok(),
                Ok(json!([])),
            ),
        };
        let results = results.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let started = Instant::now();
        let outcome = loop {
            let r = self.inner.db(|c| {
                let n = c.execute(
                    &format!(
                        "UPDATE wps_jobs SET state = $4, progress = CASE WHEN $4 = 'succeeded' THEN 100 ELSE progress END,
                         message = $5, error = $6, results = $7, finished = {NOW_S}, updated = {NOW_S},
                         owner = NULL, owner_ns = NULL, owner_pid = NULL, owner_start = NULL, token = NULL, lease_until = NULL
                         WHERE id = $1 AND attempt = $2 AND token = $3 AND state = 'running' AND NOT cancel"
                    ),
                    &[&id, &attempt, &t, &state, &message, &error, &results],
                )?;
                if n == 1 {
                    c.execute("SELECT pg_notify($1, 'q')", &[&CHANNEL])?;
                    return Ok((true, false));
                }
                // dismissed while it ran: it goes now
                let gone = c.execute(
                    "DELETE FROM wps_jobs WHERE id = $1 AND token = $2 AND cancel",
                    &[&id, &t],
                )?;
                Ok((false, gone == 1))
            });
            match r {
                Err(StoreError::Down(_)) if started.elapsed() < self.inner.lease => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => break other,
            }
        };
        self.inner.release(&t);
        let (written, removed) = outcome?;
        if removed {
            self.inner.remove_outputs(&id);
        }
        Ok(written)
    }

    fn requeue(&self, claim: Claim) -> StoreResult<()> {
        let t = claim_token(&claim);
        let id = claim.record.id.clone();
        let removed = self.inner.db(|c| {
            let n = c.execute(
                &format!(
                    "UPDATE wps_jobs SET state = 'accepted', owner = NULL, owner_ns = NULL, owner_pid = NULL,
                     owner_start = NULL, token = NULL, lease_until = NULL, progress = 0,
                     message = 'Process accepted and queued', updated = {NOW_S}
                     WHERE id = $1 AND token = $2 AND state = 'running' AND NOT cancel"
                ),
                &[&id, &t],
            )?;
            c.execute("SELECT pg_notify($1, 'q')", &[&CHANNEL])?;
            if n == 1 {
                return Ok(false);
            }
            let gone = c.execute(
                "DELETE FROM wps_jobs WHERE id = $1 AND token = $2 AND cancel",
                &[&id, &t],
            )?;
            Ok(gone == 1)
        });
        self.inner.release(&t);
        if removed? {
            self.inner.remove_outputs(&id);
        }
        self.inner.work.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn orphans(&self) -> StoreResult<Vec<Claim>> {
        let taken = match self.inner.db(|c| self.adopt(c)) {
            Ok(t) => t,
            // the outage is logged once by the pool, not every second by the dispatcher
            Err(StoreError::Down(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for (row, t, previous) in taken {
            let cancel: bool = row.get("cancel");
            let mut r = record(&row)?;
            // whose job it was (for the log)
            r.owner = previous;
            if cancel {
                // dismissed, and its owner is gone: nothing left to stop
                self.inner.db(|c| {
                    c.execute(
                        "DELETE FROM wps_jobs WHERE id = $1 AND token = $2",
                        &[&r.id, &t],
                    )
                })?;
                self.inner.remove_outputs(&r.id);
                continue;
            }
            self.inner.hold(&r.id, &t);
            out.push(Claim::new(r, Box::new(ClaimHold(t))));
        }
        Ok(out)
    }

    /// From what the background thread learnt (a NOTIFY, or its poll every second): also
    /// true when the claim was lost to another host, so the work stops.
    fn cancel_requested(&self, claim: &Claim) -> bool {
        lock(&self.inner.held)
            .get(&claim_token(claim))
            .is_some_and(|h| h.cancel || h.lost)
    }

    fn dismiss(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        if !valid_id(id) {
            return Ok(None);
        }
        let found = self.inner.db(|c| {
            let Some(row) = c.query_opt(
                &format!("UPDATE wps_jobs SET cancel = true WHERE id = $1 AND NOT cancel RETURNING {COLS}"),
                &[&id],
            )?
            else {
                return Ok(None);
            };
            let removed = c.execute(
                "DELETE FROM wps_jobs WHERE id = $1 AND state <> 'running'",
                &[&id],
            )? == 1;
            if !removed {
                // its owner, on whichever host, stops it and removes it
                c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("c {id}")])?;
            }
            Ok(Some((row, removed)))
        })?;
        let Some((row, removed)) = found else {
            return Ok(None);
        };
        if removed {
            self.inner.remove_outputs(id);
        }
        record(&row).map(Some)
    }

    fn get(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        if !valid_id(id) {
            return Ok(None);
        }
        let row = self.inner.db(|c| {
            c.query_opt(
                &format!("SELECT {COLS} FROM wps_jobs WHERE id = $1 AND NOT cancel"),
                &[&id],
            )
        })?;
        row.map(|r| record(&r)).transpose()
    }

    fn list(&self, q: &JobQuery) -> StoreResult<Vec<JobRecord>> {
        let states: Vec<String> = q.states.iter().map(|s| s.as_str().to_owned()).collect();
        let (owner_kind, user): (i32, Option<String>) = match &q.owner {
            Owner::Any => (0, None),
            Owner::User(u) => (1, Some(u.clone())),
            Owner::Anonymous => (2, None),
        };
        let limit = q.limit.map(|l| l.min(i64::MAX as usize) as i64);
        let offset = q.offset.min(i64::MAX as usize) as i64;
        let from = q.submitted_from.map(|t| t.min(i64::MAX as u64) as i64);
        let to = q.submitted_to.map(|t| t.min(i64::MAX as u64) as i64);
        let rows = self.inner.db(|c| {
            c.query(
                &format!(
                    "SELECT {COLS} FROM wps_jobs WHERE NOT cancel
                     AND (cardinality($1::text[]) = 0 OR process = ANY($1))
                     AND (cardinality($2::text[]) = 0 OR state = ANY($2))
                     AND ($3 = 0 OR ($3 = 1 AND user_name = $4) OR ($3 = 2 AND user_name IS NULL))
                     AND ($7::bigint IS NULL OR submitted >= $7)
                     AND ($8::bigint IS NULL OR submitted <= $8)
                     ORDER BY key DESC OFFSET $5 LIMIT $6"
                ),
                &[
                    &q.processes,
                    &states,
                    &owner_kind,
                    &user,
                    &offset,
                    &limit,
                    &from,
                    &to,
                ],
            )
        })?;
        rows.iter().map(record).collect()
    }

    fn counts(&self) -> StoreResult<JobCounts> {
        let (queued, finished, rows) = self.inner.db(|c| {
            let n = c.query_one(
                "SELECT count(*) FILTER (WHERE state = 'accepted'),
                        count(*) FILTER (WHERE state IN ('succeeded', 'failed'))
                 FROM wps_jobs WHERE NOT cancel",
                &[],
            )?;
            let running = c.query(
                &format!("SELECT {COLS} FROM wps_jobs WHERE state = 'running' AND NOT cancel ORDER BY key"),
                &[],
            )?;
            Ok((n.get::<_, i64>(0), n.get::<_, i64>(1), running))
        })?;
        Ok(JobCounts {
            queued: queued as usize,
            finished: finished as usize,
            running: rows.iter().map(record).collect::<StoreResult<_>>()?,
        })
    }

    /// Only the process that holds the job's claim writes its outputs (a host that lost it
    /// cannot overwrite the files of a newer attempt); outputs of synchronous requests (no
    /// job row) are written freely.
    fn write_output(&self, id: &str, name: &str, data: &[u8]) -> StoreResult<()> {
        if !valid_id(id) || !valid_output_name(name) {
            return Err(StoreError::Unavailable(format!(
                "invalid output name '{id}/{name}'"
            )));
        }
        let me = &self.inner.me();
        let owner = self.inner.db(|c| {
            c.query_opt(
                "SELECT state = 'running' AND owner_ns = $2 AND owner_pid = $3 FROM wps_jobs WHERE id = $1",
                &[&id, &me.ns, &me.pid],
            )
        })?;
        if let Some(row) = owner {
            if !row.get::<_, Option<bool>>(0).unwrap_or(false) {
                return Err(StoreError::Unavailable(format!(
                    "job {id} is no longer run by this process (taken over by another host, finished or dismissed)"
                )));
            }
        }
        let dir = self.inner.outputs.join(id);
        std::fs::create_dir_all(&dir)?;
        Ok(write_atomic(&dir, name, data)?)
    }

    fn read_output(&self, id: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
        if !valid_id(id) || !valid_output_name(name) {
            return Ok(None);
        }
        let path = self.inner.outputs.join(id).join(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(std::fs::read(&path)?)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn remove_expired(&self, age: Duration, go_on: &dyn Fn() -> bool) -> StoreResult<usize> {
        let secs = age.as_secs().min(i64::MAX as u64) as i64;
        let ids: Vec<String> = self.inner.db(|c| {
            Ok(c.query(
                &format!(
                    "DELETE FROM wps_jobs WHERE state IN ('succeeded', 'failed') AND finished < {NOW_S} - $1 RETURNING id"
                ),
                &[&secs],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        // the rows are gone: their outputs go too, even when asked to stop
        for id in &ids {
            self.inner.remove_outputs(id);
        }
        if !go_on() {
            return Ok(ids.len());
        }
        // outputs of synchronous requests: no row, by their age
        let cutoff = SystemTime::now() - age;
        let old: Vec<String> = std::fs::read_dir(&self.inner.outputs)?
            .filter_map(Result::ok)
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff)
            })
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| valid_id(n))
            .collect();
        if !old.is_empty() {
            let known: Vec<String> = self.inner.db(|c| {
                Ok(
                    c.query("SELECT id FROM wps_jobs WHERE id = ANY($1)", &[&old])?
                        .iter()
                        .map(|r| r.get(0))
                        .collect(),
                )
            })?;
            for id in old.iter().filter(|id| !known.contains(id)) {
                self.inner.remove_outputs(id);
            }
        }
        Ok(ids.len())
    }

    fn start_child(&self, log: StoreLog, wake: Option<Waker>) {
        self.inner.pool.arm(log);
        if let Some(w) = wake {
            lock(&self.inner.wakers).push(w);
        }
        background::start(&self.inner);
    }

    fn may_have_work(&self) -> bool {
        let inner = &self.inner;
        if inner.work.load(Ordering::SeqCst) {
            return true;
        }
        let poll = if inner.listening.load(Ordering::SeqCst) {
            POLL_LISTENING
        } else {
            POLL_DEAF
        };
        lock(&inner.last_empty).is_none_or(|t| t.elapsed() >= poll)
    }
}
