//! OGC API – Processes against a real Apache: every JSON resource validated against the
//! official 1.0 schemas, synchronous and asynchronous execution, dismiss of a running job
//! freeing its `parallelprocesses` slot across children, a graceful restart while a job runs,
//! one job seen through WPS 1.0.0 and OGC API, and `/jobs` with 100 000 jobs in the store.

mod common;
use common::*;
use serde_json::{json, Value as Json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(name: &str, mpm: Mpm, server: &str) -> Apache {
    let dir = scratch(name);
    let cfg = write_service_config_with(&dir, "wps.cfg", server, "");
    Apache::start_in(
        dir,
        mpm,
        &format!("WPSScriptAlias /wps {}\n", cfg.display()),
    )
}

fn json_of(r: &Resp) -> Json {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.text()))
}

fn get_json(a: &Apache, path: &str) -> Json {
    let r = a.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{path}");
    json_of(&r)
}

fn execute(a: &Apache, process: &str, body: &Json, asynchronous: bool) -> Resp {
    let mut h = vec![("Content-Type", "application/json")];
    if asynchronous {
        h.push(("Prefer", "respond-async"));
    }
    a.request(
        "POST",
        &format!("/wps/api/processes/{process}/execution"),
        Some(body.to_string().as_bytes()),
        &h,
    )
}

fn path_of(url: &str) -> String {
    format!(
        "/{}",
        url.split_once("://").unwrap().1.split_once('/').unwrap().1
    )
}

fn submit(a: &Apache, process: &str, body: Json) -> String {
    let r = execute(a, process, &body, true);
    assert_eq!(r.status, 201, "{}", r.text());
    json_of(&r)["jobID"].as_str().unwrap().to_owned()
}

