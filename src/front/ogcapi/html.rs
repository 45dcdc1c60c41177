//! The pages for people: server-rendered HTML from the same JSON documents, through minijinja
//! templates (`templates/`, compiled into the module; autoescaped). No script: the job page
//! reloads itself until the job has finished, and the process page's form posts
//! `application/x-www-form-urlencoded` to the execution URL (read by [`form_request`]).

use super::{Ctx, HTML};
use crate::front::http::HttpResponse;
use crate::model::{DataSpec, ProcessDescription};
use minijinja::Environment;
use once_cell::sync::Lazy;
use serde_json::{json, Map, Value as Json};

static TEMPLATES: Lazy<Environment<'static>> = Lazy::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("landing.html", include_str!("templates/landing.html")),
        (
            "conformance.html",
            include_str!("templates/conformance.html"),
        ),
        ("processes.html", include_str!("templates/processes.html")),
        ("process.html", include_str!("templates/process.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("results.html", include_str!("templates/results.html")),
        ("api.html", include_str!("templates/api.html")),
        ("error.html", include_str!("templates/error.html")),
    ] {
        env.add_template(name, text).expect("the templates parse");
    }
    env
});

/// Renders template `name` with the document `doc`.
pub fn render(ctx: &Ctx, name: &str, doc: &Json, extra: Json) -> Result<String, String> {
    let t = TEMPLATES.get_template(name).map_err(|e| e.to_string())?;
    let mut vars = json!({
        "doc": doc,
        "api": ctx.api,
        "service_title": ctx.service.config.metadata.title,
    });
    if let (Some(v), Json::Object(e)) = (vars.as_object_mut(), extra) {
        v.extend(e);
    }
    t.render(minijinja::value::Serde(&vars))
        .map_err(|e| format!("template {name}: {e:#}"))
}

pub fn page(ctx: &Ctx, status: u16, name: &str, doc: &Json) -> HttpResponse {
    page_with(ctx, status, name, doc, json!({}))
}

pub fn page_with(ctx: &Ctx, status: u16, name: &str, doc: &Json, extra: Json) -> HttpResponse {
    match render(ctx, name, doc, extra) {
        Ok(body) => HttpResponse::new(status, HTML, body.into_bytes()),
        Err(e) => {
            let mut r = HttpResponse::text(500, "The page could not be rendered\n");
            r.log.push((crate::model::LogLevel::Error, e));
            r
        }
    }
}

/// The execute request a form of the process page posts (`application/x-www-form-urlencoded`):
/// one field per input (empty fields left out; a complex input that is a URL becomes a
/// reference), `_mode` `sync` or `async`. Returns the JSON request and whether to run it
/// as a job.
pub fn form_request(desc: &ProcessDescription, body: &[u8]) -> (Json, bool) {
    let mut inputs = Map::new();
    let mut is_async = false;
    for (k, v) in form_urlencoded::parse(body) {
        if k == "_mode" {
            is_async = v == "async";
            continue;
        }
        if v.trim().is_empty() {
            continue;
        }
        let value = match desc.input(&k).map(|i| &i.data) {
            Some(DataSpec::Complex { formats, .. }) => {
                let t = v.trim();
                if (t.starts_with("http://") || t.starts_with("https://"))
                    && !t.contains(char::is_whitespace)
                {
                    json!({ "href": t })
                } else {
                    let mime = formats
                        .first()
                        .map(|f| f.mime_type.clone())
                        .unwrap_or_default();
                    json!({ "value": v, "mediaType": mime })
                }
            }
            Some(DataSpec::BoundingBox { .. }) => {
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                let nums: Vec<f64> = parts.iter().map_while(|p| p.parse().ok()).collect();
                match parts.get(nums.len()) {
                    Some(crs) => json!({ "bbox": nums, "crs": crs }),
                    None => json!({ "bbox": nums }),
                }
            }
            _ => Json::String(v.into_owned()),
        };
        match inputs.get_mut(k.as_ref()) {
            Some(Json::Array(a)) => a.push(value),
            Some(prev) => *prev = json!([prev.clone(), value]),
            None => {
                inputs.insert(k.into_owned(), value);
            }
        }
    }
    (
        json!({ "inputs": inputs, "response": "document" }),
        is_async,
    )
}
