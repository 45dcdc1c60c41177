//! Command-line processes declared in the service config (`[process:ID]` sections).
//!
//! A declaration names the inputs and outputs of the process and an argv template such as
//! `gdalinfo -json {input:raster}`. The template is split into words when the config is loaded;
//! at run time every placeholder is replaced by a value *inside its word*, so each value is
//! exactly one argv element (or part of one) and is never seen by a shell: the program is started
//! with `std::process::Command`, in a fresh job directory, with a cleared environment and in its
//! own process group, under the supervisor `mod_wps-supervise` (src/bin), a child subreaper
//! that kills every process the command started when it ends or is stopped (at the time limit,
//! on cancellation, when stdout passes its limit). stdout and stderr are read in bounded chunks:
//! memory per job is bounded whatever the command writes.

mod child;
mod output;

use crate::config::process::{CommandSpec, Piece, Source, PATH};
use crate::config::ConfigError;
use crate::model::format::extension_for;
use crate::model::LogLevel;
use crate::model::{
    Context, DataSpec, Inputs, OutputSpec, OutputValue, Outputs, Process, ProcessDescription,
    ProcessError, Value,
};
pub use child::{find_helper, find_supervisor};
use child::{proc_state, reap_if_exited, stop};
use output::size_text;
pub use output::{parse_progress, stderr_tail, xml_safe, StdoutSink};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The supervisor program, installed next to the module.
pub const SUPERVISOR: &str = "mod_wps-supervise";
/// stdout and stderr are read in chunks of this size.
const READ_CHUNK: usize = 64 << 10;
/// How much of the end of stderr is kept for the error log.
const MAX_STDERR: usize = 64 << 10;
/// How long to wait for stdout/stderr to close after the process group is gone.
const PIPE_GRACE: Duration = Duration::from_secs(2);
/// How long the supervisor may take to kill everything below it after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A command-line process.
pub struct CommandProcess {
    spec: CommandSpec,
    /// Where job directories are made (`<workdir>/jobs`).
    jobs: PathBuf,
    /// The supervisor program (`mod_wps-supervise`).
    supervisor: PathBuf,
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

impl CommandProcess {
    pub fn new(spec: CommandSpec, jobs: PathBuf, supervisor: PathBuf) -> Self {
        CommandProcess {
            spec,
            jobs,
            supervisor,
        }
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
                            c.content.as_bytes().to_vec()
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
        // the supervisor runs the program (no shell) and kills all it started when it ends
        let mut child = std::process::Command::new(&self.supervisor)
            .arg(format!("--parent={}", std::process::id()))
            .arg(&spec.program)
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
            .map_err(|e| {
                failed(format!(
                    "cannot start the command supervisor {}: {e}",
                    self.supervisor.display()
                ))
            })?;
        // stdout, in chunks: PROGRESS lines go to the job's status, the rest is kept (up to
        // its limit) when an output is read from it
        let (out_tx, out_rx) = mpsc::channel();
        let mut stdout = child.stdout.take().expect("piped");
        let pctx = ctx.clone();
        let keep = spec.sources.contains(&Source::Stdout);
        let overflow = Arc::new(AtomicBool::new(false));
        let over = overflow.clone();
        let limit = spec.max_stdout;
        std::thread::spawn(move || {
            let mut sink = StdoutSink::new(keep, limit);
            let mut chunk = vec![0u8; READ_CHUNK];
            let mut report = |pct, msg: String| {
                let _ = pctx.progress(pct, &msg);
            };
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => sink.feed(&chunk[..n], &mut report),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
                if sink.overflowed() {
                    over.store(true, Ordering::SeqCst);
                }
            }
            sink.finish(&mut report);
            let _ = out_tx.send(sink);
        });
        // stderr: the last MAX_STDERR bytes
        let (err_tx, err_rx) = mpsc::channel();
        let mut stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            let (mut buf, mut chunk, mut dropped) = (Vec::new(), vec![0u8; READ_CHUNK], 0usize);
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
                    stop(&mut child, have_proc);
                    return Err(failed(format!("cannot wait for the command: {e}")));
                }
            }
            if overflow.load(Ordering::SeqCst) {
                stop(&mut child, have_proc);
                break None;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                stop(&mut child, have_proc);
                break None;
            }
            let nap = deadline.map_or(poll, |d| poll.min(d - now));
            if ctx.sleep(nap).is_err() {
                stop(&mut child, have_proc);
                ctx.log(
                    LogLevel::Info,
                    &format!(
                        "process '{id}': cancelled; the command and all it started were killed"
                    ),
                );
                return Err(ProcessError::Cancelled);
            }
            poll = (poll * 2).min(Duration::from_millis(50));
        };
        let sink = out_rx.recv_timeout(PIPE_GRACE).ok();
        let overflowed =
            overflow.load(Ordering::SeqCst) || sink.as_ref().is_some_and(|s| s.overflowed());
        let stdout = sink.map(StdoutSink::into_kept).unwrap_or_default();
        let (stderr, dropped) = err_rx.recv_timeout(PIPE_GRACE).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        let why = match status {
            _ if overflowed => Some(format!(
                "the command wrote more than {} to stdout (maxstdout) and was stopped",
                size_text(spec.max_stdout)
            )),
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
    let Some(first) = specs.first() else {
        return Ok(v);
    };
    let supervisor = find_supervisor().map_err(|m| ConfigError {
        path: config.to_path_buf(),
        line: Some(first.line),
        message: format!("[process:{}] {m}", first.description.identifier),
    })?;
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
            supervisor.clone(),
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
mod tests;
