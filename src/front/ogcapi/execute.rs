//! `POST /processes/{id}/execution`: the 1.0 execute request (plain, qualified, reference and
//! bounding-box inputs; requested outputs with `transmissionMode`; `response` raw or document),
//! run synchronously, or as a job with `Prefer: respond-async` (201, `Location`, statusInfo).

use super::job_options::{OgcJob, ResponseForm};
use super::jobs::status_info;
use super::problem::Problem;
use super::results::{document, raw, Result_};
use super::schema::is_text;
use super::{api, json_response, no_such_process, ApiResult, Ctx};
use crate::engine::jobs::requested_outputs;
use crate::engine::Submission;
use crate::front::http::{Body, HttpResponse};
use crate::jobs::{new_id, JobOutput};
use crate::model::{
    BoundingBox, ComplexValue, DataSpec, ExceptionCode, Input, InputData, InputSpec, LiteralValue,
    LogLevel, OutputRequest, ProcessDescription, Reference, WpsError,
};
use serde_json::{json, Map, Value as Json};

/// A parsed execute request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteRequest {
    pub inputs: Vec<Input>,
    pub outputs: Vec<OutputRequest>,
    pub response: ResponseForm,
}

fn invalid(locator: &str, m: impl Into<String>) -> Problem {
    Problem::from_error(&WpsError::invalid(locator, m))
}

fn str_member<'a>(o: &'a Map<String, Json>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Json::as_str)
}

/// Reads an execute request body against the process description.
pub fn parse(desc: &ProcessDescription, body: &[u8]) -> ApiResult<ExecuteRequest> {
    let doc: Json = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("The request body is not JSON: {e}")))?;
    let Json::Object(doc) = doc else {
        return Err(invalid("body", "The execute request must be a JSON object"));
    };
    let mut inputs = Vec::new();
    match doc.get("inputs") {
        None | Some(Json::Null) => {}
        Some(Json::Object(m)) => {
            for (id, v) in m {
                let spec = desc.input(id).ok_or_else(|| {
                    Problem::from_error(&WpsError::new(
                        ExceptionCode::NoSuchInput,
                        Some(id),
                        format!("Process '{}' has no input '{id}'", desc.identifier),
                    ))
                })?;
                match v {
                    // several occurrences; an array literal of one occurrence is not offered
                    Json::Array(items) => {
                        for item in items {
                            inputs.push(input(spec, item)?);
                        }
                    }
                    v => inputs.push(input(spec, v)?),
                }
            }
        }
        Some(_) => {
            return Err(invalid(
                "inputs",
                "'inputs' must be an object mapping input identifiers to values",
            ))
        }
    }
    let mut outputs = Vec::new();
    match doc.get("outputs") {
        None | Some(Json::Null) => {}
        Some(Json::Object(m)) => {
            for (id, v) in m {
                let Json::Object(o) = v else {
                    return Err(invalid(id, format!("Output '{id}' must be an object")));
                };
                let as_reference = match str_member(o, "transmissionMode") {
                    None | Some("value") => false,
                    Some("reference") => true,
                    Some(other) => {
                        return Err(invalid(
                            id,
                            format!("Output '{id}': transmissionMode '{other}' is not 'value' or 'reference'"),
                        ))
                    }
                };
                let format = o.get("format").and_then(Json::as_object);
                let fmt = |k: &str| format.and_then(|f| str_member(f, k)).map(str::to_owned);
                outputs.push(OutputRequest {
                    identifier: id.clone(),
                    as_reference,
                    mime_type: fmt("mediaType"),
                    encoding: fmt("encoding"),
                    schema: fmt("schema"),
                    uom: None,
                });
            }
        }
        Some(_) => {
            return Err(invalid(
                "outputs",
                "'outputs' must be an object mapping output identifiers to options",
            ))
        }
    }
    let response = match doc.get("response") {
        None | Some(Json::Null) => ResponseForm::Raw,
        Some(Json::String(s)) if s == "raw" => ResponseForm::Raw,
        Some(Json::String(s)) if s == "document" => ResponseForm::Document,
        Some(other) => {
            return Err(invalid(
                "response",
                format!("response {other} is not 'raw' or 'document'"),
            ))
        }
    };
    Ok(ExecuteRequest {
        inputs,
        outputs,
        response,
    })
}

