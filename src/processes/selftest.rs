//! `selftest_panic`: a diagnostic process that panics, to check that a crashing process is
//! answered with an ExceptionReport and the Apache child keeps serving. Never enabled by
//! `builtin = all`; only when named explicitly in `[processes] builtin`.

use super::*;
use crate::model::*;

pub fn selftest_panic() -> Builtin {
    Builtin::new(
        ProcessDescription {
            identifier: "selftest_panic".into(),
            title: "Self-test: a process that panics".into(),
            abstract_: "Diagnostic: always panics".into(),
            version: "1.0".into(),
            inputs: vec![],
            outputs: vec![literal_output(
                "never",
                "Never produced",
                LiteralType::String,
            )],
            store_supported: false,
            status_supported: false,
        },
        execute,
    )
}

fn execute(_inputs: &Inputs, _ctx: &Context) -> Result<Outputs, ProcessError> {
    panic!("selftest_panic was asked to panic")
}
