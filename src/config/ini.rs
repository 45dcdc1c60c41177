//! Minimal reader for the Python `configparser` INI dialect (strict mode,
//! `BasicInterpolation` followed by `os.path.expandvars`, as PyWPS does).

/// One `key = value` entry; `value` is raw (not interpolated), multi-line values joined with `\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    /// The key as written (`key` is lower-cased, as configparser does).
    pub raw_key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Parsed file: `[DEFAULT]` entries plus the other sections in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ini {
    pub defaults: Vec<Entry>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IniError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: String) -> Result<T, IniError> {
    Err(IniError { line, message })
}

const MAX_DEPTH: usize = 10;

impl Ini {
    pub fn parse(text: &str) -> Result<Ini, IniError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ini = Ini::default();
        // None: no section yet; Some(None): [DEFAULT]; Some(Some(i)): sections[i]
        let mut cur: Option<Option<usize>> = None;
        let mut have_key = false; // a key is open for continuation lines
        let mut indent_level = usize::MAX;
        let mut pending_blank = 0usize;
        for (idx, line) in text.lines().enumerate() {
            let lineno = idx + 1;
            let value = line.trim();
            if value.is_empty() || value.starts_with('#') || value.starts_with(';') {
                if value.is_empty() && have_key {
                    pending_blank += 1;
                }
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            if let (Some(sec), true, true) = (cur, have_key, indent > indent_level) {
                let entries = match sec {
                    None => &mut ini.defaults,
                    Some(i) => &mut ini.sections[i].entries,
                };
                let e = entries.last_mut().expect("open key");
                for _ in 0..std::mem::take(&mut pending_blank) {
                    e.value.push('\n');
                }
                e.value.push('\n');
                e.value.push_str(value);
                continue;
            }
            pending_blank = 0;
            indent_level = indent;
            if let Some(rest) = value.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']').filter(|n| !n.trim().is_empty()) else {
                    return err(lineno, format!("malformed section header: {value}"));
                };
                have_key = false;
                if name == "DEFAULT" {
                    cur = Some(None);
                    continue;
                }
                if let Some(s) = ini.sections.iter().find(|s| s.name == name) {
                    return err(
                        lineno,
                        format!(
                            "duplicate section [{name}] (first defined at line {})",
                            s.line
                        ),
                    );
                }
                ini.sections.push(Section {
                    name: name.to_string(),
                    line: lineno,
                    entries: vec![],
                });
                cur = Some(Some(ini.sections.len() - 1));
                continue;
            }
            let Some(sec) = cur else {
                return err(
                    lineno,
                    format!("key line before any [section] header: {value}"),
                );
            };
            let Some(pos) = value.find(['=', ':']) else {
                return err(
                    lineno,
                    format!("malformed line, expected 'key = value': {value}"),
                );
            };
            let raw_key = value[..pos].trim().to_string();
            let key = raw_key.to_lowercase();
            if key.is_empty() {
                return err(lineno, format!("missing key name: {value}"));
            }
            let (sname, entries) = match sec {
                None => ("DEFAULT", &mut ini.defaults),
                Some(i) => {
                    let s = &mut ini.sections[i];
                    (s.name.as_str(), &mut s.entries)
                }
            };
            if let Some(e) = entries.iter().find(|e| e.key == key) {
                return err(
                    lineno,
                    format!(
                        "duplicate key '{key}' in section [{sname}] (first defined at line {})",
                        e.line
                    ),
                );
            }
            entries.push(Entry {
                key,
                raw_key,
                value: value[pos + 1..].trim().to_string(),
                line: lineno,
            });
            have_key = true;
        }
        for e in ini
            .sections
            .iter_mut()
            .flat_map(|s| s.entries.iter_mut())
            .chain(ini.defaults.iter_mut())
        {
            e.value.truncate(e.value.trim_end().len());
        }
        Ok(ini)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Raw entry of `key` in `section`, falling back to `[DEFAULT]`.
    pub fn raw(&self, section: &str, key: &str) -> Option<&Entry> {
        self.section(section)
            .and_then(|s| s.entry(key))
            .or_else(|| self.defaults.iter().find(|e| e.key == key))
    }

    /// Interpolated value (`%(name)s`, `%%`, then `$VAR`/`${VAR}` via `env`) and its line.
    pub fn get(
        &self,
        section: &str,
        key: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<(String, usize)>, IniError> {
        let Some(entry) = self.raw(section, key) else {
            return Ok(None);
        };
        let mut out = String::new();
        self.interpolate(section, &entry.value, &mut out, 1, entry)?;
        Ok(Some((expand_env(&out, env), entry.line)))
    }

    fn interpolate(
        &self,
        section: &str,
        raw: &str,
        out: &mut String,
        depth: usize,
        origin: &Entry,
    ) -> Result<(), IniError> {
        if depth > MAX_DEPTH {
            return err(
                origin.line,
                format!(
                    "interpolation of '{}' is too deeply nested (recursive reference?)",
                    origin.key
                ),
            );
        }
        let mut rest = raw;
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            if let Some(r) = rest.strip_prefix("%%") {
                out.push('%');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("%(") {
                let Some(close) = r
                    .find(')')
                    .filter(|&c| c > 0 && r[c + 1..].starts_with('s'))
                else {
                    return err(
                        origin.line,
                        format!("bad interpolation syntax in '{}': {rest}", origin.key),
                    );
                };
                let name = r[..close].to_lowercase();
                let Some(target) = self.raw(section, &name) else {
                    return err(
                        origin.line,
                        format!("bad interpolation reference in '{}': no key '{name}' in [{section}] or [DEFAULT]", origin.key),
                    );
                };
                self.interpolate(section, &target.value, out, depth + 1, origin)?;
                rest = &r[close + 2..];
            } else {
                return err(
                    origin.line,
                    format!(
                        "'%' must be followed by '%' or '(' in '{}': {rest}",
                        origin.key
                    ),
                );
            }
        }
        out.push_str(rest);
        Ok(())
    }
}

