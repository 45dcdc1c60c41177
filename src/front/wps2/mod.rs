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

use super::http::{Body, HttpRequest, HttpResponse};
use crate::engine::{Backend, Service};
use crate::model::{ExceptionCode, LogLevel, ProcessDescription, WpsError, WpsResult};
use request::Request;

/// What an operation needs: the service, where its work runs, and the request.
pub struct Ctx<'a> {
    pub service: &'a Service,
    pub backend: &'a dyn Backend,
    pub req: &'a HttpRequest<'a>,
}

impl Ctx<'_> {
    /// The URL of this service (`[server] url`, else as the client reached it).
    pub fn url(&self) -> &str {
        self.service
            .config
            .server
            .url
            .as_deref()
            .unwrap_or(self.req.base_url)
    }

    /// The base URL of stored outputs (ends with '/').
    pub fn output_url(&self) -> String {
        match &self.service.config.server.outputurl {
            Some(u) if u.ends_with('/') => u.clone(),
            Some(u) => format!("{u}/"),
            None => format!("{}/outputs/", self.req.base_url.trim_end_matches('/')),
        }
    }
}

/// An OWS 2.0 `ows:ExceptionReport` response for `err`.
pub fn error_response(err: &WpsError, lang: &str) -> HttpResponse {
    let mut r = HttpResponse::xml(
        err.code.http_status(),
        response::exception_report(err, lang),
    );
    if err.code == ExceptionCode::ServerBusy {
        r.headers.push(("Retry-After".into(), "5".into()));
    }
    r
}

/// Answers one WPS 2.0.0 request at the alias URL.
pub fn handle(service: &Service, backend: &dyn Backend, req: &HttpRequest) -> HttpResponse {
    let ctx = Ctx {
        service,
        backend,
        req,
    };
    let mut lang = service.default_language().to_owned();
    let result = parse(service, req).and_then(|r| {
        lang = negotiate_language(service, &r)?;
        dispatch(&ctx, r, &lang)
    });
    match result {
        Ok(r) => r,
        Err(e) => {
            let level = if e.code == ExceptionCode::NoApplicableCode {
                LogLevel::Error
            } else {
                LogLevel::Debug
            };
            let mut r = error_response(&e, &lang);
            r.log.push((level, e.to_string()));
            if !matches!(req.method, "GET" | "HEAD" | "POST") {
                r.status = 405;
                r.headers.push(("Allow".into(), "GET, HEAD, POST".into()));
            }
            r
        }
    }
}

fn parse(service: &Service, req: &HttpRequest) -> WpsResult<Request> {
    match req.method {
        "GET" | "HEAD" => kvp::parse(req.query),
        "POST" => match &req.body {
            Body::TooLarge => Err(WpsError::new(
                ExceptionCode::FileSizeExceeded,
                None,
                format!(
                    "The request body is larger than maxrequestsize ({} bytes)",
                    service.max_request_size()
                ),
            )),
            Body::Bytes(b) if b.iter().all(u8::is_ascii_whitespace) && !req.query.is_empty() => {
                kvp::parse(req.query)
            }
            Body::Bytes(b) => xml_request::parse(b),
        },
        m => Err(WpsError::new(
            ExceptionCode::OperationNotSupported,
            Some(m),
            format!("HTTP method {m} is not supported; use GET or POST"),
        )),
    }
}

/// The language of the answer. GetCapabilities (`AcceptLanguages`) falls back to the default
/// language (OWS 2.0); a DescribeProcess or Execute asking one that is not offered is refused.
fn negotiate_language(service: &Service, r: &Request) -> WpsResult<String> {
    let languages = &service.config.server.languages;
    let Some(l) = r.language() else {
        return Ok(service.default_language().to_owned());
    };
    if let Some(found) = languages.iter().find(|s| s.eq_ignore_ascii_case(l.trim())) {
        return Ok(found.clone());
    }
    if matches!(r, Request::GetCapabilities { .. }) || l.trim() == "*" {
        return Ok(service.default_language().to_owned());
    }
    Err(WpsError::invalid(
        "lang",
        format!(
            "Language '{l}' is not supported; supported: {}",
            languages.join(", ")
        ),
    ))
}

fn dispatch(ctx: &Ctx, r: Request, lang: &str) -> WpsResult<HttpResponse> {
    let all = || -> Vec<&ProcessDescription> {
        ctx.service
            .processes()
            .iter()
            .map(|p| p.description())
            .collect()
    };
    match r {
        Request::GetCapabilities { .. } => Ok(HttpResponse::xml(
            200,
            response::capabilities(
                &ctx.service.config.metadata,
                ctx.url(),
                &ctx.service.config.server.languages,
                &all(),
            ),
        )),
        Request::DescribeProcess { identifiers, .. } => {
            let descs: Vec<&ProcessDescription> =
                if identifiers.iter().any(|i| i.eq_ignore_ascii_case("all")) {
                    all()
                } else {
                    identifiers
                        .iter()
                        .map(|id| {
                            ctx.service
                                .process(id)
                                .map(|p| p.description())
                                .ok_or_else(|| no_such_process(id))
                        })
                        .collect::<WpsResult<_>>()?
                };
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
