//! Results as a client asked for them: the results document (`response=document`) or raw
//! (one output's bytes, `Link` headers for references, `multipart/related` for several).

use super::schema::{is_text, typed};
use crate::front::http::HttpResponse;
use crate::jobs::new_id;
use crate::model::format::encode_base64;
use crate::model::{BoundingBox, DataSpec, OutputSpec, OutputValue};
use serde_json::{json, Map, Value as Json};

/// One result as a client asked for it.
pub struct Result_<'a> {
    pub spec: &'a OutputSpec,
    pub value: OutputValue,
    /// Its URL when asked by reference.
    pub href: Option<String>,
    pub base64: bool,
}

fn media_type(v: &OutputValue) -> String {
    match v {
        OutputValue::Literal(_) => "text/plain".into(),
        OutputValue::BoundingBox(_) => "application/json".into(),
        OutputValue::Complex { mime_type, .. } => mime_type.clone(),
    }
}

/// The JSON of one output value in a results document.
pub fn value_json(spec: &OutputSpec, v: &OutputValue, base64: bool) -> Json {
    match v {
        OutputValue::Literal(s) => match &spec.data {
            DataSpec::Literal(l) => typed(l.data_type, s),
            _ => json!(s),
        },
        OutputValue::BoundingBox(b) => bbox_json(b),
        OutputValue::Complex { mime_type, data } => {
            let text = std::str::from_utf8(data)
                .ok()
                .filter(|_| is_text(mime_type) && !base64);
            match text {
                Some(t) if mime_type.to_ascii_lowercase().contains("json") => {
                    match serde_json::from_str::<Json>(t) {
                        Ok(j) => json!({"value": j, "mediaType": mime_type}),
                        Err(_) => json!({"value": t, "mediaType": mime_type}),
                    }
                }
                Some(t) => json!({"value": t, "mediaType": mime_type}),
                None => {
                    json!({"value": encode_base64(data), "mediaType": mime_type, "encoding": "base64"})
                }
            }
        }
    }
}

/// A bounding box value. Its CRS as a URI: EPSG:4326 (as WPS clients use it, longitude
/// first) is CRS84, the CRS 1.0's `bbox.yaml` allows; other EPSG codes are
/// `http://www.opengis.net/def/crs/EPSG/0/<code>`.
pub fn bbox_json(b: &BoundingBox) -> Json {
    let coords: Vec<f64> = b.lower.iter().chain(&b.upper).copied().collect();
    match &b.crs {
        Some(c) => json!({"bbox": coords, "crs": crs_uri(c)}),
        None => json!({ "bbox": coords }),
    }
}

fn crs_uri(crs: &str) -> String {
    let c = crs.trim().to_ascii_lowercase();
    let code = c
        .contains("epsg")
        .then(|| c.rsplit([':', '/']).next())
        .flatten()
        .filter(|d| !d.is_empty() && d.chars().all(|ch| ch.is_ascii_digit()));
    match code {
        Some("4326") => "http://www.opengis.net/def/crs/OGC/1.3/CRS84".into(),
        Some(code) => format!("http://www.opengis.net/def/crs/EPSG/0/{code}"),
        None => crs.to_owned(),
    }
}

/// `response=document`: `{output: value | {"value", "mediaType"} | {"href", "type"}}`.
pub fn document(results: &[Result_]) -> Json {
    let mut m = Map::new();
    for r in results {
        let v = match &r.href {
            Some(href) => json!({"href": href, "type": media_type(&r.value)}),
            None => value_json(r.spec, &r.value, r.base64),
        };
        m.insert(r.spec.identifier.clone(), v);
    }
    Json::Object(m)
}

/// The bytes and media type of a raw output.
fn raw_body(r: &Result_) -> (String, Vec<u8>) {
    match &r.value {
        OutputValue::Literal(s) => ("text/plain; charset=utf-8".into(), s.clone().into_bytes()),
        OutputValue::BoundingBox(b) => (
            "application/json".into(),
            bbox_json(b).to_string().into_bytes(),
        ),
        OutputValue::Complex { mime_type, data } if r.base64 => {
            (mime_type.clone(), encode_base64(data).into_bytes())
        }
        OutputValue::Complex { mime_type, data } => (mime_type.clone(), data.clone()),
    }
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && *c != '"').collect()
}

/// `response=raw`: one output as its bytes with its media type; outputs by reference as
/// `Link` headers (204 when there is nothing else); several as `multipart/related`.
pub fn raw(results: &[Result_]) -> HttpResponse {
    let links: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.href.as_ref().map(|h| {
                format!(
                    "<{}>; rel=\"{}\"; type=\"{}\"",
                    clean(h),
                    clean(&r.spec.identifier),
                    clean(&media_type(&r.value))
                )
            })
        })
        .collect();
    let values: Vec<&Result_> = results.iter().filter(|r| r.href.is_none()).collect();
    let mut resp = if values.is_empty() {
        HttpResponse::new(204, "text/plain", Vec::new())
    } else if values.len() == 1 && links.is_empty() {
        let (ct, body) = raw_body(values[0]);
        HttpResponse::new(200, &clean(&ct), body)
    } else {
        multipart(results)
    };
    for l in links {
        resp.headers.push(("Link".into(), l));
    }
    resp
}

/// `multipart/related`: one part per output (`Content-ID: <output>`); outputs by reference
/// as `message/external-body` parts.
fn multipart(results: &[Result_]) -> HttpResponse {
    let boundary = format!("mod_wps-{}", new_id());
    let mut body = Vec::new();
    for r in results {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let id = clean(&r.spec.identifier);
        match &r.href {
            Some(h) => body.extend_from_slice(
                format!(
                    "Content-Type: message/external-body; access-type=URL; URL=\"{}\"\r\nContent-ID: <{id}>\r\n\r\n\r\n",
                    clean(h)
                )
                .as_bytes(),
            ),
            None => {
                let (ct, data) = raw_body(r);
                body.extend_from_slice(
                    format!("Content-Type: {}\r\nContent-ID: <{id}>\r\n\r\n", clean(&ct)).as_bytes(),
                );
                body.extend_from_slice(&data);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    HttpResponse::new(
        200,
        &format!("multipart/related; boundary={boundary}"),
        body,
    )
}
