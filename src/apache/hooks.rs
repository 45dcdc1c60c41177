//! The server's life cycle: `pre_config` and `post_config` (in the parent, once per
//! configuration read), `child_init` (starts this child's pools) and the child's shutdown.
//!
//! How a child stops decides whether it waits for the jobs it runs. A graceful stop
//! (`-k graceful`, `graceful-stop`, fewer spare children, `MaxConnectionsPerChild`) waits up to
//! each pool's graceful-timeout. A hard stop (`-k stop`, `-k restart`) lets go at once: the
//! parent kills children that have not exited within about 9 s (AH00046), and the jobs are
//! durable, so the next children re-queue them. The child learns which stop it is:
//!
//! - threaded MPMs (event, worker) tell it with the `child_stopping` hook's `graceful` flag:
//!   the pipe of death carries "graceful" or "restart" (`-k stop` and `-k restart` write
//!   "restart" before they send SIGTERM);
//! - prefork passes 0 to that hook in both cases (2.4), but stops a child hard only by a
//!   signal: `-k stop` sends SIGTERM and `-k restart` SIGHUP, whose handler (`just_die`)
//!   destroys the child's pool, running our cleanup inside the handler, where the kernel
//!   blocks the signal being handled. A graceful stop (SIGUSR1 or the pipe of death) ends the
//!   child from its main loop, with neither signal blocked.

use super::ffi::*;
use super::log::{apr_level, log_server, Server};
use super::{lock, ACTIVE, CHILD, PENDING};
use crate::model::{install_quiet_panic_hook, panic_message};
use crate::mount::{ChildState, Generation};
use nix::sys::signal::{SigSet, Signal};
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;
use std::sync::atomic::{AtomicU8, Ordering};
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
    pconf: *mut apr_pool_t,
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
        // SAFETY: `pconf` is the configuration pool Apache passes to this hook, live until the
        // configuration is read again; the cleanup is a function with the expected signature
        // and uses no data pointer.
        unsafe {
            apr_pool_cleanup_register(
                pconf,
                null(),
                Some(forget_generation),
                Some(apr_pool_cleanup_null),
            )
        };
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

/// The cleanup of the configuration pool, which the parent clears before it reads the
/// configuration again (graceful or full restart, and between the two start-up passes) and
/// before it unloads this module: lets go of the generation in force. Kept in the `static` of
/// an unloaded module, it would stay in the parent for good, with its job stores' open files
/// (one generation per restart). A child never clears this pool: its generation stays.
unsafe extern "C" fn forget_generation(_data: *mut c_void) -> apr_status_t {
    let _ = catch_unwind(|| lock(&ACTIVE).take());
    0
}

/// What the `child_stopping` hook said: not called yet, graceful, hard.
static STOPPING: AtomicU8 = AtomicU8::new(NOT_STOPPING);
const NOT_STOPPING: u8 = 0;
const STOPPING_GRACEFULLY: u8 = 1;
const STOPPING_HARD: u8 = 2;

/// The `child_stopping` hook: records whether the MPM stops this child gracefully.
pub(super) unsafe extern "C" fn child_stopping(_pchild: *mut apr_pool_t, graceful: c_int) {
    let how = if graceful != 0 {
        STOPPING_GRACEFULLY
    } else {
        STOPPING_HARD
    };
    STOPPING.store(how, Ordering::SeqCst);
}

/// Whether the MPM runs threads in its children (event, worker) rather than one request per
/// process (prefork).
fn mpm_is_threaded() -> bool {
    let mut threaded: c_int = 0;
    // SAFETY: ap_mpm_query writes one int through the valid pointer; it may be called at any
    // time in a child (it reads the MPM's state).
    let rv = unsafe { ap_mpm_query(AP_MPMQ_IS_THREADED as c_int, &mut threaded) };
    rv == 0 && threaded != AP_MPMQ_NOT_SUPPORTED as c_int
}

/// Whether this child is being stopped gracefully (see the module documentation). Called by
/// the cleanup of the child's pool, on the thread that destroys it.
fn stopping_gracefully() -> bool {
    if mpm_is_threaded() {
        // Every exit of an event/worker child runs child_stopping first (httpd 2.4.49 and
        // later, which loading this module requires); had it not run, wait as before.
        STOPPING.load(Ordering::SeqCst) != STOPPING_HARD
    } else {
        let in_stop_signal = SigSet::thread_get_mask()
            .map(|mask| mask.contains(Signal::SIGTERM) || mask.contains(Signal::SIGHUP))
            .unwrap_or(false);
        !in_stop_signal
    }
}

/// The cleanup of the child's pool: stops this child's dispatchers and pools, waiting for
/// running jobs on a graceful stop only.
unsafe extern "C" fn shutdown_child(_data: *mut c_void) -> apr_status_t {
    let _ = catch_unwind(|| {
        if let Some(state) = lock(&CHILD).take() {
            let server = Server(state.generation.main_server);
            let graceful = stopping_gracefully();
            server.log(
                APLOG_DEBUG,
                &format!(
                    "child {} stopping {}",
                    std::process::id(),
                    if graceful {
                        "gracefully: waiting for its running jobs (up to graceful-timeout)"
                    } else {
                        "(hard stop): its running jobs are left to the next children"
                    }
                ),
            );
            for line in state.shutdown(graceful) {
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
