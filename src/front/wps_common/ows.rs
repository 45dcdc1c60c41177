//! The OWS parts of the WPS response documents, alike in WPS 1.0.0 (OWS 1.1) and WPS 2.0.0
//! (OWS 2.0): both write them with the `ows:` prefix, bound to the version's namespace by the
//! document's root.

use crate::config::service::Metadata;
use crate::front::xml::{embeddable, is_xml_mime, strip_xml_decl, Xml, NS_XSI};
use crate::model::format::encode_base64;
use crate::model::{Allowed, OutputValue, WpsError};

/// A standalone `ows:ExceptionReport` of one exception: OWS namespace `ns_ows` with its
/// `schema_location`, report `version`, the exception `code` as the version names it.
pub fn exception_report(
    ns_ows: &str,
    schema_location: &str,
    version: &str,
    code: &str,
    err: &WpsError,
    lang: &str,
) -> String {
    let mut x = Xml::new();
    x.open(
        "ows:ExceptionReport",
        &[
            ("xmlns:ows", ns_ows),
            ("xmlns:xsi", NS_XSI),
            ("xsi:schemaLocation", schema_location),
            ("version", version),
            ("xml:lang", lang),
        ],
    );
    exception(&mut x, code, err);
    x.close("ows:ExceptionReport");
    x.finish()
}

/// `ows:Exception` with its code, locator and text.
pub fn exception(x: &mut Xml, code: &str, err: &WpsError) {
    let mut attrs = vec![("exceptionCode", code)];
    if let Some(l) = &err.locator {
        attrs.push(("locator", l.as_str()));
    }
    x.open("ows:Exception", &attrs)
        .leaf("ows:ExceptionText", &[], &err.text)
        .close("ows:Exception");
}

/// `ows:ServiceIdentification` of WPS `version`.
pub fn service_identification(x: &mut Xml, meta: &Metadata, version: &str) {
    x.open("ows:ServiceIdentification", &[])
        .leaf("ows:Title", &[], &meta.title)
        .opt_leaf("ows:Abstract", &meta.abstract_);
    if !meta.keywords.is_empty() {
        x.open("ows:Keywords", &[]);
        for k in &meta.keywords {
            x.leaf("ows:Keyword", &[], k);
        }
        if !meta.keywords_type.is_empty() {
            x.leaf("ows:Type", &[], &meta.keywords_type);
        }
        x.close("ows:Keywords");
    }
    x.leaf("ows:ServiceType", &[], "WPS")
        .leaf("ows:ServiceTypeVersion", &[], version)
        .opt_leaf("ows:Fees", &meta.fees)
        .opt_leaf("ows:AccessConstraints", &meta.access_constraints)
        .close("ows:ServiceIdentification");
}

/// `ows:ServiceProvider` (the provider name defaults to mod_wps).
pub fn service_provider(x: &mut Xml, meta: &Metadata) {
    x.open("ows:ServiceProvider", &[]).leaf(
        "ows:ProviderName",
        &[],
        if meta.provider_name.is_empty() {
            "mod_wps"
        } else {
            &meta.provider_name
        },
    );
    if !meta.provider_url.is_empty() {
        x.empty("ows:ProviderSite", &[("xlink:href", &meta.provider_url)]);
    }
    x.open("ows:ServiceContact", &[])
        .opt_leaf("ows:IndividualName", &meta.contact_name)
        .opt_leaf("ows:PositionName", &meta.contact_position)
        .open("ows:ContactInfo", &[]);
    if !meta.contact_phone.is_empty() || !meta.contact_fax.is_empty() {
        x.open("ows:Phone", &[])
            .opt_leaf("ows:Voice", &meta.contact_phone)
            .opt_leaf("ows:Facsimile", &meta.contact_fax)
            .close("ows:Phone");
    }
    x.open("ows:Address", &[])
        .opt_leaf("ows:DeliveryPoint", &meta.contact_address)
        .opt_leaf("ows:City", &meta.contact_city)
        .opt_leaf("ows:AdministrativeArea", &meta.contact_stateorprovince)
        .opt_leaf("ows:PostalCode", &meta.contact_postalcode)
        .opt_leaf("ows:Country", &meta.contact_country)
        .opt_leaf("ows:ElectronicMailAddress", &meta.contact_email)
        .close("ows:Address");
    if !meta.contact_url.is_empty() {
        x.empty("ows:OnlineResource", &[("xlink:href", &meta.contact_url)]);
    }
    x.opt_leaf("ows:HoursOfService", &meta.contact_hours)
        .opt_leaf("ows:ContactInstructions", &meta.contact_instructions)
        .close("ows:ContactInfo")
        .opt_leaf("ows:Role", &meta.contact_role)
        .close("ows:ServiceContact")
        .close("ows:ServiceProvider");
}

