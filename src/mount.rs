//! What the directives mount and what each Apache child runs: the aliases (`WPSScriptAlias`)
//! with their services, the pools (`WPSDaemonProcess`), and per child the pools, runners and
//! dispatchers started in `child_init`. Safe and Apache-free; the glue only translates.

use crate::engine::Service;
use crate::exec::dispatcher::Dispatcher;
use crate::exec::pool::{Pool, PoolConfig};
use crate::exec::runner::Runner;
use crate::exec::slurm::SlurmExecutor;
use crate::exec::stats::{PoolStatus, ServiceStatus};
use crate::exec::{Executor, Logger};
use crate::front::{router, HttpRequest, HttpResponse};
use crate::model::LogLevel;
use std::collections::HashMap;
use std::sync::Arc;

/// The pool of aliases that name none.
pub const DEFAULT_POOL: &str = "default";

/// One `WPSScriptAlias`.
pub struct Alias {
    /// The virtual host (an opaque key: the glue uses the `server_rec` address).
    pub server: usize,
    pub url: String,
    pub service: Arc<Service>,
    pub group: Option<String>,
}

impl Alias {
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(DEFAULT_POOL)
    }
}

/// What one read of the configuration declared.
#[derive(Default)]
pub struct Generation {
    pub pools: Vec<PoolConfig>,
    pub aliases: Vec<Alias>,
    /// Pools named by `WPSProcessGroup` (they run synchronous requests of every alias).
    pub location_groups: Vec<String>,
    pub main_server: usize,
}

/// Whether `uri` is `prefix` or below it (whole path segments).
pub fn path_matches(prefix: &str, uri: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    p.is_empty() || uri == p || (uri.starts_with(p) && uri.as_bytes().get(p.len()) == Some(&b'/'))
}

impl Generation {
    /// The alias serving `uri` on `server`: vhost aliases before global ones, longest first.
    pub fn alias_for(&self, server: usize, uri: &str) -> Option<(usize, &Alias)> {
        self.aliases
            .iter()
            .enumerate()
            .filter(|(_, a)| a.server == server || a.server == self.main_server)
            .filter(|(_, a)| path_matches(&a.url, uri))
            .max_by_key(|(_, a)| (a.server == server, a.url.len()))
    }

    /// Checks a `WPSProcessGroup`/`process-group=` name against the declared pools.
    pub fn check_group(&self, name: &str) -> Result<(), String> {
        if name == DEFAULT_POOL || self.pools.iter().any(|p| p.name == name) {
            Ok(())
        } else {
            Err(format!(
                "process group '{name}' is not defined; declare it first with WPSDaemonProcess {name} ..."
            ))
        }
    }

    /// Lines for the error log once the configuration is in force.
    pub fn describe(&self) -> Vec<(LogLevel, String)> {
        let mut v = Vec::new();
        for a in &self.aliases {
            for w in &a.service.config.warnings {
                v.push((LogLevel::Warning, w.clone()));
            }
            v.push((
                LogLevel::Info,
                format!(
                    "WPS service {} at {} ({} processes, process group '{}')",
                    a.service.config.path.display(),
                    a.url,
                    a.service.process_ids().len(),
                    a.group()
                ),
            ));
        }
        v
    }
}

/// One service's work in one pool of this child.
pub struct Mounted {
    pub runner: Arc<Runner>,
    pub dispatcher: Arc<Dispatcher>,
}

/// What one Apache child runs.
pub struct ChildState {
    pub generation: Arc<Generation>,
    pub pools: HashMap<String, Arc<Pool>>,
    /// Per alias (same index as `generation.aliases`): its runners by pool name.
    pub runners: Vec<HashMap<String, Mounted>>,
}

