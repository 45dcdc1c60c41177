//! HTTP as the fronts see it: the request below a service's alias (method, path, query,
//! headers, body, the authenticated user) and the response to send. The Apache glue fills one
//! and sends the other; nothing here knows Apache.

use crate::model::LogLevel;

/// The request body as the glue read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Shared: the content of inline input data is a part of it, not a copy.
    Bytes(bytes::Bytes),
    /// The body was larger than the service's `maxrequestsize`; reading stopped there.
    TooLarge,
}

#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path below the alias, without leading '/' ("" for the alias itself).
    pub path: &'a str,
    /// Raw (still percent-encoded) query string, without '?'.
    pub query: &'a str,
    /// Request headers (names as sent).
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// The URL of the service as the client reached it (scheme://host:port/alias), used when
    /// the service config has no `url`.
    pub base_url: &'a str,
    /// The authenticated user (`REMOTE_USER`), if any.
    pub user: Option<&'a str>,
}

impl HttpRequest<'_> {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Lines for the error log.
    pub log: Vec<(LogLevel, String)>,
}

pub const XML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

impl HttpResponse {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            content_type: content_type.to_owned(),
            headers: Vec::new(),
            body,
            log: Vec::new(),
        }
    }

    pub fn xml(status: u16, body: String) -> Self {
        Self::new(status, XML_CONTENT_TYPE, body.into_bytes())
    }

    pub fn text(status: u16, text: &str) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }

    pub fn not_found() -> Self {
        Self::text(404, "Not Found\n")
    }

    /// 405 with the methods that are allowed.
    pub fn method_not_allowed(allow: &str) -> Self {
        let mut r = Self::text(405, "Method Not Allowed\n");
        r.headers.push(("Allow".into(), allow.into()));
        r
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_responses_carry_allow() {
        let r = HttpRequest {
            method: "GET",
            path: "",
            query: "",
            headers: vec![("Content-Type".into(), "text/xml".into())],
            body: Body::Bytes(Default::default()),
            base_url: "http://h/wps",
            user: None,
        };
        assert_eq!(r.header("content-type"), Some("text/xml"));
        assert_eq!(r.header("accept"), None);
        let m = HttpResponse::method_not_allowed("GET, HEAD");
        assert_eq!(m.status, 405);
        assert_eq!(m.headers, [("Allow".to_string(), "GET, HEAD".to_string())]);
    }
}
