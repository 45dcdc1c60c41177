//! The database schema of the PostgreSQL store, created or migrated by the first child that
//! connects (under an advisory lock, so concurrent children and hosts do it once), with its
//! version in `wps_meta`; and the check that all hosts share `outputpath`.

use postgres::Client;
use std::path::Path;

/// The schema version this code writes.
pub const VERSION: i32 = 1;
/// Advisory lock keys (in the `mod_wps` space).
pub const LOCK_SCHEMA: i64 = 0x6d6f_645f_7770_0001;
pub const LOCK_QUEUE: i64 = 0x6d6f_645f_7770_0002;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: jobs, parallelprocesses slots, hosts
    "CREATE TABLE wps_jobs (
        id text PRIMARY KEY,
        key text NOT NULL,
        process text NOT NULL,
        state text NOT NULL,
        progress int NOT NULL DEFAULT 0,
        message text NOT NULL DEFAULT '',
        error jsonb,
        submitted bigint NOT NULL,
        started bigint,
        finished bigint,
        updated bigint NOT NULL,
        attempt int NOT NULL DEFAULT 0,
        owner text,
        owner_ns text,
        owner_pid int,
        owner_start bigint,
        token text,
        lease_until timestamptz,
        cancel boolean NOT NULL DEFAULT false,
        user_name text,
        request jsonb NOT NULL,
        results jsonb NOT NULL DEFAULT '[]'
     );
     CREATE INDEX wps_jobs_queue ON wps_jobs (key) WHERE state = 'accepted';
     CREATE INDEX wps_jobs_running ON wps_jobs (lease_until) WHERE state = 'running';
     CREATE INDEX wps_jobs_key ON wps_jobs (key);
     CREATE TABLE wps_slots (
        n int PRIMARY KEY,
        token text,
        owner text,
        owner_ns text,
        owner_pid int,
        owner_start bigint,
        lease_until timestamptz
     );
     CREATE TABLE wps_hosts (
        name text PRIMARY KEY,
        marker text NOT NULL,
        outputpath text NOT NULL,
        parallelprocesses bigint NOT NULL,
        seen timestamptz NOT NULL
     );",
];

/// The line of the children's waiting requests for a slot (`waiting`): one row per child
/// while one of its requests waits.
const WAITING: &str = "CREATE TABLE IF NOT EXISTS wps_waiting (
    owner_ns text NOT NULL,
    owner_pid int NOT NULL,
    owner_start bigint NOT NULL,
    owner text NOT NULL,
    since timestamptz NOT NULL,
    seen timestamptz NOT NULL,
    PRIMARY KEY (owner_ns, owner_pid, owner_start)
 )";

/// Creates or migrates the schema; makes sure the first `slots` slots exist. Returns lines for
/// the log, or (inner error) why this mod_wps cannot use the database: it was migrated by a
/// newer one.
pub fn ensure(c: &mut Client, slots: u32) -> Result<Result<Vec<String>, String>, postgres::Error> {
    let mut t = c.transaction()?;
    t.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_SCHEMA])?;
    t.batch_execute(
        "CREATE TABLE IF NOT EXISTS wps_meta (key text PRIMARY KEY, value text NOT NULL)",
    )?;
    let found: i32 = t
        .query_opt(
            "SELECT value::int FROM wps_meta WHERE key = 'schema_version'",
            &[],
        )?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let mut notes = Vec::new();
    if found > VERSION {
        return Ok(Err(format!(
            "the job store's database schema has version {found}, newer than this mod_wps knows ({VERSION}); upgrade mod_wps on this host"
        )));
    }
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        t.batch_execute(sql)?;
        notes.push(format!(
            "job store schema migrated from version {v} to {}",
            v + 1
        ));
    }
    t.execute(
        "INSERT INTO wps_meta VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&VERSION.to_string()],
    )?;
    // added without a new version: older mod_wps hosts on the same database ignore it (their
    // requests only do not wait in line)
    t.batch_execute(WAITING)?;
    if slots != u32::MAX && slots > 0 {
        t.execute(
            "INSERT INTO wps_slots (n) SELECT generate_series(0, $1 - 1) ON CONFLICT DO NOTHING",
            &[&(slots.min(100_000) as i32)],
        )?;
    }
    t.commit()?;
    Ok(Ok(notes))
}

/// A short stable name for a string (FNV-1a, hex).
fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Registers this host (`host`, its `outputpath` and `parallelprocesses`) and leaves a
/// marker file in `outputpath/.mod_wps-hosts/`; returns complaints for the log when a host
/// seen in the last week left no marker here (so its `outputpath` is another directory) or
/// counts `parallelprocesses` differently.
pub fn check_hosts(
    c: &mut Client,
    host: &str,
    outputs: &Path,
    slots: u32,
) -> Result<Vec<String>, String> {
    let db = |e: postgres::Error| e.to_string();
    let name = format!("{host}:{}", outputs.display());
    let marker = fnv(&name);
    let dir = outputs.join(".mod_wps-hosts");
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(&marker), format!("{name}\n")))
        .map_err(|e| format!("cannot write a marker in {}: {e}", dir.display()))?;
    let slots = if slots == u32::MAX {
        -1
    } else {
        i64::from(slots)
    };
    c.execute(
        "INSERT INTO wps_hosts VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (name) DO UPDATE SET marker = $2, outputpath = $3, parallelprocesses = $4, seen = now()",
        &[&name, &marker, &outputs.display().to_string(), &slots],
    )
    .map_err(db)?;
    let mut v = Vec::new();
    for r in c
        .query(
            "SELECT name, marker, parallelprocesses FROM wps_hosts
             WHERE name <> $1 AND seen > now() - interval '7 days'",
            &[&name],
        )
        .map_err(db)?
    {
        let (other, m, p): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        if !dir.join(&m).exists() {
            v.push(format!(
                "outputpath {} is not shared with {other}: the hosts of one job store must share one outputpath directory (outputs written on one host are not found on the other); a host that is gone can be removed with DELETE FROM wps_hosts WHERE name = '{other}'",
                outputs.display()
            ));
        }
        if p != slots {
            v.push(format!(
                "parallelprocesses is {slots} here but {p} on {other}: the hosts of one job store should agree (the highest count is what holds)"
            ));
        }
    }
    Ok(v)
}
