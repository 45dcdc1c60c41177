//! Execute inputs that need more than parsing: reference (`xlink:href`) inputs are checked
//! against the address policy and fetched, then all inputs are validated.
//!
//! Where the fetching happens:
//! - synchronous Execute: on the request thread, *before* a `parallelprocesses` slot and a pool
//!   worker are taken (the client waits for the answer anyway; a slow remote server then holds
//!   no slot nor worker);
//! - asynchronous Execute (`storeExecuteResponse=true`): in the job, on the pool worker, so the
//!   `ProcessAccepted` answer comes at once; a failed fetch ends the job `ProcessFailed`. The job
//!   keeps the references (not the data), so a re-run after a crash fetches them again.
//!
//! In both cases the request is first checked without network traffic ([`Service::precheck_inputs`]):
//! formats, `file://` paths, literal addresses and `localhost` are refused at once with
//! `InvalidParameterValue`. Host names are resolved and checked when fetched.

use crate::engine::fetch::{FetchError, FetchPolicy, FETCH_TIMEOUT, MAX_REDIRECTS};
use crate::engine::service::{validate_inputs, validate_inputs_unfetched, Service};
use crate::model::MAX_INPUTS;
use crate::model::{
    ComplexValue, ExceptionCode, Input, InputData, LiteralValue, WpsError, WpsResult,
};
use crate::model::{DataSpec, Inputs, ProcessDescription};
use base64::Engine;

fn fetch_error(id: &str, e: FetchError, max_single: u64) -> WpsError {
    match e {
        FetchError::TooLarge(_) => WpsError::new(
            ExceptionCode::FileSizeExceeded,
            Some(id),
            format!(
                "Input '{id}': the referenced data is larger than maxsingleinputsize ({max_single} bytes)"
            ),
        ),
        e => WpsError::invalid(id, format!("Input '{id}': {e}")),
    }
}

