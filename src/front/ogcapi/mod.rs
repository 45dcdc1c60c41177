//! OGC API – Processes – Part 1: Core 1.0 (OGC 18-062r2) at `<alias>/<apiprefix>`: the same
//! processes and the same jobs as WPS, in JSON and in HTML. Requests become calls of the
//! engine's jobs API; a job's statusInfo is rendered from its record when it is read, so a job
//! submitted through any protocol is visible here (and the other way round).
//!
//! - [`describe`]: landing page, conformance, process list and descriptions (JSON Schemas)
//! - [`execute`]: the execute request (inputs, outputs, `response`, `Prefer: respond-async`)
//! - [`jobs`]: statusInfo, the job list, results and dismiss
//! - [`results`]: result values as JSON, raw bodies and multipart
//! - [`openapi`]: the OpenAPI 3.0 document of the live registry
//! - [`html`]: the pages for people (templates in `templates/`)
//! - [`problem`]: RFC 7807 errors with the OGC exception type URIs
//! - [`schema`]: JSON Schemas of inputs and outputs, typed literals, text media types
//! - [`params`]: the paging parameters; [`job_options`]: what a job keeps of its request

pub mod describe;
pub mod execute;
pub mod html;
pub mod job_options;
pub mod jobs;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod results;
pub mod schema;

use super::http::{HttpRequest, HttpResponse};
use crate::engine::{Backend, Service};
use crate::model::{ExceptionCode, WpsError, WpsResult};
use problem::Problem;
use serde_json::Value as Json;

/// The conformance classes served.
pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
];

pub const JSON: &str = "application/json";
pub const HTML: &str = "text/html; charset=utf-8";
pub const OPENAPI_JSON: &str = "application/vnd.oai.openapi+json;version=3.0";

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmt {
    Json,
    Html,
}

/// What a resource needs: the service, where its work runs, the request and the URLs.
pub struct Ctx<'a> {
    pub service: &'a Service,
    pub backend: &'a dyn Backend,
    pub req: &'a HttpRequest<'a>,
    /// The absolute URL of the API's landing page, without a trailing '/'.
    pub api: String,
    pub fmt: Fmt,
}

impl Ctx<'_> {
    /// The service URL (`[server] url`, else as the client reached it).
    pub fn service_url(&self) -> &str {
        self.service.url(self.req.base_url).trim_end_matches('/')
    }

    /// An absolute URL below the API.
    pub fn url(&self, rel: &str) -> String {
        if rel.is_empty() {
            format!("{}/", self.api)
        } else {
            format!("{}/{rel}", self.api)
        }
    }

    /// The base URL of stored outputs (ends with '/').
    pub fn output_url(&self) -> String {
        match &self.service.config.server.outputurl {
            Some(u) if u.ends_with('/') => u.clone(),
            Some(u) => format!("{u}/"),
            None => format!("{}/outputs/", self.service_url()),
        }
    }

    /// A query parameter (the first, decoded).
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.req.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// All values of a query parameter (repeated or comma separated).
    pub fn params(&self, name: &str) -> Vec<String> {
        form_urlencoded::parse(self.req.query.as_bytes())
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// A JSON answer, or its HTML page.
    pub fn respond(&self, status: u16, doc: Json, page: &str) -> HttpResponse {
        match self.fmt {
            Fmt::Json => json_response(status, &doc),
            Fmt::Html => html::page(self, status, page, &doc),
        }
    }

    /// A link object.
    pub fn link(&self, href: String, rel: &str, type_: &str, title: &str) -> Json {
        serde_json::json!({"href": href, "rel": rel, "type": type_, "title": title})
    }

    /// `self` and `alternate` links of a resource at `rel_path` (JSON and HTML).
    pub fn self_links(&self, rel_path: &str, title: &str) -> Vec<Json> {
        let base = self.url(rel_path);
        let (json_rel, html_rel) = match self.fmt {
            Fmt::Json => ("self", "alternate"),
            Fmt::Html => ("alternate", "self"),
        };
        vec![
            self.link(
                format!("{base}?f=json"),
                json_rel,
                JSON,
                &format!("{title} as JSON"),
            ),
            self.link(
                format!("{base}?f=html"),
                html_rel,
                "text/html",
                &format!("{title} as HTML"),
            ),
        ]
    }
}

pub fn json_response(status: u16, doc: &Json) -> HttpResponse {
    let mut body = serde_json::to_vec_pretty(doc).expect("JSON serialises");
    body.push(b'\n');
    HttpResponse::new(status, JSON, body)
}

