//! Command lines in the config: words (double quotes group, no shell), the programs they name
//! (absolute, next to the config, or in `PATH`), and the key getter of a section being parsed.

use super::values::ConfigError;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The `PATH` of every command (and where bare program names are looked up at load time).
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

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

/// Resolves the program of a command: absolute, relative to the config file's directory (when
/// it contains a '/'), or looked up in `PATH`; it must be an executable regular file.
pub fn resolve_program(name: &str, config: &Path) -> Result<PathBuf, String> {
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
