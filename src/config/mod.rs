//! Service configuration (PyWPS `pywps.cfg` compatible): the INI reader, the service config,
//! `[process:ID]` sections, and `[slurm]` with per-process `dispatch`.

pub mod ini;
pub mod process;
pub mod programs;
pub mod service;
pub mod slurm;
pub mod values;

pub use values::{parse_duration, parse_size, ConfigError};
