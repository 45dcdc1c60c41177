//! Command-line processes (`[process:ID]` sections) against a real Apache: the shipped
//! examples (conf/processes.cfg) sync and async, hostile values passed verbatim, failures with
//! the stderr tail, time limits that kill the whole process group, daemons that do not outlive
//! their job, stdout past its limit, progress, and configtest.

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, Instant};

/// Starts a server whose service config is the test base plus conf/processes.cfg (with its
/// scripts copied beside it) plus `extra` (after the `[processes]` section; `{dir}` is the
/// server's directory, where the `scripts` (name, text) are written first).
fn start(name: &str, extra: &str, scripts: &[(&str, &str)]) -> Apache {
    let examples = std::fs::read_to_string(manifest_dir().join("conf/processes.cfg")).unwrap();
    let echo_text = std::fs::read(manifest_dir().join("conf/scripts/echo_text.py")).unwrap();
    let mut b = Apache::builder(name)
        .file("scripts/echo_text.py", echo_text, 0o755)
        .processes(&format!("{extra}\n{examples}"));
    for (name, body) in scripts {
        b = b.file(name, body, 0o755);
    }
    b.start()
}

/// Polls a status document until it is final (`wait_final`), validating every distinct
/// document seen; returns the final one and their texts.
fn wait_valid_final(a: &Apache, path: &str, within: Duration) -> (Resp, Vec<String>) {
    let (fin, seen) = wait_final(a, path, within);
    for d in &seen {
        assert_valid(&d.body);
    }
    (fin, seen.iter().map(Resp::text).collect())
}

/// An XML Execute of `echo_text` with this text and response form.
fn echo_xml(text: &str, form: &str) -> Vec<u8> {
    execute_xml("echo_text", &literal_input("text", &xml_escape(text)), form).into_bytes()
}

/// Pids of processes whose command line is exactly `argv`.
fn processes_with(argv: &[&str]) -> Vec<String> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).ok().as_deref() == Some(&want[..]))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

const GRID: &str = "ncols 3\nnrows 2\nxllcorner 10\nyllcorner 20\ncellsize 0.5\n1 2 3\n4 5 6\n";

