//! Values every part of the config shares: the error that names the file and line, and
//! durations and sizes as `pywps.cfg` spells them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(path: &Path, line: usize, message: String) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            line: Some(line),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path.display(), l, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses a duration: "90" or "90s" (seconds), "10m", "2h", "7d"; must be more than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration '{s}' (use e.g. 90s, 10m, 2h, 7d)"
            ))
        }
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 && n <= 100 * 365 * 86_400 / mult => Ok(Duration::from_secs(n * mult)),
        _ => Err(format!(
            "invalid duration '{s}' (use e.g. 90s, 10m, 2h, 7d)"
        )),
    }
}

/// Parses a size such as "3mb", "1 GB", "100kb", "512k", "1048576", "2.5mb" into bytes (1024-based).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim_start());
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size '{s}': unknown unit '{unit}' (use b, kb, mb or gb)"
            ))
        }
    };
    let bad =
        || format!("invalid size '{s}': expected a number with an optional unit (b, kb, mb, gb)");
    if num.is_empty() || num.starts_with('.') || num.matches('.').count() > 1 {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("invalid size '{s}': too large"));
    }
    let bytes = num.parse::<f64>().map_err(|_| bad())? * mult as f64;
    if bytes >= u64::MAX as f64 {
        return Err(format!("invalid size '{s}': too large"));
    }
    Ok(bytes.round() as u64)
}

/// `allowedinputpaths`: directories separated by `:` or `,` (PyWPS's syntax), kept absolute.
pub fn parse_paths(v: &str, base: &Path) -> Vec<PathBuf> {
    v.split([':', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| base.join(s))
        .collect()
}
