//! `[process:ID]` sections of the service config: command-line processes declared with their
//! inputs, outputs and an argv template such as `gdalinfo -json {input:raster}`. The template
//! is split into words here, when the config is loaded; `processes::command` runs it.

use super::ini::Section;
pub use super::programs::{resolve_program, split_words, Getter, PATH};
use super::values::{parse_duration, parse_size, ConfigError};
use crate::model::{
    Allowed, DataSpec, Format, InputSpec, LiteralSpec, LiteralType, OutputSpec, ProcessDescription,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default of `maxstdout`: the most a command may write to stdout (PROGRESS lines aside)
/// when an output is read from it.
pub const DEFAULT_MAX_STDOUT: usize = 256 << 20;

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
    pub fn input(&self) -> Option<&str> {
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
    /// `maxstdout`: the most the command may write to stdout when an output is read from it.
    pub max_stdout: usize,
    /// `env.NAME = value`.
    pub env: Vec<(String, String)>,
    pub rerunnable: bool,
    /// `dispatch`: where its asynchronous jobs run.
    pub dispatch: super::slurm::Dispatch,
    /// The line of the section header.
    pub line: usize,
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
        max_stdout: DEFAULT_MAX_STDOUT,
        env: vec![],
        rerunnable: true,
        dispatch: Default::default(),
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
            "maxstdout" => {
                spec.max_stdout = parse_size(&value)
                    .ok()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(format!("'{value}' is not a size such as 10mb")))?
            }
            "rerunnable" => {
                spec.rerunnable = match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => true,
                    "false" | "no" | "off" | "0" => false,
                    _ => return Err(bad(format!("'{value}' is not true or false"))),
                }
            }
            "dispatch" => spec.dispatch = super::slurm::Dispatch::parse(&value).map_err(bad)?,
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
                    "unknown key (known: title, abstract, version, command, timeout, maxstdout, rerunnable, dispatch, input.ID, output.ID, env.NAME)"
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::ini::Ini;

    pub(crate) fn parse(text: &str) -> Result<CommandSpec, ConfigError> {
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

    pub(crate) const ECHO: &str = "[process:echo]\ntitle = Echo\ncommand = echo -n --name={name} \"{name} x\" {n} {opt} {box} {crs:box} {input:doc} {output:copy}\ninput.name = literal string\ninput.n = literal integer default=3 allowed=1..5|9 max=2\ninput.opt = literal string min=0\ninput.box = bbox EPSG:4326,EPSG:3035\ninput.doc = complex text/plain,application/json\noutput.Result = literal string title=\"The result\"\noutput.copy = complex text/plain\nenv.MY_Var = 1\nrerunnable = false\ntimeout = 5s\n";

    fn err(text: &str) -> (usize, String) {
        let e = parse(text).unwrap_err();
        (e.line.unwrap(), e.message)
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
        assert_eq!(s.max_stdout, DEFAULT_MAX_STDOUT);
        let s = parse("[process:p]\ncommand = echo\noutput.o = literal string\nmaxstdout = 2mb\n");
        assert_eq!(s.unwrap().max_stdout, 2 << 20);
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
            ("[process:p]\ncommand = echo\noutput.o = literal string\nmaxstdout = 0\n", 4, "not a size"),
            ("[process:p]\ncommand = echo\noutput.o = literal string\nmaxstdout = lots\n", 4, "not a size"),
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
}
