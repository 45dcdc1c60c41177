//! The GDAL demo processes (feature_count, centroids, buffer, area) and complex/reference
//! inputs against a real Apache, with real values from tests/data/polygons.gml (three polygons
//! of areas 100, 200 and 450 and centroids (5,5), (30,5), (10,30)).

mod common;
use common::*;
use std::time::Duration;

const POLYGONS: &str = include_str!("data/polygons.gml");

/// One Apache with three services: `/wps` (default policy), `/wps-open` (`allowedhosts =
/// 127.0.0.1`), `/wps-name` (`allowedhosts = localhost`); polygons.gml is served statically at
/// `/static/polygons.gml`, `/redir` redirects to it on 127.0.0.2 (never connected to).
fn server(name: &str, mpm: Mpm) -> Apache {
    Apache::builder(name)
        .mpm(mpm)
        .file("static/polygons.gml", POLYGONS, 0o644)
        .file("static/big.gml", vec![b' '; 300 * 1024], 0o644)
        .directives(&format!("LoadModule alias_module {MODULES}/mod_alias.so\n"))
        .pool("pywps threads=4")
        .service(
            "/wps-open",
            "allowedhosts = 127.0.0.1\nmaxsingleinputsize = 200kb",
        )
        .service("/wps-name", "allowedhosts = localhost")
        .directives_after("Redirect /redir http://127.0.0.2:1/static/polygons.gml\n")
        .start()
}

/// The polygons inline as XML (without the XML declaration).
fn gml_input(id: &str) -> String {
    complex_input(id, GML, &POLYGONS[POLYGONS.find("?>").unwrap() + 2..])
}

/// A GML layer in a CDATA section.
fn cdata_layer(content: &str) -> String {
    complex_input("layer", GML, &format!("<![CDATA[{content}]]>"))
}

const GML: &str = "application/gml+xml";

fn areas_of(a: &Apache, gml: &str) -> Vec<f64> {
    let r = a.post(
        "/wps",
        execute_xml("area", &cdata_layer(gml), &raw_output("area")).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_str(&r.text()).unwrap()
}

fn centroids_of(json: &[u8]) -> Vec<Vec<f64>> {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::from_value(f["geometry"]["coordinates"].clone()).unwrap())
        .collect()
}

