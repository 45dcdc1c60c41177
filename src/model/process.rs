//! The process model: descriptions, checked values, outputs, the `Process` trait and the
//! context (progress, cancellation, log) a running process sees.

pub use super::format::Format;
use crate::model::{BoundingBox, ComplexValue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Literal data types of WPS 1.0.0 (XML Schema simple types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralType {
    String,
    Integer,
    Float,
    Boolean,
}

impl LiteralType {
    pub fn name(self) -> &'static str {
        match self {
            LiteralType::String => "string",
            LiteralType::Integer => "integer",
            LiteralType::Float => "float",
            LiteralType::Boolean => "boolean",
        }
    }
    pub fn reference(self) -> String {
        format!("http://www.w3.org/TR/xmlschema-2/#{}", self.name())
    }
    /// Checks `value` and returns its canonical form.
    pub fn check(self, value: &str) -> Result<String, String> {
        let v = value.trim();
        match self {
            LiteralType::String => Ok(value.to_owned()),
            LiteralType::Integer => v
                .parse::<i64>()
                .map(|i| i.to_string())
                .map_err(|_| format!("'{value}' is not an integer")),
            LiteralType::Float => match v.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(v.to_owned()),
                _ => Err(format!("'{value}' is not a float")),
            },
            LiteralType::Boolean => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok("true".into()),
                "false" | "0" => Ok("false".into()),
                _ => Err(format!("'{value}' is not a boolean")),
            },
        }
    }
}

