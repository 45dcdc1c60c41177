//! Complex data: decoding of `encoding="base64"` content and matching of a requested
//! `mimeType`/`encoding`/`schema` against the formats a process supports.
//!
//! Matching rules (inputs and outputs alike): a request matches a supported format when
//! - its `mimeType` equals the format's (case-insensitive, parameters after `;` ignored), or it
//!   names none;
//! - its `encoding` equals the format's, or the format names none and the request's is a
//!   transport encoding every format accepts (`utf-8`, `base64`), or the request names none;
//! - its `schema` equals the format's, or the format or the request names none.

use super::values::ComplexValue;
use base64::Engine;

#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    pub mime_type: String,
    pub encoding: Option<String>,
    pub schema: Option<String>,
}

impl Format {
    pub fn mime(m: &str) -> Self {
        Format {
            mime_type: m.into(),
            encoding: None,
            schema: None,
        }
    }
}

/// Transport encodings accepted for any format that does not name its own.
const GENERIC_ENCODINGS: &[&str] = &["utf-8", "utf8", "base64"];

pub fn is_base64(encoding: Option<&str>) -> bool {
    encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"))
}

/// Encodes output data for `encoding="base64"` (standard alphabet, padded, one line).
pub fn encode_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The number of bytes base64 `text` decodes to (exact for valid base64; whitespace, such as
/// line breaks, is not counted). `maxsingleinputsize` limits this, not the length of the text.
pub fn base64_decoded_len(text: &str) -> usize {
    let mut n = 0usize;
    let mut pad = 0usize;
    for b in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        n += 1;
        pad = if b == b'=' { pad + 1 } else { 0 };
    }
    n.saturating_sub(pad.min(2)) * 3 / 4
}

/// How much base64 text a reference declared `encoding="base64"` may have so that it can
/// decode to `max` bytes: 4/3 of `max`, plus an eighth for line breaks. The decoded size is
/// then checked exactly.
pub fn base64_text_limit(max: u64) -> u64 {
    let text = max.div_ceil(3).saturating_mul(4);
    text.saturating_add(text / 8)
}

/// Decodes base64 content leniently about whitespace (line breaks are usual in base64).
pub fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("content is not valid base64: {e}"))
}

impl ComplexValue {
    /// The bytes of the value: the content, base64 decoded when `encoding` is base64.
    pub fn data(&self) -> Result<Vec<u8>, String> {
        if is_base64(self.encoding.as_deref()) {
            decode_base64(&self.content)
        } else {
            Ok(self.content.clone().into_bytes())
        }
    }
}

fn mime_eq(a: &str, b: &str) -> bool {
    let base = |m: &str| {
        m.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    base(a) == base(b)
}

/// Whether the requested (mime type, encoding, schema) matches format `f`.
pub fn matches(
    f: &Format,
    mime: Option<&str>,
    encoding: Option<&str>,
    schema: Option<&str>,
) -> bool {
    let mime_ok = match mime {
        None => true,
        Some(m) => mime_eq(m, &f.mime_type),
    };
    let enc_ok = match (encoding.map(str::trim), f.encoding.as_deref()) {
        (None, _) | (Some(""), _) => true,
        (Some(e), Some(fe)) => e.eq_ignore_ascii_case(fe),
        (Some(e), None) => GENERIC_ENCODINGS.iter().any(|g| g.eq_ignore_ascii_case(e)),
    };
    let schema_ok = match (schema.map(str::trim), f.schema.as_deref()) {
        (Some(s), Some(fs)) if !s.is_empty() => s == fs.trim(),
        _ => true,
    };
    mime_ok && enc_ok && schema_ok
}

/// The first supported format the request matches, or a message listing the supported ones.
pub fn select<'a>(
    formats: &'a [Format],
    mime: Option<&str>,
    encoding: Option<&str>,
    schema: Option<&str>,
) -> Result<&'a Format, String> {
    formats
        .iter()
        .find(|f| matches(f, mime, encoding, schema))
        .ok_or_else(|| {
            let mut asked = Vec::new();
            if let Some(m) = mime {
                asked.push(format!("mimeType '{m}'"));
            }
            if let Some(e) = encoding {
                asked.push(format!("encoding '{e}'"));
            }
            if let Some(s) = schema {
                asked.push(format!("schema '{s}'"));
            }
            let supported: Vec<String> = formats
                .iter()
                .map(|f| {
                    let mut s = f.mime_type.clone();
                    if let Some(e) = &f.encoding {
                        s.push_str(&format!(" (encoding {e})"));
                    }
                    if let Some(sc) = &f.schema {
                        s.push_str(&format!(" (schema {sc})"));
                    }
                    s
                })
                .collect();
            format!(
                "{} is not supported; supported formats: {}",
                asked.join(", "),
                supported.join(", ")
            )
        })
}

