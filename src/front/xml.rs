//! A small XML writer over a String: every text and attribute value goes through quick-xml's
//! escaping, so callers cannot produce malformed markup by accident.

use quick_xml::escape::{escape, partial_escape};

pub const NS_WPS: &str = "http://www.opengis.net/wps/1.0.0";
pub const NS_OWS: &str = "http://www.opengis.net/ows/1.1";
pub const NS_XLINK: &str = "http://www.w3.org/1999/xlink";
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

pub struct Xml {
    buf: String,
}

/// Characters XML 1.0 cannot carry at all (NUL, most C0 controls, U+FFFE/U+FFFF) replaced by
/// U+FFFD, so that values echoed from requests (e.g. an identifier with `%00`) keep the
/// document well-formed.
fn xml_chars(s: &str) -> std::borrow::Cow<'_, str> {
    // Fast path, one pass over the bytes: the bad characters are C0 controls (one byte below
    // 0x20) and U+FFFE/U+FFFF (three bytes starting with 0xEF).
    if !s
        .bytes()
        .any(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF)
    {
        return s.into();
    }
    let bad = |c: char| {
        matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}')
            || c == '\u{fffe}'
            || c == '\u{ffff}'
    };
    if s.chars().any(bad) {
        s.chars()
            .map(|c| if bad(c) { '\u{fffd}' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

impl Default for Xml {
    fn default() -> Self {
        Self::new()
    }
}

impl Xml {
    pub fn new() -> Self {
        let mut buf = String::with_capacity(4096);
        buf.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        Xml { buf }
    }

    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            self.buf.push_str(&escape(xml_chars(v).as_ref()));
            self.buf.push('"');
        }
    }

    /// `<name attrs>`
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.buf.push('>');
        self
    }

    /// `</name>`
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<name attrs/>`
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.buf.push_str("/>");
        self
    }

    /// `<name attrs>text</name>`
    pub fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        self.open(name, attrs);
        self.text(text);
        self.close(name)
    }

    /// Like `leaf`, but writes nothing when `text` is empty (for optional elements).
    pub fn opt_leaf(&mut self, name: &str, text: &str) -> &mut Self {
        if !text.is_empty() {
            self.leaf(name, &[], text);
        }
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        self.buf.push_str(&partial_escape(xml_chars(text).as_ref()));
        self
    }

    /// Text as CDATA sections (a `]]>` inside is split across two sections).
    pub fn cdata(&mut self, text: &str) -> &mut Self {
        self.buf.push_str("<![CDATA[");
        self.buf
            .push_str(&xml_chars(text).replace("]]>", "]]]]><![CDATA[>"));
        self.buf.push_str("]]>");
        self
    }

    /// Markup that is already well-formed XML.
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.buf.push_str(markup);
        self
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

/// Whether a media type is XML (`…/xml`, `…+xml`).
pub fn is_xml_mime(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.ends_with("/xml") || m.ends_with("+xml")
}

/// The document without its XML declaration (for embedding it).
pub fn strip_xml_decl(s: &str) -> &str {
    let t = s.trim_start();
    if t.starts_with("<?xml") {
        if let Some(end) = t.find("?>") {
            return &t[end + 2..];
        }
    }
    t
}

/// Whether `s` has the text of a prefix declared empty (`xmlns:p=""`), which XML 1.0
/// namespaces forbid and roxmltree lets through (also where it is only text: then `s` goes
/// as text, which is still right).
fn undeclares_a_prefix(s: &str) -> bool {
    s.match_indices("xmlns:").any(|(at, _)| {
        let rest = &s[at + "xmlns:".len()..];
        let Some(eq) = rest.find(|c: char| c == '=' || c.is_whitespace() || c == '>') else {
            return false;
        };
        let value = rest[eq..].trim_start_matches(|c: char| c == '=' || c.is_whitespace());
        value.starts_with("\"\"") || value.starts_with("''")
    })
}

/// Nodes at most in a fragment put into a document as markup (`embeddable`): checking one
/// builds its tree, about 100 bytes a node; a larger one goes as text (CDATA).
pub const EMBED_NODES: u32 = 250_000;

/// True when `s`, an XML fragment (any number of elements and text at the top, an XML
/// declaration at its start), can be put into a document of ours as markup: well-formed and
/// namespace-well-formed on its own (every prefix it uses declared within it), without a
/// DOCTYPE, of at most `EMBED_NODES` nodes. Checked by a conforming parser (roxmltree):
/// quick-xml reads `a & b`, `&nbsp;`, `]]>` in text, a comment with `--`, a name with `$`
/// or an undeclared prefix without complaint, and markup with any of them would make the
/// whole response unreadable.
pub fn embeddable(s: &str) -> bool {
    if undeclares_a_prefix(s) {
        return false;
    }
    let wrapped = format!("<r>{}</r>", strip_xml_decl(s));
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: EMBED_NODES,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(&wrapped, options).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        let mut x = Xml::new();
        x.open("a", &[("k", "\"<&>")])
            .leaf("b", &[], "x<y & z")
            .cdata("1]]>2")
            .close("a");
        let s = x.finish();
        assert!(s.contains("<a k=\"&quot;&lt;&amp;&gt;\">"));
        assert!(s.contains("<b>x&lt;y &amp; z</b>"));
        assert!(s.contains("<![CDATA[1]]]]><![CDATA[>2]]>"));
        let mut x = Xml::new();
        x.open("a", &[("k", "a\u{0}b")])
            .text("c\u{1}d\te")
            .close("a");
        assert!(x.finish().contains("<a k=\"a\u{fffd}b\">c\u{fffd}d\te</a>"));
    }

    /// What quick-xml lets through and a client's parser refuses is not embedded; fragments
    /// that stand on their own are.
    #[test]
    fn embeddable_fragments() {
        for ok in [
            "<a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>x</a>",
            "<a>x</a><b/>",
            "text &amp; <![CDATA[a & b]]> <a/>",
            "<p:a xmlns:p=\"urn:p\"><p:b/></p:a>",
            "<a xml:lang=\"en\">&#233;&lt;</a><!-- c --><?pi x?>",
            "",
        ] {
            assert!(embeddable(ok), "{ok}");
        }
        for bad in [
            "a & b",
            "<a>&nbsp;</a>",
            "<p:a/>",
            "<a>]]></a>",
            "<a b=\"<\"/>",
            "<!-- a -- b -->",
            "<a$b/>",
            "<a/><?xml version=\"1.0\"?>",
            "<!DOCTYPE a []><a/>",
            "<a>\u{1}</a>",
            "<a>&#1;</a>",
            "<a>",
            "</r><r>",
            "<a></b>",
            "<a xmlns:p=\"\"/>",
            "<a xmlns:p = ''/>",
        ] {
            assert!(!embeddable(bad), "{bad}");
        }
        let many = "<a/>".repeat(EMBED_NODES as usize);
        assert!(!embeddable(&many));
        assert!(embeddable(&many[..many.len() / 2]));
    }

    #[test]
    fn only_characters_xml_cannot_carry_are_replaced() {
        // borrowed when nothing is replaced, also for characters encoded with a 0xEF lead byte
        for ok in [
            "plain",
            "tab\tnl\ncr\r",
            "\u{f000}\u{fffd}\u{fffc}",
            "日本語",
            "",
        ] {
            assert!(matches!(xml_chars(ok), std::borrow::Cow::Borrowed(s) if s == ok));
        }
        assert_eq!(
            xml_chars("a\u{fffe}b\u{ffff}c\u{fffd}"),
            "a\u{fffd}b\u{fffd}c\u{fffd}"
        );
        assert_eq!(
            xml_chars("\u{1f}x\u{b}\u{c}\u{0}"),
            "\u{fffd}x\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(xml_chars("\u{7f}\u{80}"), "\u{7f}\u{80}");
    }
}
