//! Worker pools declared with `WPSDaemonProcess`: a fixed number of threads fed from a bounded
//! queue. A request thread hands a job to the pool and waits for its result (up to the pool's
//! request timeout); a full queue answers `Busy` at once.

use crate::model::{panic_message, CancelToken};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A pool's settings, as given to `WPSDaemonProcess`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    pub threads: usize,
    pub queue: usize,
    pub request_timeout: Duration,
    pub graceful_timeout: Duration,
}

impl PoolConfig {
    pub fn new(name: &str) -> Self {
        PoolConfig {
            name: name.into(),
            threads: 5,
            queue: 100,
            request_timeout: Duration::from_secs(60),
            graceful_timeout: Duration::from_secs(15),
        }
    }

    /// Parses the options of `WPSDaemonProcess NAME [threads=N] [queue=N] [request-timeout=S]
    /// [graceful-timeout=S]`.
    pub fn parse(name: &str, options: &[&str]) -> Result<Self, String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "invalid process group name '{name}' (letters, digits, '-', '_', '.')"
            ));
        }
        let mut cfg = PoolConfig::new(name);
        for opt in options {
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| format!("option '{opt}' must be KEY=VALUE"))?;
            let num = |max: u64| -> Result<u64, String> {
                match v.parse::<u64>() {
                    Ok(n) if n >= 1 && n <= max => Ok(n),
                    _ => Err(format!("{k}={v}: expected a whole number from 1 to {max}")),
                }
            };
            match k.to_ascii_lowercase().as_str() {
                "threads" => cfg.threads = num(1024)? as usize,
                "queue" => cfg.queue = num(1_000_000)? as usize,
                "request-timeout" => cfg.request_timeout = Duration::from_secs(num(31_536_000)?),
                "graceful-timeout" => {
                    cfg.graceful_timeout = Duration::from_secs(num(86_400)?)
                }
                _ => {
                    return Err(format!(
                        "unknown option '{opt}' (known: threads, queue, request-timeout, graceful-timeout)"
                    ))
                }
            }
        }
        Ok(cfg)
    }
}

/// Why a job did not produce a result.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolError {
    /// The queue is full.
    Busy,
    /// The job did not finish within the request timeout; it was asked to stop.
    Timeout(Duration),
    /// A job to run on its caller's thread found no free thread within the request timeout;
    /// it never ran.
    NotStarted(Duration),
    /// The job panicked; the panic message.
    Panicked(String),
    /// The pool is shutting down.
    ShutDown,
}

/// How long a hard stop waits for the idle workers to notice that the pool closed.
const HARD_STOP_GRACE: Duration = Duration::from_millis(100);

type Task = Box<dyn FnOnce() + Send + 'static>;
type Hooks = Arc<Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>>;

/// Counters for status reporting and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub busy: AtomicUsize,
    pub queued: AtomicUsize,
    pub completed: AtomicUsize,
    pub panicked: AtomicUsize,
    pub timed_out: AtomicUsize,
}

/// The pool's bounded task queue, and the one-shot reply of `Pool::run`: a mutex and
/// condition variables. A waiting thread sleeps in the kernel at once (crossbeam's
/// channels first spin and call `sched_yield`, which on two cores busy with 128 Apache
/// threads only takes CPU from the threads with work; bench/RESULTS.md, issue 15).
struct Queue {
    state: Mutex<QueueState>,
    /// Jobs to run on their caller's thread wait here for a free thread (`Pool::run_here`).
    room: Condvar,
    capacity: usize,
}

struct QueueState {
    tasks: VecDeque<Task>,
    open: bool,
    /// Tasks running, on a worker or on their caller's thread.
    running: usize,
    /// Callers waiting to run a task on their own thread.
    waiting: usize,
    /// How many may run at once: the pool's threads, plus the workers stuck in a job that
    /// was written off until they retire (each was replaced by a new worker).
    limit: usize,
    /// The workers waiting for a task they may run, each on its own condition variable, the
    /// one that went idle last on top. A task goes to that one: its allocator arena, stack
    /// and caches are the warmest (one condition variable for all wakes the worker that has
    /// waited longest, so that consecutive jobs of a lightly loaded pool go round all its
    /// threads; bench/RESULTS.md, issue 15, fourth round).
    idle: Vec<Arc<Condvar>>,
}

