//! WPS 2.0.0 key-value-pair (HTTP GET) request parsing. Parameter names are case-insensitive
//! (the first occurrence of a repeated one wins). Execute by KVP is an extension of mod_wps
//! (WPS 2.0 defines it for XML only): `identifier`, `DataInputs` as in WPS 1.0.0, `mode`,
//! `response`, and `output=id@transmission=reference@mimeType=…;id2…`.

use super::request::*;
use crate::front::wps1::kvp::{parse_data_inputs, parse_outputs};
use crate::front::wps_common::kvp::{
    identifiers, missing_identifier, split_list, version_negotiation_failed, Params,
};
use crate::model::*;

pub fn parse(query: &str) -> WpsResult<Request> {
    let params = Params::parse(query);
    let get = |name: &str| params.get(name);
    let request = params.request()?;
    let language = get("acceptlanguages")
        .map(split_list)
        .and_then(|l| l.into_iter().next())
        .or_else(|| get("lang").or(get("language")).map(str::to_owned));
    let op = OPERATIONS
        .into_iter()
        .find(|o| o.eq_ignore_ascii_case(request))
        .ok_or_else(|| {
            WpsError::new(
                ExceptionCode::OperationNotSupported,
                Some(request),
                format!("operation '{request}' is not supported"),
            )
        })?;
    if op == "GetCapabilities" {
        if let Some(versions) = get("acceptversions").map(split_list) {
            check_accept_versions(&versions)?;
        }
        return Ok(Request::GetCapabilities { language });
    }
    check_version(get("version"))?;
    let job = || -> WpsResult<String> {
        get("jobid")
            .map(str::trim)
            .filter(|j| !j.is_empty())
            .map(job_id)
            .ok_or_else(|| WpsError::missing("JobID", "parameter 'JobID' is missing"))
    };
    let identifier = get("identifier").unwrap_or("").trim();
    Ok(match op {
        "GetStatus" => Request::GetStatus { job_id: job()? },
        "GetResult" => Request::GetResult { job_id: job()? },
        "Dismiss" => Request::Dismiss { job_id: job()? },
        "DescribeProcess" => Request::DescribeProcess {
            identifiers: identifiers(identifier)?,
            language,
        },
        _ => {
            if identifier.is_empty() {
                return Err(missing_identifier());
            }
            let mode = match get("mode") {
                None => Mode::Sync,
                Some(m) => Mode::parse(m).ok_or_else(|| no_such_mode(m))?,
            };
            let raw_output = get("rawdataoutput");
            let raw = match get("response").map(str::trim) {
                None => raw_output.is_some(),
                Some("raw") => true,
                Some("document") => false,
                Some(r) => return Err(bad_response(r)),
            };
            let outputs = match get("output")
                .or(get("outputs"))
                .or(get("responsedocument"))
                .or(raw_output)
            {
                Some(o) => parse_outputs(o, "output")?,
                None => Vec::new(),
            };
            Request::Execute(Execute {
                identifier: identifier.to_owned(),
                inputs: parse_data_inputs(get("datainputs").unwrap_or(""))?,
                outputs,
                mode,
                raw,
                language,
            })
        }
    })
}

/// `version` of every operation but GetCapabilities: required, `2.0.0`.
pub(crate) fn check_version(version: Option<&str>) -> WpsResult<()> {
    crate::front::wps_common::kvp::check_version(version, "2.0.0")
}

/// `AcceptVersions` of a GetCapabilities answered in 2.0.0 must list it.
pub(crate) fn check_accept_versions(versions: &[String]) -> WpsResult<()> {
    if versions.is_empty() || versions.iter().any(|v| v == "2.0.0") {
        return Ok(());
    }
    Err(version_negotiation_failed(versions))
}

pub(crate) fn no_such_mode(m: &str) -> WpsError {
    WpsError::new(
        ExceptionCode::NoSuchMode,
        Some("mode"),
        format!("execution mode '{m}' is not supported; use sync, async or auto"),
    )
}

pub(crate) fn bad_response(r: &str) -> WpsError {
    WpsError::invalid(
        "response",
        format!("response must be 'document' or 'raw', not '{r}'"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> (ExceptionCode, Option<String>) {
        let e = parse(q).unwrap_err();
        (e.code, e.locator)
    }

    #[test]
    fn operations_and_errors() {
        assert_eq!(
            parse("service=WPS&request=GetStatus&version=2.0.0&jobId=FB6DD4B0-A2BB-11E3-A5E2-0800200C9A66").unwrap(),
            Request::GetStatus { job_id: "fb6dd4b0-a2bb-11e3-a5e2-0800200c9a66".into() }
        );
        assert_eq!(
            err("service=WPS&request=GetResult&version=2.0.0").0,
            ExceptionCode::MissingParameterValue
        );
        assert_eq!(
            err("service=WPS&request=Dismiss&version=1.0.0&jobid=x"),
            (ExceptionCode::InvalidParameterValue, Some("version".into()))
        );
        assert_eq!(
            err("service=WPS&request=GetCapabilities&acceptversions=3.0.0"),
            (ExceptionCode::VersionNegotiationFailed, None)
        );
        assert_eq!(
            err("service=WPS&request=Foo&version=2.0.0"),
            (ExceptionCode::OperationNotSupported, Some("Foo".into()))
        );
        match parse("service=WPS&request=Execute&version=2.0.0&identifier=echo&DataInputs=literalInput=a&mode=async&output=literalOutput@transmission=reference").unwrap() {
            Request::Execute(e) => {
                assert_eq!(e.mode, Mode::Async);
                assert!(!e.raw && e.outputs[0].as_reference);
                assert_eq!(e.inputs.len(), 1);
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(
            err("service=WPS&request=Execute&version=2.0.0&identifier=echo&mode=later"),
            (ExceptionCode::NoSuchMode, Some("mode".into()))
        );
    }
}
