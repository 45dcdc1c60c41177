//! WPS 1.0.0 XML (HTTP POST) request parsing, on the shared reader (`front::xml_read`).

use super::kvp::check_version;
use super::request::*;
use crate::front::wps_common::kvp::version_negotiation_failed;
use crate::front::wps_common::xml_request::{
    check_service, corner, decode_request, dimensions, identifiers, no_input_data, operation,
    reference_href,
};
use crate::front::xml_read::{
    read_tree, shared_part, Elem, NS_OWS11 as NS_OWS, NS_WPS1 as NS_WPS, NS_XLINK,
};
use crate::model::check_bbox;
use crate::model::*;
use bytes::Bytes;
use bytestring::ByteString;

/// Parses a WPS 1.0.0 XML request body.
pub fn parse(body: &Bytes) -> WpsResult<Request> {
    let doc = &decode_request(body)?;
    let root = read_tree(doc)?;
    let op = operation(
        &root,
        NS_WPS,
        &["GetCapabilities", "DescribeProcess", "Execute"],
    )?;
    check_service(&root, true)?;
    let language = root.attr("language");
    match op {
        "GetCapabilities" => {
            let av = root
                .child(NS_OWS, "AcceptVersions")
                .or_else(|| root.child(NS_WPS, "AcceptVersions"));
            let accept_versions = av.map(|av| {
                av.children_named(NS_OWS, "Version")
                    .map(|v| v.text().trim().to_owned())
                    .collect::<Vec<_>>()
            });
            if let Some(versions) = &accept_versions {
                if !versions.iter().any(|v| v == "1.0.0") {
                    return Err(version_negotiation_failed(versions));
                }
            }
            Ok(Request::GetCapabilities(GetCapabilities {
                accept_versions,
                language,
            }))
        }
        "DescribeProcess" => {
            check_version(root.attr("version").as_deref())?;
            let identifiers = identifiers(&root, NS_OWS)?;
            Ok(Request::DescribeProcess(DescribeProcess {
                identifiers,
                language,
            }))
        }
        _ => {
            check_version(root.attr("version").as_deref())?;
            parse_execute(&root, doc, language).map(Request::Execute)
        }
    }
}

