use super::child::{module_file, supervisor_near};
use super::output::{PROGRESS_LINE_MAX, TAIL_BYTES};
use super::*;
use crate::config::process::tests::{parse, ECHO};
use crate::model::{BoundingBox, ComplexValue};
use std::sync::{Arc, Mutex};

/// The supervisor, built for these tests (`cargo test --lib` builds no binaries) into the
/// target directory of the test executable, and found there as the module finds it.
pub(crate) fn supervisor() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/<test executable>
            let target = exe.ancestors().nth(3).unwrap();
            let mut cmd = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"));
            // without what cargo set for this test run: build scripts that see another
            // CARGO_MANIFEST_DIR run again, and everything above them is rebuilt
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy();
                if k.starts_with("CARGO_PKG_")
                    || k.starts_with("CARGO_MANIFEST_")
                    || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"].contains(&&*k)
                {
                    cmd.env_remove(&*k);
                }
            }
            cmd.args(["build", "--quiet", "--bin", SUPERVISOR, "--target-dir"])
                .arg(target)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if !cfg!(debug_assertions) {
                cmd.arg("--release");
            }
            let st = cmd.status().unwrap();
            assert!(st.success(), "cargo build --bin {SUPERVISOR}: {st}");
            find_supervisor().unwrap()
        })
        .clone()
}

fn lit(id: &str, v: &str) -> (String, Value) {
    (id.into(), Value::Literal(v.into()))
}

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mod_wps-cmd-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(d.join("in")).unwrap();
    d
}

