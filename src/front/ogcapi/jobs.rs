//! Jobs: statusInfo rendered from a job's record when it is read (whatever protocol submitted
//! it), the job list with its filters and paging, results, and dismiss. Every read goes through
//! the engine with the caller (`REMOTE_USER`), so with `jobaccess = owner` another user's job
//! is exactly an unknown one.

use super::job_options::{OgcJob, ResponseForm};
use super::params::{limit_param, offset_param};
use super::problem::Problem;
use super::results::{self, Result_};
use super::{api, json_response, ApiResult, Ctx, JSON};
use crate::engine::jobs::requested_outputs;
use crate::engine::Caller;
use crate::front::http::HttpResponse;
use crate::jobs::{JobQuery, JobRecord, JobState, StoredValue};
use crate::model::{BoundingBox, ExceptionCode, OutputValue, WpsError};
use serde_json::{json, Value as Json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

/// The statusCode of a job state.
pub fn status_code(s: JobState) -> &'static str {
    match s {
        JobState::Accepted => "accepted",
        JobState::Running => "running",
        JobState::Succeeded => "successful",
        JobState::Failed => "failed",
        JobState::Dismissed => "dismissed",
    }
}

fn parse_status(s: &str) -> Option<JobState> {
    Some(match s {
        "accepted" => JobState::Accepted,
        "running" => JobState::Running,
        "successful" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "dismissed" => JobState::Dismissed,
        _ => return None,
    })
}

/// A job's statusInfo.
pub fn status_info(ctx: &Ctx, job: &JobRecord) -> Json {
    let path = format!("jobs/{}", job.id);
    let mut links = vec![
        ctx.link(ctx.url(&path), "self", JSON, "The job's status"),
        ctx.link(
            ctx.url(&format!("{path}?f=html")),
            "alternate",
            "text/html",
            "The job's status as HTML",
        ),
    ];
    // a finished job's results: its outputs, or why it failed
    let results = match job.state {
        JobState::Succeeded => Some(("results", "The job's results")),
        JobState::Failed => Some(("exceptions", "Why the job failed")),
        _ => None,
    };
    if let Some((rel, title)) = results {
        links.push(ctx.link(
            ctx.url(&format!("{path}/results")),
            &format!("http://www.opengis.net/def/rel/ogc/1.0/{rel}"),
            JSON,
            title,
        ));
    }
    let mut doc = json!({
        "type": "process",
        "processID": job.process,
        "jobID": job.id,
        "status": status_code(job.state),
        "message": job.message,
        "created": rfc3339(job.submitted),
        "updated": rfc3339(job.updated),
        "progress": job.progress.min(100),
        "links": links,
    });
    if let Some(t) = job.started {
        doc["started"] = json!(rfc3339(t));
    }
    if let Some(t) = job.finished {
        doc["finished"] = json!(rfc3339(t));
    }
    doc
}

fn no_such_job(id: &str) -> Problem {
    Problem::from_error(&WpsError::new(
        ExceptionCode::NoSuchJob,
        Some("jobID"),
        format!("There is no job '{id}'"),
    ))
}

fn caller<'a>(ctx: &'a Ctx) -> Caller<'a> {
    Caller::new(ctx.req.user)
}

fn find(ctx: &Ctx, id: &str) -> ApiResult<JobRecord> {
    api(ctx.service.job(id, caller(ctx)))?.ok_or_else(|| no_such_job(id))
}

/// `GET /jobs/{id}`.
pub fn status(ctx: &Ctx, id: &str) -> ApiResult<HttpResponse> {
    let job = find(ctx, id)?;
    Ok(ctx
        .respond(200, status_info(ctx, &job), "job.html")
        .with_header("Cache-Control", "no-cache"))
}

