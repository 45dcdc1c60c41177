//! mod_wps service configuration, read from a PyWPS-compatible `pywps.cfg` INI file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ini::{Ini, IniError};
use super::slurm::{Dispatch, SlurmConfig};
use super::values::{parse_duration, parse_size, ConfigError};

/// Service identification / provider metadata (`[metadata:main]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub title: String,
    pub abstract_: String,
    pub keywords: Vec<String>,
    pub keywords_type: String,
    pub fees: String,
    pub access_constraints: String,
    pub provider_name: String,
    pub provider_url: String,
    pub contact_name: String,
    pub contact_position: String,
    pub contact_address: String,
    pub contact_city: String,
    pub contact_stateorprovince: String,
    pub contact_postalcode: String,
    pub contact_country: String,
    pub contact_phone: String,
    pub contact_fax: String,
    pub contact_email: String,
    pub contact_url: String,
    pub contact_hours: String,
    pub contact_instructions: String,
    pub contact_role: String,
}

impl Default for Metadata {
    fn default() -> Metadata {
        let e = String::new;
        Metadata {
            title: "mod_wps Processing Service".into(),
            abstract_: e(),
            keywords: vec![],
            keywords_type: "theme".into(),
            fees: "NONE".into(),
            access_constraints: "NONE".into(),
            provider_name: e(),
            provider_url: e(),
            contact_name: e(),
            contact_position: e(),
            contact_address: e(),
            contact_city: e(),
            contact_stateorprovince: e(),
            contact_postalcode: e(),
            contact_country: e(),
            contact_phone: e(),
            contact_fax: e(),
            contact_email: e(),
            contact_url: e(),
            contact_hours: e(),
            contact_instructions: e(),
            contact_role: e(),
        }
    }
}

impl Metadata {
    fn field(&mut self, key: &str) -> Option<&mut String> {
        Some(match key {
            "identification_title" => &mut self.title,
            "identification_abstract" => &mut self.abstract_,
            "identification_keywords_type" => &mut self.keywords_type,
            "identification_fees" => &mut self.fees,
            "identification_accessconstraints" => &mut self.access_constraints,
            "provider_name" => &mut self.provider_name,
            "provider_url" => &mut self.provider_url,
            "contact_name" => &mut self.contact_name,
            "contact_position" => &mut self.contact_position,
            "contact_address" => &mut self.contact_address,
            "contact_city" => &mut self.contact_city,
            "contact_stateorprovince" => &mut self.contact_stateorprovince,
            "contact_postalcode" => &mut self.contact_postalcode,
            "contact_country" => &mut self.contact_country,
            "contact_phone" => &mut self.contact_phone,
            "contact_fax" => &mut self.contact_fax,
            "contact_email" => &mut self.contact_email,
            "contact_url" => &mut self.contact_url,
            "contact_hours" => &mut self.contact_hours,
            "contact_instructions" => &mut self.contact_instructions,
            "contact_role" => &mut self.contact_role,
            _ => return None,
        })
    }
}

const METADATA_KEYS: &str = "identification_title identification_abstract \
    identification_keywords identification_keywords_type identification_fees \
    identification_accessconstraints provider_name provider_url contact_name contact_position \
    contact_address contact_city contact_stateorprovince contact_postalcode contact_country \
    contact_phone contact_fax contact_email contact_url contact_hours contact_instructions \
    contact_role";

const SERVER_KEYS: &str = "url outputurl outputpath workdir maxsingleinputsize maxrequestsize \
    parallelprocesses maxprocesses language processtimeout retention allowedinputpaths allowedhosts jobaccess jobadmins \
    apiprefix jobstore jobstorepassfile jobstoreconnections joblease";

