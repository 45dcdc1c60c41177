//! WPS 2.0.0 documents: Capabilities (OWS 2.0), ProcessOfferings, StatusInfo, Result and the
//! OWS 2.0 `ows:ExceptionReport`. Every document written here validates against the official
//! schemas (`wps-validate`; the unit tests and the integration tests check each one).

use super::request::OPERATIONS;
use crate::config::service::Metadata;
use crate::front::wps_common::ows;
use crate::front::xml::{Xml, NS_XLINK, NS_XSI};
use crate::model::{
    BoundingBox, DataSpec, ExceptionCode, Format, LiteralSpec, OutputValue, ProcessDescription,
    WpsError,
};

pub const NS_WPS: &str = "http://www.opengis.net/wps/2.0";
pub const NS_OWS: &str = "http://www.opengis.net/ows/2.0";
const SCHEMA: &str = "http://www.opengis.net/wps/2.0 http://schemas.opengis.net/wps/2.0/wps.xsd";

/// What every process offers through WPS 2.0.
pub const JOB_CONTROL: &str = "sync-execute async-execute dismiss";
pub const TRANSMISSION: &str = "value reference";

fn root_attrs(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut a = vec![
        ("xmlns:wps", NS_WPS),
        ("xmlns:ows", NS_OWS),
        ("xmlns:xlink", NS_XLINK),
        ("xmlns:xsi", NS_XSI),
        ("xsi:schemaLocation", SCHEMA),
    ];
    a.extend_from_slice(extra);
    a
}

/// The exception code WPS 2.0 names a kind by.
pub fn code_name(code: ExceptionCode) -> &'static str {
    match code {
        ExceptionCode::FileSizeExceeded => "SizeExceeded",
        c => c.as_str(),
    }
}

/// `ows:ExceptionReport` (OWS 2.0).
pub fn exception_report(err: &WpsError, lang: &str) -> String {
    ows::exception_report(
        NS_OWS,
        "http://www.opengis.net/ows/2.0 http://schemas.opengis.net/ows/2.0/owsExceptionReport.xsd",
        "2.0.0",
        code_name(err.code),
        err,
        lang,
    )
}

/// GetCapabilities response.
pub fn capabilities(
    meta: &Metadata,
    url: &str,
    languages: &[String],
    processes: &[&ProcessDescription],
) -> String {
    let mut x = Xml::new();
    x.open(
        "wps:Capabilities",
        &root_attrs(&[("service", "WPS"), ("version", "2.0.0")]),
    );
    ows::service_identification(&mut x, meta, "2.0.0");
    ows::service_provider(&mut x, meta);
    ows::operations_metadata(&mut x, url, &OPERATIONS);
    x.open("ows:Languages", &[]);
    for l in languages {
        x.leaf("ows:Language", &[], l);
    }
    x.close("ows:Languages");

    x.open("wps:Contents", &[]);
    for p in processes {
        let version = ows_version(&p.version);
        x.open("wps:ProcessSummary", &process_attrs(&version))
            .leaf("ows:Title", &[], &p.title)
            .opt_leaf("ows:Abstract", &p.abstract_)
            .leaf("ows:Identifier", &[], &p.identifier)
            .close("wps:ProcessSummary");
    }
    x.close("wps:Contents").close("wps:Capabilities");
    x.finish()
}

