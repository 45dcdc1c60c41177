//! The engine entry point: one `Service` per `WPSScriptAlias`, answering HTTP-level requests
//! (method, query, body) with HTTP-level responses. No Apache types here.

use crate::config::service::{ConfigError, ProcessSelection, ServiceConfig};
use crate::exec::runner::{requested_outputs, unix_now, Outcome, Runner};
use crate::front::wps1::request::{Execute, Request, ResponseForm};
use crate::front::wps1::response;
use crate::front::wps1::{kvp, xml_request};
use crate::jobs::store::{valid_id, JobSpec, JobStore};
use crate::model::format::content_type_for;
use crate::model::LogLevel;
use crate::model::{
    ComplexValue, ExceptionCode, Input, InputData, OutputRequest, WpsError, WpsResult,
};
use crate::model::{DataSpec, Inputs, OutputSpec, OutputValue, Process, ProcessDescription, Value};
use crate::processes;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The request body as the front end read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Bytes(Vec<u8>),
    /// The body was larger than `Service::max_request_size()`; reading stopped there.
    TooLarge,
}

#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Raw (still percent-encoded) query string, without '?'.
    pub query: &'a str,
    pub body: Body,
    /// The URL of this service as the client reached it (scheme://host:port/path), used when
    /// the service config has no `url`.
    pub base_url: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Lines for the error log.
    pub log: Vec<(LogLevel, String)>,
}

impl HttpResponse {
    fn xml(status: u16, body: String) -> Self {
        HttpResponse {
            status,
            content_type: "text/xml; charset=utf-8".into(),
            headers: Vec::new(),
            body: body.into_bytes(),
            log: Vec::new(),
        }
    }
}

pub const XML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// An `ows:ExceptionReport` response for `err` (used by the front end too, e.g. for panics).
pub fn error_response(err: &WpsError, lang: &str) -> HttpResponse {
    let mut r = HttpResponse::xml(
        err.code.http_status(),
        response::exception_report(err, lang),
    );
    if err.code == ExceptionCode::ServerBusy {
        r.headers.push(("Retry-After".into(), "5".into()));
    }
    r
}

pub struct Service {
    pub config: ServiceConfig,
    processes: Vec<Arc<dyn Process>>,
    /// The durable job store under `workdir` (status documents and outputs under `outputpath`).
    pub store: JobStore,
}

/// The default `workdir` of a service config file that sets none.
pub fn default_workdir(config_path: &Path) -> PathBuf {
    let name: String = config_path
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Path::new("/var/lib/mod_wps").join(name)
}

impl Service {
    /// Loads and checks a service config file.
    pub fn load(path: &Path) -> Result<Service, ConfigError> {
        let config = ServiceConfig::load(path)?;
        Self::from_config(config)
    }

    pub fn from_config(config: ServiceConfig) -> Result<Service, ConfigError> {
        let mut known: Vec<&str> = processes::BUILTIN_IDS
            .iter()
            .chain(processes::DIAGNOSTIC_IDS)
            .copied()
            .collect();
        // command-line processes ([process:ID]) may have `[processes] ID.timeout` too
        known.extend(
            config
                .commands
                .iter()
                .map(|c| c.description.identifier.as_str()),
        );
        config.check_processes(&known)?;
        let ids: Vec<String> = match &config.processes {
            ProcessSelection::All => processes::BUILTIN_IDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ProcessSelection::List(l) => l.clone(),
        };
        let mut processes: Vec<Arc<dyn Process>> =
            ids.iter().filter_map(|id| processes::builtin(id)).collect();
        let workdir = config
            .server
            .workdir
            .clone()
            .unwrap_or_else(|| default_workdir(&config.path));
        let outputs = config
            .server
            .outputpath
            .clone()
            .unwrap_or_else(|| workdir.join("outputs"));
        let store = JobStore::new(
            workdir,
            outputs,
            config.server.parallelprocesses,
            config.server.maxprocesses,
        );
        let builtins: Vec<String> = processes
            .iter()
            .map(|p| p.description().identifier.clone())
            .collect();
        let builtins: Vec<&str> = builtins.iter().map(String::as_str).collect();
        let jobs = store.root().join("jobs");
        let commands = processes::command::build(&config.commands, &builtins, &config.path, &jobs)?;
        processes.extend(commands);
        Ok(Service {
            config,
            processes,
            store,
        })
    }

