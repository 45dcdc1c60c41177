//! Connections of the PostgreSQL store: the settings read from the service config (password
//! from the connection string, `PGPASSWORD` or a libpq password file; never logged), and a
//! small pool per Apache child. Nothing connects before `arm` is called in the child: a client
//! made in the parent would be shared by every forked child.

use super::super::{StoreError, StoreLog, StoreResult};
use crate::model::LogLevel;
use postgres::{Client, Config, NoTls};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request waits for a free connection of its child.
const CHECKOUT_WAIT: Duration = Duration::from_secs(5);
/// After a failed connection attempt, further requests fail at once for this long.
const BREAKER: Duration = Duration::from_secs(1);
/// The `application_name` of every connection (visible in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "mod_wps";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses a connection string (URL or libpq key/value) and completes it: the password from
/// `PGPASSWORD` or the password file when the string has none, time limits, keepalives.
pub fn settings(conn: &str, passfile: Option<&Path>) -> Result<Config, String> {
    let mut cfg: Config = conn.parse().map_err(|e| {
        // the parser's message never quotes the string (it may hold a password)
        format!("not a PostgreSQL connection string (URL or key=value pairs): {e}")
    })?;
    if cfg.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err(
            "sslmode=require is not supported (no TLS to PostgreSQL yet): use a Unix socket, loopback or a trusted network"
                .into(),
        );
    }
    if cfg.get_hosts().is_empty() {
        cfg.host("localhost");
    }
    if cfg.get_user().is_none() {
        return Err("the connection string names no user".into());
    }
    if cfg.get_password().is_none() {
        if let Some(p) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
            cfg.password(p);
        } else {
            let file = passfile
                .map(Path::to_path_buf)
                .or_else(|| std::env::var_os("PGPASSFILE").map(Into::into));
            if let Some(f) = file {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| format!("cannot read the password file {}: {e}", f.display()))?;
                if let Some(p) = passfile_lookup(&text, &cfg) {
                    cfg.password(p);
                }
            }
        }
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    cfg.keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .tcp_user_timeout(Duration::from_secs(20))
        .application_name(APPLICATION_NAME);
    Ok(cfg)
}

/// Where a store lives, for the log: `postgresql://user@host:port/db` (never the password).
pub fn describe(cfg: &Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or(""),
        cfg.get_dbname().or(cfg.get_user()).unwrap_or("")
    )
}

/// Splits a password-file line at unescaped colons (`\:` and `\\` are escapes).
fn passfile_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// The password of the first matching `hostname:port:database:username:password` line of a
/// libpq password file (`*` matches anything).
pub fn passfile_lookup(text: &str, cfg: &Config) -> Option<String> {
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = cfg.get_user().unwrap_or("");
    let db = cfg.get_dbname().unwrap_or(user);
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(passfile_fields)
        .filter(|f| f.len() == 5)
        .find(|f| {
            let m = |pat: &str, v: &str| pat == "*" || pat == v;
            m(&f[0], &host) && m(&f[1], &port) && m(&f[2], db) && m(&f[3], user)
        })
        .map(|f| f[4].clone())
}

/// Whether an error means the database cannot be reached (rather than a refused statement).
pub fn is_down(e: &postgres::Error) -> bool {
    match e.as_db_error() {
        // connection exceptions, operator intervention (shutdown, starting up), resources
        Some(db) => ["08", "57", "53"].contains(&&db.code().code()[..2]),
        None => true,
    }
}

/// A database error as a store error (the message names no secret).
pub fn store_err(e: &postgres::Error) -> StoreError {
    if is_down(e) {
        StoreError::Down(format!("PostgreSQL: {e}"))
    } else {
        StoreError::Unavailable(format!("PostgreSQL: {e}"))
    }
}

/// The pool of one store in one Apache child.
pub struct Pool {
    cfg: Config,
    location: String,
    max: usize,
    /// The process the pool may connect in (0: none yet, e.g. the Apache parent).
    armed: AtomicI32,
    state: Mutex<PoolState>,
    freed: Condvar,
    log: Mutex<Option<StoreLog>>,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Client>,
    open: usize,
    /// Until when new attempts fail at once (after a failed one).
    broken_until: Option<Instant>,
    /// Since when the database answers again (None: down or not tried).
    up_since: Option<Instant>,
    /// Whether the last attempt failed (so the log says it once, and when it is back).
    down: bool,
}

/// A connection taken from the pool; it goes back when dropped, unless it broke.
pub struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    /// Whether it was idle in the pool (a database restart since then breaks it).
    pub reused: bool,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a pooled connection")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a pooled connection")
    }
}

impl Conn<'_> {
    /// Drops the connection instead of giving it back.
    pub fn discard(mut self) {
        self.client.take();
        self.pool.closed();
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if c.is_closed() {
                self.pool.closed();
            } else {
                lock(&self.pool.state).idle.push(c);
                self.pool.freed.notify_one();
            }
        }
    }
}