/// A JSON scalar as literal text.
fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A bounding box `{"bbox": [minx, miny, maxx, maxy], "crs": …}`; CRS84 is read as
/// EPSG:4326 when the process offers that but not CRS84.
fn bbox(spec: &InputSpec, o: &Map<String, Json>) -> ApiResult<BoundingBox> {
    let id = &spec.identifier;
    let numbers: Option<Vec<f64>> = o
        .get("bbox")
        .and_then(Json::as_array)
        .map(|a| a.iter().map(Json::as_f64).collect())
        .unwrap_or(None);
    let Some(mut lower) = numbers.filter(|n| n.len() >= 4 && n.len() % 2 == 0) else {
        return Err(invalid(
            id,
            format!("Input '{id}': 'bbox' must be an array of 4 or 6 numbers"),
        ));
    };
    let upper = lower.split_off(lower.len() / 2);
    let mut crs = str_member(o, "crs").map(str::to_owned);
    if let (Some(c), DataSpec::BoundingBox { crss, .. }) = (&crs, &spec.data) {
        let crs84 = c.to_ascii_lowercase().ends_with("/crs84") || c.eq_ignore_ascii_case("crs84");
        let offers = |s: &str| crss.iter().any(|x| x.to_ascii_lowercase().contains(s));
        if crs84 && !offers("crs84") && offers("4326") {
            crs = crss.iter().find(|x| x.contains("4326")).cloned();
        }
    }
    Ok(BoundingBox {
        lower,
        upper,
        crs,
        dimensions: None,
    })
}

/// One occurrence of an input.
fn input(spec: &InputSpec, v: &Json) -> ApiResult<Input> {
    let id = spec.identifier.as_str();
    let data = match v {
        Json::Object(o) if o.contains_key("href") => {
            let href = str_member(o, "href")
                .ok_or_else(|| invalid(id, format!("Input '{id}': 'href' must be a string")))?;
            InputData::Reference(Reference {
                href: href.to_owned(),
                mime_type: str_member(o, "type").map(str::to_owned),
                ..Default::default()
            })
        }
        Json::Object(o) if o.contains_key("bbox") => InputData::BoundingBox(bbox(spec, o)?),
        Json::Object(o) if o.contains_key("value") => {
            let format = o.get("format").and_then(Json::as_object);
            let member = |k: &str| {
                str_member(o, k)
                    .or_else(|| format.and_then(|f| str_member(f, k)))
                    .map(str::to_owned)
            };
            let value = &o["value"];
            match &spec.data {
                DataSpec::Literal(_) => InputData::Literal(LiteralValue {
                    value: scalar(value).ok_or_else(|| {
                        invalid(id, format!("Input '{id}': a literal value is expected"))
                    })?,
                    data_type: None,
                    uom: member("uom"),
                }),
                DataSpec::BoundingBox { .. } => match value {
                    Json::Object(b) => InputData::BoundingBox(bbox(spec, b)?),
                    _ => {
                        return Err(invalid(
                            id,
                            format!("Input '{id}': a bounding box is expected"),
                        ))
                    }
                },
                DataSpec::Complex { .. } => {
                    let mime_type = member("mediaType");
                    let mut encoding = member("encoding");
                    let content = match value {
                        Json::String(s) => s.clone(),
                        Json::Null => {
                            return Err(invalid(id, format!("Input '{id}': the value is null")))
                        }
                        other => other.to_string(),
                    };
                    // binary data travels base64-encoded in JSON
                    if encoding.is_none()
                        && mime_type.as_deref().is_some_and(|m| !is_text(m))
                        && value.is_string()
                    {
                        encoding = Some("base64".into());
                    }
                    InputData::Complex(ComplexValue {
                        is_xml: content.trim_start().starts_with('<'),
                        mime_type: mime_type.or_else(|| {
                            (!value.is_string()).then(|| "application/json".to_owned())
                        }),
                        encoding,
                        schema: member("schema"),
                        content: content.into(),
                    })
                }
            }
        }
        Json::Null => return Err(invalid(id, format!("Input '{id}': the value is null"))),
        Json::Object(_) | Json::Array(_) => match &spec.data {
            DataSpec::Complex { .. } => InputData::Complex(ComplexValue {
                mime_type: Some("application/json".into()),
                content: v.to_string().into(),
                ..Default::default()
            }),
            _ => {
                return Err(invalid(
                    id,
                    format!("Input '{id}': a {} is expected", kind(&spec.data)),
                ))
            }
        },
        v => {
            let text = scalar(v).unwrap_or_default();
            InputData::Literal(LiteralValue {
                value: text,
                ..Default::default()
            })
        }
    };
    Ok(Input {
        identifier: id.to_owned(),
        data,
    })
}

