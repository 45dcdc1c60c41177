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

use crate::config::process::{CommandSpec, Piece, Source, PATH};
use crate::config::ConfigError;
use crate::model::format::extension_for;
use crate::model::LogLevel;
use crate::model::{
    Context, DataSpec, Inputs, OutputSpec, OutputValue, Outputs, Process, ProcessDescription,
    ProcessError, Value,
};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The supervisor program, installed next to the module.
pub const SUPERVISOR: &str = "mod_wps-supervise";
/// stdout and stderr are read in chunks of this size.
const READ_CHUNK: usize = 64 << 10;
/// The longest line (newline included) that can be a PROGRESS line.
const PROGRESS_LINE_MAX: usize = 4096;
/// How much of the end of stderr is kept for the error log.
const MAX_STDERR: usize = 64 << 10;
/// The stderr tail shown to the client: lines and bytes.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2048;
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

/// A size for messages: `256 MB`, `64 KB` or `1000 bytes`.
fn size_text(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Splits a command's stdout, fed in chunks, into PROGRESS lines and the rest, in bounded
/// memory: the current line is buffered only up to `PROGRESS_LINE_MAX` bytes (a longer line is
/// not a progress line), and the rest is kept (when an output is read from stdout) up to
/// `limit` bytes; past that the sink overflows and drops what it kept.
pub struct StdoutSink {
    keep: bool,
    limit: usize,
    kept: Vec<u8>,
    /// The start of the current line while it may still be a progress line.
    line: Vec<u8>,
    /// The current line is longer than `PROGRESS_LINE_MAX`.
    long: bool,
    overflow: bool,
}

impl StdoutSink {
    pub fn new(keep: bool, limit: usize) -> Self {
        StdoutSink {
            keep,
            limit,
            kept: Vec::new(),
            line: Vec::with_capacity(PROGRESS_LINE_MAX),
            long: false,
            overflow: false,
        }
    }

    /// Whether more than `limit` bytes were to be kept.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// The bytes kept so far (stdout without the PROGRESS lines).
    pub fn into_kept(self) -> Vec<u8> {
        self.kept
    }

    /// The memory the sink holds (its two buffers' capacities).
    pub fn capacity(&self) -> usize {
        self.kept.capacity() + self.line.capacity()
    }

    fn rest(&mut self, data: &[u8]) {
        if !self.keep || self.overflow || data.is_empty() {
            return;
        }
        let need = self.kept.len() + data.len();
        if need > self.limit {
            self.overflow = true;
            self.kept = Vec::new();
            return;
        }
        if need > self.kept.capacity() {
            // grow by doubling, but never past the limit
            let cap = need.max(self.kept.capacity() * 2).min(self.limit);
            self.kept.reserve_exact(cap - self.kept.len());
        }
        self.kept.extend_from_slice(data);
    }

    /// The end of a line (or of stdout): a progress line is reported, anything else kept.
    fn end_line(&mut self, progress: &mut dyn FnMut(u32, String)) {
        if !self.long {
            if let Some((pct, msg)) = parse_progress(&self.line) {
                progress(pct, msg);
            } else {
                let line = std::mem::take(&mut self.line);
                self.rest(&line);
                self.line = line;
            }
        }
        self.line.clear();
        self.long = false;
    }

    /// Takes the next chunk of stdout.
    pub fn feed(&mut self, mut data: &[u8], progress: &mut dyn FnMut(u32, String)) {
        while !data.is_empty() {
            let (seg, eol) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..=i], true),
                None => (data, false),
            };
            data = &data[seg.len()..];
            if self.long {
                self.rest(seg);
            } else if self.line.len() + seg.len() <= PROGRESS_LINE_MAX {
                self.line.extend_from_slice(seg);
            } else {
                // too long for a progress line: what was buffered and this go to the rest
                self.long = true;
                let line = std::mem::take(&mut self.line);
                self.rest(&line);
                self.line = line;
                self.line.clear();
                self.rest(seg);
            }
            if eol {
                self.end_line(progress);
            }
        }
    }

    /// The end of stdout (a last line without a newline).
    pub fn finish(&mut self, progress: &mut dyn FnMut(u32, String)) {
        if !self.line.is_empty() {
            self.end_line(progress);
        }
    }
}

