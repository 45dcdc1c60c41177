//! WPS 1.0.0 response documents: Capabilities, ProcessDescriptions, ExecuteResponse and
//! ows:ExceptionReport. Every document written here validates against the official schemas
//! (checked by the integration tests with `wps-validate`).

use super::xml::{Xml, NS_OWS, NS_WPS, NS_XLINK, NS_XSI};
use crate::config::service::Metadata;
use crate::front::wps_common::ows;
use crate::model::{BoundingBox, Input, InputData, OutputRequest, WpsError};
use crate::model::{DataSpec, InputSpec, LiteralSpec, OutputSpec, OutputValue, ProcessDescription};

const WPS_NS_ATTRS: [(&str, &str); 4] = [
    ("xmlns:wps", NS_WPS),
    ("xmlns:ows", NS_OWS),
    ("xmlns:xlink", NS_XLINK),
    ("xmlns:xsi", NS_XSI),
];

fn root_attrs<'a>(schema: &'a str, lang: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut a = WPS_NS_ATTRS.to_vec();
    a.push(("xsi:schemaLocation", schema));
    a.push(("service", "WPS"));
    a.push(("version", "1.0.0"));
    a.push(("xml:lang", lang));
    a
}

/// `ows:ExceptionReport` for an error.
pub fn exception_report(err: &WpsError, lang: &str) -> String {
    ows::exception_report(
        NS_OWS,
        "http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd",
        "1.0.0",
        err.code.wps1().as_str(),
        err,
        lang,
    )
}

/// GetCapabilities response.
pub fn capabilities(
    meta: &Metadata,
    url: &str,
    languages: &[String],
    lang: &str,
    processes: &[&ProcessDescription],
) -> String {
    let mut x = Xml::new();
    x.open(
        "wps:Capabilities",
        &root_attrs(
            "http://www.opengis.net/wps/1.0.0 http://schemas.opengis.net/wps/1.0.0/wpsGetCapabilities_response.xsd",
            lang,
        ),
    );
    ows::service_identification(&mut x, meta, "1.0.0");
    ows::service_provider(&mut x, meta);
    ows::operations_metadata(
        &mut x,
        url,
        &["GetCapabilities", "DescribeProcess", "Execute"],
    );

    x.open("wps:ProcessOfferings", &[]);
    for p in processes {
        x.open("wps:Process", &[("wps:processVersion", &p.version)])
            .leaf("ows:Identifier", &[], &p.identifier)
            .leaf("ows:Title", &[], &p.title)
            .opt_leaf("ows:Abstract", &p.abstract_)
            .close("wps:Process");
    }
    x.close("wps:ProcessOfferings");

    x.open("wps:Languages", &[])
        .open("wps:Default", &[])
        .leaf("ows:Language", &[], &languages[0])
        .close("wps:Default")
        .open("wps:Supported", &[]);
    for l in languages {
        x.leaf("ows:Language", &[], l);
    }
    x.close("wps:Supported")
        .close("wps:Languages")
        .close("wps:Capabilities");
    x.finish()
}

