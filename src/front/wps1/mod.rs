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

    /// The base URL of status documents (served by this module, below the alias).
    pub fn status_base(&self) -> String {
        format!("{}/outputs/", self.req.base_url.trim_end_matches('/'))
    }
}

/// An `ows:ExceptionReport` response for `err` (used by the glue too, e.g. for panics).
pub fn error_response(err: &WpsError, lang: &str) -> HttpResponse {
    let err = &err.wps1();
    let mut r = HttpResponse::xml(
        err.code.http_status(),
        response::exception_report(err, lang),
    );
    if err.code == ExceptionCode::ServerBusy {
        r.headers.push(("Retry-After".into(), "5".into()));
    }
    r
}

/// Answers one WPS 1.0.0 request at the alias URL.
pub fn handle(service: &Service, backend: &dyn Backend, req: &HttpRequest) -> HttpResponse {
    let ctx = Ctx {
        service,
        backend,
        req,
    };
    let mut lang = service.default_language().to_owned();
    let result = parse(service, req).and_then(|r| {
        lang = negotiate_language(service, r.language())?;
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

fn negotiate_language(service: &Service, requested: Option<&str>) -> WpsResult<String> {
    let languages = &service.config.server.languages;
    match requested {
        None => Ok(service.default_language().to_owned()),
        Some(l) => languages
            .iter()
            .find(|s| s.eq_ignore_ascii_case(l.trim()))
            .cloned()
            .ok_or_else(|| {
                WpsError::invalid(
                    "language",
                    format!(
                        "Language '{l}' is not supported; supported: {}",
                        languages.join(", ")
                    ),
                )
            }),
    }
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
        Request::GetCapabilities(_) => Ok(HttpResponse::xml(
            200,
            response::capabilities(
                &ctx.service.config.metadata,
                ctx.url(),
                &ctx.service.config.server.languages,
                lang,
                &all(),
            ),
        )),
        Request::DescribeProcess(d) => {
            let descs: Vec<&ProcessDescription> = if d
                .identifiers
                .iter()
                .any(|i| i.eq_ignore_ascii_case("all"))
            {
                all()
            } else {
                d.identifiers
                    .iter()
                    .map(|id| {
                        ctx.service
                            .process(id)
                            .map(|p| p.description())
                            .ok_or_else(|| {
                                WpsError::invalid("identifier", format!("Unknown process '{id}'"))
                            })
                    })
                    .collect::<WpsResult<_>>()?
            };
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
