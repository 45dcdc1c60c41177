//! WPS 1.0.0 key-value-pair (HTTP GET) request parsing.
//!
//! Parameter names are case-insensitive; for a repeated parameter the first
//! occurrence wins. `DataInputs`, `ResponseDocument` and `RawDataOutput` use the
//! `id=value@attr=val;id2=...` syntax; each piece is %-decoded once more after
//! splitting so that `;`, `@` and `=` can be sent doubly encoded.

use super::request::*;
use crate::front::wps_common::kvp::{
    identifiers, missing_identifier, split_list, version_negotiation_failed, Params,
};
use crate::model::*;

/// Parses a raw (still percent-encoded) URL query string.
pub fn parse(query: &str) -> WpsResult<Request> {
    let params = Params::parse(query);
    let get = |name: &str| params.get(name);
    let request = params.request()?;
    let language = get("language").map(str::to_owned);

    if request.eq_ignore_ascii_case("GetCapabilities") {
        let accept_versions = get("acceptversions")
            .map(split_list)
            .filter(|v| !v.is_empty());
        if let Some(versions) = &accept_versions {
            if !versions.iter().any(|v| v == "1.0.0") {
                return Err(version_negotiation_failed(versions));
            }
        }
        return Ok(Request::GetCapabilities(GetCapabilities {
            accept_versions,
            language,
        }));
    }
    let is_describe = request.eq_ignore_ascii_case("DescribeProcess");
    if !is_describe && !request.eq_ignore_ascii_case("Execute") {
        return Err(WpsError::new(
            ExceptionCode::OperationNotSupported,
            Some(request),
            format!("operation '{request}' is not supported"),
        ));
    }
    check_version(get("version"))?;
    let identifier = get("identifier").unwrap_or("");
    if is_describe {
        return Ok(Request::DescribeProcess(DescribeProcess {
            identifiers: identifiers(identifier)?,
            language,
        }));
    }
    let identifier = identifier.trim();
    if identifier.is_empty() {
        return Err(missing_identifier());
    }
    let inputs = parse_data_inputs(get("datainputs").unwrap_or(""))?;
    let store_execute_response = parse_flag(get("storeexecuteresponse"), "storeExecuteResponse")?;
    let lineage = parse_flag(get("lineage"), "lineage")?;
    let status = parse_flag(get("status"), "status")?;
    let response = match (get("responsedocument"), get("rawdataoutput")) {
        (Some(_), Some(_)) => {
            return Err(WpsError::invalid(
                "ResponseForm",
                "ResponseDocument and RawDataOutput are mutually exclusive",
            ))
        }
        (None, Some(raw)) => {
            let mut outs = parse_outputs(raw, "RawDataOutput")?;
            if outs.len() != 1 {
                return Err(WpsError::invalid(
                    "RawDataOutput",
                    "RawDataOutput must name exactly one output",
                ));
            }
            ResponseForm::Raw(outs.remove(0))
        }
        (doc, None) => ResponseForm::Document(ResponseDocument {
            store_execute_response,
            lineage,
            status,
            outputs: match doc {
                Some(d) => parse_outputs(d, "ResponseDocument")?,
                None => Vec::new(),
            },
        }),
    };
    Ok(Request::Execute(Execute {
        identifier: identifier.to_owned(),
        inputs,
        response,
        language,
    }))
}

/// Checks the mandatory `version` of DescribeProcess / Execute (shared with the XML parser). A
/// GetCapabilities whose `AcceptVersions` lacks 1.0.0 is `VersionNegotiationFailed` instead.
pub(crate) fn check_version(version: Option<&str>) -> WpsResult<()> {
    crate::front::wps_common::kvp::check_version(version, "1.0.0")
}

fn parse_flag(value: Option<&str>, locator: &str) -> WpsResult<bool> {
    match value.map(str::trim) {
        None => Ok(false),
        Some("") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(WpsError::invalid(
            locator,
            format!("{locator} must be 'true' or 'false', not '{v}'"),
        )),
    }
}

/// Decodes `%XX` sequences (invalid ones are kept literally); `+` is left alone.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `head@attr=val...` item: the head and (lowercased name, decoded value) pairs.
type Item<'a> = (&'a str, Vec<(String, String)>);