/// `[server]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub url: Option<String>,
    pub outputurl: Option<String>,
    pub outputpath: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
    pub maxsingleinputsize: u64,
    pub maxrequestsize: u64,
    pub parallelprocesses: u32,
    pub maxprocesses: u32,
    pub languages: Vec<String>,
    /// `processtimeout`: the time limit of every job (default 1 hour).
    pub processtimeout: Duration,
    /// `retention`: finished jobs and their outputs older than this are removed (default: kept).
    pub retention: Option<Duration>,
    /// `allowedinputpaths`: directories `file://` references may read from (default: none).
    pub allowedinputpaths: Vec<PathBuf>,
    /// `allowedhosts`: hosts and networks references may reach although not public.
    pub allowedhosts: Vec<crate::model::net::HostRule>,
    /// `jobaccess`: who may read and dismiss a job.
    pub jobaccess: JobAccess,
    /// `jobadmins`: users who see and dismiss every job (with `jobaccess = owner`).
    pub jobadmins: Vec<String>,
    /// `apiprefix`: the path segment below the alias where OGC API – Processes is served
    /// (default `api`).
    pub apiprefix: String,
    /// `jobstore`: `file` (the default: files under `workdir`) or a PostgreSQL connection
    /// string, with its line.
    pub jobstore: Option<(ConnString, usize)>,
    /// `jobstorepassfile`: a libpq password file (`host:port:db:user:password` lines).
    pub jobstorepassfile: Option<PathBuf>,
    /// `jobstoreconnections`: the PostgreSQL connections of each Apache child (pool size).
    pub jobstoreconnections: u32,
    /// `joblease`: how long a host's claim on a running job holds without renewal.
    pub joblease: Duration,
}

/// A database connection string: it may hold a password, so it never shows in `Debug`.
#[derive(Clone, PartialEq)]
pub struct ConnString(pub String);

impl std::fmt::Debug for ConnString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnString(..)")
    }
}

/// `[server] jobaccess`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobAccess {
    /// Anyone who knows a job's id (the default).
    #[default]
    All,
    /// Only the user who submitted it (and `jobadmins`); anonymous jobs stay readable by id.
    Owner,
}

