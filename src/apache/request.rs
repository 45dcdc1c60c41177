//! Requests: a safe wrapper around Apache's `request_rec` ([`Request`]), and the hooks that
//! route a URL to a WPS alias (`translate_name`, `map_to_storage`) and answer it (`handler`).

use super::directives::group_of;
use super::ffi::*;
use super::log::{apr_level, cstring};
use super::{lock, pstr, ACTIVE, CHILD};
use crate::front::body_buffers::BODY_BUFFERS;
use crate::front::wps1::error_response;
use crate::front::{Body, HttpRequest, HttpResponse};
use crate::model::{panic_message, LogLevel, WpsError};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The handler name `translate_name` gives the requests of a WPS alias.
const HANDLER: &CStr = c"wps-service";

/// One request, for the duration of the hook call Apache handed it to.
///
/// Every accessor relies on the contract of [`Request::from_raw`]: the `request_rec`, its
/// connection, tables and pool strings are valid, and only this thread uses them, while the
/// hook runs (`'a`).
pub(super) struct Request<'a> {
    r: *mut request_rec,
    _hook: PhantomData<&'a mut request_rec>,
}

/// A string Apache keeps in one of the request's pools (null: none).
///
/// # Safety
/// `p` must be null or a NUL-terminated string valid for `'a`.
unsafe fn pool_str<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: non-null `p` is a NUL-terminated string valid for `'a` (the caller's contract).
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

fn lossy(s: Option<&CStr>) -> Option<String> {
    s.map(|c| c.to_string_lossy().into_owned())
}

impl<'a> Request<'a> {
    /// # Safety
    /// `r` must be the `request_rec` Apache passed to the running hook, and the `Request` must
    /// not outlive that hook call (`'a`).
    pub(super) unsafe fn from_raw(r: *mut request_rec) -> Request<'a> {
        Request {
            r,
            _hook: PhantomData,
        }
    }

    fn rec(&self) -> &'a request_rec {
        // SAFETY: `r` is the valid request_rec of the running hook (see `from_raw`), and Apache
        // does not change it behind us while our hook runs.
        unsafe { &*self.r }
    }

    /// The request's pool (lives until the response is sent and logged).
    fn pool(&self) -> *mut apr_pool_t {
        self.rec().pool
    }

    /// The decoded URL path (`None` when missing or not UTF-8).
    pub(super) fn uri(&self) -> Option<&'a str> {
        // SAFETY: `uri` is null or a NUL-terminated string from the request pool.
        unsafe { pool_str(self.rec().uri) }.and_then(|c| c.to_str().ok())
    }

    pub(super) fn method(&self) -> String {
        // SAFETY: `method` is null or a NUL-terminated string from the request pool.
        lossy(unsafe { pool_str(self.rec().method) }).unwrap_or_default()
    }

    /// The query string (`r->args`; empty when none).
    pub(super) fn args(&self) -> String {
        // SAFETY: `args` is null or a NUL-terminated string from the request pool.
        lossy(unsafe { pool_str(self.rec().args) }).unwrap_or_default()
    }

    /// The authenticated user (`REMOTE_USER`), if any.
    pub(super) fn user(&self) -> Option<String> {
        // SAFETY: `user` is null or a NUL-terminated string from the request (or connection)
        // pool.
        lossy(unsafe { pool_str(self.rec().user) })
    }

    /// True for a HEAD request (headers only).
    pub(super) fn header_only(&self) -> bool {
        self.rec().header_only != 0
    }

    /// The (virtual) server the request came to, as an opaque key.
    pub(super) fn server(&self) -> usize {
        self.rec().server as usize
    }

    /// Whether the handler set for this request is `name`.
    pub(super) fn handler_is(&self, name: &CStr) -> bool {
        // SAFETY: `handler` is null or a NUL-terminated string that lives for the request.
        let handler = unsafe { pool_str(self.rec().handler) };
        handler == Some(name)
    }

    /// Claims the request for the WPS handler; `filename` is what other modules see.
    fn claim(&mut self, filename: &str) {
        let pool = self.pool();
        // SAFETY: `r` is valid and used by this thread only (see `from_raw`); HANDLER is a
        // static string, and `pstr` copies `filename` into the live request pool, so both
        // outlive the request.
        unsafe {
            (*self.r).handler = HANDLER.as_ptr();
            (*self.r).filename = pstr(pool, filename) as *mut c_char;
        }
    }

    /// The request headers (`headers_in` is an APR table: an array of key/value entries).
    pub(super) fn headers(&self) -> Vec<(String, String)> {
        let t = self.rec().headers_in as *const apr_array_header_t;
        // SAFETY: an apr_table_t starts with its apr_array_header_t (APR's documented layout,
        // which apr_table_elts relies on); `headers_in` is null or a live table.
        let Some(arr) = (unsafe { t.as_ref() }) else {
            return Vec::new();
        };
        if arr.elts.is_null() {
            return Vec::new();
        }
        // SAFETY: the table's `elts` holds `nelts` apr_table_entry_t, allocated from the
        // request pool; nothing changes the table while we read it.
        let entries = unsafe {
            std::slice::from_raw_parts(
                arr.elts as *const apr_table_entry_t,
                arr.nelts.max(0) as usize,
            )
        };
        // SAFETY (for each call below): keys and values are null or NUL-terminated strings
        // from the request pool.
        let text = |p: *const c_char| lossy(unsafe { pool_str(p) }).unwrap_or_default();
        entries
            .iter()
            .filter(|e| !e.key.is_null())
            .map(|e| (text(e.key), text(e.val)))
            .collect()
    }

    /// One request header.
    fn header(&self, name: &CStr) -> Option<String> {
        // SAFETY: `headers_in` is a live table of the request and `name` is NUL-terminated;
        // the result is null or a NUL-terminated string from the request pool.
        let v = unsafe { apr_table_get(self.rec().headers_in, name.as_ptr()) };
        // SAFETY: see above.
        lossy(unsafe { pool_str(v) })
    }

    /// The `WPSProcessGroup` of the `<Location>` the request falls in.
    pub(super) fn process_group(&self) -> Option<String> {
        // SAFETY: `per_dir_config` is the request's config vector, valid for the request.
        lossy(unsafe { group_of(self.rec().per_dir_config) })
    }

    /// The absolute URL of `path` on this server, as the client addressed it.
    pub(super) fn construct_url(&self, path: &str) -> String {
        let c = CString::new(path).unwrap_or_default();
        // SAFETY: the request pool is live, `c` is NUL-terminated and `r` valid; the result is
        // a NUL-terminated string allocated from the request pool.
        let url = unsafe { ap_construct_url(self.pool(), c.as_ptr(), self.r) };
        // SAFETY: see above.
        lossy(unsafe { pool_str(url) }).unwrap_or_default()
    }

    /// Closes the connection after this response (the rest of a refused body is not read).
    fn close_connection(&mut self) {
        // SAFETY: `connection` is the request's live conn_rec, used by this thread only while
        // the request is processed.
        unsafe { (*self.rec().connection).keepalive = ap_conn_keepalive_e_AP_CONN_CLOSE };
    }

    /// Reads the request body, stopping once it exceeds `limit` bytes. Apache copies the body
    /// straight into the vector: with a `Content-Length` (at most `limit`) its capacity is
    /// reserved at once, without one (chunked) it grows as the body comes.
    pub(super) fn read_body(&mut self, limit: u64) -> Result<Body, c_int> {
        /// What a body without a `Content-Length` starts with and grows by at least.
        const CHUNK: usize = 16384;
        let declared = self
            .header(c"Content-Length")
            .and_then(|cl| cl.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            self.close_connection();
            return Ok(Body::TooLarge);
        }
        // SAFETY: `r` is the live request of a handler, the phase in which its body is read.
        let rc = unsafe { ap_setup_client_block(self.r, REQUEST_CHUNKED_DECHUNK as c_int) };
        if rc != OK as c_int {
            return Err(rc);
        }
        let mut body = Vec::new();
        // SAFETY: as above, after ap_setup_client_block succeeded.
        if unsafe { ap_should_client_block(self.r) } != 0 {
            // at most one byte more than the limit is read: enough to tell the body is too large
            let most = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            // one byte more than declared: room for the read that finds the end of the body
            let first = declared.map_or(CHUNK, |n| {
                usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1)
                    .min(most)
            });
            // a large body (declared: a chunked one starts small) goes into the buffer of one
            // that ended, still in the caches
            body = BODY_BUFFERS.take(first);
            loop {
                if body.len() == body.capacity() {
                    body.reserve(CHUNK);
                }
                let room = most - body.len();
                let spare = body.spare_capacity_mut();
                let want = spare.len().min(room);
                // SAFETY: `spare` is writable for `want` (> 0) bytes; Apache writes at most
                // `want` bytes there and returns how many it wrote (negative: an error).
                let n = unsafe {
                    ap_get_client_block(self.r, spare.as_mut_ptr() as *mut c_char, want as _)
                };
                if n < 0 {
                    return Err(400);
                }
                if n == 0 {
                    break;
                }
                let n = n as usize;
                if n > want {
                    return Err(500);
                }
                // SAFETY: Apache initialised the `n` (<= `want` <= spare capacity) bytes after
                // the vector's length.
                unsafe { body.set_len(body.len() + n) };
                if body.len() as u64 > limit {
                    self.close_connection();
                    return Ok(Body::TooLarge);
                }
            }
        }
        // A body that grew as it came (chunked) may have up to twice its size reserved: given
        // back, as the body is kept while its job runs (a copy, for such bodies only).
        if declared.is_none() && body.capacity() - body.len() > body.len() / 4 {
            body.shrink_to_fit();
        }
        // the vector's allocation becomes the shared body (no copy)
        Ok(Body::Bytes(BODY_BUFFERS.share(body)))
    }

    /// Sends `resp` (its log lines go to the error log first); only the headers for HEAD.
    pub(super) fn send(&mut self, resp: &HttpResponse) -> c_int {
        for (lvl, msg) in &resp.log {
            self.log(*lvl, msg);
        }
        let head = self.header_only();
        let pool = self.pool();
        // SAFETY: `r` is valid and used by this thread only; the content type is copied into the
        // request pool (Apache keeps the pointer), the header names and values are copied by
        // apr_table_set, and `ap_rwrite` copies `body.len()` bytes from the live `body`.
        //
        // The response is flushed here, before the handler returns: the core output filter
        // holds back a response under 4 KB on a keep-alive connection until after Apache
        // has looked for the client's next request, which then is never there yet, so every
        // such connection went back to the listener thread and to another worker between
        // requests (two epoll_ctl, an epoll_wait and ~6 futex calls per request); sent now,
        // the client's next request is usually waiting when Apache looks (bench/RESULTS.md).
        unsafe {
            (*self.r).status = resp.status as c_int;
            ap_set_content_type(self.r, pstr(pool, &resp.content_type));
            for (k, v) in &resp.headers {
                let (k, v) = (
                    CString::new(k.as_str()).unwrap_or_default(),
                    CString::new(v.as_str()).unwrap_or_default(),
                );
                apr_table_set(self.rec().headers_out, k.as_ptr(), v.as_ptr());
            }
            ap_set_content_length(self.r, resp.body.len() as apr_off_t);
            if !head && !resp.body.is_empty() {
                ap_rwrite(
                    resp.body.as_ptr() as *const c_void,
                    resp.body.len() as c_int,
                    self.r,
                );
            }
            ap_rflush(self.r);
        }
        OK as c_int
    }

    /// Writes `msg` to the error log with this request's context.
    pub(super) fn log(&self, level: LogLevel, msg: &str) {
        let c = cstring(msg);
        // SAFETY: `r` is valid; `c` is NUL-terminated and passed as a "%s" argument.
        unsafe { wps_log_request(self.r, apr_level(level) as c_int, c.as_ptr()) }
    }
}