/// Splits a `;`-separated list (optionally wrapped in `[...]`) into items, each
/// split at `@` into a head and `(lowercased attribute name, decoded value)` pairs.
fn split_items<'a>(s: &'a str, locator: &str) -> WpsResult<Vec<Item<'a>>> {
    let s = s.trim();
    let s = match s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        Some(inner) => inner,
        None => s,
    };
    let mut items = Vec::new();
    for item in s.split(';').filter(|i| !i.trim().is_empty()) {
        let mut parts = item.split('@');
        let head = parts.next().unwrap_or("");
        let mut attrs = Vec::new();
        for part in parts {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                WpsError::invalid(
                    locator,
                    format!("attribute '{part}' has no '=' in {locator}"),
                )
            })?;
            let name = percent_decode(name.trim()).to_ascii_lowercase();
            let name = name.strip_prefix("xlink:").unwrap_or(&name).to_owned();
            attrs.push((name, percent_decode(value)));
        }
        items.push((head, attrs));
    }
    Ok(items)
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Largest `DataInputs` value (after %-decoding of the query), in bytes.
pub const MAX_DATA_INPUTS_LEN: usize = 1024 * 1024;

pub(crate) fn parse_data_inputs(s: &str) -> WpsResult<Vec<Input>> {
    if s.len() > MAX_DATA_INPUTS_LEN {
        return Err(WpsError::new(
            ExceptionCode::FileSizeExceeded,
            Some("DataInputs"),
            format!("DataInputs is longer than {MAX_DATA_INPUTS_LEN} bytes"),
        ));
    }
    let mut inputs = Vec::new();
    for (head, attrs) in split_items(s, "DataInputs")? {
        if inputs.len() >= crate::model::MAX_INPUTS {
            return Err(WpsError::invalid(
                "DataInputs",
                format!("more than {} inputs", crate::model::MAX_INPUTS),
            ));
        }
        let (id, value) = head.split_once('=').ok_or_else(|| {
            WpsError::invalid(
                "DataInputs",
                format!("input '{}' has no '=' (expected id=value)", head.trim()),
            )
        })?;
        let identifier = percent_decode(id.trim());
        if identifier.is_empty() {
            return Err(WpsError::invalid(
                "DataInputs",
                "input with an empty identifier",
            ));
        }
        let value = percent_decode(value);
        let a = |n: &str| attr(&attrs, n);
        let data = if let Some(href) = a("href") {
            InputData::Reference(Reference {
                href,
                method: a("method"),
                mime_type: a("mimetype"),
                encoding: a("encoding"),
                schema: a("schema"),
                ..Reference::default()
            })
        } else if a("mimetype").is_some() || a("encoding").is_some() || a("schema").is_some() {
            InputData::Complex(ComplexValue {
                mime_type: a("mimetype"),
                encoding: a("encoding"),
                schema: a("schema"),
                is_xml: value.trim_start().starts_with('<'),
                content: value.into(),
            })
        } else {
            InputData::Literal(LiteralValue {
                value,
                data_type: a("datatype"),
                uom: a("uom"),
            })
        };
        inputs.push(Input { identifier, data });
    }
    Ok(inputs)
}

