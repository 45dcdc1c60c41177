//! The Apache glue: the only `unsafe` code in mod_wps.
//!
//! It defines the module record and the directive table, keeps the configuration that the
//! directives build (one generation per config read), starts the worker pools in each child,
//! and turns an Apache `request_rec` into an engine call and the engine's answer back into an
//! Apache response. Every `extern "C"` entry point catches panics.
//!
//! - `mod.rs`: the module record, `register_hooks`, the configuration statics
//! - `directives.rs`: the directive table, its handlers and the per-directory config
//! - `hooks.rs`: pre/post_config, child_init, how a child stops (graceful or hard)
//! - `request.rs`: safe wrappers around `request_rec`; translate_name, the handler
//! - `status_page.rs`: the `wps-status` handler
//! - `log.rs`: error-log lines through the C shim
//!
//! Every `unsafe` operation sits in its own `unsafe { }` block with a `// SAFETY:` note
//! (`unsafe_op_in_unsafe_fn` is denied).

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::missing_safety_doc)]

mod ffi {
    #![allow(
        non_upper_case_globals,
        non_camel_case_types,
        non_snake_case,
        dead_code,
        improper_ctypes,
        unknown_lints,
        unnecessary_transmutes,
        unsafe_op_in_unsafe_fn,
        clippy::all
    )]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

mod directives;
mod hooks;
mod log;
mod request;
mod status_page;

use crate::mount::{ChildState, Generation};
use ffi::*;
use std::ffi::{c_char, c_int};
use std::ptr::{addr_of_mut, null, null_mut};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------------
// Configuration state

/// Filled by the directives while Apache reads its configuration (reset in pre_config).
static PENDING: Mutex<Option<Generation>> = Mutex::new(None);
/// The configuration in force (set in post_config, inherited by the children).
static ACTIVE: Mutex<Option<Arc<Generation>>> = Mutex::new(None);
/// This child's pools (started in child_init; never in the parent).
static CHILD: Mutex<Option<Arc<ChildState>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A copy of `s` (NULs escaped) allocated from the APR pool `p`, so it lives as long as `p`.
///
/// # Safety
/// `p` must be a live APR pool.
unsafe fn pstr(p: *mut apr_pool_t, s: &str) -> *const c_char {
    let bytes = s.replace('\0', "\\0");
    // SAFETY: `p` is live (the caller's contract); `bytes` is valid for `len` bytes, and
    // apr_pstrmemdup copies them and adds the terminating NUL.
    unsafe { apr_pstrmemdup(p, bytes.as_ptr() as *const c_char, bytes.len()) }
}

/// This module's index in Apache's per-directory and per-server config vectors.
fn module_index() -> usize {
    // SAFETY: a plain read of an int in the module record; Apache writes `module_index` once,
    // while it loads the module (single-threaded, before any hook runs).
    let index = unsafe { (*std::ptr::addr_of!(wps_module)).module_index };
    index.max(0) as usize
}

/// The handler hook: the status page (`SetHandler wps-status`) or a WPS alias.
unsafe extern "C" fn handler(r: *mut request_rec) -> c_int {
    // SAFETY: Apache passes the request of this hook call.
    let mut req = unsafe { request::Request::from_raw(r) };
    status_page::handler(&mut req)
        .or_else(|| request::handle_wps(&mut req))
        .unwrap_or(DECLINED)
}

unsafe extern "C" fn register_hooks(_p: *mut apr_pool_t) {
    let middle = APR_HOOK_MIDDLE as c_int;
    // SAFETY: Apache calls register_hooks while it loads the module, the only time hooks may
    // be registered; every function passed has the signature its hook declares.
    unsafe {
        ap_hook_pre_config(Some(hooks::pre_config), null(), null(), middle);
        ap_hook_post_config(Some(hooks::post_config), null(), null(), middle);
        ap_hook_child_init(Some(hooks::child_init), null(), null(), middle);
        ap_hook_child_stopping(Some(hooks::child_stopping), null(), null(), middle);
        ap_hook_translate_name(Some(request::translate_name), null(), null(), middle);
        ap_hook_map_to_storage(
            Some(request::map_to_storage),
            null(),
            null(),
            APR_HOOK_FIRST as c_int,
        );
        ap_hook_handler(Some(handler), null(), null(), middle);
        status_page::register_hooks();
    }
}

/// The module record `LoadModule wps_module .../mod_wps.so` looks up.
#[no_mangle]
pub static mut wps_module: module = module {
    version: MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    // httpd derives the short name `wps` (for `LogLevel wps:debug`) from this.
    name: c"mod_wps.c".as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: MODULE_MAGIC_COOKIE as _,
    rewrite_args: None,
    create_dir_config: Some(directives::create_dir_config),
    merge_dir_config: Some(directives::merge_dir_config),
    create_server_config: None,
    merge_server_config: None,
    cmds: addr_of_mut!(directives::COMMANDS) as *const command_rec,
    register_hooks: Some(register_hooks),
    flags: 0,
};
