//! `<alias>/outputs/`: status documents (`<job-id>.xml`, rendered from the job's record when
//! read) and stored output files (`<job-id>/<output>.<ext>`). Only GET and HEAD; anything that
//! is not a known job's document or file is 404.

use super::http::{HttpRequest, HttpResponse};
use super::wps1;
use crate::engine::{Backend, Caller, Service};
use crate::jobs::{valid_id, valid_output_name};
use crate::model::format::content_type_for;
use crate::model::LogLevel;

pub fn serve(
    service: &Service,
    backend: &dyn Backend,
    req: &HttpRequest,
    rel: &str,
) -> HttpResponse {
    if !matches!(req.method, "GET" | "HEAD") {
        return HttpResponse::method_not_allowed("GET, HEAD");
    }
    let found = |body: Vec<u8>, ct: &str| {
        HttpResponse::new(200, ct, body).with_header("Cache-Control", "no-cache")
    };
    let failed = |e: crate::model::WpsError| {
        let mut r = wps1::error_response(&e, service.default_language());
        r.log.push((LogLevel::Error, e.to_string()));
        r
    };
    match rel.split_once('/') {
        None => {
            let Some(id) = rel.strip_suffix(".xml").filter(|id| valid_id(id)) else {
                return HttpResponse::not_found();
            };
            match service.job(id, Caller::new(req.user)) {
                Ok(Some(job)) => {
                    let ctx = wps1::Ctx {
                        service,
                        backend,
                        req,
                    };
                    match wps1::status::status_document(&ctx, &job) {
                        Ok(doc) => found(doc.into_bytes(), content_type_for("xml")),
                        Err(e) => failed(e),
                    }
                }
                Ok(None) => match service.store.legacy_status(id) {
                    Some(doc) => found(doc, content_type_for("xml")),
                    None => HttpResponse::not_found(),
                },
                Err(e) => failed(e),
            }
        }
        Some((id, name)) => {
            if !valid_id(id) || !valid_output_name(name) {
                return HttpResponse::not_found();
            }
            let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
            match service.output_file(id, name, Caller::new(req.user)) {
                Ok(Some(body)) => found(body, content_type_for(ext)),
                Ok(None) => HttpResponse::not_found(),
                Err(e) => failed(e),
            }
        }
    }
}
