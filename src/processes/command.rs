//! Command-line processes declared in the service config (`[process:ID]` sections).
//!
//! A declaration names the inputs and outputs of the process and an argv template such as
//! `gdalinfo -json {input:raster}`. The template is split into words when the config is loaded;
//! at run time every placeholder is replaced by a value *inside its word*, so each value is
//! exactly one argv element (or part of one) and is never seen by a shell: the program is started
//! with `std::process::Command`, in a fresh job directory, with a cleared environment and in its
//! own process group, which is killed as a whole at the time limit or on cancellation.

use crate::config::process::{CommandSpec, Piece, Source, PATH};
use crate::config::ConfigError;
use crate::model::format::extension_for;
use crate::model::LogLevel;
use crate::model::{
    Context, DataSpec, Inputs, OutputSpec, OutputValue, Outputs, Process, ProcessDescription,
    ProcessError, Value,
};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Largest stdout kept (an output read from stdout may not be larger).
const MAX_STDOUT: usize = 256 << 20;
/// How much of the end of stderr is kept for the error log.
const MAX_STDERR: usize = 64 << 10;
/// The stderr tail shown to the client: lines and bytes.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2048;
/// How long to wait for stdout/stderr to close after the process group is gone.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// A command-line process.
pub struct CommandProcess {
    spec: CommandSpec,
    /// Where job directories are made (`<workdir>/jobs`).
    jobs: PathBuf,
}

/// Removes a job directory when dropped.
struct JobDir(PathBuf);

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn failed(m: impl Into<String>) -> ProcessError {
    ProcessError::Failed(m.into())
}

