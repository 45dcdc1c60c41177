//! The server's life cycle: `pre_config` and `post_config` (in the parent, once per
//! configuration read), `child_init` (starts this child's pools) and the child's shutdown.

use super::ffi::*;
use super::log::{apr_level, log_server, Server};
use super::{lock, ACTIVE, CHILD, PENDING};
use crate::model::{install_quiet_panic_hook, panic_message};
use crate::mount::{ChildState, Generation};
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;
use std::sync::Arc;

pub(super) unsafe extern "C" fn pre_config(
    _p: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
) -> c_int {
    let _ = catch_unwind(|| {
        *lock(&PENDING) = Some(Generation::default());
    });
    OK as c_int
}

/// The user and group Apache's children run as, when the parent runs as root.
fn child_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: `ap_unixd_config` is filled by the `User`/`Group` directives while the
    // configuration is read, before post_config; this runs in post_config, in the parent's
    // only thread, so nothing writes it concurrently.
    Some(unsafe { (ap_unixd_config.user_id, ap_unixd_config.group_id) })
}

/// True during the first of Apache's two startup passes (which only checks the config).
fn first_startup_pass() -> bool {
    // SAFETY: ap_state_query only reads a global of httpd's; any query code is accepted.
    let state = unsafe { ap_state_query(AP_SQ_MAIN_STATE as c_int) };
    state == AP_SQ_MS_CREATE_PRE_CONFIG as c_int
}

pub(super) unsafe extern "C" fn post_config(
    _p: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    let server = Server::from_raw(s);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut g = lock(&PENDING).take().unwrap_or_default();
        g.main_server = s as usize;
        // Job stores, owned by the user Apache's children run as.
        let owner = child_owner();
        for a in &g.aliases {
            match a.service.store.prepare(owner) {
                Ok(notes) => {
                    for n in notes {
                        server.log(APLOG_WARNING, &n);
                    }
                }
                Err(e) => {
                    server.log(
                        APLOG_ERR,
                        &format!(
                            "WPS service {}: cannot prepare its job store in {} ({e}); set [server] workdir to a writable directory",
                            a.service.config.path.display(),
                            a.service.store_location
                        ),
                    );
                    return Err(());
                }
            }
        }
        // The first of the two startup passes only checks the configuration: log once.
        if !first_startup_pass() {
            for (level, line) in g.describe() {
                server.log(apr_level(level), &line);
            }
        }
        *lock(&ACTIVE) = Some(Arc::new(g));
        Ok(())
    }));
    match r {
        Ok(Ok(())) => OK as c_int,
        Ok(Err(())) => 500,
        Err(p) => {
            server.log(
                APLOG_ERR,
                &format!("mod_wps post_config failed: {}", panic_message(&*p)),
            );
            500
        }
    }
}

/// The cleanup of the child's pool: stops this child's dispatchers and pools.
unsafe extern "C" fn shutdown_child(_data: *mut c_void) -> apr_status_t {
    let _ = catch_unwind(|| {
        if let Some(state) = lock(&CHILD).take() {
            let server = Server(state.generation.main_server);
            for line in state.shutdown() {
                server.log(APLOG_WARNING, &line);
            }
        }
    });
    0
}

pub(super) unsafe extern "C" fn child_init(pchild: *mut apr_pool_t, s: *mut server_rec) {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let Some(generation) = lock(&ACTIVE).clone() else {
            return;
        };
        install_quiet_panic_hook();
        let server = Server(generation.main_server);
        let logger: crate::exec::Logger =
            Arc::new(move |level, msg: &str| server.log(apr_level(level), msg));
        *lock(&CHILD) = Some(Arc::new(ChildState::start(generation, logger)));
        // SAFETY: `pchild` is the child's live pool (Apache's argument); the cleanup is a
        // function with the expected signature and uses no data pointer, so it may run at any
        // time the pool is cleared or destroyed.
        unsafe {
            apr_pool_cleanup_register(
                pchild,
                null(),
                Some(shutdown_child),
                Some(apr_pool_cleanup_null),
            )
        };
    }));
    if let Err(p) = r {
        log_server(
            s,
            APLOG_ERR,
            &format!("mod_wps child_init failed: {}", panic_message(&*p)),
        );
    }
}