    pub fn max_request_size(&self) -> u64 {
        self.config.server.maxrequestsize
    }

    pub fn default_language(&self) -> &str {
        &self.config.server.languages[0]
    }

    pub fn process(&self, id: &str) -> Option<&Arc<dyn Process>> {
        self.processes
            .iter()
            .find(|p| p.description().identifier == id)
    }

    pub fn process_ids(&self) -> Vec<&str> {
        self.processes
            .iter()
            .map(|p| p.description().identifier.as_str())
            .collect()
    }

    fn url<'a>(&'a self, req: &'a HttpRequest) -> &'a str {
        self.config.server.url.as_deref().unwrap_or(req.base_url)
    }

    /// The base URL of status documents and stored outputs (ends with '/').
    fn output_url(&self, req: &HttpRequest) -> String {
        match &self.config.server.outputurl {
            Some(u) if u.ends_with('/') => u.clone(),
            Some(u) => format!("{u}/"),
            None => format!("{}/outputs/", req.base_url.trim_end_matches('/')),
        }
    }

    /// Serves a status document or stored output: `rel` is the path below the output URL.
    /// Only `<job-id>.xml` and `<job-id>/<output>.<ext>` exist; anything else is 404.
    pub fn serve_output(&self, rel: &str, head: bool) -> HttpResponse {
        let not_found = || HttpResponse {
            status: 404,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Vec::new(),
            body: b"Not Found\n".to_vec(),
            log: Vec::new(),
        };
        let file = match rel.split_once('/') {
            None => match rel.strip_suffix(".xml") {
                Some(id) if valid_id(id) => self.store.status_path(id),
                _ => return not_found(),
            },
            Some((id, name)) => {
                let ok_name = !name.starts_with('.')
                    && name.len() <= 200
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !valid_id(id) || !ok_name {
                    return not_found();
                }
                self.store.outputs().join(id).join(name)
            }
        };
        let ext = file
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read(&file) {
            Ok(body) => HttpResponse {
                status: 200,
                content_type: content_type_for(&ext).into(),
                headers: vec![("Cache-Control".into(), "no-cache".into())],
                body: if head { Vec::new() } else { body },
                log: Vec::new(),
            },
            Err(_) => not_found(),
        }
    }

