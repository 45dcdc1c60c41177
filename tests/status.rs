//! The `wps-status` handler against a real Apache: HTML and JSON, counters that rise with
//! Execute requests, a running asynchronous job, and access control by `Require`.

mod common;
use common::*;

use serde_json::Value;
use std::time::{Duration, Instant};

/// One Apache child (so the per-child counters are those of the child that ran the jobs),
/// a service at /wps on pool `pool1`, the status page at /wps-status (local only) and a
/// copy of it at /denied-status that nobody may see.
fn start() -> Apache {
    Apache::builder("status")
        .title("Test <b>&amp;</b> \"WPS\"")
        .processes("sleep.timeout = 3s\n")
        .directives(
            "StartServers 1\nServerLimit 1\nMaxRequestWorkers 25\nMinSpareThreads 5\nMaxSpareThreads 25\n",
        )
        .pool("pool1 threads=3 queue=10")
        .directives_after(
            "<Location /wps-status>\n  SetHandler wps-status\n  Require local\n</Location>\n\
             <Location /denied-status>\n  SetHandler wps-status\n  Require all denied\n</Location>\n",
        )
        .start()
}

fn json(a: &Apache) -> Value {
    let r = a.get("/wps-status?json");
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_content_type("application/json");
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn pool1(v: &Value) -> &Value {
    v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pool1")
        .unwrap_or_else(|| panic!("no pool1: {v:#}"))
}

fn service(v: &Value) -> &Value {
    let s = &v["services"][0];
    assert_eq!(s["url"], "/wps", "{v:#}");
    s
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn wait_for(what: &str, a: &Apache, mut f: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = json(a);
        if f(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_page_html_json_counters_running_jobs_and_access() {
    let a = start();

    // HTML, escaped
    let r = a.get("/wps-status");
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_content_type("text/html");
    let html = r.text();
    assert!(html.contains("<h1>mod_wps status</h1>"), "{html}");
    assert!(html.contains("<td>pool1</td>"), "{html}");
    assert!(html.contains("<td>/wps</td>"), "{html}");
    assert!(
        html.contains("Test &lt;b&gt;&amp;amp;&lt;/b&gt; &quot;WPS&quot;"),
        "title not escaped: {html}"
    );
    assert!(!html.contains("<b>"), "{html}");

    // JSON
    let v0 = json(&a);
    let p = pool1(&v0);
    assert_eq!(num(&p["threads"]), 3);
    assert_eq!(num(&p["queue_capacity"]), 10);
    assert_eq!(num(&p["busy"]) + num(&p["idle"]), 3);
    let s = service(&v0);
    assert_eq!(s["process_group"], "pool1");
    assert_eq!(s["title"], "Test <b>&amp;</b> \"WPS\"");
    assert!(num(&v0["server_uptime"]) < 600);
    assert!(num(&v0["pid"]) > 0);
    let completed0 = num(&p["completed"]);
    let succeeded0 = num(&s["succeeded"]);
    let failed0 = num(&s["failed"]);

    // synchronous Execute requests raise the completed and succeeded counters
    for i in 0..3 {
        let r = a.get(&format!("{EXEC}&identifier=say_hello&DataInputs=name=n{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("ProcessSucceeded"), "{}", r.text());
    }
    let v = wait_for("3 completed jobs", &a, |v| {
        num(&pool1(v)["completed"]) >= completed0 + 3
    });
    assert_eq!(num(&service(&v)["succeeded"]), succeeded0 + 3, "{v:#}");
    assert_eq!(num(&service(&v)["failed"]), failed0, "{v:#}");

    // a synchronous job past its time limit (sleep.timeout = 3s) counts as failed
    let port = a.port;
    let failing = std::thread::spawn(move || {
        http(
            port,
            "GET",
            &format!("{EXEC}&identifier=sleep&DataInputs=delay=2"),
            None,
            &[],
        )
    });

    // an asynchronous job shows up as running (server-wide, with the child's pid)
    let r = a.get(&format!(
        "{EXEC}&identifier=sleep&DataInputs=delay=0.5&storeExecuteResponse=true&status=true"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.text();
    let start = doc.find("/wps/outputs/").expect("statusLocation") + "/wps/outputs/".len();
    let id = doc[start..start + 36].to_owned();
    let v = wait_for("the job to run", &a, |v| {
        service(v)["running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str() && j["owner"] != 0)
    });
    let job = service(&v)["running"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(job["process"], "sleep");
    assert_eq!(num(&job["owner"]), num(&v["pid"]), "the only child runs it");
    assert!(num(&pool1(&v)["busy"]) >= 1, "{v:#}");
    let html = a.get("/wps-status").text();
    assert!(html.contains("Running jobs (server)"), "{html}");
    assert!(html.contains(&id), "{html}");

    let r = failing.join().unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("time limit"), "{}", r.text());

    let v = wait_for("the job to finish", &a, |v| {
        service(v)["running"].as_array().unwrap().is_empty()
            && num(&service(v)["succeeded"]) >= succeeded0 + 4
    });
    let s = service(&v);
    assert_eq!(num(&s["succeeded"]), succeeded0 + 4, "{v:#}");
    assert_eq!(num(&s["failed"]), failed0 + 1, "{v:#}");
    assert_eq!(num(&s["queued"]), 0);
    assert_eq!(num(&s["finished_kept"]), 1, "{v:#}");
    assert!(num(&pool1(&v)["completed"]) >= completed0 + 5, "{v:#}");

    // access is the operator's Require; only GET and HEAD
    assert_eq!(a.get("/denied-status").status, 403);
    assert_eq!(a.get("/denied-status?json").status, 403);
    let r = a.request("HEAD", "/wps-status", None, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(a.post("/wps-status", b"x").status, 405);
}