#[test]
fn values_are_substituted_as_single_arguments() {
    let p = CommandProcess::new(
        parse(ECHO).unwrap(),
        PathBuf::from("/nowhere"),
        PathBuf::from("/nowhere"),
    );
    let dir = scratch();
    let evil = "a b; rm -rf / $(touch x) `id` \"q' \n";
    let inputs = Inputs(vec![
        lit("name", evil),
        lit("n", "1"),
        lit("n", "2"),
        (
            "box".into(),
            Value::BoundingBox(BoundingBox {
                lower: vec![1.0, 2.5],
                upper: vec![3.0, 4.0],
                crs: Some("EPSG:4326".into()),
                dimensions: Some(2),
            }),
        ),
        (
            "doc".into(),
            Value::Complex(ComplexValue {
                mime_type: Some("application/json".into()),
                content: "{}".into(),
                ..Default::default()
            }),
        ),
    ]);
    let argv = p.argv(&inputs, &dir).unwrap();
    let d = dir.display();
    assert_eq!(
        argv,
        [
            "-n".to_string(),
            format!("--name={evil}"),
            format!("{evil} x"),
            "1".into(),
            "2".into(),
            // {opt} is absent: its word is left out
            "1,2.5,3,4".into(),
            "EPSG:4326".into(),
            format!("{d}/in/doc.json"),
            format!("{d}/out/copy.txt"),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("in/doc.json")).unwrap(),
        "{}"
    );
    let nul = Inputs(vec![lit("name", "a\0b")]);
    assert!(p.argv(&nul, &dir).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn progress_lines_and_tails() {
    assert_eq!(
        parse_progress(b"PROGRESS 40 half way\n"),
        Some((40, "half way".into()))
    );
    assert_eq!(
        parse_progress(b"PROGRESS 100\n"),
        Some((100, String::new()))
    );
    assert_eq!(parse_progress(b"PROGRESS 101 x\n"), None);
    assert_eq!(parse_progress(b"PROGRESS x\n"), None);
    assert_eq!(parse_progress(b"progress 5\n"), None);
    let err: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    let t = stderr_tail(&err);
    assert!(t.starts_with("line 11\n") && t.ends_with("line 30"), "{t}");
    let t = stderr_tail(&"x".repeat(5000));
    assert!(t.len() <= TAIL_BYTES + 3 && t.starts_with('…'));
    assert_eq!(xml_safe("a\u{1}b\tc\n"), "a\u{fffd}b\tc\n");
}

fn run_cfg(cfg: &str, inputs: Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
    let jobs = std::env::temp_dir().join(format!("mod_wps-cmd-{}", uuid::Uuid::new_v4()));
    let p = CommandProcess::new(parse(cfg).unwrap(), jobs.clone(), supervisor());
    let r = p.execute(&inputs, ctx);
    // the job directory is gone
    assert_eq!(std::fs::read_dir(&jobs).unwrap().count(), 0);
    std::fs::remove_dir_all(jobs).unwrap();
    r
}

#[test]
fn runs_commands_with_progress_outputs_and_a_clean_environment() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let ctx = Context::new(
        Default::default(),
        Arc::new(move |p, m: &str| s2.lock().unwrap().push((p, m.to_string()))),
    );
    let cfg = "[process:p]\ncommand = sh -c \"echo PROGRESS 50 half; echo $1; env | sort > $2\" sh {a} {output:env}\ninput.a = literal string\noutput.o = literal string\noutput.env = complex text/plain\nenv.EXTRA = yes\n";
    let out = run_cfg(cfg, Inputs(vec![lit("a", "x")]), &ctx).unwrap();
    assert_eq!(out.get("o"), Some(&OutputValue::Literal("x".into())));
    let Some(OutputValue::Complex { data, .. }) = out.get("env") else {
        panic!()
    };
    let env = String::from_utf8_lossy(data);
    assert!(
        env.contains("EXTRA=yes\n") && env.contains("LANG=C.UTF-8\n"),
        "{env}"
    );
    assert!(env.contains("PATH=/usr/local/bin:/usr/bin:/bin\n"), "{env}");
    assert!(!env.contains("CARGO"), "{env}");
    assert_eq!(*seen.lock().unwrap(), [(50, "half".to_string())]);
}

#[test]
fn failures_timeouts_and_cancellation() {
    let ctx = Context::detached();
    let cfg = "[process:p]\ncommand = sh -c \"for i in $(seq 30); do echo err $i >&2; done; exit 3\"\noutput.o = literal string\n";
    let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
        panic!()
    };
    assert!(m.starts_with("the command exited with status 3"), "{m}");
    assert!(
        m.contains("err 11\n") && m.ends_with("err 30") && !m.contains("err 10\n"),
        "{m}"
    );
    let cfg = "[process:p]\ncommand = sh -c \"echo x; exit 0\"\noutput.o = literal integer\n";
    let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
        panic!()
    };
    assert!(m.contains("not an integer"), "{m}");
    // the timeout kills the whole group, including a grandchild holding stdout open
    let cfg = "[process:p]\ncommand = sh -c \"sleep 30 & echo started >&2; wait\"\noutput.o = literal string\ntimeout = 1s\n";
    let start = Instant::now();
    let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
        panic!()
    };
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        m.contains("timeout of 1 s") && m.ends_with("started"),
        "{m}"
    );
    // cancellation
    let token = Arc::new(crate::model::CancelToken::default());
    let ctx = Context::new(token.clone(), Arc::new(|_, _| {}));
    let t2 = token.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        t2.cancel();
    });
    let cfg = "[process:p]\ncommand = sleep 30\noutput.o = literal string\n";
    let start = Instant::now();
    assert_eq!(
        run_cfg(cfg, Inputs::default(), &ctx),
        Err(ProcessError::Cancelled)
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn stdout_is_split_in_bounded_memory() {
    let mut seen = Vec::new();
    let mut report = |p, m: String| seen.push((p, m));
    // progress lines split across chunks, lines too long to be progress lines, a last line
    let long = format!("PROGRESS 7 {}\n", "x".repeat(PROGRESS_LINE_MAX));
    let text = format!("a\nPROGRESS 10 one\nb\n{long}PROGRESS 20 two\nc");
    let mut sink = StdoutSink::new(true, 1 << 20);
    for b in text.as_bytes().chunks(3) {
        sink.feed(b, &mut report);
    }
    sink.finish(&mut report);
    assert_eq!(
        String::from_utf8(sink.into_kept()).unwrap(),
        format!("a\nb\n{long}c")
    );
    assert_eq!(seen, [(10, "one".to_string()), (20, "two".to_string())]);

    // one 10 MB line against a 1 MB limit: the sink overflows when the limit is crossed,
    // and never holds more than the limit plus one progress line
    let limit = 1 << 20;
    let chunk = vec![b'y'; READ_CHUNK];
    let mut sink = StdoutSink::new(true, limit);
    let (mut fed, mut peak) = (0, 0);
    while !sink.overflowed() {
        sink.feed(&chunk, &mut |_, _| panic!("not a progress line"));
        fed += chunk.len();
        peak = peak.max(sink.capacity());
        assert!(fed <= 10 << 20);
    }
    assert_eq!(
        fed,
        limit + READ_CHUNK,
        "overflows as soon as the limit is crossed"
    );
    assert!(peak <= limit + PROGRESS_LINE_MAX, "{peak}");
    sink.feed(&chunk, &mut |_, _| {});
    assert!(
        sink.capacity() <= PROGRESS_LINE_MAX,
        "what was kept is dropped"
    );
    // not kept (no output from stdout): no overflow, only the line buffer
    let mut sink = StdoutSink::new(false, limit);
    for _ in 0..(10 << 20) / READ_CHUNK {
        sink.feed(&chunk, &mut |_, _| {});
    }
    let mut last = None;
    sink.feed(b"\nPROGRESS 30 three\n", &mut |p, m| last = Some((p, m)));
    assert!(!sink.overflowed() && sink.capacity() <= PROGRESS_LINE_MAX);
    assert_eq!(last, Some((30, "three".to_string())));
    assert_eq!(size_text(256 << 20), "256 MB");
    assert_eq!(size_text(1536), "1536 bytes");
}

#[test]
fn stdout_past_its_limit_stops_the_command() {
    let ctx = Context::detached();
    // an endless single line: only the limit ends the job
    let cfg = "[process:p]\ncommand = cat /dev/zero\noutput.o = complex application/octet-stream from=stdout\nmaxstdout = 1mb\ntimeout = 60s\n";
    let start = Instant::now();
    let Err(ProcessError::Failed(m)) = run_cfg(cfg, Inputs::default(), &ctx) else {
        panic!()
    };
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(
        m.starts_with("the command wrote more than 1 MB to stdout (maxstdout) and was stopped"),
        "{m}"
    );
    // stdout that no output is read from is not kept, and not limited
    let cfg = "[process:p]\ncommand = sh -c \"head -c 5000000 /dev/zero; echo PROGRESS 50 x; echo 7 > $1\" sh {output:o}\noutput.o = literal integer from=file\nmaxstdout = 1mb\n";
    let out = run_cfg(cfg, Inputs::default(), &ctx).unwrap();
    assert_eq!(out.get("o"), Some(&OutputValue::Literal("7".into())));
}

/// A python3 script that starts a daemon (fork, setsid, fork) which writes its pid to the
/// file `argv[1]` and sleeps 300 s; it waits for that file, sleeps `argv[2]` s and exits.
const DAEMON_PY: &str = "import os, sys, time\nf = sys.argv[1]\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        n = os.open(os.devnull, os.O_RDWR)\n        for i in (0, 1, 2): os.dup2(n, i)\n        open(f + '.tmp', 'w').write(str(os.getpid()))\n        os.rename(f + '.tmp', f)\n        time.sleep(300)\n    os._exit(0)\nos.wait()\nwhile not os.path.exists(f): time.sleep(0.01)\ntime.sleep(float(sys.argv[2]))\nprint('done')\n";

/// A process running DAEMON_PY (written to `dir`) with the pid file `dir/daemon.pid`.
fn daemonizing(dir: &Path, then: u32, extra: &str) -> String {
    let script = dir.join("daemon.py");
    std::fs::write(&script, DAEMON_PY).unwrap();
    format!(
        "[process:p]\ncommand = python3 {} {} {then}\noutput.o = literal string\n{extra}",
        script.display(),
        dir.join("daemon.pid").display()
    )
}

/// Pids of the processes whose command line contains `marker`.
pub(crate) fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

#[test]
fn nothing_a_job_starts_outlives_it() {
    let ctx = Context::detached();
    // the command exits (the daemon runs on), the command passes its timeout, the job is
    // cancelled
    for (then, extra, cancel) in [
        (0, "", false),
        (30, "timeout = 1s\n", false),
        (30, "", true),
    ] {
        let dir = scratch();
        let pidfile = dir.join("daemon.pid");
        // the pid file's path is in the command line of every process of the job
        let marker = pidfile.display().to_string();
        let token = Arc::new(crate::model::CancelToken::default());
        let ctx = if cancel {
            let (t2, p2) = (token.clone(), pidfile.clone());
            std::thread::spawn(move || {
                while !p2.exists() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                t2.cancel();
            });
            Context::new(token, Arc::new(|_, _| {}))
        } else {
            ctx.clone()
        };
        let start = Instant::now();
        let r = run_cfg(&daemonizing(&dir, then, extra), Inputs::default(), &ctx);
        let daemon: u32 = std::fs::read_to_string(&pidfile)
            .expect("the daemon started")
            .parse()
            .unwrap();
        match r {
            Ok(out) if then == 0 => {
                assert_eq!(out.get("o"), Some(&OutputValue::Literal("done".into())))
            }
            Err(ProcessError::Failed(m)) if !cancel => {
                assert!(m.contains("timeout of 1 s"), "{m}")
            }
            Err(ProcessError::Cancelled) if cancel => {}
            r => panic!("{r:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{then} {cancel}: {:?}",
            start.elapsed()
        );
        // gone, and reaped (not even a zombie), when the job ends
        assert!(
            !Path::new(&format!("/proc/{daemon}")).exists(),
            "daemon {daemon} survived"
        );
        assert_eq!(processes_with(&marker), Vec::<u32>::new(), "survivors");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn commands_start_with_no_signal_blocked() {
    // the supervisor blocks the signals it waits for; the command must not inherit that
    let cfg = "[process:p]\ncommand = grep SigBlk /proc/self/status\noutput.o = literal string\n";
    let out = run_cfg(cfg, Inputs::default(), &Context::detached()).unwrap();
    assert_eq!(
        out.get("o"),
        Some(&OutputValue::Literal("SigBlk:\t0000000000000000".into()))
    );
}

#[test]
fn the_supervisor_is_found_next_to_the_module() {
    let s = supervisor();
    assert!(s.ends_with(SUPERVISOR), "{}", s.display());
    // the module file is this test executable here, in target/<profile>/deps
    let exe = std::env::current_exe().unwrap();
    assert_eq!(module_file().as_ref(), Some(&exe));
    assert_eq!(s, exe.ancestors().nth(2).unwrap().join(SUPERVISOR));
    let e = supervisor_near(Path::new("/nonexistent/deps/libmod_wps.so")).unwrap_err();
    assert!(
        e.contains("mod_wps-supervise is not installed")
            && e.contains("/nonexistent/deps/mod_wps-supervise and /nonexistent/mod_wps-supervise"),
        "{e}"
    );
    // installed: next to the module
    let dir = scratch();
    let installed = dir.join(SUPERVISOR);
    std::fs::copy(&s, &installed).unwrap();
    assert_eq!(supervisor_near(&dir.join("mod_wps.so")), Ok(installed));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        supervisor_near(Path::new("/nonexistent/modules/mod_wps.so"))
            .unwrap_err()
            .contains("(looked for /nonexistent/modules/mod_wps-supervise;")
    );
}