    /// Answers one request. Execute work runs through `runner` (this service's, in this child).
    pub fn handle(&self, req: &HttpRequest, runner: &Runner) -> HttpResponse {
        let mut log = Vec::new();
        let lang_default = self.default_language().to_owned();
        let mut lang = lang_default.clone();
        let result = self.parse(req).and_then(|r| {
            lang = self.negotiate_language(r.language())?;
            self.dispatch(req, r, &lang, runner)
        });
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                if e.code == ExceptionCode::NoApplicableCode {
                    log.push((LogLevel::Error, e.to_string()));
                } else {
                    log.push((LogLevel::Debug, e.to_string()));
                }
                let mut r = error_response(&e, &lang);
                if !matches!(req.method, "GET" | "HEAD" | "POST") {
                    r.status = 405;
                    r.headers.push(("Allow".into(), "GET, HEAD, POST".into()));
                }
                r
            }
        };
        resp.log.append(&mut log);
        resp
    }

    fn parse(&self, req: &HttpRequest) -> WpsResult<Request> {
        match req.method {
            "GET" | "HEAD" => kvp::parse(req.query),
            "POST" => match &req.body {
                Body::TooLarge => Err(WpsError::new(
                    ExceptionCode::FileSizeExceeded,
                    None,
                    format!(
                        "The request body is larger than maxrequestsize ({} bytes)",
                        self.max_request_size()
                    ),
                )),
                Body::Bytes(b)
                    if b.iter().all(u8::is_ascii_whitespace) && !req.query.is_empty() =>
                {
                    kvp::parse(req.query)
                }
                Body::Bytes(b) => xml_request::parse(b),
            },
            m => Err(WpsError::new(
                ExceptionCode::OperationNotSupported,
                Some(m),
                format!("HTTP method {m} is not supported; use GET or POST"),
            )),
        }
    }

    fn negotiate_language(&self, requested: Option<&str>) -> WpsResult<String> {
        match requested {
            None => Ok(self.default_language().to_owned()),
            Some(l) => self
                .config
                .server
                .languages
                .iter()
                .find(|s| s.eq_ignore_ascii_case(l.trim()))
                .cloned()
                .ok_or_else(|| {
                    WpsError::invalid(
                        "language",
                        format!(
                            "Language '{l}' is not supported; supported: {}",
                            self.config.server.languages.join(", ")
                        ),
                    )
                }),
        }
    }

    fn dispatch(
        &self,
        req: &HttpRequest,
        r: Request,
        lang: &str,
        runner: &Runner,
    ) -> WpsResult<HttpResponse> {
        match r {
            Request::GetCapabilities(_) => {
                let descs: Vec<&ProcessDescription> =
                    self.processes.iter().map(|p| p.description()).collect();
                Ok(HttpResponse::xml(
                    200,
                    response::capabilities(
                        &self.config.metadata,
                        self.url(req),
                        &self.config.server.languages,
                        lang,
                        &descs,
                    ),
                ))
            }
            Request::DescribeProcess(d) => {
                let all = d.identifiers.iter().any(|i| i.eq_ignore_ascii_case("all"));
                let descs: Vec<&ProcessDescription> = if all {
                    self.processes.iter().map(|p| p.description()).collect()
                } else {
                    d.identifiers
                        .iter()
                        .map(|id| {
                            self.process(id).map(|p| p.description()).ok_or_else(|| {
                                WpsError::invalid("identifier", format!("Unknown process '{id}'"))
                            })
                        })
                        .collect::<WpsResult<_>>()?
                };
                Ok(HttpResponse::xml(
                    200,
                    response::process_descriptions(lang, &descs),
                ))
            }
            Request::Execute(e) => self.execute(req, e, lang, runner),
        }
    }

    fn execute(
        &self,
        req: &HttpRequest,
        e: Execute,
        lang: &str,
        runner: &Runner,
    ) -> WpsResult<HttpResponse> {
        let process = self
            .process(&e.identifier)
            .ok_or_else(|| {
                WpsError::invalid("identifier", format!("Unknown process '{}'", e.identifier))
            })?
            .clone();
        let desc = process.description();
        // no network traffic here; references are fetched below (sync) or in the job (async)
        let checked = self.precheck_inputs(desc, &e.inputs)?;
        check_outputs(desc, &e.response)?;
        let id = uuid::Uuid::new_v4().to_string();
        let spec = |response| JobSpec {
            key: JobSpec::new_key(&id),
            id: id.clone(),
            process: desc.identifier.clone(),
            inputs: e.inputs.clone(),
            response,
            lang: lang.to_owned(),
            service_instance: format!("{}?service=WPS&request=GetCapabilities", self.url(req)),
            output_url: self.output_url(req),
            submitted: unix_now(),
            attempts: 0,
            owner: 0,
        };
        match &e.response {
            ResponseForm::Document(d) => {
                if d.status && !d.store_execute_response {
                    return Err(WpsError::invalid(
                        "storeExecuteResponse",
                        "status=true requires storeExecuteResponse=true",
                    ));
                }
                if d.store_execute_response {
                    if !desc.store_supported {
                        return Err(WpsError::new(
                            ExceptionCode::StorageNotSupported,
                            Some("storeExecuteResponse"),
                            format!(
                                "Process '{}' does not support storeExecuteResponse",
                                desc.identifier
                            ),
                        ));
                    }
                    if d.status && !desc.status_supported {
                        return Err(WpsError::invalid(
                            "status",
                            format!("Process '{}' does not report status", desc.identifier),
                        ));
                    }
                    let doc = runner.submit(&spec(d.clone()))?;
                    return Ok(HttpResponse::xml(200, doc));
                }
                let inputs = self.prepare_inputs(desc, &e.inputs, Some(checked))?;
                let outputs = runner.execute_sync(process.clone(), inputs)?;
                let doc = runner.final_document(&spec(d.clone()), &Outcome::Done(outputs), false);
                Ok(HttpResponse::xml(200, doc))
            }
            ResponseForm::Raw(o) => {
                let inputs = self.prepare_inputs(desc, &e.inputs, Some(checked))?;
                let outputs = runner.execute_sync(process.clone(), inputs)?;
                let value = outputs
                    .get_format(&o.identifier, o.mime_type.as_deref())
                    .ok_or_else(|| {
                        WpsError::no_applicable(format!(
                            "Process '{}' produced no output '{}'",
                            desc.identifier, o.identifier
                        ))
                    })?;
                Ok(raw_output(value, o))
            }
        }
    }
}

