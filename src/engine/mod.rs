//! The engine: the service registry, the input pipeline (precheck → fetch → validate) and the
//! fetcher of reference inputs.

pub mod fetch;
pub mod inputs;
pub mod service;