fn identifier_of(el: &Elem) -> Option<String> {
    el.child(NS_OWS, "Identifier")
        .map(|e| e.text().trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn parse_execute(root: &Elem, doc: &ByteString, language: Option<String>) -> WpsResult<Execute> {
    let identifier = identifier_of(root)
        .ok_or_else(|| WpsError::missing("identifier", "process ows:Identifier is missing"))?;
    let mut inputs = Vec::new();
    if let Some(di) = root.child(NS_WPS, "DataInputs") {
        for input in di.children_named(NS_WPS, "Input") {
            if inputs.len() >= crate::model::MAX_INPUTS {
                return Err(WpsError::invalid(
                    "DataInputs",
                    format!("more than {} inputs", crate::model::MAX_INPUTS),
                ));
            }
            inputs.push(parse_input(input, doc)?);
        }
    }
    let response = match root.child(NS_WPS, "ResponseForm") {
        None => ResponseForm::default(),
        Some(rf) => {
            if let Some(raw) = rf.child(NS_WPS, "RawDataOutput") {
                ResponseForm::Raw(parse_output(raw)?)
            } else if let Some(rd) = rf.child(NS_WPS, "ResponseDocument") {
                ResponseForm::Document(ResponseDocument {
                    store_execute_response: xml_bool(rd, "storeExecuteResponse")?,
                    lineage: xml_bool(rd, "lineage")?,
                    status: xml_bool(rd, "status")?,
                    outputs: rd
                        .children_named(NS_WPS, "Output")
                        .map(parse_output)
                        .collect::<WpsResult<_>>()?,
                })
            } else {
                return Err(WpsError::missing(
                    "ResponseForm",
                    "wps:ResponseForm needs wps:ResponseDocument or wps:RawDataOutput",
                ));
            }
        }
    };
    Ok(Execute {
        identifier,
        inputs,
        response,
        language,
    })
}

fn xml_bool(el: &Elem, name: &str) -> WpsResult<bool> {
    match el.attr(name).as_deref().map(str::trim) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(WpsError::invalid(
            name,
            format!("{name} must be true or false, not '{v}'"),
        )),
    }
}

fn parse_output(el: &Elem) -> WpsResult<OutputRequest> {
    Ok(OutputRequest {
        identifier: identifier_of(el)
            .ok_or_else(|| WpsError::missing("identifier", "output ows:Identifier is missing"))?,
        as_reference: xml_bool(el, "asReference")?,
        mime_type: el.attr("mimeType"),
        encoding: el.attr("encoding"),
        schema: el.attr("schema"),
        uom: el.attr("uom"),
    })
}

/// A wrong value in input `id` (WPS 1.0.0: `InvalidParameterValue`).
fn bad_input(id: &str, m: String) -> WpsError {
    WpsError::invalid(id, m)
}

fn parse_input(input: &Elem, doc: &ByteString) -> WpsResult<Input> {
    let id = identifier_of(input)
        .ok_or_else(|| WpsError::missing("identifier", "input ows:Identifier is missing"))?;
    let data = if let Some(data) = input.child(NS_WPS, "Data") {
        if let Some(lit) = data.child(NS_WPS, "LiteralData") {
            InputData::Literal(LiteralValue {
                value: lit.text().trim().to_owned(),
                data_type: lit.attr("dataType"),
                uom: lit.attr("uom"),
            })
        } else if let Some(bb) = data.child(NS_WPS, "BoundingBoxData") {
            let dimensions = dimensions(bb, &id, bad_input)?;
            let lower = corner(bb, NS_OWS, "LowerCorner", &id, bad_input)?;
            let upper = corner(bb, NS_OWS, "UpperCorner", &id, bad_input)?;
            check_bbox(&lower, &upper, dimensions).map_err(|e| bad_input(&id, e))?;
            InputData::BoundingBox(BoundingBox {
                lower,
                upper,
                crs: bb.attr("crs"),
                dimensions,
            })
        } else if let Some(cd) = data.child(NS_WPS, "ComplexData") {
            let (content, is_xml) = cd.content(doc);
            InputData::Complex(ComplexValue {
                mime_type: cd.attr("mimeType"),
                encoding: cd.attr("encoding"),
                schema: cd.attr("schema"),
                content: shared_part(doc, &content),
                is_xml,
            })
        } else {
            return Err(WpsError::missing(
                &id,
                format!(
                    "wps:Data of input '{id}' has no LiteralData, BoundingBoxData or ComplexData"
                ),
            ));
        }
    } else if let Some(r) = input.child(NS_WPS, "Reference") {
        let href = reference_href(r, &id)?;
        InputData::Reference(Reference {
            href,
            method: r.attr("method"),
            mime_type: r.attr("mimeType"),
            encoding: r.attr("encoding"),
            schema: r.attr("schema"),
            headers: r
                .children_named(NS_WPS, "Header")
                .map(|h| {
                    (
                        h.attr("key").unwrap_or_default(),
                        h.attr("value").unwrap_or_default(),
                    )
                })
                .collect(),
            body: r
                .child(NS_WPS, "Body")
                .map(|b| b.content(doc).0.into_owned()),
            body_reference: r
                .child(NS_WPS, "BodyReference")
                .and_then(|b| b.attr_ns(Some(NS_XLINK), "href")),
        })
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
    use crate::front::xml_read::{MAX_STRUCTURE_ATTRIBUTES, MAX_STRUCTURE_ELEMENTS};

    /// The request read from a body of its own (as the glue hands it over).
    fn parse(body: &[u8]) -> WpsResult<Request> {
        super::parse(&Bytes::copy_from_slice(body))
    }

    const NS: &str = r#"xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink""#;

    fn err(body: &str) -> (ExceptionCode, Option<String>) {
        let e = parse(body.as_bytes()).unwrap_err();
        (e.code, e.locator)
    }
    fn code_loc(code: ExceptionCode, loc: &str) -> (ExceptionCode, Option<String>) {
        (code, Some(loc.to_owned()))
    }
    fn execute(body: &str) -> Execute {
        match parse(body.as_bytes()).unwrap() {
            Request::Execute(e) => e,
            other => panic!("not Execute: {other:?}"),
        }
    }
    fn exec_with(inner: &str) -> String {
        format!(
            r#"<wps:Execute service="WPS" version="1.0.0" {NS}><ows:Identifier>p</ows:Identifier>{inner}</wps:Execute>"#
        )
    }

    // Condensed copies of the official WPS 1.0.0 examples.
    const EX10: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- WPS GetCapabilities request-->
<wps:GetCapabilities xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:xlink="http://www.w3.org/1999/xlink" language="en-CA" service="WPS">
    <wps:AcceptVersions>
        <ows:Version>1.0.0</ows:Version>
    </wps:AcceptVersions>
</wps:GetCapabilities>"#;
    const EX30: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeProcess xmlns="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS" version="1.0.0" language="en-CA">
	<ows:Identifier>intersection</ows:Identifier>
	<ows:Identifier>union</ows:Identifier>
</DescribeProcess>"#;
    const EX50: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
	<ows:Identifier>Buffer</ows:Identifier>
	<wps:DataInputs>
		<wps:Input>
			<ows:Identifier>InputPolygon</ows:Identifier>
			<ows:Title>Playground area</ows:Title>
			<wps:Reference xlink:href="http://foo.bar/some_WFS_request.xml"/>
		</wps:Input>
		<wps:Input>
			<ows:Identifier>BufferDistance</ows:Identifier>
			<wps:Data>
				<wps:LiteralData>400</wps:LiteralData>
			</wps:Data>
		</wps:Input>
	</wps:DataInputs>
	<wps:ResponseForm>
		<wps:RawDataOutput>
			<ows:Identifier>BufferedPolygon</ows:Identifier>
		</wps:RawDataOutput>
	</wps:ResponseForm>
</wps:Execute>"#;
    const EX52: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
	<ows:Identifier>Buffer</ows:Identifier>
	<wps:DataInputs>
		<wps:Input>
			<ows:Identifier>InputPolygon</ows:Identifier>
			<wps:Reference xlink:href="http://foo.bar/some_WFS_request.xml" method="POST" mimeType="text/xml" encoding="UTF-8" schema="http://foo.bar/gml_polygon_schema.xsd"/>
		</wps:Input>
		<wps:Input>
			<ows:Identifier>BufferDistance</ows:Identifier>
			<wps:Data>
				<wps:LiteralData uom="feet">400</wps:LiteralData>
			</wps:Data>
		</wps:Input>
	</wps:DataInputs>
	<wps:ResponseForm>
		<wps:ResponseDocument storeExecuteResponse="true" lineage="true" status="true">
			<wps:Output asReference="true">
				<ows:Identifier>BufferedPolygon</ows:Identifier>
				<ows:Title>Area serviced by playground.</ows:Title>
			</wps:Output>
		</wps:ResponseDocument>
	</wps:ResponseForm>
</wps:Execute>"#;
    const EX53_DATA: &str = r#"<wps:Input>
			<ows:Identifier>BufferDistance</ows:Identifier>
			<wps:Data>
				<wps:ComplexData mimeType="text/xml">
					<!--embedded XML begins here.-->
					<RangeToValueMappings xmlns="http://mas.orchestra.jrc.it" xmlns:ows="http://www.opengeospatial.net/ows">
						<Mapping><ows:Range ows:rangeClosure="closed-open"><ows:MinimumValue>0</ows:MinimumValue></ows:Range><ows:Value>A&amp;B</ows:Value></Mapping>
					</RangeToValueMappings>
				</wps:ComplexData>
			</wps:Data>
		</wps:Input>"#;

    #[test]
    fn example_get_capabilities_and_describe() {
        assert_eq!(
            parse(EX10.as_bytes()).unwrap(),
            Request::GetCapabilities(GetCapabilities {
                accept_versions: Some(vec!["1.0.0".into()]),
                language: Some("en-CA".into()),
            })
        );
        assert_eq!(
            parse(EX30.as_bytes()).unwrap(),
            Request::DescribeProcess(DescribeProcess {
                identifiers: vec!["intersection".into(), "union".into()],
                language: Some("en-CA".into()),
            })
        );
        let bad = format!(
            r#"<wps:GetCapabilities service="wps" {NS}><ows:AcceptVersions><ows:Version>2.0.0</ows:Version></ows:AcceptVersions></wps:GetCapabilities>"#
        );
        assert_eq!(err(&bad), (ExceptionCode::VersionNegotiationFailed, None));
    }

    #[test]
    fn example_execute_raw_and_document() {
        let e = execute(EX50);
        assert_eq!(e.identifier, "Buffer");
        assert_eq!(e.inputs.len(), 2);
        assert_eq!(
            e.inputs[0],
            Input {
                identifier: "InputPolygon".into(),
                data: InputData::Reference(Reference {
                    href: "http://foo.bar/some_WFS_request.xml".into(),
                    ..Default::default()
                }),
            }
        );
        assert_eq!(
            e.inputs[1].data,
            InputData::Literal(LiteralValue {
                value: "400".into(),
                ..Default::default()
            })
        );
        assert_eq!(
            e.response,
            ResponseForm::Raw(OutputRequest {
                identifier: "BufferedPolygon".into(),
                ..Default::default()
            })
        );

        let e = execute(EX52);
        match &e.inputs[0].data {
            InputData::Reference(r) => {
                assert_eq!(r.method.as_deref(), Some("POST"));
                assert_eq!(r.mime_type.as_deref(), Some("text/xml"));
                assert_eq!(r.encoding.as_deref(), Some("UTF-8"));
                assert_eq!(
                    r.schema.as_deref(),
                    Some("http://foo.bar/gml_polygon_schema.xsd")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.inputs[1].data,
            InputData::Literal(LiteralValue {
                value: "400".into(),
                uom: Some("feet".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            e.response,
            ResponseForm::Document(ResponseDocument {
                store_execute_response: true,
                lineage: true,
                status: true,
                outputs: vec![OutputRequest {
                    identifier: "BufferedPolygon".into(),
                    as_reference: true,
                    ..Default::default()
                }],
            })
        );
    }

    #[test]
    fn complex_xml_text_and_cdata() {
        let e = execute(&exec_with(&format!(
            "<wps:DataInputs>{EX53_DATA}</wps:DataInputs>"
        )));
        let InputData::Complex(c) = &e.inputs[0].data else {
            panic!("{:?}", e.inputs[0]);
        };
        assert!(c.is_xml);
        assert_eq!(c.mime_type.as_deref(), Some("text/xml"));
        let start = EX53_DATA.find("<!--embedded").unwrap();
        let end = EX53_DATA.find("</wps:ComplexData>").unwrap();
        assert_eq!(c.content.trim(), EX53_DATA[start..end].trim());
        assert!(c.content.contains("<ows:Value>A&amp;B</ows:Value>"));
        assert_eq!(e.response, ResponseForm::default());

        let e = execute(&exec_with(
            r#"<wps:DataInputs><wps:Input><ows:Identifier>t</ows:Identifier><wps:Data><wps:ComplexData mimeType="application/json" encoding="UTF-8" schema="s">{"a": 1 &lt; 2}<![CDATA[<x>]]></wps:ComplexData></wps:Data></wps:Input></wps:DataInputs>"#,
        ));
        assert_eq!(
            e.inputs[0].data,
            InputData::Complex(ComplexValue {
                mime_type: Some("application/json".into()),
                encoding: Some("UTF-8".into()),
                schema: Some("s".into()),
                content: r#"{"a": 1 < 2}<x>"#.into(),
                is_xml: false,
            })
        );
    }

    #[test]
    fn bbox_and_reference_details() {
        let e = execute(&exec_with(
            r#"<wps:DataInputs><wps:Input><ows:Identifier>b</ows:Identifier><wps:Data><wps:BoundingBoxData crs="EPSG:4326" dimensions="2"><ows:LowerCorner>46 102</ows:LowerCorner><ows:UpperCorner> 47 103.5 </ows:UpperCorner></wps:BoundingBoxData></wps:Data></wps:Input>
            <wps:Input><ows:Identifier>r</ows:Identifier><wps:Reference xlink:href="http://h/wfs" method="POST"><wps:Header key="Accept" value="text/xml"/><wps:Body><wfs:GetFeature xmlns:wfs="x"/></wps:Body></wps:Reference></wps:Input>
            <wps:Input><ows:Identifier>s</ows:Identifier><wps:Reference xlink:href="http://h/2"><wps:BodyReference xlink:href="http://h/body"/></wps:Reference></wps:Input></wps:DataInputs>"#,
        ));
        assert_eq!(
            e.inputs[0].data,
            InputData::BoundingBox(BoundingBox {
                lower: vec![46.0, 102.0],
                upper: vec![47.0, 103.5],
                crs: Some("EPSG:4326".into()),
                dimensions: Some(2),
            })
        );
        assert_eq!(
            e.inputs[1].data,
            InputData::Reference(Reference {
                href: "http://h/wfs".into(),
                method: Some("POST".into()),
                headers: vec![("Accept".into(), "text/xml".into())],
                body: Some(r#"<wfs:GetFeature xmlns:wfs="x"/>"#.into()),
                ..Default::default()
            })
        );
        match &e.inputs[2].data {
            InputData::Reference(r) => {
                assert_eq!(r.body_reference.as_deref(), Some("http://h/body"))
            }
            other => panic!("{other:?}"),
        }
        let bad = exec_with(
            r#"<wps:DataInputs><wps:Input><ows:Identifier>b</ows:Identifier><wps:Data><wps:BoundingBoxData><ows:LowerCorner>5 5</ows:LowerCorner><ows:UpperCorner>1 1</ows:UpperCorner></wps:BoundingBoxData></wps:Data></wps:Input></wps:DataInputs>"#,
        );
        assert_eq!(
            err(&bad),
            code_loc(ExceptionCode::InvalidParameterValue, "b")
        );
    }

    #[test]
    fn protocol_errors() {
        use ExceptionCode::*;
        let missing_service = format!(
            r#"<wps:DescribeProcess version="1.0.0" {NS}><ows:Identifier>a</ows:Identifier></wps:DescribeProcess>"#
        );
        assert_eq!(
            err(&missing_service),
            code_loc(MissingParameterValue, "service")
        );
        let bad_service = missing_service.replace("version=", r#"service="WMS" version="#);
        assert_eq!(
            err(&bad_service),
            code_loc(InvalidParameterValue, "service")
        );
        let no_version = format!(
            r#"<wps:DescribeProcess service="WPS" {NS}><ows:Identifier>a</ows:Identifier></wps:DescribeProcess>"#
        );
        assert_eq!(err(&no_version), code_loc(MissingParameterValue, "version"));
        let old_version = no_version.replace("service=", r#"version="0.4.0" service="#);
        assert_eq!(
            err(&old_version),
            code_loc(InvalidParameterValue, "version")
        );
        let no_ids = format!(r#"<wps:DescribeProcess service="WPS" version="1.0.0" {NS}/>"#);
        assert_eq!(err(&no_ids), code_loc(MissingParameterValue, "identifier"));
        let exec_no_id = format!(r#"<wps:Execute service="WPS" version="1.0.0" {NS}/>"#);
        assert_eq!(
            err(&exec_no_id),
            code_loc(MissingParameterValue, "identifier")
        );
        let input_no_id = exec_with("<wps:DataInputs><wps:Input><wps:Data><wps:LiteralData>1</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs>");
        assert_eq!(
            err(&input_no_id),
            code_loc(MissingParameterValue, "identifier")
        );
        let bad_flag = exec_with(
            r#"<wps:ResponseForm><wps:ResponseDocument status="yes"/></wps:ResponseForm>"#,
        );
        assert_eq!(err(&bad_flag), code_loc(InvalidParameterValue, "status"));
        let sandwich = format!(r#"<wps:GetMeASandwich service="WPS" {NS}/>"#);
        assert_eq!(
            err(&sandwich),
            code_loc(OperationNotSupported, "GetMeASandwich")
        );
        let foreign = r#"<Execute xmlns="urn:other" service="WPS" version="1.0.0"/>"#;
        assert_eq!(err(foreign), code_loc(OperationNotSupported, "Execute"));
    }

    #[test]
    fn robustness_errors() {
        use ExceptionCode::*;
        let e = parse(b"  \n").unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_deref(), e.text.as_str()),
            (MissingParameterValue, Some("request"), "empty request body")
        );
        let doctype =
            format!(r#"<!DOCTYPE x [<!ENTITY a "b">]><wps:GetCapabilities service="WPS" {NS}/>"#);
        let e = parse(doctype.as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_deref()),
            (InvalidParameterValue, Some("request"))
        );
        assert!(e.text.contains("DOCTYPE"));
        let entity = exec_with("<wps:DataInputs><wps:Input><ows:Identifier>&xxe;</ows:Identifier></wps:Input></wps:DataInputs>");
        assert_eq!(err(&entity), code_loc(InvalidParameterValue, "request"));
        let mismatched = parse(b"<a><b></a>").unwrap_err();
        assert_eq!(mismatched.locator.as_deref(), Some("request"));
        assert!(mismatched.text.contains("at byte"), "{}", mismatched.text);
        assert_eq!(
            err("<a>\u{0}</a"),
            code_loc(InvalidParameterValue, "request")
        );
        let e = parse(b"<a>\xff\xfe</a>").unwrap_err();
        assert!(e.text.contains("UTF-8"));
        let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
        assert!(parse(deep.as_bytes()).unwrap_err().text.contains("deeper"));
        let ok_depth = exec_with(&format!("{}{}", "<x>".repeat(60), "</x>".repeat(60)));
        assert!(parse(ok_depth.as_bytes()).is_ok());
        let many = exec_with(&"<wps:x/>".repeat(MAX_STRUCTURE_ELEMENTS));
        assert!(parse(many.as_bytes())
            .unwrap_err()
            .text
            .contains("WPS elements"));
        let attrs: String = (0..200).map(|i| format!(" a{i}=\"\"")).collect();
        let many_attrs =
            exec_with(&format!("<wps:x{attrs}/>").repeat(MAX_STRUCTURE_ATTRIBUTES / 200 + 1));
        assert!(parse(many_attrs.as_bytes())
            .unwrap_err()
            .text
            .contains("attributes on them"));
        // elements of other namespaces are read, not kept
        let foreign = exec_with(&"<x/>".repeat(MAX_STRUCTURE_ELEMENTS));
        assert!(parse(foreign.as_bytes()).is_ok());
        // deep inline content counts for the depth limit too
        let deep_inline = exec_with(&format!(
            "<wps:DataInputs><wps:Input><ows:Identifier>g</ows:Identifier><wps:Data><wps:ComplexData>{}{}</wps:ComplexData></wps:Data></wps:Input></wps:DataInputs>",
            "<x>".repeat(60),
            "</x>".repeat(60)
        ));
        assert!(parse(deep_inline.as_bytes())
            .unwrap_err()
            .text
            .contains("deeper"));
        let dup = exec_with(r#"<x a="1" b="2" a="3"/>"#);
        assert!(parse(dup.as_bytes())
            .unwrap_err()
            .text
            .contains("duplicate attribute 'a'"));
        let attrs: String = (0..257).map(|i| format!(" a{i}=\"v\"")).collect();
        let wide = exec_with(&format!("<x{attrs}/>"));
        assert!(parse(wide.as_bytes())
            .unwrap_err()
            .text
            .contains("attributes"));
        assert!(parse(format!("{EX10}<second/>").as_bytes()).is_err());
    }

    fn inline_input(content: &str) -> String {
        exec_with(&format!(
            r#"<wps:DataInputs><wps:Input><ows:Identifier>layer</ows:Identifier><wps:Data><wps:ComplexData mimeType="application/gml+xml">{content}</wps:ComplexData></wps:Data></wps:Input></wps:DataInputs>"#
        ))
    }

    /// Real data is not refused for its number of elements: inline content is checked but not
    /// kept as a tree, so only the body size (maxrequestsize) bounds it.
    #[test]
    fn large_inline_content_is_accepted_verbatim() {
        let features: String = (0..20_000)
            .map(|i| format!(r#"<gml:featureMember><f:r gml:id="r{i}"><f:n>{i}</f:n></f:r></gml:featureMember>"#))
            .collect();
        let gml = format!(
            r#"<gml:FeatureCollection xmlns:gml="http://www.opengis.net/gml" xmlns:f="urn:f">{features}</gml:FeatureCollection>"#
        );
        let e = execute(&inline_input(&gml));
        let InputData::Complex(c) = &e.inputs[0].data else {
            panic!("{:?}", e.inputs[0]);
        };
        assert!(c.is_xml);
        assert_eq!(&*c.content, gml);
    }

    /// Inline content as the body has it is a part of the body, not a copy (also after a
    /// UTF-8 byte order mark); text with references is unescaped into a string of its own;
    /// a body in another encoding is converted once.
    #[test]
    fn inline_content_shares_the_body() {
        let within = |body: &Bytes, s: &str| {
            let (at, end) = (body.as_ptr() as usize, body.as_ptr() as usize + body.len());
            (at..=end).contains(&(s.as_ptr() as usize))
        };
        let content = |body: &Bytes| match super::parse(body).unwrap() {
            Request::Execute(e) => match &e.inputs[0].data {
                InputData::Complex(c) => c.content.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        let gml = r#"<a xmlns="urn:a"><b>1</b></a>"#;
        for bom in ["", "\u{feff}"] {
            let body = Bytes::from(format!("{bom}{}", inline_input(gml)));
            let c = content(&body);
            assert_eq!(&*c, gml);
            assert!(within(&body, &c), "a copy");
            // the content outlives the request's own handle on the body
            drop(body);
            assert_eq!(&*c, gml);
        }
        let body = Bytes::from(inline_input("1 &lt; 2"));
        let c = content(&body);
        assert_eq!(&*c, "1 < 2");
        assert!(!within(&body, &c));
        let latin1 = format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1"?>{}"#,
            inline_input("caf\u{e9}")
        );
        let bytes: Vec<u8> = latin1.chars().map(|ch| ch as u8).collect();
        let body = Bytes::from(bytes);
        let c = content(&body);
        assert_eq!(&*c, "caf\u{e9}");
        assert!(!within(&body, &c));
    }

    /// White space between the tags of inline content is passed over by the reader, but is
    /// part of the content; references after white space are still checked; the structure's
    /// own text after the content is read as before.
    #[test]
    fn white_space_in_inline_content_is_kept_and_references_checked() {
        let gml = "<a xmlns=\"urn:a\">\n  <b>1 &amp; 2</b>\n\t <c/>\n</a>";
        let e = execute(&inline_input(&format!("\n {gml}\n ")));
        let InputData::Complex(c) = &e.inputs[0].data else {
            panic!("{:?}", e.inputs[0]);
        };
        assert_eq!(c.content.trim(), gml);
        for bad in [
            "<a>\n  &bogus;</a>",
            "<a>\n <b/>\n &#0;</a>",
            "<a><b><c>1 &bogus; 2</c></b></a>",
            "<a><b>1</c></b></a>",
        ] {
            let e = parse(inline_input(bad).as_bytes()).unwrap_err();
            assert_eq!(e.code, ExceptionCode::InvalidParameterValue, "{bad}");
        }
    }

    /// Namespaces in XML 1.0: every prefix used must be declared (on the element or an
    /// ancestor); `xml` is always bound.
    #[test]
    fn undeclared_prefixes_are_refused() {
        use ExceptionCode::*;
        // as pywps's own test request (wps and ows never declared)
        let dp = r#"<?xml version="1.0" encoding="UTF-8"?><wps:DescribeProcess language="en" service="WPS" version="1.0.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ows:Identifier>say_hello</ows:Identifier></wps:DescribeProcess>"#;
        let e = parse(dp.as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_deref()),
            (InvalidParameterValue, Some("request"))
        );
        assert!(
            e.text.contains("prefix 'wps' is not declared"),
            "{}",
            e.text
        );
        let leaf = format!(
            r#"<wps:DescribeProcess service="WPS" version="1.0.0" xmlns:wps="{NS_WPS}"><ows:Identifier>a</ows:Identifier></wps:DescribeProcess>"#
        );
        assert!(parse(leaf.as_bytes()).unwrap_err().text.contains("'ows'"));
        let attr = exec_with(r#"<x q:a="1"/>"#);
        assert_eq!(err(&attr), code_loc(InvalidParameterValue, "request"));
        let inline = inline_input("<gml:Point/>");
        assert!(parse(inline.as_bytes()).unwrap_err().text.contains("'gml'"));
        let nested = inline_input(r#"<a xmlns="urn:a"><b><gml:c>1</gml:c></b></a>"#);
        assert!(parse(nested.as_bytes()).unwrap_err().text.contains("'gml'"));
        // a prefix goes out of scope with its element
        let scoped = inline_input(r#"<a xmlns:g="urn:g"><g:b/></a><g:c/>"#);
        assert!(parse(scoped.as_bytes()).unwrap_err().text.contains("'g'"));
        // declared on an ancestor, redeclared, the default namespace, xml:lang: fine
        let ok = inline_input(
            r#"<a xmlns:g="urn:g" xmlns="urn:d"><g:b xmlns:g="urn:h" xml:lang="en"><c xmlns=""/></g:b></a>"#,
        );
        assert!(parse(ok.as_bytes()).is_ok());
        let bad_decl = exec_with(r#"<x xmlns:p=""/>"#);
        assert_eq!(err(&bad_decl), code_loc(InvalidParameterValue, "request"));
    }

    /// A namespace-declaration flood (62 nested elements with 250 declarations each, then
    /// 1100 elements with 250 prefixed attributes; 2.8 MB) is refused at once, and would cost
    /// one lookup per name anyway.
    #[test]
    fn namespace_flood_is_refused() {
        let flood = namespace_flood();
        assert!(flood.len() > 2_000_000 && flood.len() < 3 * 1024 * 1024);
        let e = parse(flood.as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_deref()),
            (ExceptionCode::InvalidParameterValue, Some("request"))
        );
        assert!(
            e.text.contains("namespace declarations in scope"),
            "{}",
            e.text
        );
        // Declarations under the limit and many prefixed attributes: parsed, not refused.
        let decls: String = (0..250)
            .map(|i| format!(r#" xmlns:p{i}="urn:p{i}""#))
            .collect();
        let attrs: String = (0..250).map(|i| format!(r#" p{i}:a="v""#)).collect();
        let wide = inline_input(&format!(
            "<a{decls}>{}</a>",
            format!("<b{attrs}/>").repeat(1100)
        ));
        assert!(parse(wide.as_bytes()).is_ok());
    }

    #[test]
    fn encodings() {
        use ExceptionCode::*;
        let utf8 = EX10.replace("en-CA", "d\u{e9}-CH");
        let expected = parse(utf8.as_bytes()).unwrap();
        let utf16 = |big_endian: bool, bom: bool, decl: &str| {
            let text = utf8.replace("UTF-8", decl);
            let mut b: Vec<u8> = match (bom, big_endian) {
                (false, _) => vec![],
                (true, true) => vec![0xFE, 0xFF],
                (true, false) => vec![0xFF, 0xFE],
            };
            for u in text.encode_utf16() {
                b.extend(match big_endian {
                    true => u.to_be_bytes(),
                    false => u.to_le_bytes(),
                });
            }
            b
        };
        for (be, bom, decl) in [
            (false, true, "UTF-16"),
            (true, true, "UTF-16"),
            (false, true, "utf-16le"),
            (false, false, "UTF-16"),
            (true, false, "UTF-16"),
        ] {
            assert_eq!(
                parse(&utf16(be, bom, decl)).unwrap(),
                expected,
                "{be} {bom} {decl}"
            );
        }
        let bom8 = [b"\xEF\xBB\xBF".as_slice(), utf8.as_bytes()].concat();
        assert_eq!(parse(&bom8).unwrap(), expected);
        // ISO-8859-1 is read as such, not as mojibake
        let latin1: Vec<u8> = utf8
            .replace("UTF-8", "ISO-8859-1")
            .chars()
            .map(|c| c as u8)
            .collect();
        assert_eq!(parse(&latin1).unwrap(), expected);
        // other encodings, contradictions and broken UTF-16: a clear 400
        let cp1252 = utf8.replace("UTF-8", "windows-1252");
        let e = parse(cp1252.as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_deref()),
            (InvalidParameterValue, Some("request"))
        );
        assert!(
            e.text.contains("'windows-1252' is not supported"),
            "{}",
            e.text
        );
        let e = parse(&utf16(false, true, "ISO-8859-1")).unwrap_err();
        assert!(e.text.contains("declares encoding"), "{}", e.text);
        let mut odd = utf16(false, true, "UTF-16");
        odd.push(b'x');
        assert!(parse(&odd).unwrap_err().text.contains("UTF-16"));
        let lone_surrogate = [0xFF, 0xFE, b'<', 0, 0x00, 0xD8, b'/', 0, b'>', 0];
        assert!(parse(&lone_surrogate).unwrap_err().text.contains("UTF-16"));
    }

    /// The fuzz seeds of this parser's new cases behave as their names say.
    #[test]
    fn fuzz_seeds() {
        let e = parse(include_bytes!(
            "../../../fuzz/seeds/xml_request/namespace_flood.xml"
        ))
        .unwrap_err();
        assert!(
            e.text.contains("namespace declarations in scope"),
            "{}",
            e.text
        );
        // read through (every prefix resolved); then refused for its missing identifier
        let e = parse(include_bytes!(
            "../../../fuzz/seeds/xml_request/namespace_many.xml"
        ))
        .unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_deref()),
            (ExceptionCode::MissingParameterValue, Some("identifier"))
        );
        let caps = parse(include_bytes!(
            "../../../fuzz/seeds/xml_request/caps_utf16.xml"
        ));
        assert!(matches!(caps, Ok(Request::GetCapabilities(_))), "{caps:?}");
        let e = parse(include_bytes!(
            "../../../fuzz/seeds/xml_request/unbound_prefix.xml"
        ))
        .unwrap_err();
        assert!(e.text.contains("not declared"), "{}", e.text);
    }

    /// 62 nested elements with 250 namespace declarations each, then 1100 elements with 250
    /// prefixed attributes each (2.8 MB, under the default maxrequestsize): quadratic for a resolver that searches the
    /// declarations in scope. Also `fuzz/seeds/xml_request/namespace_flood.xml`.
    pub(crate) fn namespace_flood() -> String {
        let mut s = format!(r#"<wps:Execute service="WPS" version="1.0.0" {NS}>"#);
        for d in 0..62 {
            s.push_str(&format!("<n{d}"));
            for i in 0..250 {
                s.push_str(&format!(r#" xmlns:p{i}="u:{i}""#));
            }
            s.push('>');
        }
        for _ in 0..1100 {
            s.push_str("<e");
            for i in 0..250 {
                s.push_str(&format!(r#" p{i}:a="""#));
            }
            s.push_str("/>");
        }
        for d in (0..62).rev() {
            s.push_str(&format!("</n{d}>"));
        }
        s.push_str("</wps:Execute>");
        s
    }

    #[test]
    fn never_panics_on_truncated_or_random_input() {
        let full = EX52.as_bytes();
        let last_gt = EX52.rfind('>').unwrap();
        for len in 0..last_gt {
            assert!(
                parse(&full[..len]).is_err(),
                "prefix of length {len} accepted"
            );
        }
        assert!(parse(full).is_ok());
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"<>/=\"' &;:!?[]-abwpsx\n\xc3\xa9\x00";
        for round in 0..2000 {
            let len = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 2 == 0 {
                        r as u8
                    } else {
                        alphabet[(r % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            assert!(parse(&bytes).is_err());
        }
        // Random single-byte corruption of a valid request must not panic.
        for _ in 0..2000 {
            let mut bytes = full.to_vec();
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = next() as u8;
            let _ = parse(&bytes);
        }
    }
}
