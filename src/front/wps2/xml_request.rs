//! WPS 2.0.0 XML (HTTP POST) request parsing, on the shared reader (`front::xml_read`, with its
//! limits). Inputs: `wps:Data` with a literal (text or `wps:LiteralValue`), a bounding box
//! (`ows:BoundingBox`) or complex content (XML kept verbatim, text, base64), and
//! `wps:Reference` (GET, or POST with `wps:Body` / `wps:BodyReference`). Nested inputs and
//! outputs are refused.

use super::kvp::{bad_response, check_accept_versions, check_version, no_such_mode};
use super::request::*;
use crate::front::wps_common::xml_request::{
    check_service, corner, decode_request, dimensions, identifiers, no_input_data, operation,
    reference_href,
};
use crate::front::xml_read::{
    read_tree, shared_part, Elem, NS_OWS2 as NS_OWS, NS_WPS2 as NS_WPS, NS_XLINK, NS_XML,
};
use crate::model::*;
use bytes::Bytes;
use bytestring::ByteString;

pub fn parse(body: &Bytes) -> WpsResult<Request> {
    let doc = &decode_request(body)?;
    let root = read_tree(doc)?;
    let op = operation(&root, NS_WPS, &OPERATIONS)?;
    check_service(&root, false)?;
    if op == "GetCapabilities" {
        if let Some(av) = root.child(NS_OWS, "AcceptVersions") {
            let versions: Vec<String> = av
                .children_named(NS_OWS, "Version")
                .map(|v| v.text().trim().to_owned())
                .collect();
            check_accept_versions(&versions)?;
        }
        let language = root
            .child(NS_OWS, "AcceptLanguages")
            .and_then(|l| l.child(NS_OWS, "Language"))
            .map(|l| l.text().trim().to_owned());
        return Ok(Request::GetCapabilities { language });
    }
    check_version(root.attr("version").as_deref())?;
    let language = root.attr_ns(Some(NS_XML), "lang");
    let job = || -> WpsResult<String> {
        root.child(NS_WPS, "JobID")
            .map(|j| job_id(&j.text()))
            .filter(|j| !j.is_empty())
            .ok_or_else(|| WpsError::missing("JobID", "wps:JobID is missing"))
    };
    Ok(match op {
        "GetStatus" => Request::GetStatus { job_id: job()? },
        "GetResult" => Request::GetResult { job_id: job()? },
        "Dismiss" => Request::Dismiss { job_id: job()? },
        "DescribeProcess" => Request::DescribeProcess {
            identifiers: identifiers(&root, NS_OWS)?,
            language,
        },
        _ => Request::Execute(parse_execute(&root, doc, language)?),
    })
}

fn parse_execute(root: &Elem, doc: &ByteString, language: Option<String>) -> WpsResult<Execute> {
    let identifier = root
        .child(NS_OWS, "Identifier")
        .map(|e| e.text().trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| WpsError::missing("identifier", "process ows:Identifier is missing"))?;
    let mode = match root.attr("mode") {
        None => return Err(WpsError::missing("mode", "attribute 'mode' is missing")),
        Some(m) => Mode::parse(&m).ok_or_else(|| no_such_mode(&m))?,
    };
    let raw = match root.attr("response").as_deref().map(str::trim) {
        None => {
            return Err(WpsError::missing(
                "response",
                "attribute 'response' is missing",
            ))
        }
        Some("raw") => true,
        Some("document") => false,
        Some(r) => return Err(bad_response(r)),
    };
    let mut inputs = Vec::new();
    for input in root.children_named(NS_WPS, "Input") {
        if inputs.len() >= MAX_INPUTS {
            return Err(WpsError::new(
                ExceptionCode::TooManyInputs,
                Some("Input"),
                format!("more than {MAX_INPUTS} inputs"),
            ));
        }
        inputs.push(parse_input(input, doc)?);
    }
    let mut outputs = Vec::new();
    for o in root.children_named(NS_WPS, "Output") {
        let id = o
            .attr("id")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WpsError::missing("id", "wps:Output without an id"))?;
        if o.child(NS_WPS, "Output").is_some() {
            return Err(WpsError::new(
                ExceptionCode::NoSuchOutput,
                Some(&id),
                format!("output '{id}': nested outputs are not supported"),
            ));
        }
        let as_reference = match o.attr("transmission").as_deref().map(str::trim) {
            None | Some("value") => false,
            Some("reference") => true,
            Some(t) => {
                return Err(WpsError::invalid(
                    &id,
                    format!("transmission must be 'value' or 'reference', not '{t}'"),
                ))
            }
        };
        outputs.push(OutputRequest {
            identifier: id,
            as_reference,
            mime_type: o.attr("mimeType"),
            encoding: o.attr("encoding"),
            schema: o.attr("schema"),
            uom: None,
        });
    }
    Ok(Execute {
        identifier,
        inputs,
        outputs,
        mode,
        raw,
        language,
    })
}

