//! The landing page, the conformance declaration, the process list and the process
//! descriptions: inputs and outputs with JSON Schemas made from literal types and allowed
//! values, formats (`contentMediaType`, `contentEncoding`) and bounding boxes.

use super::{no_such_process, ApiResult, Ctx, CONFORMANCE, JSON, OPENAPI_JSON};
use crate::front::http::HttpResponse;
use crate::model::{Allowed, DataSpec, Format, LiteralSpec, LiteralType, ProcessDescription};
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
    let limit = super::jobs::limit_param(ctx, all.len().clamp(1, 1000))?;
    let offset = super::jobs::offset_param(ctx)?;
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

/// The JSON Schema of a value.
pub fn schema(data: &DataSpec) -> Json {
    match data {
        DataSpec::Literal(l) => literal_schema(l),
        DataSpec::Complex { formats, .. } => {
            let one: Vec<Json> = formats.iter().map(format_schema).collect();
            if one.len() == 1 {
                one.into_iter().next().unwrap_or_default()
            } else {
                json!({ "oneOf": one })
            }
        }
        DataSpec::BoundingBox { crss, dimensions } => {
            let n = dimensions * 2;
            json!({
                "type": "object",
                "format": "ogc-bbox",
                "required": ["bbox"],
                "properties": {
                    "bbox": {"type": "array", "minItems": n, "maxItems": n, "items": {"type": "number"}},
                    "crs": {"type": "string", "enum": crss, "default": crss.first()},
                },
            })
        }
    }
}

fn json_type(t: LiteralType) -> &'static str {
    match t {
        LiteralType::String => "string",
        LiteralType::Integer => "integer",
        LiteralType::Float => "number",
        LiteralType::Boolean => "boolean",
    }
}

/// A literal as JSON (numbers and booleans typed).
pub fn typed(t: LiteralType, v: &str) -> Json {
    let parsed = match t {
        LiteralType::Integer => v.trim().parse::<i64>().ok().map(Json::from),
        LiteralType::Float => v.trim().parse::<f64>().ok().map(Json::from),
        LiteralType::Boolean => match v.trim() {
            "true" | "1" => Some(Json::Bool(true)),
            "false" | "0" => Some(Json::Bool(false)),
            _ => None,
        },
        LiteralType::String => None,
    };
    parsed.unwrap_or_else(|| Json::String(v.to_owned()))
}

fn literal_schema(l: &LiteralSpec) -> Json {
    let t = json_type(l.data_type);
    let mut base = json!({ "type": t });
    if let Some(d) = &l.default {
        base["default"] = typed(l.data_type, d);
    }
    let values: Vec<Json> = l
        .allowed
        .iter()
        .filter_map(|a| match a {
            Allowed::Value(v) => Some(typed(l.data_type, v)),
            _ => None,
        })
        .collect();
    let ranges: Vec<Json> = l
        .allowed
        .iter()
        .filter_map(|a| match a {
            Allowed::Range { min, max, spacing } => {
                let mut r = json!({ "type": t, "minimum": min, "maximum": max });
                // a step from the minimum is a multiple of the step when the minimum is one
                if let Some(s) = spacing.filter(|s| *s > 0.0 && (min / s).fract() == 0.0) {
                    r["multipleOf"] = json!(s);
                }
                Some(r)
            }
            _ => None,
        })
        .collect();
    match (values.is_empty(), ranges.len()) {
        (true, 0) => base,
        (false, 0) => {
            base["enum"] = json!(values);
            base
        }
        (true, 1) => {
            let mut r = ranges.into_iter().next().unwrap_or_default();
            if let Some(d) = base.get("default") {
                r["default"] = d.clone();
            }
            r
        }
        _ => {
            let mut alts = ranges;
            if !values.is_empty() {
                alts.insert(0, json!({ "type": t, "enum": values }));
            }
            base["oneOf"] = json!(alts);
            base
        }
    }
}

/// Whether data of this media type is text (else it travels base64-encoded in JSON).
pub fn is_text(mime: &str) -> bool {
    let m = mime.to_ascii_lowercase();
    m.starts_with("text/") || m.contains("xml") || m.contains("json")
}

fn format_schema(f: &Format) -> Json {
    let m = f.mime_type.to_ascii_lowercase();
    let mut s = if m.contains("json") {
        json!({ "type": "object", "contentMediaType": f.mime_type })
    } else {
        json!({ "type": "string", "contentMediaType": f.mime_type })
    };
    if !is_text(&m)
        || f.encoding
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("base64"))
    {
        s["contentEncoding"] = json!("base64");
    }
    if let Some(schema) = &f.schema {
        s["contentSchema"] = json!(schema);
    }
    s
}
