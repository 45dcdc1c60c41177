//! WPS 1.0.0 over HTTP against a real Apache (event and prefork MPMs): every operation by KVP
//! and XML POST, every exception case, and schema validation of every document.

mod common;
use common::*;

fn server(name: &str, mpm: Mpm) -> Apache {
    Apache::builder(name)
        .mpm(mpm)
        .pool("pywps threads=2")
        .start()
}

const EXEC_HELLO_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>say_hello</ows:Identifier>
  <wps:DataInputs>
    <wps:Input><ows:Identifier>name</ows:Identifier>
      <wps:Data><wps:LiteralData>World &amp; you</wps:LiteralData></wps:Data></wps:Input>
  </wps:DataInputs>
  <wps:ResponseForm><wps:ResponseDocument lineage="true">
    <wps:Output><ows:Identifier>response</ows:Identifier></wps:Output>
  </wps:ResponseDocument></wps:ResponseForm>
</wps:Execute>"#;

/// Everything a client does in a normal session, checked on one MPM.
fn normal_session(a: &Apache) {
    // GetCapabilities
    let r = a.get("/wps?service=WPS&request=GetCapabilities");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/xml; charset=utf-8"));
    let t = r.text();
    for id in [
        "say_hello",
        "ultimate_question",
        "sleep",
        "boundingbox",
        "testjson",
    ] {
        assert!(
            t.contains(&format!("<ows:Identifier>{id}</ows:Identifier>")),
            "{id}"
        );
    }
    assert!(!t.contains("selftest_panic"));
    assert!(t.contains("<ows:Title>Test WPS</ows:Title>"));
    assert!(t.contains(&format!("xlink:href=\"http://127.0.0.1:{}/wps?\"", a.port)));
    assert_valid(&r.body);

    // DescribeProcess all, and a list
    let r = a.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=all");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text().matches("<ProcessDescription ").count(),
        mod_wps::processes::BUILTIN_IDS.len()
    );
    assert!(r.text().contains("<ows:AnyValue/>"));
    assert_valid(&r.body);
    let r = a.get(
        "/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=say_hello,boundingbox",
    );
    assert_eq!(r.text().matches("<ProcessDescription ").count(), 2);
    assert!(r.text().contains("<CRS>epsg:3035</CRS>"));
    assert_valid(&r.body);

    // Execute by KVP, response document with lineage
    let r = a.get(&format!(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs={}&lineage=true",
        enc("name=Jörg <&>")
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    assert!(t.contains("<wps:ProcessSucceeded>"), "{t}");
    assert!(
        t.contains(">Hello Jörg &lt;&amp;&gt;</wps:LiteralData>"),
        "{t}"
    );
    assert!(t.contains("<wps:DataInputs>"), "lineage missing: {t}");
    assert_valid(&r.body);

    // Execute by XML POST
    let r = a.post("/wps", EXEC_HELLO_XML.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .text()
        .contains(">Hello World &amp; you</wps:LiteralData>"));
    assert!(r.text().contains("<wps:OutputDefinitions>"));
    assert_valid(&r.body);

    // RawDataOutput
    let r = a.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=ultimate_question&RawDataOutput=answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "42");
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));

    // bounding box in and out
    let r = a.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=boundingbox&DataInputs=bboxin=46,102,47,103,epsg:4326,2");
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    assert!(
        t.contains("<ows:LowerCorner>46 102</ows:LowerCorner>"),
        "{t}"
    );
    assert!(
        t.contains("<ows:UpperCorner>47 103</ows:UpperCorner>"),
        "{t}"
    );
    assert_valid(&r.body);

    // complex JSON output, inline and raw
    let r = a.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=Ada",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("mimeType=\"application/json\""));
    assert_valid(&r.body);
    let r = a.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=Ada&RawDataOutput=out");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["greeting"], "Hello Ada");
    // encoding=base64 asked for a complex output: honoured, raw and in the document
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = a.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=Ada&RawDataOutput=out@mimeType=application/json@encoding=base64");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&b64.decode(&r.body).unwrap()).unwrap();
    assert_eq!(v["greeting"], "Hello Ada");
    let r = a.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=Ada&ResponseDocument=out@encoding=base64");
    let t = r.text();
    assert_valid(&r.body);
    let (_, rest) = t
        .split_once("<wps:ComplexData mimeType=\"application/json\" encoding=\"base64\">")
        .unwrap_or_else(|| panic!("no base64 ComplexData: {t}"));
    let data = b64.decode(rest.split('<').next().unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["greeting"], "Hello Ada");
    // ...and stored base64 for asReference
    let r = a.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=Ada&ResponseDocument=out@asReference=true@encoding=base64");
    let t = r.text();
    assert_valid(&r.body);
    assert!(t.contains(" encoding=\"base64\"/>"), "{t}");
    let href = t
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let path = &href[href.find("/wps/").unwrap()..];
    let stored = a.get(path);
    assert_eq!(stored.status, 200, "{href}");
    let v: serde_json::Value = serde_json::from_slice(&b64.decode(&stored.body).unwrap()).unwrap();
    assert_eq!(v["greeting"], "Hello Ada");

    // sleep with progress points completes synchronously
    let r = a.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0.01",
    );
    assert!(
        r.text().contains(">done sleeping</wps:LiteralData>"),
        "{}",
        r.text()
    );
    assert_valid(&r.body);
}

