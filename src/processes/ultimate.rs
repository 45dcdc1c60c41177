//! `ultimate_question`: no input, answers 42.

use super::*;
use crate::model::*;

pub struct UltimateQuestion(ProcessDescription);

impl UltimateQuestion {
    pub fn new() -> Self {
        UltimateQuestion(ProcessDescription {
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
        })
    }
}

impl Process for UltimateQuestion {
    fn description(&self) -> &ProcessDescription {
        &self.0
    }
    fn execute(&self, _inputs: &Inputs, _ctx: &Context) -> Result<Outputs, ProcessError> {
        Ok(Outputs(vec![(
            "answer".into(),
            OutputValue::Literal("42".into()),
        )]))
    }
}