/// A bounding-box value as a standalone `ows:BoundingBox` document.
pub fn bbox_document(value: &OutputValue) -> String {
    match value {
        OutputValue::BoundingBox(b) => response::bounding_box_document(b),
        _ => String::new(),
    }
}

/// RawDataOutput: the bare value with its media type.
fn raw_output(value: &OutputValue, req: &OutputRequest) -> HttpResponse {
    let (ct, body) = match value {
        OutputValue::Literal(s) => (
            "text/plain; charset=utf-8".to_owned(),
            s.clone().into_bytes(),
        ),
        OutputValue::Complex { mime_type, data } => (
            req.mime_type.clone().unwrap_or_else(|| mime_type.clone()),
            match crate::model::format::is_base64(req.encoding.as_deref()) {
                true => crate::model::format::encode_base64(data).into_bytes(),
                false => data.clone(),
            },
        ),
        OutputValue::BoundingBox(_) => (
            XML_CONTENT_TYPE.to_owned(),
            bbox_document(value).into_bytes(),
        ),
    };
    HttpResponse {
        status: 200,
        content_type: ct,
        headers: vec![(
            "Content-Disposition".into(),
            format!(
                "inline; filename=\"{}\"",
                req.identifier.replace(['"', '\\'], "_")
            ),
        )],
        body,
        log: Vec::new(),
    }
}

/// Checks the outputs a ResponseForm asks for (all of them when it names none): they exist
/// and their requested formats are supported.
fn check_outputs(desc: &ProcessDescription, form: &ResponseForm) -> WpsResult<()> {
    let requested = match form {
        ResponseForm::Raw(o) => vec![o.clone()],
        ResponseForm::Document(d) => requested_outputs(&desc.outputs, &d.outputs),
    };
    for o in &requested {
        let spec = desc.output(&o.identifier).ok_or_else(|| {
            WpsError::invalid(
                &o.identifier,
                format!(
                    "Process '{}' has no output '{}'",
                    desc.identifier, o.identifier
                ),
            )
        })?;
        check_output_format(spec, o)?;
    }
    Ok(())
}

fn check_output_format(spec: &OutputSpec, o: &OutputRequest) -> WpsResult<()> {
    if let DataSpec::Complex { formats, .. } = &spec.data {
        crate::model::format::select(
            formats,
            o.mime_type.as_deref(),
            o.encoding.as_deref(),
            o.schema.as_deref(),
        )
        .map_err(|m| WpsError::invalid(&o.identifier, format!("Output '{}': {m}", o.identifier)))?;
    }
    Ok(())
}

/// The EPSG code in the usual spellings of a CRS identifier, lower-cased otherwise.
fn crs_key(crs: &str) -> String {
    let c = crs.trim().to_ascii_lowercase();
    if c.contains("epsg") {
        if let Some(code) = c.rsplit([':', '/']).next() {
            if !code.is_empty() && code.chars().all(|ch| ch.is_ascii_digit()) {
                return format!("epsg:{code}");
            }
        }
    }
    c
}