#[test]
fn event_mpm_serves_all_operations() {
    let a = server("event", Mpm::Event);
    normal_session(&a);
}

#[test]
fn prefork_mpm_serves_all_operations() {
    let a = server("prefork", Mpm::Prefork);
    normal_session(&a);
}

#[test]
fn kvp_is_case_insensitive_and_accepts_lowercase_service() {
    let a = server("kvp-case", Mpm::Event);
    let r = a.get("/wps?SERVICE=wps&Request=getcapabilities");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&r.body);
    let r = a.get("/wps?service=wps&VERSION=1.0.0&REQUEST=describeprocess&IDENTIFIER=sleep");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<ows:Identifier>delay</ows:Identifier>"));
    // HEAD gets the headers only
    let r = a.request(
        "HEAD",
        "/wps?service=WPS&request=GetCapabilities",
        None,
        &[],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[test]
fn language_negotiation() {
    let a = server("lang", Mpm::Event);
    let r = a.get("/wps?service=WPS&request=GetCapabilities&language=de-DE");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("xml:lang=\"de-DE\""));
    assert_valid(&r.body);
    a.get("/wps?service=WPS&request=GetCapabilities&language=xx-XX")
        .assert_exception(400, "InvalidParameterValue", Some("language"));
}

#[test]
fn exception_cases() {
    let a = server("exceptions", Mpm::Event);
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        ("/wps?request=GetCapabilities", 400, "MissingParameterValue", Some("service")),
        ("/wps", 400, "MissingParameterValue", Some("service")),
        ("/wps?service=WMS&request=GetCapabilities", 400, "InvalidParameterValue", Some("service")),
        ("/wps?service=WPS", 400, "MissingParameterValue", Some("request")),
        ("/wps?service=WPS&request=GetMeASandwich", 501, "OperationNotSupported", Some("GetMeASandwich")),
        ("/wps?service=WPS&request=GetCapabilities&AcceptVersions=3.0.0", 400, "VersionNegotiationFailed", None),
        ("/wps?service=WPS&version=1.0.0&request=DescribeProcess", 400, "MissingParameterValue", Some("identifier")),
        ("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=nope", 400, "InvalidParameterValue", Some("identifier")),
        ("/wps?service=WPS&request=DescribeProcess&identifier=sleep", 400, "MissingParameterValue", Some("version")),
        ("/wps?service=WPS&version=3.0.0&request=DescribeProcess&identifier=sleep", 400, "InvalidParameterValue", Some("version")),
        ("/wps?service=WPS&version=0.4.0&request=Execute&identifier=say_hello&DataInputs=name=x", 400, "InvalidParameterValue", Some("version")),
        ("/wps?service=WPS&version=1.0.0&request=Execute", 400, "MissingParameterValue", Some("identifier")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=nope", 400, "InvalidParameterValue", Some("identifier")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello", 400, "MissingParameterValue", Some("name")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=a;name=b", 400, "InvalidParameterValue", Some("name")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=nom=a", 400, "InvalidParameterValue", Some("nom")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=soon", 400, "InvalidParameterValue", Some("delay")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=boundingbox&DataInputs=bboxin=1,2,3", 400, "InvalidParameterValue", Some("bboxin")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=boundingbox&DataInputs=bboxin=1,2,3,4,epsg:31467", 400, "InvalidParameterValue", Some("bboxin")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=a&RawDataOutput=nothing", 400, "InvalidParameterValue", Some("nothing")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=a&RawDataOutput=out@mimeType=image/png", 400, "InvalidParameterValue", Some("mimeType")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=a&status=true", 400, "InvalidParameterValue", Some("storeExecuteResponse")),
        ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=a&ResponseDocument=response@asReference=true@mimeType=text/plain;nothing", 400, "InvalidParameterValue", Some("nothing")),
    ];
    for (q, status, code, loc) in cases {
        let r = a.get(q);
        eprintln!("{q} -> {}", r.status);
        r.assert_exception(*status, code, *loc);
    }
}

