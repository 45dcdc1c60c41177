//! `ultimate_question`: no input, answers 42.

use super::*;
use crate::model::*;

pub fn ultimate_question() -> Builtin {
    Builtin::new(
        ProcessDescription {
            identifier: "ultimate_question".into(),
            title: "Answer to the ultimate question".into(),
            abstract_: "This process gives the answer to the ultimate question of life, the universe, and everything.".into(),
            version: "1.3.2".into(),
            inputs: vec![],
            outputs: vec![literal_output(
                "answer",
                "Answer to Ultimate Question",
                LiteralType::String,
            )],
            store_supported: true,
            status_supported: true,
        },
        execute,
    )
    .quick()
}

fn execute(_inputs: &Inputs, _ctx: &Context) -> Result<Outputs, ProcessError> {
    Ok(Outputs(vec![(
        "answer".into(),
        OutputValue::Literal("42".into()),
    )]))
}
