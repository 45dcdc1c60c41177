//! Error-log lines, written through the C shim (`ap_log_error`/`ap_log_rerror` are macros) so
//! each is tagged `[wps:level]`.

use super::ffi::*;
use crate::model::LogLevel;
use std::ffi::{c_int, CString};

/// A server to log for: the address of a `server_rec` (or 0 for none: the main server).
///
/// `server_rec`s live in the configuration pool, which outlives every child and every request,
/// so the address stays valid for as long as the configuration that produced it is in force.
#[derive(Clone, Copy)]
pub(super) struct Server(pub(super) usize);

impl Server {
    pub(super) fn from_raw(s: *const server_rec) -> Server {
        Server(s as usize)
    }

    /// Writes `msg` to this server's error log at `level` (an `APLOG_*` level).
    pub(super) fn log(self, level: u32, msg: &str) {
        let c = cstring(msg);
        // SAFETY: `self.0` is null or a `server_rec` of the configuration in force (see the type);
        // ap_log_error accepts a null server. `c` is NUL-terminated and outlives the call; the
        // shim passes it as a "%s" argument, never as a format.
        unsafe { wps_log_server(self.0 as *const server_rec, level as c_int, c.as_ptr()) }
    }
}

/// Logs `msg` for the server `s` at `level` (an `APLOG_*` level).
pub(super) fn log_server(s: *const server_rec, level: u32, msg: &str) {
    Server::from_raw(s).log(level, msg)
}

/// The `APLOG_*` level of a [`LogLevel`].
pub(super) fn apr_level(level: LogLevel) -> u32 {
    match level {
        LogLevel::Error => APLOG_ERR,
        LogLevel::Warning => APLOG_WARNING,
        LogLevel::Info => APLOG_INFO,
        LogLevel::Debug => APLOG_DEBUG,
    }
}

/// `msg` as a C string (an embedded NUL is written as `\0`).
pub(super) fn cstring(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}
