//! Command-line processes declared in the service config (`[process:ID]` sections).
//!
//! A declaration names the inputs and outputs of the process and an argv template such as
//! `gdalinfo -json {input:raster}`. The template is split into words when the config is loaded;
//! at run time every placeholder is replaced by a value *inside its word*, so each value is
//! exactly one argv element (or part of one) and is never seen by a shell: the program is started
//! with `std::process::Command`, in a fresh job directory, with a cleared environment and in its
//! own process group, which is killed as a whole at the time limit or on cancellation.

use super::{
    Allowed, Context, DataSpec, Format, InputSpec, Inputs, LiteralSpec, LiteralType, OutputSpec,
    OutputValue, Outputs, Process, ProcessDescription, ProcessError, Value,
};
use crate::config::ini::Section;
use crate::config::service::{parse_duration, ConfigError};
use crate::jobs::runner::extension_for;
use crate::service::LogLevel;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `PATH` of every command (and where bare program names are looked up at load time).
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Largest stdout kept (an output read from stdout may not be larger).
const MAX_STDOUT: usize = 256 << 20;
/// How much of the end of stderr is kept for the error log.
const MAX_STDERR: usize = 64 << 10;
/// The stderr tail shown to the client: lines and bytes.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2048;
/// How long to wait for stdout/stderr to close after the process group is gone.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// One piece of an argv word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `{ID}`: the value of a literal input, or the coordinates of a bounding box.
    Value(String),
    /// `{input:ID}`: the path of the file a complex input was written to.
    InputFile(String),
    /// `{output:ID}`: the path an output file is to be written to.
    OutputFile(String),
    /// `{crs:ID}`: the CRS of a bounding-box input.
    Crs(String),
    /// `{workdir}`: the job directory.
    Workdir,
}

impl Piece {
    /// The input this piece takes its value from.
    fn input(&self) -> Option<&str> {
        match self {
            Piece::Value(i) | Piece::InputFile(i) | Piece::Crs(i) => Some(i),
            _ => None,
        }
    }
}

/// Where an output's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stdout,
    File,
}

/// A parsed `[process:ID]` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub description: ProcessDescription,
    /// The program (argv[0]), resolved to an absolute path.
    pub program: PathBuf,
    /// argv[1..] as templates.
    pub args: Vec<Vec<Piece>>,
    /// Per output (in the order of `description.outputs`).
    pub sources: Vec<Source>,
    /// `timeout`: the command's own time limit.
    pub timeout: Option<Duration>,
    /// `env.NAME = value`.
    pub env: Vec<(String, String)>,
    pub rerunnable: bool,
    /// The line of the section header.
    pub line: usize,
}

/// Splits a command line into words: whitespace separates words, double quotes group (and
/// are removed; `""` is an empty word). There is no escape character.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut in_word, mut quoted) = (false, false);
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unterminated double quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Whether `s` may be an identifier of a process, input, output (letters, digits, `_.-`, not
/// starting with `.` or `-`, at most 100 characters).
pub fn valid_identifier(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Parses one word of a command template: `{ID}`, `{input:ID}`, `{output:ID}`, `{crs:ID}`,
/// `{workdir}` are placeholders, `{{` and `}}` stand for `{` and `}`.
pub fn parse_template(word: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => {
                return Err(format!(
                    "unmatched '}}' in '{word}' (write '}}}}' for a '}}')"
                ))
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!(
                                "unmatched '{{' in '{word}' (write '{{{{' for a '{{')"
                            ))
                        }
                    }
                }
                let piece = match name.split_once(':') {
                    None if name == "workdir" => Piece::Workdir,
                    None => Piece::Value(name.clone()),
                    Some(("input", id)) => Piece::InputFile(id.into()),
                    Some(("output", id)) => Piece::OutputFile(id.into()),
                    Some(("crs", id)) => Piece::Crs(id.into()),
                    Some((kind, _)) => {
                        return Err(format!(
                            "unknown placeholder '{{{name}}}' ('{kind}:' is not one of input:, output:, crs:)"
                        ))
                    }
                };
                if let Piece::Value(id)
                | Piece::InputFile(id)
                | Piece::OutputFile(id)
                | Piece::Crs(id) = &piece
                {
                    if !valid_identifier(id) {
                        return Err(format!("'{{{name}}}' is not a valid placeholder"));
                    }
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// `key=value` options after the kind and type of an input/output declaration.
fn options<'a>(words: &'a [String], known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut v: Vec<(&str, &str)> = Vec::new();
    for w in words {
        let Some((k, val)) = w.split_once('=') else {
            return Err(format!("expected key=value, found '{w}'"));
        };
        if !known.contains(&k) {
            return Err(format!(
                "unknown option '{k}' (known: {})",
                known.join(", ")
            ));
        }
        if v.iter().any(|(k2, _)| *k2 == k) {
            return Err(format!("option '{k}' is given twice"));
        }
        v.push((k, val));
    }
    Ok(v)
}

