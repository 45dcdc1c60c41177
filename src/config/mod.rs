//! Service configuration (PyWPS `pywps.cfg` compatible): the INI reader, the service config,
//! and `[process:ID]` sections.

pub mod ini;
pub mod process;
pub mod service;
pub mod values;

pub use values::{parse_duration, parse_size, ConfigError};
