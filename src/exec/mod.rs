//! Execution: worker pools and the per-child runner of jobs.

pub mod pool;
pub mod runner;