fn opt<'a>(opts: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    opts.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn literal_type(t: &str) -> Result<LiteralType, String> {
    Ok(match t {
        "string" => LiteralType::String,
        "integer" => LiteralType::Integer,
        "float" => LiteralType::Float,
        "boolean" => LiteralType::Boolean,
        _ => {
            return Err(format!(
                "unknown literal type '{t}' (use string, integer, float or boolean)"
            ))
        }
    })
}

fn occurs(opts: &[(&str, &str)], key: &str, default: u32) -> Result<u32, String> {
    match opt(opts, key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| format!("{key}={v}: expected a whole number")),
    }
}

fn list(v: &str, what: &str) -> Result<Vec<String>, String> {
    let l: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if l.is_empty() {
        return Err(format!("expected one or more {what}, separated by commas"));
    }
    Ok(l)
}

/// `input.ID = literal TYPE [...] | complex MIME[,MIME...] [...] | bbox CRS[,CRS...] [...]`
fn parse_input(id: &str, value: &str) -> Result<InputSpec, String> {
    let words = split_words(value)?;
    let (kind, rest) = match words.as_slice() {
        [k, t, rest @ ..] => ((k.as_str(), t.as_str()), rest),
        _ => {
            return Err(
                "expected 'literal TYPE', 'complex MIME[,MIME...]' or 'bbox CRS[,CRS...]'".into(),
            )
        }
    };
    let common = ["title", "abstract", "min", "max"];
    let (data, opts) = match kind {
        ("literal", t) => {
            let data_type = literal_type(t)?;
            let opts = options(
                rest,
                &[&common[..], &["default", "allowed", "uom"]].concat(),
            )?;
            let mut spec = LiteralSpec::any(data_type);
            if let Some(a) = opt(&opts, "allowed") {
                for v in a.split('|') {
                    let range = v
                        .split_once("..")
                        .filter(|_| matches!(data_type, LiteralType::Integer | LiteralType::Float));
                    spec.allowed.push(match range {
                        Some((lo, hi)) => {
                            let num = |s: &str| {
                                data_type
                                    .check(s)
                                    .ok()
                                    .and_then(|c| c.parse::<f64>().ok())
                                    .ok_or_else(|| format!("allowed: '{s}' is not a {t}"))
                            };
                            let (min, max) = (num(lo)?, num(hi)?);
                            if min > max {
                                return Err(format!("allowed: empty range '{v}'"));
                            }
                            Allowed::Range {
                                min,
                                max,
                                spacing: None,
                            }
                        }
                        None => {
                            Allowed::Value(data_type.check(v).map_err(|e| format!("allowed: {e}"))?)
                        }
                    });
                }
            }
            if let Some(d) = opt(&opts, "default") {
                spec.default = Some(spec.check(d).map_err(|e| format!("default: {e}"))?);
            }
            spec.uom = opt(&opts, "uom").map(String::from);
            (DataSpec::Literal(spec), opts)
        }
        ("complex", mimes) => (
            DataSpec::Complex {
                formats: list(mimes, "media types")?
                    .iter()
                    .map(|m| Format::mime(m))
                    .collect(),
                maximum_megabytes: None,
            },
            options(rest, &common)?,
        ),
        ("bbox", crss) => (
            DataSpec::BoundingBox {
                crss: list(crss, "CRS identifiers")?,
                dimensions: 2,
            },
            options(rest, &common)?,
        ),
        (k, _) => {
            return Err(format!(
                "unknown input kind '{k}' (use literal, complex or bbox)"
            ))
        }
    };
    let has_default = matches!(&data, DataSpec::Literal(l) if l.default.is_some());
    let min_occurs = occurs(&opts, "min", if has_default { 0 } else { 1 })?;
    let max_occurs = occurs(&opts, "max", min_occurs.max(1))?;
    if max_occurs == 0 || min_occurs > max_occurs {
        return Err(format!(
            "min={min_occurs} max={max_occurs}: max must be at least 1 and at least min"
        ));
    }
    Ok(InputSpec {
        identifier: id.into(),
        title: opt(&opts, "title").unwrap_or(id).into(),
        abstract_: opt(&opts, "abstract").unwrap_or("").into(),
        min_occurs,
        max_occurs,
        data,
    })
}

