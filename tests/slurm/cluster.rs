//! A throwaway one-node Slurm on this machine, without systemd: munged, slurmctld and slurmd
//! run in the foreground as children of the test (as root), with their key, sockets, state,
//! spool, logs and `slurm.conf` in a temporary directory, on two free loopback ports.
//! `SLURM_CONF` points the client programs (and so the Apache children started afterwards)
//! at it. Needs Debian's `slurmctld slurmd slurm-client munge` (.ci/deps).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub dir: PathBuf,
    pub conf: PathBuf,
    munged: Option<Child>,
    ctld: Option<Child>,
    slurmd: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(program: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{program} is not installed: apt-get install slurmctld slurmd slurm-client munge (.ci/deps)")
        })
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The state letter of a process (`Z`: exited, not reaped), `None` when it is gone. This
/// container reaps late, so a stopped daemon is waited for here rather than with `kill -0`.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// SIGTERM, then waits (up to 20 s, SIGKILL after 10 s) until the process has exited.
fn stop(child: &mut Option<Child>) {
    let Some(mut c) = child.take() else {
        return;
    };
    let pid = c.id();
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    loop {
        match c.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if matches!(proc_state(pid), Some('Z') | None) => {
                let _ = c.wait();
                return;
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = c.kill();
        }
        if start.elapsed() > Duration::from_secs(20) {
            panic!("process {pid} does not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Cluster {
    pub fn start() -> Cluster {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the Slurm tests start munged, slurmctld and slurmd: run them as root"
        );
        let (munged, slurmd) = (need("munged"), need("slurmd"));
        need("sbatch");
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("mod_wps-slurm-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in [
            "",
            "munge-key",
            "munge-run",
            "munge-lib",
            "state",
            "spool",
            "log",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        chmod(&dir, 0o755);
        // munged: its key directory private, its socket directory open to every user
        chmod(&dir.join("munge-key"), 0o700);
        chmod(&dir.join("munge-run"), 0o755);
        let key = dir.join("munge-key/munge.key");
        let random: Vec<u8> = (0..4)
            .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
            .collect();
        std::fs::write(&key, random.repeat(16)).unwrap();
        chmod(&key, 0o400);
        let socket = dir.join("munge-run/munge.socket");
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        // KillWait low (default 30 s); no accounting (no slurmdbd); process tracking that
        // needs no cgroups
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::fs::write(
            &conf,
            format!(
                "ClusterName=wpstest\nSlurmctldHost={host}(127.0.0.1)\nSlurmctldPort={}\nSlurmdPort={}\n\
                 AuthType=auth/munge\nAuthInfo=socket={}\nCredType=cred/munge\n\
                 SlurmUser=root\nSlurmdUser=root\nStateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
                 SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
                 SlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\nMpiDefault=none\n\
                 SwitchType=switch/none\nSchedulerType=sched/builtin\nSelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\nKillWait=2\nMinJobAge=300\nReturnToService=2\n\
                 SlurmctldTimeout=30\nMessageTimeout=5\n\
                 NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=100 State=UNKNOWN\n\
                 PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4\n",
                free_port(),
                free_port(),
                socket.display()
            ),
        )
        .unwrap();
        chmod(&conf, 0o644);
        let quiet = |c: &mut Command| {
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        };
        let mut m = Command::new(munged);
        m.arg("--foreground")
            .arg("--force")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={d}/munge-run/munged.pid"))
            .arg(format!("--log-file={d}/log/munged.log"))
            .arg(format!("--seed-file={d}/munge-lib/seed"));
        quiet(&mut m);
        let mut c = Cluster {
            dir: dir.clone(),
            conf: conf.clone(),
            munged: Some(m.spawn().unwrap()),
            ctld: None,
            slurmd: None,
        };
        c.wait_for(|| socket.exists(), "munged's socket");
        c.start_ctld();
        let mut s = Command::new(slurmd);
        s.arg("-D").arg("-N").arg(&host).env("SLURM_CONF", &conf);
        quiet(&mut s);
        c.slurmd = Some(s.spawn().unwrap());
        c.wait_for(
            || {
                c.run("sinfo", &["--noheader", "--format=%T"])
                    .is_some_and(|o| o.trim() == "idle")
            },
            "the node to be idle",
        );
        c
    }

    fn start_ctld(&mut self) {
        let mut c = Command::new(need("slurmctld"));
        c.arg("-D")
            .arg("-i")
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.ctld = Some(c.spawn().unwrap());
        self.wait_for(
            || self.run("squeue", &["--noheader"]).is_some(),
            "slurmctld to answer",
        );
    }

    /// Stops slurmctld (jobs go on running on the node).
    pub fn stop_ctld(&mut self) {
        stop(&mut self.ctld);
    }

    /// Starts slurmctld again (it recovers its jobs from `state/`).
    pub fn start_ctld_again(&mut self) {
        self.start_ctld();
    }

    fn wait_for(&self, mut ok: impl FnMut() -> bool, what: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        while !ok() {
            assert!(Instant::now() < end, "waiting for {what}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a Slurm client program; its stdout when it succeeded.
    pub fn run(&self, program: &str, args: &[&str]) -> Option<String> {
        let out = Command::new(need(program))
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The state of the Slurm job with this name (`squeue -t all`), e.g. `RUNNING`.
    pub fn state_of(&self, name: &str) -> Option<(String, String)> {
        let out = self.run(
            "squeue",
            &[
                "--noheader",
                "--states=all",
                "--format=%i|%j|%T",
                "--name",
                name,
            ],
        )?;
        let line = out.lines().last()?;
        let mut f = line.split('|');
        let id = f.next()?.to_owned();
        f.next()?;
        Some((id, f.next()?.split_whitespace().next()?.to_owned()))
    }

    pub fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log", "munged.log"]
            .iter()
            .map(|f| {
                let t = std::fs::read_to_string(self.dir.join("log").join(f)).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(30).collect();
                format!(
                    "--- {f}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // jobs first, so that no worker outlives the test
        let _ = self.run("scancel", &["--user=www-data"]);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end
            && self
                .run(
                    "squeue",
                    &["--noheader", "--states=RUNNING,COMPLETING,PENDING"],
                )
                .is_some_and(|o| !o.trim().is_empty())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop(&mut self.slurmd);
        stop(&mut self.ctld);
        stop(&mut self.munged);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
