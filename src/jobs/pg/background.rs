//! The store's thread in each Apache child: it `LISTEN`s on its own connection (a job queued
//! or a slot freed anywhere wakes this child's dispatcher; a Dismiss reaches the claim at
//! once), renews the leases of this child's claims and slots, reads cancel requests and
//! lost claims every second (the fallback when notifications are lost), and keeps this
//! child's place in the line for a slot fresh.

use super::{lock, Inner, CHANNEL};
use crate::model::LogLevel;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one wait for notifications lasts.
const WAIT: Duration = Duration::from_millis(500);
/// How often held claims are checked for a cancel request or a takeover.
const CHECK: Duration = Duration::from_secs(1);
/// Pause between attempts to open the LISTEN connection.
const RECONNECT: Duration = Duration::from_secs(2);

/// Starts the thread once in this process.
pub fn start(inner: &Arc<Inner>) {
    let pid = std::process::id() as i32;
    if inner.thread_pid.swap(pid, Ordering::SeqCst) == pid {
        return;
    }
    let inner = inner.clone();
    let spawned = std::thread::Builder::new()
        .name("wps-pg".into())
        .spawn(move || run(&inner));
    if let Err(e) = spawned {
        eprintln!("mod_wps: cannot start the job store thread: {e}");
    }
}

fn listen(inner: &Inner) -> Option<Client> {
    let mut c = inner.pool.connect_dedicated().ok()?;
    c.batch_execute(&format!("LISTEN {CHANNEL}")).ok()?;
    Some(c)
}

/// Waits up to `WAIT` for notifications and handles them; false when the connection broke.
fn receive(inner: &Inner, c: &mut Client) -> bool {
    let got: Result<Vec<String>, postgres::Error> = (|| {
        let mut n = c.notifications();
        let mut v = Vec::new();
        let first = n.timeout_iter(WAIT).next()?;
        if let Some(x) = first {
            v.push(x.payload().to_owned());
            let mut more = n.iter();
            while let Some(x) = more.next()? {
                v.push(x.payload().to_owned());
            }
        }
        Ok(v)
    })();
    let Ok(payloads) = got else {
        return false;
    };
    let mut wake = false;
    for p in payloads {
        match p.as_str() {
            "q" => {
                inner.work.store(true, Ordering::SeqCst);
                wake = true;
            }
            "s" => {
                // a slot freed brings no job: a dispatcher that found none asks again when
                // one is queued (`q`); one that found no slot kept `work` and looks again now.
                // (Setting `work` here made every dispatcher take a slot, find no job and
                // give the slot back, telling all the others: thousands of commits a second
                // while idle.)
                inner.slot_given_back();
                wake = true;
            }
            "w" => inner.others_may_wait(),
            p => {
                if let Some(id) = p.strip_prefix("c ") {
                    for h in lock(&inner.held).values_mut().filter(|h| h.id == id) {
                        h.cancel = true;
                    }
                }
            }
        }
    }
    if wake {
        inner.wake();
    }
    !c.is_closed()
}

/// Renews the leases of this child's claims and slots; claims not renewed are lost.
fn renew(inner: &Inner) -> bool {
    let claims: Vec<String> = lock(&inner.held)
        .iter()
        .filter(|(_, h)| !h.lost)
        .map(|(t, _)| t.clone())
        .collect();
    let slots: Vec<String> = lock(&inner.held_slots).iter().cloned().collect();
    if claims.is_empty() && slots.is_empty() {
        return true;
    }
    let lease = inner.lease_secs();
    let r = inner.db(|c| {
        let kept: Vec<String> = c
            .query(
                "UPDATE wps_jobs SET lease_until = now() + make_interval(secs => $2)
                 WHERE token = ANY($1) AND state = 'running' RETURNING token",
                &[&claims, &lease],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        c.execute(
            "UPDATE wps_slots SET lease_until = now() + make_interval(secs => $2) WHERE token = ANY($1)",
            &[&slots, &lease],
        )?;
        Ok(kept)
    });
    match r {
        Ok(kept) => {
            mark_lost(inner, &claims, &kept);
            true
        }
        Err(_) => false,
    }
}

fn mark_lost(inner: &Inner, asked: &[String], found: &[String]) {
    let mut held = lock(&inner.held);
    for t in asked.iter().filter(|t| !found.contains(t)) {
        if let Some(h) = held.get_mut(t) {
            if !h.lost {
                h.lost = true;
                inner.log(
                    LogLevel::Warning,
                    &format!(
                        "job {}: this child's claim was taken over by another host (its lease expired); the job is stopped here and nothing it does is recorded",
                        h.id
                    ),
                );
            }
        }
    }
}

/// Reads cancel requests and takeovers of held claims.
fn check(inner: &Inner) {
    let claims: Vec<String> = lock(&inner.held).keys().cloned().collect();
    if claims.is_empty() {
        return;
    }
    let Ok(rows) = inner.db(|c| {
        c.query(
            "SELECT token, cancel FROM wps_jobs WHERE token = ANY($1) AND state = 'running'",
            &[&claims],
        )
    }) else {
        return;
    };
    let found: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    {
        let mut held = lock(&inner.held);
        for r in &rows {
            if let Some(h) = held.get_mut(&r.get::<_, String>(0)) {
                h.cancel |= r.get::<_, bool>(1);
            }
        }
    }
    mark_lost(inner, &claims, &found);
}

fn run(inner: &Inner) {
    let mut listener: Option<Client> = None;
    let mut next_connect = Instant::now();
    let mut last_renew = Instant::now();
    let mut renew_ok = true;
    let mut last_check = Instant::now();
    let every = (inner.lease / 3).max(Duration::from_secs(1));
    while !inner.stop.load(Ordering::SeqCst) {
        if listener.is_none() && Instant::now() >= next_connect {
            listener = listen(inner);
            if listener.is_some() {
                inner.listening.store(true, Ordering::SeqCst);
                // anything may have happened while deaf
                inner.work.store(true, Ordering::SeqCst);
                inner.slot_given_back();
                inner.others_may_wait();
                inner.wake();
            } else {
                next_connect = Instant::now() + RECONNECT;
            }
        }
        match listener.as_mut() {
            Some(c) => {
                if !receive(inner, c) {
                    listener = None;
                    inner.listening.store(false, Ordering::SeqCst);
                }
            }
            None => std::thread::sleep(WAIT),
        }
        if !renew_ok || last_renew.elapsed() >= every {
            last_renew = Instant::now();
            renew_ok = renew(inner);
        }
        if last_check.elapsed() >= CHECK {
            last_check = Instant::now();
            check(inner);
            inner.refresh_waiting();
        }
    }
}
