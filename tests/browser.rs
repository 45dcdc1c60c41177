//! The HTML pages of OGC API – Processes in a real browser: Debian's headless Chromium loads
//! them from a test Apache (`--dump-dom`), and fills in and submits a process page's form —
//! synchronously (the results page) and as a job (the job page reloads until it finishes).
//! The form is driven by a small page (`tests/data/browser_harness.html`) served by the same
//! Apache, which loads the process page in an iframe and does what a person would.

mod common;
use common::*;
use std::process::Command;

fn chromium() -> &'static str {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(c).exists() {
            return c;
        }
    }
    panic!("Chromium is needed for this test (Debian package chromium, see .ci/deps)");
}

/// The DOM of `url` after Chromium loaded it (and ran its timers for up to `budget_ms` of
/// virtual time).
fn dump_dom(a: &Apache, url: &str, budget_ms: u32) -> String {
    let profile = a.dir.join(format!("chromium-{}", uuid::Uuid::new_v4()));
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

fn start() -> Apache {
    let dir = scratch("browser");
    let cfg = write_service_config(&dir, "wps.cfg", "");
    let harness = dir.join("harness.html");
    std::fs::copy(
        manifest_dir().join("tests/data/browser_harness.html"),
        &harness,
    )
    .unwrap();
    chmod(&harness, 0o644);
    Apache::start_in(
        dir,
        Mpm::Event,
        &format!(
            "WPSScriptAlias /wps {}\n<Location /harness.html>\n  ForceType text/html\n</Location>\n",
            cfg.display()
        ),
    )
}

#[test]
fn chromium_renders_the_pages() {
    let a = start();
    let base = format!("http://127.0.0.1:{}/wps/api", a.port);
    // Chromium asks text/html first: no ?f=html needed
    let dom = dump_dom(&a, &format!("{base}/"), 1000);
    assert!(dom.contains("<h1 id=\"title\">Test WPS</h1>"), "{dom}");
    assert!(
        dom.contains(&format!("href=\"{base}/processes?f=html\"")),
        "{dom}"
    );
    let dom = dump_dom(&a, &format!("{base}/processes"), 1000);
    assert!(dom.contains("<table id=\"processes\">"), "{dom}");
    assert!(
        dom.contains(&format!("href=\"{base}/processes/say_hello?f=html\"")),
        "{dom}"
    );
    let dom = dump_dom(&a, &format!("{base}/processes/buffer"), 1000);
    assert!(dom.contains("<form id=\"execute\""), "{dom}");
    assert!(
        dom.contains("<input type=\"text\" id=\"in-buffer\" name=\"buffer\""),
        "{dom}"
    );
    assert!(dom.contains("<textarea id=\"in-poly_in\""), "{dom}");
    let dom = dump_dom(&a, &format!("{base}/api"), 1000);
    assert!(dom.contains("/processes/say_hello/execution"), "{dom}");
    let dom = dump_dom(&a, &format!("{base}/jobs"), 1000);
    assert!(dom.contains("<h1>Jobs</h1>"), "{dom}");
    let dom = dump_dom(&a, &format!("{base}/processes/nope"), 1000);
    assert!(
        dom.contains("<h1 id=\"error\">404 No such process</h1>"),
        "{dom}"
    );
}

#[test]
fn chromium_submits_the_form_and_sees_the_job_finish() {
    let a = start();
    let harness = format!("http://127.0.0.1:{}/harness.html", a.port);
    // synchronously: the results page
    let dom = dump_dom(
        &a,
        &format!(
            "{harness}?process=say_hello&mode=sync&fields={}",
            enc(r#"{"name":"Chromium"}"#)
        ),
        20_000,
    );
    assert!(
        dom.contains("id=\"done\"") && dom.contains("Hello Chromium"),
        "{dom}"
    );
    // as a job: the job page, reloaded until the job has finished, then linking the results
    let dom = dump_dom(
        &a,
        &format!(
            "{harness}?process=sleep&mode=async&fields={}",
            enc(r#"{"delay":"0.3"}"#)
        ),
        60_000,
    );
    assert!(
        dom.contains("id=\"done\"") && dom.contains("job successful"),
        "{dom}\n{}",
        a.error_log()
    );
    assert!(
        dom.contains("data-seen=\"") && dom.contains("running"),
        "progress was shown: {dom}"
    );
    let results = dom
        .split("results=")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap();
    assert!(
        results.contains("/wps/api/jobs/") && results.ends_with("/results"),
        "{results}"
    );
    let path = format!(
        "/{}",
        results
            .split_once("://")
            .unwrap()
            .1
            .split_once('/')
            .unwrap()
            .1
    );
    assert!(a.get(&path).text().contains("done sleeping"));
}
