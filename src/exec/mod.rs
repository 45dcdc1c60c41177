//! Execution: worker pools, the [`Executor`]s of claimed jobs (the local pool; Slurm for the
//! processes dispatched there), the dispatcher that claims queued jobs, adopts orphans, applies
//! retention and supervises time limits and cancel requests, and the per-child statistics of
//! the status page.

pub mod dispatcher;
pub mod pool;
pub mod runner;
pub mod slot_line;
pub mod slurm;
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
    /// Whether it runs the asynchronous jobs of this process (the dispatcher gives a job to
    /// the first of its executors that does; default: every process).
    fn runs(&self, _process: &str) -> bool {
        true
    }
    /// Whether its jobs take a `parallelprocesses` slot of this host (default: yes).
    fn uses_slots(&self) -> bool {
        true
    }
    /// Takes over a running job whose owner is gone when its work goes on elsewhere (e.g. in
    /// Slurm); gives the claim back otherwise, and the dispatcher re-queues or fails it.
    fn adopt(self: Arc<Self>, claim: Claim) -> Result<(), Box<Claim>> {
        Err(Box::new(claim))
    }
    /// The dispatcher stops (the child exits): let go of what it follows.
    fn shutdown(&self) {}
}
