//! Real data sent inline is not refused by the XML parser's flood limits: the PyWPS demo's
//! railroads.gml (832 features, 700 KB, ~28 000 XML elements; read from ../shared/data, not
//! copied into the project) posted as inline XML to `feature_count`, under the default
//! `maxrequestsize` (3mb) and `maxsingleinputsize` (1mb).

mod common;
use common::*;

fn server() -> Apache {
    Apache::builder("inline-data")
        .service_config(
            "[metadata:main]\nidentification_title = Inline data WPS\n\n\
             [server]\nworkdir = {work}\n\n[processes]\nbuiltin = feature_count\n",
        )
        .start()
}

fn railroads() -> String {
    let path = manifest_dir().join("../shared/data/railroads.gml");
    let gml = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (shared/ must sit beside the project)",
            path.display()
        )
    });
    // Embedded in the request: without its own XML declaration.
    let start = gml
        .find("<ogr:FeatureCollection")
        .expect("a FeatureCollection");
    gml[start..].to_owned()
}

fn execute(gml: &str, response_form: &str) -> String {
    execute_xml(
        "feature_count",
        &complex_input("layer", "application/gml+xml", gml),
        response_form,
    )
}

#[test]
fn railroads_gml_inline_is_counted() {
    let gml = railroads();
    assert!(
        gml.matches('<').count() > 20_000,
        "the data set has changed"
    );
    let a = server();
    let r = a.post("/wps", execute(&gml, &raw_output("count")).as_bytes());
    assert_eq!((r.status, r.text().trim()), (200, "832"), "{}", r.text());
    let r = a.post(
        "/wps",
        execute(
            &gml,
            "<wps:ResponseDocument><wps:Output><ows:Identifier>count</ows:Identifier></wps:Output></wps:ResponseDocument>",
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(">832</wps:LiteralData>"), "{}", r.text());
    assert_valid(&r.body);
}

/// The same request sent chunked (no Content-Length: the body grows as it comes, and is then
/// kept while the job runs): counted alike, and echoed whole with lineage.
#[test]
fn railroads_gml_sent_chunked_is_counted() {
    use std::io::{Read, Write};
    let gml = railroads();
    let a = server();
    let post_chunked = |body: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut req = "POST /wps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n\
                       Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .as_bytes()
            .to_vec();
        for chunk in body.as_bytes().chunks(7_000) {
            req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            req.extend_from_slice(chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        s.write_all(&req).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        String::from_utf8(raw).unwrap()
    };
    let resp = post_chunked(&execute(&gml, &raw_output("count")));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(resp.split("\r\n\r\n").nth(1).map(str::trim), Some("832"));
    let resp = post_chunked(&execute(
        &gml,
        r#"<wps:ResponseDocument lineage="true"><wps:Output><ows:Identifier>count</ows:Identifier></wps:Output></wps:ResponseDocument>"#,
    ));
    assert!(resp.starts_with("HTTP/1.1 200"), "{}", &resp[..300]);
    assert!(resp.contains(">832</wps:LiteralData>"));
    // the last feature of the layer, as sent, in the echoed input
    let last = &gml[gml.rfind("<gml:featureMember>").unwrap()..];
    let last = &last[..last.find("</gml:featureMember>").unwrap()];
    assert!(
        resp.contains(last),
        "the echoed layer lacks its last feature"
    );
}

/// Large bodies one after another, each read into the buffer of one before it (the buffers of
/// bodies that ended are used again): each request counts its own layer, nothing of the one
/// before, whether it is smaller or larger.
#[test]
fn large_bodies_in_turn_count_their_own_features() {
    let gml = railroads();
    // the first `n` features of the layer, as a layer of its own
    let first = |n: usize| {
        let end = gml
            .match_indices("</gml:featureMember>")
            .nth(n - 1)
            .map(|(i, m)| i + m.len())
            .expect("enough features");
        format!("{}\n</ogr:FeatureCollection>", &gml[..end])
    };
    let a = server();
    for n in [832, 500, 831, 700, 832] {
        let layer = if n == 832 { gml.clone() } else { first(n) };
        let r = a.post("/wps", execute(&layer, &raw_output("count")).as_bytes());
        assert_eq!(
            (r.status, r.text().trim()),
            (200, n.to_string().as_str()),
            "{n} features"
        );
    }
}