#[test]
fn bad_posts_get_clean_exception_reports() {
    let a = server("bad-post", Mpm::Event);
    // empty body: an answer, not a hang
    a.post("/wps", b"")
        .assert_exception(400, "MissingParameterValue", Some("request"));
    // malformed XML
    a.post("/wps", b"<wps:Execute service=\"WPS\"")
        .assert_exception(400, "InvalidParameterValue", Some("request"));
    a.post("/wps", b"this is not xml at all").assert_exception(
        400,
        "InvalidParameterValue",
        Some("request"),
    );
    // external entity: refused, file content never shows up
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS">&e;</wps:GetCapabilities>"#;
    let r = a.post("/wps", xxe);
    r.assert_exception(400, "InvalidParameterValue", Some("request"));
    assert!(!r.text().contains("root:"));
    // unknown root element
    a.post(
        "/wps",
        br#"<wps:GetMeASandwich xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS" version="1.0.0"/>"#,
    )
    .assert_exception(501, "OperationNotSupported", Some("GetMeASandwich"));
    // body over maxrequestsize (64kb in the test config)
    let big = vec![b' '; 200 * 1024];
    a.post("/wps", &big)
        .assert_exception(413, "FileSizeExceeded", None);
    // unsupported HTTP method
    let r = a.request("PUT", "/wps", Some(b"x"), &[]);
    assert_eq!(r.status, 405);
    assert!(r.header("Allow").unwrap().contains("POST"));
    assert_valid(&r.body);
    // the server still serves
    let r = a.get("/wps?service=WPS&request=GetCapabilities");
    assert_eq!(r.status, 200);
}

#[test]
fn xml_post_operations_validate() {
    let a = server("xml-ops", Mpm::Event);
    let caps = br#"<?xml version="1.0" encoding="UTF-8"?>
<wps:GetCapabilities xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS" language="en-US">
  <wps:AcceptVersions><ows:Version>1.0.0</ows:Version></wps:AcceptVersions>
</wps:GetCapabilities>"#;
    let r = a.post("/wps", caps);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&r.body);
    let bad = String::from_utf8_lossy(caps).replace(">1.0.0<", ">3.0.0<");
    let r = a.post("/wps", bad.as_bytes());
    r.assert_exception(400, "VersionNegotiationFailed", None);
    // OWS 1.1 Table 25: no locator for VersionNegotiationFailed.
    assert!(!r.text().contains("locator="), "{}", r.text());
    let r = a.get("/wps?service=WPS&request=GetCapabilities&AcceptVersions=3.0.0");
    r.assert_exception(400, "VersionNegotiationFailed", None);
    assert!(!r.text().contains("locator="), "{}", r.text());
    let desc = br#"<wps:DescribeProcess xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS" version="1.0.0">
  <ows:Identifier>sleep</ows:Identifier><ows:Identifier>testjson</ows:Identifier></wps:DescribeProcess>"#;
    let r = a.post("/wps", desc);
    assert_eq!(r.text().matches("<ProcessDescription ").count(), 2);
    assert_valid(&r.body);
    let bbox = br#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>boundingbox</ows:Identifier>
  <wps:DataInputs><wps:Input><ows:Identifier>bboxin</ows:Identifier><wps:Data>
    <wps:BoundingBoxData crs="EPSG:3035" dimensions="2"><ows:LowerCorner>10 20</ows:LowerCorner><ows:UpperCorner>30 40</ows:UpperCorner></wps:BoundingBoxData>
  </wps:Data></wps:Input></wps:DataInputs>
  <wps:ResponseForm><wps:RawDataOutput><ows:Identifier>bboxout</ows:Identifier></wps:RawDataOutput></wps:ResponseForm>
