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
    let bytes = text.as_bytes();
    // white space is counted in the runs of 64 bytes that have a byte up to ' ' (found
    // without a branch per byte): most have none
    let space: usize = bytes
        .chunks(64)
        .filter(|run| run.iter().fold(false, |low, &b| low | (b <= b' ')))
        .map(|run| run.iter().filter(|b| b.is_ascii_whitespace()).count())
        .sum();
    let pad = bytes
        .iter()
        .rev()
        .filter(|b| !b.is_ascii_whitespace())
        .take_while(|&&b| b == b'=')
        .count();
    (bytes.len() - space).saturating_sub(pad.min(2)) * 3 / 4
}

/// Whether `b` is a symbol of the base64 alphabet (without a branch: a run of bytes is checked
/// at once).
fn is_base64_symbol(b: u8) -> bool {
    (b.wrapping_sub(b'A') < 26)
        | (b.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'+')
        | (b == b'/')
}

/// The value of a base64 symbol.
fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
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
    // line breaks are allowed; text without any is decoded as it is (no copy), other text
    // byte by byte without them (UTF-8 continuation bytes are never ASCII white space)
    let bytes = s.as_bytes();
    let decoded = if bytes.iter().any(u8::is_ascii_whitespace) {
        let compact: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD.decode(compact)
    } else {
        base64::engine::general_purpose::STANDARD.decode(bytes)
    };
    decoded.map_err(|e| format!("content is not valid base64: {e}"))
}

/// The number of bytes base64 text (line breaks allowed) decodes to, or why it is not valid
/// base64: what `decode_base64` would answer, without decoding (one pass over the text, no
/// allocation; the request's validation checks inline data this way and the process decodes it
/// once). Padding is required and the unused bits of the last symbol must be zero, as the
/// decoder requires.
pub fn base64_check(text: &str) -> Result<usize, String> {
    /// Bytes looked at together: a run of symbols only needs counting.
    const RUN: usize = 64;
    #[derive(Default)]
    struct Seen {
        /// symbols and padding
        n: usize,
        pad: usize,
        /// the values of the last two symbols before the padding
        last: [u8; 2],
    }
    impl Seen {
        /// One more byte; false if it cannot be there.
        fn byte(&mut self, b: u8) -> bool {
            if b.is_ascii_whitespace() {
                return true;
            }
            if b == b'=' {
                self.pad += 1;
            } else if let (Some(v), 0) = (base64_value(b), self.pad) {
                self.last = [self.last[1], v];
            } else {
                return false;
            }
            self.n += 1;
            true
        }
    }
    let mut seen = Seen::default();
    let mut runs = text.as_bytes().chunks_exact(RUN);
    let ok = runs.by_ref().all(|run| {
        if seen.pad == 0 && run.iter().fold(true, |all, &b| all & is_base64_symbol(b)) {
            seen.n += RUN;
            seen.last = [run[RUN - 2], run[RUN - 1]].map(|b| base64_value(b).unwrap_or(0));
            true
        } else {
            run.iter().all(|&b| seen.byte(b))
        }
    }) && runs.remainder().iter().all(|&b| seen.byte(b));
    let Seen { n, pad, last } = seen;
    let valid = ok
        && n % 4 == 0
        && match pad {
            0 => true,
            1 => last[1] & 0b11 == 0,
            2 => last[1] & 0b1111 == 0,
            _ => false,
        };
    if valid {
        Ok(n / 4 * 3 - pad)
    } else {
        // the decoder's own words
        decode_base64(text).map(|d| d.len())
    }
}

impl ComplexValue {
    /// The bytes of the value: the content, base64 decoded when `encoding` is base64.
    pub fn data(&self) -> Result<Vec<u8>, String> {
        if is_base64(self.encoding.as_deref()) {
            decode_base64(&self.content)
        } else {
            Ok(self.content.as_bytes().to_vec())
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

    /// `base64_check` answers what decoding would: the length, or the decoder's error.
    #[test]
    fn base64_check_agrees_with_the_decoder() {
        let mut cases: Vec<String> = [
            "",
            "aGVsbG8=",
            "aGVs\nbG8=\n",
            "aGVsbA==",
            "aGVsbG8h",
            "aGVsbG9=",
            "aGVsbB==",
            "aGVsbG8",
            "aGVsbG8==",
            "aGV=bG8=",
            "a===",
            "====",
            "***",
            "aGVs bG8=",
            "aGVsbG8=aGVs",
            "aGVsbG8=\n\n",
            "éGVs",
            "aGVsbA=",
            "=aGV",
            "aG-s",
            "aG_s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let text = encode_base64(&data);
            cases.push(text.clone());
            // every symbol of it changed to every other symbol at the last two places
            for pos in text.len().saturating_sub(3)..text.len() {
                for c in ["A", "B", "P", "Q", "/", "=", " "] {
                    let mut t = text.clone();
                    t.replace_range(pos..pos + 1, c);
                    cases.push(t);
                }
            }
        }
        // longer texts: runs of symbols looked at together, and changes on either side of
        // where one run ends and the next begins
        for n in [47u16, 48, 49, 96, 97, 98, 200, 1000] {
            let data: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(101)).collect();
            let text = encode_base64(&data);
            cases.push(text.clone());
            cases.push(format!("{text}\n"));
            cases.push(format!(" {text}"));
            let len = text.len();
            let places = [0, 1, 62, 63, 64, 65, 127, 128, len - 3, len - 2, len - 1];
            for pos in places.into_iter().filter(|&p| p < len) {
                for c in ["A", "/", "=", " ", "\n", "*", "-"] {
                    let mut t = text.clone();
                    t.replace_range(pos..pos + 1, c);
                    cases.push(t.clone());
                    t.insert(pos, '\n');
                    cases.push(t);
                }
            }
        }
        for c in &cases {
            let want = decode_base64(c).map(|d| d.len());
            assert_eq!(base64_check(c), want, "{c:?}");
            if let Ok(n) = want {
                assert_eq!(base64_decoded_len(c), n, "{c:?}");
            }
        }
    }
}
