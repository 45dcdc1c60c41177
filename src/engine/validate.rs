//! Checks Execute inputs against a process description: known identifiers, occurrences,
//! literal types and allowed values, bounding-box CRSs, complex formats and sizes.

use crate::model::format::{base64_check, base64_decoded_len, is_base64, select};
use crate::model::{
    parse_kvp_bbox, ComplexValue, DataSpec, ExceptionCode, Input, InputData, Inputs,
    ProcessDescription, Value, WpsError, WpsResult,
};

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
            WpsError::new(
                ExceptionCode::NoSuchInput,
                Some(&i.identifier),
                format!(
                    "Process '{}' has no input '{}'",
                    desc.identifier, i.identifier
                ),
            )
        })?;
        let id = i.identifier.as_str();
        let bad = |m: String| {
            WpsError::new(
                ExceptionCode::WrongInputData,
                Some(id),
                format!("Input '{id}': {m}"),
            )
        };
        let size = match &i.data {
            InputData::Literal(l) => l.value.len(),
            // base64 text: the size it decodes to (checked exactly once decoded, below); counted
            // only when its bound (no white space) is over the limit
            InputData::Complex(c) if is_base64(c.encoding.as_deref()) => {
                match c.content.len() / 4 * 3 + 2 {
                    bound if bound as u64 <= max_single => bound,
                    _ => base64_decoded_len(&c.content),
                }
            }
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
                    InputData::Literal(v) => parse_kvp_bbox(&v.value).map_err(bad)?,
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
                        content: v.value.as_str().into(),
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
                let f = select(
                    formats,
                    c.mime_type.as_deref(),
                    c.encoding.as_deref(),
                    c.schema.as_deref(),
                )
                .map_err(|m| {
                    WpsError::new(
                        ExceptionCode::NoSuchFormat,
                        Some(id),
                        format!("Input '{id}': {m}"),
                    )
                })?;
                if c.mime_type.is_none() {
                    c.mime_type = Some(f.mime_type.clone());
                }
                if is_base64(c.encoding.as_deref()) {
                    let n = base64_check(&c.content).map_err(bad)?;
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
            return Err(WpsError::new(
                ExceptionCode::TooManyInputs,
                Some(&spec.identifier),
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
    use crate::model::LiteralValue;

    #[test]
    fn defaults_crs_and_occurrences() {
        let bbox = crate::processes::builtin("boundingbox")
            .unwrap()
            .description()
            .clone();
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
        let mut d = crate::processes::builtin("sleep")
            .unwrap()
            .description()
            .clone();
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
