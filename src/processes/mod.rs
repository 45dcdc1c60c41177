//! The built-in processes and the command-line processes of `[process:ID]` sections: each is
//! an implementation of [`Process`](crate::model::Process).

mod boundingbox;
pub mod command;
pub mod echo;
mod geo;
mod hello;
mod selftest;
mod sleep;
mod testjson;
mod ultimate;

use crate::model::{
    Context, DataSpec, InputSpec, Inputs, LiteralSpec, LiteralType, OutputSpec, Outputs, Process,
    ProcessDescription, ProcessError,
};
use std::sync::Arc;

/// Identifiers of the built-in processes that `builtin = all` enables.
pub const BUILTIN_IDS: &[&str] = &[
    "say_hello",
    "ultimate_question",
    "sleep",
    "boundingbox",
    "testjson",
    "feature_count",
    "centroids",
    "buffer",
    "area",
    "echo",
];

/// Built-in processes that are only enabled when named explicitly: diagnostics, and `echo`
/// under the identifier the OGC WPS 2.0 test suite hard-codes.
pub const DIAGNOSTIC_IDS: &[&str] = &["selftest_panic", echo::JAVAPS_ID];

/// Creates the built-in process with this identifier.
pub fn builtin(id: &str) -> Option<Arc<dyn Process>> {
    Some(match id {
        "say_hello" => Arc::new(hello::say_hello()),
        "ultimate_question" => Arc::new(ultimate::ultimate_question()),
        "sleep" => Arc::new(sleep::sleep()),
        "boundingbox" => Arc::new(boundingbox::boundingbox()),
        "testjson" => Arc::new(testjson::testjson()),
        "selftest_panic" => Arc::new(selftest::selftest_panic()),
        "feature_count" => Arc::new(geo::feature_count()),
        "centroids" => Arc::new(geo::centroids()),
        "buffer" => Arc::new(geo::buffer()),
        "area" => Arc::new(geo::area()),
        "echo" | echo::JAVAPS_ID => Arc::new(echo::echo(id)),
        _ => return None,
    })
}

/// How a built-in process runs: its inputs in, its outputs out.
pub(crate) type Run = fn(&Inputs, &Context) -> Result<Outputs, ProcessError>;

/// A built-in process: its description and the function that runs it (each built-in's file
/// is just these two).
pub(crate) struct Builtin {
    description: ProcessDescription,
    run: Run,
    rerunnable: bool,
    quick: bool,
}

impl Builtin {
    /// A built-in that may simply run again when its Apache child dies (all of them so far).
    pub(crate) fn new(description: ProcessDescription, run: Run) -> Builtin {
        Builtin {
            description,
            run,
            rerunnable: true,
            quick: false,
        }
    }

    /// Marks a built-in that always returns promptly (see `Process::quick`).
    pub(crate) fn quick(self) -> Builtin {
        Builtin {
            quick: true,
            ..self
        }
    }
}

impl Process for Builtin {
    fn description(&self) -> &ProcessDescription {
        &self.description
    }
    fn execute(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
        (self.run)(inputs, ctx)
    }
    fn rerunnable(&self) -> bool {
        self.rerunnable
    }
    fn quick(&self) -> bool {
        self.quick
    }
}

/// A required single input (the usual case of the built-ins).
pub(crate) fn input(id: &str, title: &str, data: DataSpec) -> InputSpec {
    InputSpec {
        identifier: id.into(),
        title: title.into(),
        abstract_: String::new(),
        min_occurs: 1,
        max_occurs: 1,
        data,
    }
}

pub(crate) fn output(id: &str, title: &str, data: DataSpec) -> OutputSpec {
    OutputSpec {
        identifier: id.into(),
        title: title.into(),
        abstract_: String::new(),
        data,
    }
}

/// Shorthand for a literal input or output spec used by the built-ins.
pub(crate) fn literal_input(id: &str, title: &str, t: LiteralType) -> InputSpec {
    input(id, title, DataSpec::Literal(LiteralSpec::any(t)))
}

pub(crate) fn literal_output(id: &str, title: &str, t: LiteralType) -> OutputSpec {
    output(id, title, DataSpec::Literal(LiteralSpec::any(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_exists_and_names_itself() {
        for id in BUILTIN_IDS.iter().chain(DIAGNOSTIC_IDS) {
            let p = builtin(id).unwrap();
            assert_eq!(p.description().identifier, *id);
        }
        assert!(builtin("nope").is_none());
    }
}
