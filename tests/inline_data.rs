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