</wps:Execute>"#;
    let r = a.post("/wps", bbox);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("crs=\"EPSG:3035\""), "{}", r.text());
    assert!(r
        .text()
        .contains("<ows:UpperCorner>30 40</ows:UpperCorner>"));
}

/// Inline content using prefixes declared on the request's root (as GeoServer's request
/// builder writes them): the process gets, and the response echoes, XML of its own, in the
/// output and in the lineage's copy of the input; a client can read the response.
#[test]
fn inline_content_gets_the_namespaces_declared_outside_it() {
    let a = server("inline-ns", Mpm::Event);
    let point = r#"<gml:Point xsi:schemaLocation="http://www.opengis.net/gml x.xsd"><gml:pos>1 2</gml:pos></gml:Point>"#;
    let execute = |form: &str| {
        execute_xml("echo", &complex_input("complexInput", "text/xml", point), form).replace(
            "<wps:Execute ",
            r#"<wps:Execute xmlns:gml="http://www.opengis.net/gml" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" "#,
        )
    };
    let declared = r#"<gml:Point xmlns:gml="http://www.opengis.net/gml" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.opengis.net/gml x.xsd"><gml:pos>1 2</gml:pos></gml:Point>"#;
    let r = a.post("/wps", execute(&raw_output("complexOutput")).as_bytes());
    assert_eq!((r.status, r.text().as_str()), (200, declared));
    let r = a.post(
        "/wps",
        execute(r#"<wps:ResponseDocument lineage="true"><wps:Output><ows:Identifier>complexOutput</ows:Identifier></wps:Output></wps:ResponseDocument>"#)
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_valid(&r.body);
    let t = r.text();
    let output = format!(r#"<wps:ComplexData mimeType="text/xml">{declared}</wps:ComplexData>"#);
    assert!(t.contains(&output), "{t}");
    // the lineage's copy of the input (as text)
    assert!(t.contains(&format!("<![CDATA[{declared}]]>")), "{t}");
}

/// An output of an XML media type goes into the response as markup only when it is XML that
/// stands on its own; otherwise as text (CDATA), and the response stays readable.
#[test]
fn xml_outputs_go_as_markup_only_when_they_stand_on_their_own() {
    let a = server("xml-outputs", Mpm::Event);
    let echo = |value: &str| {
        let cdata = format!("<![CDATA[{}]]>", value.replace("]]>", "]]]]><![CDATA[>"));
        let r = a.post(
            "/wps",
            execute_xml(
                "echo",
                &complex_input("complexInput", "text/xml", &cdata),
                "<wps:ResponseDocument><wps:Output><ows:Identifier>complexOutput</ows:Identifier></wps:Output></wps:ResponseDocument>",
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_valid(&r.body);
        r.text()
    };
    for text in [
        "a & b",
        "<a>&nbsp;</a>",
        "<p:a/>",
        "<a>]]></a>",
        "<!-- a -- b --><a/>",
    ] {
        let t = echo(text);
        let cdata = format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"));
        assert!(t.contains(&cdata), "{text}: {t}");
    }
    let markup = r#"<a xmlns:p="urn:p"><p:b>x &amp; y</p:b></a><c/>"#;
    assert!(echo(markup).contains(&format!(
        r#"<wps:ComplexData mimeType="text/xml">{markup}</wps:ComplexData>"#
    )));
}

#[test]
fn module_log_level_is_its_own() {
    // the harness sets `LogLevel info wps:debug`: the module's debug lines are logged,
    // tagged with the module name
    let a = server("loglevel", Mpm::Event);
    a.get("/wps?service=WPS&request=GetMeASandwich")
        .assert_exception(501, "OperationNotSupported", Some("GetMeASandwich"));
    let log = a.error_log();
    assert!(
        log.lines()
            .any(|l| l.contains("[wps:debug]") && l.contains("GetMeASandwich")),
        "{log}"
    );
    // with `LogLevel info` alone, wps debug lines are not written
    let b = Apache::builder("loglevel-info")
        .directives("LogLevel info\n")
        .start();
    b.get("/wps?service=WPS&request=GetMeASandwich")
        .assert_exception(501, "OperationNotSupported", None);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = b.error_log();
    assert!(!log.contains("[wps:debug]"), "{log}");
    assert!(log.contains("[wps:info]"), "{log}");
}
