//! Routes a request below a service's alias to the front that answers it. At the alias URL the
//! WPS version is chosen by the request: `version=2.0.0`, a GetCapabilities whose
//! `AcceptVersions` names 2.0.0 before 1.0.0 (or only 2.0.0), one of the 2.0-only operations
//! (GetStatus, GetResult, Dismiss), or an XML body in the WPS 2.0 namespace go to `wps2`;
//! everything else (a GetCapabilities naming no version included) to `wps1`.

use super::http::{Body, HttpRequest, HttpResponse};
use super::xml_read::{root_namespace, NS_WPS2};
use super::{ogcapi, outputs, wps1, wps2};
use crate::engine::{Backend, Service};

/// Answers one request for `service`; `backend` runs its work in this child.
pub fn handle(service: &Service, backend: &dyn Backend, req: &HttpRequest) -> HttpResponse {
    let path = req.path.trim_start_matches('/');
    if path.is_empty() {
        return if wants_wps2(req) {
            wps2::handle(service, backend, req)
        } else {
            wps1::handle(service, backend, req)
        };
    }
    if let Some(rel) = ogcapi::below_api(service, path) {
        return ogcapi::handle(service, backend, req, rel);
    }
    match path.strip_prefix("outputs/") {
        Some(rel) => outputs::serve(service, backend, req, rel),
        None => HttpResponse::not_found(),
    }
}

/// Whether the request at the alias URL is WPS 2.0.0.
pub fn wants_wps2(req: &HttpRequest) -> bool {
    match &req.body {
        Body::Bytes(b) if req.method == "POST" && !b.iter().all(u8::is_ascii_whitespace) => {
            root_namespace(b).as_deref() == Some(NS_WPS2)
        }
        _ => kvp_wants_wps2(req.query),
    }
}

fn kvp_wants_wps2(query: &str) -> bool {
    let (mut version, mut accept, mut request) = (None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.trim().to_ascii_lowercase().as_str() {
            "version" => &mut version,
            "acceptversions" => &mut accept,
            "request" => &mut request,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.trim().to_owned());
        }
    }
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        return v == "2.0.0";
    }
    let request = request.unwrap_or_default();
    if ["GetStatus", "GetResult", "Dismiss"]
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&request))
    {
        return true;
    }
    request.eq_ignore_ascii_case("GetCapabilities")
        && accept.is_some_and(|a| {
            a.split(',')
                .map(str::trim)
                .find(|v| *v == "1.0.0" || *v == "2.0.0")
                == Some("2.0.0")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: &'a str, query: &'a str, body: &str) -> HttpRequest<'a> {
        HttpRequest {
            method,
            path: "",
            query,
            headers: vec![],
            body: Body::Bytes(body.as_bytes().to_vec().into()),
            base_url: "http://h/wps",
            user: None,
        }
    }

    #[test]
    fn the_version_is_chosen_by_the_request() {
        let get = |q| wants_wps2(&req("GET", q, ""));
        assert!(!get("service=WPS&request=GetCapabilities"));
        assert!(get(
            "service=WPS&request=GetCapabilities&AcceptVersions=2.0.0"
        ));
        assert!(get(
            "service=WPS&request=GetCapabilities&acceptversions=3.0,2.0.0,1.0.0"
        ));
        assert!(!get(
            "service=WPS&request=GetCapabilities&AcceptVersions=1.0.0,2.0.0"
        ));
        assert!(!get(
            "service=WPS&request=GetCapabilities&AcceptVersions=3.0.0"
        ));
        assert!(get(
            "service=WPS&request=DescribeProcess&VERSION=2.0.0&identifier=x"
        ));
        assert!(!get(
            "service=WPS&request=DescribeProcess&version=1.0.0&identifier=x"
        ));
        assert!(!get(
            "service=WPS&request=DescribeProcess&version=3.0.0&identifier=x"
        ));
        assert!(get("service=WPS&request=GetStatus&jobid=x"));
        let post = |b: &str| wants_wps2(&req("POST", "", b));
        assert!(post(
            r#"<?xml version="1.0"?><!-- c --><wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS"/>"#
        ));
        assert!(post(
            r#"<GetStatus xmlns="http://www.opengis.net/wps/2.0"/>"#
        ));
        assert!(!post(
            r#"<wps:Execute xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#
        ));
        assert!(!post("not xml"));
        // large bodies: the root's start tag early, or ending only after the start of the
        // body that is read alone, or a character cut where that start ends
        let data = "x".repeat(40_000);
        let wps2 = |pad: &str, prefix: &str| {
            format!(
                r#"<wps:Execute {pad} xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS">{prefix}{data}</wps:Execute>"#
            )
        };
        assert!(post(&wps2("", "")));
        assert!(post(&wps2(&" ".repeat(20_000), "")));
        assert!(post(&wps2(&format!(r#"a="{}""#, "é".repeat(9_000)), "")));
        let cut = wps2("", &format!("{}é", " ".repeat(16_384 - 72)));
        assert!(!cut.is_char_boundary(16_384));
        assert!(post(&cut));
        assert!(!post(&wps2("", "").replace("wps/2.0", "wps/1.0.0")));
        assert!(!post(&format!("<wps:Execute {}", " ".repeat(20_000))));
    }
}
