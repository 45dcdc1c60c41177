//! Reading XML (HTTP POST) requests, alike in both versions, on the shared reader
//! (`front::xml_read`); the namespaces are the version's.

use crate::front::xml_read::{decode, Elem, NS_XLINK};
use crate::model::{ExceptionCode, WpsError, WpsResult};
use bytes::Bytes;
use bytestring::ByteString;

/// The decoded request document (an empty body is a missing request), to be read by
/// `read_tree` (whose tree borrows from it).
pub fn decode_request(body: &Bytes) -> WpsResult<ByteString> {
    let doc = decode(body)?;
    if doc.chars().all(|c| c.is_ascii_whitespace()) {
        return Err(WpsError::missing("request", "empty request body"));
    }
    Ok(doc)
}

/// The operation the root element names: one of `operations` in the namespace `ns_wps`.
pub fn operation<'e>(root: &'e Elem, ns_wps: &str, operations: &[&str]) -> WpsResult<&'e str> {
    let op = root.local.as_str();
    if root.ns.as_deref() == Some(ns_wps) && operations.contains(&op) {
        return Ok(op);
    }
    Err(WpsError::new(
        ExceptionCode::OperationNotSupported,
        Some(op),
        format!("operation '{op}' is not supported"),
    ))
}

/// Checks the root's `service` attribute is `WPS` (any case, where `any_case`).
pub fn check_service(root: &Elem, any_case: bool) -> WpsResult<()> {
    match root.attr("service") {
        None => Err(WpsError::missing(
            "service",
            "attribute 'service' is missing",
        )),
        Some(s)
            if !(if any_case {
                s.trim().eq_ignore_ascii_case("WPS")
            } else {
                s.trim() == "WPS"
            }) =>
        {
            Err(WpsError::invalid(
                "service",
                format!("service '{s}' is not 'WPS'"),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// The `ows:Identifier`s of DescribeProcess: at least one.
pub fn identifiers(root: &Elem, ns_ows: &str) -> WpsResult<Vec<String>> {
    let identifiers: Vec<String> = root
        .children_named(ns_ows, "Identifier")
        .map(|e| e.text().trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if identifiers.is_empty() {
        return Err(WpsError::missing("identifier", "no ows:Identifier given"));
    }
    Ok(identifiers)
}

/// The error a version gives for a wrong value of input `id`.
pub type BadInput = fn(&str, String) -> WpsError;

/// The `dimensions` attribute of a bounding box of input `id`, if given.
pub fn dimensions(bb: &Elem, id: &str, bad: BadInput) -> WpsResult<Option<u32>> {
    match bb.attr("dimensions") {
        None => Ok(None),
        Some(d) => d
            .trim()
            .parse::<u32>()
            .map(Some)
            .map_err(|_| bad(id, format!("dimensions '{d}' is not a positive integer"))),
    }
}

/// Corner `name` (`LowerCorner`, `UpperCorner`) of a bounding box of input `id`.
pub fn corner(bb: &Elem, ns_ows: &str, name: &str, id: &str, bad: BadInput) -> WpsResult<Vec<f64>> {
    let c = bb.child(ns_ows, name).ok_or_else(|| {
        WpsError::missing(id, format!("bounding box of '{id}' has no ows:{name}"))
    })?;
    c.text()
        .split_whitespace()
        .map(|t| match t.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(bad(
                id,
                format!("bounding box coordinate '{t}' of '{id}' is not a number"),
            )),
        })
        .collect()
}

/// The `xlink:href` of the `wps:Reference` of input `id`.
pub fn reference_href(r: &Elem, id: &str) -> WpsResult<String> {
    r.attr_ns(Some(NS_XLINK), "href").ok_or_else(|| {
        WpsError::missing(
            id,
            format!("wps:Reference of input '{id}' has no xlink:href"),
        )
    })
}

/// An input with neither `wps:Data` nor `wps:Reference`.
pub fn no_input_data(id: &str) -> WpsError {
    WpsError::missing(
        id,
        format!("input '{id}' has neither wps:Data nor wps:Reference"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::xml_read::{read_tree, NS_OWS2};

    #[test]
    fn root_and_parts() {
        assert!(decode_request(&Bytes::from_static(b"  ")).is_err());
        let body = &Bytes::from_static(br#"<wps:X xmlns:wps="urn:w" xmlns:ows="http://www.opengis.net/ows/2.0" service="wps" dimensions="x"><ows:Identifier> a </ows:Identifier><ows:LowerCorner>1 2</ows:LowerCorner><ows:UpperCorner>1 z</ows:UpperCorner></wps:X>"#);
        let doc = decode_request(body).unwrap();
        let root = read_tree(&doc).unwrap();
        assert_eq!(operation(&root, "urn:w", &["X"]).unwrap(), "X");
        assert_eq!(
            operation(&root, "urn:v", &["X"]).unwrap_err().code,
            ExceptionCode::OperationNotSupported
        );
        assert!(check_service(&root, true).is_ok());
        assert!(check_service(&root, false).is_err());
        assert_eq!(identifiers(&root, NS_OWS2).unwrap(), ["a"]);
        let bad: BadInput = |id, m| WpsError::invalid(id, m);
        assert!(dimensions(&root, "i", bad).is_err());
        assert_eq!(
            corner(&root, NS_OWS2, "LowerCorner", "i", bad).unwrap(),
            [1.0, 2.0]
        );
        assert!(corner(&root, NS_OWS2, "UpperCorner", "i", bad).is_err());
        assert!(reference_href(&root, "i").is_err());
    }
}
