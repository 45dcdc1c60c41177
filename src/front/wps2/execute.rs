//! WPS 2.0.0 Execute and the job operations (GetStatus, GetResult, Dismiss) on the engine's
//! jobs API. Jobs are read as the caller (`REMOTE_USER`): with `jobaccess = owner` another
//! user's job is `NoSuchJob`.

use super::request::{Execute, Mode};
use super::response::{self, ResultOutput, StatusInfo};
use super::{no_such_process, Ctx};
use crate::engine::jobs::requested_outputs;
use crate::engine::{Caller, Submission};
use crate::front::http::HttpResponse;
use crate::front::wps_common::{raw_response, raw_value};
use crate::jobs::{new_id, unix_now, JobOutput, JobRecord, JobState, StoredValue};
use crate::model::format::is_base64;
use crate::model::{ExceptionCode, LogLevel, OutputRequest, OutputValue, WpsError, WpsResult};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// Seconds a client is asked to wait before polling a queued or running job again.
pub const NEXT_POLL_SECS: u64 = 2;

/// What a WPS 2.0 Execute asked for, kept with its job (under `"wps2"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wps2Job {
    pub lang: String,
    /// Base URL of stored outputs (ends with '/').
    pub output_url: String,
    /// `response="raw"`: GetResult answers the single output's bytes.
    pub raw: bool,
}

impl Wps2Job {
    /// The options of a job, or this request's defaults for a job submitted through another
    /// protocol.
    pub fn of(job: &JobRecord, ctx: &Ctx) -> Wps2Job {
        job.protocol
            .get("wps2")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_else(|| Wps2Job {
                lang: ctx.service.default_language().to_owned(),
                output_url: ctx.output_url(),
                raw: false,
            })
    }
}

pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

fn no_such_job(id: &str) -> WpsError {
    WpsError::new(
        ExceptionCode::NoSuchJob,
        Some("JobID"),
        format!("No job '{id}'"),
    )
}

pub fn execute(ctx: &Ctx, e: Execute, lang: &str) -> WpsResult<HttpResponse> {
    let process = ctx
        .service
        .process(&e.identifier)
        .cloned()
        .ok_or_else(|| no_such_process(&e.identifier))?;
    let desc = process.description();
    for (n, o) in e.outputs.iter().enumerate() {
        if e.outputs[..n].iter().any(|p| p.identifier == o.identifier) {
            return Err(WpsError::new(
                ExceptionCode::TooManyOutputs,
                Some(&o.identifier),
                format!("output '{}' is asked for more than once", o.identifier),
            ));
        }
    }
    // raw: exactly one output (the only one of the process when none is named)
    let mut outputs = e.outputs.clone();
    if e.raw {
        if outputs.is_empty() && desc.outputs.len() == 1 {
            outputs = requested_outputs(&desc.outputs, &[]);
        }
        if outputs.len() != 1 {
            return Err(WpsError::new(
                ExceptionCode::TooManyOutputs,
                Some("response"),
                "response=\"raw\" delivers exactly one output; name it with wps:Output",
            ));
        }
    }
    let checked = ctx
        .service
        .check_request(process.as_ref(), &e.inputs, &outputs)?;
    if e.mode == Mode::Async {
        let opts = Wps2Job {
            lang: lang.to_owned(),
            output_url: ctx.output_url(),
            raw: e.raw,
        };
        let job = ctx.service.submit(
            ctx.backend,
            Submission {
                process: desc.identifier.clone(),
                inputs: e.inputs,
                outputs,
                user: ctx.req.user.map(str::to_owned),
                protocol: serde_json::json!({ "wps2": opts }),
            },
        )?;
        let mut r = HttpResponse::xml(200, status_document(ctx, &job));
        r.log.push((
            LogLevel::Info,
            format!("job {} ({}) accepted (WPS 2.0)", job.id, desc.identifier),
        ));
        return Ok(r);
    }
    // sync, and auto (which mod_wps runs synchronously)
    let values = ctx
        .service
        .run_sync(ctx.backend, process.clone(), &e.inputs, checked)?;
    if e.raw {
        let o = &outputs[0];
        let value = raw_value(desc, &values, o)?;
        return Ok(raw(value, o));
    }
    let id = new_id();
    let by_reference: Vec<OutputRequest> = requested_outputs(&desc.outputs, &outputs)
        .into_iter()
        .filter(|r| r.as_reference)
        .collect();
    let stored = if by_reference.is_empty() {
        Vec::new()
    } else {
        ctx.service
            .store_results(&id, desc, &by_reference, &values)?
    };
    let output_url = ctx.output_url();
    let mut entries = Vec::new();
    for r in requested_outputs(&desc.outputs, &outputs) {
        let Some(value) = values.get_format(&r.identifier, r.mime_type.as_deref()) else {
            if outputs.is_empty() {
                continue; // all outputs: those the process produced
            }
            return Err(WpsError::no_applicable(format!(
                "the process produced no output '{}'",
                r.identifier
            )));
        };
        let href = stored
            .iter()
            .find(|s| s.identifier == r.identifier)
            .and_then(|s| s.reference.as_ref())
            .map(|file| format!("{output_url}{id}/{file}"));
        entries.push((r, value.clone(), href));
    }
    let expiration = (!stored.is_empty())
        .then(|| expiration(ctx, unix_now()))
        .flatten();
    Ok(HttpResponse::xml(
        200,
        result_document(None, expiration.as_deref(), &entries),
    ))
}