/// The file the code of this module was loaded from (from /proc/self/maps: the mapping that
/// holds this function): `mod_wps.so` in Apache, the test executable in unit tests.
fn module_file() -> Option<PathBuf> {
    let here = module_file as fn() -> Option<PathBuf> as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        if !(lo..hi).contains(&here) {
            return None;
        }
        // perms offset dev inode path (the path may contain spaces)
        let path = rest.splitn(5, ' ').nth(4)?.trim_start();
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        path.starts_with('/').then(|| PathBuf::from(path))
    })
}

/// The supervisor `mod_wps-supervise`: next to the module file, or (cargo's layout, the
/// module or test binary in `target/<profile>/deps/`) in the directory above.
pub fn find_supervisor() -> Result<PathBuf, String> {
    let module = module_file().ok_or("cannot tell where the module was loaded from")?;
    supervisor_near(&module)
}

/// The supervisor next to the module file `module`.
fn supervisor_near(module: &Path) -> Result<PathBuf, String> {
    let dir = module.parent().unwrap_or(Path::new("/"));
    let mut candidates = vec![dir.join(SUPERVISOR)];
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent() {
            candidates.push(up.join(SUPERVISOR));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let usable = |p: &PathBuf| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    candidates.iter().find(|p| usable(p)).cloned().ok_or_else(|| {
        let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        format!(
            "the command supervisor {SUPERVISOR} is not installed (looked for {}; .ci/install puts it next to the module)",
            list.join(" and ")
        )
    })
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

/// Stops the supervisor while it runs, and reaps it: SIGTERM, on which it kills every process
/// below it and exits; should it not exit within `STOP_GRACE`, SIGKILL to its process group.
fn stop(child: &mut Child, have_proc: bool) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        // not reaped yet, so the pid is still the supervisor's
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let end = Instant::now() + STOP_GRACE;
    while Instant::now() < end {
        match reap_if_exited(child, have_proc) {
            Ok(Some(_)) => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break,
        }
    }
    kill_group(child.id());
    let _ = child.wait();
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
mod tests {
    use super::*;
    use crate::config::process::tests::{parse, ECHO};
    use crate::model::{BoundingBox, ComplexValue};
    use std::sync::{Arc, Mutex};

    /// The supervisor, built for these tests (`cargo test --lib` builds no binaries) into the
    /// target directory of the test executable, and found there as the module finds it.
    pub(crate) fn supervisor() -> PathBuf {
        static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        BUILT
            .get_or_init(|| {
                let exe = std::env::current_exe().unwrap();
                // target/<profile>/deps/<test executable>
                let target = exe.ancestors().nth(3).unwrap();
                let mut cmd = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"));
                // without what cargo set for this test run: build scripts that see another
                // CARGO_MANIFEST_DIR run again, and everything above them is rebuilt
                for (k, _) in std::env::vars_os() {
                    let k = k.to_string_lossy();
                    if k.starts_with("CARGO_PKG_")
                        || k.starts_with("CARGO_MANIFEST_")
                        || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"].contains(&&*k)
                    {
                        cmd.env_remove(&*k);
                    }
                }
                cmd.args(["build", "--quiet", "--bin", SUPERVISOR, "--target-dir"])
                    .arg(target)
                    .current_dir(env!("CARGO_MANIFEST_DIR"));
                if !cfg!(debug_assertions) {
                    cmd.arg("--release");
                }
                let st = cmd.status().unwrap();
                assert!(st.success(), "cargo build --bin {SUPERVISOR}: {st}");
                find_supervisor().unwrap()
            })
            .clone()
    }

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
        let p = CommandProcess::new(
            parse(ECHO).unwrap(),
            PathBuf::from("/nowhere"),
            PathBuf::from("/nowhere"),
        );
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
        let p = CommandProcess::new(parse(cfg).unwrap(), jobs.clone(), supervisor());
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

    #[test]
    fn stdout_is_split_in_bounded_memory() {
        let mut seen = Vec::new();
        let mut report = |p, m: String| seen.push((p, m));
        // progress lines split across chunks, lines too long to be progress lines, a last line
        let long = format!("PROGRESS 7 {}\n", "x".repeat(PROGRESS_LINE_MAX));
        let text = format!("a\nPROGRESS 10 one\nb\n{long}PROGRESS 20 two\nc");
        let mut sink = StdoutSink::new(true, 1 << 20);
        for b in text.as_bytes().chunks(3) {
            sink.feed(b, &mut report);
        }
        sink.finish(&mut report);
        assert_eq!(
            String::from_utf8(sink.into_kept()).unwrap(),
            format!("a\nb\n{long}c")
        );
        assert_eq!(seen, [(10, "one".to_string()), (20, "two".to_string())]);

        // one 10 MB line against a 1 MB limit: the sink overflows when the limit is crossed,
        // and never holds more than the limit plus one progress line
        let limit = 1 << 20;
        let chunk = vec![b'y'; READ_CHUNK];
        let mut sink = StdoutSink::new(true, limit);
        let (mut fed, mut peak) = (0, 0);
        while !sink.overflowed() {
            sink.feed(&chunk, &mut |_, _| panic!("not a progress line"));
            fed += chunk.len();
            peak = peak.max(sink.capacity());
            assert!(fed <= 10 << 20);
        }
        assert_eq!(
            fed,
            limit + READ_CHUNK,
            "overflows as soon as the limit is crossed"
        );
        assert!(peak <= limit + PROGRESS_LINE_MAX, "{peak}");
        sink.feed(&chunk, &mut |_, _| {});
        assert!(
            sink.capacity() <= PROGRESS_LINE_MAX,
            "what was kept is dropped"
        );
        // not kept (no output from stdout): no overflow, only the line buffer
        let mut sink = StdoutSink::new(false, limit);
        for _ in 0..(10 << 20) / READ_CHUNK {
            sink.feed(&chunk, &mut |_, _| {});
        }
        let mut last = None;
        sink.feed(b"\nPROGRESS 30 three\n", &mut |p, m| last = Some((p, m)));
        assert!(!sink.overflowed() && sink.capacity() <= PROGRESS_LINE_MAX);
        assert_eq!(last, Some((30, "three".to_string())));
        assert_eq!(size_text(256 << 20), "256 MB");
        assert_eq!(size_text(1536), "1536 bytes");
    }

    #[test]
    fn stdout_past_its_limit_stops_the_command() {
        let ctx = Context::detached();
        // an endless single line: only the limit ends the job
        let cfg = "[process:p]\ncommand = cat /dev/zero\noutput.o = complex application/octet-stream from=stdout\nmaxstdout = 1mb\ntimeout = 60s\n";
        let start = Instant::now();
        let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
            panic!()
        };
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(
            m.starts_with("the command wrote more than 1 MB to stdout (maxstdout) and was stopped"),
            "{m}"
        );
        // stdout that no output is read from is not kept, and not limited
        let cfg = "[process:p]\ncommand = sh -c \"head -c 5000000 /dev/zero; echo PROGRESS 50 x; echo 7 > $1\" sh {output:o}\noutput.o = literal integer from=file\nmaxstdout = 1mb\n";
        let out = run_cfg(cfg, Inputs::default(), &ctx).unwrap();
        assert_eq!(out.get("o"), Some(&OutputValue::Literal("7".into())));
    }

    /// A python3 script that starts a daemon (fork, setsid, fork) which writes its pid to the
    /// file `argv[1]` and sleeps 300 s; it waits for that file, sleeps `argv[2]` s and exits.
    const DAEMON_PY: &str = "import os, sys, time\nf = sys.argv[1]\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        n = os.open(os.devnull, os.O_RDWR)\n        for i in (0, 1, 2): os.dup2(n, i)\n        open(f + '.tmp', 'w').write(str(os.getpid()))\n        os.rename(f + '.tmp', f)\n        time.sleep(300)\n    os._exit(0)\nos.wait()\nwhile not os.path.exists(f): time.sleep(0.01)\ntime.sleep(float(sys.argv[2]))\nprint('done')\n";

    /// A process running DAEMON_PY (written to `dir`) with the pid file `dir/daemon.pid`.
    fn daemonizing(dir: &Path, then: u32, extra: &str) -> String {
        let script = dir.join("daemon.py");
        std::fs::write(&script, DAEMON_PY).unwrap();
        format!(
            "[process:p]\ncommand = python3 {} {} {then}\noutput.o = literal string\n{extra}",
            script.display(),
            dir.join("daemon.pid").display()
        )
    }

    /// Pids of the processes whose command line contains `marker`.
    pub(crate) fn processes_with(marker: &str) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
            })
            .collect()
    }

    #[test]
    fn nothing_a_job_starts_outlives_it() {
        let ctx = Context::detached();
        // the command exits (the daemon runs on), the command passes its timeout, the job is
        // cancelled
        for (then, extra, cancel) in [
            (0, "", false),
            (30, "timeout = 1s\n", false),
            (30, "", true),
        ] {
            let dir = scratch();
            let pidfile = dir.join("daemon.pid");
            // the pid file's path is in the command line of every process of the job
            let marker = pidfile.display().to_string();
            let token = Arc::new(crate::model::CancelToken::default());
            let ctx = if cancel {
                let (t2, p2) = (token.clone(), pidfile.clone());
                std::thread::spawn(move || {
                    while !p2.exists() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    t2.cancel();
                });
                Context::new(token, Arc::new(|_, _| {}))
            } else {
                ctx.clone()
            };
            let start = Instant::now();
            let r = run_cfg(&daemonizing(&dir, then, extra), Inputs::default(), &ctx);
            let daemon: u32 = std::fs::read_to_string(&pidfile)
                .expect("the daemon started")
                .parse()
                .unwrap();
            match r {
                Ok(out) if then == 0 => {
                    assert_eq!(out.get("o"), Some(&OutputValue::Literal("done".into())))
                }
                Err(ProcessError::Failed(m)) if !cancel => {
                    assert!(m.contains("timeout of 1 s"), "{m}")
                }
                Err(ProcessError::Cancelled) if cancel => {}
                r => panic!("{r:?}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{then} {cancel}: {:?}",
                start.elapsed()
            );
            // gone, and reaped (not even a zombie), when the job ends
            assert!(
                !Path::new(&format!("/proc/{daemon}")).exists(),
                "daemon {daemon} survived"
            );
            assert_eq!(processes_with(&marker), Vec::<u32>::new(), "survivors");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn commands_start_with_no_signal_blocked() {
        // the supervisor blocks the signals it waits for; the command must not inherit that
        let cfg =
            "[process:p]\ncommand = grep SigBlk /proc/self/status\noutput.o = literal string\n";
        let out = run_cfg(cfg, Inputs::default(), &Context::detached()).unwrap();
        assert_eq!(
            out.get("o"),
            Some(&OutputValue::Literal("SigBlk:\t0000000000000000".into()))
        );
    }

    #[test]
    fn the_supervisor_is_found_next_to_the_module() {
        let s = supervisor();
        assert!(s.ends_with(SUPERVISOR), "{}", s.display());
        // the module file is this test executable here, in target/<profile>/deps
        let exe = std::env::current_exe().unwrap();
        assert_eq!(module_file().as_ref(), Some(&exe));
        assert_eq!(s, exe.ancestors().nth(2).unwrap().join(SUPERVISOR));
        let e = supervisor_near(Path::new("/nonexistent/deps/libmod_wps.so")).unwrap_err();
        assert!(
            e.contains("mod_wps-supervise is not installed")
                && e.contains(
                    "/nonexistent/deps/mod_wps-supervise and /nonexistent/mod_wps-supervise"
                ),
            "{e}"
        );
        // installed: next to the module
        let dir = scratch();
        let installed = dir.join(SUPERVISOR);
        std::fs::copy(&s, &installed).unwrap();
        assert_eq!(supervisor_near(&dir.join("mod_wps.so")), Ok(installed));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            supervisor_near(Path::new("/nonexistent/modules/mod_wps.so"))
                .unwrap_err()
                .contains("(looked for /nonexistent/modules/mod_wps-supervise;")
        );
    }
}
