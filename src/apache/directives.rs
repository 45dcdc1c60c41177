//! The directive table (`WPSDaemonProcess`, `WPSScriptAlias`, `WPSProcessGroup`), the
//! functions Apache calls for each directive, and the per-directory config they fill.
//!
//! The directives add to the pending [`Generation`]; `post_config` makes it the one in force.

use super::ffi::*;
use super::{lock, pstr, PENDING};
use crate::engine::Service;
use crate::exec::pool::PoolConfig;
use crate::model::panic_message;
use crate::mount::{Alias, Generation};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr::{null, null_mut};
use std::sync::Arc;

/// Per-directory config: the `WPSProcessGroup` in force.
#[repr(C)]
pub(super) struct DirConfig {
    /// NUL-terminated, allocated from the configuration pool; null when none was set.
    pub(super) group: *const c_char,
}

/// The arguments of a `TAKE_ARGV` directive.
///
/// # Safety
/// `argv` must point to `argc` NUL-terminated strings that outlive `'a` (Apache passes the
/// words of the directive line, allocated from the temporary configuration pool, which lives
/// until the configuration has been read).
unsafe fn args<'a>(argc: c_int, argv: *const *mut c_char) -> Vec<&'a str> {
    (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: `i < argc`, and each of the `argc` entries is a NUL-terminated string
            // living for `'a` (the caller's contract).
            unsafe { CStr::from_ptr(*argv.add(i)) }
                .to_str()
                .unwrap_or("\u{fffd}")
        })
        .collect()
}

/// Runs a directive body on the directive's words: errors (and panics) become the message
/// Apache prints with the config file name and line.
///
/// # Safety
/// `cmd`, `argc` and `argv` must be what Apache passed to the (`TAKE_ARGV`) directive function.
unsafe fn directive(
    cmd: *mut cmd_parms,
    argc: c_int,
    argv: *const *mut c_char,
    name: &str,
    f: impl FnOnce(&mut Generation, &[&str]) -> Result<(), String>,
) -> *const c_char {
    // SAFETY: Apache passes the directive's `argc` words in `argv` (TAKE_ARGV).
    let a = unsafe { args(argc, argv) };
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut pending = lock(&PENDING);
        f(pending.get_or_insert_with(Generation::default), &a)
    }));
    let msg = match r {
        Ok(Ok(())) => return null(),
        Ok(Err(e)) => format!("{name}: {e}"),
        Err(p) => format!("{name}: internal error: {}", panic_message(&*p)),
    };
    // SAFETY: `cmd` is Apache's valid `cmd_parms` (the caller's contract) and its `pool` is the
    // configuration pool, which outlives the error message Apache prints.
    unsafe { pstr((*cmd).pool, &msg) }
}

unsafe extern "C" fn cmd_daemon_process(
    cmd: *mut cmd_parms,
    _m: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    // SAFETY: these are the `cmd_parms` and words of this directive.
    unsafe {
        directive(cmd, argc, argv, "WPSDaemonProcess", |g, a| {
            let (name, opts) = a
                .split_first()
                .ok_or("expects a process group name and options")?;
            let cfg = PoolConfig::parse(name, opts)?;
            if g.pools.iter().any(|p| p.name == cfg.name) {
                return Err(format!("process group '{name}' is already defined"));
            }
            g.pools.push(cfg);
            Ok(())
        })
    }
}

unsafe extern "C" fn cmd_script_alias(
    cmd: *mut cmd_parms,
    _m: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    // SAFETY: `cmd` is the valid `cmd_parms` of this directive; `server` is the server_rec of
    // the (virtual) host being configured and `pool` the configuration pool.
    let (server, pool) = unsafe { ((*cmd).server as usize, (*cmd).pool) };
    let body = |g: &mut Generation, a: &[&str]| {
        let [url, file, opts @ ..] = a else {
            return Err("expects URL-PATH CONFIG-FILE [process-group=NAME]".into());
        };
        if !url.starts_with('/') {
            return Err(format!("URL-PATH '{url}' must start with '/'"));
        }
        let mut group = None;
        for o in opts {
            match o.split_once('=') {
                Some(("process-group", v)) if !v.is_empty() => {
                    g.check_group(v)?;
                    group = Some(v.to_string());
                }
                _ => return Err(format!("unknown option '{o}' (known: process-group=NAME)")),
            }
        }
        let path_c = CString::new(*file).map_err(|_| "CONFIG-FILE contains NUL")?;
        // SAFETY: `pool` is the live configuration pool and `path_c` a NUL-terminated string;
        // the result is null or a NUL-terminated string allocated from `pool`.
        let abs = unsafe { ap_server_root_relative(pool, path_c.as_ptr()) };
        if abs.is_null() {
            return Err(format!("invalid CONFIG-FILE path '{file}'"));
        }
        // SAFETY: `abs` is a non-null NUL-terminated string from `pool` (see above).
        let abs = unsafe { CStr::from_ptr(abs) }
            .to_string_lossy()
            .into_owned();
        let url = url.trim_end_matches('/');
        let url = if url.is_empty() { "/" } else { url };
        if g.aliases.iter().any(|x| x.server == server && x.url == url) {
            return Err(format!(
                "URL-PATH '{url}' is already mounted in this server"
            ));
        }
        let service = Service::load(Path::new(&abs)).map_err(|e| e.to_string())?;
        g.aliases.push(Alias {
            server,
            url: url.to_string(),
            service: Arc::new(service),
            group,
        });
        Ok(())
    };
    // SAFETY: these are the `cmd_parms` and words of this directive.
    unsafe { directive(cmd, argc, argv, "WPSScriptAlias", body) }
}