/// Logs a panic caught in a handler and answers 500.
pub(super) fn internal_error(req: &Request, what: &str, p: &(dyn std::any::Any + Send)) -> c_int {
    req.log(
        LogLevel::Error,
        &format!("{what}: internal error (panic): {}", panic_message(p)),
    );
    500
}

pub(super) unsafe extern "C" fn translate_name(r: *mut request_rec) -> c_int {
    // SAFETY: Apache passes the request of this hook call.
    let mut req = unsafe { Request::from_raw(r) };
    let res = catch_unwind(AssertUnwindSafe(|| {
        let Some(uri) = req.uri() else {
            return DECLINED;
        };
        let Some(g) = lock(&ACTIVE).clone() else {
            return DECLINED;
        };
        match g.alias_for(req.server(), uri) {
            Some((_, a)) => {
                req.claim(&a.service.config.path.to_string_lossy());
                OK as c_int
            }
            None => DECLINED,
        }
    }));
    res.unwrap_or(DECLINED)
}

/// Our URLs are not files: skip the directory walk (only <Location> sections apply).
pub(super) unsafe extern "C" fn map_to_storage(r: *mut request_rec) -> c_int {
    // SAFETY: Apache passes the request of this hook call.
    let req = unsafe { Request::from_raw(r) };
    if req.handler_is(HANDLER) {
        OK as c_int
    } else {
        DECLINED
    }
}