/// `DELETE /jobs/{id}`: cancels a queued or running job, removes its outputs; 200 with its
/// statusInfo `dismissed`, then the job is unknown.
pub fn dismiss(ctx: &Ctx, id: &str) -> ApiResult<HttpResponse> {
    let mut job = api(ctx.service.dismiss(id, caller(ctx)))?.ok_or_else(|| no_such_job(id))?;
    job.state = JobState::Dismissed;
    job.message = "Job dismissed".into();
    job.updated = crate::jobs::unix_now();
    let mut r = json_response(200, &status_info(ctx, &job));
    r.log.push((
        crate::model::LogLevel::Info,
        format!("job {id} dismissed (OGC API)"),
    ));
    Ok(r)
}

/// `GET /jobs/{id}/results`: 404 `result-not-ready` until it finished, the failure of a failed
/// job, else the results as the execute request asked (document or raw).
pub fn results(ctx: &Ctx, id: &str) -> ApiResult<HttpResponse> {
    let job = find(ctx, id)?;
    match job.state {
        JobState::Accepted | JobState::Running => Err(Problem::from_error(&WpsError::new(
            ExceptionCode::ResultNotReady,
            Some("jobID"),
            format!(
                "Job '{id}' is {}; its results are not ready",
                status_code(job.state)
            ),
        ))),
        JobState::Failed | JobState::Dismissed => {
            let e = job
                .error
                .clone()
                .unwrap_or_else(|| WpsError::no_applicable(&job.message));
            Err(Problem::from_error(&e))
        }
        JobState::Succeeded => {
            let process = ctx.service.process(&job.process).ok_or_else(|| {
                Problem::from_error(&WpsError::no_applicable(format!(
                    "process '{}' is no longer offered",
                    job.process
                )))
            })?;
            let desc = process.description();
            let mut list = Vec::new();
            for r in requested_outputs(&desc.outputs, &job.outputs) {
                let (Some(spec), Some(stored)) =
                    (desc.output(&r.identifier), job.output(&r.identifier))
                else {
                    return Err(Problem::from_error(&WpsError::no_applicable(format!(
                        "job {id} has no output '{}'",
                        r.identifier
                    ))));
                };
                let (value, href) = match (&stored.reference, &stored.value) {
                    (Some(file), v) => (
                        placeholder(v),
                        Some(format!("{}{}/{file}", ctx.output_url(), job.id)),
                    ),
                    (None, _) => (api(ctx.service.load_output(&job.id, stored))?, None),
                };
                list.push(Result_ {
                    spec,
                    value,
                    href,
                    base64: crate::model::format::is_base64(r.encoding.as_deref()),
                });
            }
            Ok(match OgcJob::of(&job).response {
                ResponseForm::Document => json_response(200, &results::document(&list)),
                ResponseForm::Raw => results::raw(&list),
            })
        }
    }
}

/// The value of an output given by reference (only its kind and media type matter).
fn placeholder(v: &StoredValue) -> OutputValue {
    match v {
        StoredValue::Literal(_) => OutputValue::Literal(String::new()),
        StoredValue::BoundingBox(_) => OutputValue::BoundingBox(BoundingBox::default()),
        StoredValue::Complex { mime_type, .. } => OutputValue::Complex {
            mime_type: mime_type.clone(),
            data: Vec::new(),
        },
    }
}