impl Default for Server {
    fn default() -> Server {
        Server {
            url: None,
            outputurl: None,
            outputpath: None,
            workdir: None,
            maxsingleinputsize: 1024 * 1024,
            maxrequestsize: 3 * 1024 * 1024,
            parallelprocesses: 2,
            maxprocesses: 30,
            languages: vec!["en-US".to_string()],
            processtimeout: Duration::from_secs(3600),
            retention: None,
            allowedinputpaths: Vec::new(),
            allowedhosts: Vec::new(),
            jobaccess: JobAccess::All,
            jobadmins: Vec::new(),
            apiprefix: "api".to_string(),
            jobstore: None,
            jobstorepassfile: None,
            jobstoreconnections: 4,
            joblease: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum ProcessSelection {
    #[default]
    All,
    List(Vec<String>),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceConfig {
    pub path: PathBuf,
    pub metadata: Metadata,
    pub server: Server,
    /// `[processes] builtin = all | id, id, ...`; `All` when absent.
    pub processes: ProcessSelection,
    /// Line of the `[processes] builtin` key, if present.
    pub processes_line: Option<usize>,
    /// `[processes] ID.timeout = DURATION`: per-process time limits, with their lines.
    pub process_timeouts: Vec<(String, Duration, usize)>,
    /// `[process:ID]` sections: command-line processes.
    pub commands: Vec<crate::config::process::CommandSpec>,
    /// `[processes] ID.dispatch = local | slurm`, with their lines.
    pub process_dispatch: Vec<(String, Dispatch, usize)>,
    /// `[slurm]`, if present.
    pub slurm: Option<SlurmConfig>,
    /// Human-readable warnings for keys/sections that are accepted but not honoured.
    pub warnings: Vec<String>,
}

impl ServiceConfig {
    /// The time limit of jobs of process `id`.
    pub fn timeout_for(&self, id: &str) -> Duration {
        self.process_timeouts
            .iter()
            .find(|(p, _, _)| p == id)
            .map(|(_, d, _)| *d)
            .unwrap_or(self.server.processtimeout)
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_count(v: &str) -> Result<u32, String> {
    match v.trim().parse::<i64>() {
        Ok(-1) => Ok(u32::MAX),
        Ok(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n as u32),
        _ => Err(format!(
            "'{v}' is not a non-negative integer (or -1 for unlimited)"
        )),
    }
}

fn parse_url(v: String) -> Result<Option<String>, String> {
    let lower = v.to_ascii_lowercase();
    if v.is_empty() {
        Ok(None)
    } else if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(Some(v))
    } else {
        Err(format!("'{v}' must start with http:// or https://"))
    }
}

/// One URL path segment other than `outputs` (where stored outputs are served).
fn parse_segment(v: &str) -> Result<String, String> {
    let v = v.trim().trim_matches('/');
    let ok = !v.is_empty()
        && v.len() <= 64
        && v != "outputs"
        && !v.starts_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "'{v}' must be one path segment of letters, digits, '.', '_', '-' (not 'outputs')"
        ))
    }
}

fn is_language_tag(s: &str) -> bool {
    (1..=35).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl ServiceConfig {
    pub fn load(path: &Path) -> Result<ServiceConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read configuration file: {e}"),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<ServiceConfig, ConfigError> {
        Self::parse_with_env(text, path, &|name| std::env::var(name).ok())
    }

    fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServiceConfig, ConfigError> {
        let ini_err = |e: IniError| ConfigError::at(path, e.line, e.message);
        let ini = Ini::parse(text).map_err(ini_err)?;
        let get = |sec: &str, key: &str| ini.get(sec, key, env).map_err(ini_err);
        let mut cfg = ServiceConfig {
            path: path.to_path_buf(),
            ..Default::default()
        };
        let p = path.display();
        for section in &ini.sections {
            let (sec, known) = match section.name.as_str() {
                "metadata:main" => ("metadata:main", METADATA_KEYS),
                "server" => ("server", SERVER_KEYS),
                "processes" => ("processes", "builtin"),
                "slurm" => {
                    let get = |key: &str| get("slurm", key);
                    cfg.slurm = Some(crate::config::slurm::parse_section(section, path, &get)?);
                    continue;
                }
                other if other.starts_with("process:") => {
                    let get = |key: &str| get(other, key);
                    let c = crate::config::process::parse_section(section, path, &get)?;
                    cfg.commands.push(c);
                    continue;
                }
                other => {
                    cfg.warnings.push(format!(
                        "{p}:{}: section [{other}] is not used by mod_wps and is ignored",
                        section.line
                    ));
                    continue;
                }
            };
            let known: Vec<&str> = known.split_whitespace().collect();
            if sec == "processes" {
                for e in section
                    .entries
                    .iter()
                    .filter(|e| e.key.ends_with(".timeout"))
                {
                    let (v, line) = get(sec, &e.key)?.unwrap_or_default();
                    let id = e.key.trim_end_matches(".timeout").to_string();
                    let d = parse_duration(&v).map_err(|m| {
                        ConfigError::at(path, line, format!("[processes] {}: {m}", e.key))
                    })?;
                    cfg.process_timeouts.push((id, d, line));
                }
                for e in section
                    .entries
                    .iter()
                    .filter(|e| e.key.ends_with(".dispatch"))
                {
                    let (v, line) = get(sec, &e.key)?.unwrap_or_default();
                    let id = e.raw_key[..e.raw_key.len() - ".dispatch".len()].to_string();
                    let d = Dispatch::parse(&v).map_err(|m| {
                        ConfigError::at(path, line, format!("[processes] {}: {m}", e.raw_key))
                    })?;
                    cfg.process_dispatch.push((id, d, line));
                }
            }
            for e in section.entries.iter().filter(|e| {
                let per_process = sec == "processes"
                    && (e.key.ends_with(".timeout") || e.key.ends_with(".dispatch"));
                !(known.contains(&e.key.as_str()) || per_process)
            }) {
                cfg.warnings.push(format!(
                    "{p}:{}: [{sec}] key '{}' is not supported by mod_wps and is ignored",
                    e.line, e.key
                ));
            }
            for &key in &known {
                let Some((v, line)) = get(sec, key)? else {
                    continue;
                };
                let bad = |m: String| ConfigError::at(path, line, format!("[{sec}] {key}: {m}"));
                let s = &mut cfg.server;
                match key {
                    "identification_keywords" => cfg.metadata.keywords = split_list(&v),
                    "builtin" if v.trim().eq_ignore_ascii_case("all") => {
                        cfg.processes = ProcessSelection::All;
                        cfg.processes_line = Some(line);
                    }
                    "builtin" => {
                        let mut ids: Vec<String> = vec![];
                        for id in split_list(&v) {
                            if !ids.contains(&id) {
                                ids.push(id);
                            }
                        }
                        if ids.is_empty() {
                            return Err(bad(
                                "expected 'all' or a comma separated list of process identifiers"
                                    .into(),
                            ));
                        }
                        cfg.processes = ProcessSelection::List(ids);
                        cfg.processes_line = Some(line);
                    }
                    "url" => s.url = parse_url(v).map_err(bad)?,
                    "outputurl" => s.outputurl = parse_url(v).map_err(bad)?,
                    "outputpath" | "workdir" => {
                        let dir = (!v.is_empty())
                            .then(|| path.parent().unwrap_or(Path::new("")).join(v.as_str()));
                        if key == "workdir" {
                            s.workdir = dir
                        } else {
                            s.outputpath = dir
                        }
                    }
                    "maxsingleinputsize" => s.maxsingleinputsize = parse_size(&v).map_err(bad)?,
                    "maxrequestsize" => s.maxrequestsize = parse_size(&v).map_err(bad)?,
                    "parallelprocesses" => {
                        s.parallelprocesses = parse_count(&v).map_err(bad)?;
                        if s.parallelprocesses == 0 {
                            cfg.warnings.push(format!(
                                "{p}:{line}: [server] parallelprocesses = 0: no process will run (synchronous Execute requests wait for a slot until their request timeout, asynchronous jobs stay queued); -1 means unlimited"
                            ));
                        }
                    }
                    "maxprocesses" => s.maxprocesses = parse_count(&v).map_err(bad)?,
                    "processtimeout" => s.processtimeout = parse_duration(&v).map_err(bad)?,
                    "retention" => s.retention = Some(parse_duration(&v).map_err(bad)?),
                    "allowedinputpaths" => {
                        let base = path.parent().unwrap_or(Path::new(""));
                        s.allowedinputpaths = super::values::parse_paths(&v, base);
                    }
                    "allowedhosts" => {
                        s.allowedhosts = split_list(&v)
                            .iter()
                            .map(|h| crate::model::net::HostRule::parse(h))
                            .collect::<Result<_, _>>()
                            .map_err(bad)?;
                    }
                    "jobaccess" => {
                        s.jobaccess = match v.trim().to_ascii_lowercase().as_str() {
                            "all" => JobAccess::All,
                            "owner" => JobAccess::Owner,
                            _ => return Err(bad(format!("'{v}': expected 'all' or 'owner'"))),
                        }
                    }
                    "jobadmins" => s.jobadmins = split_list(&v),
                    "apiprefix" => s.apiprefix = parse_segment(&v).map_err(bad)?,
                    "jobstore" => {
                        let t = v.trim();
                        s.jobstore = if t.is_empty() || t.eq_ignore_ascii_case("file") {
                            None
                        } else {
                            Some((ConnString(t.to_owned()), line))
                        }
                    }
                    "jobstorepassfile" => {
                        s.jobstorepassfile = (!v.trim().is_empty())
                            .then(|| path.parent().unwrap_or(Path::new("")).join(v.trim()))
                    }
                    "jobstoreconnections" => {
                        s.jobstoreconnections = match v.trim().parse::<u32>() {
                            Ok(n) if (1..=64).contains(&n) => n,
                            _ => return Err(bad(format!("'{v}': expected 1 to 64"))),
                        }
                    }
                    "joblease" => {
                        s.joblease = parse_duration(&v).map_err(bad)?;
                        if s.joblease < Duration::from_secs(3) {
                            return Err(bad(format!("'{v}': at least 3s")));
                        }
                    }
                    "language" => {
                        let langs = split_list(&v);
                        if let Some(l) = langs.iter().find(|l| !is_language_tag(l)) {
                            return Err(bad(format!("'{l}' is not a valid language tag")));
                        }
                        if !langs.is_empty() {
                            s.languages = langs;
                        }
                    }
                    _ => *cfg.metadata.field(key).expect("metadata key") = v,
                }
            }
        }
        if let Some(s) = cfg.slurm.as_ref().filter(|_| !cfg.uses_slurm()) {
            cfg.warnings.push(format!(
                "{p}:{}: [slurm] is set but no process has 'dispatch = slurm'",
                s.line
            ));
        }
        Ok(cfg)
    }

    /// Validates the `[processes] builtin` list against the identifiers of the built-in processes.
    pub fn check_processes(&self, known: &[&str]) -> Result<(), ConfigError> {
        if let Some((id, _, line)) = self
            .process_timeouts
            .iter()
            .find(|(id, _, _)| !known.contains(&id.as_str()))
        {
            return Err(ConfigError::at(
                &self.path,
                *line,
                format!("[processes] {id}.timeout: unknown process '{id}'"),
            ));
        }
        if let Some((id, _, line)) = self
            .process_dispatch
            .iter()
            .find(|(id, _, _)| !known.contains(&id.as_str()))
        {
            return Err(ConfigError::at(
                &self.path,
                *line,
                format!("[processes] {id}.dispatch: unknown process '{id}'"),
            ));
        }
        let ProcessSelection::List(ids) = &self.processes else {
            return Ok(());
        };
        match ids.iter().find(|id| !known.contains(&id.as_str())) {
            None => Ok(()),
            Some(id) => Err(ConfigError {
                path: self.path.clone(),
                line: self.processes_line,
                message: format!(
                    "[processes] builtin: unknown process '{id}'; known processes: {}",
                    known.join(", ")
                ),
            }),
        }
    }
}

impl ServiceConfig {
    /// Where the asynchronous jobs of process `id` run: `[processes] ID.dispatch`, else the
    /// `dispatch` of its `[process:ID]` section, else locally.
    pub fn dispatch_for(&self, id: &str) -> super::slurm::Dispatch {
        self.process_dispatch
            .iter()
            .find(|(p, _, _)| p == id)
            .map(|(_, d, _)| *d)
            .or_else(|| {
                self.commands
                    .iter()
                    .find(|c| c.description.identifier == id)
                    .map(|c| c.dispatch)
            })
            .unwrap_or_default()
    }

    /// Whether any process dispatches its jobs to Slurm.
    pub fn uses_slurm(&self) -> bool {
        self.process_dispatch
            .iter()
            .any(|(_, d, _)| *d == super::slurm::Dispatch::Slurm)
            || self
                .commands
                .iter()
                .any(|c| c.dispatch == super::slurm::Dispatch::Slurm)
    }

    /// `[slurm]`, or its defaults.
    pub fn slurm_config(&self) -> SlurmConfig {
        self.slurm.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<ServiceConfig, ConfigError> {
        ServiceConfig::parse(t, Path::new("/etc/wps/wps.cfg"))
    }

    fn err(t: &str) -> (Option<usize>, String) {
        let e = parse(t).unwrap_err();
        assert_eq!(e.path, Path::new("/etc/wps/wps.cfg"));
        (e.line, e.message)
    }

    /// The stock pywps.cfg of a PyWPS deployment (shared with the configtest integration test).
    const PYWPS: &str = include_str!("../../tests/data/pywps.cfg");

    #[test]
    fn pywps_default_config() {
        let c = parse(PYWPS).unwrap();
        let m = &c.metadata;
        assert_eq!(m.title, "PyWPS Processing Service");
        assert!(
            m.abstract_.starts_with("PyWPS is an implementation")
                && m.abstract_.ends_with("Python.")
        );
        assert_eq!(m.keywords, ["PyWPS", "WPS", "OGC", "processing"]);
        assert_eq!(
            (
                m.keywords_type.as_str(),
                m.fees.as_str(),
                m.access_constraints.as_str()
            ),
            ("theme", "NONE", "NONE")
        );
        assert_eq!(
            (m.provider_name.as_str(), m.provider_url.as_str()),
            ("PyWPS Developement Team", "https://pywps.org/")
        );
        assert_eq!(m.contact_stateorprovince, "None");
        assert_eq!(m.contact_postalcode, "000 00");
        assert_eq!(m.contact_country, "World, Internet");
        assert_eq!(m.contact_hours, "8:00-20:00UTC");
        assert_eq!(m.contact_role, "pointOfContact");
        assert_eq!(m.contact_email, "contact@yourdomain.org");
        let s = &c.server;
        assert_eq!(s.url.as_deref(), Some("http://localhost:5000/wps"));
        assert_eq!(
            s.outputurl.as_deref(),
            Some("http://localhost:5000/outputs/")
        );
        assert_eq!(s.outputpath.as_deref(), Some(Path::new("/etc/wps/outputs")));
        assert_eq!(s.workdir.as_deref(), Some(Path::new("/etc/wps/workdir")));
        assert_eq!((s.maxsingleinputsize, s.maxrequestsize), (1 << 20, 3 << 20));
        assert_eq!((s.maxprocesses, s.parallelprocesses), (10, 2));
        assert_eq!(s.languages, ["en-US"]);
        assert_eq!(c.processes, ProcessSelection::All);
        assert_eq!(c.processes_line, None);
        assert_eq!(
            c.warnings,
            [
                "/etc/wps/wps.cfg:32: [server] key 'wd_inp_subdir' is not supported by mod_wps and is ignored",
                "/etc/wps/wps.cfg:33: [server] key 'wd_out_subdir' is not supported by mod_wps and is ignored",
                "/etc/wps/wps.cfg:37: section [processing] is not used by mod_wps and is ignored",
                "/etc/wps/wps.cfg:40: section [logging] is not used by mod_wps and is ignored",
            ]
        );
    }

    #[test]
    fn time_limits_and_retention() {
        let c = parse(
            "[server]\nprocesstimeout = 10m\nretention = 7d\n[processes]\nsleep.timeout = 2s\n",
        )
        .unwrap();
        assert_eq!(c.server.processtimeout, Duration::from_secs(600));
        assert_eq!(c.server.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.timeout_for("sleep"), Duration::from_secs(2));
        assert_eq!(c.timeout_for("say_hello"), Duration::from_secs(600));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(err("[server]\nprocesstimeout = soon\n").0, Some(2));
        assert_eq!(err("[processes]\n\nsleep.timeout = 0\n").0, Some(3));
        let c = parse("[processes]\nnope.timeout = 5\n").unwrap();
        let e = c.check_processes(&["sleep"]).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("'nope'"));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1y").is_err());
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.metadata, Metadata::default());
        assert_eq!(c.metadata.title, "mod_wps Processing Service");
        assert_eq!(
            (c.metadata.fees.as_str(), c.metadata.keywords_type.as_str()),
            ("NONE", "theme")
        );
        assert_eq!(c.server, Server::default());
        assert_eq!(
            (c.server.maxsingleinputsize, c.server.maxrequestsize),
            (1048576, 3145728)
        );
        assert_eq!((c.server.parallelprocesses, c.server.maxprocesses), (2, 30));
        assert_eq!(c.server.url, None);
        assert_eq!(c.processes, ProcessSelection::All);
        assert!(c.warnings.is_empty());
        // empty values of optional settings mean "unset"
        let c = parse("[server]\nurl =\noutputpath=\nlanguage = \n").unwrap();
        assert_eq!((c.server.url, c.server.outputpath), (None, None));
        assert_eq!(c.server.languages, ["en-US"]);
    }

    #[test]
    fn server_values() {
        let c = parse("[server]\nurl = HTTPS://x/wps\nmaxprocesses = -1\nparallelprocesses=0\nlanguage = de-DE, en ,\nworkdir = /abs/wd\nmaxrequestsize = 2.5 MB\n").unwrap();
        assert_eq!(c.server.url.as_deref(), Some("HTTPS://x/wps"));
        assert_eq!(
            (c.server.maxprocesses, c.server.parallelprocesses),
            (u32::MAX, 0)
        );
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with(
                "/etc/wps/wps.cfg:4: [server] parallelprocesses = 0: no process will run"
            ),
            "{:?}",
            c.warnings
        );
        assert_eq!(c.server.languages, ["de-DE", "en"]);
        assert_eq!(c.server.workdir.as_deref(), Some(Path::new("/abs/wd")));
        assert_eq!(c.server.maxrequestsize, 2621440);
        let c = ServiceConfig::parse("[server]\noutputpath = out\n", Path::new("wps.cfg")).unwrap();
        assert_eq!(c.server.outputpath.as_deref(), Some(Path::new("out")));
    }

