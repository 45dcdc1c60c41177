//! The service registry: one `Service` per `WPSScriptAlias`, made from its config file — the
//! processes it offers and its job store. No protocol and no Apache types here.

use crate::config::service::{ProcessSelection, ServiceConfig};
use crate::config::ConfigError;
use crate::jobs::{FileStore, JobStore, PgStore};
use crate::model::Process;
use crate::processes;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Service {
    pub config: ServiceConfig,
    processes: Vec<Arc<dyn Process>>,
    /// The durable job store (records, queue, slots, output files).
    pub store: Arc<dyn JobStore>,
    /// Where job records live (for the log and the status page).
    pub store_location: String,
}

/// The default `workdir` of a service config file that sets none.
pub fn default_workdir(config_path: &Path) -> PathBuf {
    let name: String = config_path
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Path::new("/var/lib/mod_wps").join(name)
}

impl Service {
    /// Loads and checks a service config file, and that what it needs is installed.
    pub fn load(path: &Path) -> Result<Service, ConfigError> {
        let config = ServiceConfig::load(path)?;
        let service = Self::from_config(config)?;
        service.check_slurm()?;
        Ok(service)
    }

    /// With `dispatch = slurm`: Slurm's client programs and `mod_wps-worker` are installed.
    fn check_slurm(&self) -> Result<(), ConfigError> {
        use crate::config::slurm::{self, Dispatch, WORKER};
        let c = &self.config;
        let line = c
            .process_dispatch
            .iter()
            .filter(|(_, d, _)| *d == Dispatch::Slurm)
            .map(|(_, _, l)| *l)
            .chain(
                c.commands
                    .iter()
                    .filter(|s| s.dispatch == Dispatch::Slurm)
                    .map(|s| s.line),
            )
            .min();
        let Some(line) = line else {
            return Ok(());
        };
        let at = |m: String| ConfigError {
            path: c.path.clone(),
            line: Some(line),
            message: m,
        };
        if c.server.jobstore.is_some() {
            return Err(at(
                "dispatch = slurm needs the file job store for now: the PostgreSQL store (jobstore) does not take the Slurm worker's writes yet".into(),
            ));
        }
        slurm::client_programs().map_err(at)?;
        let worker = processes::command::find_helper(WORKER, "the Slurm job runner").map_err(at)?;
        slurm::check_worker_path(&worker).map_err(at)
    }

    pub fn from_config(config: ServiceConfig) -> Result<Service, ConfigError> {
        let mut known: Vec<&str> = processes::BUILTIN_IDS
            .iter()
            .chain(processes::DIAGNOSTIC_IDS)
            .copied()
            .collect();
        // command-line processes ([process:ID]) may have `[processes] ID.timeout` too
        known.extend(
            config
                .commands
                .iter()
                .map(|c| c.description.identifier.as_str()),
        );
        config.check_processes(&known)?;
        let ids: Vec<String> = match &config.processes {
            ProcessSelection::All => processes::BUILTIN_IDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ProcessSelection::List(l) => l.clone(),
        };
        let mut offered: Vec<Arc<dyn Process>> =
            ids.iter().filter_map(|id| processes::builtin(id)).collect();
        let workdir = config
            .server
            .workdir
            .clone()
            .unwrap_or_else(|| default_workdir(&config.path));
        let outputs = config
            .server
            .outputpath
            .clone()
            .unwrap_or_else(|| workdir.join("outputs"));
        let builtins: Vec<String> = offered
            .iter()
            .map(|p| p.description().identifier.clone())
            .collect();
        let builtins: Vec<&str> = builtins.iter().map(String::as_str).collect();
        let commands = processes::command::build(
            &config.commands,
            &builtins,
            &config.path,
            &workdir.join("jobs"),
        )?;
        offered.extend(commands);
        let server = &config.server;
        let (store, store_location): (Arc<dyn JobStore>, String) = match &server.jobstore {
            None => (
                Arc::new(FileStore::new(
                    workdir.clone(),
                    outputs,
                    server.parallelprocesses,
                    server.maxprocesses,
                )),
                workdir.display().to_string(),
            ),
            Some((conn, line)) => {
                let settings =
                    crate::jobs::pg::conn::settings(&conn.0, server.jobstorepassfile.as_deref())
                        .map_err(|m| {
                            ConfigError::at(&config.path, *line, format!("[server] jobstore: {m}"))
                        })?;
                let s = PgStore::new(
                    settings,
                    workdir,
                    outputs,
                    server.parallelprocesses,
                    server.maxprocesses,
                    server.jobstoreconnections,
                    server.joblease,
                );
                let location = s.location();
                (Arc::new(s), location)
            }
        };
        Ok(Service {
            config,
            processes: offered,
            store,
            store_location,
        })
    }

    pub fn max_request_size(&self) -> u64 {
        self.config.server.maxrequestsize
    }

    /// The URL of this service: `[server] url`, else `reached` (as the client reached it).
    pub fn url<'a>(&'a self, reached: &'a str) -> &'a str {
        self.config.server.url.as_deref().unwrap_or(reached)
    }

    pub fn default_language(&self) -> &str {
        &self.config.server.languages[0]
    }

    pub fn process(&self, id: &str) -> Option<&Arc<dyn Process>> {
        self.processes
            .iter()
            .find(|p| p.description().identifier == id)
    }

    pub fn processes(&self) -> &[Arc<dyn Process>] {
        &self.processes
    }

    pub fn process_ids(&self) -> Vec<&str> {
        self.processes
            .iter()
            .map(|p| p.description().identifier.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_builtin_is_a_config_error() {
        let cfg = ServiceConfig::parse(
            "[processes]\nbuiltin = say_hello, nope\n",
            Path::new("/x.cfg"),
        )
        .unwrap();
        let e = Service::from_config(cfg).err().unwrap();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("nope"));
    }

    #[test]
    fn the_registry_offers_what_the_config_selects() {
        let cfg = ServiceConfig::parse(
            "[processes]\nbuiltin = say_hello, sleep\n",
            Path::new("/etc/wps/a b.cfg"),
        )
        .unwrap();
        let s = Service::from_config(cfg).unwrap();
        assert_eq!(s.process_ids(), ["say_hello", "sleep"]);
        assert!(s.process("sleep").is_some() && s.process("area").is_none());
        assert_eq!(
            s.store_location, "/var/lib/mod_wps/etc_wps_a_b.cfg",
            "the default workdir is named after the config path"
        );
    }
}
