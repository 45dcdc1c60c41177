//! WPS 1.0.0: request parsing (KVP and XML), the operations, and response writing. A job's
//! status document is rendered from its record whenever it is read.

pub mod execute;
pub mod kvp;
pub mod request;
pub mod response;
pub mod status;
pub mod xml_request;

/// The XML writer (shared by the fronts).
pub use super::xml;

use super::http::{HttpRequest, HttpResponse};
use super::wps_common::{self, offered_language, unsupported_language, Version};
use crate::engine::{Backend, Service};
use crate::model::{WpsError, WpsResult};
use request::Request;

pub use super::wps_common::Ctx;

/// An `ows:ExceptionReport` response for `err` (used by the glue too, e.g. for panics).
pub fn error_response(err: &WpsError, lang: &str) -> HttpResponse {
    let err = &err.wps1();
    wps_common::error_response(err, response::exception_report(err, lang))
}

const WPS1: Version<Request> = Version {
    kvp: kvp::parse,
    xml: xml_request::parse,
    language: |service, r| negotiate_language(service, r.language()),
    dispatch,
    error_response,
};

/// Answers one WPS 1.0.0 request at the alias URL.
pub fn handle(service: &Service, backend: &dyn Backend, req: &HttpRequest) -> HttpResponse {
    wps_common::handle(&WPS1, service, backend, req)
}

fn negotiate_language(service: &Service, requested: Option<&str>) -> WpsResult<String> {
    match requested {
        None => Ok(service.default_language().to_owned()),
        Some(l) => {
            offered_language(service, l).ok_or_else(|| unsupported_language(service, "language", l))
        }
    }
}

fn dispatch(ctx: &Ctx, r: Request, lang: &str) -> WpsResult<HttpResponse> {
    match r {
        Request::GetCapabilities(_) => Ok(HttpResponse::xml(
            200,
            response::capabilities(
                &ctx.service.config.metadata,
                ctx.url(),
                &ctx.service.config.server.languages,
                lang,
                &wps_common::all_descriptions(ctx.service),
            ),
        )),
        Request::DescribeProcess(d) => {
            let descs = wps_common::descriptions(ctx.service, &d.identifiers, |id| {
                WpsError::invalid("identifier", format!("Unknown process '{id}'"))
            })?;
            Ok(HttpResponse::xml(
                200,
                response::process_descriptions(lang, &descs),
            ))
        }
        Request::Execute(e) => execute::execute(ctx, e, lang),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
