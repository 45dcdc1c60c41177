//! `/api`: the OpenAPI 3.0 document of this API, generated from the live process registry —
//! each process's execute request (its inputs as schemas) and its results — and its HTML
//! rendering (`service-doc`).

use super::schema::schema;
use super::{Ctx, Fmt, OPENAPI_JSON};
use crate::front::http::HttpResponse;
use crate::model::ProcessDescription;
use serde_json::{json, Map, Value as Json};

/// A schema of the process description as OpenAPI 3.0 has it: JSON Schema's content keywords
/// become `x-` extensions, base64 content `format: byte`.
fn oas(s: &Json) -> Json {
    match s {
        Json::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "contentMediaType" | "contentSchema" => {
                        out.insert(format!("x-{k}"), v.clone());
                    }
                    "contentEncoding" => {
                        out.insert("format".into(), json!("byte"));
                    }
                    "format" if v == "ogc-bbox" => {
                        out.insert("x-format".into(), v.clone());
                    }
                    _ => {
                        out.insert(k.clone(), oas(v));
                    }
                }
            }
            Json::Object(out)
        }
        Json::Array(a) => Json::Array(a.iter().map(oas).collect()),
        v => v.clone(),
    }
}

fn r(name: &str) -> Json {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn content(schema: Json) -> Json {
    json!({ "application/json": { "schema": schema } })
}

fn problem(description: &str) -> Json {
    json!({ "description": description, "content": content(r("exception")) })
}

fn execute_path(desc: &ProcessDescription) -> Json {
    let mut inputs = Map::new();
    let mut required = Vec::new();
    for i in &desc.inputs {
        let one = json!({ "anyOf": [oas(&schema(&i.data)), r("qualifiedValue"), r("link")] });
        let s = if i.max_occurs > 1 {
            json!({ "anyOf": [one.clone(), { "type": "array", "items": one, "maxItems": i.max_occurs.min(100_000) }] })
        } else {
            one
        };
        inputs.insert(i.identifier.clone(), s);
        if i.min_occurs > 0 {
            required.push(i.identifier.clone());
        }
    }
    let mut inputs_schema =
        json!({ "type": "object", "properties": inputs, "additionalProperties": false });
    if !required.is_empty() {
        inputs_schema["required"] = json!(required);
    }
    let mut results = Map::new();
    let mut outputs = Map::new();
    for o in &desc.outputs {
        results.insert(
            o.identifier.clone(),
            json!({ "anyOf": [oas(&schema(&o.data)), r("qualifiedValue"), r("link")] }),
        );
        outputs.insert(o.identifier.clone(), r("output"));
    }
    let mut request = json!({
        "type": "object",
        "properties": {
            "inputs": inputs_schema,
            "outputs": { "type": "object", "properties": outputs, "additionalProperties": false },
            "response": { "type": "string", "enum": ["raw", "document"], "default": "raw" },
        },
    });
    if !required.is_empty() {
        request["required"] = json!(["inputs"]);
    }
    json!({
        "post": {
            "summary": format!("Execute {}", desc.title),
            "description": desc.abstract_,
            "operationId": format!("execute_{}", desc.identifier),
            "tags": ["Processes"],
            "parameters": [{ "$ref": "#/components/parameters/prefer" }],
            "requestBody": { "required": true, "content": content(request) },
            "responses": {
                "200": {
                    "description": "The results (response=document), or the raw output (response=raw)",
                    "content": {
                        "application/json": { "schema": { "type": "object", "properties": results } },
                        "multipart/related": { "schema": { "type": "string", "format": "binary" } },
                        "*/*": { "schema": { "type": "string", "format": "binary" } },
                    },
                },
                "201": {
                    "description": "The job was created (Prefer: respond-async)",
                    "headers": {
                        "Location": { "schema": { "type": "string" }, "description": "The job's URL" },
                        "Preference-Applied": { "schema": { "type": "string" } },
                    },
                    "content": content(r("statusInfo")),
                },
                "204": { "description": "Every output was asked by reference (Link headers)" },
                "400": problem("A malformed request, an unknown or missing input, a wrong value"),
                "404": problem("No such process"),
                "500": problem("The process failed"),
            },
        }
    })
}

fn get(summary: &str, op: &str, tag: &str, ok: Json, params: Json) -> Json {
    json!({
        "get": {
            "summary": summary,
            "operationId": op,
            "tags": [tag],
            "parameters": params,
            "responses": {
                "200": { "description": summary, "content": content(ok) },
                "404": problem("Not found"),
                "406": problem("The requested representation is not offered"),
            },
        }
    })
}

pub fn openapi(ctx: &Ctx) -> Json {
    let m = &ctx.service.config.metadata;
    let f = json!({ "$ref": "#/components/parameters/f" });
    let mut paths = Map::new();
    paths.insert(
        "/".into(),
        get(
            "Landing page",
            "getLandingPage",
            "Capabilities",
            r("landingPage"),
            json!([f]),
        ),
    );
    paths.insert(
        "/conformance".into(),
        get(
            "Conformance classes",
            "getConformanceClasses",
            "Capabilities",
            r("confClasses"),
            json!([f]),
        ),
    );
    paths.insert(
        "/api".into(),
        get(
            "This OpenAPI document",
            "getAPI",
            "Capabilities",
            json!({"type": "object"}),
            json!([f]),
        ),
    );
    paths.insert(
        "/processes".into(),
        get("The processes", "getProcesses", "Processes", r("processList"),
            json!([f, { "$ref": "#/components/parameters/limit" }, { "$ref": "#/components/parameters/offset" }])),
    );
    paths.insert(
        "/processes/{processID}".into(),
        get("A process description", "getProcessDescription", "Processes", r("process"),
            json!([f, { "name": "processID", "in": "path", "required": true, "schema": { "type": "string" } }])),
    );
    for p in ctx.service.processes() {
        let d = p.description();
        paths.insert(
            format!("/processes/{}/execution", d.identifier),
            execute_path(d),
        );
    }
    let job_id =
        json!({ "name": "jobID", "in": "path", "required": true, "schema": { "type": "string" } });
    let list_params = json!([
        f,
        { "name": "processID", "in": "query", "schema": { "type": "array", "items": { "type": "string" } }, "style": "form", "explode": false },
        { "name": "status", "in": "query", "schema": { "type": "array", "items": r("statusCode") }, "style": "form", "explode": false },
        { "name": "type", "in": "query", "schema": { "type": "array", "items": { "type": "string", "enum": ["process"] } }, "style": "form", "explode": false },
        { "name": "datetime", "in": "query", "schema": { "type": "string" }, "description": "Submission time: an RFC 3339 instant or an interval start/end ('..' for an open end)" },
        { "$ref": "#/components/parameters/limit" },
        { "$ref": "#/components/parameters/offset" },
    ]);
    paths.insert(
        "/jobs".into(),
        get(
            "The jobs, newest first",
            "getJobs",
            "Jobs",
            r("jobList"),
            list_params,
        ),
    );
    let mut job = get(
        "A job's status",
        "getStatus",
        "Jobs",
        r("statusInfo"),
        json!([f, job_id.clone()]),
    );
    job["delete"] = json!({
        "summary": "Dismiss a job: cancel it if it runs, remove its outputs",
        "operationId": "dismiss",
        "tags": ["Jobs"],
        "parameters": [job_id.clone()],
        "responses": {
            "200": { "description": "The job was dismissed", "content": content(r("statusInfo")) },
            "404": problem("No such job"),
        },
    });
    paths.insert("/jobs/{jobID}".into(), job);
    let mut results = get(
        "A job's results",
        "getResult",
        "Jobs",
        json!({"type": "object", "additionalProperties": true}),
        json!([job_id]),
    );
    results["get"]["responses"]["404"] =
        problem("No such job, or its results are not ready (result-not-ready)");
    paths.insert("/jobs/{jobID}/results".into(), results);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": m.title,
            "description": if m.abstract_.is_empty() { "OGC API – Processes served by mod_wps".to_owned() } else { m.abstract_.clone() },
            "version": env!("CARGO_PKG_VERSION"),
            "contact": { "name": m.provider_name, "url": m.provider_url, "email": m.contact_email },
        },
        "servers": [{ "url": ctx.api }],
        "tags": [{ "name": "Capabilities" }, { "name": "Processes" }, { "name": "Jobs" }],
        "paths": paths,
        "components": components(),
    })
}

