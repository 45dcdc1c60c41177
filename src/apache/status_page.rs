//! The `wps-status` handler (like mod_status): collects a [`ServerStatus`] from this child's
//! state and the services' job stores, and answers it as HTML or (with `?json`) JSON. The
//! page is only served where the operator put `SetHandler wps-status`; access control is the
//! `Require` of that `<Location>`.

use super::ffi::*;
use super::{cstr_eq, lock, log_request, send, ChildState, CHILD};
use crate::exec::stats::ServerStatus;
use crate::front::status_page;
use crate::model::LogLevel;
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
pub(super) unsafe fn register_hooks() {
    let middle = APR_HOOK_MIDDLE as c_int;
    ap_hook_post_config(Some(post_config), null(), null(), middle);
    ap_hook_child_init(Some(child_init), null(), null(), middle);
}

/// `host:port` of a virtual host, `None` for the main server.
unsafe fn vhost_name(server: usize, main: usize) -> Option<String> {
    if server == main || server == 0 {
        return None;
    }
    let s = server as *const server_rec;
    let host = (*s).server_hostname as *const c_char;
    let host = if host.is_null() {
        "*".to_owned()
    } else {
        CStr::from_ptr(host).to_string_lossy().into_owned()
    };
    Some(match (*s).port {
        0 => host,
        p => format!("{host}:{p}"),
    })
}

unsafe fn collect(r: *const request_rec, state: Option<&ChildState>) -> ServerStatus {
    let now = SystemTime::now();
    let server_started = lock(&SERVER_STARTED).unwrap_or(now);
    let child_started = lock(&CHILD_STARTED).unwrap_or(server_started);
    let (pools, services) = match state {
        Some(state) => {
            let main = state.generation.main_server;
            let user = (!(*r).user.is_null())
                .then(|| CStr::from_ptr((*r).user).to_string_lossy().into_owned());
            state.status(|server| vhost_name(server, main), user.as_deref())
        }
        None => (Vec::new(), Vec::new()),
    };
    ServerStatus::new(now, server_started, child_started, pools, services)
}

unsafe fn handle(r: *mut request_rec) -> c_int {
    let method = CStr::from_ptr((*r).method).to_string_lossy();
    if method != "GET" && method != "HEAD" {
        return HTTP_METHOD_NOT_ALLOWED as c_int;
    }
    let head = (*r).header_only != 0;
    let query = if (*r).args.is_null() {
        String::new()
    } else {
        CStr::from_ptr((*r).args).to_string_lossy().into_owned()
    };
    let state = lock(&CHILD).clone();
    let snapshot = collect(r, state.as_deref());
    send(r, &status_page::response(&snapshot, &query), head)
}

/// The handler hook's branch for `SetHandler wps-status`; `None` when not ours.
pub(super) unsafe fn handler(r: *mut request_rec) -> Option<c_int> {
    if !cstr_eq((*r).handler, HANDLER) {
        return None;
    }
    Some(match catch_unwind(AssertUnwindSafe(|| handle(r))) {
        Ok(rc) => rc,
        Err(p) => {
            log_request(
                r,
                LogLevel::Error,
                &format!(
                    "mod_wps status page: internal error (panic): {}",
                    crate::model::panic_message(&*p)
                ),
            );
            500
        }
    })
}