#[test]
fn examples_describe_and_execute_sync_and_async() {
    let a = start("cmd-examples", "", &[]);
    let r = a.get("/wps?service=WPS&request=GetCapabilities");
    assert_eq!(r.status, 200);
    assert_valid(&r.body);
    let t = r.text();
    assert!(t.contains(">gdalinfo<") && t.contains(">echo_text<"), "{t}");
    assert!(
        t.contains(">say_hello<"),
        "built-ins are still offered: {t}"
    );
    let r = a.get(
        "/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=gdalinfo,echo_text",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&r.body);
    let t = r.text();
    assert!(
        t.contains("Raster information (gdalinfo)") && t.contains("image/tiff"),
        "{t}"
    );
    assert!(t.contains("<ows:MinimumValue>0</ows:MinimumValue>"), "{t}");

    // gdalinfo on an ASCII grid, sync, as a document and raw
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>gdalinfo</ows:Identifier>
  <wps:DataInputs><wps:Input><ows:Identifier>raster</ows:Identifier>
    <wps:Data><wps:ComplexData mimeType="text/plain"><![CDATA[{GRID}]]></wps:ComplexData></wps:Data></wps:Input></wps:DataInputs>
  FORM
</wps:Execute>"#
    );
    let r = a.post("/wps", body.replace("FORM", "").as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&r.body);
    assert!(r.text().contains("AAIGrid"), "{}", r.text());
    let raw = body.replace(
        "FORM",
        "<wps:ResponseForm><wps:RawDataOutput><ows:Identifier>info</ows:Identifier></wps:RawDataOutput></wps:ResponseForm>",
    );
    let r = a.post("/wps", raw.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["size"], serde_json::json!([3, 2]));
    assert_eq!(info["driverShortName"], "AAIGrid");

    // echo_text sync (KVP)
    let r = a.get(&format!(
        "{EXEC}&identifier=echo_text&DataInputs=text=h%C3%A9llo"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&r.body);
    let t = r.text();
    assert!(
        t.contains(">5</wps:LiteralData>") && t.contains("héllo"),
        "{t}"
    );

    // echo_text async with progress
    let r = a.get(&format!(
        "{EXEC}&identifier=echo_text&DataInputs=text=abc;delay=0.7&storeExecuteResponse=true&status=true"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&r.body);
    let (fin, seen) = wait_valid_final(&a, &status_path(&r.text()), Duration::from_secs(30));
    let t = fin.text();
    assert!(
        t.contains("<wps:ProcessSucceeded") && t.contains(">3</wps:LiteralData>"),
        "{t}"
    );
    assert!(
        seen.iter()
            .any(|d| d.contains("percentCompleted=\"50\"") && d.contains("step 2 of 3")),
        "no progress seen: {seen:#?}"
    );
    // job directories are removed
    let jobs = a.dir.join("work/jobs");
    assert_eq!(std::fs::read_dir(&jobs).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn hostile_values_pass_verbatim() {
    let a = start("cmd-hostile", "", &[]);
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let pwned = tmp.join(format!("mod_wps_pwned_{pid}"));
    let canary = tmp.join(format!("mod_wps_canary_{pid}"));
    std::fs::create_dir_all(&canary).unwrap();
    let (p, c) = (pwned.display(), canary.display());
    let values = [
        format!("x; rm -rf {c}; touch {p}"),
        format!("$(touch {p}) and `touch {p}` and ${{HOME}} $PATH"),
        format!("\"double\" 'single' \\back\\slash | cat > {p} & < /etc/passwd"),
        format!("line one\nline two; rm -rf {c}\n\ttab {{workdir}} {{output:copy}} %s *"),
        "--out=/tmp/evil -h".to_string(),
        "ünïcödé ✓ 😀".to_string(),
    ];
    for v in &values {
        let form = "<wps:RawDataOutput><ows:Identifier>copy</ows:Identifier></wps:RawDataOutput>";
        let r = a.post("/wps", &echo_xml(v, form));
        assert_eq!(r.status, 200, "{v:?}: {}", r.text());
        assert_eq!(String::from_utf8_lossy(&r.body), *v, "byte for byte");
        let r = a.post("/wps", &echo_xml(v, "<wps:ResponseDocument/>"));
        assert_valid(&r.body);
        let n = v.chars().count();
        assert!(
            r.text().contains(&format!(">{n}</wps:LiteralData>")),
            "{}",
            r.text()
        );
    }
    assert!(!pwned.exists(), "a value was run by a shell");
    assert!(canary.exists(), "a value was run by a shell");
    assert!(!Path::new("/tmp/evil").exists());
    std::fs::remove_dir_all(&canary).unwrap();
}

#[test]
fn failure_reports_exit_status_and_stderr_tail() {
    let extra = "\n[process:fails]\ncommand = {dir}/fail.sh\noutput.o = literal string\n";
    let fail = "#!/bin/sh\nfor i in $(seq 1 30); do echo \"problem $i <&>\" >&2; done\necho partial\nexit 3\n";
    let a = start("cmd-fail", extra, &[("fail.sh", fail)]);
    let r = a.get(&format!("{EXEC}&identifier=fails"));
    r.assert_exception(500, "NoApplicableCode", None);
    let t = r.text();
    assert!(t.contains("exited with status 3"), "{t}");
    assert!(
        t.contains("problem 30 &lt;&amp;&gt;") && t.contains("problem 11 "),
        "{t}"
    );
    assert!(!t.contains("problem 10 "), "only the tail: {t}");
    // async: ProcessFailed with the same message
    let r = a.get(&format!(
        "{EXEC}&identifier=fails&storeExecuteResponse=true&status=true"
    ));
    let (fin, _) = wait_valid_final(&a, &status_path(&r.text()), Duration::from_secs(20));
    let t = fin.text();
    assert!(
        t.contains("<wps:ProcessFailed") && t.contains("exited with status 3"),
        "{t}"
    );
    assert!(t.contains("problem 30"), "{t}");
    // the whole stderr is in the error log
    let log = a.error_log();
    assert!(
        log.contains("process 'fails' stderr: problem 1 <&>"),
        "{log}"
    );
}

#[test]
fn timeouts_kill_the_whole_process_group() {
    // own `timeout`, and the job time limit ([processes] ID.timeout)
    let extra = "slow_job.timeout = 2s\n\n\
        [process:slow]\ncommand = {dir}/slow.sh 3607\noutput.o = literal string\ntimeout = 2s\n\n\
        [process:slow_job]\ncommand = {dir}/slow.sh 3608\noutput.o = literal string\n";
    let slow = "#!/bin/sh\necho started >&2\nsleep \"$1\" &\nwait\n";
    let a = start("cmd-timeout", extra, &[("slow.sh", slow)]);
    for (id, secs) in [("slow", "3607"), ("slow_job", "3608")] {
        let start = Instant::now();
        let r = a.get(&format!(
            "{EXEC}&identifier={id}&storeExecuteResponse=true&status=true"
        ));
        let path = status_path(&r.text());
        // the grandchild runs ...
        while processes_with(&["sleep", secs]).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no sleep {secs} started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (fin, _) = wait_valid_final(&a, &path, Duration::from_secs(20));
        let t = fin.text();
        assert!(t.contains("<wps:ProcessFailed"), "{t}");
        if id == "slow" {
            assert!(t.contains("timeout of 2 s") && t.contains("started"), "{t}");
        } else {
            assert!(t.contains("exceeded its time limit of 2 s"), "{t}");
        }
        // ... and is gone with its parent
        let deadline = Instant::now() + Duration::from_secs(3);
        while !processes_with(&["sleep", secs]).is_empty() {
            assert!(
                Instant::now() < deadline,
                "sleep {secs} survived the time limit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }
    // synchronous: the same, answered with an ExceptionReport
    let r = a.get(&format!("{EXEC}&identifier=slow"));
    r.assert_exception(500, "NoApplicableCode", None);
    assert!(r.text().contains("timeout of 2 s"), "{}", r.text());
    assert!(processes_with(&["sleep", "3607"]).is_empty());
}

/// Pids of the processes whose command line contains `marker`.
fn processes_containing(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Starts a daemon (fork, setsid, fork: a new session, no longer in the job's process group)
/// that writes its pid to the file argv[1] and sleeps 300 s; waits for that file, then sleeps
/// argv[2] seconds and prints "done".
const DAEMON_PY: &str = "#!/usr/bin/python3\nimport os, sys, time\nf = sys.argv[1]\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        n = os.open(os.devnull, os.O_RDWR)\n        for i in (0, 1, 2): os.dup2(n, i)\n        open(f + '.tmp', 'w').write(str(os.getpid()))\n        os.rename(f + '.tmp', f)\n        time.sleep(300)\n    os._exit(0)\nos.wait()\nwhile not os.path.exists(f): time.sleep(0.01)\ntime.sleep(float(sys.argv[2]))\nprint('done')\n";

#[test]
fn daemons_do_not_outlive_their_job() {
    // the pid files are written by the Apache user into a directory of their own
    let pids = scratch("cmd-daemon-pids");
    chmod(&pids, 0o777);
    let p = pids.display();
    let extra = format!(
        "\n[process:daemon_exits]\ncommand = {{dir}}/daemon.py {p}/exits.pid 0\noutput.o = literal string\n\n\
         [process:daemon_times_out]\ncommand = {{dir}}/daemon.py {p}/times-out.pid 30\noutput.o = literal string\ntimeout = 1s\n\n\
         [process:mask]\ncommand = grep SigBlk /proc/self/status\noutput.o = literal string\n"
    );
    let a = start("cmd-daemon", &extra, &[("daemon.py", DAEMON_PY)]);
    // commands do not inherit the signals the Apache thread (or the supervisor) blocks
    let r = a.get(&format!("{EXEC}&identifier=mask"));
    assert!(
        r.text()
            .contains(">SigBlk:\t0000000000000000</wps:LiteralData>"),
        "{}",
        r.text()
    );
    // the command exits and leaves its daemon behind: the supervisor kills it
    let r = a.get(&format!("{EXEC}&identifier=daemon_exits"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(">done</wps:LiteralData>"), "{}", r.text());
    // the command passes its time limit (async)
    let start = Instant::now();
    let r = a.get(&format!(
        "{EXEC}&identifier=daemon_times_out&storeExecuteResponse=true&status=true"
    ));
    let (fin, _) = wait_valid_final(&a, &status_path(&r.text()), Duration::from_secs(20));
    let t = fin.text();
    assert!(
        t.contains("<wps:ProcessFailed") && t.contains("timeout of 1 s"),
        "{t}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    for name in ["exits.pid", "times-out.pid"] {
        let file = pids.join(name);
        let pid = std::fs::read_to_string(&file).expect("the daemon started");
        // the pid file's path is in the command line of each process of that job
        let left = processes_containing(&file.display().to_string());
        assert!(
            left.is_empty(),
            "{name}: left running: {left:?} (daemon {pid})"
        );
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} survived"
        );
    }
}

#[test]
fn stdout_past_its_limit_fails_the_job_at_once() {
    let extra = "\n[process:flood]\ncommand = cat /dev/zero\noutput.o = complex application/octet-stream from=stdout\nmaxstdout = 2mb\ntimeout = 60s\n";
    let a = start("cmd-flood", extra, &[]);
    let start = Instant::now();
    let r = a.get(&format!("{EXEC}&identifier=flood"));
    r.assert_exception(500, "NoApplicableCode", None);
    assert!(
        r.text()
            .contains("the command wrote more than 2 MB to stdout (maxstdout) and was stopped"),
        "{}",
        r.text()
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(processes_with(&["cat", "/dev/zero"]).is_empty());
}

/// Runs `apache2 -t` with a service config made of the test base plus `sections`; returns
/// its path and the output, which must be a failure.
fn rejected(sections: &str) -> ConfigTest {
    let t = Apache::builder("cmd-configtest")
        .processes(sections)
        .configtest();
    assert!(!t.ok, "configtest passed:\n{sections}\n{}", t.output);
    assert!(t.output.contains("Syntax error on line"), "{}", t.output);
    t
}

/// The line of the service config file at which `needle` appears.
fn line_of(cfg: &Path, needle: &str) -> usize {
    std::fs::read_to_string(cfg)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap()
        + 1
}

#[test]
fn configtest_rejects_bad_declarations_with_file_and_line() {
    let good =
        "[process:p]\ncommand = echo {a}\ninput.a = literal string\noutput.o = literal string\n";
    let t = Apache::builder("cmd-configtest-ok")
        .processes(good)
        .configtest();
    assert!(t.ok, "{}", t.output);
    let cases = [
        (
            "[process:p]\ncommand = echo\noutput.o = literal string\nbogus = 1\n",
            "bogus",
            "unknown key",
        ),
        (
            "[process:p]\ncommand = echo {a}\ninput.a = literal number\noutput.o = literal string\n",
            "input.a",
            "unknown literal type 'number'",
        ),
        (
            "[process:p]\ncommand = echo {nope}\noutput.o = literal string\n",
            "command",
            "{nope} names no declared input",
        ),
        ("[process:p]\ncommand =\noutput.o = literal string\n", "command", "empty"),
        (
            "[process:p]\ncommand = /nonexistent/tool {x}\ninput.x = literal string\noutput.o = literal string\n",
            "command",
            "/nonexistent/tool",
        ),
        (
            "[process:p]\ncommand = /etc/passwd\noutput.o = literal string\n",
            "command",
            "not an executable file",
        ),
    ];
    for (sections, needle, msg) in cases {
        let t = rejected(sections);
        let (cfg, out) = (&t.cfg, &t.output);
        let line = line_of(cfg, needle);
        let at = format!("{}:{line}: [process:p]", cfg.display());
        assert!(out.contains(&at), "expected {at:?} in {out}");
        assert!(out.contains(msg), "expected {msg:?} in {out}");
    }
}