/// File name extension and media type of a stored output.
pub fn extension_for(mime: &str) -> &'static str {
    match mime
        .to_ascii_lowercase()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
    {
        "application/json" => "json",
        "application/geo+json" | "application/vnd.geo+json" => "geojson",
        "application/gml+xml" => "gml",
        "text/xml" | "application/xml" => "xml",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "image/png" => "png",
        "image/tiff" => "tif",
        _ => "bin",
    }
}

pub fn content_type_for(ext: &str) -> &'static str {
    match ext {
        "xml" => "text/xml; charset=utf-8",
        "json" => "application/json",
        "geojson" => "application/geo+json",
        "gml" => "application/gml+xml",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv",
        "png" => "image/png",
        "tif" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// A bounding box as a standalone OWS 1.1 `ows:BoundingBox` document (a raw or stored output).
pub fn bounding_box_xml(b: &crate::model::BoundingBox) -> String {
    let dims = b.dimensions.unwrap_or(b.lower.len() as u32);
    let crs = b
        .crs
        .as_deref()
        .map(|c| format!(" crs=\"{}\"", quick_xml::escape::escape(c)))
        .unwrap_or_default();
    let join = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(" ");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ows:BoundingBox xmlns:ows=\"http://www.opengis.net/ows/1.1\"{crs} dimensions=\"{dims}\"><ows:LowerCorner>{}</ows:LowerCorner><ows:UpperCorner>{}</ows:UpperCorner></ows:BoundingBox>",
        join(&b.lower),
        join(&b.upper)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(m: &str, e: Option<&str>, s: Option<&str>) -> Format {
        Format {
            mime_type: m.into(),
            encoding: e.map(Into::into),
            schema: s.map(Into::into),
        }
    }

    #[test]
    fn format_matching() {
        let gml = fmt(
            "application/gml+xml",
            None,
            Some("http://schemas.opengis.net/gml/3.1.1/base/feature.xsd"),
        );
        assert!(matches(&gml, None, None, None));
        assert!(matches(
            &gml,
            Some("Application/GML+XML; subtype=gml/3.1.1"),
            None,
            None
        ));
        assert!(!matches(&gml, Some("text/plain"), None, None));
        assert!(matches(
            &gml,
            Some("application/gml+xml"),
            Some("base64"),
            None
        ));
        assert!(matches(&gml, None, Some("UTF-8"), None));
        assert!(!matches(&gml, None, Some("gzip"), None));
        assert!(!matches(&gml, None, None, Some("http://other.xsd")));
        assert!(matches(&gml, None, None, gml.schema.as_deref()));
        let png = fmt("image/png", Some("base64"), None);
        assert!(matches(
            &png,
            Some("image/png"),
            Some("BASE64"),
            Some("any")
        ));
        assert!(!matches(&png, Some("image/png"), Some("utf-8"), None));
        let fs = [fmt("application/json", None, None), png.clone()];
        assert_eq!(select(&fs, Some("image/png"), None, None).unwrap(), &png);
        let e = select(&fs, Some("image/gif"), None, None).unwrap_err();
        assert!(
            e.contains("image/gif") && e.contains("application/json"),
            "{e}"
        );
    }

    #[test]
    fn base64_content() {
        let c = ComplexValue {
            content: "aGVs\nbG8=\n".into(),
            encoding: Some("base64".into()),
            ..Default::default()
        };
        assert_eq!(c.data().unwrap(), b"hello");
        let bad = ComplexValue {
            content: "***".into(),
            encoding: Some("base64".into()),
            ..Default::default()
        };
        assert!(bad.data().is_err());
        let plain = ComplexValue {
            content: "x".into(),
            ..Default::default()
        };
        assert_eq!(plain.data().unwrap(), b"x");
    }
}