/// DescribeProcess response.
pub fn process_descriptions(lang: &str, processes: &[&ProcessDescription]) -> String {
    let mut x = Xml::new();
    x.open(
        "wps:ProcessDescriptions",
        &root_attrs(
            "http://www.opengis.net/wps/1.0.0 http://schemas.opengis.net/wps/1.0.0/wpsDescribeProcess_response.xsd",
            lang,
        ),
    );
    for p in processes {
        x.open(
            "ProcessDescription",
            &[
                ("wps:processVersion", &p.version),
                ("storeSupported", bool_str(p.store_supported)),
                ("statusSupported", bool_str(p.status_supported)),
            ],
        )
        .leaf("ows:Identifier", &[], &p.identifier)
        .leaf("ows:Title", &[], &p.title)
        .opt_leaf("ows:Abstract", &p.abstract_);
        if !p.inputs.is_empty() {
            x.open("DataInputs", &[]);
            for i in &p.inputs {
                describe_input(&mut x, i);
            }
            x.close("DataInputs");
        }
        x.open("ProcessOutputs", &[]);
        for o in &p.outputs {
            describe_output(&mut x, o);
        }
        x.close("ProcessOutputs").close("ProcessDescription");
    }
    x.close("wps:ProcessDescriptions");
    x.finish()
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn describe_input(x: &mut Xml, i: &InputSpec) {
    let (min, max) = (i.min_occurs.to_string(), i.max_occurs.to_string());
    x.open("Input", &[("minOccurs", &min), ("maxOccurs", &max)])
        .leaf("ows:Identifier", &[], &i.identifier)
        .leaf("ows:Title", &[], &i.title)
        .opt_leaf("ows:Abstract", &i.abstract_);
    match &i.data {
        DataSpec::Literal(l) => {
            x.open("LiteralData", &[]);
            data_type(x, l);
            uoms(x, l);
            ows::allowed_values(x, &l.allowed);
            if let Some(d) = &l.default {
                x.leaf("DefaultValue", &[], d);
            }
            x.close("LiteralData");
        }
        DataSpec::Complex {
            formats,
            maximum_megabytes,
        } => {
            let mb = maximum_megabytes.map(|m| m.to_string());
            let attrs: Vec<(&str, &str)> = mb
                .as_deref()
                .map(|m| vec![("maximumMegabytes", m)])
                .unwrap_or_default();
            x.open("ComplexData", &attrs);
            formats_body(x, formats);
            x.close("ComplexData");
        }
        DataSpec::BoundingBox { crss, .. } => {
            x.open("BoundingBoxData", &[]);
            crss_body(x, crss);
            x.close("BoundingBoxData");
        }
    }
    x.close("Input");
}

fn describe_output(x: &mut Xml, o: &OutputSpec) {
    x.open("Output", &[])
        .leaf("ows:Identifier", &[], &o.identifier)
        .leaf("ows:Title", &[], &o.title)
        .opt_leaf("ows:Abstract", &o.abstract_);
    match &o.data {
        DataSpec::Literal(l) => {
            x.open("LiteralOutput", &[]);
            data_type(x, l);
            uoms(x, l);
            x.close("LiteralOutput");
        }
        DataSpec::Complex { formats, .. } => {
            x.open("ComplexOutput", &[]);
            formats_body(x, formats);
            x.close("ComplexOutput");
        }
        DataSpec::BoundingBox { crss, .. } => {
            x.open("BoundingBoxOutput", &[]);
            crss_body(x, crss);
            x.close("BoundingBoxOutput");
        }
    }
    x.close("Output");
}

fn data_type(x: &mut Xml, l: &LiteralSpec) {
    x.leaf(
        "ows:DataType",
        &[("ows:reference", &l.data_type.reference())],
        l.data_type.name(),
    );
}

fn uoms(x: &mut Xml, l: &LiteralSpec) {
    if let Some(u) = &l.uom {
        x.open("UOMs", &[])
            .open("Default", &[])
            .leaf("ows:UOM", &[], u)
            .close("Default")
            .open("Supported", &[])
            .leaf("ows:UOM", &[], u)
            .close("Supported")
            .close("UOMs");
    }
}

fn formats_body(x: &mut Xml, formats: &[crate::model::Format]) {
    let one = |x: &mut Xml, f: &crate::model::Format| {
        x.open("Format", &[]).leaf("MimeType", &[], &f.mime_type);
        if let Some(e) = &f.encoding {
            x.leaf("Encoding", &[], e);
        }
        if let Some(s) = &f.schema {
            x.leaf("Schema", &[], s);
        }
        x.close("Format");
    };
    x.open("Default", &[]);
    one(x, &formats[0]);
    x.close("Default").open("Supported", &[]);
    for f in formats {
        one(x, f);
    }
    x.close("Supported");
}

fn crss_body(x: &mut Xml, crss: &[String]) {
    x.open("Default", &[])
        .leaf("CRS", &[], &crss[0])
        .close("Default")
        .open("Supported", &[]);
    for c in crss {
        x.leaf("CRS", &[], c);
    }
    x.close("Supported");
}

/// The state an ExecuteResponse reports.
pub enum Status<'a> {
    Accepted(&'a str),
    Started { percent: u32, message: &'a str },
    Succeeded(&'a str),
    Failed(&'a WpsError),
}

/// One output as it appears in an ExecuteResponse.
pub struct OutputEntry<'a> {
    pub spec: &'a OutputSpec,
    pub value: &'a OutputValue,
    /// The `wps:Reference` URL when the output is stored (asReference).
    pub reference: Option<&'a str>,
    /// The client asked `encoding="base64"` for this (complex) output: its data is written
    /// base64-encoded, whatever it contains (a stored output was encoded when stored).
    pub base64: bool,
}

/// Lineage: the inputs and output definitions as requested.
pub struct Lineage<'a> {
    pub inputs: &'a [Input],
    pub outputs: &'a [OutputRequest],
}

/// The ExecuteResponse document.
pub struct ExecuteDoc<'a> {
    pub lang: &'a str,
    pub service_instance: &'a str,
    pub status_location: Option<&'a str>,
    pub process: &'a ProcessDescription,
    pub creation_time: &'a str,
    pub status: Status<'a>,
    pub lineage: Option<Lineage<'a>>,
    pub outputs: &'a [OutputEntry<'a>],
}