/// Replaces characters XML 1.0 cannot carry (control characters other than tab and newlines).
pub fn xml_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// `PROGRESS <0-100> <message>` lines on stdout.
pub fn parse_progress(line: &[u8]) -> Option<(u32, String)> {
    let line = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\n', '\r']);
    let rest = line.strip_prefix("PROGRESS ")?;
    let (pct, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let pct = pct.parse::<u32>().ok().filter(|p| *p <= 100)?;
    Some((pct, xml_safe(msg.trim())))
}

/// The last lines of stderr for the client: at most `TAIL_LINES` lines and `TAIL_BYTES` bytes.
pub fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    let mut tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if tail.len() > TAIL_BYTES {
        let mut cut = tail.len() - TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    xml_safe(&tail)
}

/// SIGKILL to the process group `pgid` (the child leads its own group, so that is its pid).
/// Only called while the group leader is not yet reaped, so the id cannot have been reused.
fn kill_group(pgid: u32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // ESRCH (the group is already gone) is fine.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// The state letter of a process from /proc (`Z` for an exited, unreaped child).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Reaps the child once it has exited, after killing what is left of its process group
/// (while the leader is a zombie, its pid, and so the group id, cannot be reused).
fn reap_if_exited(child: &mut Child, have_proc: bool) -> std::io::Result<Option<ExitStatus>> {
    if !have_proc {
        return child.try_wait();
    }
    match proc_state(child.id()) {
        Some('Z') | None => {
            kill_group(child.id());
            child.wait().map(Some)
        }
        Some(_) => Ok(None),
    }
}

/// Kills the group of a child that still runs and reaps it.
fn kill_and_reap(child: &mut Child) {
    kill_group(child.id());
    let _ = child.wait();
}

impl CommandProcess {
    pub fn new(spec: CommandSpec, jobs: PathBuf) -> Self {
        CommandProcess { spec, jobs }
    }

    pub fn spec(&self) -> &CommandSpec {
        &self.spec
    }

    /// The path of the file of output `id` in job directory `dir`.
    fn output_path(&self, dir: &Path, o: &OutputSpec) -> PathBuf {
        let ext = match &o.data {
            DataSpec::Complex { formats, .. } => extension_for(&formats[0].mime_type),
            _ => "txt",
        };
        dir.join("out").join(format!("{}.{ext}", o.identifier))
    }

    /// Writes the complex inputs into `dir/in/` and expands the argv template.
    pub fn argv(&self, inputs: &Inputs, dir: &Path) -> Result<Vec<String>, ProcessError> {
        let desc = &self.spec.description;
        // per input: its values as they appear in argv, and CRSs of bounding boxes
        let mut values: Vec<(&str, Vec<String>, Vec<String>)> = Vec::new();
        for spec in &desc.inputs {
            let id = spec.identifier.as_str();
            let mut vals = Vec::new();
            let mut crss = Vec::new();
            for (n, v) in inputs
                .0
                .iter()
                .filter(|(k, _)| k == id)
                .map(|(_, v)| v)
                .enumerate()
            {
                match v {
                    Value::Literal(s) => vals.push(s.clone()),
                    Value::BoundingBox(b) => {
                        let c: Vec<String> =
                            b.lower.iter().chain(&b.upper).map(f64::to_string).collect();
                        vals.push(c.join(","));
                        crss.push(b.crs.clone().unwrap_or_default());
                    }
                    Value::Complex(c) => {
                        let data = if c
                            .encoding
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case("base64"))
                        {
                            use base64::Engine;
                            let text: String =
                                c.content.chars().filter(|c| !c.is_whitespace()).collect();
                            base64::engine::general_purpose::STANDARD
                                .decode(text)
                                .map_err(|e| failed(format!("input '{id}': bad base64: {e}")))?
                        } else {
                            c.content.clone().into_bytes()
                        };
                        let ext = extension_for(c.mime_type.as_deref().unwrap_or(""));
                        let name = if n == 0 {
                            format!("{id}.{ext}")
                        } else {
                            format!("{id}-{}.{ext}", n + 1)
                        };
                        let p = dir.join("in").join(name);
                        std::fs::write(&p, data).map_err(|e| {
                            failed(format!("cannot write input '{id}' to {}: {e}", p.display()))
                        })?;
                        vals.push(p.to_string_lossy().into_owned());
                    }
                }
            }
            values.push((id, vals, crss));
        }
        let get = |id: &str| values.iter().find(|(i, _, _)| *i == id);
        let mut argv = Vec::new();
        for word in &self.spec.args {
            let counts: Vec<usize> = word
                .iter()
                .filter_map(Piece::input)
                .map(|i| get(i).map_or(0, |v| v.1.len()))
                .collect();
            if counts.contains(&0) {
                continue; // an absent optional input: the word is left out
            }
            let repeat = counts.iter().copied().max().unwrap_or(1);
            for k in 0..repeat {
                let mut s = String::new();
                for p in word {
                    let pick =
                        |l: &Vec<String>| l.get(k).or(l.first()).cloned().unwrap_or_default();
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Workdir => s.push_str(&dir.to_string_lossy()),
                        Piece::Value(i) | Piece::InputFile(i) => {
                            s.push_str(&get(i).map(|v| pick(&v.1)).unwrap_or_default())
                        }
                        Piece::Crs(i) => {
                            s.push_str(&get(i).map(|v| pick(&v.2)).unwrap_or_default())
                        }
                        Piece::OutputFile(o) => {
                            let spec = desc.output(o).expect("checked at load");
                            s.push_str(&self.output_path(dir, spec).to_string_lossy());
                        }
                    }
                }
                if s.contains('\0') {
                    return Err(failed("an input value contains a NUL character"));
                }
                argv.push(s);
            }
        }
        Ok(argv)
    }

    fn run(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
        let spec = &self.spec;
        let id = &spec.description.identifier;
        std::fs::create_dir_all(&self.jobs)
            .map_err(|e| failed(format!("cannot create {}: {e}", self.jobs.display())))?;
        let dir = self.jobs.join(uuid::Uuid::new_v4().to_string());
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        for d in [&dir, &dir.join("in"), &dir.join("out")] {
            builder
                .create(d)
                .map_err(|e| failed(format!("cannot create {}: {e}", d.display())))?;
        }
        let _cleanup = JobDir(dir.clone());
        let args = self.argv(inputs, &dir)?;
        ctx.log(
            LogLevel::Debug,
            &format!(
                "process '{id}': running {} {args:?} in {}",
                spec.program.display(),
                dir.display()
            ),
        );
        let mut child = std::process::Command::new(&spec.program)
            .args(&args)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &dir)
            .env("TMPDIR", &dir)
            .env("LANG", "C.UTF-8")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", spec.program.display())))?;
        // stdout: PROGRESS lines go to the job's status, the rest is kept
        let (out_tx, out_rx) = mpsc::channel();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let pctx = ctx.clone();
        std::thread::spawn(move || {
            let (mut buf, mut line, mut overflow) = (Vec::new(), Vec::new(), false);
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if let Some((pct, msg)) = parse_progress(&line) {
                    let _ = pctx.progress(pct, &msg);
                } else if buf.len() + line.len() > MAX_STDOUT {
                    overflow = true;
                } else {
                    buf.extend_from_slice(&line);
                }
            }
            let _ = out_tx.send((buf, overflow));
        });
        // stderr: the last MAX_STDERR bytes
        let (err_tx, err_rx) = mpsc::channel();
        let mut stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            let (mut buf, mut chunk, mut dropped) = (Vec::new(), [0u8; 8192], 0usize);
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_STDERR {
                    let cut = buf.len() - MAX_STDERR;
                    buf.drain(..cut);
                    dropped += cut;
                }
            }
            let _ = err_tx.send((buf, dropped));
        });
        let have_proc = proc_state(std::process::id()).is_some();
        let deadline = spec.timeout.map(|t| Instant::now() + t);
        let mut poll = Duration::from_millis(2);
        let status = loop {
            match reap_if_exited(&mut child, have_proc) {
                Ok(Some(s)) => break Some(s),
                Ok(None) => {}
                Err(e) => {
                    kill_and_reap(&mut child);
                    return Err(failed(format!("cannot wait for the command: {e}")));
                }
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                kill_and_reap(&mut child);
                break None;
            }
            let nap = deadline.map_or(poll, |d| poll.min(d - now));
            if ctx.sleep(nap).is_err() {
                kill_and_reap(&mut child);
                ctx.log(
                    LogLevel::Info,
                    &format!("process '{id}': cancelled; its process group was killed"),
                );
                return Err(ProcessError::Cancelled);
            }
            poll = (poll * 2).min(Duration::from_millis(50));
        };
        let (stdout, overflow) = out_rx.recv_timeout(PIPE_GRACE).unwrap_or_default();
        let (stderr, dropped) = err_rx.recv_timeout(PIPE_GRACE).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        let why = match status {
            None => Some(format!(
                "the command did not finish within its timeout of {} s and was killed",
                spec.timeout.unwrap_or_default().as_secs()
            )),
            Some(s) if s.success() => None,
            Some(s) => Some(
                match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(c), _) => format!("the command exited with status {c}"),
                    (None, Some(sig)) => format!("the command was killed by signal {sig}"),
                    _ => format!("the command failed ({s})"),
                },
            ),
        };
        let level = if why.is_some() {
            LogLevel::Error
        } else {
            LogLevel::Info
        };
        if dropped > 0 {
            ctx.log(
                level,
                &format!("process '{id}' stderr: ({dropped} earlier bytes not kept)"),
            );
        }
        for l in stderr.lines() {
            ctx.log(level, &format!("process '{id}' stderr: {l}"));
        }
        if let Some(why) = why {
            let tail = stderr_tail(&stderr);
            return Err(failed(if tail.is_empty() {
                format!("{why} (no output on stderr)")
            } else {
                format!("{why}; the end of its stderr:\n{tail}")
            }));
        }
        if overflow {
            return Err(failed(format!(
                "the command wrote more than {} MB to stdout",
                MAX_STDOUT >> 20
            )));
        }
        let mut outputs = Outputs::default();
        for (o, src) in spec.description.outputs.iter().zip(&spec.sources) {
            let data = match src {
                Source::Stdout => stdout.clone(),
                Source::File => {
                    let p = self.output_path(&dir, o);
                    std::fs::read(&p).map_err(|e| {
                        failed(format!(
                            "the command did not write output '{}' ({}): {e}",
                            o.identifier,
                            p.display()
                        ))
                    })?
                }
            };
            let value = match &o.data {
                DataSpec::Literal(l) => {
                    let text = xml_safe(String::from_utf8_lossy(&data).trim());
                    OutputValue::Literal(
                        l.check(&text)
                            .map_err(|e| failed(format!("output '{}': {e}", o.identifier)))?,
                    )
                }
                DataSpec::Complex { formats, .. } => OutputValue::Complex {
                    mime_type: formats[0].mime_type.clone(),
                    data,
                },
                DataSpec::BoundingBox { .. } => {
                    return Err(failed("bounding-box outputs are not supported"))
                }
            };
            outputs.0.push((o.identifier.clone(), value));
        }
        Ok(outputs)
    }
}