pub(crate) fn parse_outputs(s: &str, locator: &str) -> WpsResult<Vec<OutputRequest>> {
    let mut outputs = Vec::new();
    for (head, attrs) in split_items(s, locator)? {
        // Accept both `out@attr=..` and the spec example form `out=@attr=..`.
        let id = head.split_once('=').map_or(head, |(id, _)| id);
        let identifier = percent_decode(id.trim());
        if identifier.is_empty() {
            return Err(WpsError::invalid(
                locator,
                format!("output without identifier in {locator}"),
            ));
        }
        // `transmission=value|reference` is the WPS 2.0 spelling
        let as_reference = match (attr(&attrs, "asreference"), attr(&attrs, "transmission")) {
            (Some(v), _) => parse_flag(Some(&v), locator)?,
            (None, Some(t)) if t.trim().eq_ignore_ascii_case("reference") => true,
            (None, Some(t)) if t.trim().eq_ignore_ascii_case("value") => false,
            (None, Some(t)) => {
                return Err(WpsError::invalid(
                    locator,
                    format!("transmission must be 'value' or 'reference', not '{t}'"),
                ))
            }
            (None, None) => false,
        };
        outputs.push(OutputRequest {
            identifier,
            as_reference,
            mime_type: attr(&attrs, "mimetype"),
            encoding: attr(&attrs, "encoding"),
            schema: attr(&attrs, "schema"),
            uom: attr(&attrs, "uom"),
        });
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> (ExceptionCode, Option<String>) {
        let e = parse(q).unwrap_err();
        (e.code, e.locator)
    }
    fn code_loc(code: ExceptionCode, loc: &str) -> (ExceptionCode, Option<String>) {
        (code, Some(loc.to_owned()))
    }
    fn execute(q: &str) -> Execute {
        match parse(q).unwrap() {
            Request::Execute(e) => e,
            other => panic!("not Execute: {other:?}"),
        }
    }
    const EXEC: &str = "service=WPS&version=1.0.0&request=Execute&identifier=buf";

    #[test]
    fn get_capabilities_case_insensitive() {
        let r = parse("SERVICE=wps&Request=getcapabilities&AcceptVersions=0.4.0,+1.0.0&Language=en-CA&version=9")
            .unwrap();
        assert_eq!(
            r,
            Request::GetCapabilities(GetCapabilities {
                accept_versions: Some(vec!["0.4.0".into(), "1.0.0".into()]),
                language: Some("en-CA".into()),
            })
        );
        let r = parse("service=WPS&request=GetCapabilities").unwrap();
        assert_eq!(r, Request::GetCapabilities(GetCapabilities::default()));
        use ExceptionCode::*;
        assert_eq!(
            err("service=WPS&request=GetCapabilities&acceptversions=2.0.0"),
            (VersionNegotiationFailed, None)
        );
    }

    #[test]
    fn common_errors() {
        use ExceptionCode::*;
        assert_eq!(
            err("request=GetCapabilities"),
            code_loc(MissingParameterValue, "service")
        );
        assert_eq!(
            err("service=WMS&request=GetCapabilities"),
            code_loc(InvalidParameterValue, "service")
        );
        assert_eq!(
            err("service=WPS"),
            code_loc(MissingParameterValue, "request")
        );
        assert_eq!(
            err("service=WPS&request=GetMeASandwich&version=1.0.0"),
            code_loc(OperationNotSupported, "GetMeASandwich")
        );
        assert_eq!(
            err("service=WPS&request=DescribeProcess&identifier=a"),
            code_loc(MissingParameterValue, "version")
        );
        assert_eq!(
            err("service=WPS&request=Execute&version=2.0.0&identifier=a"),
            code_loc(InvalidParameterValue, "version")
        );
        assert_eq!(
            err("service=WPS&request=DescribeProcess&version=1.0.0&identifier=,"),
            code_loc(MissingParameterValue, "identifier")
        );
        assert_eq!(
            err("service=WPS&request=execute&version=1.0.0"),
            code_loc(MissingParameterValue, "identifier")
        );
    }

    #[test]
    fn describe_process_identifiers() {
        let r = parse("Service=WPS&Version=1.0.0&Request=DescribeProcess&Identifier=a,+b,,c&identifier=zzz&language=de")
            .unwrap();
        assert_eq!(
            r,
            Request::DescribeProcess(DescribeProcess {
                identifiers: vec!["a".into(), "b".into(), "c".into()],
                language: Some("de".into()),
            })
        );
    }

    #[test]
    fn data_inputs_with_attributes_and_encoding() {
        let q = format!(
            "{EXEC}&DataInputs=dist%3D400%40uom%3Dfeet%40dataType%3Dxs:double;name=a%253Bb;\
             name=x+y;poly=@xlink:href=http%253A%252F%252Ffoo.bar%252Fa.xml@method=POST;\
             geom=%3Ca%2F%3E@mimeType=text/xml@encoding=UTF-8@schema=http://s;bbox=1,2,3,4"
        );
        let e = execute(&q);
        assert_eq!(e.identifier, "buf");
        let ids: Vec<_> = e.inputs.iter().map(|i| i.identifier.as_str()).collect();
        assert_eq!(ids, ["dist", "name", "name", "poly", "geom", "bbox"]);
        assert_eq!(
            e.inputs[0].data,
            InputData::Literal(LiteralValue {
                value: "400".into(),
                data_type: Some("xs:double".into()),
                uom: Some("feet".into()),
            })
        );
        let lit = |i: usize| match &e.inputs[i].data {
            InputData::Literal(l) => l.value.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(lit(1), "a;b");
        assert_eq!(lit(2), "x y");
        assert_eq!(lit(5), "1,2,3,4");
        assert_eq!(
            e.inputs[3].data,
            InputData::Reference(Reference {
                href: "http://foo.bar/a.xml".into(),
                method: Some("POST".into()),
                ..Reference::default()
            })
        );
        assert_eq!(
            e.inputs[4].data,
            InputData::Complex(ComplexValue {
                mime_type: Some("text/xml".into()),
                encoding: Some("UTF-8".into()),
                schema: Some("http://s".into()),
                content: "<a/>".into(),
                is_xml: true,
            })
        );
        assert_eq!(e.response, ResponseForm::default());
    }

    #[test]
    fn data_inputs_edge_cases() {
        assert!(execute(&format!("{EXEC}&DataInputs=")).inputs.is_empty());
        // Spec example syntax with brackets.
        let e = execute(&format!("{EXEC}&DataInputs=[a=1;b=2@UOM=m;]"));
        assert_eq!(e.inputs.len(), 2);
        assert_eq!(
            e.inputs[1].data,
            InputData::Literal(LiteralValue {
                value: "2".into(),
                uom: Some("m".into()),
                ..Default::default()
            })
        );
        use ExceptionCode::*;
        assert_eq!(
            err(&format!("{EXEC}&DataInputs=a=1;novalue")),
            code_loc(InvalidParameterValue, "DataInputs")
        );
    }

    #[test]
    fn response_forms() {
        let e = execute(&format!(
            "{EXEC}&ResponseDocument=out1@asReference=true@mimeType=x;out2&StoreExecuteResponse=TRUE&status&lineage=false"
        ));
        assert_eq!(
            e.response,
            ResponseForm::Document(ResponseDocument {
                store_execute_response: true,
                lineage: false,
                status: true,
                outputs: vec![
                    OutputRequest {
                        identifier: "out1".into(),
                        as_reference: true,
                        mime_type: Some("x".into()),
                        ..Default::default()
                    },
                    OutputRequest {
                        identifier: "out2".into(),
                        ..Default::default()
                    },
                ],
            })
        );
        let e = execute(&format!("{EXEC}&status=true"));
        assert_eq!(
            e.response,
            ResponseForm::Document(ResponseDocument {
                status: true,
                ..Default::default()
            })
        );
        let e = execute(&format!("{EXEC}&RawDataOutput=out@mimeType=image/png"));
        assert_eq!(
            e.response,
            ResponseForm::Raw(OutputRequest {
                identifier: "out".into(),
                mime_type: Some("image/png".into()),
                ..Default::default()
            })
        );
        let e = execute(&format!(
            "{EXEC}&ResponseDocument=[BufferedPolygon=@asReference=true]"
        ));
        match e.response {
            ResponseForm::Document(d) => {
                assert_eq!(d.outputs[0].identifier, "BufferedPolygon");
                assert!(d.outputs[0].as_reference);
            }
            other => panic!("{other:?}"),
        }
        use ExceptionCode::*;
        assert_eq!(
            err(&format!("{EXEC}&RawDataOutput=a;b")),
            code_loc(InvalidParameterValue, "RawDataOutput")
        );
        assert_eq!(
            err(&format!("{EXEC}&RawDataOutput=a&ResponseDocument=b")),
            code_loc(InvalidParameterValue, "ResponseForm")
        );
        for flag in ["storeExecuteResponse", "lineage", "status"] {
            assert_eq!(
                err(&format!("{EXEC}&{flag}=yes")),
                code_loc(InvalidParameterValue, flag)
            );
        }
    }

    #[test]
    fn kvp_bbox() {
        let b = parse_kvp_bbox("46,102,47,103,urn:ogc:def:crs:EPSG:6.6:4326,2").unwrap();
        assert_eq!(b.lower, [46.0, 102.0]);
        assert_eq!(b.upper, [47.0, 103.0]);
        assert_eq!(b.crs.as_deref(), Some("urn:ogc:def:crs:EPSG:6.6:4326"));
        assert_eq!(b.dimensions, Some(2));
        let b = parse_kvp_bbox("1,2,3,4").unwrap();
        assert_eq!(
            (b.lower, b.upper, b.crs, b.dimensions),
            (vec![1.0, 2.0], vec![3.0, 4.0], None, None)
        );
        let b = parse_kvp_bbox(" 1, 2 ,3,4,EPSG:3035").unwrap();
        assert_eq!(b.crs.as_deref(), Some("EPSG:3035"));
        let b = parse_kvp_bbox("0,0,0,1,1,1,crs,3").unwrap();
        assert_eq!(b.upper, [1.0, 1.0, 1.0]);
        for bad in [
            "a,b,c,d",
            "1,2,3",
            "1,2,3,4,5",
            "3,4,1,2",
            "1,2,3,4,crs,x",
            "1,2,3,4,crs,3",
            "1,2,3,4,",
            "1,2,3,4,crs,2,extra",
            "1,2,inf,4",
            "",
        ] {
            let e = parse_kvp_bbox(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse_kvp_bbox("3,4,1,2").unwrap_err().contains("greater"));
        assert!(parse_kvp_bbox("1,x,3,4")
            .unwrap_err()
            .contains("'x' is not a number"));
    }
}