/// DescribeProcess response. `max_mb` is the service's `maxsingleinputsize` in megabytes
/// (rounded up), given for complex inputs that state no limit of their own.
pub fn process_offerings(lang: &str, processes: &[&ProcessDescription], max_mb: u64) -> String {
    let mut x = Xml::new();
    x.open("wps:ProcessOfferings", &root_attrs(&[]));
    for p in processes {
        let version = ows_version(&p.version);
        x.open("wps:ProcessOffering", &process_attrs(&version))
            .open("wps:Process", &[("xml:lang", lang)])
            .leaf("ows:Title", &[], &p.title)
            .opt_leaf("ows:Abstract", &p.abstract_)
            .leaf("ows:Identifier", &[], &p.identifier);
        for i in &p.inputs {
            let min = i.min_occurs.to_string();
            let max = i.max_occurs.to_string();
            x.open("wps:Input", &[("minOccurs", &min), ("maxOccurs", &max)])
                .leaf("ows:Title", &[], &i.title)
                .opt_leaf("ows:Abstract", &i.abstract_)
                .leaf("ows:Identifier", &[], &i.identifier);
            data_description(&mut x, &i.data, Some(max_mb));
            x.close("wps:Input");
        }
        for o in &p.outputs {
            x.open("wps:Output", &[])
                .leaf("ows:Title", &[], &o.title)
                .opt_leaf("ows:Abstract", &o.abstract_)
                .leaf("ows:Identifier", &[], &o.identifier);
            data_description(&mut x, &o.data, None);
            x.close("wps:Output");
        }
        x.close("wps:Process").close("wps:ProcessOffering");
    }
    x.close("wps:ProcessOfferings");
    x.finish()
}

/// A process version as OWS 2.0 writes it (`x.y.z`, each of y and z at most two digits):
/// `1.0` becomes `1.0.0`; a version that cannot be written so is left out (it is optional).
pub fn ows_version(v: &str) -> Option<String> {
    let mut parts: Vec<&str> = v.trim().split('.').collect();
    while parts.len() < 3 {
        parts.push("0");
    }
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    (parts.len() == 3 && digits(parts[0], 9) && digits(parts[1], 2) && digits(parts[2], 2))
        .then(|| parts.join("."))
}

fn process_attrs(version: &Option<String>) -> Vec<(&'static str, &str)> {
    let mut a = vec![
        ("jobControlOptions", JOB_CONTROL),
        ("outputTransmission", TRANSMISSION),
    ];
    if let Some(v) = version {
        a.push(("processVersion", v.as_str()));
    }
    a
}

/// `ows:DataType` reference of a literal type (XML Schema).
fn data_type_reference(l: &LiteralSpec) -> String {
    format!("http://www.w3.org/2001/XMLSchema#{}", l.data_type.name())
}

fn format_el(x: &mut Xml, f: &Format, default: bool, mb: Option<&str>) {
    let mut a = vec![("mimeType", f.mime_type.as_str())];
    if let Some(e) = &f.encoding {
        a.push(("encoding", e));
    }
    if let Some(s) = &f.schema {
        a.push(("schema", s));
    }
    if let Some(m) = mb {
        a.push(("maximumMegabytes", m));
    }
    if default {
        a.push(("default", "true"));
    }
    x.empty("wps:Format", &a);
}

fn data_description(x: &mut Xml, data: &DataSpec, max_mb: Option<u64>) {
    match data {
        DataSpec::Literal(l) => {
            x.open("wps:LiteralData", &[]);
            format_el(x, &Format::mime("text/plain"), true, None);
            format_el(x, &Format::mime("text/xml"), false, None);
            x.open("LiteralDataDomain", &[("default", "true")]);
            ows::allowed_values(x, &l.allowed);
            x.leaf(
                "ows:DataType",
                &[("ows:reference", &data_type_reference(l))],
                l.data_type.name(),
            );
            if let Some(u) = &l.uom {
                x.leaf("ows:UOM", &[], u);
            }
            if let Some(d) = &l.default {
                x.leaf("ows:DefaultValue", &[], d);
            }
            // unqualified: dataTypes.xsd has no elementFormDefault
            x.close("LiteralDataDomain").close("wps:LiteralData");
        }
        DataSpec::Complex {
            formats,
            maximum_megabytes,
        } => {
            let mb = max_mb.map(|m| maximum_megabytes.unwrap_or(m).max(1).to_string());
            x.open("wps:ComplexData", &[]);
            for (n, f) in formats.iter().enumerate() {
                format_el(x, f, n == 0, mb.as_deref());
            }
            x.close("wps:ComplexData");
        }
        DataSpec::BoundingBox { crss, .. } => {
            x.open("wps:BoundingBoxData", &[]);
            format_el(x, &Format::mime("text/plain"), true, None);
            format_el(x, &Format::mime("text/xml"), false, None);
            for (n, c) in crss.iter().enumerate() {
                let a: &[(&str, &str)] = if n == 0 { &[("default", "true")] } else { &[] };
                x.leaf("wps:SupportedCRS", a, c);
            }
            x.close("wps:BoundingBoxData");
        }
    }
}

