//! WPS 1.0.0 Execute: synchronous (ResponseDocument or RawDataOutput) or stored as a job
//! (`storeExecuteResponse`), on the engine's jobs API.

use super::request::{Execute, ResponseForm};
use super::response::Status;
use super::status::{document, status_document, wants_base64, Entry, Wps1Job};
use super::Ctx;
use crate::engine::jobs::{produced, requested_outputs};
use crate::engine::Submission;
use crate::front::http::HttpResponse;
use crate::front::wps_common::{raw_response, raw_value};
use crate::jobs::{new_id, unix_now, JobRecord};
use crate::model::format::bounding_box_xml;
use crate::model::{
    ExceptionCode, LogLevel, OutputRequest, OutputValue, Outputs, ProcessDescription, WpsError,
    WpsResult,
};

pub fn execute(ctx: &Ctx, e: Execute, lang: &str) -> WpsResult<HttpResponse> {
    let process = ctx.service.lookup(&e.identifier)?;
    let desc = process.description();
    let asked: Vec<OutputRequest> = match &e.response {
        ResponseForm::Raw(o) => vec![o.clone()],
        ResponseForm::Document(d) => d.outputs.clone(),
    };
    // no network traffic here; references are fetched below (sync) or in the job (async)
    let checked = ctx
        .service
        .check_request(process.as_ref(), &e.inputs, &asked)?;
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
                let opts = Wps1Job::new(ctx, lang, d.lineage, d.status);
                let job = ctx.service.submit(
                    ctx.backend,
                    Submission {
                        process: desc.identifier.clone(),
                        inputs: e.inputs.clone(),
                        outputs: d.outputs.clone(),
                        user: ctx.req.user.map(str::to_owned),
                        protocol: serde_json::json!({ "wps1": opts }),
                    },
                )?;
                let mut r = HttpResponse::xml(200, status_document(ctx, &job)?);
                r.log.push((
                    LogLevel::Info,
                    format!("job {} ({}) accepted", job.id, desc.identifier),
                ));
                return Ok(r);
            }
            let outputs = ctx
                .service
                .run_sync(ctx.backend, process.clone(), &e.inputs, checked)?;
            let job = JobRecord::new(
                new_id(),
                &desc.identifier,
                e.inputs,
                d.outputs.clone(),
                serde_json::Value::Null,
            );
            let opts = Wps1Job::new(ctx, lang, d.lineage, false);
            let entries = sync_entries(ctx, &job, desc, &outputs, &opts)?;
            let mut job = job;
            job.updated = unix_now();
            Ok(HttpResponse::xml(
                200,
                document(
                    &job,
                    &opts,
                    desc,
                    Status::Succeeded(&format!(
                        "Process {} finished successfully",
                        desc.identifier
                    )),
                    &entries,
                    false,
                ),
            ))
        }
        ResponseForm::Raw(o) => {
            let outputs = ctx
                .service
                .run_sync(ctx.backend, process.clone(), &e.inputs, checked)?;
            let value = raw_value(desc, &outputs, o)?;
            Ok(raw_output(value, o))
        }
    }
}

/// The outputs of a synchronous request: values in the document, those asked for by
/// reference stored under the request's own id first.
fn sync_entries<'a>(
    ctx: &Ctx,
    job: &JobRecord,
    desc: &'a ProcessDescription,
    outputs: &Outputs,
    opts: &Wps1Job,
) -> WpsResult<Vec<Entry<'a>>> {
    let requested = requested_outputs(&desc.outputs, &job.outputs);
    let by_reference: Vec<OutputRequest> = requested
        .iter()
        .filter(|r| r.as_reference)
        .cloned()
        .collect();
    let stored = if by_reference.is_empty() {
        Vec::new()
    } else {
        ctx.service
            .store_results(&job.id, desc, &by_reference, outputs)?
    };
    let mut v = Vec::new();
    for r in &requested {
        let spec = desc
            .output(&r.identifier)
            .ok_or_else(|| WpsError::no_applicable(format!("no output '{}'", r.identifier)))?;
        if job.outputs.is_empty() && outputs.get(&r.identifier).is_none() {
            continue; // all outputs asked: those the process produced
        }
        let value = produced(outputs, r)?;
        let href = stored
            .iter()
            .find(|s| s.identifier == r.identifier)
            .and_then(|s| s.reference.as_ref())
            .map(|file| format!("{}{}/{file}", opts.output_url, job.id));
        v.push((spec, value.clone(), href, wants_base64(r, value)));
    }
    Ok(v)
}

/// RawDataOutput: the bare value with its media type — the declared format the process
/// produced, never text from the request.
fn raw_output(value: &OutputValue, req: &OutputRequest) -> HttpResponse {
    raw_response(value, req, bounding_box_xml).with_header(
        "Content-Disposition",
        &format!(
            "inline; filename=\"{}\"",
            req.identifier
                .chars()
                .map(|c| if c == '"' || c == '\\' || c.is_control() {
                    '_'
                } else {
                    c
                })
                .collect::<String>()
        ),
    )
}
