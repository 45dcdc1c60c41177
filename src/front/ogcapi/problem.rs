//! Errors as RFC 7807 problem details. The three kinds OGC API – Processes 1.0 names carry its
//! exception type URIs (`no-such-process`, `no-such-job`, `result-not-ready`, all 404); other
//! errors are `about:blank` with the HTTP status, and say the neutral kind (`code`, the OWS
//! exception code) and the offending parameter (`locator`) as extension members. Served as
//! `application/json` (what the OGC test suite checks) unless the client asks for
//! `application/problem+json`; as a page to browsers.

use super::{html, json_response, Ctx, Fmt};
use crate::front::http::HttpResponse;
use crate::model::{ExceptionCode, LogLevel, WpsError};
use serde_json::json;

pub const EXCEPTIONS: &str = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/";

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: u16,
    /// The last segment of an OGC exception URI, or a slug for `about:blank` ones.
    pub kind: &'static str,
    pub code: Option<ExceptionCode>,
    pub locator: Option<String>,
    pub detail: String,
    pub headers: Vec<(String, String)>,
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

impl Problem {
    pub fn new(status: u16, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind,
            code: None,
            locator: None,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// A 400 for a request that cannot be read.
    pub fn bad_request(locator: &str, detail: impl Into<String>) -> Problem {
        Problem::from_error(&WpsError::invalid(locator, detail))
    }

    pub fn allow(mut self, methods: &str) -> Problem {
        self.headers.push(("Allow".into(), methods.into()));
        self
    }

    pub fn from_error(e: &WpsError) -> Problem {
        let (status, kind) = match e.code {
            ExceptionCode::NoSuchProcess => (404, "no-such-process"),
            ExceptionCode::NoSuchJob => (404, "no-such-job"),
            ExceptionCode::ResultNotReady => (404, "result-not-ready"),
            c => (c.http_status(), "about:blank"),
        };
        let mut p = Problem::new(status, kind, e.text.clone());
        p.code = Some(e.code);
        p.locator = e.locator.clone();
        if e.code == ExceptionCode::ServerBusy {
            p.headers.push(("Retry-After".into(), "5".into()));
        }
        p
    }

    /// The `type` member.
    pub fn type_uri(&self) -> String {
        match self.kind {
            "no-such-process" | "no-such-job" | "result-not-ready" => {
                format!("{EXCEPTIONS}{}", self.kind)
            }
            _ => "about:blank".into(),
        }
    }

    pub fn title(&self) -> &'static str {
        match self.kind {
            "no-such-process" => "No such process",
            "no-such-job" => "No such job",
            "result-not-ready" => "Result not ready",
            _ => reason(self.status),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = json!({
            "type": self.type_uri(),
            "title": self.title(),
            "status": self.status,
            "detail": self.detail,
        });
        if let Some(c) = self.code {
            doc["code"] = json!(c.as_str());
        }
        if let Some(l) = &self.locator {
            doc["locator"] = json!(l);
        }
        doc
    }

    pub fn response(&self, ctx: &Ctx) -> HttpResponse {
        let mut r = if ctx.fmt == Fmt::Html {
            html::page(ctx, self.status, "error.html", &self.to_json())
        } else {
            let mut r = json_response(self.status, &self.to_json());
            let wants_problem = ctx
                .req
                .header("Accept")
                .is_some_and(|a| a.to_ascii_lowercase().contains("application/problem+json"));
            if wants_problem {
                r.content_type = "application/problem+json".into();
            }
            r
        };
        r.headers.extend(self.headers.iter().cloned());
        let level = if self.status >= 500 {
            LogLevel::Error
        } else {
            LogLevel::Debug
        };
        r.log
            .push((level, format!("OGC API {}: {}", self.status, self.detail)));
        r
    }
}