/// What a StatusInfo says.
pub struct StatusInfo<'a> {
    pub job_id: &'a str,
    /// Accepted, Running, Succeeded, Failed, Dismissed.
    pub status: &'a str,
    pub expiration: Option<&'a str>,
    pub next_poll: Option<&'a str>,
    pub percent: Option<u32>,
}

pub fn status_info(s: &StatusInfo) -> String {
    let mut x = Xml::new();
    x.open("wps:StatusInfo", &root_attrs(&[]))
        .leaf("wps:JobID", &[], s.job_id)
        .leaf("wps:Status", &[], s.status);
    if let Some(e) = s.expiration {
        x.leaf("wps:ExpirationDate", &[], e);
    }
    if let Some(n) = s.next_poll {
        x.leaf("wps:NextPoll", &[], n);
    }
    if let Some(p) = s.percent {
        x.leaf("wps:PercentCompleted", &[], &p.min(100).to_string());
    }
    x.close("wps:StatusInfo");
    x.finish()
}

/// One output of a Result: its value, or the URL it is stored at.
pub struct ResultOutput<'a> {
    pub id: &'a str,
    pub value: &'a OutputValue,
    pub href: Option<&'a str>,
    /// The client asked it `encoding="base64"`.
    pub base64: bool,
}

pub fn result(job_id: Option<&str>, expiration: Option<&str>, outputs: &[ResultOutput]) -> String {
    let mut x = Xml::new();
    x.open("wps:Result", &root_attrs(&[]));
    if let Some(j) = job_id {
        x.leaf("wps:JobID", &[], j);
    }
    if let Some(e) = expiration {
        x.leaf("wps:ExpirationDate", &[], e);
    }
    for o in outputs {
        x.open("wps:Output", &[("id", o.id)]);
        if let Some(href) = o.href {
            let mut a = vec![
                ("xlink:href", href),
                ("mimeType", ows::reference_mime(o.value)),
            ];
            if o.base64 {
                a.push(("encoding", "base64"));
            }
            x.empty("wps:Reference", &a);
        } else {
            data(&mut x, o.value, o.base64);
        }
        x.close("wps:Output");
    }
    x.close("wps:Result");
    x.finish()
}

fn bbox(x: &mut Xml, b: &BoundingBox) {
    bbox_with(x, &[], b);
}

/// The XML of a bounding box alone (a raw bounding-box output).
pub fn bounding_box_document(b: &BoundingBox) -> String {
    let mut x = Xml::new();
    bbox_with(&mut x, &[("xmlns:ows", NS_OWS)], b);
    x.finish()
}

/// `ows:BoundingBox` with the attributes `first` before its own.
fn bbox_with(x: &mut Xml, first: &[(&str, &str)], b: &BoundingBox) {
    let dims = b.lower.len().to_string();
    let mut a = first.to_vec();
    a.push(("dimensions", dims.as_str()));
    if let Some(c) = &b.crs {
        a.push(("crs", c));
    }
    let join = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(" ");
    x.open("ows:BoundingBox", &a)
        .leaf("ows:LowerCorner", &[], &join(&b.lower))
        .leaf("ows:UpperCorner", &[], &join(&b.upper))
        .close("ows:BoundingBox");
}

