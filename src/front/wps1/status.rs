//! The WPS 1.0.0 view of a job: the ExecuteResponse (status document) rendered from its
//! record when it is read, with the options the WPS 1.0.0 request gave.

use super::response::{self, ExecuteDoc, Lineage, OutputEntry, Status};
use super::Ctx;
use crate::engine::jobs::requested_outputs;
use crate::engine::Service;
use crate::jobs::{JobRecord, JobState, StoredValue};
use crate::model::{BoundingBox, OutputSpec, OutputValue, WpsError, WpsResult};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// What a WPS 1.0.0 Execute asked for, kept with its job (under `"wps1"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wps1Job {
    pub lang: String,
    /// `serviceInstance` of the ExecuteResponse.
    pub service_instance: String,
    /// Base URL of stored outputs (ends with '/').
    pub output_url: String,
    /// Base URL of status documents: `<status_base><id>.xml` (ends with '/').
    pub status_base: String,
    pub lineage: bool,
    /// Whether progress is reported (`status="true"`).
    pub status: bool,
}

impl Wps1Job {
    pub fn new(ctx: &Ctx, lang: &str, lineage: bool, status: bool) -> Self {
        Wps1Job {
            lang: lang.to_owned(),
            service_instance: format!("{}?service=WPS&request=GetCapabilities", ctx.url()),
            output_url: ctx.output_url(),
            status_base: ctx.status_base(),
            lineage,
            status,
        }
    }

    /// The options of a job, or the defaults of this request for a job submitted through
    /// another protocol.
    pub fn of(job: &JobRecord, ctx: &Ctx) -> Wps1Job {
        job.protocol
            .get("wps1")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_else(|| Wps1Job::new(ctx, ctx.service.default_language(), false, true))
    }
}

pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

/// An output as written into an ExecuteResponse: its value, its URL when given by reference,
/// and whether the client asked it base64-encoded.
pub type Entry<'a> = (&'a OutputSpec, OutputValue, Option<String>, bool);

/// Whether a complex output is asked `encoding="base64"`.
pub fn wants_base64(r: &crate::model::OutputRequest, v: &OutputValue) -> bool {
    matches!(v, OutputValue::Complex { .. })
        && crate::model::format::is_base64(r.encoding.as_deref())
}

/// The outputs of a finished job, read back from the store.
fn stored_entries<'a>(
    service: &Service,
    specs: &'a [OutputSpec],
    job: &JobRecord,
    output_url: &str,
) -> WpsResult<Vec<Entry<'a>>> {
    let mut v = Vec::new();
    for r in requested_outputs(specs, &job.outputs) {
        let spec = specs
            .iter()
            .find(|s| s.identifier == r.identifier)
            .ok_or_else(|| WpsError::no_applicable(format!("no output '{}'", r.identifier)))?;
        if job.outputs.is_empty() && job.output(&r.identifier).is_none() {
            continue; // all outputs asked: those the process produced
        }
        let stored = job.output(&r.identifier).ok_or_else(|| {
            WpsError::no_applicable(format!("the job has no output '{}'", r.identifier))
        })?;
        let entry = match (&stored.reference, &stored.value) {
            (Some(file), StoredValue::Complex { mime_type, .. }) => (
                OutputValue::Complex {
                    mime_type: mime_type.clone(),
                    data: Vec::new(),
                },
                Some(format!("{output_url}{}/{file}", job.id)),
            ),
            (Some(file), StoredValue::Literal(_)) => (
                OutputValue::Literal(String::new()),
                Some(format!("{output_url}{}/{file}", job.id)),
            ),
            (Some(file), StoredValue::BoundingBox(_)) => (
                OutputValue::BoundingBox(BoundingBox::default()),
                Some(format!("{output_url}{}/{file}", job.id)),
            ),
            (None, _) => (service.load_output(&job.id, stored)?, None),
        };
        let b64 = wants_base64(&r, &entry.0);
        v.push((spec, entry.0, entry.1, b64));
    }
    Ok(v)
}

/// Writes an ExecuteResponse.
pub fn document(
    job: &JobRecord,
    opts: &Wps1Job,
    desc: &crate::model::ProcessDescription,
    status: Status,
    entries: &[Entry],
    with_location: bool,
) -> String {
    let es: Vec<OutputEntry> = entries
        .iter()
        .map(|(s, v, r, b64)| OutputEntry {
            spec: s,
            value: v,
            reference: r.as_deref(),
            base64: *b64,
        })
        .collect();
    let location = format!("{}{}.xml", opts.status_base, job.id);
    response::execute_response(&ExecuteDoc {
        lang: &opts.lang,
        service_instance: &opts.service_instance,
        status_location: with_location.then_some(location.as_str()),
        process: desc,
        creation_time: &rfc3339(job.updated),
        status,
        lineage: opts.lineage.then_some(Lineage {
            inputs: &job.inputs,
            outputs: &job.outputs,
        }),
        outputs: &es,
    })
}

/// The status document of a stored job.
pub fn status_document(ctx: &Ctx, job: &JobRecord) -> WpsResult<String> {
    let opts = Wps1Job::of(job, ctx);
    let process = ctx.service.process(&job.process).ok_or_else(|| {
        WpsError::no_applicable(format!("process '{}' is no longer offered", job.process))
    })?;
    let desc = process.description();
    let failed = |e: &WpsError| document(job, &opts, desc, Status::Failed(e), &[], true);
    Ok(match job.state {
        JobState::Accepted => document(job, &opts, desc, Status::Accepted(&job.message), &[], true),
        JobState::Running => {
            let (percent, message) = if opts.status {
                (job.progress, job.message.as_str())
            } else {
                (0, "Process started")
            };
            document(
                job,
                &opts,
                desc,
                Status::Started { percent, message },
                &[],
                true,
            )
        }
        JobState::Succeeded => {
            match stored_entries(ctx.service, &desc.outputs, job, &opts.output_url) {
                Ok(entries) => document(
                    job,
                    &opts,
                    desc,
                    Status::Succeeded(&job.message),
                    &entries,
                    true,
                ),
                Err(e) => failed(&e),
            }
        }
        JobState::Failed | JobState::Dismissed => {
            let e = job
                .error
                .clone()
                .unwrap_or_else(|| WpsError::no_applicable(&job.message));
            failed(&e)
        }
    })
}