/// The representation asked by `f=` or the `Accept` header; `Err` for one not offered (406).
fn negotiate(req: &HttpRequest) -> Result<Fmt, String> {
    if let Some((_, f)) = form_urlencoded::parse(req.query.as_bytes()).find(|(k, _)| k == "f") {
        return match f.to_ascii_lowercase().as_str() {
            "json" | "application/json" => Ok(Fmt::Json),
            "html" | "text/html" => Ok(Fmt::Html),
            other => Err(format!("f={other} is not offered; use f=json or f=html")),
        };
    }
    let Some(accept) = req.header("Accept").filter(|a| !a.trim().is_empty()) else {
        return Ok(Fmt::Json);
    };
    // the first acceptable media range with the highest q wins
    let mut best: Option<(f32, Fmt)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let fmt = match media.as_str() {
            "application/json"
            | "application/problem+json"
            | "application/vnd.oai.openapi+json"
            | "application/*"
            | "*/*" => Fmt::Json,
            "text/html" | "application/xhtml+xml" | "text/*" => Fmt::Html,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, fmt));
        }
    }
    best.map(|(_, f)| f).ok_or_else(|| {
        format!("none of '{accept}' is offered; available: application/json, text/html")
    })
}

/// The path of the API below the alias (`apiprefix`), if `path` is in it: the rest.
pub fn below_api<'p>(service: &Service, path: &'p str) -> Option<&'p str> {
    let prefix = service.config.server.apiprefix.as_str();
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

/// Answers one request below `<alias>/<apiprefix>`; `rel` is the path below it.
pub fn handle(
    service: &Service,
    backend: &dyn Backend,
    req: &HttpRequest,
    rel: &str,
) -> HttpResponse {
    let service_url = service
        .config
        .server
        .url
        .as_deref()
        .unwrap_or(req.base_url)
        .trim_end_matches('/');
    let api = format!("{service_url}/{}", service.config.server.apiprefix);
    let fmt = negotiate(req);
    let ctx = Ctx {
        service,
        backend,
        req,
        api,
        fmt: *fmt.as_ref().unwrap_or(&Fmt::Json),
    };
    let segments: Vec<&str> = rel
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let result = match fmt {
        // execution negotiates its own results
        Err(m) if !matches!(segments.as_slice(), ["processes", _, "execution"]) => {
            Err(Problem::new(406, "not-acceptable", m))
        }
        _ => route(&ctx, &segments),
    };
    let mut r = result.unwrap_or_else(|p| p.response(&ctx));
    if req.method == "HEAD" {
        r.body.clear();
    }
    r
}

fn allow(ctx: &Ctx, methods: &[&str]) -> Result<(), Problem> {
    let m = ctx.req.method;
    if methods.contains(&m) || (m == "HEAD" && methods.contains(&"GET")) {
        Ok(())
    } else {
        let mut all = methods.to_vec();
        if all.contains(&"GET") {
            all.insert(1, "HEAD");
        }
        Err(Problem::new(
            405,
            "method-not-allowed",
            format!("{m} is not allowed here; use {}", all.join(", ")),
        )
        .allow(&all.join(", ")))
    }
}

fn route(ctx: &Ctx, segments: &[&str]) -> Result<HttpResponse, Problem> {
    match segments {
        [] => {
            allow(ctx, &["GET"])?;
            Ok(describe::landing(ctx))
        }
        ["conformance"] => {
            allow(ctx, &["GET"])?;
            Ok(describe::conformance(ctx))
        }
        ["api"] => {
            allow(ctx, &["GET"])?;
            Ok(openapi::document(ctx))
        }
        ["processes"] => {
            allow(ctx, &["GET"])?;
            describe::process_list(ctx)
        }
        ["processes", id] => {
            allow(ctx, &["GET"])?;
            describe::process(ctx, id)
        }
        ["processes", id, "execution"] => {
            allow(ctx, &["POST"])?;
            execute::execute(ctx, id)
        }
        ["jobs"] => {
            allow(ctx, &["GET"])?;
            jobs::list(ctx)
        }
        ["jobs", id] => {
            allow(ctx, &["GET", "DELETE"])?;
            if ctx.req.method == "DELETE" {
                jobs::dismiss(ctx, id)
            } else {
                jobs::status(ctx, id)
            }
        }
        ["jobs", id, "results"] => {
            allow(ctx, &["GET"])?;
            jobs::results(ctx, id)
        }
        _ => Err(Problem::new(404, "not-found", "There is no such resource")),
    }
}

/// An engine error as a problem.
impl From<WpsError> for Problem {
    fn from(e: WpsError) -> Problem {
        Problem::from_error(&e)
    }
}

pub type ApiResult<T> = Result<T, Problem>;

/// The error of an unknown process.
pub fn no_such_process(id: &str) -> Problem {
    Problem::from_error(&WpsError::new(
        ExceptionCode::NoSuchProcess,
        Some("processID"),
        format!("There is no process '{id}'"),
    ))
}

/// Engine results as problems.
pub fn api<T>(r: WpsResult<T>) -> ApiResult<T> {
    r.map_err(Problem::from)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_jobs;