pub fn execute_response(d: &ExecuteDoc) -> String {
    let mut x = Xml::new();
    let mut attrs = root_attrs(
        "http://www.opengis.net/wps/1.0.0 http://schemas.opengis.net/wps/1.0.0/wpsExecute_response.xsd",
        d.lang,
    );
    attrs.push(("serviceInstance", d.service_instance));
    if let Some(s) = d.status_location {
        attrs.push(("statusLocation", s));
    }
    x.open("wps:ExecuteResponse", &attrs);
    x.open("wps:Process", &[("wps:processVersion", &d.process.version)])
        .leaf("ows:Identifier", &[], &d.process.identifier)
        .leaf("ows:Title", &[], &d.process.title)
        .opt_leaf("ows:Abstract", &d.process.abstract_)
        .close("wps:Process");
    x.open("wps:Status", &[("creationTime", d.creation_time)]);
    match &d.status {
        Status::Accepted(m) => {
            x.leaf("wps:ProcessAccepted", &[], m);
        }
        Status::Started { percent, message } => {
            x.leaf(
                "wps:ProcessStarted",
                &[("percentCompleted", &percent.min(&100).to_string())],
                message,
            );
        }
        Status::Succeeded(m) => {
            x.leaf("wps:ProcessSucceeded", &[], m);
        }
        Status::Failed(e) => {
            x.open("wps:ProcessFailed", &[])
                .open("ows:ExceptionReport", &[("version", "1.0.0")]);
            ows::exception(&mut x, e.code.wps1().as_str(), e);
            x.close("ows:ExceptionReport").close("wps:ProcessFailed");
        }
    }
    x.close("wps:Status");
    if let Some(l) = &d.lineage {
        if !l.inputs.is_empty() {
            x.open("wps:DataInputs", &[]);
            for i in l.inputs {
                lineage_input(&mut x, i);
            }
            x.close("wps:DataInputs");
        }
        if !l.outputs.is_empty() {
            x.open("wps:OutputDefinitions", &[]);
            for o in l.outputs {
                let mut a = vec![("asReference", bool_str(o.as_reference))];
                push_opt(&mut a, "mimeType", &o.mime_type);
                push_opt(&mut a, "encoding", &o.encoding);
                push_opt(&mut a, "schema", &o.schema);
                push_opt(&mut a, "uom", &o.uom);
                x.open("wps:Output", &a)
                    .leaf("ows:Identifier", &[], &o.identifier)
                    .close("wps:Output");
            }
            x.close("wps:OutputDefinitions");
        }
    }
    if !d.outputs.is_empty() {
        x.open("wps:ProcessOutputs", &[]);
        for o in d.outputs {
            output_entry(&mut x, o);
        }
        x.close("wps:ProcessOutputs");
    }
    x.close("wps:ExecuteResponse");
    x.finish()
}

fn push_opt<'a>(a: &mut Vec<(&'a str, &'a str)>, k: &'a str, v: &'a Option<String>) {
    if let Some(v) = v {
        a.push((k, v.as_str()));
    }
}

fn bbox(x: &mut Xml, el: &str, b: &BoundingBox) {
    bbox_with(x, el, &[], b);
}

/// A bounding box as a standalone `ows:BoundingBox` document (RawDataOutput, stored output).
pub fn bounding_box_document(b: &BoundingBox) -> String {
    crate::model::format::bounding_box_xml(b)
}

fn bbox_with(x: &mut Xml, el: &str, extra: &[(&str, &str)], b: &BoundingBox) {
    let dims = b.dimensions.unwrap_or(b.lower.len() as u32).to_string();
    let mut a = extra.to_vec();
    if let Some(c) = &b.crs {
        a.push(("crs", c.as_str()));
    }
    a.push(("dimensions", dims.as_str()));
    let join = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(" ");
    x.open(el, &a)
        .leaf("ows:LowerCorner", &[], &join(&b.lower))
        .leaf("ows:UpperCorner", &[], &join(&b.upper))
        .close(el);
}

