//! The Slurm commands mod_wps runs, each a program with its arguments (no shell, no DRMAA, no
//! slurmdbd): `sbatch --parsable --no-requeue` with a batch script whose interpreter is
//! `mod_wps-worker`, `squeue` to follow the jobs, `scancel` to stop one.

use crate::config::slurm::{client_programs, SlurmConfig, WORKER};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a Slurm command may take before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The programs: Slurm's client and the worker.
#[derive(Debug, Clone)]
pub struct Tools {
    pub sbatch: PathBuf,
    pub squeue: PathBuf,
    pub scancel: PathBuf,
    pub worker: PathBuf,
}

impl Tools {
    pub fn find() -> Result<Tools, String> {
        let [sbatch, squeue, scancel] = client_programs()?;
        let worker = crate::processes::command::find_helper(WORKER, "the Slurm job runner")?;
        crate::config::slurm::check_worker_path(&worker)?;
        Ok(Tools {
            sbatch,
            squeue,
            scancel,
            worker,
        })
    }
}

/// The Slurm job name of an attempt of a job: how mod_wps finds it again (in `squeue`), even
/// when the Apache child that submitted it is gone.
pub fn job_name(id: &str, attempt: u32) -> String {
    format!("wps-{id}.{attempt}")
}

/// The batch script of a job. Its interpreter line is the worker, so Slurm runs the worker
/// with the script's path as its argument (no shell); the worker reads which job to run from
/// the `key=value` lines.
pub fn batch_script(
    worker: &Path,
    config: &Path,
    id: &str,
    attempt: u32,
) -> Result<String, String> {
    crate::config::slurm::check_worker_path(worker)?;
    let config = config.to_string_lossy();
    if config.contains(['\n', '\r']) {
        return Err(format!(
            "the service config path {config:?} contains a line break"
        ));
    }
    Ok(format!(
        "#!{}\n# A mod_wps job: run by {WORKER} (the interpreter above), never by a shell.\nconfig={config}\njob={id}\nattempt={attempt}\n",
        worker.display()
    ))
}

/// What the worker is asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkOrder {
    pub config: PathBuf,
    pub job: String,
    pub attempt: u32,
}

/// Reads a batch script written by `batch_script`.
pub fn parse_script(text: &str) -> Result<WorkOrder, String> {
    let mut config = None;
    let mut job = None;
    let mut attempt = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some(("config", v)) => config = Some(PathBuf::from(v)),
            Some(("job", v)) => job = Some(v.trim().to_owned()),
            Some(("attempt", v)) => {
                attempt = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| format!("attempt '{v}' is not a number"))?,
                )
            }
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    match (config, job, attempt) {
        (Some(config), Some(job), Some(attempt)) => Ok(WorkOrder {
            config,
            job,
            attempt,
        }),
        _ => Err("the script lacks config=, job= or attempt=".into()),
    }
}

/// The arguments of `sbatch` (the script comes on stdin). `options` come last, so they may
/// override the defaults (`--output`, `--chdir`).
pub fn sbatch_args(cfg: &SlurmConfig, name: &str) -> Vec<String> {
    let mut v = vec![
        "--parsable".to_owned(),
        "--no-requeue".to_owned(),
        format!("--job-name={name}"),
        "--output=/dev/null".to_owned(),
        "--chdir=/".to_owned(),
    ];
    if let Some(p) = &cfg.partition {
        v.push(format!("--partition={p}"));
    }
    v.extend(cfg.options.iter().cloned());
    v
}

/// The Slurm job id `sbatch --parsable` printed (`ID` or `ID;CLUSTER`).
pub fn parse_sbatch(stdout: &str) -> Result<String, String> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty());
    let id = line.and_then(|l| l.split(';').next()).unwrap_or("");
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
        Ok(id.to_owned())
    } else {
        Err(format!("sbatch printed no job id: {:?}", stdout.trim()))
    }
}

