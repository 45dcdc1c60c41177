//! mod_wps: an OGC Web Processing Service served in-process by Apache httpd.
//!
//! The layers, each importing only those below it (see README "Layout"); `apache` is the only
//! module with `unsafe` and FFI.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod apache;
pub mod config;
pub mod engine;
pub mod exec;
pub mod front;
pub mod jobs;
pub mod model;
pub mod mount;
pub mod processes;
