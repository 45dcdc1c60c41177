//! The Apache glue: the only `unsafe` code in mod_wps.
//!
//! It defines the module record and the directive table, keeps the configuration that the
//! directives build (one generation per config read), starts the worker pools in each child,
//! and turns an Apache `request_rec` into an engine call and the engine's answer back into an
//! Apache response. Every `extern "C"` entry point catches panics.

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
        clippy::all
    )]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

mod status_page;

use crate::engine::Service;
use crate::exec::pool::PoolConfig;
use crate::front::wps1::error_response;
use crate::front::{Body, HttpRequest, HttpResponse};
use crate::model::{install_quiet_panic_hook, panic_message, LogLevel, WpsError};
use crate::mount::{Alias, ChildState, Generation};
use ffi::*;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr::{addr_of, addr_of_mut, null, null_mut};
use std::sync::{Arc, Mutex};

const HANDLER: &CStr = c"wps-service";

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

/// Per-directory config: the `WPSProcessGroup` in force.
#[repr(C)]
struct DirConfig {
    group: *const c_char,
}

// ---------------------------------------------------------------------------------------------
// Logging

fn log_server(s: *const server_rec, level: u32, msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    unsafe { wps_log_server(s, level as c_int, c.as_ptr()) }
}

fn apr_level(level: LogLevel) -> u32 {
    match level {
        LogLevel::Error => APLOG_ERR,
        LogLevel::Warning => APLOG_WARNING,
        LogLevel::Info => APLOG_INFO,
        LogLevel::Debug => APLOG_DEBUG,
    }
}

fn log_request(r: *const request_rec, level: LogLevel, msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    unsafe { wps_log_request(r, apr_level(level) as c_int, c.as_ptr()) }
}

// ---------------------------------------------------------------------------------------------
// Directives

unsafe fn pstr(p: *mut apr_pool_t, s: &str) -> *const c_char {
    let bytes = s.replace('\0', "\\0");
    apr_pstrmemdup(p, bytes.as_ptr() as *const c_char, bytes.len())
}

unsafe fn args<'a>(argc: c_int, argv: *const *mut c_char) -> Vec<&'a str> {
    (0..argc.max(0) as usize)
        .map(|i| CStr::from_ptr(*argv.add(i)).to_str().unwrap_or("\u{fffd}"))
        .collect()
}

/// Runs a directive body: errors (and panics) become the message Apache prints with the
/// config file name and line.
unsafe fn directive(
    cmd: *mut cmd_parms,
    name: &str,
    f: impl FnOnce(&mut Generation) -> Result<(), String>,
) -> *const c_char {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut pending = lock(&PENDING);
        f(pending.get_or_insert_with(Generation::default))
    }));
    match r {
        Ok(Ok(())) => null(),
        Ok(Err(e)) => pstr((*cmd).pool, &format!("{name}: {e}")),
        Err(p) => pstr(
            (*cmd).pool,
            &format!("{name}: internal error: {}", panic_message(&*p)),
        ),
    }
}

