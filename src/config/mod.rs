//! Service configuration (PyWPS `pywps.cfg` compatible).

pub mod ini;
pub mod service;
