//! Worker pools declared with `WPSDaemonProcess`: a fixed number of threads fed from a bounded
//! queue. A request thread hands a job to the pool and waits for its result (up to the pool's
//! request timeout); a full queue answers `Busy` at once.

use crate::processes::CancelToken;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The job panicked; the panic message.
    Panicked(String),
    /// The pool is shutting down.
    ShutDown,
}

type Task = Box<dyn FnOnce() + Send + 'static>;

/// Counters for status reporting and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub busy: AtomicUsize,
    pub queued: AtomicUsize,
    pub completed: AtomicUsize,
    pub panicked: AtomicUsize,
    pub timed_out: AtomicUsize,
}

pub struct Pool {
    config: PoolConfig,
    sender: Mutex<Option<Sender<Task>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    pub stats: Arc<PoolStats>,
}

impl Pool {
    /// Starts the worker threads. Call only in an Apache child, never in the parent.
    pub fn start(config: PoolConfig) -> Arc<Pool> {
        let (tx, rx): (Sender<Task>, Receiver<Task>) = bounded(config.queue);
        let stats = Arc::new(PoolStats::default());
        let workers = (0..config.threads)
            .map(|i| {
                let rx = rx.clone();
                let stats = stats.clone();
                std::thread::Builder::new()
                    .name(format!("wps-{}-{i}", config.name))
                    .spawn(move || {
                        for task in rx.iter() {
                            stats.queued.fetch_sub(1, Ordering::SeqCst);
                            stats.busy.fetch_add(1, Ordering::SeqCst);
                            task();
                            stats.busy.fetch_sub(1, Ordering::SeqCst);
                            stats.completed.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .expect("cannot start a worker thread")
            })
            .collect();
        Arc::new(Pool {
            config,
            sender: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            stats,
        })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Runs `job` on a worker thread and waits for its result. The job gets a cancellation
    /// token that is cancelled when the request timeout passes; the worker then finishes the
    /// job (cooperatively) and serves the next one.
    pub fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<CancelToken>) -> T + Send + 'static,
    {
        let token = Arc::new(CancelToken::default());
        let (rtx, rrx) = bounded::<Result<T, String>>(1);
        let t2 = token.clone();
        let stats = self.stats.clone();
        let task: Task = Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(|| job(t2))).map_err(|p| {
                stats.panicked.fetch_add(1, Ordering::SeqCst);
                panic_message(&*p)
            });
            let _ = rtx.send(r);
        });
        {
            let guard = self.sender.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.as_ref().ok_or(PoolError::ShutDown)?;
            self.stats.queued.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = tx.try_send(task) {
                self.stats.queued.fetch_sub(1, Ordering::SeqCst);
                return Err(match e {
                    TrySendError::Full(_) => PoolError::Busy,
                    TrySendError::Disconnected(_) => PoolError::ShutDown,
                });
            }
        }
        match rrx.recv_timeout(self.config.request_timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(PoolError::Panicked(msg)),
            Err(RecvTimeoutError::Timeout) => {
                token.cancel();
                self.stats.timed_out.fetch_add(1, Ordering::SeqCst);
                Err(PoolError::Timeout(self.config.request_timeout))
            }
            Err(RecvTimeoutError::Disconnected) => Err(PoolError::ShutDown),
        }
    }

    /// Stops accepting jobs and waits up to the graceful timeout for the workers to finish
    /// what they hold. Returns the number of workers still busy at the deadline.
    pub fn shutdown(&self) -> usize {
        self.sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let deadline = Instant::now() + self.config.graceful_timeout;
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

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
            .run(|_| std::thread::current().name().unwrap().to_owned())
            .unwrap();
        assert!(name.starts_with("wps-t-"));
        assert_eq!(pool.run(|_| 6 * 7).unwrap(), 42);
        assert_eq!(pool.shutdown(), 0);
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
                    pool.run(move |_| {
                        let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                })
            })
            .collect();
        let mut got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn full_queue_is_busy() {
        let pool = Pool::start(cfg(1, 1, 10_000));
        let (gate_tx, gate_rx) = bounded::<()>(0);
        let p2 = pool.clone();
        let blocker = std::thread::spawn(move || p2.run(move |_| gate_rx.recv().ok()));
        // wait until the worker holds the blocking job
        while pool.stats.busy.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let p3 = pool.clone();
        let queued = std::thread::spawn(move || p3.run(|_| 1));
        while pool.stats.queued.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(pool.run(|_| 2), Err(PoolError::Busy));
        gate_tx.send(()).unwrap();
        assert!(blocker.join().unwrap().is_ok());
        assert_eq!(queued.join().unwrap(), Ok(1));
    }

    #[test]
    fn timeout_cancels_and_worker_is_reused() {
        let pool = Pool::start(cfg(1, 4, 100));
        let r = pool.run(|tok: Arc<CancelToken>| {
            while !tok.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            "stopped"
        });
        assert_eq!(r, Err(PoolError::Timeout(Duration::from_millis(100))));
        // the single worker is free again
        assert_eq!(pool.run(|_| 5), Ok(5));
    }

    #[test]
    fn panic_is_caught_and_worker_survives() {
        let pool = Pool::start(cfg(1, 4, 5000));
        let r: Result<(), _> = pool.run(|_| panic!("boom {}", 7));
        assert_eq!(r, Err(PoolError::Panicked("boom 7".into())));
        assert_eq!(pool.run(|_| 3), Ok(3));
        pool.shutdown();
        assert_eq!(pool.run(|_| 3), Err(PoolError::ShutDown));
    }
}
