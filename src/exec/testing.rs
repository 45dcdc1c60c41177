//! A service with its runner and dispatcher, as an Apache child runs them, for unit tests of
//! the executor, the dispatcher and the fronts (no Apache).

use super::dispatcher::Dispatcher;
use super::pool::{Pool, PoolConfig};
use super::runner::Runner;
use crate::config::service::ServiceConfig;
use crate::engine::Service;
use crate::model::{Input, InputData, LiteralValue, LogLevel};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct Fixture {
    pub dir: PathBuf,
    pub service: Arc<Service>,
    pub runner: Arc<Runner>,
    pub dispatcher: Arc<Dispatcher>,
    pub log: Captured,
}

/// The service of config `text` (its file would be `dir/wps.cfg`), its job store prepared.
pub fn service(dir: &std::path::Path, text: &str) -> Arc<Service> {
    let cfg = ServiceConfig::parse(text, &dir.join("wps.cfg")).unwrap();
    let service = Arc::new(Service::from_config(cfg).unwrap());
    service.store.prepare(None).unwrap();
    service
}

/// Log lines kept in memory, and the logger that writes them.
pub type Captured = Arc<Mutex<Vec<(LogLevel, String)>>>;

pub fn captured_log() -> (Captured, super::Logger) {
    let log: Captured = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let logger: super::Logger = Arc::new(move |level, m: &str| {
        l2.lock().unwrap().push((level, m.to_owned()));
    });
    (log, logger)
}

/// One literal input `id` with `value`.
pub fn literal(id: &str, value: &str) -> Vec<Input> {
    vec![Input {
        identifier: id.into(),
        data: InputData::Literal(LiteralValue {
            value: value.into(),
            ..Default::default()
        }),
    }]
}

impl Fixture {
    /// A service with `server` lines in `[server]` and `processes` in `[processes]`, on a
    /// pool made by `pool`.
    pub fn new(server: &str, processes: &str, pool: PoolConfig) -> Fixture {
        let dir = std::env::temp_dir().join(format!("mod_wps-fx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[server]\nworkdir = {}\nlanguage = en-US, fr-FR\n{server}\n[processes]\n{processes}\n",
            dir.join("work").display()
        );
        let service = service(&dir, &text);
        let (log, logger) = captured_log();
        let runner = Runner::new(service.clone(), Pool::start(pool), logger.clone());
        let dispatcher = Dispatcher::start(service.clone(), runner.clone(), true, logger);
        runner.on_wake(dispatcher.waker());
        runner.on_freed(dispatcher.capacity_waker());
        Fixture {
            dir,
            service,
            runner,
            dispatcher,
            log,
        }
    }

    /// Whether `needle` is logged within 10 s (a line may follow the state it reports).
    pub fn logs(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.logged(needle) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|(_, m)| m.contains(needle))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.dispatcher.shutdown();
        self.runner.pool.shutdown(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