/// The command-line processes of a service config, with their job directories under `jobs`;
/// `taken` are the identifiers of the built-in processes the service offers.
pub fn build(
    specs: &[CommandSpec],
    taken: &[&str],
    config: &Path,
    jobs: &Path,
) -> Result<Vec<std::sync::Arc<dyn Process>>, ConfigError> {
    let mut v: Vec<std::sync::Arc<dyn Process>> = Vec::new();
    for spec in specs {
        let id = &spec.description.identifier;
        if taken.contains(&id.as_str()) {
            return Err(ConfigError {
                path: config.to_path_buf(),
                line: Some(spec.line),
                message: format!(
                    "[process:{id}] the built-in process '{id}' is enabled too (see [processes] builtin)"
                ),
            });
        }
        v.push(std::sync::Arc::new(CommandProcess::new(
            spec.clone(),
            jobs.to_path_buf(),
        )));
    }
    Ok(v)
}

impl Process for CommandProcess {
    fn description(&self) -> &ProcessDescription {
        &self.spec.description
    }

    fn execute(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
        self.run(inputs, ctx)
    }

    fn rerunnable(&self) -> bool {
        self.spec.rerunnable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::process::tests::{parse, ECHO};
    use crate::model::{BoundingBox, ComplexValue};
    use std::sync::{Arc, Mutex};

    fn lit(id: &str, v: &str) -> (String, Value) {
        (id.into(), Value::Literal(v.into()))
    }

    fn scratch() -> PathBuf {
        let d = std::env::temp_dir().join(format!("mod_wps-cmd-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(d.join("in")).unwrap();
        d
    }

    #[test]
    fn values_are_substituted_as_single_arguments() {
        let p = CommandProcess::new(parse(ECHO).unwrap(), PathBuf::from("/nowhere"));
        let dir = scratch();
        let evil = "a b; rm -rf / $(touch x) `id` \"q' \n";
        let inputs = Inputs(vec![
            lit("name", evil),
            lit("n", "1"),
            lit("n", "2"),
            (
                "box".into(),
                Value::BoundingBox(BoundingBox {
                    lower: vec![1.0, 2.5],
                    upper: vec![3.0, 4.0],
                    crs: Some("EPSG:4326".into()),
                    dimensions: Some(2),
                }),
            ),
            (
                "doc".into(),
                Value::Complex(ComplexValue {
                    mime_type: Some("application/json".into()),
                    content: "{}".into(),
                    ..Default::default()
                }),
            ),
        ]);
        let argv = p.argv(&inputs, &dir).unwrap();
        let d = dir.display();
        assert_eq!(
            argv,
            [
                "-n".to_string(),
                format!("--name={evil}"),
                format!("{evil} x"),
                "1".into(),
                "2".into(),
                // {opt} is absent: its word is left out
                "1,2.5,3,4".into(),
                "EPSG:4326".into(),
                format!("{d}/in/doc.json"),
                format!("{d}/out/copy.txt"),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("in/doc.json")).unwrap(),
            "{}"
        );
        let nul = Inputs(vec![lit("name", "a\0b")]);
        assert!(p.argv(&nul, &dir).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn progress_lines_and_tails() {
        assert_eq!(
            parse_progress(b"PROGRESS 40 half way\n"),
            Some((40, "half way".into()))
        );
        assert_eq!(
            parse_progress(b"PROGRESS 100\n"),
            Some((100, String::new()))
        );
        assert_eq!(parse_progress(b"PROGRESS 101 x\n"), None);
        assert_eq!(parse_progress(b"PROGRESS x\n"), None);
        assert_eq!(parse_progress(b"progress 5\n"), None);
        let err: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let t = stderr_tail(&err);
        assert!(t.starts_with("line 11\n") && t.ends_with("line 30"), "{t}");
        let t = stderr_tail(&"x".repeat(5000));
        assert!(t.len() <= TAIL_BYTES + 3 && t.starts_with('…'));
        assert_eq!(xml_safe("a\u{1}b\tc\n"), "a\u{fffd}b\tc\n");
    }

    fn run_cfg(cfg: &str, inputs: Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
        let jobs = std::env::temp_dir().join(format!("mod_wps-cmd-{}", uuid::Uuid::new_v4()));
        let p = CommandProcess::new(parse(cfg).unwrap(), jobs.clone());
        let r = p.execute(&inputs, ctx);
        // the job directory is gone
        assert_eq!(std::fs::read_dir(&jobs).unwrap().count(), 0);
        std::fs::remove_dir_all(jobs).unwrap();
        r
    }

    #[test]
    fn runs_commands_with_progress_outputs_and_a_clean_environment() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let ctx = Context::new(
            Default::default(),
            Arc::new(move |p, m: &str| s2.lock().unwrap().push((p, m.to_string()))),
        );
        let cfg = "[process:p]\ncommand = sh -c \"echo PROGRESS 50 half; echo $1; env | sort > $2\" sh {a} {output:env}\ninput.a = literal string\noutput.o = literal string\noutput.env = complex text/plain\nenv.EXTRA = yes\n";
        let out = run_cfg(cfg, Inputs(vec![lit("a", "x")]), &ctx).unwrap();
        assert_eq!(out.get("o"), Some(&OutputValue::Literal("x".into())));
        let Some(OutputValue::Complex { data, .. }) = out.get("env") else {
            panic!()
        };
        let env = String::from_utf8_lossy(data);
        assert!(
            env.contains("EXTRA=yes\n") && env.contains("LANG=C.UTF-8\n"),
            "{env}"
        );
        assert!(env.contains("PATH=/usr/local/bin:/usr/bin:/bin\n"), "{env}");
        assert!(!env.contains("CARGO"), "{env}");
        assert_eq!(*seen.lock().unwrap(), [(50, "half".to_string())]);
    }

    #[test]
    fn failures_timeouts_and_cancellation() {
        let ctx = Context::detached();
        let cfg = "[process:p]\ncommand = sh -c \"for i in $(seq 30); do echo err $i >&2; done; exit 3\"\noutput.o = literal string\n";
        let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
            panic!()
        };
        assert!(m.starts_with("the command exited with status 3"), "{m}");
        assert!(
            m.contains("err 11\n") && m.ends_with("err 30") && !m.contains("err 10\n"),
            "{m}"
        );
        let cfg = "[process:p]\ncommand = sh -c \"echo x; exit 0\"\noutput.o = literal integer\n";
        let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
            panic!()
        };
        assert!(m.contains("not an integer"), "{m}");
        // the timeout kills the whole group, including a grandchild holding stdout open
        let cfg = "[process:p]\ncommand = sh -c \"sleep 30 & echo started >&2; wait\"\noutput.o = literal string\ntimeout = 1s\n";
        let start = Instant::now();
        let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
            panic!()
        };
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(
            m.contains("timeout of 1 s") && m.ends_with("started"),
            "{m}"
        );
        // cancellation
        let token = Arc::new(crate::model::CancelToken::default());
        let ctx = Context::new(token.clone(), Arc::new(|_, _| {}));
        let t2 = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            t2.cancel();
        });
        let cfg = "[process:p]\ncommand = sleep 30\noutput.o = literal string\n";
        let start = Instant::now();
        assert_eq!(
            run_cfg(cfg, Inputs::default(), &ctx),
            Err(ProcessError::Cancelled)
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