fn handle(req: &mut Request) -> c_int {
    let Some(uri) = req.uri() else {
        return DECLINED;
    };
    let Some(state) = lock(&CHILD).clone() else {
        req.log(LogLevel::Error, "mod_wps: no worker pools in this child");
        return 500;
    };
    let Some((index, alias)) = state.generation.alias_for(req.server(), uri) else {
        return DECLINED;
    };
    let service = &alias.service;
    let path = uri[alias.url.trim_end_matches('/').len()..].trim_start_matches('/');
    let group = req
        .process_group()
        .unwrap_or_else(|| alias.group().to_owned());
    let method = req.method();
    let body = if method == "POST" {
        match req.read_body(service.max_request_size()) {
            Ok(b) => b,
            Err(code) => return code,
        }
    } else {
        Body::Bytes(Default::default())
    };
    let query = req.args();
    let user = req.user();
    let base = req.construct_url(&alias.url);
    let http = HttpRequest {
        method: &method,
        path,
        query: &query,
        headers: req.headers(),
        body,
        base_url: &base,
        user: user.as_deref(),
    };
    let resp = match catch_unwind(AssertUnwindSafe(|| state.handle(index, &group, &http))) {
        Ok(resp) => resp,
        Err(p) => {
            req.log(
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
    req.send(&resp)
}

/// Answers a request of a WPS alias (`None` when the request is not one).
pub(super) fn handle_wps(req: &mut Request) -> Option<c_int> {
    if !req.handler_is(HANDLER) {
        return None;
    }
    Some(match catch_unwind(AssertUnwindSafe(|| handle(req))) {
        Ok(rc) => rc,
        Err(p) => internal_error(req, "mod_wps", &*p),
    })
}
