//! Execution: worker pools, the [`Executor`] of claimed jobs (the local pool today), the
//! dispatcher that claims queued jobs, adopts orphans, applies retention and supervises time
//! limits and cancel requests, and the per-child statistics of the status page.

pub mod dispatcher;
pub mod pool;
pub mod runner;
pub mod stats;
#[cfg(test)]
pub mod testing;

use crate::jobs::{Claim, Slot};
use crate::model::LogLevel;
use std::sync::Arc;

/// Where log lines go (the server's error log).
pub type Logger = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// Runs claimed jobs.
pub trait Executor: Send + Sync {
    /// Whether it can start another job now.
    fn has_capacity(&self) -> bool;
    /// Starts a claimed job that holds `slot`; gives the claim back when it cannot.
    fn start(self: Arc<Self>, claim: Claim, slot: Slot) -> Result<(), Box<Claim>>;
    /// Enforces time limits and cancel requests on what it runs; renews claims.
    fn supervise(&self);
}
