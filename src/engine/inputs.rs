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
use crate::engine::service::Service;
use crate::engine::validate::{validate_inputs, validate_inputs_unfetched};
use crate::model::format::base64_text_limit;
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
        e => WpsError::new(
            ExceptionCode::DataNotAccessible,
            Some(id),
            format!("Input '{id}': {e}"),
        ),
    }
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
                WpsError::new(
                    ExceptionCode::NoSuchInput,
                    Some(id),
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
                        content: content.into(),
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