/// An RFC 3339 date-time (or a date) as unix seconds.
fn instant(s: &str, end: bool) -> Option<u64> {
    let s = s.trim();
    let t = humantime::parse_rfc3339_weak(s)
        .ok()
        .or_else(|| {
            // a date alone: its whole day
            let day = humantime::parse_rfc3339_weak(&format!("{s}T00:00:00")).ok()?;
            Some(if end {
                day + Duration::from_secs(86_399)
            } else {
                day
            })
        })
        .or_else(|| {
            // with a time-zone offset: humantime reads Z only
            let (base, off) = s
                .rsplit_once(['+', '-'])
                .filter(|(b, o)| b.contains('T') && o.len() == 5 && o.as_bytes()[2] == b':')?;
            let sign = if s[base.len()..].starts_with('-') {
                1i64
            } else {
                -1
            };
            let local = humantime::parse_rfc3339_weak(base).ok()?;
            let mins = off[..2].parse::<i64>().ok()? * 60 + off[3..].parse::<i64>().ok()?;
            let secs = local.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64 + sign * mins * 60;
            Some(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
        })?;
    let t: SystemTime = t;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// `datetime`: an instant, or an interval `start/end` with `..` or nothing for an open end.
fn datetime(v: &str) -> Option<(Option<u64>, Option<u64>)> {
    let open = |s: &str| s.is_empty() || s == "..";
    match v.split_once('/') {
        Some((a, b)) => {
            let from = if open(a) {
                None
            } else {
                Some(instant(a, false)?)
            };
            let to = if open(b) {
                None
            } else {
                Some(instant(b, true)?)
            };
            Some((from, to))
        }
        None => Some((Some(instant(v, false)?), Some(instant(v, true)?))),
    }
}

/// The query of a `GET /jobs` request (filters; paging is added by the caller).
pub fn query(ctx: &Ctx) -> ApiResult<(JobQuery, bool)> {
    let mut q = JobQuery {
        processes: ctx.params("processID"),
        ..Default::default()
    };
    for s in ctx.params("status") {
        q.states.push(parse_status(&s).ok_or_else(|| {
            Problem::bad_request(
                "status",
                format!(
                    "status '{s}' is not one of accepted, running, successful, failed, dismissed"
                ),
            )
        })?);
    }
    for p in ["minDuration", "maxDuration"] {
        if ctx.param(p).is_some() {
            return Err(Problem::bad_request(p, format!("{p} is not supported")));
        }
    }
    // every job here is of type "process"
    let types = ctx.params("type");
    let none = !types.is_empty() && !types.iter().any(|t| t == "process");
    if let Some(v) = ctx.param("datetime") {
        let (from, to) = datetime(&v).ok_or_else(|| {
            Problem::bad_request(
                "datetime",
                format!("datetime '{v}' is not an RFC 3339 date-time or an interval start/end"),
            )
        })?;
        q.submitted_from = from;
        q.submitted_to = to;
    }
    Ok((q, none))
}

/// `GET /jobs`: newest first, `limit` (default 10) and `offset`, `next`/`prev` links.
pub fn list(ctx: &Ctx) -> ApiResult<HttpResponse> {
    let (mut q, none) = query(ctx)?;
    let limit = limit_param(ctx, 10)?;
    let offset = offset_param(ctx)?;
    q.offset = offset;
    q.limit = Some(limit + 1);
    let mut jobs = if none {
        Vec::new()
    } else {
        api(ctx.service.list_jobs(&q, caller(ctx)))?
    };
    let more = jobs.len() > limit;
    jobs.truncate(limit);
    let infos: Vec<Json> = jobs.iter().map(|j| status_info(ctx, j)).collect();
    let mut links = ctx.self_links("jobs", "The job list");
    let page = |off: usize| {
        let mut params: Vec<(String, String)> = form_urlencoded::parse(ctx.req.query.as_bytes())
            .filter(|(k, _)| k != "offset" && k != "limit" && k != "f")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        params.push(("limit".into(), limit.to_string()));
        params.push(("offset".into(), off.to_string()));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        ctx.url(&format!("jobs?{qs}"))
    };
    if more {
        links.push(ctx.link(page(offset + limit), "next", JSON, "The next jobs"));
    }
    if offset > 0 {
        links.push(ctx.link(
            page(offset.saturating_sub(limit)),
            "prev",
            JSON,
            "The previous jobs",
        ));
    }
    Ok(ctx
        .respond(200, json!({ "jobs": infos, "links": links }), "jobs.html")
        .with_header("Cache-Control", "no-cache"))
}