unsafe extern "C" fn cmd_daemon_process(
    cmd: *mut cmd_parms,
    _m: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    let a = args(argc, argv);
    directive(cmd, "WPSDaemonProcess", |g| {
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

unsafe extern "C" fn cmd_script_alias(
    cmd: *mut cmd_parms,
    _m: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    let a = args(argc, argv);
    let server = (*cmd).server as usize;
    let pool = (*cmd).pool;
    directive(cmd, "WPSScriptAlias", |g| {
        let [url, file, opts @ ..] = a.as_slice() else {
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
        let abs = ap_server_root_relative(pool, path_c.as_ptr());
        if abs.is_null() {
            return Err(format!("invalid CONFIG-FILE path '{file}'"));
        }
        let abs = CStr::from_ptr(abs).to_string_lossy().into_owned();
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
    })
}

unsafe extern "C" fn cmd_process_group(
    cmd: *mut cmd_parms,
    mconfig: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    let a = args(argc, argv);
    let pool = (*cmd).pool;
    directive(cmd, "WPSProcessGroup", |g| {
        let [name] = a.as_slice() else {
            return Err("expects exactly one process group name".into());
        };
        g.check_group(name)?;
        if !g.location_groups.iter().any(|x| x == name) {
            g.location_groups.push(name.to_string());
        }
        let dc = mconfig as *mut DirConfig;
        if !dc.is_null() {
            (*dc).group = pstr(pool, name);
        }
        Ok(())
    })
}

const fn command(
    name: &'static CStr,
    f: unsafe extern "C" fn(
        *mut cmd_parms,
        *mut c_void,
        c_int,
        *const *mut c_char,
    ) -> *const c_char,
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

static mut COMMANDS: [command_rec; 4] = [
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
unsafe fn new_dir_config(p: *mut apr_pool_t) -> *mut DirConfig {
    let m = apr_palloc(p, std::mem::size_of::<DirConfig>()) as *mut DirConfig;
    m.write(DirConfig { group: null() });
    m
}

unsafe extern "C" fn create_dir_config(p: *mut apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    new_dir_config(p) as *mut c_void
}

unsafe extern "C" fn merge_dir_config(
    p: *mut apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    let m = new_dir_config(p);
    let (b, a) = (base as *const DirConfig, add as *const DirConfig);
    (*m).group = if (*a).group.is_null() {
        (*b).group
    } else {
        (*a).group
    };
    m as *mut c_void
}

// ---------------------------------------------------------------------------------------------
// Hooks

unsafe extern "C" fn pre_config(
    _p: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
) -> c_int {
    let _ = catch_unwind(|| {
        *lock(&PENDING) = Some(Generation::default());
    });
    OK as c_int
}

unsafe extern "C" fn post_config(
    _p: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut g = lock(&PENDING).take().unwrap_or_default();
        g.main_server = s as usize;
        // Job stores, owned by the user Apache's children run as.
        let owner =
            (libc::geteuid() == 0).then_some((ap_unixd_config.user_id, ap_unixd_config.group_id));
        for a in &g.aliases {
            match a.service.store.prepare(owner) {
                Ok(notes) => {
                    for n in notes {
                        log_server(s, APLOG_WARNING, &n);
                    }
                }
                Err(e) => {
                    log_server(
                        s,
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
        let first_pass =
            ap_state_query(AP_SQ_MAIN_STATE as c_int) == AP_SQ_MS_CREATE_PRE_CONFIG as c_int;
        if !first_pass {
            for (level, line) in g.describe() {
                log_server(s, apr_level(level), &line);
            }
        }
        *lock(&ACTIVE) = Some(Arc::new(g));
        Ok(())
    }));
    match r {
        Ok(Ok(())) => OK as c_int,
        Ok(Err(())) => 500,
        Err(p) => {
            log_server(
                s,
                APLOG_ERR,
                &format!("mod_wps post_config failed: {}", panic_message(&*p)),
            );
            500
        }
    }
}

unsafe extern "C" fn shutdown_child(_data: *mut c_void) -> apr_status_t {
    let _ = catch_unwind(|| {
        if let Some(state) = lock(&CHILD).take() {
            let server = state.generation.main_server as *const server_rec;
            for line in state.shutdown() {
                log_server(server, APLOG_WARNING, &line);
            }
        }
    });
    0
}

unsafe extern "C" fn child_init(pchild: *mut apr_pool_t, s: *mut server_rec) {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let Some(generation) = lock(&ACTIVE).clone() else {
            return;
        };
        install_quiet_panic_hook();
        let server = generation.main_server;
        let logger: crate::exec::Logger = Arc::new(move |level, msg: &str| {
            log_server(server as *const server_rec, apr_level(level), msg)
        });
        *lock(&CHILD) = Some(Arc::new(ChildState::start(generation, logger)));
        apr_pool_cleanup_register(
            pchild,
            null(),
            Some(shutdown_child),
            Some(apr_pool_cleanup_null),
        );
    }));
    if let Err(p) = r {
        log_server(
            s,
            APLOG_ERR,
            &format!("mod_wps child_init failed: {}", panic_message(&*p)),
        );
    }
}

unsafe fn cstr_eq(p: *const c_char, s: &CStr) -> bool {
    !p.is_null() && CStr::from_ptr(p) == s
}

unsafe fn uri_of<'a>(r: *const request_rec) -> Option<&'a str> {
    let u = (*r).uri;
    (!u.is_null())
        .then(|| CStr::from_ptr(u).to_str().ok())
        .flatten()
}

unsafe extern "C" fn translate_name(r: *mut request_rec) -> c_int {
    let res = catch_unwind(AssertUnwindSafe(|| {
        let Some(uri) = uri_of(r) else {
            return DECLINED;
        };
        let active = lock(&ACTIVE).clone();
        let Some(g) = active else {
            return DECLINED;
        };
        match g.alias_for((*r).server as usize, uri) {
            Some((_, a)) => {
                (*r).handler = HANDLER.as_ptr();
                (*r).filename =
                    pstr((*r).pool, &a.service.config.path.to_string_lossy()) as *mut c_char;
                OK as c_int
            }
            None => DECLINED,
        }
    }));
    res.unwrap_or(DECLINED)
}

/// Our URLs are not files: skip the directory walk (only <Location> sections apply).
unsafe extern "C" fn map_to_storage(r: *mut request_rec) -> c_int {
    if cstr_eq((*r).handler, HANDLER) {
        OK as c_int
    } else {
        DECLINED
    }
}

/// Reads the request body, stopping once it exceeds `limit` bytes.
unsafe fn read_body(r: *mut request_rec, limit: u64) -> Result<Body, c_int> {
    let cl = apr_table_get((*r).headers_in, c"Content-Length".as_ptr());
    if !cl.is_null() {
        if let Ok(n) = CStr::from_ptr(cl).to_string_lossy().trim().parse::<u64>() {
            if n > limit {
                (*(*r).connection).keepalive = ap_conn_keepalive_e_AP_CONN_CLOSE;
                return Ok(Body::TooLarge);
            }
        }
    }
    let rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK as c_int);
    if rc != OK as c_int {
        return Err(rc);
    }
    let mut body = Vec::new();
    if ap_should_client_block(r) != 0 {
        let mut buf = [0u8; 16384];
        loop {
            let n = ap_get_client_block(r, buf.as_mut_ptr() as *mut c_char, buf.len() as _);
            if n < 0 {
                return Err(400);
            }
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n as usize]);
            if body.len() as u64 > limit {
                (*(*r).connection).keepalive = ap_conn_keepalive_e_AP_CONN_CLOSE;
                return Ok(Body::TooLarge);
            }
        }
    }
    Ok(Body::Bytes(body))
}

unsafe fn send(r: *mut request_rec, resp: &HttpResponse, head: bool) -> c_int {
    for (lvl, msg) in &resp.log {
        log_request(r, *lvl, msg);
    }
    (*r).status = resp.status as c_int;
    ap_set_content_type(r, pstr((*r).pool, &resp.content_type));
    for (k, v) in &resp.headers {
        let (k, v) = (
            CString::new(k.as_str()).unwrap_or_default(),
            CString::new(v.as_str()).unwrap_or_default(),
        );
        apr_table_set((*r).headers_out, k.as_ptr(), v.as_ptr());
    }
    ap_set_content_length(r, resp.body.len() as apr_off_t);
    if !head && !resp.body.is_empty() {
        ap_rwrite(
            resp.body.as_ptr() as *const c_void,
            resp.body.len() as c_int,
            r,
        );
    }
    OK as c_int
}

/// The request headers (`headers_in` is an APR table: an array of key/value entries).
unsafe fn headers_of(r: *const request_rec) -> Vec<(String, String)> {
    let t = (*r).headers_in as *const apr_array_header_t;
    if t.is_null() || (*t).elts.is_null() {
        return Vec::new();
    }
    let entries = std::slice::from_raw_parts(
        (*t).elts as *const apr_table_entry_t,
        (*t).nelts.max(0) as usize,
    );
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    entries
        .iter()
        .filter(|e| !e.key.is_null())
        .map(|e| (text(e.key), text(e.val)))
        .collect()
}

unsafe fn opt_str(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
}

unsafe fn handle(r: *mut request_rec) -> c_int {
    let Some(uri) = uri_of(r) else {
        return DECLINED;
    };
    let Some(state) = lock(&CHILD).clone() else {
        log_request(r, LogLevel::Error, "mod_wps: no worker pools in this child");
        return 500;
    };
    let Some((index, alias)) = state.generation.alias_for((*r).server as usize, uri) else {
        return DECLINED;
    };
    let service = &alias.service;
    let head = (*r).header_only != 0;
    let path = uri[alias.url.trim_end_matches('/').len()..].trim_start_matches('/');
    let dc = *((*r).per_dir_config as *mut *mut c_void)
        .add((*addr_of!(wps_module)).module_index as usize) as *const DirConfig;
    let group = if !dc.is_null() && !(*dc).group.is_null() {
        CStr::from_ptr((*dc).group).to_string_lossy().into_owned()
    } else {
        alias.group().to_owned()
    };
    let method = CStr::from_ptr((*r).method).to_string_lossy().into_owned();
    let body = if method == "POST" {
        match read_body(r, service.max_request_size()) {
            Ok(b) => b,
            Err(code) => return code,
        }
    } else {
        Body::Bytes(Vec::new())
    };
    let query = opt_str((*r).args).unwrap_or_default();
    let user = opt_str((*r).user);
    let url_c = CString::new(alias.url.as_str()).unwrap_or_default();
    let base = CStr::from_ptr(ap_construct_url((*r).pool, url_c.as_ptr(), r))
        .to_string_lossy()
        .into_owned();
    let req = HttpRequest {
        method: &method,
        path,
        query: &query,
        headers: headers_of(r),
        body,
        base_url: &base,
        user: user.as_deref(),
    };
    let resp = match catch_unwind(AssertUnwindSafe(|| state.handle(index, &group, &req))) {
        Ok(resp) => resp,
        Err(p) => {
            log_request(
                r,
                LogLevel::Error,
                &format!("mod_wps: internal error (panic): {}", panic_message(&*p)),
            );
            error_response(
                &WpsError::no_applicable(
                    "Internal error in mod_wps; the details are in the server's error log",
                ),
                service.default_language(),
            )
        }
    };
    send(r, &resp, head)
}

unsafe extern "C" fn handler(r: *mut request_rec) -> c_int {
    if let Some(rc) = status_page::handler(r) {
        return rc;
    }
    if !cstr_eq((*r).handler, HANDLER) {
        return DECLINED;
    }
    match catch_unwind(AssertUnwindSafe(|| handle(r))) {
        Ok(rc) => rc,
        Err(p) => {
            log_request(
                r,
                LogLevel::Error,
                &format!("mod_wps: internal error (panic): {}", panic_message(&*p)),
            );
            500
        }
    }
}

unsafe extern "C" fn register_hooks(_p: *mut apr_pool_t) {
    let middle = APR_HOOK_MIDDLE as c_int;
    ap_hook_pre_config(Some(pre_config), null(), null(), middle);
    ap_hook_post_config(Some(post_config), null(), null(), middle);
    ap_hook_child_init(Some(child_init), null(), null(), middle);
    ap_hook_translate_name(Some(translate_name), null(), null(), middle);
    ap_hook_map_to_storage(
        Some(map_to_storage),
        null(),
        null(),
        APR_HOOK_FIRST as c_int,
    );
    ap_hook_handler(Some(handler), null(), null(), middle);
    status_page::register_hooks();
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
    create_dir_config: Some(create_dir_config),
    merge_dir_config: Some(merge_dir_config),
    create_server_config: None,
    merge_server_config: None,
    cmds: addr_of_mut!(COMMANDS) as *const command_rec,
    register_hooks: Some(register_hooks),
    flags: 0,
};
