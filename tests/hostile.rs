//! Hostile input against a real Apache: every case checks the answer AND that the server keeps
//! serving afterwards. (References to file://, loopback and redirects are in tests/geo.rs,
//! against a static file of the same server; redirects to hostile locations are here.)

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `/wps` with the test default `maxrequestsize = 64kb`; `/big` with 8mb, so the XML parser's
/// own limits are reached. The service configs are in `wps/` and `big/`, not in the document
/// root (which `/wps/outputs/../../wps.cfg` would reach).
fn server(name: &str) -> Apache {
    Apache::builder(name)
        .no_service()
        .pool("pywps threads=2")
        .service("/wps", "")
        .service("/big", "maxrequestsize = 8mb")
        .start()
}

fn still_serving(a: &Apache) {
    let r = a.get(GET_CAPS);
    assert_eq!(r.status, 200, "server stopped serving: {}", r.text());
    let r = a.get(&format!("{}&RawDataOutput=response", exec_hello("x")));
    assert_eq!(r.text(), "Hello x");
}

const NS: &str =
    r#"xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1""#;

#[test]
fn doctypes_entities_and_billion_laughs() {
    let a = server("hostile-xml");
    let cases = [
        // external general entity
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><wps:Execute service="WPS" version="1.0.0" {NS}><ows:Identifier>say_hello</ows:Identifier><wps:DataInputs><wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>&e;</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs></wps:Execute>"#
        ),
        // external parameter entity / external DTD
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><wps:GetCapabilities service="WPS" {NS}/>"#
        ),
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE wps:GetCapabilities SYSTEM "http://127.0.0.1:1/evil.dtd"><wps:GetCapabilities service="WPS" {NS}/>"#
        ),
        // billion laughs
        {
            let mut d = String::from(r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">"#);
            for i in 1..10 {
                let prev = if i == 1 {
                    "lol".to_owned()
                } else {
                    format!("lol{}", i - 1)
                };
                d.push_str(&format!(
                    "<!ENTITY lol{i} \"{}\">",
                    format!("&{prev};").repeat(10)
                ));
            }
            d.push_str(&format!(
                r#"]><wps:GetCapabilities service="WPS" {NS}>&lol9;</wps:GetCapabilities>"#
            ));
            d
        },
        // an undeclared entity without DOCTYPE, inside complex data
        format!(
            r#"<wps:Execute service="WPS" version="1.0.0" {NS}><ows:Identifier>feature_count</ows:Identifier><wps:DataInputs><wps:Input><ows:Identifier>layer</ows:Identifier><wps:Data><wps:ComplexData><x>&xxe;</x></wps:ComplexData></wps:Data></wps:Input></wps:DataInputs></wps:Execute>"#
        ),
        // DOCTYPE hidden inside CDATA is just text; a DOCTYPE in the middle is refused
        format!(r#"<wps:GetCapabilities service="WPS" {NS}><!DOCTYPE y></wps:GetCapabilities>"#),
    ];
    for (i, body) in cases.iter().enumerate() {
        let start = Instant::now();
        let r = a.post("/wps", body.as_bytes());
        eprintln!("case {i}: {} in {:?}", r.status, start.elapsed());
        r.assert_exception(400, "InvalidParameterValue", Some("request"));
        assert!(!r.text().contains("root:"), "{}", r.text());
        assert!(!r.text().contains("lollol"), "{}", r.text());
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    still_serving(&a);
}

/// Sends `first` bytes of a chunked body in 64 KiB chunks; with `finish`, ends the body, else
/// leaves it open (the server must answer without the rest). Then reads the response.
fn chunked_post(port: u16, path: &str, first: usize, finish: bool) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut written = 0;
    while written < first {
        let mut piece = format!("{:x}\r\n", chunk.len()).into_bytes();
        piece.extend_from_slice(&chunk);
        piece.extend_from_slice(b"\r\n");
        if s.write_all(&piece).is_err() {
            break;
        }
        written += chunk.len();
    }
    if finish {
        let _ = s.write_all(b"0\r\n\r\n");
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn oversized_bodies_are_refused_without_reading_them() {
    let a = server("hostile-size");
    // declared too large: refused before reading
    let big = vec![b' '; 200 * 1024];
    a.post("/wps", &big)
        .assert_exception(413, "FileSizeExceeded", None);
    // chunked, no length, never finished: reading stops at the limit (64kb) and the answer
    // comes although the body goes on (it is not read to its end, nor buffered)
    let start = Instant::now();
    let resp = chunked_post(a.port, "/wps", 2 * 1024 * 1024, false);
    assert!(
        resp.starts_with("HTTP/1.1 413"),
        "{}",
        &resp[..resp.len().min(500)]
    );
    assert!(resp.contains("FileSizeExceeded"));
    assert!(start.elapsed() < Duration::from_secs(15));
    // multi-MB chunked bodies, finished, several times: the same answer
    for _ in 0..3 {
        let resp = chunked_post(a.port, "/wps", 16 * 1024 * 1024, true);
        assert!(
            resp.starts_with("HTTP/1.1 413"),
            "{}",
            &resp[..resp.len().min(500)]
        );
    }
    // the 8mb service: a 3 MB chunked body of white space is read and answered (not 413)
    let resp = chunked_post(a.port, "/big", 3 * 1024 * 1024, true);
    assert!(
        resp.starts_with("HTTP/1.1 400"),
        "{}",
        &resp[..resp.len().min(500)]
    );
    still_serving(&a);
}

#[test]
fn parser_limits_hold_with_large_bodies() {
    let a = server("hostile-limits");
    let wrap = |inner: &str| {
        format!(
            r#"<wps:Execute service="WPS" version="1.0.0" {NS}><ows:Identifier>say_hello</ows:Identifier>{inner}</wps:Execute>"#
        )
    };
    // 100 000 levels of nesting
    let deep = wrap(&format!(
        "{}{}",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    ));
    let r = a.post("/big", deep.as_bytes());
    r.assert_exception(400, "InvalidParameterValue", Some("request"));
    assert!(r.text().contains("deeper"), "{}", r.text());
    // 100 000 attributes on one element
    let attrs: String = (0..100_000).map(|i| format!(" a{i}=\"v\"")).collect();
    let r = a.post("/big", wrap(&format!("<x{attrs}/>")).as_bytes());
    r.assert_exception(400, "InvalidParameterValue", Some("request"));
    assert!(r.text().contains("attributes"), "{}", r.text());
    // 200 000 WPS elements
    let r = a.post("/big", wrap(&"<wps:x/>".repeat(200_000)).as_bytes());
    r.assert_exception(400, "InvalidParameterValue", Some("request"));
    // a namespace-declaration flood (62 x 250 declarations, then 1100 elements with 250
    // prefixed attributes; 2.8 MB): refused at once, not after seconds of CPU
    let decls: String = (0..250)
        .map(|i| format!(r#" xmlns:p{i}="u:{i}""#))
        .collect();
    let attrs: String = (0..250).map(|i| format!(r#" p{i}:a="""#)).collect();
    let flood = format!(
        "{}{}{}",
        (0..62)
            .map(|d| format!("<n{d}{decls}>"))
            .collect::<String>(),
        format!("<e{attrs}/>").repeat(1100),
        (0..62)
            .rev()
            .map(|d| format!("</n{d}>"))
            .collect::<String>()
    );
    let r = a.post("/big", wrap(&flood).as_bytes());
    r.assert_exception(400, "InvalidParameterValue", Some("request"));
    assert!(r.text().contains("namespace declarations"), "{}", r.text());
    // 2000 inputs (XML)
    let one = "<wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>x</wps:LiteralData></wps:Data></wps:Input>";
    let r = a.post(
        "/big",
        wrap(&format!(
            "<wps:DataInputs>{}</wps:DataInputs>",
            one.repeat(2000)
        ))
        .as_bytes(),
    );
    r.assert_exception(400, "InvalidParameterValue", Some("DataInputs"));
    // 1500 inputs (KVP, within Apache's request line limit)
    let r = a.get(&format!(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs={}",
        "n=1;".repeat(1500)
    ));
    r.assert_exception(400, "InvalidParameterValue", Some("DataInputs"));
    // a request line beyond Apache's limit is Apache's business: an error, and no crash
    let r = a.get(&format!(
        "/wps?service=WPS&request=Execute&DataInputs={}",
        "x".repeat(20_000)
    ));
    assert!(r.status >= 400, "{}", r.status);
    // 10 000 attributes on an ows:Identifier within an otherwise valid request
    let attrs: String = (0..10_000).map(|i| format!(" b{i}=\"{i}\"")).collect();
    let r = a.post("/big", format!(r#"<wps:DescribeProcess service="WPS" version="1.0.0" {NS}><ows:Identifier{attrs}>sleep</ows:Identifier></wps:DescribeProcess>"#).as_bytes());
    r.assert_exception(400, "InvalidParameterValue", Some("request"));
    still_serving(&a);
}

#[test]
fn identifiers_and_paths_with_separators_nul_and_dots() {
    let a = server("hostile-ids");
    let exec = "/wps?service=WPS&version=1.0.0&request=Execute";
    for id in [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "say_hello%00",
        "%00",
        "say_hello%2F..",
        "..",
        "say_hello/../sleep",
    ] {
        let r = a.get(&format!("{exec}&identifier={id}"));
        r.assert_exception(400, "InvalidParameterValue", Some("identifier"));
        let r = a.get(&format!(
            "/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier={id}"
        ));
        r.assert_exception(400, "InvalidParameterValue", Some("identifier"));
    }
    // input and output names
    a.get(&format!(
        "{exec}&identifier=say_hello&DataInputs=name=x;..%252F..%252Fetc=y"
    ))
    .assert_exception(400, "InvalidParameterValue", Some("../../etc"));
    let r = a.get(&format!(
        "{exec}&identifier=say_hello&DataInputs=na%2500me=x"
    ));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("InvalidParameterValue"));
    for out in [
        "../../etc/passwd",
        "response%00",
        "..%2Fresponse",
        "response/..",
        ".",
    ] {
        let r = a.get(&format!(
            "{exec}&identifier=say_hello&DataInputs=name=x&RawDataOutput={out}"
        ));
        assert_eq!(r.status, 400, "{out}: {}", r.text());
        assert!(r.text().contains("InvalidParameterValue"), "{}", r.text());
        let r = a.get(&format!(
            "{exec}&identifier=say_hello&DataInputs=name=x&ResponseDocument={out}@asReference=true"
        ));
        assert_eq!(r.status, 400, "{out}: {}", r.text());
    }
    // XML: NUL and control characters are not XML
    let r = a.post("/wps", format!("<wps:DescribeProcess service=\"WPS\" version=\"1.0.0\" {NS}><ows:Identifier>say_hello\u{0}</ows:Identifier></wps:DescribeProcess>").as_bytes());
    r.assert_exception(400, "InvalidParameterValue", None);
    // job ids and stored output names: only <uuid>.xml and <uuid>/<name>.<ext> exist
    let job = "0b7e9d4c-8d1e-4a53-9d53-4c2c6cdd7d10";
    for p in [
        "/wps/outputs/../../../../etc/passwd".to_owned(),
        "/wps/outputs/..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/wps/outputs/%2e%2e/%2e%2e/wps.cfg".to_owned(),
        "/wps/outputs/..%252F..%252Fwps.cfg".to_owned(),
        format!("/wps/outputs/{job}.xml%00.txt"),
        format!("/wps/outputs/{job}/..%2F..%2Fwps.cfg"),
        format!("/wps/outputs/{job}/../../wps.cfg"),
        format!("/wps/outputs/{job}/.hidden"),
        "/wps/outputs/..xml".to_owned(),
        "/wps/outputs/wps.cfg".to_owned(),
        "/wps/outputs/".to_owned(),
        "/wps/outputs".to_owned(),
    ] {
        let r = a.get(&p);
        eprintln!("{p} -> {}", r.status);
        assert!(
            r.status == 404 || r.status == 400,
            "{p}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("root:") && !r.text().contains("[server]"),
            "{p}: {}",
            r.text()
        );
    }
    still_serving(&a);
}

/// A loopback HTTP server that redirects `/r/<i>` to `targets[i]` and `/chain/<n>` to
/// `/chain/<n-1>` (`/chain/0` answers 200).
fn redirect_server(targets: Vec<String>) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            let location = if let Some(i) = path.strip_prefix("/r/") {
                targets
                    .get(i.parse::<usize>().unwrap_or(usize::MAX))
                    .cloned()
            } else if let Some(n) = path.strip_prefix("/chain/") {
                match n.parse::<u32>().unwrap_or(0) {
                    0 => None,
                    n => Some(format!("/chain/{}", n - 1)),
                }
            } else {
                None
            };
            let resp = match location {
                Some(l) => format!(
                    "HTTP/1.1 302 Found\r\nLocation: {l}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
                None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno".into(),
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    port
}

/// Issue #10: a reference whose server redirects to `file:///etc/passwd` panicked inside the
/// HTTP client (a 500 for a synchronous Execute, a lost pool worker for a job). Every redirect is
/// now checked: refused with InvalidParameterValue and the input as locator, no panic, and the
/// server keeps serving.
#[test]
fn redirecting_references_are_refused_without_a_panic() {
    let targets: Vec<String> = [
        "file:///etc/passwd",
        "http:///x",
        "ftp://127.0.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2:1/x",
    ]
    .map(String::from)
    .to_vec();
    let n = targets.len();
    let port = redirect_server(targets);
    let a = Apache::builder("hostile-redirect")
        .no_service()
        .pool("pywps threads=2")
        .service("/wps", "allowedhosts = 127.0.0.1")
        .start();
    let execute = |href: &str, extra: &str| {
        format!(
            "/wps?service=WPS&version=1.0.0&request=Execute&identifier=feature_count&DataInputs={}{extra}",
            enc(&format!("layer=@xlink:href={href}@mimeType=application/gml+xml"))
        )
    };
    let mut hrefs: Vec<String> = (0..n)
        .map(|i| format!("http://127.0.0.1:{port}/r/{i}"))
        .collect();
    hrefs.push(format!("http://127.0.0.1:{port}/chain/20")); // more than the redirect limit
    for href in &hrefs {
        let r = a.get(&execute(href, "&RawDataOutput=count"));
        r.assert_exception(400, "InvalidParameterValue", Some("layer"));
        assert!(!r.text().contains("root:"), "{}", r.text());
        // the same through XML POST
        let body = format!(
            r#"<wps:Execute service="WPS" version="1.0.0" {NS} xmlns:xlink="http://www.w3.org/1999/xlink"><ows:Identifier>feature_count</ows:Identifier><wps:DataInputs><wps:Input><ows:Identifier>layer</ows:Identifier><wps:Reference xlink:href="{href}" mimeType="application/gml+xml"/></wps:Input></wps:DataInputs></wps:Execute>"#
        );
        a.post("/wps", body.as_bytes()).assert_exception(
            400,
            "InvalidParameterValue",
            Some("layer"),
        );
    }
    // asynchronous: the job fails (ProcessFailed); the worker survives
    let r = a.get(&execute(
        &hrefs[0],
        "&storeExecuteResponse=true&status=true",
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let (fin, _) = wait_final(&a, &status_path(&r.text()), Duration::from_secs(30));
    let doc = fin.text();
    assert!(doc.contains("ProcessFailed"), "{doc}");
    assert!(doc.contains("file:///etc/passwd"), "{doc}");
    // both pool workers still run jobs
    for _ in 0..4 {
        still_serving(&a);
    }
    a.assert_clean_log();
}