impl Pool {
    pub fn new(cfg: Config, max: usize) -> Pool {
        Pool {
            location: describe(&cfg),
            cfg,
            max: max.max(1),
            armed: AtomicI32::new(0),
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
            log: Mutex::new(None),
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Allows connections in this process (an Apache child), from now on.
    pub fn arm(&self, log: StoreLog) {
        *lock(&self.log) = Some(log);
        self.armed
            .store(std::process::id() as i32, Ordering::SeqCst);
    }

    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst) == std::process::id() as i32
    }

    pub fn log(&self, level: LogLevel, msg: &str) {
        if let Some(l) = lock(&self.log).clone() {
            l(level, msg);
        }
    }

    fn closed(&self) {
        let mut s = lock(&self.state);
        s.open = s.open.saturating_sub(1);
        drop(s);
        self.freed.notify_one();
    }

    /// How long the database has answered without interruption.
    pub fn up_for(&self) -> Duration {
        lock(&self.state)
            .up_since
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    /// Opens a connection outside the pool (the LISTEN connection), with the same settings.
    pub fn connect_dedicated(&self) -> StoreResult<Client> {
        if !self.armed() {
            return Err(self.not_armed());
        }
        self.connect()
    }

    fn not_armed(&self) -> StoreError {
        StoreError::Unavailable(
            "the PostgreSQL job store is used only in Apache children (no connection in this process)"
                .into(),
        )
    }

    fn connect(&self) -> StoreResult<Client> {
        match self.cfg.connect(NoTls) {
            Ok(mut c) => {
                // a stuck statement must not hold a request or a worker for ever
                let _ = c.batch_execute(
                    "SET statement_timeout = '30s'; SET idle_in_transaction_session_timeout = '60s'",
                );
                self.mark_up();
                Ok(c)
            }
            Err(e) => {
                let msg = format!("cannot connect to {}: {e}", self.location);
                self.mark_down(&msg);
                Err(StoreError::Down(msg))
            }
        }
    }

    pub fn mark_up(&self) {
        let mut s = lock(&self.state);
        s.broken_until = None;
        if s.up_since.is_none() {
            s.up_since = Some(Instant::now());
        }
        if std::mem::take(&mut s.down) {
            drop(s);
            self.log(
                LogLevel::Warning,
                &format!("job store {} is reachable again", self.location),
            );
        }
    }

    pub fn mark_down(&self, why: &str) {
        let mut s = lock(&self.state);
        s.broken_until = Some(Instant::now() + BREAKER);
        s.up_since = None;
        let first = !std::mem::replace(&mut s.down, true);
        // pooled connections went with the server
        s.open -= s.idle.len().min(s.open);
        s.idle.clear();
        drop(s);
        if first {
            self.log(
                LogLevel::Error,
                &format!(
                    "job store unavailable: {why}; requests that need it are answered 503 (ServerBusy) until it is back"
                ),
            );
        }
    }

    /// A connection: an idle one, a new one (up to `max`), or the first one freed within
    /// `CHECKOUT_WAIT`. Fails at once while the database is known to be down.
    pub fn get(&self) -> StoreResult<Conn<'_>> {
        if !self.armed() {
            return Err(self.not_armed());
        }
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut s = lock(&self.state);
        loop {
            if let Some(c) = s.idle.pop() {
                if c.is_closed() {
                    s.open = s.open.saturating_sub(1);
                    continue;
                }
                return Ok(Conn {
                    pool: self,
                    client: Some(c),
                    reused: true,
                });
            }
            if s.broken_until.is_some_and(|t| Instant::now() < t) {
                return Err(StoreError::Down(format!(
                    "{} did not answer a moment ago",
                    self.location
                )));
            }
            if s.open < self.max {
                s.open += 1;
                drop(s);
                return match self.connect() {
                    Ok(c) => Ok(Conn {
                        pool: self,
                        client: Some(c),
                        reused: false,
                    }),
                    Err(e) => {
                        self.closed();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Down(format!(
                    "all {} connections of this Apache child to the job store are busy",
                    self.max
                )));
            }
            s = self
                .freed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Runs `f` on a pooled connection. A connection that breaks is discarded; when it had
    /// been idle in the pool (the server may have restarted since), `f` runs once more on a
    /// new one.
    pub fn run<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> StoreResult<T> {
        for _ in 0..2 {
            let mut c = self.get()?;
            match f(&mut c) {
                Ok(v) => return Ok(v),
                Err(e) if is_down(&e) => {
                    let retry = c.reused;
                    c.discard();
                    if retry {
                        // the others idle since then are likely gone as well
                        let mut s = lock(&self.state);
                        s.open -= s.idle.len().min(s.open);
                        s.idle.clear();
                        // it was down, however briefly: leases may have lapsed meanwhile
                        s.up_since = None;
                    } else {
                        self.mark_down(&format!("{}: {e}", self.location));
                        return Err(store_err(&e));
                    }
                }
                Err(e) => return Err(store_err(&e)),
            }
        }
        Err(StoreError::Down(format!(
            "{} closed the connection",
            self.location
        )))
    }
}
