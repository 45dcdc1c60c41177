//! mod_wps: an OGC Web Processing Service served in-process by Apache httpd.
//!
//! The engine (`config`, `wps`, `processes`, `pool`, `service`) is safe Rust with no Apache
//! types; `apache` is the only module with `unsafe` and FFI.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod apache;
pub mod config;
pub mod inputs;
pub mod jobs;
pub mod pool;
pub mod processes;
pub mod service;
pub mod status;
pub mod wps;
