//! Asynchronous execution: the durable job store and the per-child runner.

pub mod runner;
pub mod store;
