//! The landing page, the conformance declaration, the process list and the process
//! descriptions: inputs and outputs with JSON Schemas made from literal types and allowed
//! values, formats (`contentMediaType`, `contentEncoding`) and bounding boxes.

use super::schema::schema;
use super::{no_such_process, ApiResult, Ctx, CONFORMANCE, JSON, OPENAPI_JSON};
use crate::front::http::HttpResponse;
use crate::model::ProcessDescription;
use serde_json::{json, Value as Json};

pub fn landing(ctx: &Ctx) -> HttpResponse {
    let m = &ctx.service.config.metadata;
    let mut links = ctx.self_links("", "This document");
    links.extend([
        ctx.link(
            ctx.url("api"),
            "service-desc",
            OPENAPI_JSON,
            "The OpenAPI definition",
        ),
        ctx.link(
            ctx.url("api?f=html"),
            "service-doc",
            "text/html",
            "The API documentation",
        ),
        ctx.link(
            ctx.url("conformance"),
            "http://www.opengis.net/def/rel/ogc/1.0/conformance",
            JSON,
            "Conformance classes",
        ),
        ctx.link(
            ctx.url("conformance"),
            "conformance",
            JSON,
            "Conformance classes",
        ),
        ctx.link(
            ctx.url("processes"),
            "http://www.opengis.net/def/rel/ogc/1.0/processes",
            JSON,
            "Processes",
        ),
        ctx.link(ctx.url("processes"), "processes", JSON, "Processes"),
        ctx.link(
            ctx.url("jobs"),
            "http://www.opengis.net/def/rel/ogc/1.0/job-list",
            JSON,
            "Jobs",
        ),
        ctx.link(ctx.url("jobs"), "jobs", JSON, "Jobs"),
    ]);
    let doc = json!({
        "title": m.title,
        "description": m.abstract_,
        "links": links,
    });
    ctx.respond(200, doc, "landing.html")
}

pub fn conformance(ctx: &Ctx) -> HttpResponse {
    ctx.respond(
        200,
        json!({ "conformsTo": CONFORMANCE }),
        "conformance.html",
    )
}

/// `GET /processes`: summaries, `limit` (1–1000, default all) and `offset`, with a `next` link.
pub fn process_list(ctx: &Ctx) -> ApiResult<HttpResponse> {
    let all = ctx.service.processes();
    let limit = super::params::limit_param(ctx, all.len().clamp(1, 1000))?;
    let offset = super::params::offset_param(ctx)?;
    let page: Vec<Json> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| summary(ctx, p.description()))
        .collect();
    let mut links = ctx.self_links("processes", "The process list");
    if offset + limit < all.len() {
        links.push(ctx.link(
            ctx.url(&format!(
                "processes?limit={limit}&offset={}",
                offset + limit
            )),
            "next",
            JSON,
            "The next processes",
        ));
    }
    if offset > 0 {
        links.push(ctx.link(
            ctx.url(&format!(
                "processes?limit={limit}&offset={}",
                offset.saturating_sub(limit)
            )),
            "prev",
            JSON,
            "The previous processes",
        ));
    }
    Ok(ctx.respond(
        200,
        json!({ "processes": page, "links": links }),
        "processes.html",
    ))
}

/// `jobControlOptions` of a process.
pub fn job_control(desc: &ProcessDescription) -> Vec<&'static str> {
    if desc.store_supported {
        vec!["sync-execute", "async-execute", "dismiss"]
    } else {
        vec!["sync-execute"]
    }
}

pub fn summary(ctx: &Ctx, desc: &ProcessDescription) -> Json {
    let path = format!("processes/{}", desc.identifier);
    json!({
        "id": desc.identifier,
        "title": desc.title,
        "description": desc.abstract_,
        "version": desc.version,
        "jobControlOptions": job_control(desc),
        "outputTransmission": ["value", "reference"],
        "links": [
            ctx.link(ctx.url(&path), "self", JSON, "The process description"),
            ctx.link(
                ctx.url(&path),
                "http://www.opengis.net/def/rel/ogc/1.0/process-desc",
                JSON,
                "The process description",
            ),
            ctx.link(ctx.url(&format!("{path}?f=html")), "alternate", "text/html", "The process description as HTML"),
        ],
    })
}

/// `GET /processes/{id}`.
pub fn process(ctx: &Ctx, id: &str) -> ApiResult<HttpResponse> {
    let p = ctx.service.process(id).ok_or_else(|| no_such_process(id))?;
    Ok(ctx.respond(200, description(ctx, p.description()), "process.html"))
}

pub fn description(ctx: &Ctx, desc: &ProcessDescription) -> Json {
    let mut doc = summary(ctx, desc);
    let path = format!("processes/{}", desc.identifier);
    let mut links = ctx.self_links(&path, "The process description");
    links.push(ctx.link(
        ctx.url(&format!("{path}/execution")),
        "http://www.opengis.net/def/rel/ogc/1.0/execute",
        JSON,
        "Execute the process",
    ));
    doc["links"] = json!(links);
    let inputs: serde_json::Map<String, Json> = desc
        .inputs
        .iter()
        .map(|i| {
            let max = if i.max_occurs == u32::MAX {
                json!("unbounded")
            } else {
                json!(i.max_occurs)
            };
            (
                i.identifier.clone(),
                json!({
                    "title": i.title,
                    "description": i.abstract_,
                    "minOccurs": i.min_occurs,
                    "maxOccurs": max,
                    "schema": schema(&i.data),
                }),
            )
        })
        .collect();
    let outputs: serde_json::Map<String, Json> = desc
        .outputs
        .iter()
        .map(|o| {
            (
                o.identifier.clone(),
                json!({"title": o.title, "description": o.abstract_, "schema": schema(&o.data)}),
            )
        })
        .collect();
    doc["inputs"] = Json::Object(inputs);
    doc["outputs"] = Json::Object(outputs);
    doc
}