impl ChildState {
    /// Starts the pools and, per alias and pool, a runner and its dispatcher (the alias's own
    /// pool claims its queued jobs; `WPSProcessGroup` pools run synchronous requests only).
    pub fn start(generation: Arc<Generation>, log: Logger) -> ChildState {
        let mut pools = HashMap::new();
        for cfg in &generation.pools {
            pools.insert(cfg.name.clone(), Pool::start(cfg.clone()));
        }
        let needs_default = generation.aliases.iter().any(|a| a.group.is_none())
            || generation.location_groups.iter().any(|g| g == DEFAULT_POOL);
        if needs_default && !pools.contains_key(DEFAULT_POOL) {
            pools.insert(
                DEFAULT_POOL.to_string(),
                Pool::start(PoolConfig::new(DEFAULT_POOL)),
            );
        }
        let runners = generation
            .aliases
            .iter()
            .map(|a| {
                let mut m = HashMap::new();
                let groups = std::iter::once(a.group())
                    .chain(generation.location_groups.iter().map(String::as_str));
                // the store's connections and threads, if it has any: in this child only,
                // before the dispatchers use it; they are woken through `wake`
                let wake: Arc<std::sync::Mutex<Option<crate::jobs::Waker>>> = Arc::default();
                let w2 = wake.clone();
                a.service.store.start_child(
                    log.clone(),
                    Some(Arc::new(move || {
                        let f = w2.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        if let Some(f) = f {
                            f();
                        }
                    })),
                );
                for g in groups {
                    if let (false, Some(pool)) = (m.contains_key(g), pools.get(g)) {
                        let runner = Runner::new(a.service.clone(), pool.clone(), log.clone());
                        let claims = g == a.group();
                        // the claiming dispatcher sends jobs of `dispatch = slurm` processes
                        // to Slurm, the others to the runner
                        let mut executors: Vec<Arc<dyn Executor>> = Vec::new();
                        if claims {
                            if let Some(s) = SlurmExecutor::for_service(&a.service, log.clone()) {
                                executors.push(s);
                            }
                        }
                        executors.push(runner.clone());
                        let dispatcher = Dispatcher::start_with(
                            a.service.clone(),
                            executors,
                            claims,
                            log.clone(),
                        );
                        runner.on_wake(dispatcher.waker());
                        runner.on_freed(dispatcher.capacity_waker());
                        if claims {
                            *wake.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(dispatcher.waker());
                        }
                        m.insert(g.to_string(), Mounted { runner, dispatcher });
                    }
                }
                m
            })
            .collect();
        ChildState {
            generation,
            pools,
            runners,
        }
    }

    /// Answers a request for alias `index` below its URL, on process group `group`.
    pub fn handle(&self, index: usize, group: &str, req: &HttpRequest) -> HttpResponse {
        let alias = &self.generation.aliases[index];
        match self.runners.get(index).and_then(|m| m.get(group)) {
            Some(m) => router::handle(&alias.service, m.runner.as_ref(), req),
            None => {
                let mut r = HttpResponse::text(500, "Internal Server Error\n");
                r.log.push((
                    LogLevel::Error,
                    format!("mod_wps: process group '{group}' has no pool in this child"),
                ));
                r
            }
        }
    }

    /// Stops the dispatchers claiming jobs, then the pools, then the dispatchers. With `wait`
    /// (a graceful stop) each pool waits up to its graceful-timeout for the jobs it runs, and
    /// meanwhile the dispatchers still enforce time limits and Dismiss on them; without (a
    /// hard stop: `apachectl stop` or `restart`) it lets go at once and the jobs still running
    /// are re-queued by the next children (they are durable). Returns lines for the error log.
    pub fn shutdown(&self, wait: bool) -> Vec<String> {
        for m in self.runners.iter().flat_map(|m| m.values()) {
            m.dispatcher.drain();
        }
        let mut lines = Vec::new();
        for pool in self.pools.values() {
            let left = pool.shutdown(wait);
            if left == 0 {
                continue;
            }
            let name = &pool.config().name;
            lines.push(if wait {
                format!(
                    "{left} job(s) of process group '{name}' still running after graceful-timeout; they are left to the next children"
                )
            } else {
                format!(
                    "{left} job(s) of process group '{name}' still running at a hard stop; they are left to the next children"
                )
            });
        }
        for m in self.runners.iter().flat_map(|m| m.values()) {
            m.dispatcher.shutdown();
        }
        lines
    }

    /// The status page's view of this child: its pools, and each service with the counters of
    /// this child's runners. `vhost` names an alias's virtual host; `user` is who asks.
    pub fn status(
        &self,
        vhost: impl Fn(usize) -> Option<String>,
        user: Option<&str>,
    ) -> (Vec<PoolStatus>, Vec<ServiceStatus>) {
        let mut pools: Vec<PoolStatus> = self.pools.values().map(|p| PoolStatus::of(p)).collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        let services = self
            .generation
            .aliases
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let runners = self.runners.get(i).into_iter().flat_map(|m| m.values());
                ServiceStatus::collect(
                    &a.url,
                    vhost(a.server),
                    &a.service,
                    a.group(),
                    runners.map(|m| m.runner.as_ref()),
                    crate::engine::Caller::new(user),
                )
            })
            .collect();
        (pools, services)
    }
}

#[cfg(test)]
#[path = "mount_tests.rs"]
mod tests;
