//! The `wps-status` handler (like mod_status): collects a [`ServerStatus`] from this child's
//! state and the services' job stores, and answers it as HTML or (with `?json`) JSON. The
//! page is only served where the operator put `SetHandler wps-status`; access control is the
//! `Require` of that `<Location>`.

use super::ffi::*;
use super::request::{internal_error, Request};
use super::{lock, ChildState, CHILD};
use crate::exec::stats::ServerStatus;
use crate::front::status_page;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;
use std::sync::Mutex;
use std::time::SystemTime;

pub(super) const HANDLER: &CStr = c"wps-status";

/// When the server last read its configuration (set in the parent, inherited by children).
static SERVER_STARTED: Mutex<Option<SystemTime>> = Mutex::new(None);
/// When this child started.
static CHILD_STARTED: Mutex<Option<SystemTime>> = Mutex::new(None);

unsafe extern "C" fn post_config(
    _p: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    _s: *mut server_rec,
) -> c_int {
    let _ = catch_unwind(|| *lock(&SERVER_STARTED) = Some(SystemTime::now()));
    OK as c_int
}

unsafe extern "C" fn child_init(_p: *mut apr_pool_t, _s: *mut server_rec) {
    let _ = catch_unwind(|| *lock(&CHILD_STARTED) = Some(SystemTime::now()));
}

/// Registers the hooks that record the start times (called from `register_hooks`).
///
/// # Safety
/// Only from the module's `register_hooks`.
pub(super) unsafe fn register_hooks() {
    let middle = APR_HOOK_MIDDLE as c_int;
    // SAFETY: called from register_hooks (the caller's contract), the time to register hooks;
    // both functions have the signatures of their hooks.
    unsafe {
        ap_hook_post_config(Some(post_config), null(), null(), middle);
        ap_hook_child_init(Some(child_init), null(), null(), middle);
    }
}

/// `host:port` of a virtual host, `None` for the main server.
fn vhost_name(server: usize, main: usize) -> Option<String> {
    if server == main || server == 0 {
        return None;
    }
    // SAFETY: `server` is the address of a server_rec of the configuration in force (an
    // alias's key, taken from Apache's cmd_parms); server_recs live in the configuration pool,
    // which outlives every request of this child.
    let s = unsafe { &*(server as *const server_rec) };
    let host = s.server_hostname as *const c_char;
    let host = if host.is_null() {
        "*".to_owned()
    } else {
        // SAFETY: a non-null `server_hostname` is a NUL-terminated string from the same pool.
        unsafe { CStr::from_ptr(host) }
            .to_string_lossy()
            .into_owned()
    };
    Some(match s.port {
        0 => host,
        p => format!("{host}:{p}"),
    })
}

fn collect(state: Option<&ChildState>, user: Option<&str>) -> ServerStatus {
    let now = SystemTime::now();
    let server_started = lock(&SERVER_STARTED).unwrap_or(now);
    let child_started = lock(&CHILD_STARTED).unwrap_or(server_started);
    let (pools, services) = match state {
        Some(state) => {
            let main = state.generation.main_server;
            state.status(|server| vhost_name(server, main), user)
        }
        None => (Vec::new(), Vec::new()),
    };
    ServerStatus::new(now, server_started, child_started, pools, services)
}

fn handle(req: &mut Request) -> c_int {
    let method = req.method();
    if method != "GET" && method != "HEAD" {
        return HTTP_METHOD_NOT_ALLOWED as c_int;
    }
    let query = req.args();
    let state = lock(&CHILD).clone();
    let user = req.user();
    let snapshot = collect(state.as_deref(), user.as_deref());
    req.send(&status_page::response(&snapshot, &query))
}

/// The handler hook's branch for `SetHandler wps-status`; `None` when not ours.
pub(super) fn handler(req: &mut Request) -> Option<c_int> {
    if !req.handler_is(HANDLER) {
        return None;
    }
    Some(match catch_unwind(AssertUnwindSafe(|| handle(req))) {
        Ok(rc) => rc,
        Err(p) => internal_error(req, "mod_wps status page", &*p),
    })
}