fn geo_session(a: &Apache) {
    // advertised, described, valid
    let r = a.get(GET_CAPS);
    for id in ["feature_count", "centroids", "buffer", "area"] {
        assert!(
            r.text()
                .contains(&format!("<ows:Identifier>{id}</ows:Identifier>")),
            "{id}"
        );
    }
    let r = a.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=feature_count,centroids,buffer,area");
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    assert_eq!(t.matches("<ProcessDescription ").count(), 4);
    assert!(
        t.contains("<ows:MinimumValue>100</ows:MinimumValue>"),
        "{t}"
    );
    assert!(t.contains("<ows:Spacing>10</ows:Spacing>"), "{t}");
    assert!(t.contains("<MimeType>application/gml+xml</MimeType>"));
    assert_valid(&r.body);

    // feature_count: inline XML, response document
    let r = a.post(
        "/wps",
        execute_xml("feature_count", &gml_input("layer"), "").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(">3</wps:LiteralData>"), "{}", r.text());
    assert_valid(&r.body);

    // area: the areas of the three polygons
    assert_eq!(areas_of(a, POLYGONS), vec![100.0, 200.0, 450.0]);

    // centroids: raw GeoJSON, and inline in a response document
    let r = a.post(
        "/wps",
        execute_xml("centroids", &gml_input("layer"), &raw_output("out")).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        centroids_of(&r.body),
        vec![vec![5.0, 5.0], vec![30.0, 5.0], vec![10.0, 30.0]]
    );
    let r = a.post(
        "/wps",
        execute_xml("centroids", &gml_input("layer"), "").as_bytes(),
    );
    assert!(
        r.text()
            .contains(r#"<wps:ComplexData mimeType="application/json">"#),
        "{}",
        r.text()
    );
    assert_valid(&r.body);

    // buffer: GML out (embedded as XML, and raw), larger areas
    let r = a.post(
        "/wps",
        execute_xml(
            "buffer",
            &(gml_input("poly_in") + &literal_input("buffer", "10")),
            "",
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("<gml:Polygon") || r.text().contains("<gml:Surface"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("<![CDATA["), "GML is embedded as XML");
    assert_valid(&r.body);
    let r = a.post(
        "/wps",
        execute_xml(
            "buffer",
            &(gml_input("poly_in") + &literal_input("buffer", "10")),
            &raw_output("buff_out"),
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/gml+xml"));
    let buffered = areas_of(a, &r.text());
    assert_eq!(buffered.len(), 3);
    for (b, orig) in buffered.iter().zip([100.0, 200.0, 450.0]) {
        assert!(*b > orig + 300.0, "{b} vs {orig}");
    }
    assert!((buffered[0] - (100.0 + 400.0 + std::f64::consts::PI * 100.0)).abs() < 1.0);
    // buffer sizes outside the allowed values
    for bad in ["15", "150", "-1", "abc"] {
        a.post(
            "/wps",
            execute_xml(
                "buffer",
                &(gml_input("poly_in") + &literal_input("buffer", bad)),
                "",
            )
            .as_bytes(),
        )
        .assert_exception(400, "InvalidParameterValue", Some("buffer"));
    }
    // not GML at all: the process fails cleanly
    let junk = complex_input("layer", GML, "not gml");
    a.post("/wps", execute_xml("feature_count", &junk, "").as_bytes())
        .assert_exception(500, "NoApplicableCode", None);
    // wrong format
    let csv = complex_input("layer", "text/csv", "a,b");
    a.post("/wps", execute_xml("feature_count", &csv, "").as_bytes())
        .assert_exception(400, "InvalidParameterValue", Some("layer"));
    // base64
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(POLYGONS);
    let input = format!(
        r#"<wps:Input><ows:Identifier>layer</ows:Identifier><wps:Data><wps:ComplexData mimeType="application/gml+xml" encoding="base64">{b64}</wps:ComplexData></wps:Data></wps:Input>"#
    );
    let r = a.post(
        "/wps",
        execute_xml("feature_count", &input, &raw_output("count")).as_bytes(),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "3"));
}

#[test]
fn geo_processes_event() {
    let a = server("geo-event", Mpm::Event);
    geo_session(&a);
}

#[test]
fn geo_processes_prefork() {
    let a = server("geo-prefork", Mpm::Prefork);
    geo_session(&a);
}

fn ref_query(alias: &str, process: &str, href: &str, extra: &str) -> String {
    format!(
        "/{alias}?service=WPS&version=1.0.0&request=Execute&identifier={process}&DataInputs={}{extra}",
        enc(&format!("layer=@xlink:href={href}@mimeType=application/gml+xml"))
    )
}

#[test]
fn references_to_the_same_server() {
    let a = server("geo-refs", Mpm::Event);
    let file = format!("http://127.0.0.1:{}/static/polygons.gml", a.port);
    // the static file is there
    assert_eq!(a.get("/static/polygons.gml").text(), POLYGONS);
    // loopback: refused by default…
    let r = a.get(&ref_query(
        "wps",
        "feature_count",
        &file,
        "&RawDataOutput=count",
    ));
    r.assert_exception(400, "InvalidParameterValue", Some("layer"));
    assert!(r.text().contains("non-public"), "{}", r.text());
    assert!(!r.text().contains("FeatureCollection"));
    // …also when it is spelled differently
    for href in [
        format!("http://localhost:{}/static/polygons.gml", a.port),
        format!("http://[::ffff:127.0.0.1]:{}/static/polygons.gml", a.port),
        format!("http://2130706433:{}/static/polygons.gml", a.port),
        "file:///etc/passwd".to_owned(),
        format!("file://{}/static/polygons.gml", a.dir.display()),
    ] {
        let r = a.get(&ref_query("wps", "feature_count", &href, ""));
        r.assert_exception(400, "InvalidParameterValue", Some("layer"));
        assert!(!r.text().contains("root:"));
    }
    // …and allowed when allowlisted: synchronous, raw and document, by KVP and XML
    let r = a.get(&ref_query(
        "wps-open",
        "feature_count",
        &file,
        "&RawDataOutput=count",
    ));
    assert_eq!((r.status, r.text().as_str()), (200, "3"), "{}", r.text());
    let xml = execute_xml(
        "area",
        &format!(
            r#"<wps:Input><ows:Identifier>layer</ows:Identifier><wps:Reference xlink:href="{file}" mimeType="application/gml+xml"><wps:Header key="Accept" value="application/gml+xml"/></wps:Reference></wps:Input>"#
        ),
        &raw_output("area"),
    );
    let r = a.post("/wps-open", xml.as_bytes());
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "[100.0,200.0,450.0]"),
        "{}",
        r.text()
    );
    let r = a.get(&ref_query(
        "wps-open",
        "feature_count",
        &file,
        "&lineage=true",
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(&format!("xlink:href=\"{file}\"")),
        "{}",
        r.text()
    );
    assert_valid(&r.body);
    // a 404 and an oversized reference
    let r = a.get(&ref_query(
        "wps-open",
        "feature_count",
        &file.replace("polygons", "nope"),
        "",
    ));
    r.assert_exception(400, "InvalidParameterValue", Some("layer"));
    assert!(r.text().contains("404"), "{}", r.text());
    let big = file.replace("polygons", "big");
    a.get(&ref_query("wps-open", "feature_count", &big, ""))
        .assert_exception(413, "FileSizeExceeded", Some("layer"));
    // a redirect to an address that is not allowed: refused after the redirect
    let redir = format!("http://localhost:{}/redir", a.port);
    let r = a.get(&ref_query("wps-name", "feature_count", &redir, ""));
    r.assert_exception(400, "InvalidParameterValue", Some("layer"));
    assert!(r.text().contains("127.0.0.2"), "{}", r.text());
    // the name-allowlisted service itself reaches the file by name
    let r = a.get(&ref_query(
        "wps-name",
        "feature_count",
        &format!("http://localhost:{}/static/polygons.gml", a.port),
        "&RawDataOutput=count",
    ));
    assert_eq!((r.status, r.text().as_str()), (200, "3"), "{}", r.text());

    // asynchronous: fetched in the job; the status document ends ProcessSucceeded
    let r = a.get(&format!(
        "/wps-open?service=WPS&version=1.0.0&request=Execute&identifier=buffer&DataInputs={}&storeExecuteResponse=true&status=true",
        enc(&format!("poly_in=@xlink:href={file}@mimeType=application/gml+xml;buffer=100"))
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("ProcessAccepted"), "{}", r.text());
    let (fin, _) = wait_final(&a, &status_path(&r.text()), Duration::from_secs(30));
    let doc = fin.text();
    assert!(doc.contains("ProcessSucceeded"), "{doc}");
    assert!(doc.contains("gml:"), "{doc}");
    assert_valid(doc.as_bytes());
    // asynchronous with a refused reference: refused at once, no job
    let r = a.get(&format!(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=feature_count&DataInputs={}&storeExecuteResponse=true",
        enc(&format!("layer=@xlink:href={file}"))
    ));
    r.assert_exception(400, "InvalidParameterValue", Some("layer"));
    // still serving
    assert_eq!(a.get(GET_CAPS).status, 200);
}

/// A loopback HTTP server that records the request lines it sees (it should see none).
fn loopback_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            s2.lock().unwrap().push(first.trim().to_owned());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = "x,y\n1,2\n3,4\n";
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn gdal_opens_only_the_declared_format_and_stays_off_the_network() {
    let a = server("geo-hostile", Mpm::Event);
    let (port, seen) = loopback_server();
    // a local CSV outside allowedinputpaths (there are none), readable by Apache's user
    let secret = a.dir.join("secret.csv");
    std::fs::write(&secret, "x,y,name\n1,2,a\n3,4,b\n5,6,c\n").unwrap();
    chmod(&secret, 0o644);
    let vrt = |source: &str, layer: &str| {
        format!(
            r#"<OGRVRTDataSource><OGRVRTLayer name="l"><SrcDataSource>{source}</SrcDataSource><SrcLayer>{layer}</SrcLayer><GeometryType>wkbPoint</GeometryType><GeometryField encoding="PointFromColumns" x="x" y="y"/></OGRVRTLayer></OGRVRTDataSource>"#
        )
    };
    for doc in [
        vrt(
            &format!("/vsicurl/http://127.0.0.1:{port}/data.csv"),
            "data",
        ),
        vrt(&secret.display().to_string(), "secret"),
        vrt(
            &format!("/vsicurl/http://127.0.0.1:{}/wps-status?json", a.port),
            "wps-status",
        ),
    ] {
        for process in ["feature_count", "area", "centroids"] {
            let r = a.post(
                "/wps",
                execute_xml(process, &cdata_layer(&doc), "").as_bytes(),
            );
            r.assert_exception(500, "NoApplicableCode", None);
            assert!(r.text().contains("is not readable GML"), "{}", r.text());
        }
    }
    // a WFS response naming its DescribeFeatureType schema: counted without downloading it
    let members = &POLYGONS[POLYGONS.find("<gml:featureMember>").unwrap()
        ..POLYGONS.rfind("</ogr:FeatureCollection>").unwrap()];
    let wfs = format!(
        r#"<wfs:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml" xmlns:wfs="http://www.opengis.net/wfs" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://ogr.maptools.org/ http://127.0.0.1:{port}/wfs?SERVICE=WFS&amp;VERSION=1.0.0&amp;REQUEST=DescribeFeatureType&amp;TYPENAME=ogr:polys">{members}</wfs:FeatureCollection>"#
    );
    let r = a.post(
        "/wps",
        execute_xml("feature_count", &cdata_layer(&wfs), &raw_output("count")).as_bytes(),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "3"), "{}", r.text());
    assert_eq!(areas_of(&a, &wfs), vec![100.0, 200.0, 450.0]);
    assert_eq!(*seen.lock().unwrap(), Vec::<String>::new());
    assert!(!a.error_log().contains("secret.csv"), "{}", a.error_log());
}
