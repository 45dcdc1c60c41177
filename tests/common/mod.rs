//! Test harness: runs a real Debian `apache2` on a free loopback port with a generated
//! httpd.conf that loads the freshly built module, and talks HTTP to it.
//!
//! A test server is made with [`Apache::builder`]: a service config (the test base with every
//! built-in, or one given whole) mounted at `/wps`, optionally on a worker pool, with more
//! directives before and after, files in its directory, on the event or prefork MPM:
//!
//! ```ignore
//! let a = Apache::builder("name")
//!     .mpm(Mpm::Prefork)
//!     .server_lines("parallelprocesses = 2")
//!     .processes("sleep.timeout = 3s")
//!     .pool("pywps threads=2")
//!     .start();
//! ```
//!
//! Below it: requests (`Apache::get`/`post`, [`submit`], [`wait_final`], Execute documents
//! with [`execute_xml`]), and checks ([`assert_valid`], [`Resp::assert_exception`],
//! [`assert_clean_log`]). The free functions `write_service_config*`, `configtest` and
//! `Apache::start*` are the older form of the builder, kept for tests written against them.
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
///
/// The older form of `Apache::builder(..).processes(extra)`.
pub fn write_service_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    write_service_config_with(dir, name, "", extra)
}

/// Like `write_service_config`, with extra `[server]` lines.
///
/// The older form of `Apache::builder(..).server_lines(server).processes(extra)`.
pub fn write_service_config_with(dir: &Path, name: &str, server: &str, extra: &str) -> PathBuf {
    write_file(dir, name, service_config(dir, TITLE, server, extra), 0o644)
}

/// The title of the test base service config.
pub const TITLE: &str = "Test WPS";

