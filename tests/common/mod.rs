//! Test harness: runs a real Debian `apache2` on a free loopback port with a generated
//! httpd.conf that loads the freshly built module, and talks HTTP to it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const MODULES: &str = "/usr/lib/apache2/modules";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Prefork,
}

/// The freshly built module: `MOD_WPS_SO`, or the `libmod_wps.so` cargo built for this test
/// run beside the test binary in `target/*/deps/` (the copy in `target/*/` is only refreshed
/// by `cargo build`, not by `cargo test`).
pub fn module_path() -> PathBuf {
    if let Ok(p) = std::env::var("MOD_WPS_SO") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let so = deps.join("libmod_wps.so");
    assert!(so.exists(), "{} not built", so.display());
    so
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A scratch directory for one test server (readable by the Apache children).
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "mod_wps-test-{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    chmod(&d, 0o755);
    d
}

pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal service config with all built-in processes (plus extra lines at the end).
pub fn write_service_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    write_service_config_with(dir, name, "", extra)
}

/// Like `write_service_config`, with extra `[server]` lines.
pub fn write_service_config_with(dir: &Path, name: &str, server: &str, extra: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[metadata:main]\nidentification_title = Test WPS\nprovider_name = mod_wps tests\n\n\
             [server]\nlanguage = en-US, de-DE\nmaxrequestsize = 64kb\nworkdir = {work}\n{server}\n\n\
             [processes]\nbuiltin = all\n{extra}",
            work = dir.join("work").display()
        ),
    )
    .unwrap();
    chmod(&p, 0o644);
    p
}

pub struct Apache {
    pub dir: PathBuf,
    pub port: u16,
    pub conf: PathBuf,
    pub mpm: Mpm,
}

