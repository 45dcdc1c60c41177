//! WPS 2.0.0 (OGC 14-065): GetCapabilities, DescribeProcess, Execute (sync, async, auto;
//! document or raw), GetStatus, GetResult and Dismiss, by KVP and XML, at the same URL and on
//! the same processes and job store as WPS 1.0.0 (the router picks the version). A job is
//! rendered from its record whenever it is read, so a job submitted through WPS 1.0.0 can be
//! read here and the other way round.

pub mod execute;
pub mod kvp;
pub mod request;
pub mod response;
pub mod xml_request;

use super::http::{HttpRequest, HttpResponse};
use super::wps_common::{self, offered_language, unsupported_language, Version};
use crate::engine::{Backend, Service};
use crate::model::{ExceptionCode, WpsError, WpsResult};
use request::Request;

pub use super::wps_common::Ctx;

/// An OWS 2.0 `ows:ExceptionReport` response for `err`.
pub fn error_response(err: &WpsError, lang: &str) -> HttpResponse {
    wps_common::error_response(err, response::exception_report(err, lang))
}

const WPS2: Version<Request> = Version {
    kvp: kvp::parse,
    xml: xml_request::parse,
    language: negotiate_language,
    dispatch,
    error_response,
};

/// Answers one WPS 2.0.0 request at the alias URL.
pub fn handle(service: &Service, backend: &dyn Backend, req: &HttpRequest) -> HttpResponse {
    wps_common::handle(&WPS2, service, backend, req)
}

/// The language of the answer. GetCapabilities (`AcceptLanguages`) falls back to the default
/// language (OWS 2.0); a DescribeProcess or Execute asking one that is not offered is refused.
fn negotiate_language(service: &Service, r: &Request) -> WpsResult<String> {
    let Some(l) = r.language() else {
        return Ok(service.default_language().to_owned());
    };
    if let Some(found) = offered_language(service, l) {
        return Ok(found);
    }
    if matches!(r, Request::GetCapabilities { .. }) || l.trim() == "*" {
        return Ok(service.default_language().to_owned());
    }
    Err(unsupported_language(service, "lang", l))
}

fn dispatch(ctx: &Ctx, r: Request, lang: &str) -> WpsResult<HttpResponse> {
    match r {
        Request::GetCapabilities { .. } => Ok(HttpResponse::xml(
            200,
            response::capabilities(
                &ctx.service.config.metadata,
                ctx.url(),
                &ctx.service.config.server.languages,
                &wps_common::all_descriptions(ctx.service),
            ),
        )),
        Request::DescribeProcess { identifiers, .. } => {
            let descs = wps_common::descriptions(ctx.service, &identifiers, no_such_process)?;
            let max_mb = ctx
                .service
                .config
                .server
                .maxsingleinputsize
                .div_ceil(1024 * 1024);
            Ok(HttpResponse::xml(
                200,
                response::process_offerings(lang, &descs, max_mb),
            ))
        }
        Request::Execute(e) => execute::execute(ctx, e, lang),
        Request::GetStatus { job_id } => execute::get_status(ctx, &job_id),
        Request::GetResult { job_id } => execute::get_result(ctx, &job_id),
        Request::Dismiss { job_id } => execute::dismiss(ctx, &job_id),
    }
}

/// `NoSuchProcess`, located at the identifier (WPS 2.0).
pub(crate) fn no_such_process(id: &str) -> WpsError {
    WpsError::new(
        ExceptionCode::NoSuchProcess,
        Some(id),
        format!("Unknown process '{id}'"),
    )
}
