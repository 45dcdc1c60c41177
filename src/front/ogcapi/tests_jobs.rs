//! OGC API – Processes jobs on a real runner and dispatcher: asynchronous execution, status,
//! results, dismiss, the job list and its filters, owners, and one job seen through WPS 1.0.0
//! and OGC API alike.

use super::tests::{call, call_as, fixture, get, header, json_of, post, text};
use crate::exec::pool::PoolConfig;
use crate::exec::testing::Fixture;
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};

fn rel(url: &str) -> &str {
    url.strip_prefix("http://h/wps/").unwrap()
}

/// Polls a job until its status is `want` (panics after 10 s).
fn wait(fx: &Fixture, id: &str, want: &str) -> Json {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let j = json_of(&get(fx, &format!("api/jobs/{id}")));
        if j["status"] == want {
            return j;
        }
        assert!(Instant::now() < deadline, "{j}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn submit(fx: &Fixture, process: &str, body: Json) -> String {
    let r = post(fx, process, &body, true);
    assert_eq!(r.status, 201, "{}", text(&r));
    json_of(&r)["jobID"].as_str().unwrap().to_owned()
}

#[test]
fn asynchronous_execution_status_and_results() {
    let fx = fixture();
    let r = post(
        &fx,
        "say_hello",
        &json!({"inputs": {"name": "Ann"}, "response": "document"}),
        true,
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(header(&r, "Preference-Applied"), Some("respond-async"));
    let j = json_of(&r);
    let id = j["jobID"].as_str().unwrap().to_owned();
    assert_eq!(
        header(&r, "Location").unwrap(),
        format!("http://h/wps/api/jobs/{id}")
    );
    assert_eq!(j["type"], "process");
    assert_eq!(j["processID"], "say_hello");
    assert_eq!(j["status"], "accepted");
    assert!(j["created"].as_str().unwrap().ends_with('Z'));
    let done = wait(&fx, &id, "successful");
    assert_eq!(done["progress"], 100);
    assert!(done["finished"].is_string() && done["started"].is_string());
    let results = done["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"].as_str().unwrap().ends_with("/results"))
        .unwrap();
    let r = get(&fx, rel(results["href"].as_str().unwrap()));
    assert_eq!(json_of(&r), json!({"response": "Hello Ann"}));
    // raw (the default) is kept with the job; a reference output is a link
    let id = submit(&fx, "testjson", json!({"inputs": {"name": "x"}}));
    wait(&fx, &id, "successful");
    let r = get(&fx, &format!("api/jobs/{id}/results"));
    assert_eq!(r.content_type, "application/json");
    assert!(json_of(&r).is_object());
    let id = submit(
        &fx,
        "say_hello",
        json!({"inputs": {"name": "Ref"}, "outputs": {"response": {"transmissionMode": "reference"}}, "response": "document"}),
    );
    wait(&fx, &id, "successful");
    let j = json_of(&get(&fx, &format!("api/jobs/{id}/results")));
    let href = j["response"]["href"].as_str().unwrap();
    assert_eq!(text(&get(&fx, rel(href))), "Hello Ref");
    // a process without async-execute runs synchronously whatever the preference (it
    // crashes: a 500 problem without the panic's details)
    let fx = Fixture::new(
        "",
        "builtin = say_hello, selftest_panic",
        PoolConfig::new("t"),
    );
    let r = post(&fx, "selftest_panic", &json!({}), true);
    assert_eq!(r.status, 500, "{}", text(&r));
    assert!(header(&r, "Preference-Applied").is_none());
    assert!(!text(&r).contains("asked to panic"), "{}", text(&r));
}

#[test]
fn results_wait_for_the_job_and_failures_are_problems() {
    let fx = fixture();
    let id = submit(&fx, "sleep", json!({"inputs": {"delay": 0.3}}));
    let r = get(&fx, &format!("api/jobs/{id}/results"));
    assert_eq!(r.status, 404, "{}", text(&r));
    assert_eq!(
        json_of(&r)["type"],
        "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/result-not-ready"
    );
    let running = wait(&fx, &id, "running");
    assert!(running["progress"].as_u64().unwrap() <= 100);
    wait(&fx, &id, "successful");
    assert_eq!(get(&fx, &format!("api/jobs/{id}/results")).status, 200);
    // a failing job: its results are the failure
    let id = submit(
        &fx,
        "feature_count",
        json!({"inputs": {"layer": {"value": "<not gml/>", "mediaType": "application/gml+xml"}}}),
    );
    let j = wait(&fx, &id, "failed");
    assert!(!j["message"].as_str().unwrap().is_empty());
    let r = get(&fx, &format!("api/jobs/{id}/results"));
    assert!(r.status >= 400, "{}", text(&r));
    assert!(json_of(&r)["detail"].is_string());
    // unknown jobs
    for path in [
        "api/jobs/00000000-0000-4000-8000-000000000000",
        "api/jobs/../../etc/passwd/results",
        "api/jobs/x",
    ] {
        let r = get(&fx, path);
        assert_eq!(r.status, 404, "{path}");
    }
    let r = get(&fx, "api/jobs/00000000-0000-4000-8000-000000000000/results");
    assert_eq!(
        json_of(&r)["type"],
        "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job"
    );
}

#[test]
fn dismiss_cancels_a_running_job_then_it_is_gone() {
    let fx = fixture();
    let id = submit(&fx, "sleep", json!({"inputs": {"delay": 2}}));
    wait(&fx, &id, "running");
    let t0 = Instant::now();
    let r = call(&fx, "DELETE", &format!("api/jobs/{id}"), &[], b"");
    assert_eq!(r.status, 200, "{}", text(&r));
    let j = json_of(&r);
    assert_eq!(j["status"], "dismissed");
    assert_eq!(j["jobID"], id.as_str());
    for path in [format!("api/jobs/{id}"), format!("api/jobs/{id}/results")] {
        let r = get(&fx, &path);
        assert_eq!(r.status, 404);
        assert!(json_of(&r)["type"]
            .as_str()
            .unwrap()
            .ends_with("/no-such-job"));
    }
    assert_eq!(
        call(&fx, "DELETE", &format!("api/jobs/{id}"), &[], b"").status,
        404
    );
    // the worker is free again long before the sleep would have ended
    let r = post(&fx, "say_hello", &json!({"inputs": {"name": "x"}}), false);
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(8));
    // a queued job too
    let id = submit(&fx, "say_hello", json!({"inputs": {"name": "q"}}));
    let r = call(&fx, "DELETE", &format!("api/jobs/{id}"), &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn the_job_list_filters_and_pages_newest_first() {
    let fx = fixture();
    let mut hello = Vec::new();
    for i in 0..5 {
        hello.push(submit(
            &fx,
            "say_hello",
            json!({"inputs": {"name": format!("n{i}")}}),
        ));
    }
    let other = submit(&fx, "ultimate_question", json!({}));
    for id in &hello {
        wait(&fx, id, "successful");
    }
    wait(&fx, &other, "successful");
    let j = json_of(&get(&fx, "api/jobs"));
    let ids: Vec<&str> = j["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["jobID"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], other, "newest first");
    assert_eq!(ids.len(), 6);
    let j = json_of(&get(&fx, "api/jobs?processID=say_hello&limit=2"));
    let page: Vec<&str> = j["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["jobID"].as_str().unwrap())
        .collect();
    assert_eq!(page, [hello[4].as_str(), hello[3].as_str()]);
    let next = j["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "next")
        .unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        next.contains("processID=say_hello") && next.contains("offset=2"),
        "{next}"
    );
    let j = json_of(&get(&fx, rel(&next)));
    assert_eq!(j["jobs"][0]["jobID"], hello[2].as_str());
    let j = json_of(&get(&fx, "api/jobs?processID=say_hello&limit=2&offset=4"));
    assert_eq!(j["jobs"].as_array().unwrap().len(), 1);
    assert!(!j["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["rel"] == "next"));
    // status and type
    assert_eq!(
        json_of(&get(&fx, "api/jobs?status=successful"))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        json_of(&get(&fx, "api/jobs?status=running,accepted"))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        json_of(&get(&fx, "api/jobs?type=process"))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        json_of(&get(&fx, "api/jobs?type=openeo"))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(get(&fx, "api/jobs?status=done").status, 400);
    // datetime: intervals around now
    assert_eq!(
        json_of(&get(&fx, "api/jobs?datetime=2000-01-01T00:00:00Z/.."))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        json_of(&get(&fx, "api/jobs?datetime=../2000-01-01T00:00:00Z"))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        json_of(&get(&fx, "api/jobs?datetime=2000-01-01"))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(get(&fx, "api/jobs?datetime=yesterday").status, 400);
    assert_eq!(get(&fx, "api/jobs?limit=x").status, 400);
    let page = text(&get(&fx, "api/jobs?f=html"));
    assert!(page.contains(&hello[0]), "{page}");
}

#[test]
fn one_job_is_visible_through_wps1_and_ogcapi() {
    let fx = fixture();
    // submitted through WPS 1.0.0, read here
    let r = call(&fx, "GET", "", &[], b"");
    assert_eq!(r.status, 400);
    let q = "service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=W&storeExecuteResponse=true";
    let r = crate::front::router::handle(
        &fx.service,
        fx.runner.as_ref(),
        &crate::front::HttpRequest {
            method: "GET",
            path: "",
            query: q,
            headers: vec![],
            body: crate::front::Body::Bytes(Default::default()),
            base_url: "http://h/wps",
            user: None,
        },
    );
    let t = text(&r);
    let id = t
        .split("/outputs/")
        .nth(1)
        .and_then(|s| s.split(".xml").next())
        .unwrap()
        .to_owned();
    wait(&fx, &id, "successful");
    let j = json_of(&get(&fx, &format!("api/jobs/{id}/results")));
    assert_eq!(
        j,
        json!({"response": "Hello W"}),
        "a WPS job's results as a document"
    );
    // submitted here, read through WPS 1.0.0
    let id = submit(&fx, "say_hello", json!({"inputs": {"name": "O"}}));
    wait(&fx, &id, "successful");
    let doc = text(&get(&fx, &format!("outputs/{id}.xml")));
    assert!(
        doc.contains("ProcessSucceeded") && doc.contains(">Hello O<"),
        "{doc}"
    );
}

#[test]
fn with_jobaccess_owner_users_see_only_their_jobs() {
    let fx = Fixture::new(
        "jobaccess = owner\njobadmins = root",
        "builtin = all",
        PoolConfig::new("t"),
    );
    let body = json!({"inputs": {"name": "x"}}).to_string();
    let h = [("Prefer", "respond-async")];
    let submit_as = |user| {
        let r = call_as(
            &fx,
            "POST",
            "api/processes/say_hello/execution",
            &h,
            body.as_bytes(),
            Some(user),
        );
        assert_eq!(r.status, 201);
        json_of(&r)["jobID"].as_str().unwrap().to_owned()
    };
    let ann = submit_as("ann");
    let bob = submit_as("bob");
    let list = |user| -> Vec<String> {
        json_of(&call_as(&fx, "GET", "api/jobs", &[], b"", Some(user)))["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["jobID"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("ann"), vec![ann.clone()]);
    assert_eq!(list("bob"), vec![bob.clone()]);
    assert_eq!(list("root").len(), 2);
    let status = |user, id: &str| {
        call_as(&fx, "GET", &format!("api/jobs/{id}"), &[], b"", Some(user)).status
    };
    assert_eq!(
        (
            status("ann", &ann),
            status("bob", &ann),
            status("root", &ann)
        ),
        (200, 404, 200)
    );
    assert_eq!(
        call_as(
            &fx,
            "DELETE",
            &format!("api/jobs/{ann}"),
            &[],
            b"",
            Some("bob")
        )
        .status,
        404
    );
    assert_eq!(status("ann", &ann), 200, "bob could not dismiss it");
}
