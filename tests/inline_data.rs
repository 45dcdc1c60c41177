//! Real data sent inline is not refused by the XML parser's flood limits: the PyWPS demo's
//! railroads.gml (832 features, 700 KB, ~28 000 XML elements; read from ../shared/data, not
//! copied into the project) posted as inline XML to `feature_count`, under the default
//! `maxrequestsize` (3mb) and `maxsingleinputsize` (1mb).

mod common;
use common::*;

fn server() -> Apache {
    let dir = scratch("inline-data");
    let cfg = dir.join("wps.cfg");
    std::fs::write(
        &cfg,
        format!(
            "[metadata:main]\nidentification_title = Inline data WPS\n\n\
             [server]\nworkdir = {}\n\n[processes]\nbuiltin = feature_count\n",
            dir.join("work").display()
        ),
    )
    .unwrap();
    chmod(&cfg, 0o644);
    Apache::start_in(
        dir,
        Mpm::Event,
        &format!("WPSScriptAlias /wps {}\n", cfg.display()),
    )
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
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>feature_count</ows:Identifier>
  <wps:DataInputs><wps:Input><ows:Identifier>layer</ows:Identifier>
    <wps:Data><wps:ComplexData mimeType="application/gml+xml">{gml}</wps:ComplexData></wps:Data>
  </wps:Input></wps:DataInputs>
  <wps:ResponseForm>{response_form}</wps:ResponseForm>
</wps:Execute>"#
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
    let r = a.post(
        "/wps",
        execute(
            &gml,
            "<wps:RawDataOutput><ows:Identifier>count</ows:Identifier></wps:RawDataOutput>",
        )
        .as_bytes(),
    );
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