impl QueueState {
    /// Whether a caller may run a task now: a thread is free and no queued task is owed it.
    fn room(&self) -> bool {
        self.running + self.tasks.len() < self.limit
    }

    /// Takes the worker that went idle last off the idle stack; notify it once the lock is
    /// released. If another worker takes the task first, the woken one goes idle again.
    fn take_idle(&mut self) -> Option<Arc<Condvar>> {
        self.idle.pop()
    }

    fn leave_idle(&mut self, me: &Arc<Condvar>) {
        self.idle.retain(|w| !Arc::ptr_eq(w, me));
    }
}

/// Wakes a worker taken off the idle stack (once the queue's lock is released).
fn wake(worker: Option<Arc<Condvar>>) {
    if let Some(w) = worker {
        w.notify_one();
    }
}

enum PushError {
    Full,
    Closed,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, task: Task) -> Result<(), PushError> {
        let mut s = self.lock();
        if !s.open {
            return Err(PushError::Closed);
        }
        if s.tasks.len() + s.waiting >= self.capacity {
            return Err(PushError::Full);
        }
        s.tasks.push_back(task);
        let worker = s.take_idle();
        drop(s);
        wake(worker);
        Ok(())
    }

    /// The next task for the worker waiting on `me`, once one may run (counted as running
    /// until `done`); `None` once the queue is closed and empty.
    fn pop(&self, me: &Arc<Condvar>) -> Option<Task> {
        let mut s = self.lock();
        loop {
            if s.running < s.limit {
                if let Some(t) = s.tasks.pop_front() {
                    s.running += 1;
                    s.leave_idle(me);
                    return Some(t);
                }
            }
            if !s.open && s.tasks.is_empty() {
                s.leave_idle(me);
                return None;
            }
            if !s.idle.iter().any(|w| Arc::ptr_eq(w, me)) {
                s.idle.push(me.clone());
            }
            s = me.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A task ended; `retiring`: its worker leaves the pool (it was replaced while stuck).
    /// The freed thread goes to a queued task first, else to a waiting caller.
    fn done(&self, retiring: bool) {
        let mut s = self.lock();
        s.running -= 1;
        if retiring {
            s.limit -= 1;
        }
        if !s.tasks.is_empty() {
            let worker = s.take_idle();
            drop(s);
            wake(worker);
        } else if s.waiting > 0 {
            drop(s);
            self.room.notify_one();
        }
    }

    /// Waits up to `timeout` until the caller may run a task on its own thread, and counts
    /// it as running. Busy when every thread is taken and as many wait as the queue holds.
    fn enter(&self, timeout: Duration) -> Result<(), PoolError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        if s.open && !s.room() && s.tasks.len() + s.waiting >= self.capacity {
            return Err(PoolError::Busy);
        }
        s.waiting += 1;
        while s.open && !s.room() {
            let now = Instant::now();
            if now >= deadline {
                s.waiting -= 1;
                return Err(PoolError::NotStarted(timeout));
            }
            s = self
                .room
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.waiting -= 1;
        if !s.open {
            return Err(PoolError::ShutDown);
        }
        s.running += 1;
        Ok(())
    }

    /// One more task may run at once (a stuck worker was replaced).
    fn widen(&self) {
        let worker = {
            let mut s = self.lock();
            s.limit += 1;
            s.take_idle()
        };
        wake(worker);
        self.room.notify_one();
    }

    fn close(&self) {
        let idle = {
            let mut s = self.lock();
            s.open = false;
            std::mem::take(&mut s.idle)
        };
        for w in idle {
            w.notify_one();
        }
        self.room.notify_all();
    }
}

/// A value handed from one thread to one waiting thread.
struct OneShot<T> {
    value: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> OneShot<T> {
    fn new() -> Self {
        OneShot {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }

    fn send(&self, v: T) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        self.ready.notify_one();
    }

    /// The value, if it comes within `timeout`.
    fn recv_timeout(&self, timeout: Duration) -> Option<T> {
        let guard = self.value.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = self
            .ready
            .wait_timeout_while(guard, timeout, |v| v.is_none())
            .unwrap_or_else(|e| e.into_inner());
        guard.take()
    }
}

/// The sending side of `Pool::run`'s reply: dropped without a value (its task never ran),
/// it says so, so the waiting request does not wait for its timeout.
struct Replier<T>(Arc<OneShot<Option<T>>>);

impl<T> Drop for Replier<T> {
    fn drop(&mut self) {
        let mut v = self.0.value.lock().unwrap_or_else(|e| e.into_inner());
        if v.is_none() {
            *v = Some(None);
            self.0.ready.notify_one();
        }
    }
}

pub struct Pool {
    config: PoolConfig,
    queue: Arc<Queue>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Workers to retire when they next finish a task (replaced stuck workers).
    retire: Arc<AtomicUsize>,
    pub stats: Arc<PoolStats>,
    /// Called after a task ended and its thread was counted free (`on_done`).
    done_hooks: Hooks,
}

impl Pool {
    /// Starts the worker threads. Call only in an Apache child, never in the parent.
    pub fn start(config: PoolConfig) -> Arc<Pool> {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                tasks: VecDeque::new(),
                open: true,
                running: 0,
                waiting: 0,
                limit: config.threads,
                idle: Vec::new(),
            }),
            room: Condvar::new(),
            capacity: config.queue,
        });
        let pool = Arc::new(Pool {
            config,
            queue,
            workers: Mutex::new(Vec::new()),
            retire: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(PoolStats::default()),
            done_hooks: Hooks::default(),
        });
        for _ in 0..pool.config.threads {
            pool.add_worker();
        }
        pool
    }

    /// Starts one more worker thread. Used to replace a worker that is stuck in a job that
    /// was written off: the stuck one retires when (if ever) its job returns.
    pub fn replace_stuck_worker(&self) {
        self.retire.fetch_add(1, Ordering::SeqCst);
        self.queue.widen();
        self.add_worker();
    }

    /// Adds a function called whenever a task has ended and its thread is free again (a
    /// dispatcher waiting for a free worker).
    pub fn on_done(&self, f: Arc<dyn Fn() + Send + Sync>) {
        self.done_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    fn done(queue: &Queue, hooks: &Hooks, retiring: bool) {
        queue.done(retiring);
        for h in hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            h();
        }
    }

    fn add_worker(&self) {
        let queue = self.queue.clone();
        let stats = self.stats.clone();
        let retire = self.retire.clone();
        let hooks = self.done_hooks.clone();
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let n = workers.len();
        let handle = std::thread::Builder::new()
            .name(format!("wps-{}-{n}", self.config.name))
            .spawn(move || {
                let me = Arc::new(Condvar::new());
                while let Some(task) = queue.pop(&me) {
                    stats.queued.fetch_sub(1, Ordering::SeqCst);
                    stats.busy.fetch_add(1, Ordering::SeqCst);
                    task();
                    stats.busy.fetch_sub(1, Ordering::SeqCst);
                    stats.completed.fetch_add(1, Ordering::SeqCst);
                    let retiring = retire
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                        .is_ok();
                    Self::done(&queue, &hooks, retiring);
                    if retiring {
                        break;
                    }
                }
            })
            .expect("cannot start a worker thread");
        workers.retain(|w| !w.is_finished());
        workers.push(handle);
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// True when a worker is free and nothing waits in the queue.
    pub fn has_idle_worker(&self) -> bool {
        self.stats.busy.load(Ordering::SeqCst) + self.stats.queued.load(Ordering::SeqCst)
            < self.config.threads
    }

    /// Queues `task` for a worker without waiting for it.
    pub fn spawn(&self, task: impl FnOnce() + Send + 'static) -> Result<(), PoolError> {
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        self.queue.push(Box::new(task)).map_err(|e| {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            match e {
                PushError::Full => PoolError::Busy,
                PushError::Closed => PoolError::ShutDown,
            }
        })
    }

    /// Runs `job` on a worker thread and waits for its result. When the request timeout
    /// passes, `token` is cancelled; the worker then finishes the job (cooperatively) and
    /// serves the next one.
    pub fn run<T, F>(&self, token: Arc<CancelToken>, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        // `None`: the task was dropped without running (the pool went away)
        let reply = Arc::new(OneShot::<Option<Result<T, String>>>::new());
        let rtx = Replier(reply.clone());
        let stats = self.stats.clone();
        let queued_token = token.clone();
        self.spawn(move || {
            if queued_token.is_cancelled() {
                return; // the request gave up while the job waited in the queue
            }
            let r = catch_unwind(AssertUnwindSafe(job)).map_err(|p| {
                stats.panicked.fetch_add(1, Ordering::SeqCst);
                panic_message(&*p)
            });
            rtx.0.send(Some(r));
        })?;
        match reply.recv_timeout(self.config.request_timeout) {
            Some(Some(Ok(v))) => Ok(v),
            Some(Some(Err(msg))) => Err(PoolError::Panicked(msg)),
            Some(None) => Err(PoolError::ShutDown),
            None => {
                token.cancel();
                self.stats.timed_out.fetch_add(1, Ordering::SeqCst);
                Err(PoolError::Timeout(self.config.request_timeout))
            }
        }
    }

    /// Runs `job` on the caller's thread once one of the pool's threads is free (they bound
    /// the jobs run here too, and a queued job goes first), waiting up to the request
    /// timeout; a panic ends the job only. For work that always returns promptly (see
    /// `Process::quick`): the request saves the hand-off to a worker and back, but a job that
    /// never returned would keep the request's thread, which `run` does not.
    pub fn run_here<T>(&self, job: impl FnOnce() -> T) -> Result<T, PoolError> {
        self.queue.enter(self.config.request_timeout)?;
        self.stats.busy.fetch_add(1, Ordering::SeqCst);
        let r = catch_unwind(AssertUnwindSafe(job)).map_err(|p| {
            self.stats.panicked.fetch_add(1, Ordering::SeqCst);
            PoolError::Panicked(panic_message(&*p))
        });
        self.stats.busy.fetch_sub(1, Ordering::SeqCst);
        self.stats.completed.fetch_add(1, Ordering::SeqCst);
        Self::done(&self.queue, &self.done_hooks, false);
        r
    }

    /// Stops accepting jobs. With `wait` (a graceful stop), waits up to the graceful timeout
    /// for the workers to finish what they hold; without (a hard stop: the process is about to
    /// exit), only lets the idle workers go. Returns the number of workers still busy then.
    pub fn shutdown(&self, wait: bool) -> usize {
        self.queue.close();
        let grace = if wait {
            self.config.graceful_timeout
        } else {
            HARD_STOP_GRACE
        };
        let deadline = Instant::now() + grace;
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        while Instant::now() < deadline && workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (done, left): (Vec<_>, Vec<_>) = workers.drain(..).partition(|w| w.is_finished());
        for w in done {
            let _ = w.join();
        }
        left.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::sync::atomic::AtomicUsize;

    fn tok() -> Arc<CancelToken> {
        Arc::new(CancelToken::default())
    }

    #[test]
    fn stuck_worker_is_replaced_and_retires_later() {
        let pool = Pool::start(cfg(1, 4, 5000));
        let (gate_tx, gate_rx) = bounded::<()>(0);
        pool.spawn(move || {
            let _ = gate_rx.recv();
        })
        .unwrap();
        while pool.stats.busy.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!pool.has_idle_worker());
        pool.replace_stuck_worker();
        // the replacement serves while the stuck worker still holds its job
        assert_eq!(pool.run(tok(), || 9), Ok(9));
        gate_tx.send(()).unwrap();
        // the stuck worker retires: one worker thread is left
        until("no worker retired", || {
            let workers = pool.workers.lock().unwrap();
            workers.iter().filter(|w| !w.is_finished()).count() == 1
        });
        assert_eq!(pool.run(tok(), || 10), Ok(10));
    }

    fn cfg(threads: usize, queue: usize, timeout_ms: u64) -> PoolConfig {
        PoolConfig {
            name: "t".into(),
            threads,
            queue,
            request_timeout: Duration::from_millis(timeout_ms),
            graceful_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn parses_options() {
        let c = PoolConfig::parse("pywps", &["threads=2", "queue=7", "request-timeout=9"]).unwrap();
        assert_eq!((c.threads, c.queue), (2, 7));
        assert_eq!(c.request_timeout, Duration::from_secs(9));
        assert!(PoolConfig::parse("p", &["thread=2"])
            .unwrap_err()
            .contains("unknown option 'thread=2'"));
        assert!(PoolConfig::parse("p", &["threads=0"]).is_err());
        assert!(PoolConfig::parse("p", &["threads"]).is_err());
        assert!(PoolConfig::parse("a b", &[]).is_err());
    }

    #[test]
    fn runs_on_worker_threads_and_returns_results() {
        let pool = Pool::start(cfg(2, 10, 5000));
        let name = pool
            .run(tok(), || std::thread::current().name().unwrap().to_owned())
            .unwrap();
        assert!(name.starts_with("wps-t-"));
        assert_eq!(pool.run(tok(), || 6 * 7).unwrap(), 42);
        assert_eq!(pool.shutdown(true), 0);
    }

    /// Waits (at most 5 s, else fails with `what`) until `done`.
    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until `n` workers wait for a task.
    fn until_idle(pool: &Pool, n: usize) {
        until("the workers did not go idle", || {
            pool.queue.lock().idle.len() == n
        });
    }

    #[test]
    fn the_worker_idle_last_takes_the_next_task() {
        let pool = Pool::start(cfg(3, 10, 5000));
        until_idle(&pool, 3);
        let name = || std::thread::current().name().unwrap().to_owned();
        let mut names = Vec::new();
        for _ in 0..6 {
            names.push(pool.run(tok(), name).unwrap());
            until_idle(&pool, 3);
        }
        // one worker serves one job after another (not each worker in turn)
        assert!(names.iter().all(|n| *n == names[0]), "{names:?}");
        // with all three busy, each takes one
        let (gate_tx, gate_rx) = bounded::<()>(0);
        let (name_tx, name_rx) = bounded::<String>(3);
        for _ in 0..3 {
            let (gate_rx, name_tx) = (gate_rx.clone(), name_tx.clone());
            pool.spawn(move || {
                name_tx.send(name()).unwrap();
                let _ = gate_rx.recv();
            })
            .unwrap();
        }
        let mut busy: Vec<String> = (0..3).map(|_| name_rx.recv().unwrap()).collect();
        busy.sort();
        busy.dedup();
        assert_eq!(busy.len(), 3);
        for _ in 0..3 {
            gate_tx.send(()).unwrap();
        }
        until_idle(&pool, 3);
        assert_eq!(pool.shutdown(true), 0);
    }

    #[test]
    fn shutdown_waits_for_busy_workers_only_when_graceful() {
        let busy = |pool: &Pool| {
            let (gate_tx, gate_rx) = bounded::<()>(0);
            let (started_tx, started_rx) = bounded::<()>(1);
            pool.spawn(move || {
                let _ = started_tx.send(());
                let _ = gate_rx.recv_timeout(Duration::from_secs(3));
            })
            .unwrap();
            started_rx.recv().unwrap();
            gate_tx
        };
        // graceful: waits until the job ends (here: at the gate, after 300 ms)
        let pool = Pool::start(cfg(2, 4, 5000));
        let gate = busy(&pool);
        let t0 = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(gate);
        });
        assert_eq!(pool.shutdown(true), 0);
        assert!(
            t0.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t0.elapsed()
        );
        // hard: lets go at once, the busy worker is left running
        let pool = Pool::start(cfg(2, 4, 5000));
        let _gate = busy(&pool);
        let t0 = Instant::now();
        assert_eq!(pool.shutdown(false), 1);
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert!(matches!(pool.spawn(|| ()), Err(PoolError::ShutDown)));
    }

    #[test]
    fn burst_larger_than_threads_waits_in_queue() {
        let pool = Pool::start(cfg(2, 64, 10_000));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    pool.run(tok(), move || {
                        let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                })
            })
            .collect();
        let mut got: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn full_queue_is_busy() {
        let pool = Pool::start(cfg(1, 1, 10_000));
        let (gate_tx, gate_rx) = bounded::<()>(0);
        let p2 = pool.clone();
        let blocker = std::thread::spawn(move || p2.run(tok(), move || gate_rx.recv().ok()));
        // wait until the worker holds the blocking job
        while pool.stats.busy.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let p3 = pool.clone();
        let queued = std::thread::spawn(move || p3.run(tok(), || 1));
        while pool.stats.queued.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(pool.run(tok(), || 2), Err(PoolError::Busy));
        gate_tx.send(()).unwrap();
        assert!(blocker.join().unwrap().is_ok());
        assert_eq!(queued.join().unwrap(), Ok(1));
    }

    #[test]
    fn timeout_cancels_and_worker_is_reused() {
        let pool = Pool::start(cfg(1, 4, 100));
        let t = tok();
        let t2 = t.clone();
        let r = pool.run(t, move || {
            while !t2.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            "stopped"
        });
        assert_eq!(r, Err(PoolError::Timeout(Duration::from_millis(100))));
        // the single worker is free again
        assert_eq!(pool.run(tok(), || 5), Ok(5));
    }

    #[test]
    fn panic_is_caught_and_worker_survives() {
        let pool = Pool::start(cfg(1, 4, 5000));
        let r: Result<(), _> = pool.run(tok(), || panic!("boom {}", 7));
        assert_eq!(r, Err(PoolError::Panicked("boom 7".into())));
        assert_eq!(pool.run(tok(), || 3), Ok(3));
        pool.shutdown(true);
        assert_eq!(pool.run(tok(), || 3), Err(PoolError::ShutDown));
    }

    #[test]
    fn a_reply_whose_task_never_runs_says_so_at_once() {
        let reply = Arc::new(OneShot::<Option<u32>>::new());
        drop(Replier(reply.clone()));
        let t = Instant::now();
        assert_eq!(reply.recv_timeout(Duration::from_secs(5)), Some(None));
        assert!(t.elapsed() < Duration::from_secs(1));
        let reply = Arc::new(OneShot::<Option<u32>>::new());
        let r2 = Replier(reply.clone());
        std::thread::spawn(move || r2.0.send(Some(7)));
        assert_eq!(reply.recv_timeout(Duration::from_secs(5)), Some(Some(7)));
    }

    fn caller() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    /// Spawns a job that holds a worker until the returned sender is used or dropped.
    fn hold_worker(pool: &Pool) -> crossbeam_channel::Sender<()> {
        let (gate_tx, gate_rx) = bounded::<()>(0);
        let before = pool.stats.busy.load(Ordering::SeqCst);
        pool.spawn(move || {
            let _ = gate_rx.recv();
        })
        .unwrap();
        while pool.stats.busy.load(Ordering::SeqCst) == before {
            std::thread::sleep(Duration::from_millis(2));
        }
        gate_tx
    }

    #[test]
    fn run_here_runs_on_the_callers_thread_once_a_thread_is_free() {
        let pool = Pool::start(cfg(1, 4, 200));
        assert_eq!(pool.run_here(caller), Ok(caller()));
        // the pool's one thread is taken: the job waits, and never runs when none frees up
        let gate = hold_worker(&pool);
        let ran = AtomicUsize::new(0);
        let r = pool.run_here(|| ran.fetch_add(1, Ordering::SeqCst));
        assert_eq!(r, Err(PoolError::NotStarted(Duration::from_millis(200))));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        // it runs as soon as the thread is free
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(gate);
        });
        let pool2 = Pool::start(cfg(1, 4, 5000));
        let gate2 = hold_worker(&pool2);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(gate2);
        });
        assert_eq!(pool2.run_here(caller), Ok(caller()));
        release.join().unwrap();
        // a panic ends the job, not the thread or the pool's count
        let r: Result<(), _> = pool.run_here(|| panic!("inline {}", 1));
        assert_eq!(r, Err(PoolError::Panicked("inline 1".into())));
        assert_eq!(pool.run(tok(), || 3), Ok(3));
        assert_eq!(pool.run_here(|| 4), Ok(4));
        pool.shutdown(true);
        assert_eq!(pool.run_here(|| 5), Err(PoolError::ShutDown));
    }

    #[test]
    fn run_here_is_busy_when_the_queue_is_full() {
        let pool = Pool::start(cfg(1, 1, 5000));
        let _gate = hold_worker(&pool);
        pool.spawn(|| {}).unwrap();
        let t = Instant::now();
        assert_eq!(pool.run_here(|| 1), Err(PoolError::Busy));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "Busy is answered at once"
        );
    }

    #[test]
    fn a_job_run_here_holds_one_of_the_pools_threads() {
        let pool = Pool::start(cfg(1, 4, 5000));
        let ran = Arc::new(AtomicUsize::new(0));
        let r = pool.run_here(|| {
            // queued meanwhile, it waits for the thread the job here holds
            let ran2 = ran.clone();
            pool.spawn(move || {
                ran2.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            ran.load(Ordering::SeqCst)
        });
        assert_eq!(r, Ok(0));
        until("the queued job never ran", || {
            ran.load(Ordering::SeqCst) > 0
        });
    }
}