/// A wrong value in input `id` (WPS 2.0: `WrongInputData`).
fn bad_input(id: &str, m: String) -> WpsError {
    WpsError::new(ExceptionCode::WrongInputData, Some(id), m)
}

fn parse_input(input: &Elem, doc: &ByteString) -> WpsResult<Input> {
    let id = input
        .attr("id")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| WpsError::missing("id", "wps:Input without an id"))?;
    let data = if let Some(d) = input.child(NS_WPS, "Data") {
        let bbox = d
            .child(NS_OWS, "BoundingBox")
            .or_else(|| d.child(NS_OWS, "WGS84BoundingBox"));
        if let Some(lit) = d.child(NS_WPS, "LiteralValue") {
            InputData::Literal(LiteralValue {
                value: lit.text().trim().to_owned(),
                data_type: lit.attr("dataType"),
                uom: lit.attr("uom"),
            })
        } else if let Some(bb) = bbox {
            let dimensions = dimensions(bb, &id, bad_input)?;
            let lower = corner(bb, NS_OWS, "LowerCorner", &id, bad_input)?;
            let upper = corner(bb, NS_OWS, "UpperCorner", &id, bad_input)?;
            check_bbox(&lower, &upper, dimensions).map_err(|e| bad_input(&id, e))?;
            let crs = bb.attr("crs").or_else(|| {
                (bb.local == "WGS84BoundingBox").then(|| "urn:ogc:def:crs:OGC:2:84".to_owned())
            });
            InputData::BoundingBox(BoundingBox {
                lower,
                upper,
                crs,
                dimensions,
            })
        } else {
            let (content, is_xml) = d.content(doc);
            let (mime_type, encoding, schema) =
                (d.attr("mimeType"), d.attr("encoding"), d.attr("schema"));
            if is_xml || mime_type.is_some() || encoding.is_some() || schema.is_some() {
                InputData::Complex(ComplexValue {
                    mime_type,
                    encoding,
                    schema,
                    content: shared_part(doc, &content),
                    is_xml,
                })
            } else {
                // plain text: a literal, or (the engine converts it) a bounding box in its
                // KVP form or text complex data
                InputData::Literal(LiteralValue {
                    value: content.trim().to_owned(),
                    ..Default::default()
                })
            }
        }
    } else if let Some(r) = input.child(NS_WPS, "Reference") {
        let href = reference_href(r, &id)?;
        let body = r
            .child(NS_WPS, "Body")
            .map(|b| b.content(doc).0.into_owned());
        let body_reference = r
            .child(NS_WPS, "BodyReference")
            .and_then(|b| b.attr_ns(Some(NS_XLINK), "href"));
        let post = body.is_some() || body_reference.is_some();
        InputData::Reference(Reference {
            href,
            method: post.then(|| "POST".to_owned()),
            mime_type: r.attr("mimeType"),
            encoding: r.attr("encoding"),
            schema: r.attr("schema"),
            headers: Vec::new(),
            body,
            body_reference,
        })
    } else if input.child(NS_WPS, "Input").is_some() {
        return Err(WpsError::new(
            ExceptionCode::NoSuchInput,
            Some(&id),
            format!("input '{id}': nested inputs are not supported"),
        ));
    } else {
        return Err(no_input_data(&id));
    };
    Ok(Input {
        identifier: id,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request read from a body of its own (as the glue hands it over).
    fn parse(body: &[u8]) -> WpsResult<Request> {
        super::parse(&Bytes::copy_from_slice(body))
    }

    fn examples() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/schemas/ogc/wps/2.0/xml-examples")
    }

    #[test]
    fn the_official_examples_parse() {
        let read = |f: &str| std::fs::read(examples().join(f)).unwrap();
        assert!(matches!(
            parse(&read("wpsGetCapabilitiesRequestExample.xml")).unwrap(),
            Request::GetCapabilities { language: None }
        ));
        match parse(&read("wpsDescribeProcessRequestExample.xml")).unwrap() {
            Request::DescribeProcess { identifiers, .. } => {
                assert_eq!(identifiers, ["Buffer", "Viewshed"])
            }
            r => panic!("{r:?}"),
        }
        let id = "fb6dd4b0-a2bb-11e3-a5e2-0800200c9a66".to_owned();
        assert_eq!(
            parse(&read("wpsGetStatusRequestExample.xml")).unwrap(),
            Request::GetStatus { job_id: id.clone() }
        );
        assert_eq!(
            parse(&read("wpsGetResultRequestExample.xml")).unwrap(),
            Request::GetResult { job_id: id.clone() }
        );
        assert_eq!(
            parse(&read("wpsDismissRequestExample.xml")).unwrap(),
            Request::Dismiss { job_id: id }
        );
        match parse(&read("wpsExecuteRequestExample.xml")).unwrap() {
            Request::Execute(e) => {
                assert_eq!(
                    e.identifier,
                    "http://my.wps.server/processes/proximity/Planar-Buffer"
                );
                assert_eq!(e.mode, Mode::Async);
                assert!(!e.raw);
                assert!(
                    matches!(&e.inputs[0].data, InputData::Reference(r) if r.href == "http://some.data.server/mygmldata.xml")
                );
                assert!(matches!(&e.inputs[1].data, InputData::Literal(l) if l.value == "10.0"));
                assert_eq!(e.outputs[0].identifier, "BUFFERED_GEOMETRY");
                assert!(e.outputs[0].as_reference);
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn data_forms() {
        let body = r#"<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" mode="sync" response="raw">
  <ows:Identifier>echo</ows:Identifier>
  <wps:Input id="l"><wps:Data><wps:LiteralValue dataType="string">a b</wps:LiteralValue></wps:Data></wps:Input>
  <wps:Input id="b"><wps:Data><ows:BoundingBox crs="EPSG:4326"><ows:LowerCorner>1 2</ows:LowerCorner><ows:UpperCorner>3 4</ows:UpperCorner></ows:BoundingBox></wps:Data></wps:Input>
  <wps:Input id="x"><wps:Data mimeType="text/xml"><a xmlns="urn:a"><b>1</b></a></wps:Data></wps:Input>
  <wps:Input id="j"><wps:Data mimeType="application/json"><![CDATA[{"a": [1]}]]></wps:Data></wps:Input>
  <wps:Output id="o"/>
</wps:Execute>"#;
        let Request::Execute(e) = parse(body.as_bytes()).unwrap() else {
            panic!()
        };
        assert!(e.raw && e.mode == Mode::Sync);
        assert!(matches!(&e.inputs[0].data, InputData::Literal(l) if l.value == "a b"));
        assert!(
            matches!(&e.inputs[1].data, InputData::BoundingBox(b) if b.upper == [3.0, 4.0] && b.crs.as_deref() == Some("EPSG:4326"))
        );
        assert!(
            matches!(&e.inputs[2].data, InputData::Complex(c) if c.is_xml && &*c.content == r#"<a xmlns="urn:a"><b>1</b></a>"#)
        );
        assert!(
            matches!(&e.inputs[3].data, InputData::Complex(c) if !c.is_xml && &*c.content == r#"{"a": [1]}"#)
        );
        let missing_mode = body.replace(r#"mode="sync" "#, "");
        assert_eq!(
            parse(missing_mode.as_bytes())
                .unwrap_err()
                .locator
                .as_deref(),
            Some("mode")
        );
    }
}