/// `output.ID = literal TYPE [from=stdout|file] [...] | complex MIME [from=file|stdout] [...]`
fn parse_output(id: &str, value: &str) -> Result<(OutputSpec, Source), String> {
    let words = split_words(value)?;
    let [kind, t, rest @ ..] = words.as_slice() else {
        return Err("expected 'literal TYPE' or 'complex MIME'".into());
    };
    let opts = options(rest, &["title", "abstract", "from"])?;
    let (data, default_source) = match kind.as_str() {
        "literal" => (
            DataSpec::Literal(LiteralSpec::any(literal_type(t)?)),
            Source::Stdout,
        ),
        "complex" if t.contains(',') => {
            return Err("a complex output has exactly one media type".into())
        }
        "complex" => (
            DataSpec::Complex {
                formats: vec![Format::mime(t)],
                maximum_megabytes: None,
            },
            Source::File,
        ),
        k => {
            return Err(format!(
                "unknown output kind '{k}' (use literal or complex)"
            ))
        }
    };
    let source = match opt(&opts, "from") {
        None => default_source,
        Some("stdout") => Source::Stdout,
        Some("file") => Source::File,
        Some(f) => return Err(format!("from={f}: use from=stdout or from=file")),
    };
    Ok((
        OutputSpec {
            identifier: id.into(),
            title: opt(&opts, "title").unwrap_or(id).into(),
            abstract_: opt(&opts, "abstract").unwrap_or("").into(),
            data,
        },
        source,
    ))
}

/// Resolves the program of a command: absolute, relative to the config file's directory (when
/// it contains a '/'), or looked up in `PATH`; it must be an executable regular file.
fn resolve_program(name: &str, config: &Path) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = config.parent().unwrap_or(Path::new("")).join(name);
        return match std::fs::metadata(&p) {
            Err(e) => Err(format!("program {}: {e}", p.display())),
            Ok(_) if !executable(&p) => {
                Err(format!("program {} is not an executable file", p.display()))
            }
            Ok(_) => Ok(p),
        };
    }
    PATH.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| executable(p))
        .ok_or_else(|| format!("program '{name}' not found in {PATH}"))
}

/// Looks up the interpolated value and line of a key of the section being parsed.
pub type Getter<'a> = dyn Fn(&str) -> Result<Option<(String, usize)>, ConfigError> + 'a;