/// The number of bytes base64 `text` decodes to (exact for valid base64; whitespace, such as
/// line breaks, is not counted). `maxsingleinputsize` limits this, not the length of the text.
pub(crate) fn base64_decoded_len(text: &str) -> usize {
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
pub(crate) fn base64_text_limit(max: u64) -> u64 {
    let text = max.div_ceil(3).saturating_mul(4);
    text.saturating_add(text / 8)
}

impl Service {
    /// The reference policy of this service (`allowedhosts`, `allowedinputpaths`,
    /// `maxsingleinputsize`).
    pub fn fetch_policy(&self) -> FetchPolicy {
        FetchPolicy {
            allowed_hosts: self.config.server.allowedhosts.clone(),
            allowed_paths: self.config.server.allowedinputpaths.clone(),
            max_size: self.config.server.maxsingleinputsize,
            timeout: FETCH_TIMEOUT,
            max_redirects: MAX_REDIRECTS,
        }
    }

    /// Checks the inputs without network traffic: everything `validate_inputs` checks, with
    /// references checked for format and by [`FetchPolicy::precheck`] but not fetched.
    pub fn precheck_inputs(
        &self,
        desc: &ProcessDescription,
        inputs: &[Input],
    ) -> WpsResult<Inputs> {
        if inputs.len() > MAX_INPUTS {
            return Err(WpsError::invalid(
                "DataInputs",
                format!("more than {MAX_INPUTS} inputs"),
            ));
        }
        let checked =
            validate_inputs_unfetched(desc, inputs, self.config.server.maxsingleinputsize)?;
        let policy = self.fetch_policy();
        let max = policy.max_size;
        for i in inputs {
            if let InputData::Reference(r) = &i.data {
                policy
                    .precheck(&r.href)
                    .map_err(|e| fetch_error(&i.identifier, e, max))?;
                if let Some(b) = &r.body_reference {
                    policy
                        .precheck(b)
                        .map_err(|e| fetch_error(&i.identifier, e, max))?;
                }
            }
        }
        Ok(checked)
    }

    /// Fetches the references among `inputs` and validates the result: the inputs a process
    /// gets. `checked` (from `precheck_inputs`) is returned as it is when there is no reference.
    pub fn prepare_inputs(
        &self,
        desc: &ProcessDescription,
        inputs: &[Input],
        checked: Option<Inputs>,
    ) -> WpsResult<Inputs> {
        let has_refs = inputs
            .iter()
            .any(|i| matches!(i.data, InputData::Reference(_)));
        match checked {
            Some(c) if !has_refs => return Ok(c),
            _ => {}
        }
        let fetched = self.fetch_references(desc, inputs)?;
        validate_inputs(desc, &fetched, self.config.server.maxsingleinputsize)
    }

    /// Replaces each reference input by the data it refers to.
    pub fn fetch_references(
        &self,
        desc: &ProcessDescription,
        inputs: &[Input],
    ) -> WpsResult<Vec<Input>> {
        if inputs.len() > MAX_INPUTS {
            return Err(WpsError::invalid(
                "DataInputs",
                format!("more than {MAX_INPUTS} inputs"),
            ));
        }
        let policy = self.fetch_policy();
        let mut out = Vec::with_capacity(inputs.len());
        for i in inputs {
            let InputData::Reference(r) = &i.data else {
                out.push(i.clone());
                continue;
            };
            let id = i.identifier.as_str();
            let spec = desc.input(id).ok_or_else(|| {
                WpsError::invalid(
                    id,
                    format!("Process '{}' has no input '{id}'", desc.identifier),
                )
            })?;
            // the limit is on the decoded size: base64 text may be longer (checked once decoded)
            let already_base64 = crate::model::format::is_base64(r.encoding.as_deref());
            let fetched = if already_base64 {
                let mut p = policy.clone();
                p.max_size = base64_text_limit(policy.max_size);
                p.fetch(r)
            } else {
                policy.fetch(r)
            };
            let fetched = fetched.map_err(|e| fetch_error(id, e, policy.max_size))?;
            let data = match &spec.data {
                DataSpec::Literal(_) => {
                    let text = String::from_utf8(fetched.data).map_err(|_| {
                        WpsError::invalid(
                            id,
                            format!("Input '{id}': the referenced literal is not UTF-8 text"),
                        )
                    })?;
                    InputData::Literal(LiteralValue {
                        value: text.trim().to_owned(),
                        ..Default::default()
                    })
                }
                DataSpec::BoundingBox { .. } => {
                    return Err(WpsError::invalid(
                        id,
                        format!("Input '{id}': bounding boxes cannot be given by reference"),
                    ))
                }
                DataSpec::Complex { formats, .. } => {
                    // the declared mimeType wins; else the server's Content-Type when supported
                    let mime = r.mime_type.clone().or_else(|| {
                        let ct = fetched.content_type.as_deref()?;
                        crate::model::format::select(formats, Some(ct), None, None)
                            .ok()
                            .map(|f| f.mime_type.clone())
                    });
                    let (content, encoding) = match String::from_utf8(fetched.data) {
                        Ok(text) => (text, r.encoding.clone()),
                        Err(e) if !already_base64 => (
                            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                            Some("base64".to_owned()),
                        ),
                        Err(_) => {
                            return Err(WpsError::invalid(
                                id,
                                format!("Input '{id}': the referenced data is not base64 text"),
                            ))
                        }
                    };
                    let is_xml = content.trim_start().starts_with('<');
                    InputData::Complex(ComplexValue {
                        mime_type: mime,
                        encoding,
                        schema: r.schema.clone(),
                        content,
                        is_xml,
                    })
                }
            };
            out.push(Input {
                identifier: i.identifier.clone(),
                data,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::service::ServiceConfig;
    use crate::engine::service::{Body, HttpRequest, HttpResponse, Service};
    use crate::exec::pool::{Pool, PoolConfig};
    use crate::exec::runner::Runner;
    use std::sync::Arc;

    const POLYGONS: &str = include_str!("../../tests/data/polygons.gml");

    fn runner(server: &str) -> (Arc<Runner>, std::path::PathBuf) {
        runner_sized("8kb", server)
    }

    fn runner_sized(max_single: &str, server: &str) -> (Arc<Runner>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mod_wps-inputs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/polygons.gml"), POLYGONS).unwrap();
        let text = format!(
            "[server]\nworkdir = {}\nmaxsingleinputsize = {max_single}\n{server}\n[processes]\nbuiltin = all\n",
            dir.join("work").display()
        );
        let cfg = ServiceConfig::parse(&text, &dir.join("wps.cfg")).unwrap();
        let s = Service::from_config(cfg).unwrap();
        s.store.prepare(None).unwrap();
        let r = Runner::start(
            Arc::new(s),
            Pool::start(PoolConfig::new("t")),
            true,
            Arc::new(|_, _| {}),
        );
        (r, dir)
    }

    fn req(r: &Runner, method: &str, query: &str, body: &str) -> (u16, String) {
        let resp: HttpResponse = r.service.handle(
            &HttpRequest {
                method,
                query,
                body: Body::Bytes(body.as_bytes().to_vec()),
                base_url: "http://h/wps",
            },
            r,
        );
        (
            resp.status,
            String::from_utf8_lossy(&resp.body).into_owned(),
        )
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

    const RAW_COUNT: &str = "<wps:ResponseForm><wps:RawDataOutput><ows:Identifier>count</ows:Identifier></wps:RawDataOutput></wps:ResponseForm>";

    #[test]
    fn complex_inputs_inline_base64_and_format_checks() {
        let (r, dir) = runner("");
        let body = POLYGONS
            .trim_start_matches(|c| c != '>')
            .trim_start_matches('>');
        let (st, t) = req(
            &r,
            "POST",
            "",
            &exec_xml(
                "feature_count",
                &complex("layer", r#"mimeType="application/gml+xml""#, body),
                RAW_COUNT,
            ),
        );
        assert_eq!((st, t.as_str()), (200, "3"));
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(POLYGONS);
        let (st, t) = req(
            &r,
            "POST",
            "",
            &exec_xml(
                "feature_count",
                &complex(
                    "layer",
                    r#"mimeType="application/gml+xml" encoding="base64""#,
                    &b64,
                ),
                RAW_COUNT,
            ),
        );
        assert_eq!((st, t.as_str()), (200, "3"));
        let (st, t) = req(
            &r,
            "POST",
            "",
            &exec_xml(
                "feature_count",
                &complex("layer", "", &format!("<![CDATA[{POLYGONS}]]>")),
                RAW_COUNT,
            ),
        );
        assert_eq!((st, t.as_str()), (200, "3"), "{t}");
        for (attrs, what) in [
            (r#"mimeType="text/csv""#, "text/csv"),
            (r#"encoding="gzip""#, "gzip"),
            (
                r#"mimeType="application/gml+xml" encoding="base64""#,
                "base64",
            ),
        ] {
            let (st, t) = req(
                &r,
                "POST",
                "",
                &exec_xml(
                    "feature_count",
                    &complex("layer", attrs, "!!not base64!!"),
                    RAW_COUNT,
                ),
            );
            assert_eq!(st, 400, "{t}");
            assert!(
                t.contains(r#"exceptionCode="InvalidParameterValue" locator="layer""#),
                "{t}"
            );
            assert!(t.contains(what), "{t}");
        }
        // decoded base64 larger than maxsingleinputsize (8kb; 7000 bytes, whose base64 is
        // larger than 8kb, used to be refused here although they are within the limit)
        let big = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 8193]);
        let (st, t) = req(
            &r,
            "POST",
            "",
            &exec_xml(
                "feature_count",
                &complex("layer", r#"encoding="base64""#, &big),
                RAW_COUNT,
            ),
        );
        assert!(st == 413 && t.contains(r#"locator="layer""#), "{st} {t}");
        // output format selection: an unsupported mimeType/encoding is refused before running
        let q = "service=WPS&version=1.0.0&request=Execute&identifier=centroids&DataInputs=layer=x@mimeType=application/gml%2Bxml&RawDataOutput=out@mimeType=text/csv";
        let (st, t) = req(&r, "GET", q, "");
        assert!(st == 400 && t.contains(r#"locator="out""#), "{t}");
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

    /// maxsingleinputsize limits decoded bytes: with 1kb, base64 of 900 bytes (1200
    /// characters) passes, base64 of 1100 bytes does not; inline and by reference.
    #[test]
    fn maxsingleinputsize_is_the_decoded_size() {
        use crate::engine::service::{validate_inputs, validate_inputs_unfetched};
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
                content,
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
        assert_eq!(crate::engine::inputs::base64_decoded_len(&b64(1100)), 1100);
        assert_eq!(
            crate::engine::inputs::base64_decoded_len(&wrapped(b64(1022))),
            1022
        );
        // through a whole request: 413 with the locator (not a decoding or format error)
        let (st, t) = req(
            &r,
            "POST",
            "",
            &exec_xml(
                "feature_count",
                &complex(
                    "layer",
                    r#"mimeType="application/gml+xml" encoding="base64""#,
                    &b64(1100),
                ),
                RAW_COUNT,
            ),
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
}