/// `ows:OperationsMetadata`: each operation by GET (`url?`) and POST (`url`).
pub fn operations_metadata(x: &mut Xml, url: &str, operations: &[&str]) {
    x.open("ows:OperationsMetadata", &[]);
    let get = format!("{url}?");
    for op in operations {
        x.open("ows:Operation", &[("name", op)])
            .open("ows:DCP", &[])
            .open("ows:HTTP", &[])
            .empty("ows:Get", &[("xlink:href", &get)])
            .empty("ows:Post", &[("xlink:href", url)])
            .close("ows:HTTP")
            .close("ows:DCP")
            .close("ows:Operation");
    }
    x.close("ows:OperationsMetadata");
}

/// The values a literal allows: `ows:AnyValue`, or `ows:AllowedValues` with its values and
/// closed ranges.
pub fn allowed_values(x: &mut Xml, allowed: &[Allowed]) {
    if allowed.is_empty() {
        x.empty("ows:AnyValue", &[]);
        return;
    }
    x.open("ows:AllowedValues", &[]);
    for a in allowed {
        match a {
            Allowed::Value(v) => {
                x.leaf("ows:Value", &[], v);
            }
            Allowed::Range { min, max, spacing } => {
                x.open("ows:Range", &[("ows:rangeClosure", "closed")])
                    .leaf("ows:MinimumValue", &[], &min.to_string())
                    .leaf("ows:MaximumValue", &[], &max.to_string());
                if let Some(s) = spacing {
                    x.leaf("ows:Spacing", &[], &s.to_string());
                }
                x.close("ows:Range");
            }
        }
    }
    x.close("ows:AllowedValues");
}

/// The media type a reference to a stored output states.
pub fn reference_mime(value: &OutputValue) -> &str {
    match value {
        OutputValue::Complex { mime_type, .. } => mime_type.as_str(),
        OutputValue::Literal(_) => "text/plain",
        OutputValue::BoundingBox(_) => "text/xml",
    }
}

/// Complex data inline as element `el`: XML that stands on its own (`embeddable`) as it is
/// (without its declaration), other text in CDATA, anything else (or what the client asked
/// base64) base64-encoded.
pub fn complex_data(x: &mut Xml, el: &str, mime_type: &str, data: &[u8], base64: bool) {
    match std::str::from_utf8(data) {
        Ok(s) if !base64 && is_xml_mime(mime_type) && embeddable(s) => {
            x.open(el, &[("mimeType", mime_type)])
                .raw(strip_xml_decl(s))
                .close(el);
        }
        Ok(s) if !base64 => {
            x.open(el, &[("mimeType", mime_type)]).cdata(s).close(el);
        }
        _ => {
            x.open(el, &[("mimeType", mime_type), ("encoding", "base64")])
                .text(&encode_base64(data))
                .close(el);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ExceptionCode;

    #[test]
    fn complex_data_forms() {
        let write = |mime: &str, data: &[u8], base64: bool| {
            let mut x = Xml::new();
            complex_data(&mut x, "d", mime, data, base64);
            x.finish()
        };
        assert!(write("text/xml", b"<?xml version=\"1.0\"?><a/>", false)
            .ends_with(r#"<d mimeType="text/xml"><a/></d>"#));
        assert!(write("text/plain", b"a<b", false).contains("<![CDATA[a<b]]>"));
        assert!(write("text/plain", b"ab", true).contains(r#"encoding="base64">YWI=</d>"#));
        assert!(write("image/png", &[0, 255], false).contains(r#"encoding="base64""#));
    }

    #[test]
    fn allowed_values_and_exceptions() {
        let mut x = Xml::new();
        allowed_values(&mut x, &[]);
        assert!(x.finish().contains("<ows:AnyValue/>"));
        let mut x = Xml::new();
        allowed_values(
            &mut x,
            &[
                Allowed::Value("a".into()),
                Allowed::Range {
                    min: 1.0,
                    max: 2.0,
                    spacing: Some(0.5),
                },
            ],
        );
        let s = x.finish();
        assert!(s.contains("<ows:Value>a</ows:Value>"), "{s}");
        assert!(s.contains("<ows:Spacing>0.5</ows:Spacing>"), "{s}");
        let e = WpsError::new(ExceptionCode::NoSuchJob, Some("JobID"), "no");
        let r = exception_report("urn:ows", "urn:ows x.xsd", "9.9.9", "C", &e, "en");
        assert!(r.contains(r#"<ows:Exception exceptionCode="C" locator="JobID"><ows:ExceptionText>no</ows:ExceptionText></ows:Exception>"#), "{r}");
        assert!(r.contains(r#"version="9.9.9" xml:lang="en""#), "{r}");
    }
}