/// Parses a `[process:ID]` section. `get` returns the interpolated value and line of a key.
pub fn parse_section(
    section: &Section,
    path: &Path,
    get: &Getter,
) -> Result<CommandSpec, ConfigError> {
    let sec = section.name.as_str();
    let at = |line: usize, m: String| ConfigError {
        path: path.to_path_buf(),
        line: Some(line),
        message: format!("[{sec}] {m}"),
    };
    let id = sec.strip_prefix("process:").unwrap_or(sec).trim();
    if !valid_identifier(id) {
        return Err(at(
            section.line,
            format!("'{id}' is not a valid process identifier (letters, digits, _ . -)"),
        ));
    }
    let mut desc = ProcessDescription {
        identifier: id.into(),
        title: id.into(),
        abstract_: String::new(),
        version: "1.0".into(),
        inputs: vec![],
        outputs: vec![],
        store_supported: true,
        status_supported: true,
    };
    let mut spec = CommandSpec {
        description: desc.clone(),
        program: PathBuf::new(),
        args: vec![],
        sources: vec![],
        timeout: None,
        env: vec![],
        rerunnable: true,
        line: section.line,
    };
    let mut command: Option<(Vec<String>, usize)> = None;
    for e in &section.entries {
        let (value, line) = get(&e.key)?.unwrap_or_else(|| (e.value.clone(), e.line));
        let raw = e.raw_key.as_str();
        let bad = |m: String| at(line, format!("{raw}: {m}"));
        let named = |prefix: &str| {
            let id = &raw[prefix.len()..];
            if valid_identifier(id) && id != "workdir" {
                Ok(id.to_string())
            } else {
                Err(bad(format!(
                    "'{id}' is not a valid identifier (letters, digits, _ . -; not 'workdir')"
                )))
            }
        };
        match e.key.as_str() {
            "title" => desc.title = value,
            "abstract" => desc.abstract_ = value,
            "version" => desc.version = value,
            "command" => {
                let words = split_words(&value).map_err(bad)?;
                if words.is_empty() {
                    return Err(bad("the command is empty".into()));
                }
                command = Some((words, line));
            }
            "timeout" => spec.timeout = Some(parse_duration(&value).map_err(bad)?),
            "rerunnable" => {
                spec.rerunnable = match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => true,
                    "false" | "no" | "off" | "0" => false,
                    _ => return Err(bad(format!("'{value}' is not true or false"))),
                }
            }
            k if k.starts_with("input.") => {
                let id = named("input.")?;
                if desc.input(&id).is_some() {
                    return Err(bad(format!("input '{id}' is declared twice")));
                }
                desc.inputs.push(parse_input(&id, &value).map_err(bad)?);
            }
            k if k.starts_with("output.") => {
                let id = named("output.")?;
                if desc.output(&id).is_some() {
                    return Err(bad(format!("output '{id}' is declared twice")));
                }
                let (o, src) = parse_output(&id, &value).map_err(bad)?;
                if src == Source::Stdout && spec.sources.contains(&Source::Stdout) {
                    return Err(bad("only one output can be read from stdout".into()));
                }
                desc.outputs.push(o);
                spec.sources.push(src);
            }
            k if k.starts_with("env.") => {
                let name = &raw[4..];
                let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(bad(format!("'{name}' is not a valid variable name")));
                }
                spec.env.push((name.to_string(), value));
            }
            _ => {
                return Err(bad(
                    "unknown key (known: title, abstract, version, command, timeout, rerunnable, input.ID, output.ID, env.NAME)"
                        .into(),
                ))
            }
        }
    }
    let Some((words, line)) = command else {
        return Err(at(section.line, "no 'command' is given".into()));
    };
    if desc.outputs.is_empty() {
        return Err(at(
            section.line,
            "declares no output (add e.g. 'output.result = literal string')".into(),
        ));
    }
    let bad = |m: String| at(line, format!("command: {m}"));
    if words[0].contains(['{', '}']) {
        return Err(bad("the program may not contain placeholders".into()));
    }
    spec.program = resolve_program(&words[0], path).map_err(bad)?;
    for w in &words[1..] {
        let pieces = parse_template(w).map_err(bad)?;
        let mut multi = Vec::new();
        for p in &pieces {
            let kind_ok = match p {
                Piece::Value(i) => match desc.input(i).map(|s| &s.data) {
                    None => return Err(bad(format!("{{{i}}} names no declared input"))),
                    Some(DataSpec::Complex { .. }) => Err(format!(
                        "{{{i}}}: '{i}' is a complex input; use {{input:{i}}} for its file"
                    )),
                    Some(_) => Ok(()),
                },
                Piece::InputFile(i) => match desc.input(i).map(|s| &s.data) {
                    None => return Err(bad(format!("{{input:{i}}} names no declared input"))),
                    Some(DataSpec::Complex { .. }) => Ok(()),
                    Some(_) => Err(format!(
                        "{{input:{i}}}: '{i}' is not a complex input; use {{{i}}} for its value"
                    )),
                },
                Piece::Crs(i) => match desc.input(i).map(|s| &s.data) {
                    Some(DataSpec::BoundingBox { .. }) => Ok(()),
                    _ => Err(format!("{{crs:{i}}} names no bounding-box input")),
                },
                Piece::OutputFile(o) => {
                    match desc.outputs.iter().position(|s| s.identifier == *o) {
                        None => Err(format!("{{output:{o}}} names no declared output")),
                        Some(n) if spec.sources[n] == Source::Stdout => Err(format!(
                            "{{output:{o}}}: output '{o}' is read from stdout (add from=file)"
                        )),
                        Some(_) => Ok(()),
                    }
                }
                Piece::Text(_) | Piece::Workdir => Ok(()),
            };
            kind_ok.map_err(bad)?;
            if let Some(i) = p.input() {
                if desc.input(i).is_some_and(|s| s.max_occurs > 1) && !multi.contains(&i) {
                    multi.push(i);
                }
            }
        }
        if multi.len() > 1 {
            return Err(bad(format!(
                "'{w}' uses several inputs that may occur more than once ({})",
                multi.join(", ")
            )));
        }
        spec.args.push(pieces);
    }
    for (o, src) in desc.outputs.iter().zip(&spec.sources) {
        let used = spec
            .args
            .iter()
            .flatten()
            .any(|p| matches!(p, Piece::OutputFile(x) if *x == o.identifier));
        if *src == Source::File && !used {
            return Err(bad(format!(
                "output '{0}' is read from a file, but the command has no {{output:{0}}}",
                o.identifier
            )));
        }
    }
    spec.description = desc;
    Ok(spec)
}

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
    use crate::config::ini::Ini;
    use crate::wps::model::{BoundingBox, ComplexValue};
    use std::sync::{Arc, Mutex};

    fn parse(text: &str) -> Result<CommandSpec, ConfigError> {
        let ini = Ini::parse(text).unwrap();
        let path = Path::new("/etc/wps/wps.cfg");
        let s = &ini.sections[0];
        parse_section(s, path, &|k| {
            ini.get(&s.name, k, &|_| None).map_err(|e| ConfigError {
                path: path.into(),
                line: Some(e.line),
                message: e.message,
            })
        })
    }

    fn err(text: &str) -> (usize, String) {
        let e = parse(text).unwrap_err();
        (e.line.unwrap(), e.message)
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
    fn words_split_on_whitespace_with_double_quotes() {
        assert_eq!(
            split_words("a  b\t\"c d\" --x=\"y z\"w \"\" e\"\"").unwrap(),
            ["a", "b", "c d", "--x=y zw", "", "e"]
        );
        assert_eq!(split_words("it's \\n").unwrap(), ["it's", "\\n"]);
        assert_eq!(split_words(" one\n  two ").unwrap(), ["one", "two"]);
        assert!(split_words("a \"b").is_err());
        assert!(split_words("   ").unwrap().is_empty());
    }

    #[test]
    fn templates_parse_placeholders_and_escapes() {
        use Piece::*;
        assert_eq!(parse_template("plain").unwrap(), [Text("plain".into())]);
        assert_eq!(parse_template("").unwrap(), [Text("".into())]);
        assert_eq!(
            parse_template("--x={a}/{input:b}{output:c}{crs:d}{workdir}").unwrap(),
            [
                Text("--x=".into()),
                Value("a".into()),
                Text("/".into()),
                InputFile("b".into()),
                OutputFile("c".into()),
                Crs("d".into()),
                Workdir
            ]
        );
        assert_eq!(
            parse_template("{{print $1}}").unwrap(),
            [Text("{print $1}".into())]
        );
        for bad in ["{a", "a}", "{}", "{x:y}", "{a b}", "{input:}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
    }

    const ECHO: &str = "[process:echo]\ntitle = Echo\ncommand = echo -n --name={name} \"{name} x\" {n} {opt} {box} {crs:box} {input:doc} {output:copy}\ninput.name = literal string\ninput.n = literal integer default=3 allowed=1..5|9 max=2\ninput.opt = literal string min=0\ninput.box = bbox EPSG:4326,EPSG:3035\ninput.doc = complex text/plain,application/json\noutput.Result = literal string title=\"The result\"\noutput.copy = complex text/plain\nenv.MY_Var = 1\nrerunnable = false\ntimeout = 5s\n";

    #[test]
    fn a_declaration_parses() {
        let s = parse(ECHO).unwrap();
        let d = &s.description;
        assert_eq!((d.identifier.as_str(), d.title.as_str()), ("echo", "Echo"));
        assert!(s.program.is_absolute() && s.program.ends_with("echo"));
        assert_eq!(s.args.len(), 9);
        let n = d.input("n").unwrap();
        assert_eq!((n.min_occurs, n.max_occurs), (0, 2));
        let DataSpec::Literal(l) = &n.data else {
            panic!()
        };
        assert_eq!(l.default.as_deref(), Some("3"));
        assert!(l.check("4").is_ok() && l.check("9").is_ok() && l.check("7").is_err());
        assert_eq!(d.input("opt").unwrap().min_occurs, 0);
        assert_eq!(d.outputs[0].identifier, "Result");
        assert_eq!(d.outputs[0].title, "The result");
        assert_eq!(s.sources, [Source::Stdout, Source::File]);
        assert_eq!(s.env, [("MY_Var".to_string(), "1".to_string())]);
        assert!(!s.rerunnable);
        assert_eq!(s.timeout, Some(Duration::from_secs(5)));
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
    fn bad_declarations_name_the_line() {
        let base = "[process:p]\ncommand = echo {a}\ninput.a = literal string\noutput.o = literal string\n";
        assert!(parse(base).is_ok());
        let cases: &[(&str, usize, &str)] = &[
            ("[process:p]\noutput.o = literal string\n", 1, "no 'command'"),
            ("[process:p]\ncommand = \noutput.o = literal string\n", 2, "empty"),
            ("[process:p]\ncommand = echo\n", 1, "no output"),
            ("[process:p]\ncommand = echo {b}\noutput.o = literal string\n", 2, "{b} names no declared input"),
            ("[process:p]\ncommand = echo\noutput.o = literal string\ncolour = red\n", 4, "unknown key"),
            ("[process:p]\ncommand = echo\ninput.a = literal str\noutput.o = literal string\n", 3, "unknown literal type 'str'"),
            ("[process:p]\ncommand = echo\ninput.a = literal integer default=x\noutput.o = literal string\n", 3, "default"),
            ("[process:p]\ncommand = echo\ninput.a = literal string mn=1\noutput.o = literal string\n", 3, "unknown option 'mn'"),
            ("[process:p]\ncommand = echo\ninput.a = literal string min=2 max=1\noutput.o = literal string\n", 3, "min=2"),
            ("[process:p]\ncommand = echo\ninput.a = raster x\noutput.o = literal string\n", 3, "unknown input kind"),
            ("[process:p]\ncommand = /nonexistent/prog\noutput.o = literal string\n", 2, "/nonexistent/prog"),
            ("[process:p]\ncommand = /etc/passwd\noutput.o = literal string\n", 2, "not an executable"),
            ("[process:p]\ncommand = no-such-program-xyz\noutput.o = literal string\n", 2, "not found"),
            ("[process:p]\ncommand = echo\noutput.o = complex text/plain\n", 2, "no {output:o}"),
            ("[process:p]\ncommand = echo {output:o}\noutput.o = literal string\n", 2, "from=file"),
            ("[process:p]\ncommand = echo {a}\ninput.a = complex text/plain\noutput.o = literal string\n", 2, "{input:a}"),
            ("[process:p]\ncommand = echo {input:a}\ninput.a = literal string\noutput.o = literal string\n", 2, "not a complex input"),
            ("[process:p]\ncommand = echo {a}{b}\ninput.a = literal string max=2\ninput.b = literal string max=2\noutput.o = literal string\n", 2, "several inputs"),
            ("[process:p]\ncommand = {a}\ninput.a = literal string\noutput.o = literal string\n", 2, "placeholders"),
            ("[process:p]\ncommand = echo\noutput.o = literal string\noutput.p = complex text/plain from=stdout\n", 4, "only one output"),
            ("[process:p]\ncommand = echo\noutput.o = literal string\ntimeout = soon\n", 4, "soon"),
            ("[process:p]\ncommand = echo\noutput.o = literal string\nenv.1X = y\n", 4, "variable name"),
            ("[process:p q]\ncommand = echo\noutput.o = literal string\n", 1, "identifier"),
            ("[process:p]\ncommand = echo\ninput.workdir = literal string\noutput.o = literal string\n", 3, "workdir"),
        ];
        for (text, line, needle) in cases {
            let (l, m) = err(text);
            assert_eq!(l, *line, "{text}: {m}");
            assert!(m.contains(needle), "{text}: expected {needle:?} in {m:?}");
            assert!(m.starts_with("[process:"), "{m}");
        }
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
        let token = Arc::new(crate::processes::CancelToken::default());
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