fn kind(d: &DataSpec) -> &'static str {
    match d {
        DataSpec::Literal(_) => "literal value",
        DataSpec::BoundingBox { .. } => "bounding box",
        DataSpec::Complex { .. } => "complex value",
    }
}

/// Whether the client prefers asynchronous execution (RFC 7240 `Prefer: respond-async`).
fn prefers_async(ctx: &Ctx) -> bool {
    ctx.req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Prefer"))
        .flat_map(|(_, v)| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

pub fn execute(ctx: &Ctx, id: &str) -> ApiResult<HttpResponse> {
    let process = ctx
        .service
        .process(id)
        .cloned()
        .ok_or_else(|| no_such_process(id))?;
    let desc = process.description();
    let body = match &ctx.req.body {
        Body::TooLarge => {
            return Err(Problem::from_error(&WpsError::new(
                ExceptionCode::FileSizeExceeded,
                None,
                format!(
                    "The request body is larger than maxrequestsize ({} bytes)",
                    ctx.service.max_request_size()
                ),
            )))
        }
        Body::Bytes(b) => b,
    };
    let form = ctx.req.header("Content-Type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let (req, form_async) = if form {
        let (doc, is_async) = super::html::form_request(desc, body);
        (parse(desc, doc.to_string().as_bytes())?, is_async)
    } else {
        (parse(desc, body)?, false)
    };
    // no network traffic here; references are fetched below (sync) or in the job (async)
    let checked = api(ctx
        .service
        .check_request(process.as_ref(), &req.inputs, &req.outputs))?;
    if (prefers_async(ctx) || form_async) && desc.store_supported {
        let job = api(ctx.service.submit(
            ctx.backend,
            Submission {
                process: desc.identifier.clone(),
                inputs: req.inputs,
                outputs: req.outputs,
                user: ctx.req.user.map(str::to_owned),
                protocol: json!({ "ogcapi": OgcJob { response: req.response } }),
            },
        ))?;
        let location = ctx.url(&format!("jobs/{}", job.id));
        let mut r = if form {
            // a browser follows to the job's page
            HttpResponse::new(303, "text/plain", Vec::new())
                .with_header("Location", &format!("{location}?f=html"))
        } else {
            json_response(201, &status_info(ctx, &job))
                .with_header("Location", &location)
                .with_header("Preference-Applied", "respond-async")
        };
        r.log.push((
            LogLevel::Info,
            format!("job {} ({}) accepted (OGC API)", job.id, desc.identifier),
        ));
        return Ok(r);
    }
    let outputs = api(ctx
        .service
        .run_sync(ctx.backend, process.clone(), &req.inputs, checked))?;
    let requested = requested_outputs(&desc.outputs, &req.outputs);
    let by_reference: Vec<OutputRequest> = requested
        .iter()
        .filter(|r| r.as_reference)
        .cloned()
        .collect();
    let request_id = new_id();
    let stored = if by_reference.is_empty() {
        Vec::new()
    } else {
        api(ctx
            .service
            .store_results(&request_id, desc, &by_reference, &outputs))?
    };
    let mut results = Vec::new();
    for r in &requested {
        let spec = desc.output(&r.identifier).ok_or_else(|| {
            Problem::from_error(&WpsError::no_applicable(format!(
                "no output '{}'",
                r.identifier
            )))
        })?;
        let value = outputs
            .get_format(&r.identifier, r.mime_type.as_deref())
            .cloned()
            .ok_or_else(|| {
                Problem::from_error(&WpsError::no_applicable(format!(
                    "the process produced no output '{}'",
                    r.identifier
                )))
            })?;
        let href = stored
            .iter()
            .find(|s: &&JobOutput| s.identifier == r.identifier)
            .and_then(|s| s.reference.as_ref())
            .map(|file| format!("{}{request_id}/{file}", ctx.output_url()));
        results.push(Result_ {
            spec,
            value,
            href,
            base64: crate::model::format::is_base64(r.encoding.as_deref()),
        });
    }
    Ok(match req.response {
        ResponseForm::Document if ctx.fmt == super::Fmt::Html => super::html::page_with(
            ctx,
            200,
            "results.html",
            &document(&results),
            json!({ "process": desc.identifier }),
        ),
        ResponseForm::Document => json_response(200, &document(&results)),
        ResponseForm::Raw => raw(&results),
    })
}