/// Like Python's `os.path.expandvars`: `$name` / `${name}`; unset variables are left unchanged.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('$') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let (name, len) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(c) => (&b[..c], c + 2),
                None => ("", 0),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], n)
        };
        match env(name).filter(|_| !name.is_empty()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[p..p + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/wps".into()),
            "X_Y" => Some("xy".into()),
            _ => None,
        }
    }

    fn get(ini: &Ini, s: &str, k: &str) -> Result<Option<(String, usize)>, IniError> {
        ini.get(s, k, &env)
    }

    #[test]
    fn basic_syntax_and_comments() {
        let ini =
            Ini::parse("# c\n; c\n[a]\nKey = v ; not a comment\nb: 1 # kept\nc=\n\n[b]\n x = y\n")
                .unwrap();
        assert_eq!(ini.sections.len(), 2);
        let a = ini.section("a").unwrap();
        assert_eq!(a.line, 3);
        assert_eq!(a.entry("key").unwrap().value, "v ; not a comment");
        assert_eq!(a.entry("key").unwrap().line, 4);
        assert_eq!(a.entry("b").unwrap().value, "1 # kept");
        assert_eq!(a.entry("c").unwrap().value, "");
        assert_eq!(ini.section("b").unwrap().entry("x").unwrap().value, "y");
    }

    #[test]
    fn continuation_lines() {
        let ini = Ini::parse("[a]\nk = one\n  two\n\n  three\n# c\n\nnext = 1\n  more\n").unwrap();
        let a = ini.section("a").unwrap();
        assert_eq!(a.entry("k").unwrap().value, "one\ntwo\n\nthree");
        assert_eq!(a.entry("next").unwrap().value, "1\nmore");
        // a continuation needs deeper indentation than its key line
        let ini = Ini::parse("[a]\n  k = 1\n  j = 2\n").unwrap();
        assert_eq!(ini.section("a").unwrap().entry("j").unwrap().value, "2");
    }

    #[test]
    fn syntax_errors_with_lines() {
        let e = |t: &str| Ini::parse(t).unwrap_err();
        assert_eq!(e("\nk = v\n").line, 2);
        assert!(e("\nk = v\n").message.contains("before any [section]"));
        assert_eq!(e("[a]\nk = v\njunk\n").line, 3);
        assert_eq!(e("[a]\n= v\n").line, 2);
        assert_eq!(e("[a\n").line, 1);
        let d = e("[a]\n[b]\n[a]\n");
        assert_eq!(
            (d.line, d.message.contains("duplicate section [a]")),
            (3, true)
        );
        let d = e("[a]\nk=1\nK=2\n");
        assert_eq!((d.line, d.message.contains("duplicate key 'k'")), (3, true));
        // a continuation directly after a header is not allowed: it is an (indented) key line
        assert_eq!(e("[a]\n  junk\n").line, 2);
    }

    #[test]
    fn interpolation_and_defaults() {
        let t = "[DEFAULT]\nbase = /srv\n[a]\ndir = %(base)s/out\npct = 100%%\nnested = %(DIR)s/x\n[b]\nbase = /opt\nd = %(base)s\n";
        let ini = Ini::parse(t).unwrap();
        assert_eq!(get(&ini, "a", "dir").unwrap(), Some(("/srv/out".into(), 4)));
        assert_eq!(get(&ini, "a", "pct").unwrap().unwrap().0, "100%");
        assert_eq!(get(&ini, "a", "nested").unwrap().unwrap().0, "/srv/out/x");
        assert_eq!(get(&ini, "b", "d").unwrap().unwrap().0, "/opt");
        assert_eq!(get(&ini, "b", "base").unwrap().unwrap().0, "/opt");
        assert_eq!(get(&ini, "a", "base").unwrap(), Some(("/srv".into(), 2)));
        assert_eq!(get(&ini, "a", "missing").unwrap(), None);
    }

    #[test]
    fn interpolation_errors() {
        let ini = Ini::parse("[a]\nx = %(nope)s\ny = 5%\nz = %(z)s\nw = %(x\n").unwrap();
        let e = get(&ini, "a", "x").unwrap_err();
        assert_eq!((e.line, e.message.contains("no key 'nope'")), (2, true));
        assert_eq!(get(&ini, "a", "y").unwrap_err().line, 3);
        assert!(get(&ini, "a", "z")
            .unwrap_err()
            .message
            .contains("too deeply nested"));
        assert_eq!(get(&ini, "a", "w").unwrap_err().line, 5);
    }

    #[test]
    fn env_expansion() {
        assert_eq!(
            expand_env("$HOME/a ${X_Y}b $UNSET ${UNSET} $ ${x", &env),
            "/home/wps/a xyb $UNSET ${UNSET} $ ${x"
        );
        let ini = Ini::parse("[a]\np = $HOME/%(q)s\nq = ${X_Y}\n").unwrap();
        assert_eq!(get(&ini, "a", "p").unwrap().unwrap().0, "/home/wps/xy");
    }
}