/// The test base service config of a server directory: every built-in process, two
/// languages, `maxrequestsize = 64kb`, the work directory `DIR/work`; then the `server` lines
/// (a key of the base given there replaces the base's line) and the `processes` lines.
pub fn service_config(dir: &Path, title: &str, server: &str, processes: &str) -> String {
    let base = [
        ("language", "en-US, de-DE".to_owned()),
        ("maxrequestsize", "64kb".to_owned()),
        ("workdir", dir.join("work").display().to_string()),
    ];
    let given = |key: &str| {
        server
            .lines()
            .any(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
    };
    let base: String = base
        .iter()
        .filter(|(k, _)| !given(k))
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    format!(
        "[metadata:main]\nidentification_title = {title}\nprovider_name = mod_wps tests\n\n\
         [server]\n{base}{server}\n\n[processes]\nbuiltin = all\n{processes}"
    )
}

/// Writes `body` to `dir/name` (parent directories created, readable by the Apache children)
/// with this mode; returns its path.
pub fn write_file(dir: &Path, name: &str, body: impl AsRef<[u8]>, mode: u32) -> PathBuf {
    let p = dir.join(name);
    let parent = p.parent().unwrap();
    if !parent.exists() {
        std::fs::create_dir_all(parent).unwrap();
        chmod(parent, 0o755);
    }
    std::fs::write(&p, body).unwrap();
    chmod(&p, mode);
    p
}

pub struct Apache {
    pub dir: PathBuf,
    pub port: u16,
    pub conf: PathBuf,
    pub mpm: Mpm,
    /// Whether dropping the server leaves its directory (see `Apache::stop_keeping_dir`).
    keep_dir: bool,
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
///
/// The older form of `Apache::builder("configtest").no_service().directives(d).configtest()`.
pub fn configtest(directives: &str) -> (bool, String) {
    let t = Apache::builder("configtest")
        .no_service()
        .directives(directives)
        .configtest();
    (t.ok, t.output.clone())
}

impl Apache {
    /// A test server to configure and start (see the module documentation).
    pub fn builder(name: &str) -> ApacheBuilder {
        ApacheBuilder::new(name)
    }

    /// Starts a server with `directives` (which may use `{dir}` for its scratch directory).
    ///
    /// The older form of `Apache::builder(name).mpm(mpm).no_service().directives(d).start()`.
    pub fn start(name: &str, mpm: Mpm, directives: &str) -> Apache {
        let dir = scratch(name);
        let directives = directives.replace("{dir}", &dir.display().to_string());
        Self::start_in(dir, mpm, &directives)
    }

    /// Starts a server in `dir` with `directives`.
    ///
    /// The older form of `Apache::builder(..).in_dir(dir).mpm(mpm).no_service().directives(d)`.
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

    /// Asserts that the error log has none of the lines that must never appear
    /// (`assert_clean_log`).
    pub fn assert_clean_log(&self) {
        assert_clean_log(&self.error_log());
    }

    /// Stops the server and leaves its directory (and job store) for a next server
    /// (`Apache::builder(..).in_dir(dir)`); returns it.
    pub fn stop_keeping_dir(mut self) -> PathBuf {
        self.stop();
        self.keep_dir = true;
        self.dir.clone()
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
        if self.keep_dir {
            return;
        }
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
    /// Asserts the Content-Type header starts with `prefix`.
    pub fn assert_content_type(&self, prefix: &str) {
        assert!(
            self.header("Content-Type")
                .unwrap_or_default()
                .starts_with(prefix),
            "content type {:?} is not {prefix}: {:?}",
            self.header("Content-Type"),
            self.headers
        );
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
        self.assert_content_type("text/xml");
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
    // xmllint reports a prefix used undeclared ("namespace error") but still validates
    // the document and exits 0: such a document is not XML a client can read, so any
    // message besides the verdict fails
    let clean = text.lines().filter(|l| !l.trim().is_empty()).count() == 1;
    assert!(
        out.status.success() && clean && text.trim_end().ends_with("validates"),
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
    ///
    /// The older form of `Apache::builder(..).in_dir(dir).no_service().edit_conf(edit)`.
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
            keep_dir: false,
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

// ---------------------------------------------------------------------------------------------
// The builder of a test server

/// A test server being configured: by default the test base service config (every built-in
/// process; see [`service_config`]) at `DIR/wps.cfg`, mounted at `/wps`, on the event MPM.
/// `{dir}` in any of the texts given is the server's directory, `{work}` its `DIR/work`.
///
/// The generated directives are, in this order: `directives`, `WPSDaemonProcess` of the
/// `pool`, the `WPSScriptAlias` of every alias of the service config (with
/// `process-group=` the pool), those of the further `service`s, `directives_after`.
pub struct ApacheBuilder {
    name: String,
    dir: Option<PathBuf>,
    mpm: Mpm,
    title: String,
    server: String,
    processes: String,
    whole_config: Option<String>,
    aliases: Vec<String>,
    services: Vec<(String, String)>,
    pool: Option<String>,
    before: String,
    after: String,
    files: Vec<(String, Vec<u8>, u32)>,
    edit: Option<Box<dyn Fn(String) -> String>>,
}

/// The outcome of `ApacheBuilder::configtest` (its directory is removed when it is dropped).
pub struct ConfigTest {
    pub ok: bool,
    /// stdout and stderr of `apache2 -t`
    pub output: String,
    pub dir: PathBuf,
    /// the service config (`DIR/wps.cfg`), if one was written
    pub cfg: PathBuf,
}

impl Drop for ConfigTest {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ApacheBuilder {
    fn new(name: &str) -> ApacheBuilder {
        ApacheBuilder {
            name: name.to_owned(),
            dir: None,
            mpm: Mpm::Event,
            title: TITLE.to_owned(),
            server: String::new(),
            processes: String::new(),
            whole_config: None,
            aliases: vec!["/wps".to_owned()],
            services: Vec::new(),
            pool: None,
            before: String::new(),
            after: String::new(),
            files: Vec::new(),
            edit: None,
        }
    }

    pub fn mpm(mut self, mpm: Mpm) -> Self {
        self.mpm = mpm;
        self
    }

    /// Runs in this (existing) directory instead of a new scratch directory.
    pub fn in_dir(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The `identification_title` of the test base service config.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.to_owned();
        self
    }

    /// Lines added to `[server]` of the test base service config (a base key given here
    /// replaces the base's line).
    pub fn server_lines(mut self, lines: &str) -> Self {
        self.server.push_str(lines);
        self.server.push('\n');
        self
    }

    /// Lines added after `builtin = all` of the test base service config (more `[processes]`
    /// keys, then further sections).
    pub fn processes(mut self, lines: &str) -> Self {
        self.processes.push_str(lines);
        self
    }

    /// This whole service config instead of the test base.
    pub fn service_config(mut self, text: &str) -> Self {
        self.whole_config = Some(text.to_owned());
        self
    }

    /// One more URL at which the service config is mounted.
    pub fn alias(mut self, url: &str) -> Self {
        self.aliases.push(url.to_owned());
        self
    }

    /// No service config in the server's directory (the document root) and no
    /// `WPSScriptAlias` for it: the `service`s and directives say everything.
    pub fn no_service(mut self) -> Self {
        self.aliases.clear();
        self
    }

    /// A further service at `url`: the test base with these `[server]` lines, in
    /// `DIR/<url without the slash>/wps.cfg` (its own work directory beside it).
    pub fn service(mut self, url: &str, server_lines: &str) -> Self {
        self.services
            .push((url.to_owned(), server_lines.to_owned()));
        self
    }

    /// `WPSDaemonProcess NAME OPTIONS` (`spec` is `NAME OPTIONS`), used by every service.
    pub fn pool(mut self, spec: &str) -> Self {
        self.pool = Some(spec.to_owned());
        self
    }

    /// httpd.conf directives before the module's (MPM settings, other modules, pools).
    pub fn directives(mut self, text: &str) -> Self {
        self.before.push_str(text);
        self
    }

    /// httpd.conf directives after the module's (`<Location>` blocks, redirects).
    pub fn directives_after(mut self, text: &str) -> Self {
        self.after.push_str(text);
        self
    }

    /// A file written into the server's directory before it starts (`path` relative to it).
    pub fn file(mut self, path: &str, body: impl AsRef<[u8]>, mode: u32) -> Self {
        self.files
            .push((path.to_owned(), body.as_ref().to_vec(), mode));
        self
    }

    /// `edit` applied to the whole generated httpd.conf.
    pub fn edit_conf(mut self, edit: impl Fn(String) -> String + 'static) -> Self {
        self.edit = Some(Box::new(edit));
        self
    }

    /// Writes the files and service configs; returns the directory, the directives and the
    /// path of the service config.
    fn prepare(&self) -> (PathBuf, String, PathBuf) {
        let dir = self.dir.clone().unwrap_or_else(|| scratch(&self.name));
        let fill = |t: &str| {
            t.replace("{dir}", &dir.display().to_string())
                .replace("{work}", &dir.join("work").display().to_string())
        };
        for (path, body, mode) in &self.files {
            write_file(&dir, path, body, *mode);
        }
        let cfg = dir.join("wps.cfg");
        let group = self
            .pool
            .as_deref()
            .map(|p| {
                let name = p.split_whitespace().next().unwrap_or_default();
                format!(" process-group={name}")
            })
            .unwrap_or_default();
        let mut d = fill(&self.before);
        if let Some(p) = &self.pool {
            d.push_str(&format!("WPSDaemonProcess {p}\n"));
        }
        if !self.aliases.is_empty() {
            let text = match &self.whole_config {
                Some(t) => fill(t),
                None => service_config(
                    &dir,
                    &self.title,
                    &fill(&self.server),
                    &fill(&self.processes),
                ),
            };
            write_file(&dir, "wps.cfg", text, 0o644);
            for a in &self.aliases {
                d.push_str(&format!("WPSScriptAlias {a} {}{group}\n", cfg.display()));
            }
        }
        for (url, server) in &self.services {
            let sub = dir.join(url.trim_start_matches('/'));
            let c = write_file(
                &sub,
                "wps.cfg",
                service_config(&sub, &self.title, &fill(server), ""),
                0o644,
            );
            chmod(&sub, 0o755);
            d.push_str(&format!("WPSScriptAlias {url} {}{group}\n", c.display()));
        }
        d.push_str(&fill(&self.after));
        (dir, d, cfg)
    }

    pub fn start(self) -> Apache {
        let (dir, directives, _) = self.prepare();
        match self.edit {
            Some(edit) => Apache::start_in_with(dir, self.mpm, &directives, edit),
            None => Apache::start_in(dir, self.mpm, &directives),
        }
    }

    /// Runs `apache2 -t` on the configuration instead of starting it.
    pub fn configtest(self) -> ConfigTest {
        let (dir, directives, cfg) = self.prepare();
        let conf = dir.join("httpd.conf");
        let text = httpd_conf(&dir, free_port(), self.mpm, &directives);
        let text = match &self.edit {
            Some(edit) => edit(text),
            None => text,
        };
        std::fs::write(&conf, text).unwrap();
        let out = Command::new("apache2")
            .arg("-t")
            .arg("-f")
            .arg(&conf)
            .output()
            .expect("apache2 not installed (Debian package apache2)");
        ConfigTest {
            ok: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            dir,
            cfg,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

pub const EXEC: &str = "/wps?service=WPS&version=1.0.0&request=Execute";
pub const GET_CAPS: &str = "/wps?service=WPS&request=GetCapabilities";

/// A synchronous KVP Execute of `sleep` with this delay.
pub fn exec_sleep(delay: &str) -> String {
    format!("{EXEC}&identifier=sleep&DataInputs=delay={delay}")
}

/// A synchronous KVP Execute of `say_hello` with this name.
pub fn exec_hello(name: &str) -> String {
    format!("{EXEC}&identifier=say_hello&DataInputs=name={name}")
}

/// An asynchronous `sleep` (stored, with status updates).
pub fn sleep_async(delay: &str) -> String {
    format!(
        "{}&storeExecuteResponse=true&status=true",
        exec_sleep(delay)
    )
}

/// An asynchronous `say_hello` (stored).
pub fn hello_async(name: &str) -> String {
    format!("{}&storeExecuteResponse=true", exec_hello(name))
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An XML Execute of `process` with these `wps:Input` elements and this content of
/// `wps:ResponseForm` (none when empty).
pub fn execute_xml(process: &str, inputs: &str, response_form: &str) -> String {
    let form = if response_form.is_empty() {
        String::new()
    } else {
        format!("<wps:ResponseForm>{response_form}</wps:ResponseForm>")
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>{process}</ows:Identifier>
  <wps:DataInputs>{inputs}</wps:DataInputs>
  {form}
</wps:Execute>"#
    )
}

/// A literal `wps:Input` (`value` is inserted as is: escape it if needed).
pub fn literal_input(id: &str, value: &str) -> String {
    format!(
        r#"<wps:Input><ows:Identifier>{id}</ows:Identifier><wps:Data><wps:LiteralData>{value}</wps:LiteralData></wps:Data></wps:Input>"#
    )
}

/// A complex `wps:Input` (`content` is inserted as is: XML, escaped text or a CDATA section).
pub fn complex_input(id: &str, mime: &str, content: &str) -> String {
    format!(
        r#"<wps:Input><ows:Identifier>{id}</ows:Identifier><wps:Data><wps:ComplexData mimeType="{mime}">{content}</wps:ComplexData></wps:Data></wps:Input>"#
    )
}

/// The `wps:ResponseForm` content asking for output `id` raw.
pub fn raw_output(id: &str) -> String {
    format!("<wps:RawDataOutput><ows:Identifier>{id}</ows:Identifier></wps:RawDataOutput>")
}

/// Runs `n` concurrent GETs of `path`, each on its own thread and connection, released
/// together.
pub fn burst(a: &Apache, n: usize, path: &str) -> Vec<Resp> {
    let start = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    a.get(path)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Asynchronous jobs

/// The `statusLocation` attribute of an ExecuteResponse.
pub fn status_location(doc: &str) -> String {
    let start = doc
        .find("statusLocation=\"")
        .unwrap_or_else(|| panic!("no statusLocation: {doc}"))
        + "statusLocation=\"".len();
    let end = doc[start..].find('"').unwrap() + start;
    doc[start..end].to_owned()
}

/// The path of an absolute URL of this server (scheme and authority removed).
pub fn url_path(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let slash = rest.find('/').unwrap_or(rest.len());
    rest[slash..].to_owned()
}

/// The path of the status document an ExecuteResponse names.
pub fn status_path(doc: &str) -> String {
    url_path(&status_location(doc))
}

/// An accepted job of the service at `/wps`: its id and the path of its status document.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub path: String,
}

impl Job {
    pub fn from_accepted(a: &Apache, doc: &str) -> Job {
        let url = status_location(doc);
        let prefix = format!("http://127.0.0.1:{}/wps/outputs/", a.port);
        assert!(url.starts_with(&prefix), "statusLocation {url}");
        let id = url[prefix.len()..]
            .strip_suffix(".xml")
            .unwrap_or_else(|| panic!("statusLocation {url}"))
            .to_owned();
        assert_eq!(id.len(), 36, "job id {id}");
        Job {
            id,
            path: url_path(&url),
        }
    }
}

/// Submits an asynchronous Execute (GET) to `/wps` and checks the ProcessAccepted answer.
pub fn submit(a: &Apache, path: &str) -> Job {
    let r = a.get(path);
    let t = r.text();
    assert_eq!(r.status, 200, "{path}: {t}");
    assert!(t.contains("<wps:ProcessAccepted>"), "{t}");
    Job::from_accepted(a, &t)
}

/// The state element of a status document.
pub fn job_state(doc: &str) -> &'static str {
    for s in [
        "ProcessAccepted",
        "ProcessStarted",
        "ProcessSucceeded",
        "ProcessFailed",
        "ProcessPaused",
    ] {
        if doc.contains(&format!("<wps:{s}")) {
            return s;
        }
    }
    panic!("no process state in {doc}")
}

/// A status document as served: 200, text/xml, nothing before `<?xml`.
pub fn fetch_status(a: &Apache, path: &str) -> Resp {
    let r = a.get(path);
    let t = r.text();
    assert_eq!(r.status, 200, "{path}: {t}");
    r.assert_content_type("text/xml");
    assert!(t.starts_with("<?xml"), "not an XML document start: {t:?}");
    r
}

/// Polls the status document at `path` every 50 ms (`fetch_status`) until it is final
/// (Succeeded or Failed); returns the final response and every distinct document seen on the
/// way.
pub fn wait_final(a: &Apache, path: &str, within: Duration) -> (Resp, Vec<Resp>) {
    let deadline = Instant::now() + within;
    let mut seen: Vec<Resp> = Vec::new();
    loop {
        let r = fetch_status(a, path);
        let st = job_state(&r.text());
        if !seen.iter().any(|s| s.body == r.body) {
            seen.push(r.clone());
        }
        if st == "ProcessSucceeded" || st == "ProcessFailed" {
            return (r, seen);
        }
        assert!(
            Instant::now() < deadline,
            "job {path} still {st} after {within:?}:\n{}",
            a.error_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts a final status document (or ExecuteResponse) succeeded with `expect` in it, and
/// validates it.
pub fn assert_succeeded(r: &Resp, expect: &str) {
    let t = r.text();
    assert!(t.contains("<wps:ProcessSucceeded>"), "{t}");
    assert!(t.contains(expect), "{expect:?} not in {t}");
    assert_valid(&r.body);
}

// ---------------------------------------------------------------------------------------------
// The error log

/// What must never appear in an error log.
pub const NEVER_LOGGED: &[&str] = &[
    "panic",
    "Segmentation fault",
    "exit signal",
    "child_init failed",
    "dispatcher error",
    "cannot write its status document",
];

/// Asserts that the error log has none of `NEVER_LOGGED`.
pub fn assert_clean_log(log: &str) {
    assert_log_lacks(log, NEVER_LOGGED);
}

/// Asserts that the error log contains none of `bad`.
pub fn assert_log_lacks(log: &str, bad: &[&str]) {
    for b in bad {
        assert!(!log.contains(b), "{b:?} in the error log:\n{log}");
    }
}