/// Checks the inputs of an Execute request against the process description: known
/// identifiers, occurrences, literal types and allowed values, bounding-box CRS, complex
/// formats, and the size of each value against `max_single` (maxsingleinputsize). Missing
/// optional inputs with a default get it. References must have been fetched
/// (`Service::prepare_inputs`).
pub fn validate_inputs(
    desc: &ProcessDescription,
    inputs: &[Input],
    max_single: u64,
) -> WpsResult<Inputs> {
    validate_inputs_impl(desc, inputs, max_single, false)
}

/// Like `validate_inputs`, but references not fetched yet pass (their format is checked) with
/// an empty placeholder value: for checks before the data is fetched.
pub(crate) fn validate_inputs_unfetched(
    desc: &ProcessDescription,
    inputs: &[Input],
    max_single: u64,
) -> WpsResult<Inputs> {
    validate_inputs_impl(desc, inputs, max_single, true)
}

fn validate_inputs_impl(
    desc: &ProcessDescription,
    inputs: &[Input],
    max_single: u64,
    unfetched_ok: bool,
) -> WpsResult<Inputs> {
    let mut out = Vec::with_capacity(inputs.len());
    for i in inputs {
        let spec = desc.input(&i.identifier).ok_or_else(|| {
            WpsError::invalid(
                &i.identifier,
                format!(
                    "Process '{}' has no input '{}'",
                    desc.identifier, i.identifier
                ),
            )
        })?;
        let id = i.identifier.as_str();
        let bad = |m: String| WpsError::invalid(id, format!("Input '{id}': {m}"));
        let size = match &i.data {
            InputData::Literal(l) => l.value.len(),
            InputData::Complex(c) => c.content.len(),
            _ => 0,
        };
        if size as u64 > max_single {
            return Err(WpsError::new(
                ExceptionCode::FileSizeExceeded,
                Some(id),
                format!("Input '{id}' is {size} bytes; maxsingleinputsize is {max_single} bytes"),
            ));
        }
        if matches!(i.data, InputData::Reference(_)) && !unfetched_ok {
            return Err(WpsError::no_applicable(format!(
                "Input '{id}': the reference was not fetched"
            )));
        }
        let value = match (&spec.data, &i.data) {
            (DataSpec::Literal(l), InputData::Literal(v)) => {
                Value::Literal(l.check(&v.value).map_err(bad)?)
            }
            // checked once fetched
            (DataSpec::Literal(_), InputData::Reference(_)) => Value::Literal(String::new()),
            (DataSpec::Literal(_), _) => return Err(bad("a literal value is expected".into())),
            (DataSpec::BoundingBox { crss, dimensions }, d) => {
                let mut b = match d {
                    InputData::BoundingBox(b) => b.clone(),
                    InputData::Literal(v) => crate::model::parse_kvp_bbox(&v.value).map_err(bad)?,
                    InputData::Reference(_) => {
                        return Err(bad("bounding boxes cannot be given by reference".into()))
                    }
                    _ => return Err(bad("a bounding box is expected".into())),
                };
                let dims = b.dimensions.unwrap_or(b.lower.len() as u32);
                if b.lower.len() != b.upper.len()
                    || b.lower.len() as u32 != dims
                    || dims != *dimensions
                {
                    return Err(bad(format!(
                        "a {dimensions}-dimensional bounding box is expected"
                    )));
                }
                if b.lower.iter().zip(&b.upper).any(|(l, u)| l > u) {
                    return Err(bad("the lower corner is above the upper corner".into()));
                }
                match &b.crs {
                    None => b.crs = Some(crss[0].clone()),
                    Some(c) if !crss.iter().any(|s| crs_key(s) == crs_key(c)) => {
                        return Err(bad(format!(
                            "CRS '{c}' is not supported; supported: {}",
                            crss.join(", ")
                        )))
                    }
                    _ => {}
                }
                Value::BoundingBox(b)
            }
            (DataSpec::Complex { formats, .. }, d) => {
                let mut c = match d {
                    InputData::Complex(c) => c.clone(),
                    InputData::Literal(v) => ComplexValue {
                        is_xml: v.value.trim_start().starts_with('<'),
                        content: v.value.clone(),
                        ..Default::default()
                    },
                    InputData::Reference(r) => ComplexValue {
                        mime_type: r.mime_type.clone(),
                        encoding: r.encoding.clone(),
                        schema: r.schema.clone(),
                        ..Default::default()
                    },
                    _ => return Err(bad("complex data is expected".into())),
                };
                let f = crate::model::format::select(
                    formats,
                    c.mime_type.as_deref(),
                    c.encoding.as_deref(),
                    c.schema.as_deref(),
                )
                .map_err(bad)?;
                if c.mime_type.is_none() {
                    c.mime_type = Some(f.mime_type.clone());
                }
                if crate::model::format::is_base64(c.encoding.as_deref()) {
                    let n = c.data().map_err(bad)?.len();
                    if n as u64 > max_single {
                        return Err(WpsError::new(
                            ExceptionCode::FileSizeExceeded,
                            Some(id),
                            format!("Input '{id}' is {n} bytes; maxsingleinputsize is {max_single} bytes"),
                        ));
                    }
                }
                Value::Complex(c)
            }
        };
        out.push((i.identifier.clone(), value));
    }
    for spec in &desc.inputs {
        let n = out.iter().filter(|(k, _)| *k == spec.identifier).count() as u32;
        if n > spec.max_occurs {
            return Err(WpsError::invalid(
                &spec.identifier,
                format!(
                    "Input '{}' occurs {n} times; at most {} allowed",
                    spec.identifier, spec.max_occurs
                ),
            ));
        }
        if n < spec.min_occurs {
            if let (0, DataSpec::Literal(l)) = (n, &spec.data) {
                if let Some(d) = &l.default {
                    out.push((spec.identifier.clone(), Value::Literal(d.clone())));
                    continue;
                }
            }
            return Err(WpsError::missing(
                &spec.identifier,
                format!(
                    "Input '{}' is required (at least {} value{})",
                    spec.identifier,
                    spec.min_occurs,
                    if spec.min_occurs == 1 { "" } else { "s" }
                ),
            ));
        }
        if n == 0 {
            if let DataSpec::Literal(l) = &spec.data {
                if let Some(d) = &l.default {
                    out.push((spec.identifier.clone(), Value::Literal(d.clone())));
                }
            }
        }
    }
    Ok(Inputs(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::pool::{Pool, PoolConfig};
    use crate::model::LiteralValue;

    fn service(extra: &str) -> Service {
        let dir = std::env::temp_dir().join(format!("mod_wps-svc-{}", uuid::Uuid::new_v4()));
        let text = format!("[server]\nworkdir = {}\nmaxsingleinputsize = 1kb\nmaxrequestsize = 2kb\nlanguage = en-US, fr-FR\n[processes]\nbuiltin = {extra}\n", dir.display());
        let cfg = ServiceConfig::parse(&text, Path::new("/etc/wps/t.cfg")).unwrap();
        let s = Service::from_config(cfg).unwrap();
        s.store.prepare(None).unwrap();
        s
    }

    fn runner(s: Service, cfg: PoolConfig) -> Arc<Runner> {
        Runner::start(Arc::new(s), Pool::start(cfg), true, Arc::new(|_, _| {}))
    }

    fn get(r: &Runner, q: &str) -> HttpResponse {
        r.service.handle(
            &HttpRequest {
                method: "GET",
                query: q,
                body: Body::Bytes(vec![]),
                base_url: "http://h/wps",
            },
            r,
        )
    }

    fn text(r: &HttpResponse) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    #[test]
    fn unknown_builtin_is_a_config_error() {
        let cfg = ServiceConfig::parse(
            "[processes]\nbuiltin = say_hello, nope\n",
            Path::new("/x.cfg"),
        )
        .unwrap();
        let e = Service::from_config(cfg).err().unwrap();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("nope"));
    }

    #[test]
    fn answers_operations_and_errors() {
        let rn = runner(
            service("say_hello, sleep, selftest_panic"),
            PoolConfig::new("t"),
        );
        let r = get(&rn, "service=WPS&request=GetCapabilities&language=fr-FR");
        assert_eq!(r.status, 200);
        assert!(text(&r).contains("xml:lang=\"fr-FR\""));
        assert!(text(&r).contains("<ows:Get xlink:href=\"http://h/wps?\"/>"));
        let r = get(
            &rn,
            "service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=x",
        );
        assert!(text(&r).contains(">Hello x<"), "{}", text(&r));
        // an oversized input value
        let long = "x".repeat(2000);
        let r = get(&rn, &format!("service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name={long}"));
        assert_eq!(r.status, 413);
        assert!(text(&r).contains("FileSizeExceeded"));
        // a panicking process: 500 + a log line, and the pool keeps working
        let r = get(
            &rn,
            "service=WPS&version=1.0.0&request=Execute&identifier=selftest_panic",
        );
        assert_eq!(r.status, 500);
        assert!(text(&r).contains("NoApplicableCode"));
        assert!(text(&r).contains("crashed"), "{}", text(&r));
        let r = get(
            &rn,
            "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0",
        );
        assert!(text(&r).contains("done sleeping"));
        // body too large
        let r = rn.service.handle(
            &HttpRequest {
                method: "POST",
                query: "",
                body: Body::TooLarge,
                base_url: "http://h/wps",
            },
            &rn,
        );
        assert_eq!(r.status, 413);
    }

    #[test]
    fn timeout_answers_no_applicable_code() {
        let mut cfg = PoolConfig::new("slow");
        cfg.request_timeout = std::time::Duration::from_millis(200);
        let rn = runner(service("sleep"), cfg);
        let r = get(
            &rn,
            "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=5",
        );
        assert_eq!(r.status, 500);
        assert!(text(&r).contains("request timeout"), "{}", text(&r));
        assert!(text(&r).contains("'slow'"));
    }

    #[test]
    fn defaults_crs_and_occurrences() {
        let s = service("all");
        let bbox = s.process("boundingbox").unwrap().description().clone();
        let lit = |id: &str, v: &str| Input {
            identifier: id.into(),
            data: InputData::Literal(LiteralValue {
                value: v.into(),
                ..Default::default()
            }),
        };
        let ok = validate_inputs(
            &bbox,
            &[lit("bboxin", "1,2,3,4,urn:ogc:def:crs:EPSG::3035")],
            1000,
        )
        .unwrap();
        assert!(
            matches!(ok.first("bboxin"), Some(Value::BoundingBox(b)) if b.upper == vec![3.0, 4.0])
        );
        // no CRS: the default one
        let ok = validate_inputs(&bbox, &[lit("bboxin", "1,2,3,4")], 1000).unwrap();
        assert!(
            matches!(ok.first("bboxin"), Some(Value::BoundingBox(b)) if b.crs.as_deref() == Some("epsg:4326"))
        );
        let e = validate_inputs(&bbox, &[lit("bboxin", "1,2,3,4,EPSG:31467")], 1000).unwrap_err();
        assert_eq!(e.locator.as_deref(), Some("bboxin"));
        // a literal with a default fills in when absent
        let mut d = s.process("sleep").unwrap().description().clone();
        d.inputs[0].min_occurs = 0;
        if let DataSpec::Literal(l) = &mut d.inputs[0].data {
            l.default = Some("0.5".into());
        }
        let ok = validate_inputs(&d, &[], 1000).unwrap();
        assert_eq!(ok.literal("delay"), Some("0.5"));
        assert_eq!(
            crs_key("http://www.opengis.net/def/crs/EPSG/0/4326"),
            "epsg:4326"
        );
        assert_eq!(crs_key("EPSG:4326"), "epsg:4326");
    }
}