fn result_document(
    job: Option<&str>,
    expiration: Option<&str>,
    entries: &[(OutputRequest, OutputValue, Option<String>)],
) -> String {
    let outs: Vec<ResultOutput> = entries
        .iter()
        .map(|(r, v, href)| ResultOutput {
            id: &r.identifier,
            value: v,
            href: href.as_deref(),
            base64: matches!(v, OutputValue::Complex { .. }) && is_base64(r.encoding.as_deref()),
        })
        .collect();
    response::result(job, expiration, &outs)
}

/// When the outputs of a job finished at `finished` are removed (`retention`), if ever.
fn expiration(ctx: &Ctx, finished: u64) -> Option<String> {
    ctx.service
        .config
        .server
        .retention
        .map(|r| rfc3339(finished + r.as_secs()))
}

/// The raw bytes of one output with its media type.
fn raw(value: &OutputValue, req: &OutputRequest) -> HttpResponse {
    raw_response(value, req, response::bounding_box_document)
}

/// The StatusInfo of a job.
fn status_document(ctx: &Ctx, job: &JobRecord) -> String {
    let poll = rfc3339(unix_now() + NEXT_POLL_SECS);
    let (status, percent, next_poll) = match job.state {
        JobState::Accepted => ("Accepted", Some(0), Some(poll)),
        JobState::Running => ("Running", Some(job.progress), Some(poll)),
        JobState::Succeeded => ("Succeeded", Some(100), None),
        JobState::Failed => ("Failed", None, None),
        JobState::Dismissed => ("Dismissed", None, None),
    };
    let expiration = match job.state {
        JobState::Succeeded | JobState::Failed => {
            expiration(ctx, job.finished.unwrap_or(job.updated))
        }
        _ => None,
    };
    response::status_info(&StatusInfo {
        job_id: &job.id,
        status,
        expiration: expiration.as_deref(),
        next_poll: next_poll.as_deref(),
        percent,
    })
}

fn find_job(ctx: &Ctx, id: &str) -> WpsResult<JobRecord> {
    ctx.service
        .job(id, Caller::new(ctx.req.user))?
        .ok_or_else(|| no_such_job(id))
}

pub fn get_status(ctx: &Ctx, id: &str) -> WpsResult<HttpResponse> {
    let job = find_job(ctx, id)?;
    Ok(HttpResponse::xml(200, status_document(ctx, &job)).with_header("Cache-Control", "no-cache"))
}

pub fn get_result(ctx: &Ctx, id: &str) -> WpsResult<HttpResponse> {
    let job = find_job(ctx, id)?;
    match job.state {
        JobState::Accepted | JobState::Running => {
            return Err(WpsError::new(
                ExceptionCode::ResultNotReady,
                Some("JobID"),
                format!("Job '{id}' has not finished; ask again after GetStatus says Succeeded"),
            ))
        }
        JobState::Failed | JobState::Dismissed => {
            let e = job
                .error
                .clone()
                .unwrap_or_else(|| WpsError::no_applicable(&job.message));
            // the process failed: FailedExecution (a client error of the job, e.g. a
            // reference that could not be fetched, keeps its own code)
            let e = if e.code == ExceptionCode::NoApplicableCode {
                WpsError::new(ExceptionCode::FailedExecution, Some("JobID"), e.text)
            } else {
                e
            };
            return Err(e);
        }
        JobState::Succeeded => {}
    }
    let opts = Wps2Job::of(&job, ctx);
    let asked = |o: &JobOutput| -> OutputRequest {
        job.outputs
            .iter()
            .find(|r| r.identifier == o.identifier)
            .cloned()
            .unwrap_or_else(|| OutputRequest {
                identifier: o.identifier.clone(),
                ..Default::default()
            })
    };
    let mut entries = Vec::new();
    for o in &job.results {
        let href = o
            .reference
            .as_ref()
            .map(|file| format!("{}{}/{file}", opts.output_url, job.id));
        let value = match (&o.reference, &o.value) {
            (Some(_), StoredValue::Complex { mime_type, .. }) if !opts.raw => {
                OutputValue::Complex {
                    mime_type: mime_type.clone(),
                    data: Vec::new(),
                }
            }
            _ => ctx.service.load_output(&job.id, o)?,
        };
        entries.push((asked(o), value, href));
    }
    if opts.raw {
        if let Some((r, v, _)) = entries.first() {
            return Ok(raw(v, r));
        }
    }
    let expiration = expiration(ctx, job.finished.unwrap_or(job.updated));
    Ok(HttpResponse::xml(
        200,
        result_document(Some(&job.id), expiration.as_deref(), &entries),
    ))
}

pub fn dismiss(ctx: &Ctx, id: &str) -> WpsResult<HttpResponse> {
    let mut job = ctx
        .service
        .dismiss(id, Caller::new(ctx.req.user))?
        .ok_or_else(|| no_such_job(id))?;
    let was = job.state;
    job.state = JobState::Dismissed;
    let mut r = HttpResponse::xml(200, status_document(ctx, &job));
    r.log.push((
        LogLevel::Info,
        format!(
            "job {id} ({}) dismissed while {}",
            job.process,
            was.as_str()
        ),
    ));
    Ok(r)
}