    #[test]
    fn value_errors_carry_line() {
        let (l, m) = err("[server]\n\nmaxsingleinputsize = lots\n");
        assert_eq!(l, Some(3));
        assert!(
            m.contains("maxsingleinputsize") && m.contains("lots"),
            "{m}"
        );
        assert_eq!(err("[server]\nmaxrequestsize = 3tb\n").0, Some(2));
        assert_eq!(err("[server]\nurl=x\nmaxprocesses = -2\n").0, Some(2));
        let (l, m) = err("[server]\nmaxprocesses = -2\n");
        assert!(l == Some(2) && m.contains("non-negative"), "{m}");
        assert_eq!(err("[server]\nparallelprocesses = two\n").0, Some(2));
        assert_eq!(
            err("[server]\nparallelprocesses = 99999999999\n").0,
            Some(2)
        );
        let (l, m) = err("[server]\n\n\noutputurl = ftp://host/out\n");
        assert!(l == Some(4) && m.contains("http://"), "{m}");
        let (l, m) = err("[server]\nlanguage = en-US, de_DE\n");
        assert!(l == Some(2) && m.contains("'de_DE'"), "{m}");
        let (l, m) = err("[processes]\nbuiltin = \n");
        assert!(l == Some(2) && m.contains("builtin"), "{m}");
        assert_eq!(err("[processes]\nbuiltin = , ,\n").0, Some(2));
    }