unsafe extern "C" fn cmd_process_group(
    cmd: *mut cmd_parms,
    mconfig: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    // SAFETY: `cmd` is the valid `cmd_parms` of this directive.
    let pool = unsafe { (*cmd).pool };
    let body = |g: &mut Generation, a: &[&str]| {
        let [name] = a else {
            return Err("expects exactly one process group name".into());
        };
        g.check_group(name)?;
        if !g.location_groups.iter().any(|x| x == name) {
            g.location_groups.push(name.to_string());
        }
        let dc = mconfig as *mut DirConfig;
        if !dc.is_null() {
            // SAFETY: for a directive of this module Apache passes, as `mconfig`, the
            // per-directory config that `create_dir_config` allocated (a `DirConfig`) for the
            // section being read; `pool` is the live configuration pool, which the stored
            // string needs to outlive the config record (both belong to it).
            unsafe { (*dc).group = pstr(pool, name) };
        }
        Ok(())
    };
    // SAFETY: these are the `cmd_parms` and words of this directive.
    unsafe { directive(cmd, argc, argv, "WPSProcessGroup", body) }
}

type TakeArgv =
    unsafe extern "C" fn(*mut cmd_parms, *mut c_void, c_int, *const *mut c_char) -> *const c_char;

const fn command(
    name: &'static CStr,
    f: TakeArgv,
    req_override: u32,
    errmsg: &'static CStr,
) -> command_rec {
    command_rec {
        name: name.as_ptr(),
        func: cmd_func { take_argv: Some(f) },
        cmd_data: null_mut(),
        req_override: req_override as c_int,
        args_how: cmd_how_TAKE_ARGV,
        errmsg: errmsg.as_ptr(),
    }
}

/// The directive table of the module record (a `static mut` because the record's `cmds` is a
/// `*const command_rec` into it; nothing writes to it).
pub(super) static mut COMMANDS: [command_rec; 4] = [
    command(
        c"WPSDaemonProcess",
        cmd_daemon_process,
        RSRC_CONF,
        c"NAME [threads=N] [queue=N] [request-timeout=SECONDS] [graceful-timeout=SECONDS]: a pool of worker threads for WPS Execute",
    ),
    command(
        c"WPSScriptAlias",
        cmd_script_alias,
        RSRC_CONF,
        c"URL-PATH CONFIG-FILE [process-group=NAME]: mount a WPS service configured by CONFIG-FILE",
    ),
    command(
        c"WPSProcessGroup",
        cmd_process_group,
        RSRC_CONF | ACCESS_CONF,
        c"NAME: the WPSDaemonProcess pool that runs Execute requests here",
    ),
    // terminator
    command_rec {
        name: null(),
        func: cmd_func { no_args: None },
        cmd_data: null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: null(),
    },
];

/// A zeroed `DirConfig` from an APR pool (`apr_pcalloc` is a C macro).
///
/// # Safety
/// `p` must be a live APR pool.
unsafe fn new_dir_config(p: *mut apr_pool_t) -> *mut DirConfig {
    // SAFETY: `p` is live (the caller's contract); apr_palloc returns memory aligned for any
    // type (APR_ALIGN_DEFAULT), at least `size_of::<DirConfig>()` bytes, owned by `p`.
    let m = unsafe { apr_palloc(p, std::mem::size_of::<DirConfig>()) } as *mut DirConfig;
    // SAFETY: `m` is valid for writes of one `DirConfig` (see above) and not yet initialised.
    unsafe { m.write(DirConfig { group: null() }) };
    m
}

pub(super) unsafe extern "C" fn create_dir_config(
    p: *mut apr_pool_t,
    _dir: *mut c_char,
) -> *mut c_void {
    // SAFETY: Apache passes the live pool the config record belongs to.
    unsafe { new_dir_config(p) as *mut c_void }
}

pub(super) unsafe extern "C" fn merge_dir_config(
    p: *mut apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // SAFETY: Apache passes the live pool the merged record belongs to.
    let m = unsafe { new_dir_config(p) };
    let (b, a) = (base as *const DirConfig, add as *const DirConfig);
    // SAFETY: `base` and `add` are records of this module, made by `create_dir_config` or
    // `merge_dir_config` (so valid `DirConfig`s), from pools that outlive the merged one; `m`
    // was just initialised.
    unsafe {
        (*m).group = if (*a).group.is_null() {
            (*b).group
        } else {
            (*a).group
        };
    }
    m as *mut c_void
}

/// The `WPSProcessGroup` in force for a request, given its `per_dir_config` vector.
///
/// # Safety
/// `per_dir_config` must be a request's `per_dir_config` (an array of config records indexed
/// by module index), valid for `'a`.
pub(super) unsafe fn group_of<'a>(per_dir_config: *mut ap_conf_vector_t) -> Option<&'a CStr> {
    if per_dir_config.is_null() {
        return None;
    }
    // SAFETY: `per_dir_config` is an array of `void *` with one entry per loaded module, and
    // `module_index()` is ours (ap_get_module_config does the same).
    let dc = unsafe { *(per_dir_config as *mut *mut c_void).add(super::module_index()) }
        as *const DirConfig;
    // SAFETY: our entry is null or a `DirConfig` made by create/merge_dir_config; its `group`
    // is null or a NUL-terminated string from the configuration pool, which outlives `'a`.
    unsafe {
        if dc.is_null() || (*dc).group.is_null() {
            None
        } else {
            Some(CStr::from_ptr((*dc).group))
        }
    }
}
