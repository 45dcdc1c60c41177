//! `boundingbox`: returns the bounding box it was given.

use super::Builtin;
use crate::model::*;

pub fn boundingbox() -> Builtin {
    Builtin::new(
        ProcessDescription {
            identifier: "boundingbox".into(),
            title: "Bounding box in- and out".into(),
            abstract_: "Give bounding box, return the same".into(),
            version: "0.2".into(),
            inputs: vec![InputSpec {
                identifier: "bboxin".into(),
                title: "box in".into(),
                abstract_: String::new(),
                min_occurs: 1,
                max_occurs: 1,
                data: DataSpec::BoundingBox {
                    crss: vec!["epsg:4326".into(), "epsg:3035".into()],
                    dimensions: 2,
                },
            }],
            outputs: vec![OutputSpec {
                identifier: "bboxout".into(),
                title: "box out".into(),
                abstract_: String::new(),
                data: DataSpec::BoundingBox {
                    crss: vec!["epsg:4326".into(), "epsg:3035".into()],
                    dimensions: 2,
                },
            }],
            store_supported: true,
            status_supported: true,
        },
        execute,
    )
    .quick()
}

fn execute(inputs: &Inputs, _ctx: &Context) -> Result<Outputs, ProcessError> {
    match inputs.first("bboxin") {
        Some(Value::BoundingBox(b)) => Ok(Outputs(vec![(
            "bboxout".into(),
            OutputValue::BoundingBox(b.clone()),
        )])),
        _ => Err(ProcessError::Failed("bboxin is not a bounding box".into())),
    }
}
