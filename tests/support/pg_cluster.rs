//! A throwaway PostgreSQL cluster for tests: Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/*/bin`), a data directory in a temp dir, a free loopback port,
//! password authentication over TCP; removed when dropped. As root, `initdb` and `pg_ctl` run
//! as the `postgres` user (`runuser`), since PostgreSQL refuses to run as root.
//! Shared by the unit tests of the store and the integration tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The password of the cluster's superuser `postgres`.
pub const PASSWORD: &str = "s3cret-pw-for-tests";

pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn bindir() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    v.sort_by_key(|p| {
        p.parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    v.pop()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user (no unsafe: the lib denies it)
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// A running cluster, or `None` (with a message) when PostgreSQL is not installed. Under
    /// CI (`CI` set) a missing PostgreSQL is an error: `.ci/deps` installs it.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = bindir() else {
            let msg = "PostgreSQL is not installed (Debian package postgresql, see .ci/deps): test skipped";
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("{msg}");
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mod_wps-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = PgCluster {
            dir,
            port: free_port(),
            bin,
        };
        std::fs::write(c.dir.join("pw"), format!("{PASSWORD}\n")).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&c.dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown postgres {}", c.dir.display());
        }
        let out = c
            .cmd("initdb")
            .arg("-D")
            .arg(c.dir.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", c.dir.join("pw").display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        c.start_server();
        Some(c)
    }

    fn cmd(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Starts the server (after `stop`), waiting until it accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "30", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server (`fast`: connections are closed, as in a restart).
    pub fn stop_server(&self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .output();
    }

    /// A libpq key/value connection string to database `db`, without the password.
    pub fn conn_string(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} connect_timeout=3",
            self.port
        )
    }

    /// A superuser connection to `db` (with the password).
    pub fn client(&self, db: &str) -> postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match postgres::Config::new()
                .host("127.0.0.1")
                .port(self.port)
                .user("postgres")
                .password(PASSWORD)
                .dbname(db)
                .connect(postgres::NoTls)
            {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    panic!("cannot connect to the test cluster: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Creates a database and returns its name.
    pub fn create_db(&self, name: &str) -> String {
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        name.to_owned()
    }

    /// Connections of mod_wps to `db` (`application_name = 'mod_wps'`).
    pub fn mod_wps_connections(&self, db: &str) -> i64 {
        self.client("postgres")
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'mod_wps'",
                &[&db],
            )
            .unwrap()
            .get(0)
    }

    /// A libpq password file for this cluster, readable by `mode`'s owner.
    pub fn write_passfile(&self, path: &Path) {
        std::fs::write(
            path,
            format!("127.0.0.1:{}:*:postgres:{PASSWORD}\n", self.port),
        )
        .unwrap();
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
