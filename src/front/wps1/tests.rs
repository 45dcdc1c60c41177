//! The WPS 1.0.0 front on a real runner and dispatcher (no Apache): operations, errors,
//! inputs, references, and jobs whose status document is rendered from their record.

use crate::exec::pool::PoolConfig;
use crate::exec::testing::Fixture;
use crate::front::{router, Body, HttpRequest, HttpResponse};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const POLYGONS: &str = include_str!("../../../tests/data/polygons.gml");

fn call(fx: &Fixture, method: &str, path: &str, query: &str, body: Body) -> HttpResponse {
    router::handle(
        &fx.service,
        fx.runner.as_ref(),
        &HttpRequest {
            method,
            path,
            query,
            headers: Vec::new(),
            body,
            base_url: "http://h/wps",
            user: None,
        },
    )
}

fn get(fx: &Fixture, q: &str) -> HttpResponse {
    call(fx, "GET", "", q, Body::Bytes(Default::default()))
}

fn text(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn service(processes: &str) -> Fixture {
    Fixture::new(
        "maxsingleinputsize = 1kb\nmaxrequestsize = 2kb",
        &format!("builtin = {processes}"),
        PoolConfig::new("t"),
    )
}

/// A service with all processes and `server` lines, and a data directory with polygons.gml.
fn runner(server: &str) -> (Fixture, PathBuf) {
    runner_sized("8kb", server)
}

fn runner_sized(max_single: &str, server: &str) -> (Fixture, PathBuf) {
    let data = std::env::temp_dir().join(format!("mod_wps-data-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(data.join("data")).unwrap();
    std::fs::write(data.join("data/polygons.gml"), POLYGONS).unwrap();
    std::fs::write(data.join("wps.cfg"), "secret").unwrap();
    let fx = Fixture::new(
        &format!("maxsingleinputsize = {max_single}\n{server}"),
        "builtin = all",
        PoolConfig::new("t"),
    );
    (fx, data)
}

fn req(fx: &Fixture, method: &str, query: &str, body: &str) -> (u16, String) {
    let r = call(
        fx,
        method,
        "",
        query,
        Body::Bytes(body.as_bytes().to_vec().into()),
    );
    (r.status, text(&r))
}

fn exec_xml(process: &str, inputs: &str, form: &str) -> String {
    format!(
        r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink"><ows:Identifier>{process}</ows:Identifier><wps:DataInputs>{inputs}</wps:DataInputs>{form}</wps:Execute>"#
    )
}

fn complex(id: &str, attrs: &str, content: &str) -> String {
    format!(
        r#"<wps:Input><ows:Identifier>{id}</ows:Identifier><wps:Data><wps:ComplexData {attrs}>{content}</wps:ComplexData></wps:Data></wps:Input>"#
    )
}

#[test]
fn answers_operations_and_errors() {
    let rn = service("say_hello, sleep, selftest_panic");
    let r = get(&rn, "service=WPS&request=GetCapabilities&language=fr-FR");
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("xml:lang=\"fr-FR\""));
    assert!(text(&r).contains("<ows:Get xlink:href=\"http://h/wps?\"/>"));
    let r = get(
        &rn,
        "service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=x",
    );
    assert!(text(&r).contains(">Hello x<"), "{}", text(&r));
    // an oversized input value
    let long = "x".repeat(2000);
    let r = get(
        &rn,
        &format!(
            "service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name={long}"
        ),
    );
    assert_eq!(r.status, 413);
    assert!(text(&r).contains("FileSizeExceeded"));
    // a panicking process: 500 + a log line, and the pool keeps working
    let r = get(
        &rn,
        "service=WPS&version=1.0.0&request=Execute&identifier=selftest_panic",
    );
    assert_eq!(r.status, 500);
    assert!(text(&r).contains("NoApplicableCode"));
    assert!(text(&r).contains("crashed"), "{}", text(&r));
    let r = get(
        &rn,
        "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0",
    );
    assert!(text(&r).contains("done sleeping"));
    // body too large
    let r = call(&rn, "POST", "", "", Body::TooLarge);
    assert_eq!(r.status, 413);
}

#[test]
fn timeout_answers_no_applicable_code() {
    let mut cfg = PoolConfig::new("slow");
    cfg.request_timeout = std::time::Duration::from_millis(200);
    let rn = Fixture::new("", "builtin = sleep", cfg);
    let r = get(
        &rn,
        "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=5",
    );
    assert_eq!(r.status, 500);
    assert!(text(&r).contains("request timeout"), "{}", text(&r));
    assert!(text(&r).contains("'slow'"));
}

/// feature_count of a `layer` sent inline with `attrs` on its ComplexData, counted raw.
fn count_layer(r: &Fixture, attrs: &str, content: &str) -> (u16, String) {
    req(
        r,
        "POST",
        "",
        &exec_xml(
            "feature_count",
            &complex("layer", attrs, content),
            RAW_COUNT,
        ),
    )
}

const RAW_COUNT: &str = "<wps:ResponseForm><wps:RawDataOutput><ows:Identifier>count</ows:Identifier></wps:RawDataOutput></wps:ResponseForm>";

#[test]
fn complex_inputs_inline_base64_and_format_checks() {
    let (r, dir) = runner("");
    let body = POLYGONS
        .trim_start_matches(|c| c != '>')
        .trim_start_matches('>');
    let (st, t) = count_layer(&r, r#"mimeType="application/gml+xml""#, body);
    assert_eq!((st, t.as_str()), (200, "3"));
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(POLYGONS);
    let (st, t) = count_layer(
        &r,
        r#"mimeType="application/gml+xml" encoding="base64""#,
        &b64,
    );
    assert_eq!((st, t.as_str()), (200, "3"));
    let (st, t) = count_layer(&r, "", &format!("<![CDATA[{POLYGONS}]]>"));
    assert_eq!((st, t.as_str()), (200, "3"), "{t}");
    for (attrs, what) in [
        (r#"mimeType="text/csv""#, "text/csv"),
        (r#"encoding="gzip""#, "gzip"),
        (
            r#"mimeType="application/gml+xml" encoding="base64""#,
            "base64",
        ),
    ] {
        let (st, t) = count_layer(&r, attrs, "!!not base64!!");
        assert_eq!(st, 400, "{t}");
        assert!(
            t.contains(r#"exceptionCode="InvalidParameterValue" locator="layer""#),
            "{t}"
        );
        assert!(t.contains(what), "{t}");
    }
    // decoded base64 larger than maxsingleinputsize
    let big = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 8193]);
    let (st, t) = count_layer(&r, r#"encoding="base64""#, &big);
    assert!(st == 413 && t.contains(r#"locator="layer""#), "{st} {t}");
    // output format selection: an unsupported mimeType/encoding is refused before running
    let q = "service=WPS&version=1.0.0&request=Execute&identifier=centroids&DataInputs=layer=x@mimeType=application/gml%2Bxml&RawDataOutput=out@mimeType=text/csv";
    let (st, t) = req(&r, "GET", q, "");
    assert!(st == 400 && t.contains(r#"locator="mimeType""#), "{t}");
    assert!(t.contains("Output 'out'"), "{t}");
    // a requested format never reaches a header: CR/LF in it is an unknown format, and the
    // raw output carries the declared format
    for mime in [
        "application/json%0D%0AX-Evil:%201",
        "application/json%0AX-Evil:%201",
    ] {
        let q = format!("service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=x&RawDataOutput=out@mimeType={mime}");
        let r2 = call(&r, "GET", "", &q, Body::Bytes(Default::default()));
        assert_eq!(r2.status, 400, "{}", text(&r2));
        assert!(text(&r2).contains(r#"locator="mimeType""#), "{}", text(&r2));
        assert!(r2
            .headers
            .iter()
            .all(|(k, v)| !k.contains("Evil") && !v.contains('\n')));
    }
    // surrounding white space (CR/LF too) does not take part in matching: it matches, but
    // never reaches a header (httpd answered such a Content-Type with a bare 500 page)
    let r2 = call(&r, "GET", "", "service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=x&RawDataOutput=out@mimeType=application/json%0D%0A", Body::Bytes(Default::default()));
    assert_eq!(
        (r2.status, r2.content_type.as_str()),
        (200, "application/json")
    );
    let r2 = call(&r, "GET", "", "service=WPS&version=1.0.0&request=Execute&identifier=testjson&DataInputs=name=x&RawDataOutput=out@mimeType=APPLICATION/JSON", Body::Bytes(Default::default()));
    assert_eq!(
        r2.content_type, "application/json",
        "the declared format, not the request's spelling"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn references_follow_the_policy() {
    let (r, dir) = runner("");
    let file = dir.join("data/polygons.gml");
    let kvp = |href: &str| {
        format!(
            "service=WPS&version=1.0.0&request=Execute&identifier=feature_count&DataInputs=layer=@xlink:href={}&RawDataOutput=count",
            form_urlencoded::byte_serialize(href.as_bytes()).collect::<String>()
        )
    };
    for href in [
        format!("file://{}", file.display()),
        "http://127.0.0.1:1/x.gml".into(),
        "http://[::1]:1/x.gml".into(),
        "http://localhost:1/x.gml".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.1.2.3/x.gml".into(),
        "ftp://example.com/x.gml".into(),
    ] {
        let (st, t) = req(&r, "GET", &kvp(&href), "");
        assert_eq!(st, 400, "{href}: {t}");
        assert!(
            t.contains(r#"exceptionCode="InvalidParameterValue" locator="layer""#),
            "{href}: {t}"
        );
        assert!(!t.contains("ogr:FeatureCollection"));
    }
    // async: refused at once too, no job accepted
    let (st, t) = req(
        &r,
        "GET",
        &format!(
            "{}&storeExecuteResponse=true",
            kvp("http://127.0.0.1:1/x").replace("&RawDataOutput=count", "")
        ),
        "",
    );
    assert_eq!(st, 400, "{t}");
    drop(r);
    // allowlisted directory: file:// works, `..` out of it does not
    let (r, dir2) = runner(&format!(
        "allowedinputpaths = {}",
        dir.join("data").display()
    ));
    let (st, t) = req(&r, "GET", &kvp(&format!("file://{}", file.display())), "");
    assert_eq!((st, t.as_str()), (200, "3"));
    let (st, t) = req(
        &r,
        "GET",
        &kvp(&format!("file://{}/data/../wps.cfg", dir.display())),
        "",
    );
    assert_eq!(st, 400, "{t}");
    let (st, t) = req(&r, "GET", &kvp("file:///etc/passwd"), "");
    assert!(st == 400 && !t.contains("root:"), "{t}");
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn too_many_inputs() {
    let (r, dir) = runner("");
    let one = "<wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>x</wps:LiteralData></wps:Data></wps:Input>";
    let (st, t) = req(
        &r,
        "POST",
        "",
        &exec_xml("say_hello", &one.repeat(1001), ""),
    );
    assert!(st == 400 && t.contains(r#"locator="DataInputs""#), "{t}");
    let q = format!(
        "service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs={}",
        "name=x;".repeat(1001)
    );
    let (st, t) = req(&r, "GET", &q, "");
    assert!(st == 400 && t.contains(r#"locator="DataInputs""#), "{t}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The job id in an accepted document's statusLocation.
fn status_id(doc: &str) -> String {
    let loc = doc
        .split("statusLocation=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no statusLocation in {doc}"));
    assert!(loc.starts_with("http://h/wps/outputs/"), "{loc}");
    loc.rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".xml")
        .to_owned()
}

#[test]
fn stored_jobs_are_rendered_from_their_record() {
    use crate::front::wps1::response::tests::assert_valid;
    let fx = service("sleep, say_hello");
    let r = get(
        &fx,
        "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0.5&storeExecuteResponse=true&status=true&lineage=true&ResponseDocument=sleep_output@asReference=true",
    );
    let t = text(&r);
    assert_eq!(r.status, 200, "{t}");
    assert!(t.contains("<wps:ProcessAccepted>"), "{t}");
    assert_valid(&t);
    let id = status_id(&t);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let last = loop {
        let r = call(
            &fx,
            "GET",
            &format!("outputs/{id}.xml"),
            "",
            Body::Bytes(Default::default()),
        );
        assert_eq!(r.status, 200);
        let t = text(&r);
        assert_valid(&t);
        if t.contains("ProcessSucceeded") || t.contains("ProcessFailed") {
            break t;
        }
        assert!(Instant::now() < deadline, "{t}");
        if t.contains("percentCompleted=\"") && !t.contains("percentCompleted=\"0\"") {
            seen.push(t);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(last.contains("<wps:ProcessSucceeded>"), "{last}");
    assert!(!seen.is_empty(), "progress was reported");
    // lineage and the output by reference, served below outputs/
    assert!(
        last.contains("<wps:DataInputs>") && last.contains("<wps:OutputDefinitions>"),
        "{last}"
    );
    let href = last
        .split("<wps:Reference href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{last}"));
    let rel = href.strip_prefix("http://h/wps/").unwrap();
    let r = call(&fx, "GET", rel, "", Body::Bytes(Default::default()));
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "text/plain; charset=utf-8")
    );
    assert!(text(&r).contains("done sleeping"));
    // only GET and HEAD
    let r = call(&fx, "PUT", rel, "", Body::Bytes(b"x".to_vec().into()));
    assert_eq!(r.status, 405);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "Allow" && v == "GET, HEAD"));
    // a dismissed job is gone from its URL
    assert!(fx
        .service
        .dismiss(&id, crate::engine::Caller::anonymous())
        .unwrap()
        .is_some());
    let r = call(
        &fx,
        "GET",
        &format!("outputs/{id}.xml"),
        "",
        Body::Bytes(Default::default()),
    );
    assert_eq!(r.status, 404);
    let r = call(&fx, "GET", rel, "", Body::Bytes(Default::default()));
    assert_eq!(r.status, 404);
}

/// maxsingleinputsize limits decoded bytes: with 1kb, base64 of 900 bytes (1200
/// characters) passes, base64 of 1100 bytes does not; inline and by reference.
#[test]
fn maxsingleinputsize_is_the_decoded_size() {
    use crate::engine::validate::{validate_inputs, validate_inputs_unfetched};
    use crate::model::{ComplexValue, ExceptionCode, Input, InputData, Reference};
    use base64::Engine;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![0xffu8; n]);
    let wrapped = |s: String| {
        s.as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let (r, dir) = runner_sized(
        "1kb",
        &format!(
            "allowedinputpaths = {}",
            std::env::temp_dir().join("never-used").display()
        ),
    );
    let desc = r
        .service
        .process("feature_count")
        .unwrap()
        .description()
        .clone();
    let input = |content: String, encoding: Option<&str>| Input {
        identifier: "layer".into(),
        data: InputData::Complex(ComplexValue {
            mime_type: Some("application/gml+xml".into()),
            encoding: encoding.map(str::to_owned),
            content: content.into(),
            ..Default::default()
        }),
    };
    assert_eq!(b64(900).len(), 1200);
    for ok in [b64(900), wrapped(b64(900)), b64(1024), b64(1023), b64(1022)] {
        let i = [input(ok, Some("base64"))];
        assert!(validate_inputs(&desc, &i, 1024).is_ok());
        assert!(validate_inputs_unfetched(&desc, &i, 1024).is_ok());
    }
    for (content, enc) in [
        (b64(1100), Some("base64")),
        (wrapped(b64(1100)), Some("base64")),
        (b64(1025), Some("base64")),
        ("x".repeat(1025), None),
    ] {
        for f in [validate_inputs, validate_inputs_unfetched] {
            let e = f(&desc, &[input(content.clone(), enc)], 1024).unwrap_err();
            assert_eq!(e.code, ExceptionCode::FileSizeExceeded, "{}", e.text);
            assert_eq!(e.locator.as_deref(), Some("layer"));
        }
    }
    assert_eq!(crate::model::format::base64_decoded_len(&b64(1100)), 1100);
    assert_eq!(
        crate::model::format::base64_decoded_len(&wrapped(b64(1022))),
        1022
    );
    // through a whole request: 413 with the locator (not a decoding or format error)
    let (st, t) = count_layer(
        &r,
        r#"mimeType="application/gml+xml" encoding="base64""#,
        &b64(1100),
    );
    assert!(
        st == 413 && t.contains(r#"exceptionCode="FileSizeExceeded" locator="layer""#),
        "{st} {t}"
    );
    drop(r);
    // references: binary data is limited by its size (not by its base64 form), base64 text
    // declared as such by what it decodes to
    let data = std::env::temp_dir().join(format!("mod_wps-sizes-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data).unwrap();
    let (r, dir2) = runner_sized("1kb", &format!("allowedinputpaths = {}", data.display()));
    let reference = |name: &str, bytes: Vec<u8>, encoding: Option<&str>| {
        std::fs::write(data.join(name), bytes).unwrap();
        let i = Input {
            identifier: "layer".into(),
            data: InputData::Reference(Reference {
                href: format!("file://{}", data.join(name).display()),
                mime_type: Some("application/gml+xml".into()),
                encoding: encoding.map(str::to_owned),
                ..Default::default()
            }),
        };
        r.service.prepare_inputs(&desc, &[i], None)
    };
    assert!(reference("bin900", vec![0xff; 900], None).is_ok());
    assert!(reference("b64-900", wrapped(b64(900)).into_bytes(), Some("base64")).is_ok());
    assert!(reference("b64-1024", b64(1024).into_bytes(), Some("base64")).is_ok());
    for (name, bytes, enc) in [
        ("bin1100", vec![0xff; 1100], None),
        ("b64-1100", b64(1100).into_bytes(), Some("base64")),
        ("b64-1100w", wrapped(b64(1100)).into_bytes(), Some("base64")),
        ("b64-huge", b64(4000).into_bytes(), Some("base64")),
    ] {
        let e = reference(name, bytes, enc).unwrap_err();
        assert_eq!(
            e.code,
            ExceptionCode::FileSizeExceeded,
            "{name}: {}",
            e.text
        );
        assert_eq!(e.locator.as_deref(), Some("layer"), "{name}");
        assert!(e.text.contains("1024 bytes"), "{name}: {}", e.text);
    }
    for d in [dir, dir2, data] {
        let _ = std::fs::remove_dir_all(d);
    }
}