/// The httpd.conf of a test server: the given directives after a minimal base.
pub fn httpd_conf(dir: &Path, port: u16, mpm: Mpm, directives: &str) -> String {
    let (mpm_mod, mpm_conf) = match mpm {
        Mpm::Event => (
            "mpm_event_module mod_mpm_event.so",
            "StartServers 2\nServerLimit 4\nThreadsPerChild 25\nMaxRequestWorkers 100\nMinSpareThreads 10\nMaxSpareThreads 75",
        ),
        Mpm::Prefork => (
            "mpm_prefork_module mod_mpm_prefork.so",
            "StartServers 2\nMinSpareServers 2\nMaxSpareServers 8\nMaxRequestWorkers 80\nServerLimit 80",
        ),
    };
    let (m, f) = mpm_mod.split_once(' ').unwrap();
    let user = if is_root() {
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    format!(
        "ServerRoot {dir}\nServerName localhost\nListen 127.0.0.1:{port}\nPidFile {dir}/httpd.pid\n\
         ErrorLog {dir}/error.log\nLogLevel info wps:debug\nMutex file:{dir} default\n\
         LoadModule {m} {MODULES}/{f}\n{mpm_conf}\n\
         LoadModule authz_core_module {MODULES}/mod_authz_core.so\n\
         LoadModule authz_host_module {MODULES}/mod_authz_host.so\n\
         LoadModule wps_module {so}\n{user}DocumentRoot {dir}\nGracefulShutdownTimeout 30\n\n{directives}\n",
        dir = dir.display(),
        so = module_path().display(),
    )
}

/// Runs `apache2 -t` on a config made of `directives`; returns (success, output).
pub fn configtest(directives: &str) -> (bool, String) {
    let dir = scratch("configtest");
    let conf = dir.join("httpd.conf");
    std::fs::write(&conf, httpd_conf(&dir, free_port(), Mpm::Event, directives)).unwrap();
    let out = Command::new("apache2")
        .arg("-t")
        .arg("-f")
        .arg(&conf)
        .output()
        .expect("apache2 not installed (Debian package apache2)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), text)
}

impl Apache {
    /// Starts a server with `directives` (which may use `{dir}` for its scratch directory).
    pub fn start(name: &str, mpm: Mpm, directives: &str) -> Apache {
        let dir = scratch(name);
        let directives = directives.replace("{dir}", &dir.display().to_string());
        Self::start_in(dir, mpm, &directives)
    }

    pub fn start_in(dir: PathBuf, mpm: Mpm, directives: &str) -> Apache {
        Self::start_in_with(dir, mpm, directives, |conf| conf)
    }

    fn ctl(&self, what: &str) -> std::process::Output {
        Command::new("apache2")
            .arg("-f")
            .arg(&self.conf)
            .arg("-k")
            .arg(what)
            .output()
            .expect("apache2 not installed (Debian package apache2)")
    }

    /// Waits until the server runs: its pid file is written, it logged that it resumed
    /// normal operations (after the config-check pass), and it accepts connections.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.pid().is_some()
                && self.error_log().contains("resuming normal operations")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("apache did not start:\n{}", self.error_log());
    }

    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("httpd.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Rewrites the directives of the config (for reloads).
    pub fn rewrite_conf(&self, directives: &str) {
        let directives = directives.replace("{dir}", &self.dir.display().to_string());
        std::fs::write(
            &self.conf,
            httpd_conf(&self.dir, self.port, self.mpm, &directives),
        )
        .unwrap();
    }

    /// `apachectl graceful`, then waits until the new generation reports that it runs.
    pub fn graceful(&self) {
        let before = self
            .error_log()
            .matches("resuming normal operations")
            .count();
        let out = self.ctl("graceful");
        assert!(out.status.success(), "graceful failed: {:?}", out);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .error_log()
                .matches("resuming normal operations")
                .count()
                > before
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("graceful restart did not complete:\n{}", self.error_log());
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn get(&self, path_and_query: &str) -> Resp {
        self.request("GET", path_and_query, None, &[])
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Resp {
        self.request("POST", path, Some(body), &[("Content-Type", "text/xml")])
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        http(self.port, method, path, body, headers)
    }

    pub fn stop(&mut self) {
        let pid = self.pid();
        let _ = self.ctl("stop");
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "--- error log of {} ---\n{}",
                self.dir.display(),
                self.error_log()
            );
        }
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Asserts the body is an ows:ExceptionReport with this code (and locator, if given),
    /// that it validates, and that the HTTP status matches.
    pub fn assert_exception(&self, status: u16, code: &str, locator: Option<&str>) {
        let t = self.text();
        assert_eq!(self.status, status, "status for {code}: {t}");
        assert!(
            t.contains("<ows:ExceptionReport"),
            "not an ExceptionReport: {t}"
        );
        assert!(
            t.contains(&format!("exceptionCode=\"{code}\"")),
            "expected {code}: {t}"
        );
        if let Some(l) = locator {
            assert!(
                t.contains(&format!("locator=\"{l}\"")),
                "expected locator {l}: {t}"
            );
        }
        assert!(
            self.header("Content-Type")
                .unwrap_or_default()
                .starts_with("text/xml"),
            "content type {:?}",
            self.header("Content-Type")
        );
        assert_valid(&self.body);
    }
}

/// One HTTP/1.1 request over a fresh loopback connection (`Connection: close`).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    // A server may answer (e.g. 413) and close before reading all of a large body.
    let _ = s.write_all(&bytes);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("Transfer-Encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

/// Validates an XML document with ../shared/bin/wps-validate (the official OGC schemas).
pub fn assert_valid(xml: &[u8]) {
    let validator = manifest_dir().join("../shared/bin/wps-validate");
    assert!(
        validator.exists(),
        "{} not found (shared/ must sit beside the project)",
        validator.display()
    );
    let dir = std::env::temp_dir().join(format!("mod_wps-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    static N: AtomicUsize = AtomicUsize::new(0);
    let f = dir.join(format!("doc-{}.xml", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&f, xml).unwrap();
    let out = Command::new(&validator).arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.trim_end().ends_with("validates"),
        "schema validation failed:\n{text}{}\ndocument:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(xml)
    );
    let _ = std::fs::remove_file(&f);
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Apache {
    /// Like `start_in`, with `edit` applied to the whole generated httpd.conf (e.g. to load
    /// the module the way an installed system does instead of from the build tree).
    pub fn start_in_with(
        dir: PathBuf,
        mpm: Mpm,
        directives: &str,
        edit: impl Fn(String) -> String,
    ) -> Apache {
        let port = free_port();
        let conf = dir.join("httpd.conf");
        std::fs::write(&conf, edit(httpd_conf(&dir, port, mpm, directives))).unwrap();
        let a = Apache {
            dir,
            port,
            conf,
            mpm,
        };
        let out = a.ctl("start");
        assert!(
            out.status.success(),
            "apache2 -k start failed: {:?}\n{}",
            out,
            a.error_log()
        );
        a.wait_ready();
        a
    }
}
