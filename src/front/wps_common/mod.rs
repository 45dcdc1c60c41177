//! What WPS 1.0.0 and WPS 2.0.0 do alike: the operation context, the request's way from HTTP
//! to a parsed request and back to a response ([`handle`]), language negotiation, the process
//! lookup of DescribeProcess, a raw output as a response; the KVP and XML reading helpers
//! ([`kvp`], [`xml_request`]) and the OWS parts of the response documents ([`ows`]). Each front
//! passes what differs between the versions (its parsers, codes, element names, versions).

pub mod kvp;
pub mod ows;
pub mod xml_request;

use super::http::{Body, HttpRequest, HttpResponse};
use crate::engine::{Backend, Service};
use crate::model::format::{encode_base64, is_base64};
use crate::model::{
    BoundingBox, ExceptionCode, LogLevel, OutputRequest, OutputValue, Outputs, ProcessDescription,
    WpsError, WpsResult,
};

/// What an operation needs: the service, where its work runs, and the request.
pub struct Ctx<'a> {
    pub service: &'a Service,
    pub backend: &'a dyn Backend,
    pub req: &'a HttpRequest<'a>,
}

impl Ctx<'_> {
    /// The URL of this service (`[server] url`, else as the client reached it).
    pub fn url(&self) -> &str {
        self.service.url(self.req.base_url)
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

/// How one WPS version reads a request, picks its language, answers it and reports errors.
pub struct Version<R> {
    pub kvp: fn(&str) -> WpsResult<R>,
    pub xml: fn(&bytes::Bytes) -> WpsResult<R>,
    pub language: fn(&Service, &R) -> WpsResult<String>,
    pub dispatch: fn(&Ctx, R, &str) -> WpsResult<HttpResponse>,
    pub error_response: fn(&WpsError, &str) -> HttpResponse,
}

/// Answers one request at the alias URL: parse, negotiate the language, dispatch; an error
/// becomes the version's exception report (in the negotiated language, else the default).
pub fn handle<R>(
    v: &Version<R>,
    service: &Service,
    backend: &dyn Backend,
    req: &HttpRequest,
) -> HttpResponse {
    let ctx = Ctx {
        service,
        backend,
        req,
    };
    let mut lang = service.default_language().to_owned();
    let result = parse(v, service, req).and_then(|r| {
        lang = (v.language)(service, &r)?;
        (v.dispatch)(&ctx, r, &lang)
    });
    match result {
        Ok(r) => r,
        Err(e) => {
            let level = if e.code == ExceptionCode::NoApplicableCode {
                LogLevel::Error
            } else {
                LogLevel::Debug
            };
            let mut r = (v.error_response)(&e, &lang);
            r.log.push((level, e.to_string()));
            if !matches!(req.method, "GET" | "HEAD" | "POST") {
                r.status = 405;
                r.headers.push(("Allow".into(), "GET, HEAD, POST".into()));
            }
            r
        }
    }
}

/// GET reads the query; POST the XML body (or the query, when the body is empty).
fn parse<R>(v: &Version<R>, service: &Service, req: &HttpRequest) -> WpsResult<R> {
    match req.method {
        "GET" | "HEAD" => (v.kvp)(req.query),
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
                (v.kvp)(req.query)
            }
            Body::Bytes(b) => (v.xml)(b),
        },
        m => Err(WpsError::new(
            ExceptionCode::OperationNotSupported,
            Some(m),
            format!("HTTP method {m} is not supported; use GET or POST"),
        )),
    }
}

/// An exception report response with the HTTP status of its code (`Retry-After` when busy).
pub fn error_response(err: &WpsError, document: String) -> HttpResponse {
    let mut r = HttpResponse::xml(err.code.http_status(), document);
    if err.code == ExceptionCode::ServerBusy {
        r.headers.push(("Retry-After".into(), "5".into()));
    }
    r
}

/// The offered language a client asked (case-insensitive), as the service spells it.
pub fn offered_language(service: &Service, requested: &str) -> Option<String> {
    service
        .config
        .server
        .languages
        .iter()
        .find(|s| s.eq_ignore_ascii_case(requested.trim()))
        .cloned()
}

/// A language that is not offered, located at the parameter that asked it.
pub fn unsupported_language(service: &Service, locator: &str, requested: &str) -> WpsError {
    WpsError::invalid(
        locator,
        format!(
            "Language '{requested}' is not supported; supported: {}",
            service.config.server.languages.join(", ")
        ),
    )
}

/// The descriptions DescribeProcess asks: all of them for `all`, else each identifier's
/// (`unknown` is the error for one that is not offered).
pub fn descriptions<'s>(
    service: &'s Service,
    identifiers: &[String],
    unknown: fn(&str) -> WpsError,
) -> WpsResult<Vec<&'s ProcessDescription>> {
    if identifiers.iter().any(|i| i.eq_ignore_ascii_case("all")) {
        return Ok(all_descriptions(service));
    }
    identifiers
        .iter()
        .map(|id| {
            service
                .process(id)
                .map(|p| p.description())
                .ok_or_else(|| unknown(id))
        })
        .collect()
}

/// The descriptions of every process, in the registry's order.
pub fn all_descriptions(service: &Service) -> Vec<&ProcessDescription> {
    service
        .processes()
        .iter()
        .map(|p| p.description())
        .collect()
}

/// The value of the output a raw request asks (in the format asked, if the process produced
/// several).
pub fn raw_value<'o>(
    desc: &ProcessDescription,
    outputs: &'o Outputs,
    o: &OutputRequest,
) -> WpsResult<&'o OutputValue> {
    outputs
        .get_format(&o.identifier, o.mime_type.as_deref())
        .ok_or_else(|| {
            WpsError::no_applicable(format!(
                "Process '{}' produced no output '{}'",
                desc.identifier, o.identifier
            ))
        })
}

/// The raw bytes of one output with its media type — the declared format the process
/// produced, never text from the request (control characters are dropped from it). A
/// bounding box is written by `bbox_document`, in the version's OWS namespace.
pub fn raw_response(
    value: &OutputValue,
    req: &OutputRequest,
    bbox_document: fn(&BoundingBox) -> String,
) -> HttpResponse {
    let (ct, body) = match value {
        OutputValue::Literal(s) => (
            "text/plain; charset=utf-8".to_owned(),
            s.clone().into_bytes(),
        ),
        OutputValue::Complex { mime_type, data } if is_base64(req.encoding.as_deref()) => {
            (mime_type.clone(), encode_base64(data).into_bytes())
        }
        OutputValue::Complex { mime_type, data } => (mime_type.clone(), data.clone()),
        OutputValue::BoundingBox(b) => (
            super::http::XML_CONTENT_TYPE.to_owned(),
            bbox_document(b).into_bytes(),
        ),
    };
    let ct: String = ct.chars().filter(|c| !c.is_control()).collect();
    HttpResponse::new(200, &ct, body)
}