fn data(x: &mut Xml, value: &OutputValue, base64: bool) {
    match value {
        OutputValue::Literal(v) => {
            x.open("wps:Data", &[("mimeType", "text/plain")])
                .leaf("wps:LiteralValue", &[], v)
                .close("wps:Data");
        }
        OutputValue::BoundingBox(b) => {
            x.open("wps:Data", &[("mimeType", "text/xml")]);
            bbox(x, b);
            x.close("wps:Data");
        }
        OutputValue::Complex { mime_type, data } => {
            ows::complex_data(x, "wps:Data", mime_type, data, base64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::wps1::response::tests::assert_valid;

    #[test]
    fn documents_validate() {
        let e = WpsError::new(ExceptionCode::NoSuchJob, Some("JobID"), "no job <x>");
        let r = exception_report(&e, "en-US");
        assert!(r.contains(r#"exceptionCode="NoSuchJob" locator="JobID""#));
        assert_valid(&r);
        assert_eq!(ows_version("1.0").as_deref(), Some("1.0.0"));
        assert_eq!(ows_version("2.10.3").as_deref(), Some("2.10.3"));
        assert_eq!(ows_version("1.0-beta"), None);
        let big = WpsError::new(ExceptionCode::FileSizeExceeded, None, "big");
        assert!(exception_report(&big, "en").contains("SizeExceeded"));

        let echo = crate::processes::builtin("echo").unwrap();
        let sleep = crate::processes::builtin("sleep").unwrap();
        let buffer = crate::processes::builtin("buffer").unwrap();
        let all = [
            echo.description(),
            sleep.description(),
            buffer.description(),
        ];
        let caps = capabilities(
            &Metadata::default(),
            "http://h/wps",
            &["en-US".into()],
            &all,
        );
        assert!(caps.contains(r#"jobControlOptions="sync-execute async-execute dismiss""#));
        assert_valid(&caps);
        let offerings = process_offerings("en-US", &all, 3);
        assert!(offerings.contains(r#"maximumMegabytes="3""#));
        assert!(offerings.contains(">string</ows:DataType>"));
        assert!(offerings.contains("<ows:Range"), "{offerings}");
        assert_valid(&offerings);

        for (status, percent, poll) in [
            ("Accepted", None, Some("2030-01-01T00:00:00Z")),
            ("Running", Some(40), Some("2030-01-01T00:00:00Z")),
            ("Succeeded", Some(100), None),
            ("Dismissed", None, None),
        ] {
            assert_valid(&status_info(&StatusInfo {
                job_id: "j",
                status,
                expiration: Some("2030-01-01T00:00:00Z"),
                next_poll: poll,
                percent,
            }));
        }
        let lit = OutputValue::Literal("a<b".into());
        let xml = OutputValue::Complex {
            mime_type: "text/xml".into(),
            data: b"<?xml version=\"1.0\"?><a xmlns=\"urn:x\"><b/></a>".to_vec(),
        };
        let json = OutputValue::Complex {
            mime_type: "application/json".into(),
            data: b"{\"a\": \"]]>\"}".to_vec(),
        };
        let bin = OutputValue::Complex {
            mime_type: "image/png".into(),
            data: vec![0, 159, 255],
        };
        let bb = OutputValue::BoundingBox(BoundingBox {
            lower: vec![1.0, 2.0],
            upper: vec![3.0, 4.5],
            crs: Some("EPSG:4326".into()),
            dimensions: None,
        });
        let outs = [
            ResultOutput {
                id: "l",
                value: &lit,
                href: None,
                base64: false,
            },
            ResultOutput {
                id: "x",
                value: &xml,
                href: None,
                base64: false,
            },
            ResultOutput {
                id: "j",
                value: &json,
                href: None,
                base64: false,
            },
            ResultOutput {
                id: "p",
                value: &bin,
                href: None,
                base64: false,
            },
            ResultOutput {
                id: "b",
                value: &bb,
                href: None,
                base64: false,
            },
            ResultOutput {
                id: "r",
                value: &json,
                href: Some("http://h/o/j.json"),
                base64: false,
            },
        ];
        let r = result(Some("j"), Some("2030-01-01T00:00:00Z"), &outs);
        assert!(
            r.contains("<wps:LiteralValue>a&lt;b</wps:LiteralValue>"),
            "{r}"
        );
        assert!(r.contains(r#"<a xmlns="urn:x"><b/></a>"#), "{r}");
        assert_valid(&r);
        assert_valid(&result(None, None, &outs[..1]));
    }
}