fn components() -> Json {
    json!({
        "parameters": {
            "f": { "name": "f", "in": "query", "schema": { "type": "string", "enum": ["json", "html"] }, "description": "The representation (else by Accept)" },
            "limit": { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 10 } },
            "offset": { "name": "offset", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } },
            "prefer": { "name": "Prefer", "in": "header", "schema": { "type": "string" }, "description": "respond-async: run as a job (201)" },
        },
        "schemas": {
            "link": { "type": "object", "required": ["href"], "properties": {
                "href": { "type": "string" }, "rel": { "type": "string" }, "type": { "type": "string" },
                "hreflang": { "type": "string" }, "title": { "type": "string" } } },
            "landingPage": { "type": "object", "required": ["links"], "properties": {
                "title": { "type": "string" }, "description": { "type": "string" },
                "links": { "type": "array", "items": r("link") } } },
            "confClasses": { "type": "object", "required": ["conformsTo"], "properties": {
                "conformsTo": { "type": "array", "items": { "type": "string" } } } },
            "processSummary": { "type": "object", "required": ["id", "version"], "properties": {
                "id": { "type": "string" }, "title": { "type": "string" }, "description": { "type": "string" },
                "version": { "type": "string" },
                "jobControlOptions": { "type": "array", "items": { "type": "string", "enum": ["sync-execute", "async-execute", "dismiss"] } },
                "outputTransmission": { "type": "array", "items": { "type": "string", "enum": ["value", "reference"] } },
                "links": { "type": "array", "items": r("link") } } },
            "process": { "allOf": [r("processSummary"), { "type": "object", "properties": {
                "inputs": { "type": "object", "additionalProperties": { "type": "object" } },
                "outputs": { "type": "object", "additionalProperties": { "type": "object" } } } }] },
            "processList": { "type": "object", "required": ["processes", "links"], "properties": {
                "processes": { "type": "array", "items": r("processSummary") },
                "links": { "type": "array", "items": r("link") } } },
            "statusCode": { "type": "string", "enum": ["accepted", "running", "successful", "failed", "dismissed"] },
            "statusInfo": { "type": "object", "required": ["jobID", "status", "type"], "properties": {
                "processID": { "type": "string" }, "type": { "type": "string", "enum": ["process"] },
                "jobID": { "type": "string" }, "status": r("statusCode"), "message": { "type": "string" },
                "created": { "type": "string", "format": "date-time" }, "started": { "type": "string", "format": "date-time" },
                "finished": { "type": "string", "format": "date-time" }, "updated": { "type": "string", "format": "date-time" },
                "progress": { "type": "integer", "minimum": 0, "maximum": 100 },
                "links": { "type": "array", "items": r("link") } } },
            "jobList": { "type": "object", "required": ["jobs", "links"], "properties": {
                "jobs": { "type": "array", "items": r("statusInfo") },
                "links": { "type": "array", "items": r("link") } } },
            "qualifiedValue": { "type": "object", "required": ["value"], "properties": {
                "value": {}, "mediaType": { "type": "string" }, "encoding": { "type": "string" },
                "schema": { "type": "string" } } },
            "output": { "type": "object", "properties": {
                "format": { "type": "object", "properties": { "mediaType": { "type": "string" }, "encoding": { "type": "string" }, "schema": { "type": "string" } } },
                "transmissionMode": { "type": "string", "enum": ["value", "reference"], "default": "value" } } },
            "exception": { "type": "object", "required": ["type"], "additionalProperties": true, "properties": {
                "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
                "detail": { "type": "string" }, "instance": { "type": "string" } } },
        },
    })
}

/// `GET /api`: the OpenAPI document (`application/vnd.oai.openapi+json;version=3.0`) or its
/// HTML rendering.
pub fn document(ctx: &Ctx) -> HttpResponse {
    let doc = openapi(ctx);
    match ctx.fmt {
        Fmt::Json => {
            let mut r = super::json_response(200, &doc);
            r.content_type = OPENAPI_JSON.into();
            r
        }
        Fmt::Html => super::html::page(ctx, 200, "api.html", &doc),
    }
}
