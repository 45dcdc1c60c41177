//! The leaf of the layers: what a process is and what flows through it, with no knowledge of
//! any protocol, store or executor.
//!
//! - [`process`]: descriptions (literal, complex, bounding-box data), checked input values,
//!   outputs, the [`Process`] trait and the [`Context`] a running process sees;
//! - [`values`]: input values as requests give them, requested outputs, bounding boxes;
//! - [`format`]: media types, encodings (base64), file extensions;
//! - [`error`]: the neutral error kinds (OWS exception codes) and the engine's error type.

pub mod error;
pub mod format;
pub mod net;
pub mod panic;
pub mod process;
pub mod values;

pub use error::*;
pub use panic::{install_quiet_panic_hook, panic_message};
pub use process::*;
pub use values::*;

/// Largest number of inputs in one Execute request (both encodings).
pub const MAX_INPUTS: usize = 1000;

/// Severity of a message the engine wants in the server's error log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}
