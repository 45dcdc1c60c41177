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

use crate::model::{DataSpec, InputSpec, LiteralSpec, LiteralType, OutputSpec, Process};
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
        "say_hello" => Arc::new(hello::SayHello::new()),
        "ultimate_question" => Arc::new(ultimate::UltimateQuestion::new()),
        "sleep" => Arc::new(sleep::Sleep::new()),
        "boundingbox" => Arc::new(boundingbox::BoundingBoxProcess::new()),
        "testjson" => Arc::new(testjson::TestJson::new()),
        "selftest_panic" => Arc::new(selftest::SelftestPanic::new()),
        "feature_count" => Arc::new(geo::FeatureCount::new()),
        "centroids" => Arc::new(geo::Centroids::new()),
        "buffer" => Arc::new(geo::Buffer::new()),
        "area" => Arc::new(geo::Area::new()),
        "echo" | echo::JAVAPS_ID => Arc::new(echo::Echo::new(id)),
        _ => return None,
    })
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