    #[test]
    fn syntax_errors_are_reported_with_path_and_line() {
        let e = parse("[server]\nurl = http://a\n[server]\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(
            e.to_string()
                .starts_with("/etc/wps/wps.cfg:3: duplicate section [server]"),
            "{e}"
        );
        assert_eq!(err("[server]\nurl = http://a\nURL = http://b\n").0, Some(3));
        assert_eq!(err("url = http://a\n").0, Some(1));
        assert_eq!(err("[server]\nthis is junk\n").0, Some(2));
        let (l, m) = err("[server]\nworkdir = %(base)s/wd\n");
        assert!(l == Some(2) && m.contains("'base'"), "{m}");
    }

    #[test]
    fn interpolation_default_and_continuation() {
        let t = "[DEFAULT]\nbase = /srv/wps\nhost = http://example.org\n\n[server]\nurl = %(host)s/wps\noutputurl = %(host)s/out/\nworkdir = %(base)s/work\n\n[metadata:main]\nidentification_abstract = first line\n  second line\n    third 100%%\nidentification_keywords = a,\n  b, c\n";
        let c = parse(t).unwrap();
        assert_eq!(c.server.url.as_deref(), Some("http://example.org/wps"));
        assert_eq!(
            c.server.outputurl.as_deref(),
            Some("http://example.org/out/")
        );
        assert_eq!(
            c.server.workdir.as_deref(),
            Some(Path::new("/srv/wps/work"))
        );
        assert_eq!(c.metadata.abstract_, "first line\nsecond line\nthird 100%");
        assert_eq!(c.metadata.keywords, ["a", "b", "c"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // DEFAULT values apply to honoured keys of present sections
        let c = parse("[DEFAULT]\nmaxprocesses = 7\n[server]\n").unwrap();
        assert_eq!(c.server.maxprocesses, 7);
    }

    #[test]
    fn environment_expansion() {
        let env = |n: &str| (n == "MOD_WPS_CFG_TEST_HOST").then(|| "wps.example.org".to_string());
        let c = ServiceConfig::parse_with_env("[server]\nurl = https://${MOD_WPS_CFG_TEST_HOST}/wps\noutputurl = https://$MOD_WPS_CFG_TEST_HOST/o/$MOD_WPS_CFG_UNSET\n", Path::new("/w.cfg"), &env).unwrap();
        assert_eq!(c.server.url.as_deref(), Some("https://wps.example.org/wps"));
        assert_eq!(
            c.server.outputurl.as_deref(),
            Some("https://wps.example.org/o/$MOD_WPS_CFG_UNSET")
        );
    }

    #[test]
    fn warnings_for_unsupported_keys_and_sections() {
        let c = parse("[metadata:main]\nfoo = 1\n[server]\nsethomedir = true\ntemp_path = /tmp\n[grass]\ngisbase = /x\n[processes]\nbuiltin = all\nextra = 1\n").unwrap();
        assert_eq!(
            c.warnings,
            [
                "/etc/wps/wps.cfg:2: [metadata:main] key 'foo' is not supported by mod_wps and is ignored",
                "/etc/wps/wps.cfg:4: [server] key 'sethomedir' is not supported by mod_wps and is ignored",
                "/etc/wps/wps.cfg:5: [server] key 'temp_path' is not supported by mod_wps and is ignored",
                "/etc/wps/wps.cfg:6: section [grass] is not used by mod_wps and is ignored",
                "/etc/wps/wps.cfg:10: [processes] key 'extra' is not supported by mod_wps and is ignored",
            ]
        );
        assert_eq!(
            (c.processes, c.processes_line),
            (ProcessSelection::All, Some(9))
        );
    }

    #[test]
    fn process_selection_and_check() {
        let c = parse("[processes]\n\nbuiltin = echo, sleep , echo\n").unwrap();
        assert_eq!(
            c.processes,
            ProcessSelection::List(vec!["echo".into(), "sleep".into()])
        );
        assert!(c.check_processes(&["echo", "sleep", "buffer"]).is_ok());
        let e = c.check_processes(&["echo", "buffer"]).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(
            e.to_string(),
            "/etc/wps/wps.cfg:3: [processes] builtin: unknown process 'sleep'; known processes: echo, buffer"
        );
        assert!(parse("[processes]\nbuiltin = ALL\n")
            .unwrap()
            .check_processes(&[])
            .is_ok());
    }

    #[test]
    fn load_reads_files_and_reports_os_errors() {
        let dir = std::env::temp_dir().join(format!("mod_wps_cfg_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("wps.cfg");
        std::fs::write(&file, "[server]\noutputpath = out\n").unwrap();
        let c = ServiceConfig::load(&file).unwrap();
        assert_eq!(c.path, file);
        assert_eq!(c.server.outputpath, Some(dir.join("out")));
        let e = ServiceConfig::load(&dir.join("missing.cfg")).unwrap_err();
        assert_eq!(e.line, None);
        assert!(
            e.to_string().starts_with(&format!(
                "{}: cannot read",
                dir.join("missing.cfg").display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("3mb"), Ok(3 << 20));
        assert_eq!(parse_size("1 GB"), Ok(1 << 30));
        assert_eq!(parse_size("100kb"), Ok(102400));
        assert_eq!(parse_size("512k"), Ok(524288));
        assert_eq!(parse_size("1048576"), Ok(1048576));
        assert_eq!(parse_size(" 10B "), Ok(10));
        assert_eq!(parse_size("2.5mb"), Ok(2621440));
        assert_eq!(parse_size("0.5k"), Ok(512));
        for bad in [
            "",
            "mb",
            "abc",
            "1.2.3mb",
            "-1mb",
            "3tb",
            "3 m b",
            ".5mb",
            "99999999999999999999gb",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("3tb").unwrap_err().contains("3tb"));
    }
}