fn lineage_input(x: &mut Xml, i: &Input) {
    x.open("wps:Input", &[])
        .leaf("ows:Identifier", &[], &i.identifier);
    match &i.data {
        InputData::Literal(l) => {
            let mut a = vec![];
            push_opt(&mut a, "dataType", &l.data_type);
            push_opt(&mut a, "uom", &l.uom);
            x.open("wps:Data", &[])
                .leaf("wps:LiteralData", &a, &l.value)
                .close("wps:Data");
        }
        InputData::BoundingBox(b) => {
            x.open("wps:Data", &[]);
            bbox(x, "wps:BoundingBoxData", b);
            x.close("wps:Data");
        }
        InputData::Complex(c) => {
            let mut a = vec![];
            push_opt(&mut a, "mimeType", &c.mime_type);
            push_opt(&mut a, "encoding", &c.encoding);
            push_opt(&mut a, "schema", &c.schema);
            x.open("wps:Data", &[]).open("wps:ComplexData", &a);
            x.cdata(&c.content);
            x.close("wps:ComplexData").close("wps:Data");
        }
        InputData::Reference(r) => {
            let mut a = vec![("xlink:href", r.href.as_str())];
            push_opt(&mut a, "method", &r.method);
            push_opt(&mut a, "mimeType", &r.mime_type);
            push_opt(&mut a, "encoding", &r.encoding);
            push_opt(&mut a, "schema", &r.schema);
            x.empty("wps:Reference", &a);
        }
    }
    x.close("wps:Input");
}

