//! OGC API – Processes on a real runner and dispatcher (no Apache): resources, execution,
//! errors, HTML. Jobs are in `tests_jobs.rs`.

use crate::exec::pool::PoolConfig;
use crate::exec::testing::Fixture;
use crate::front::{router, Body, HttpRequest, HttpResponse};
use serde_json::{json, Value as Json};

pub(super) fn fixture() -> Fixture {
    Fixture::new(
        "maxsingleinputsize = 8kb",
        "builtin = all",
        PoolConfig::new("t"),
    )
}

pub(super) fn call(
    fx: &Fixture,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    call_as(fx, method, path, headers, body, None)
}

pub(super) fn call_as(
    fx: &Fixture,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    user: Option<&str>,
) -> HttpResponse {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    router::handle(
        &fx.service,
        fx.runner.as_ref(),
        &HttpRequest {
            method,
            path,
            query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Body::Bytes(body.to_vec().into()),
            base_url: "http://h/wps",
            user,
        },
    )
}

pub(super) fn get(fx: &Fixture, path: &str) -> HttpResponse {
    call(fx, "GET", path, &[], b"")
}

pub(super) fn json_of(r: &HttpResponse) -> Json {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
}

pub(super) fn text(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

pub(super) fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn post(fx: &Fixture, process: &str, body: &Json, prefer_async: bool) -> HttpResponse {
    let mut h = vec![("Content-Type", "application/json")];
    if prefer_async {
        h.push(("Prefer", "respond-async"));
    }
    call(
        fx,
        "POST",
        &format!("api/processes/{process}/execution"),
        &h,
        body.to_string().as_bytes(),
    )
}

fn problem(r: &HttpResponse, status: u16, type_end: &str) {
    assert_eq!(r.status, status, "{}", text(r));
    assert_eq!(r.content_type, "application/json");
    let j = json_of(r);
    assert!(j["type"].as_str().unwrap().ends_with(type_end), "{j}");
    assert_eq!(j["status"], status);
    assert!(!j["detail"].as_str().unwrap().is_empty());
}

#[test]
fn landing_conformance_and_processes() {
    let fx = fixture();
    for path in ["api", "api/"] {
        let r = get(&fx, path);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
        let j = json_of(&r);
        let rels: Vec<&str> = j["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["rel"].as_str().unwrap())
            .collect();
        for rel in [
            "self",
            "service-desc",
            "service-doc",
            "conformance",
            "processes",
            "jobs",
        ] {
            assert!(rels.contains(&rel), "{rel} in {rels:?}");
        }
        let desc = j["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "service-desc")
            .unwrap();
        assert_eq!(desc["href"], "http://h/wps/api/api");
        assert_eq!(desc["type"], "application/vnd.oai.openapi+json;version=3.0");
    }
    let j = json_of(&get(&fx, "api/conformance"));
    let classes = j["conformsTo"].as_array().unwrap();
    for c in [
        "core",
        "ogc-process-description",
        "json",
        "html",
        "oas30",
        "job-list",
        "dismiss",
    ] {
        assert!(
            classes
                .iter()
                .any(|x| x.as_str().unwrap().ends_with(&format!("/conf/{c}"))),
            "{c}"
        );
    }
    let j = json_of(&get(&fx, "api/processes"));
    let ids: Vec<&str> = j["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"say_hello") && ids.contains(&"sleep"),
        "{ids:?}"
    );
    let sleep = j["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "sleep")
        .unwrap();
    assert_eq!(
        sleep["jobControlOptions"],
        json!(["sync-execute", "async-execute", "dismiss"])
    );
    assert_eq!(sleep["outputTransmission"], json!(["value", "reference"]));
    // paging
    let j = json_of(&get(&fx, "api/processes?limit=2"));
    assert_eq!(j["processes"].as_array().unwrap().len(), 2);
    let next = j["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "next")
        .unwrap();
    assert_eq!(next["href"], "http://h/wps/api/processes?limit=2&offset=2");
    let j2 = json_of(&get(&fx, "api/processes?limit=2&offset=2"));
    assert_ne!(j2["processes"][0]["id"], j["processes"][0]["id"]);
    problem(&get(&fx, "api/processes?limit=0"), 400, "about:blank");
}

#[test]
fn the_api_prefix_is_configurable_and_urls_follow_server_url() {
    let fx = Fixture::new(
        "apiprefix = ogc\nurl = https://example.org/x/wps",
        "builtin = say_hello",
        PoolConfig::new("t"),
    );
    assert_eq!(get(&fx, "api").status, 404);
    for bad in ["outputs", "a/b", "", ".x", "a b"] {
        let cfg = crate::config::service::ServiceConfig::parse(
            &format!("[server]\napiprefix = {bad}\n"),
            std::path::Path::new("/x.cfg"),
        );
        let e = cfg
            .err()
            .unwrap_or_else(|| panic!("apiprefix = {bad} accepted"));
        assert!(e.message.contains("apiprefix"), "{}", e.message);
    }
    let j = json_of(&get(&fx, "ogc/processes"));
    assert_eq!(
        j["processes"][0]["links"][0]["href"],
        "https://example.org/x/wps/ogc/processes/say_hello"
    );
}

#[test]
fn process_descriptions_have_json_schemas() {
    let fx = fixture();
    let j = json_of(&get(&fx, "api/processes/buffer"));
    assert_eq!(j["id"], "buffer");
    let b = &j["inputs"]["buffer"];
    assert_eq!(b["minOccurs"], 1);
    assert_eq!(b["maxOccurs"], 1);
    // allowed values 0, 1, 10 and ranges
    let s = &b["schema"];
    assert_eq!(s["type"], "number");
    let alts = s["oneOf"].as_array().unwrap();
    assert!(alts.iter().any(|a| a["enum"].is_array()), "{s}");
    assert!(
        alts.iter()
            .any(|a| a["minimum"] == 100.0 && a["maximum"] == 1000.0),
        "{s}"
    );
    assert_eq!(
        j["inputs"]["poly_in"]["schema"]["contentMediaType"],
        "application/gml+xml"
    );
    let bbox = json_of(&get(&fx, "api/processes/boundingbox"));
    let s = &bbox["inputs"]["bboxin"]["schema"];
    assert_eq!(s["format"], "ogc-bbox");
    assert_eq!(s["properties"]["bbox"]["minItems"], 4);
    assert!(
        s["properties"]["crs"]["enum"].as_array().unwrap().len() >= 2,
        "{s}"
    );
    let ex = bbox["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"].as_str().unwrap().ends_with("/execute"))
        .unwrap();
    assert_eq!(
        ex["href"],
        "http://h/wps/api/processes/boundingbox/execution"
    );
    let out = json_of(&get(&fx, "api/processes/testjson"));
    assert_eq!(
        out["outputs"]["out"]["schema"]["contentMediaType"],
        "application/json"
    );
    problem(&get(&fx, "api/processes/nope"), 404, "/1.0/no-such-process");
}

#[test]
fn synchronous_execution_raw_and_document() {
    let fx = fixture();
    // raw is the default: the bare value with its media type
    let r = post(&fx, "say_hello", &json!({"inputs": {"name": "Ann"}}), false);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(text(&r), "Hello Ann");
    assert!(r.content_type.starts_with("text/plain"));
    let r = post(
        &fx,
        "say_hello",
        &json!({"inputs": {"name": {"value": "Bo"}}, "response": "document"}),
        false,
    );
    assert_eq!(json_of(&r), json!({"response": "Hello Bo"}));
    let r = post(
        &fx,
        "ultimate_question",
        &json!({"response": "document"}),
        false,
    );
    assert_eq!(json_of(&r)["answer"], json!("42"), "a string literal");
    let r = post(
        &fx,
        "sleep",
        &json!({"inputs": {"delay": 0}, "response": "document"}),
        false,
    );
    assert!(json_of(&r)["sleep_output"].is_string(), "{}", text(&r));
    // JSON output: a qualified value holding the JSON itself
    let r = post(
        &fx,
        "testjson",
        &json!({"inputs": {"name": "x"}, "response": "document"}),
        false,
    );
    let j = json_of(&r);
    assert_eq!(j["out"]["mediaType"], "application/json");
    assert!(j["out"]["value"].is_object(), "{j}");
    let r = post(&fx, "testjson", &json!({"inputs": {"name": "x"}}), false);
    assert_eq!(r.content_type, "application/json");
    // a bounding box, CRS84 read as EPSG:4326
    let r = post(
        &fx,
        "boundingbox",
        &json!({"inputs": {"bboxin": {"bbox": [1, 2, 3, 4], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}, "response": "document"}),
        false,
    );
    let j = json_of(&r);
    assert_eq!(j["bboxout"]["bbox"], json!([1.0, 2.0, 3.0, 4.0]), "{j}");
    assert_eq!(
        j["bboxout"]["crs"],
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    );
    let r = post(
        &fx,
        "boundingbox",
        &json!({"inputs": {"bboxin": {"bbox": [1, 2, 3, 4], "crs": "epsg:3035"}}, "response": "document"}),
        false,
    );
    assert_eq!(
        json_of(&r)["bboxout"]["crs"],
        "http://www.opengis.net/def/crs/EPSG/0/3035"
    );
    // an inline GML layer
    let gml = include_str!("../../../tests/data/polygons.gml");
    let r = post(
        &fx,
        "feature_count",
        &json!({"inputs": {"layer": {"value": gml, "mediaType": "application/gml+xml"}}, "response": "document"}),
        false,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(json_of(&r)["count"].is_number(), "{}", text(&r));
}

#[test]
fn outputs_by_reference_and_multipart() {
    let fx = fixture();
    let r = post(
        &fx,
        "say_hello",
        &json!({"inputs": {"name": "Ann"}, "outputs": {"response": {"transmissionMode": "reference"}}, "response": "document"}),
        false,
    );
    let j = json_of(&r);
    let href = j["response"]["href"].as_str().unwrap();
    assert!(href.starts_with("http://h/wps/outputs/"), "{href}");
    let rel = href.strip_prefix("http://h/wps/").unwrap();
    assert_eq!(text(&get(&fx, rel)), "Hello Ann");
    // raw, every output by reference: 204 and a Link header
    let r = post(
        &fx,
        "say_hello",
        &json!({"inputs": {"name": "Ann"}, "outputs": {"response": {"transmissionMode": "reference"}}}),
        false,
    );
    assert_eq!(r.status, 204);
    assert!(header(&r, "Link").unwrap().contains("/outputs/"));
    // raw with two outputs: multipart/related
    let cfg = "[process:two]\ncommand = /bin/sh -c \"echo 5; echo hi > $0\" {output:b}\noutput.a = literal integer\noutput.b = complex text/plain\n";
    let fx2 = Fixture::new(
        "",
        &format!("builtin = say_hello\n{cfg}"),
        PoolConfig::new("t"),
    );
    let r = post(&fx2, "two", &json!({}), false);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(
        r.content_type.starts_with("multipart/related; boundary="),
        "{}",
        r.content_type
    );
    let t = text(&r);
    assert!(
        t.contains("Content-ID: <a>") && t.contains("Content-ID: <b>") && t.contains("hi"),
        "{t}"
    );
}

#[test]
fn bad_requests_are_400_with_a_clear_problem() {
    let fx = fixture();
    for (body, needle) in [
        (&b"{not json"[..], "not JSON"),
        (b"[1,2]", "JSON object"),
        (br#"{"inputs": {"nope": 1}}"#, "no input 'nope'"),
        (br#"{"inputs": {}}"#, "name"),
        (br#"{"inputs": {"name": {"x": 1}}}"#, "literal value"),
        (br#"{"inputs": {"name": null}}"#, "null"),
        (
            br#"{"inputs": {"name": "a"}, "response": "nope"}"#,
            "response",
        ),
        (
            br#"{"inputs": {"name": "a"}, "outputs": {"nope": {}}}"#,
            "nope",
        ),
        (
            br#"{"inputs": {"name": "a"}, "outputs": {"response": {"transmissionMode": "x"}}}"#,
            "transmissionMode",
        ),
    ] {
        let r = call(&fx, "POST", "api/processes/say_hello/execution", &[], body);
        problem(&r, 400, "about:blank");
        assert!(text(&r).contains(needle), "{needle}: {}", text(&r));
    }
    let r = post(&fx, "sleep", &json!({"inputs": {"delay": "soon"}}), false);
    problem(&r, 400, "about:blank");
    assert_eq!(json_of(&r)["locator"], "delay");
    // a reference to a refused address
    let r = post(
        &fx,
        "feature_count",
        &json!({"inputs": {"layer": {"href": "http://127.0.0.1:1/x.gml"}}}),
        false,
    );
    problem(&r, 400, "about:blank");
    let r = post(
        &fx,
        "feature_count",
        &json!({"inputs": {"layer": {"href": "file:///etc/passwd"}}}),
        false,
    );
    problem(&r, 400, "about:blank");
    problem(
        &post(&fx, "nope", &json!({}), false),
        404,
        "/no-such-process",
    );
    // 405 with Allow, 404, 406
    let r = call(&fx, "PUT", "api/processes", &[], b"");
    problem(&r, 405, "about:blank");
    assert_eq!(header(&r, "Allow"), Some("GET, HEAD"));
    let r = call(&fx, "GET", "api/processes/say_hello/execution", &[], b"");
    assert_eq!(header(&r, "Allow"), Some("POST"));
    problem(&get(&fx, "api/nowhere"), 404, "about:blank");
    problem(
        &call(&fx, "GET", "api/processes", &[("Accept", "image/png")], b""),
        406,
        "about:blank",
    );
    problem(&get(&fx, "api/processes?f=xml"), 406, "about:blank");
    // problem+json when asked
    let r = call(
        &fx,
        "GET",
        "api/jobs/x",
        &[("Accept", "application/problem+json")],
        b"",
    );
    assert_eq!(r.content_type, "application/problem+json");
}

#[test]
fn html_pages_render_from_the_same_documents() {
    let fx = fixture();
    for path in [
        "api?f=html",
        "api/conformance?f=html",
        "api/processes?f=html",
        "api/processes/buffer?f=html",
        "api/jobs?f=html",
        "api/api?f=html",
    ] {
        let r = get(&fx, path);
        assert_eq!(r.status, 200, "{path}: {}", text(&r));
        assert_eq!(r.content_type, "text/html; charset=utf-8");
        assert!(text(&r).starts_with("<!DOCTYPE html>"), "{path}");
    }
    let r = call(
        &fx,
        "GET",
        "api/processes",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
        b"",
    );
    // minijinja escapes '/' as &#x2f; in attributes
    let page = text(&r).replace("&#x2f;", "/");
    assert!(
        page.contains("href=\"http://h/wps/api/processes/say_hello?f=html\""),
        "{page}"
    );
    let page = text(&get(&fx, "api/processes/buffer?f=html"));
    assert!(
        page.contains("<form id=\"execute\"") && page.contains("name=\"poly_in\""),
        "{page}"
    );
    // escaped
    let r = get(&fx, "api/processes/%3Cb%3E?f=html");
    assert_eq!(r.status, 404);
    assert!(!text(&r).contains("<b>"), "{}", text(&r));
    // the form runs a process synchronously and shows the results
    let r = call(
        &fx,
        "POST",
        "api/processes/say_hello/execution?f=html",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"name=Zo%C3%A9&_mode=sync",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(text(&r).contains("Hello Zoé"), "{}", text(&r));
    // or as a job: a redirect to the job page
    let r = call(
        &fx,
        "POST",
        "api/processes/sleep/execution?f=html",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"delay=0&_mode=async",
    );
    assert_eq!(r.status, 303, "{}", text(&r));
    let loc = header(&r, "Location").unwrap();
    assert!(
        loc.starts_with("http://h/wps/api/jobs/") && loc.ends_with("?f=html"),
        "{loc}"
    );
    let page = text(&get(&fx, loc.strip_prefix("http://h/wps/").unwrap()));
    assert!(page.contains("id=\"status\""), "{page}");
}

#[test]
fn openapi_document_covers_every_process() {
    let fx = fixture();
    let r = get(&fx, "api/api");
    assert_eq!(
        r.content_type,
        "application/vnd.oai.openapi+json;version=3.0"
    );
    let j = json_of(&r);
    assert_eq!(j["openapi"], "3.0.3");
    assert_eq!(j["servers"][0]["url"], "http://h/wps/api");
    for id in fx.service.process_ids() {
        let p = &j["paths"][format!("/processes/{id}/execution")]["post"];
        assert!(p["requestBody"].is_object(), "{id}");
    }
    let req = &j["paths"]["/processes/say_hello/execution"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(req["properties"]["inputs"]["required"], json!(["name"]));
    assert!(j["paths"]["/jobs/{jobID}"]["delete"].is_object());
    // no JSON Schema keyword OpenAPI 3.0 lacks
    let text = r.body.iter().map(|&b| b as char).collect::<String>();
    assert!(!text.contains("\"contentMediaType\""));
}