fn wait(a: &Apache, id: &str, want: &str, within: Duration) -> Json {
    let deadline = Instant::now() + within;
    loop {
        let j = get_json(a, &format!("/wps/api/jobs/{id}"));
        if j["status"] == want {
            return j;
        }
        assert!(Instant::now() < deadline, "{j}\n{}", a.error_log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Validates (schema file, name, document) cases with tests/ogcapi_validate.py.
fn validate(cases: &[(&str, String, Json)]) {
    let schemas = manifest_dir().join("../shared/schemas/ogcapi-processes-1.0");
    let mut child = Command::new("python3")
        .arg(manifest_dir().join("tests/ogcapi_validate.py"))
        .arg(&schemas)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema and yaml (.ci/deps)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for (schema, name, doc) in cases {
            let line = json!({"schema": schema, "name": name, "doc": doc});
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("ok {}", cases.len())), "{text}");
}

#[test]
fn every_json_resource_validates_against_the_official_schemas() {
    let a = start("ogcapi-schemas", Mpm::Event, "");
    let mut cases: Vec<(&str, String, Json)> = Vec::new();
    cases.push((
        "landingPage.yaml",
        "landing".into(),
        get_json(&a, "/wps/api"),
    ));
    cases.push((
        "confClasses.yaml",
        "conformance".into(),
        get_json(&a, "/wps/api/conformance"),
    ));
    let list = get_json(&a, "/wps/api/processes");
    for p in list["processes"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let d = get_json(&a, &format!("/wps/api/processes/{id}"));
        cases.push(("process.yaml", format!("process {id}"), d));
    }
    cases.push(("processList.yaml", "processes".into(), list));
    // results documents of every kind of output
    for (process, inputs) in [
        ("say_hello", json!({"name": "Ann"})),
        ("ultimate_question", json!({})),
        ("testjson", json!({"name": "x"})),
        (
            "boundingbox",
            json!({"bboxin": {"bbox": [1, 2, 3, 4], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}),
        ),
        ("sleep", json!({"delay": 0})),
    ] {
        let r = execute(
            &a,
            process,
            &json!({"inputs": inputs, "response": "document"}),
            false,
        );
        assert_eq!(r.status, 200, "{process}: {}", r.text());
        cases.push(("results.yaml", format!("results of {process}"), json_of(&r)));
    }
    let r = execute(
        &a,
        "say_hello",
        &json!({"inputs": {"name": "R"}, "outputs": {"response": {"transmissionMode": "reference"}}, "response": "document"}),
        false,
    );
    let by_ref = json_of(&r);
    assert_eq!(
        a.get(&path_of(by_ref["response"]["href"].as_str().unwrap()))
            .text(),
        "Hello R"
    );
    cases.push(("results.yaml", "results by reference".into(), by_ref));
    // a job: 201 statusInfo, then its status, the list and its results
    let r = execute(
        &a,
        "sleep",
        &json!({"inputs": {"delay": 0.2}, "response": "document"}),
        true,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("Preference-Applied"), Some("respond-async"));
    let created = json_of(&r);
    let id = created["jobID"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("Location").unwrap(),
        format!("http://127.0.0.1:{}/wps/api/jobs/{id}", a.port)
    );
    cases.push(("statusInfo.yaml", "201".into(), created));
    let done = wait(&a, &id, "successful", Duration::from_secs(20));
    cases.push(("statusInfo.yaml", "successful".into(), done));
    cases.push(("jobList.yaml", "jobs".into(), get_json(&a, "/wps/api/jobs")));
    cases.push((
        "results.yaml",
        "job results".into(),
        get_json(&a, &format!("/wps/api/jobs/{id}/results")),
    ));
    // errors
    for (path, status) in [
        ("/wps/api/processes/nope", 404),
        (
            &format!("/wps/api/jobs/{}", "00000000-0000-4000-8000-000000000000") as &str,
            404,
        ),
    ] {
        let r = a.get(path);
        assert_eq!(r.status, status);
        cases.push(("exception.yaml", path.to_owned(), json_of(&r)));
    }
    let r = execute(&a, "say_hello", &json!({"inputs": {"nope": 1}}), false);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    cases.push(("exception.yaml", "400".into(), json_of(&r)));
    validate(&cases);
    // the OpenAPI document and HEAD
    let r = a.get("/wps/api/api");
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.oai.openapi+json;version=3.0")
    );
    assert_eq!(json_of(&r)["openapi"], "3.0.3");
    let h = a.request("HEAD", "/wps/api/processes", None, &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
}

#[test]
fn sync_async_and_one_job_for_wps1_and_ogcapi() {
    let a = start("ogcapi-exec", Mpm::Prefork, "");
    let r = execute(&a, "say_hello", &json!({"inputs": {"name": "Ann"}}), false);
    assert_eq!((r.status, r.text().as_str()), (200, "Hello Ann"));
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    // submitted through OGC API, read through WPS 1.0.0's statusLocation
    let id = submit(&a, "say_hello", json!({"inputs": {"name": "O"}}));
    wait(&a, &id, "successful", Duration::from_secs(20));
    let doc = a.get(&format!("/wps/outputs/{id}.xml"));
    assert_eq!(doc.status, 200);
    assert!(
        doc.text().contains("ProcessSucceeded") && doc.text().contains(">Hello O<"),
        "{}",
        doc.text()
    );
    assert_valid(&doc.body);
    // submitted through WPS 1.0.0, read here
    let r = a.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=W&storeExecuteResponse=true");
    let t = r.text();
    let id = t
        .split("/outputs/")
        .nth(1)
        .and_then(|s| s.split(".xml").next())
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();
    wait(&a, &id, "successful", Duration::from_secs(20));
    assert_eq!(
        get_json(&a, &format!("/wps/api/jobs/{id}/results")),
        json!({"response": "Hello W"})
    );
    let list = get_json(&a, "/wps/api/jobs?processID=say_hello");
    assert!(list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["jobID"] == id.as_str()));
}

#[test]
fn dismissing_a_running_job_frees_its_slot_across_children() {
    // one slot for the whole server, several prefork children
    let a = start("ogcapi-dismiss", Mpm::Prefork, "parallelprocesses = 1");
    let id = submit(&a, "sleep", json!({"inputs": {"delay": 6}}));
    wait(&a, &id, "running", Duration::from_secs(20));
    let r = a.request("DELETE", &format!("/wps/api/jobs/{id}"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r)["status"], "dismissed");
    assert_eq!(a.get(&format!("/wps/api/jobs/{id}")).status, 404);
    // the slot is free again long before the 30 s of sleep would have passed
    let t0 = Instant::now();
    let next = submit(&a, "say_hello", json!({"inputs": {"name": "next"}}));
    wait(&a, &next, "successful", Duration::from_secs(15));
    assert!(t0.elapsed() < Duration::from_secs(15));
    let r = execute(&a, "say_hello", &json!({"inputs": {"name": "sync"}}), false);
    assert_eq!(r.text(), "Hello sync");
}

#[test]
fn a_graceful_restart_keeps_a_running_job() {
    let a = start("ogcapi-graceful", Mpm::Event, "");
    let id = submit(
        &a,
        "sleep",
        json!({"inputs": {"delay": 0.5}, "response": "document"}),
    );
    wait(&a, &id, "running", Duration::from_secs(20));
    a.graceful();
    let done = wait(&a, &id, "successful", Duration::from_secs(40));
    assert_eq!(done["progress"], 100);
    let r = get_json(&a, &format!("/wps/api/jobs/{id}/results"));
    assert!(r["sleep_output"].is_string(), "{r}");
}

#[test]
fn the_job_list_is_fast_with_100000_jobs() {
    let dir = scratch("ogcapi-100k");
    let cfg = write_service_config_with(&dir, "wps.cfg", "", "");
    // 100 000 finished jobs, written as the store writes its records (the index is built at
    // start-up, as for a store of an earlier version)
    let records = dir.join("work/records");
    std::fs::create_dir_all(&records).unwrap();
    let t0 = 1_700_000_000u64;
    for n in 0..100_000u64 {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let process = if n % 100 == 0 {
            "ultimate_question"
        } else {
            "say_hello"
        };
        let rec = json!({
            "id": id, "key": format!("{:024}-{id}", (t0 + n) as u128 * 1_000_000_000),
            "process": process, "inputs": [], "outputs": [], "state": "succeeded",
            "progress": 100, "message": "done", "error": null, "submitted": t0 + n,
            "started": t0 + n, "finished": t0 + n, "updated": t0 + n, "attempt": 1,
            "owner": null, "lease_until": null, "user": null,
            "results": [{"identifier": "answer", "value": {"Literal": "42"}, "reference": null}],
            "protocol": null,
        });
        std::fs::write(records.join(format!("{id}.json")), rec.to_string()).unwrap();
    }
    let a = Apache::start_in(
        dir,
        Mpm::Event,
        &format!("WPSScriptAlias /wps {}\n", cfg.display()),
    );
    assert!(
        a.error_log().contains("built from 100000 job record"),
        "{}",
        a.error_log()
    );
    for (path, first) in [
        ("/wps/api/jobs", "00000000-0000-4000-8000-000000099999"),
        (
            "/wps/api/jobs?processID=ultimate_question&limit=5&offset=500",
            "00000000-0000-4000-8000-000000049900",
        ),
        (
            "/wps/api/jobs?datetime=2023-11-14T22:13:20Z/2023-11-14T22:13:30Z",
            "00000000-0000-4000-8000-000000000010",
        ),
    ] {
        let t = Instant::now();
        let j = get_json(&a, path);
        let took = t.elapsed();
        assert_eq!(j["jobs"][0]["jobID"], first, "{path}");
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
        eprintln!("{path}: {took:?}");
    }
    let next = get_json(&a, "/wps/api/jobs?limit=3");
    assert!(next["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["rel"] == "next"));
}