/// Whether an `sbatch` failure may go away by itself (the controller is down, restarting or
/// busy), so the submission is tried again, rather than a mistake (a bad option, an unknown
/// partition) that fails the job.
pub fn transient_failure(stderr: &str) -> bool {
    let e = stderr.to_ascii_lowercase();
    [
        "unable to contact slurm controller",
        "socket timed out",
        "connection refused",
        "temporarily unable",
        "temporarily unavailable",
        "try again",
        "zero bytes were transmitted",
        "timed out",
        "did not answer",
    ]
    .iter()
    .any(|m| e.contains(m))
}

/// One job as `squeue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    pub id: String,
    pub name: String,
    pub state: String,
    pub reason: String,
}

impl SlurmJob {
    /// Whether Slurm is done with it (its processes are gone).
    pub fn ended(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "CANCELLED"
                | "FAILED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "PREEMPTED"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "OUT_OF_MEMORY"
                | "REVOKED"
        )
    }
}

/// The `squeue` arguments: this user's jobs in every state (ended ones stay listed for
/// `MinJobAge`), as `id|name|state|reason`.
pub fn squeue_args() -> Vec<&'static str> {
    vec!["--me", "--noheader", "--states=all", "--format=%i|%j|%T|%r"]
}

/// mod_wps's jobs (named `wps-…`) in `squeue` output, by name. When a name is listed twice
/// (a submission whose answer was lost and was made again), an active one wins.
pub fn parse_squeue(out: &str) -> HashMap<String, SlurmJob> {
    let mut m: HashMap<String, SlurmJob> = HashMap::new();
    for line in out.lines() {
        let mut f = line.trim().splitn(4, '|');
        let (Some(id), Some(name), Some(state)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !name.starts_with("wps-") {
            continue;
        }
        let job = SlurmJob {
            id: id.to_owned(),
            name: name.to_owned(),
            // e.g. "CANCELLED by 0"
            state: state.split_whitespace().next().unwrap_or("").to_owned(),
            reason: f.next().unwrap_or("").trim().to_owned(),
        };
        match m.get(name) {
            Some(old) if !old.ended() && job.ended() => {}
            _ => {
                m.insert(name.to_owned(), job);
            }
        }
    }
    m
}

/// Why a job failed when its Slurm job ended without the worker recording an end.
pub fn ended_message(process: &str, job: &SlurmJob) -> String {
    let id = &job.id;
    let reason = match job.reason.as_str() {
        "" | "None" => String::new(),
        r => format!(" ({r})"),
    };
    let what = match job.state.as_str() {
        "CANCELLED" => format!("its Slurm job {id} was cancelled{reason}"),
        "TIMEOUT" => format!("its Slurm job {id} reached its Slurm time limit and was stopped"),
        "NODE_FAIL" => format!("its Slurm job {id} was lost: the node it ran on failed"),
        "BOOT_FAIL" => format!("its Slurm job {id} could not start: its node failed to boot"),
        "OUT_OF_MEMORY" => format!("its Slurm job {id} ran out of memory and was stopped"),
        "PREEMPTED" => format!("its Slurm job {id} was preempted"),
        "DEADLINE" => format!("its Slurm job {id} passed its deadline"),
        "FAILED" => format!("the worker of its Slurm job {id} failed{reason}"),
        "COMPLETED" => format!("the worker of its Slurm job {id} ended"),
        s => format!("its Slurm job {id} ended in state {s}{reason}"),
    };
    format!("Process '{process}' failed in Slurm: {what} before the job's end was recorded")
}

/// What a command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` with `args` (and `stdin`), killed after `timeout`.
pub fn run(
    program: &Path,
    args: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, String> {
    let name = program.display().to_string();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(data);
    }
    let reader = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = p {
                let _ = p.take(1 << 20).read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let end = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Some(s) => Ok(Output {
            success: s.success(),
            stdout,
            stderr,
        }),
        None => Err(format!(
            "{name} did not answer within {} s and was stopped",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_script_names_the_job_and_is_read_back() {
        let s = batch_script(
            Path::new("/usr/lib/apache2/modules/mod_wps-worker"),
            Path::new("/etc/wps/my wps.cfg"),
            "0b6a4f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            2,
        )
        .unwrap();
        assert!(
            s.starts_with("#!/usr/lib/apache2/modules/mod_wps-worker\n"),
            "{s}"
        );
        assert_eq!(
            parse_script(&s).unwrap(),
            WorkOrder {
                config: PathBuf::from("/etc/wps/my wps.cfg"),
                job: "0b6a4f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
                attempt: 2
            }
        );
        assert!(batch_script(Path::new("/opt/my modules/w"), Path::new("/x"), "j", 1).is_err());
        assert!(batch_script(Path::new("/w"), Path::new("/x\ny"), "j", 1).is_err());
        assert!(parse_script("#!/w\nconfig=/x\njob=j\n").is_err());
        assert!(parse_script("config=/x\njob=j\nattempt=x\n").is_err());
        assert!(parse_script("config=/x\njob=j\nattempt=1\nrm -rf /\n").is_err());
    }

    #[test]
    fn sbatch_is_asked_for_one_named_job_that_slurm_does_not_requeue() {
        let cfg = SlurmConfig {
            partition: Some("debug".into()),
            options: vec!["--mem=1G".into(), "--output=/var/log/wps/%j".into()],
            ..Default::default()
        };
        let a = sbatch_args(&cfg, &job_name("id", 3));
        assert_eq!(
            a,
            [
                "--parsable",
                "--no-requeue",
                "--job-name=wps-id.3",
                "--output=/dev/null",
                "--chdir=/",
                "--partition=debug",
                "--mem=1G",
                "--output=/var/log/wps/%j"
            ]
        );
        assert_eq!(parse_sbatch("42\n").unwrap(), "42");
        assert_eq!(parse_sbatch("42;cluster\n").unwrap(), "42");
        assert!(parse_sbatch("").is_err());
        assert!(parse_sbatch("Submitted batch job 42").is_err());
        assert!(transient_failure(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!transient_failure(
            "sbatch: error: Batch job submission failed: Invalid partition name specified"
        ));
    }

    #[test]
    fn squeue_output_is_read_by_job_name() {
        let out = "7|wps-a.1|RUNNING|None\n8|other|PENDING|Priority\n9|wps-b.1|CANCELLED by 0|None\n\
                   10|wps-c.1|COMPLETED|None\n11|wps-c.1|PENDING|Resources\n12|wps-d.2|PENDING|(null)|x\n";
        let m = parse_squeue(out);
        assert_eq!(m.len(), 4);
        assert!(!m.contains_key("other"));
        assert_eq!(m["wps-a.1"].state, "RUNNING");
        assert!(!m["wps-a.1"].ended());
        assert_eq!(m["wps-b.1"].state, "CANCELLED");
        assert!(m["wps-b.1"].ended());
        assert_eq!(m["wps-c.1"].id, "11", "the active one of two wins");
        assert_eq!(m["wps-d.2"].reason, "(null)|x");
        let msg = ended_message("sleep", &m["wps-b.1"]);
        assert_eq!(
            msg,
            "Process 'sleep' failed in Slurm: its Slurm job 9 was cancelled before the job's end was recorded"
        );
        let nf = SlurmJob {
            id: "5".into(),
            name: "wps-x.1".into(),
            state: "NODE_FAIL".into(),
            reason: "NodeDown".into(),
        };
        assert!(ended_message("p", &nf).contains("the node it ran on failed"));
    }

    #[test]
    fn commands_run_without_a_shell_and_are_stopped_at_their_timeout() {
        let out = run(
            Path::new("/bin/echo"),
            &["a;b".into(), "$(x)".into()],
            None,
            COMMAND_TIMEOUT,
        )
        .unwrap();
        assert!(out.success);
        assert_eq!(out.stdout, "a;b $(x)\n");
        let out = run(Path::new("/bin/cat"), &[], Some(b"script"), COMMAND_TIMEOUT).unwrap();
        assert_eq!(out.stdout, "script");
        let t = Instant::now();
        let e = run(
            Path::new("/bin/sleep"),
            &["5".into()],
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(run(Path::new("/nonexistent"), &[], None, COMMAND_TIMEOUT).is_err());
    }
}
