//! `echo`: returns the inputs it was given, shaped like 52North javaPS's
//! `org.n52.javaps.test.EchoProcess`, which the OGC WPS 2.0 test suite (ets-wps20) and the OGC
//! API – Processes suite drive. Every input is optional; an output is produced for each input
//! given (`literalInput` → `literalOutput`, `complexInput` → `complexOutput`, byte for byte,
//! `boundingboxInput` → `boundingboxOutput`). `pause` waits that many seconds first (for
//! asynchronous tests), reporting progress and stopping when the job is cancelled.
//!
//! ets-wps20 names the process `org.n52.javaps.test.EchoProcess` in one test: the same process
//! is offered under that identifier when `[processes] builtin` names it.

use super::*;
use crate::model::*;
use std::time::Duration;

/// The identifier ets-wps20 hard-codes.
pub const JAVAPS_ID: &str = "org.n52.javaps.test.EchoProcess";

const COMPLEX_FORMATS: [&str; 3] = ["text/xml", "application/json", "text/plain"];
const CRSS: [&str; 2] = ["EPSG:4326", "EPSG:3857"];

fn optional(mut i: InputSpec) -> InputSpec {
    i.min_occurs = 0;
    i
}

fn complex() -> DataSpec {
    DataSpec::Complex {
        formats: COMPLEX_FORMATS.iter().map(|m| Format::mime(m)).collect(),
        maximum_megabytes: None,
    }
}

fn bbox() -> DataSpec {
    DataSpec::BoundingBox {
        crss: CRSS.iter().map(|c| c.to_string()).collect(),
        dimensions: 2,
    }
}

/// The echo process, under `identifier` (`echo` or [`JAVAPS_ID`]).
pub(crate) fn echo(identifier: &str) -> Builtin {
    {
        let mut pause = optional(literal_input(
            "pause",
            "Seconds to wait before answering",
            LiteralType::Float,
        ));
        pause.abstract_ = "For asynchronous tests: the job runs at least this long".into();
        Builtin::new(ProcessDescription {
            identifier: identifier.into(),
            title: "Echo process".into(),
            abstract_: "Returns its inputs: literalInput as literalOutput, complexInput as complexOutput (byte for byte), boundingboxInput as boundingboxOutput".into(),
            version: "1.0.0".into(),
            inputs: vec![
                optional(literal_input("literalInput", "Literal input", LiteralType::String)),
                optional(input("complexInput", "Complex input", complex())),
                optional(input("boundingboxInput", "Bounding box input", bbox())),
                pause,
            ],
            outputs: vec![
                literal_output("literalOutput", "Literal output", LiteralType::String),
                output("complexOutput", "Complex output", complex()),
                output("boundingboxOutput", "Bounding box output", bbox()),
            ],
            store_supported: true,
            status_supported: true,
        }, execute)
    }
}

fn execute(inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
    if let Some(p) = inputs.literal("pause") {
        let secs = p.trim().parse::<f64>().unwrap_or(0.0);
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(ProcessError::Failed(format!(
                "pause '{p}' is not a number of seconds"
            )));
        }
        // progress every tenth of the pause, so that a dismissed job stops soon
        let step = Duration::from_secs_f64(secs.min(86_400.0) / 10.0);
        for i in 0..10 {
            ctx.progress(i * 10, "pausing")?;
            ctx.sleep(step)?;
        }
    }
    let mut out = Vec::new();
    for (id, value) in &inputs.0 {
        match (id.as_str(), value) {
            ("literalInput", Value::Literal(s)) => {
                out.push(("literalOutput".into(), OutputValue::Literal(s.clone())))
            }
            ("complexInput", Value::Complex(c)) => out.push((
                "complexOutput".into(),
                OutputValue::Complex {
                    mime_type: c.mime_type.clone().unwrap_or_else(|| "text/xml".into()),
                    data: c.data().map_err(ProcessError::Failed)?,
                },
            )),
            ("boundingboxInput", Value::BoundingBox(b)) => out.push((
                "boundingboxOutput".into(),
                OutputValue::BoundingBox(b.clone()),
            )),
            _ => {}
        }
    }
    Ok(Outputs(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_what_it_is_given() {
        let i = Inputs(vec![
            ("literalInput".into(), Value::Literal("a b".into())),
            (
                "complexInput".into(),
                Value::Complex(ComplexValue {
                    mime_type: Some("application/json".into()),
                    content: "{\"a\": 1}".into(),
                    ..Default::default()
                }),
            ),
        ]);
        let o = echo("echo").execute(&i, &Context::detached()).unwrap();
        assert_eq!(
            o.get("literalOutput"),
            Some(&OutputValue::Literal("a b".into()))
        );
        assert_eq!(
            o.get("complexOutput"),
            Some(&OutputValue::Complex {
                mime_type: "application/json".into(),
                data: b"{\"a\": 1}".to_vec()
            })
        );
        assert!(o.get("boundingboxOutput").is_none());
        assert_eq!(echo(JAVAPS_ID).description().identifier, JAVAPS_ID);
    }

    #[test]
    fn pause_stops_when_cancelled() {
        let token = std::sync::Arc::new(CancelToken::default());
        token.cancel();
        let ctx = Context::new(token, std::sync::Arc::new(|_, _| {}));
        let i = Inputs(vec![("pause".into(), Value::Literal("100".into()))]);
        assert_eq!(echo("echo").execute(&i, &ctx), Err(ProcessError::Cancelled));
    }
}
