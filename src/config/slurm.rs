//! Where asynchronous jobs run: `dispatch = local | slurm` per process (`[process:ID] dispatch`,
//! `[processes] ID.dispatch`), and the `[slurm]` section (partition, extra `sbatch` options,
//! how many jobs at most in Slurm).

use super::ini::Section;
use super::programs::{split_words, Getter};
use super::values::ConfigError;
use std::path::Path;

/// Where the asynchronous jobs of a process run. Synchronous Execute always runs in Apache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dispatch {
    /// On the worker pool of the Apache child that claims the job (the default).
    #[default]
    Local,
    /// Submitted to Slurm with `sbatch`, run there by `mod_wps-worker`.
    Slurm,
}

impl Dispatch {
    pub fn parse(v: &str) -> Result<Dispatch, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Dispatch::Local),
            "slurm" => Ok(Dispatch::Slurm),
            _ => Err(format!("'{v}': expected 'local' or 'slurm'")),
        }
    }
}

/// The Slurm client programs mod_wps runs (looked up in `/usr/local/bin:/usr/bin:/bin`).
pub const CLIENT_PROGRAMS: [&str; 3] = ["sbatch", "squeue", "scancel"];

/// The program Slurm runs for a job, installed next to the module.
pub const WORKER: &str = "mod_wps-worker";

/// The Slurm client programs (`sbatch`, `squeue`, `scancel`), in that order.
pub fn client_programs() -> Result<[std::path::PathBuf; 3], String> {
    let find = |name: &str| {
        super::programs::resolve_program(name, Path::new("/")).map_err(|m| {
            format!(
                "{m}: dispatch = slurm needs Slurm's client programs (Debian package slurm-client)"
            )
        })
    };
    Ok([
        find(CLIENT_PROGRAMS[0])?,
        find(CLIENT_PROGRAMS[1])?,
        find(CLIENT_PROGRAMS[2])?,
    ])
}

/// The worker's path is the interpreter line (`#!`) of every batch script: the kernel reads
/// at most 127 bytes of it and splits it at whitespace.
pub fn check_worker_path(worker: &Path) -> Result<(), String> {
    let s = worker.to_string_lossy();
    if s.len() > 120 || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "{WORKER} is at {s}: a path with whitespace or longer than 120 bytes cannot be the interpreter line of a batch script; install it elsewhere"
        ));
    }
    Ok(())
}

/// The keys of `[slurm]`.
pub const SLURM_KEYS: &[&str] = &["partition", "options", "maxjobs"];

/// The default of `[slurm] maxjobs`.
pub const DEFAULT_MAX_JOBS: u32 = 100;

/// `[slurm]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmConfig {
    /// `partition`: the partition jobs are submitted to (default: Slurm's default partition).
    pub partition: Option<String>,
    /// `options`: more `sbatch` options, one argument per word (double quotes group; no shell).
    pub options: Vec<String>,
    /// `maxjobs`: how many jobs of this service may be in Slurm at once (pending or running);
    /// more wait in mod_wps's queue.
    pub maxjobs: u32,
    /// The line of the section header (0: no section).
    pub line: usize,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            options: Vec::new(),
            maxjobs: DEFAULT_MAX_JOBS,
            line: 0,
        }
    }
}

/// `sbatch` options mod_wps sets itself or that would break what it relies on: one job (no
/// array), not re-run by Slurm behind mod_wps's attempt count, named by mod_wps, its script
/// (no `--wrap` shell), no waiting in `sbatch`.
const RESERVED: &[(&str, Option<&str>, &str)] = &[
    (
        "--requeue",
        None,
        "Slurm must not re-run a job behind mod_wps's attempt count",
    ),
    ("--no-requeue", None, "mod_wps always sets it"),
    ("--parsable", None, "mod_wps always sets it"),
    (
        "--job-name",
        Some("-J"),
        "mod_wps names its jobs (wps-<job id>.<attempt>) to find them again",
    ),
    (
        "--wrap",
        None,
        "jobs run mod_wps-worker directly, never through a shell",
    ),
    ("--array", Some("-a"), "a job is one Slurm job"),
    ("--wait", Some("-W"), "sbatch must return at once"),
    ("--test-only", None, "the job would never run"),
    ("--partition", Some("-p"), "use the 'partition' key"),
];

