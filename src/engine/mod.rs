//! The engine: the service registry, one input pipeline (precheck → fetch → validate) with the
//! fetcher of reference inputs, and the jobs API every protocol front uses.

pub mod fetch;
pub mod inputs;
pub mod jobs;
pub mod service;
pub mod validate;

pub use jobs::{Backend, Caller, Outcome, Submission};
pub use service::Service;