fn output_entry(x: &mut Xml, o: &OutputEntry) {
    x.open("wps:Output", &[])
        .leaf("ows:Identifier", &[], &o.spec.identifier)
        .leaf("ows:Title", &[], &o.spec.title)
        .opt_leaf("ows:Abstract", &o.spec.abstract_);
    if let Some(href) = o.reference {
        let mut a = vec![("href", href), ("mimeType", ows::reference_mime(o.value))];
        if o.base64 {
            a.push(("encoding", "base64"));
        }
        x.empty("wps:Reference", &a);
    } else {
        x.open("wps:Data", &[]);
        match o.value {
            OutputValue::Literal(v) => {
                let mut a = vec![];
                if let DataSpec::Literal(l) = &o.spec.data {
                    a.push(("dataType", l.data_type.name()));
                    if let Some(u) = &l.uom {
                        a.push(("uom", u.as_str()));
                    }
                }
                x.leaf("wps:LiteralData", &a, v);
            }
            OutputValue::BoundingBox(b) => bbox(x, "wps:BoundingBoxData", b),
            OutputValue::Complex { mime_type, data } => {
                ows::complex_data(x, "wps:ComplexData", mime_type, data, o.base64)
            }
        }
        x.close("wps:Data");
    }
    x.close("wps:Output");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ExceptionCode, LiteralValue};
    use crate::model::{Format, LiteralType};

    /// Validates with ../shared/bin/wps-validate (the official schemas, offline).
    pub(crate) fn assert_valid(doc: &str) {
        let v = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bin/wps-validate");
        let f = std::env::temp_dir().join(format!(
            "mod_wps-unit-{}-{:?}.xml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&f, doc).unwrap();
        let out = std::process::Command::new(&v).arg(&f).output().unwrap();
        let _ = std::fs::remove_file(&f);
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && t.trim_end().ends_with("validates"),
            "{t}\n{doc}"
        );
    }

    fn process() -> ProcessDescription {
        ProcessDescription {
            identifier: "p".into(),
            title: "P".into(),
            abstract_: String::new(),
            version: "1".into(),
            inputs: vec![],
            outputs: vec![
                OutputSpec {
                    identifier: "gml".into(),
                    title: "GML".into(),
                    abstract_: String::new(),
                    data: DataSpec::Complex {
                        formats: vec![Format::mime("application/gml+xml")],
                        maximum_megabytes: None,
                    },
                },
                OutputSpec {
                    identifier: "bin".into(),
                    title: "Binary".into(),
                    abstract_: String::new(),
                    data: DataSpec::Complex {
                        formats: vec![Format::mime("image/png")],
                        maximum_megabytes: None,
                    },
                },
                crate::processes::literal_output("n", "N", LiteralType::Integer),
            ],
            store_supported: true,
            status_supported: true,
        }
    }

    #[test]
    fn execute_responses_in_every_state_validate() {
        let p = process();
        let gml = OutputValue::Complex {
            mime_type: "application/gml+xml".into(),
            data: b"<?xml version=\"1.0\"?><gml:Point xmlns:gml=\"http://www.opengis.net/gml\"><gml:pos>1 2</gml:pos></gml:Point>".to_vec(),
        };
        let bin = OutputValue::Complex {
            mime_type: "image/png".into(),
            data: vec![0x89, 0x50, 0xff, 0x00],
        };
        let n = OutputValue::Literal("7".into());
        let entries = [
            OutputEntry {
                spec: &p.outputs[0],
                value: &gml,
                reference: None,
                base64: false,
            },
            OutputEntry {
                spec: &p.outputs[1],
                value: &bin,
                reference: None,
                base64: false,
            },
            OutputEntry {
                spec: &p.outputs[2],
                value: &n,
                reference: Some("http://h/outputs/n.txt"),
                base64: false,
            },
        ];
        let inputs = [Input {
            identifier: "x".into(),
            data: InputData::Literal(LiteralValue {
                value: "1".into(),
                ..Default::default()
            }),
        }];
        let err = WpsError::new(ExceptionCode::NoApplicableCode, None, "it broke");
        for status in [
            Status::Accepted("queued"),
            Status::Started {
                percent: 40,
                message: "working",
            },
            Status::Succeeded("done"),
            Status::Failed(&err),
        ] {
            let doc = ExecuteDoc {
                lang: "en-US",
                service_instance: "http://h/wps?service=WPS&request=GetCapabilities",
                status_location: Some("http://h/wps/outputs/1.xml"),
                process: &p,
                creation_time: "2026-01-01T00:00:00Z",
                status,
                lineage: Some(Lineage {
                    inputs: &inputs,
                    outputs: &[],
                }),
                outputs: &entries,
            };
            let x = execute_response(&doc);
            assert_valid(&x);
            assert!(
                x.contains("<gml:pos>1 2</gml:pos>"),
                "XML output embedded as XML"
            );
            assert!(x.contains("encoding=\"base64\">iVD/AA==<"), "{x}");
            assert!(x.contains("<wps:Reference href=\"http://h/outputs/n.txt\""));
        }
    }

    #[test]
    fn base64_asked_for_a_complex_output_is_base64() {
        let p = process();
        let gml = OutputValue::Complex {
            mime_type: "application/gml+xml".into(),
            data: b"<gml:Point xmlns:gml=\"http://www.opengis.net/gml\"><gml:pos>1 2</gml:pos></gml:Point>".to_vec(),
        };
        let OutputValue::Complex { data, .. } = &gml else {
            unreachable!()
        };
        let entries = [
            OutputEntry {
                spec: &p.outputs[0],
                value: &gml,
                reference: None,
                base64: true,
            },
            OutputEntry {
                spec: &p.outputs[0],
                value: &gml,
                reference: Some("http://h/outputs/1/gml.gml"),
                base64: true,
            },
        ];
        let doc = ExecuteDoc {
            lang: "en-US",
            service_instance: "http://h/wps?service=WPS&request=GetCapabilities",
            status_location: None,
            process: &p,
            creation_time: "2026-01-01T00:00:00Z",
            status: Status::Succeeded("done"),
            lineage: None,
            outputs: &entries,
        };
        let x = execute_response(&doc);
        assert_valid(&x);
        let b64 = crate::model::format::encode_base64(data);
        assert!(
            x.contains(&format!(
                "<wps:ComplexData mimeType=\"application/gml+xml\" encoding=\"base64\">{b64}</wps:ComplexData>"
            )),
            "{x}"
        );
        assert!(!x.contains("<gml:pos>"), "{x}");
        assert!(
            x.contains("mimeType=\"application/gml+xml\" encoding=\"base64\"/>"),
            "{x}"
        );
    }

    #[test]
    fn exception_report_validates() {
        let e = WpsError::invalid("a&b", "bad <value>");
        let x = exception_report(&e, "en-US");
        assert!(x.contains("locator=\"a&amp;b\""));
        assert_valid(&x);
    }
}