/// One entry of `ows:AllowedValues`.
#[derive(Debug, Clone, PartialEq)]
pub enum Allowed {
    Value(String),
    Range {
        min: f64,
        max: f64,
        spacing: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiteralSpec {
    pub data_type: LiteralType,
    /// Empty means `ows:AnyValue`.
    pub allowed: Vec<Allowed>,
    pub default: Option<String>,
    pub uom: Option<String>,
}

impl LiteralSpec {
    pub fn any(data_type: LiteralType) -> Self {
        LiteralSpec {
            data_type,
            allowed: Vec::new(),
            default: None,
            uom: None,
        }
    }

    /// Type check plus allowed values; returns the canonical value.
    pub fn check(&self, value: &str) -> Result<String, String> {
        let v = self.data_type.check(value)?;
        if self.allowed.is_empty() {
            return Ok(v);
        }
        let num = v.parse::<f64>().ok();
        let ok = self.allowed.iter().any(|a| match a {
            Allowed::Value(s) => match (num, s.parse::<f64>()) {
                (Some(n), Ok(m)) if self.data_type != LiteralType::String => n == m,
                _ => *s == v,
            },
            Allowed::Range { min, max, spacing } => match num {
                Some(n) if n >= *min && n <= *max => match spacing {
                    Some(step) if *step > 0.0 => {
                        let k = (n - min) / step;
                        (k - k.round()).abs() < 1e-9
                    }
                    _ => true,
                },
                _ => false,
            },
        });
        if ok {
            Ok(v)
        } else {
            Err(format!("'{value}' is not one of the allowed values"))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataSpec {
    Literal(LiteralSpec),
    /// Supported formats; the first is the default.
    Complex {
        formats: Vec<Format>,
        maximum_megabytes: Option<u64>,
    },
    /// Supported CRSs; the first is the default.
    BoundingBox {
        crss: Vec<String>,
        dimensions: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub identifier: String,
    pub title: String,
    pub abstract_: String,
    pub min_occurs: u32,
    pub max_occurs: u32,
    pub data: DataSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    pub identifier: String,
    pub title: String,
    pub abstract_: String,
    pub data: DataSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessDescription {
    pub identifier: String,
    pub title: String,
    pub abstract_: String,
    pub version: String,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    pub store_supported: bool,
    pub status_supported: bool,
}

impl ProcessDescription {
    pub fn input(&self, id: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.identifier == id)
    }
    pub fn output(&self, id: &str) -> Option<&OutputSpec> {
        self.outputs.iter().find(|o| o.identifier == id)
    }
}

/// A checked input value as a process sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Literal(String),
    BoundingBox(BoundingBox),
    Complex(ComplexValue),
}

/// Checked inputs, in request order; an identifier may occur several times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs(pub Vec<(String, Value)>);

impl Inputs {
    pub fn first(&self, id: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }
    pub fn literal(&self, id: &str) -> Option<&str> {
        match self.first(id) {
            Some(Value::Literal(s)) => Some(s),
            _ => None,
        }
    }
}

/// A process result value.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputValue {
    Literal(String),
    BoundingBox(BoundingBox),
    Complex { mime_type: String, data: Vec<u8> },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs(pub Vec<(String, OutputValue)>);

impl Outputs {
    pub fn get(&self, id: &str) -> Option<&OutputValue> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }
    /// The value of output `id` in the requested media type: a process that offers an output
    /// in several formats pushes one complex value per format under the same identifier. The
    /// first value when none is requested or none matches.
    pub fn get_format(&self, id: &str, mime: Option<&str>) -> Option<&OutputValue> {
        let wanted = |v: &OutputValue| match (v, mime) {
            (OutputValue::Complex { mime_type, .. }, Some(m)) => {
                crate::model::format::matches(&Format::mime(mime_type), Some(m), None, None)
            }
            _ => false,
        };
        self.0
            .iter()
            .find(|(k, v)| k == id && wanted(v))
            .map(|(_, v)| v)
            .or_else(|| self.get(id))
    }
}

/// Why a process did not produce outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessError {
    /// The process failed; the message is shown to the client.
    Failed(String),
    /// The job was cancelled (time limit reached).
    Cancelled,
}

/// A cancellation flag that sleeping processes can wait on.
#[derive(Debug, Default)]
pub struct CancelToken {
    flag: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
}

impl CancelToken {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cond.notify_all();
    }
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

type ProgressFn = dyn Fn(u32, &str) + Send + Sync;

/// What a running process can see of its job: progress reporting and cancellation.
#[derive(Clone)]
pub struct Context {
    cancel: Arc<CancelToken>,
    progress: Arc<ProgressFn>,
    /// The server's error log (none in tests).
    log: Option<Arc<LogFn>>,
}

type LogFn = dyn Fn(crate::model::LogLevel, &str) + Send + Sync;

impl Context {
    pub fn new(cancel: Arc<CancelToken>, progress: Arc<ProgressFn>) -> Self {
        Context {
            cancel,
            progress,
            log: None,
        }
    }
    /// The same context, writing `log` lines to the server's error log.
    pub fn with_log(mut self, log: Arc<LogFn>) -> Self {
        self.log = Some(log);
        self
    }
    /// Writes a line to the server's error log (if the context has one).
    pub fn log(&self, level: crate::model::LogLevel, message: &str) {
        if let Some(l) = &self.log {
            l(level, message);
        }
    }
    /// A context that is never cancelled and ignores progress (for tests).
    pub fn detached() -> Self {
        Context::new(Arc::new(CancelToken::default()), Arc::new(|_, _| {}))
    }
    /// Reports progress; returns Err when the job has been cancelled (a progress point).
    pub fn progress(&self, percent: u32, message: &str) -> Result<(), ProcessError> {
        if self.cancel.is_cancelled() {
            return Err(ProcessError::Cancelled);
        }
        (self.progress)(percent.min(100), message);
        Ok(())
    }
    /// Whether the job has been cancelled (time limit reached): long loops that do not report
    /// progress at every step check this and return `ProcessError::Cancelled`.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
    /// Sleeps, waking early with Err when the job is cancelled.
    pub fn sleep(&self, d: Duration) -> Result<(), ProcessError> {
        let deadline = Instant::now() + d;
        let mut g = self.cancel.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.cancel.is_cancelled() {
                return Err(ProcessError::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            g = self
                .cancel
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A WPS process.
pub trait Process: Send + Sync {
    fn description(&self) -> &ProcessDescription;
    fn execute(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError>;
    /// Whether a job interrupted by the death of its Apache child may simply run again.
    fn rerunnable(&self) -> bool {
        true
    }
    /// Whether the process always returns promptly: it only computes on its inputs in
    /// memory, in time bounded by their size (no I/O, no library that may hang, no sleep). A
    /// synchronous request may then run it on its own thread, still counted against its
    /// process group's threads, instead of handing it to a worker and waiting (see
    /// `Pool::run_here`).
    fn quick(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_types_check_and_canonicalise() {
        assert_eq!(LiteralType::Integer.check(" 42 ").unwrap(), "42");
        assert!(LiteralType::Integer.check("4.2").is_err());
        assert!(LiteralType::Float.check("abc").is_err());
        assert!(LiteralType::Float.check("NaN").is_err());
        assert_eq!(LiteralType::Float.check("1e3").unwrap(), "1e3");
        assert_eq!(LiteralType::Boolean.check("TRUE").unwrap(), "true");
        assert_eq!(LiteralType::Boolean.check("0").unwrap(), "false");
        assert!(LiteralType::Boolean.check("yes").is_err());
        assert_eq!(LiteralType::String.check(" a b ").unwrap(), " a b ");
    }

    #[test]
    fn allowed_values_and_ranges() {
        let spec = LiteralSpec {
            data_type: LiteralType::Float,
            allowed: vec![
                Allowed::Value("0".into()),
                Allowed::Range {
                    min: 10.0,
                    max: 100.0,
                    spacing: Some(10.0),
                },
            ],
            default: None,
            uom: None,
        };
        assert!(spec.check("0.0").is_ok());
        assert!(spec.check("30").is_ok());
        assert!(spec.check("35").is_err());
        assert!(spec.check("110").is_err());
        assert!(spec.check("5").is_err());
    }

    #[test]
    fn context_sleep_wakes_on_cancel() {
        let token = Arc::new(CancelToken::default());
        let ctx = Context::new(token.clone(), Arc::new(|_, _| {}));
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let r = ctx.sleep(Duration::from_secs(30));
            (r, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        token.cancel();
        let (r, took) = t.join().unwrap();
        assert_eq!(r, Err(ProcessError::Cancelled));
        assert!(took < Duration::from_secs(30));
    }
}