/// Why an `sbatch` option may not be given in `options`, if it may not.
pub fn reserved_option(word: &str) -> Option<String> {
    for (long, short, why) in RESERVED {
        let long_hit = word == *long || word.starts_with(&format!("{long}="));
        let short_hit = short.is_some_and(|s| !word.starts_with("--") && word.starts_with(s));
        if long_hit || short_hit {
            return Some(format!(
                "the sbatch option '{word}' is not allowed here: {why}"
            ));
        }
    }
    None
}

/// A partition name (or a comma-separated list of them) as `sbatch --partition` takes it.
fn valid_partition(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 200
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c))
}

/// Parses the `[slurm]` section.
pub fn parse_section(
    section: &Section,
    path: &Path,
    get: &Getter,
) -> Result<SlurmConfig, ConfigError> {
    let mut cfg = SlurmConfig {
        line: section.line,
        ..Default::default()
    };
    for e in &section.entries {
        let (value, line) = get(&e.key)?.unwrap_or_else(|| (e.value.clone(), e.line));
        let bad = |m: String| ConfigError::at(path, line, format!("[slurm] {}: {m}", e.raw_key));
        match e.key.as_str() {
            "partition" => {
                let p = value.trim();
                if !valid_partition(p) {
                    return Err(bad(format!(
                        "'{p}' is not a partition name (letters, digits, _ - . and commas)"
                    )));
                }
                cfg.partition = Some(p.to_owned());
            }
            "options" => {
                let words = split_words(&value).map_err(bad)?;
                if let Some(first) = words.first().filter(|w| !w.starts_with('-')) {
                    return Err(bad(format!(
                        "'{first}' is not an sbatch option (options start with - or --)"
                    )));
                }
                if let Some(m) = words.iter().find_map(|w| reserved_option(w)) {
                    return Err(bad(m));
                }
                cfg.options = words;
            }
            "maxjobs" => {
                cfg.maxjobs = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(format!("'{value}' is not a positive integer")))?;
            }
            _ => {
                return Err(bad(format!(
                    "unknown key (known: {})",
                    SLURM_KEYS.join(", ")
                )))
            }
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use crate::config::service::ServiceConfig;
    use crate::config::slurm::{Dispatch, DEFAULT_MAX_JOBS};
    use std::path::Path;

    fn parse(t: &str) -> Result<ServiceConfig, crate::config::ConfigError> {
        ServiceConfig::parse(t, Path::new("/etc/wps/wps.cfg"))
    }

    fn err(t: &str) -> (Option<usize>, String) {
        let e = parse(t).unwrap_err();
        assert_eq!(e.path, Path::new("/etc/wps/wps.cfg"));
        (e.line, e.message)
    }

    #[test]
    fn the_slurm_section_and_dispatch_keys_parse() {
        let c = parse(
            "[processes]\nsleep.dispatch = slurm\nsay_hello.dispatch = Local\n\
             [slurm]\npartition = debug\noptions = --mem=1G \"--comment=a b\" --qos normal\nmaxjobs = 5\n",
        )
        .unwrap();
        let s = c.slurm.as_ref().unwrap();
        assert_eq!(s.partition.as_deref(), Some("debug"));
        assert_eq!(s.options, ["--mem=1G", "--comment=a b", "--qos", "normal"]);
        assert_eq!((s.maxjobs, s.line), (5, 4));
        assert_eq!(c.dispatch_for("sleep"), Dispatch::Slurm);
        assert_eq!(c.dispatch_for("say_hello"), Dispatch::Local);
        assert_eq!(c.dispatch_for("area"), Dispatch::Local);
        assert!(c.uses_slurm());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        c.check_processes(&["sleep", "say_hello"]).unwrap();
        // defaults: no [slurm] section is needed to dispatch
        let c = parse("[processes]\nsleep.dispatch = slurm\n").unwrap();
        assert_eq!(c.slurm_config().maxjobs, DEFAULT_MAX_JOBS);
        assert_eq!(c.slurm_config().partition, None);
        assert!(!parse("").unwrap().uses_slurm());
    }

    #[test]
    fn a_command_process_dispatches_in_its_own_section() {
        let c = parse(
            "[processes]\nbuiltin = sleep\n[process:echo]\ncommand = /bin/echo {x}\ninput.x = literal string\n\
             output.out = literal string\ndispatch = slurm\n",
        )
        .unwrap();
        assert_eq!(c.dispatch_for("echo"), Dispatch::Slurm);
        assert_eq!(c.dispatch_for("sleep"), Dispatch::Local);
        // [processes] ID.dispatch wins
        let c = parse(
            "[processes]\nbuiltin = sleep\necho.dispatch = local\n[process:echo]\ncommand = /bin/echo {x}\n\
             input.x = literal string\noutput.out = literal string\ndispatch = slurm\n",
        )
        .unwrap();
        assert_eq!(c.dispatch_for("echo"), Dispatch::Local);
        let (l, m) = err("[process:echo]\ncommand = /bin/echo\noutput.out = literal string\ndispatch = cluster\n");
        assert!(
            l == Some(4) && m.contains("'cluster'") && m.contains("slurm"),
            "{m}"
        );
    }

    #[test]
    fn mistakes_name_the_line() {
        let (l, m) = err("[processes]\nsleep.dispatch = pbs\n");
        assert!(
            l == Some(2) && m.contains("sleep.dispatch") && m.contains("'pbs'"),
            "{m}"
        );
        let c = parse("[processes]\nnope.dispatch = slurm\n").unwrap();
        let e = c.check_processes(&["sleep"]).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("'nope'"), "{}", e.message);
        let (l, m) = err("[slurm]\n\nmaxjobs = 0\n");
        assert!(
            l == Some(3) && m.contains("maxjobs") && m.contains("positive"),
            "{m}"
        );
        let (l, m) = err("[slurm]\npartition = a b\n");
        assert!(l == Some(2) && m.contains("partition"), "{m}");
        let (l, m) = err("[slurm]\nqueue = x\n");
        assert!(
            l == Some(2) && m.contains("unknown key") && m.contains("maxjobs"),
            "{m}"
        );
        let (l, m) = err("[slurm]\noptions = --mem=1G --requeue\n");
        assert!(
            l == Some(2) && m.contains("--requeue") && m.contains("attempt"),
            "{m}"
        );
        for o in [
            "-J x",
            "--job-name=x",
            "--wrap=ls",
            "-a 1-3",
            "--array=1",
            "-pdebug",
        ] {
            let (l, m) = err(&format!("[slurm]\noptions = {o}\n"));
            assert_eq!(l, Some(2), "{o}: {m}");
            assert!(m.contains("not allowed"), "{o}: {m}");
        }
        let (l, m) = err("[slurm]\noptions = mem=1G\n");
        assert!(l == Some(2) && m.contains("not an sbatch option"), "{m}");
        let (l, m) = err("[slurm]\noptions = --comment=\"x\n");
        assert!(l == Some(2) && m.contains("quote"), "{m}");
    }

    #[test]
    fn an_unused_slurm_section_is_a_warning() {
        let c = parse("[slurm]\npartition = debug\n").unwrap();
        assert!(!c.uses_slurm());
        assert_eq!(
            c.warnings,
            ["/etc/wps/wps.cfg:1: [slurm] is set but no process has 'dispatch = slurm'"]
        );
    }
}
