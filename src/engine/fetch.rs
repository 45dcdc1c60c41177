//! Reference (`xlink:href`) inputs: the address policy and the fetcher.
//!
//! - `http://` and `https://` references are fetched with `ureq` (rustls), with a time limit
//!   and `maxsingleinputsize` (the body is read no further than that).
//! - Redirects are followed here, not by `ureq` (whose redirect code panics on a `Location`
//!   without a host, e.g. `file:///etc/passwd`): at most `max_redirects`, each `Location` must be
//!   an `http`/`https` URL with a host that [`FetchPolicy::precheck`] accepts, and the request
//!   to it resolves through [`checked_resolve`] like the first one. The reference's own headers
//!   go to its origin only. Library calls run under `catch_unwind`: a panic in them is a failed
//!   fetch, not a lost request thread or pool worker.
//! - Every connection, including each one after a redirect, goes through [`checked_resolve`]:
//!   the host is resolved once, *every* address is checked, and the connection is made to those
//!   checked addresses only (no second lookup, so DNS rebinding cannot slip past the check).
//!   Loopback, private, link-local, CGNAT, multicast, documentation and other non-public
//!   addresses are refused unless `[server] allowedhosts` lists the host name or a network
//!   containing the address.
//! - `file://` references are refused unless `[server] allowedinputpaths` lists a directory
//!   containing the file; paths are canonicalized first (`..` and symlinks resolved), so a
//!   reference cannot escape the listed directories.
//! - Proxies from the environment are not used.

pub use crate::model::net::HostRule;
use crate::model::Reference;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time limit of one fetch (connect, request and the whole body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed at most.
pub const MAX_REDIRECTS: u32 = 5;

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    let non_public = o[0] == 0 // "this network", 0.0.0.0
        || o[0] == 10 // private
        || o[0] == 127 // loopback
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared address space (CGNAT)
        || (o[0] == 169 && o[1] == 254) // link-local (cloud metadata services)
        || (o[0] == 172 && (o[1] & 0xf0) == 16) // private 172.16/12
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // documentation
        || (o[0] == 192 && o[1] == 168) // private
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // documentation
        || (o[0] == 203 && o[1] == 0 && o[2] == 113) // documentation
        || o[0] >= 224; // multicast, reserved, broadcast
    !non_public
}

/// Whether `ip` is a public (globally routable unicast) address that references may reach
/// without an `allowedhosts` entry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // addresses that embed an IPv4 address: judge that one
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_public_v4(embedded_v4(s[6], s[7])); // NAT64 64:ff9b::/96
            }
            if s[0] == 0x2002 {
                return is_public_v4(embedded_v4(s[1], s[2])); // 6to4 2002::/16
            }
            let non_public = v6.is_unspecified()
                || v6.is_loopback()
                || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d (deprecated)
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (s[0] & 0xff00) == 0xff00 // multicast
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF assignments incl. Teredo
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only 100::/64
            !non_public
        }
    }
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from(((hi as u32) << 16) | lo as u32)
}

/// What references may reach, and how much of them is read.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPolicy {
    pub allowed_hosts: Vec<HostRule>,
    pub allowed_paths: Vec<PathBuf>,
    pub max_size: u64,
    pub timeout: Duration,
    pub max_redirects: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FetchError {
    /// Refused by the address policy (→ InvalidParameterValue).
    Refused(String),
    /// Larger than `max_size` (→ FileSizeExceeded).
    TooLarge(u64),
    /// The fetch failed: unreachable, HTTP error status, timeout… (→ InvalidParameterValue).
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Refused(m) | FetchError::Failed(m) => f.write_str(m),
            FetchError::TooLarge(max) => {
                write!(
                    f,
                    "the referenced data is larger than maxsingleinputsize ({max} bytes)"
                )
            }
        }
    }
}

/// The fetched bytes and the media type the server gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub data: Vec<u8>,
    pub content_type: Option<String>,
}

impl FetchPolicy {
    fn host_allowed_by_name(&self, host: &str) -> bool {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts
            .iter()
            .any(|r| matches!(r, HostRule::Name(n) if n.trim_end_matches('.') == h))
    }

    /// Checks one address of `host`.
    pub fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), FetchError> {
        if is_public(ip) || self.allowed_hosts.iter().any(|r| r.contains(ip)) {
            Ok(())
        } else {
            Err(FetchError::Refused(format!(
                "references to non-public addresses are not allowed: '{host}' is {ip} \
                 (list it in [server] allowedhosts to allow it)"
            )))
        }
    }

    /// Checks `href` without any network traffic (on the request thread, before a job is
    /// accepted): the scheme, `file://` paths, and hosts given as addresses or `localhost`.
    /// Host names are checked again, resolved, when the data is fetched.
    pub fn precheck(&self, href: &str) -> Result<(), FetchError> {
        let url = parse_url(href)?;
        match url.scheme() {
            "file" => self.check_file(&url).map(|_| ()),
            "http" | "https" => {
                let host = url_host(&url)?;
                if self.host_allowed_by_name(&host) {
                    return Ok(());
                }
                if let Ok(ip) = host.parse::<IpAddr>() {
                    return self.check_addr(&host, ip);
                }
                let h = host.trim_end_matches('.').to_ascii_lowercase();
                if h == "localhost" || h.ends_with(".localhost") {
                    return self.check_addr(&host, IpAddr::V4(Ipv4Addr::LOCALHOST));
                }
                Ok(())
            }
            s => Err(FetchError::Refused(format!(
                "reference scheme '{s}' is not supported (use http, https or an allowed file://)"
            ))),
        }
    }

    /// The canonical path of a `file://` reference inside an allowed directory.
    fn check_file(&self, url: &url::Url) -> Result<PathBuf, FetchError> {
        let refused = |m: String| FetchError::Refused(m);
        if self.allowed_paths.is_empty() {
            return Err(refused(
                "file:// references are not allowed (see [server] allowedinputpaths)".into(),
            ));
        }
        let path = url
            .to_file_path()
            .map_err(|_| refused(format!("'{url}' is not a local file URL")))?;
        let canon = path
            .canonicalize()
            .map_err(|_| refused(format!("file '{}' is not allowed", path.display())))?;
        let inside = self.allowed_paths.iter().any(|dir| {
            dir.canonicalize()
                .map(|d| canon.starts_with(&d) && canon != d)
                .unwrap_or(false)
        });
        if !inside {
            // the same message whether the file exists or not: no probing of the file system
            return Err(refused(format!("file '{}' is not allowed", path.display())));
        }
        Ok(canon)
    }

    /// Fetches a reference (network traffic: call it off the request thread where possible).
    pub fn fetch(&self, r: &Reference) -> Result<Fetched, FetchError> {
        let url = parse_url(&r.href)?;
        if url.scheme() == "file" {
            let path = self.check_file(&url)?;
            let f = std::fs::File::open(&path).map_err(|e| {
                FetchError::Failed(format!("cannot read '{}': {e}", path.display()))
            })?;
            let data = read_limited(f, self.max_size)?;
            return Ok(Fetched {
                data,
                content_type: None,
            });
        }
        self.precheck(&r.href)?;
        let method = r
            .method
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or("GET")
            .to_ascii_uppercase();
        if method != "GET" && method != "POST" {
            return Err(FetchError::Refused(format!(
                "reference method '{method}' is not supported (GET or POST)"
            )));
        }
        let body: Option<Vec<u8>> = match (&r.body, &r.body_reference) {
            (Some(b), _) => Some(b.clone().into_bytes()),
            (None, Some(href)) => {
                let inner = Reference {
                    href: href.clone(),
                    ..Default::default()
                };
                Some(self.fetch(&inner)?.data)
            }
            (None, None) => None,
        };
        self.http(&url, &method, &r.headers, body)
    }

    /// Fetches `url` over HTTP(S), following at most `max_redirects` redirects itself (the
    /// library's own redirect handling is off): every `Location` is checked by
    /// [`FetchPolicy::redirect_target`] before anything is sent to it, and each connection
    /// resolves through [`checked_resolve`]. `timeout` bounds the whole fetch, all hops together.
    fn http(
        &self,
        url: &url::Url,
        method: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Fetched, FetchError> {
        let refusal: Arc<Mutex<Option<FetchError>>> = Arc::default();
        let policy = self.clone();
        let r2 = refusal.clone();
        let agent = ureq::AgentBuilder::new()
            .timeout(self.timeout)
            .redirects(0)
            .try_proxy_from_env(false)
            .user_agent(concat!("mod_wps/", env!("CARGO_PKG_VERSION")))
            .resolver(move |netloc: &str| {
                checked_resolve(&policy, netloc).map_err(|e| {
                    let msg = e.to_string();
                    *r2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg)
                })
            })
            .build();
        let deadline = Instant::now() + self.timeout;
        let first = url;
        let mut url = url.clone();
        let mut method = method.to_owned();
        let mut body = body;
        // the reference's own headers go to its origin only, not to where it redirects
        let mut same_origin = true;
        for _ in 0..=self.max_redirects {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(FetchError::Failed(format!(
                    "fetching '{first}' took longer than {}s",
                    self.timeout.as_secs()
                )));
            }
            let hdrs = if same_origin { headers } else { &[] };
            let resp = guarded(&url, || {
                one_request(&agent, &url, &method, hdrs, body.as_deref(), remaining)
            });
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    // a refusal by the resolver explains the failure better than the library
                    if let Some(r) = refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        return Err(r);
                    }
                    return Err(e);
                }
            };
            let status = resp.status();
            if !(300..400).contains(&status) {
                return guarded(&url, || self.read_body(resp));
            }
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return Err(FetchError::Failed(format!(
                    "fetching '{url}' answered HTTP {status}"
                )));
            }
            let Some(location) = resp.header("Location").map(str::to_owned) else {
                return Err(FetchError::Failed(format!(
                    "fetching '{url}' answered HTTP {status} without a Location"
                )));
            };
            drop(resp);
            let next = self.redirect_target(&url, &location)?;
            if status != 307 && status != 308 {
                // as browsers and curl do: the redirected request is a GET without a body
                method = "GET".to_owned();
                body = None;
            }
            same_origin = same_origin && next.origin() == first.origin();
            url = next;
        }
        Err(FetchError::Failed(format!(
            "fetching '{first}': more than {} redirects",
            self.max_redirects
        )))
    }

    /// The URL a redirect from `base` to `location` leads to, if the policy allows it: an
    /// `http`/`https` URL with a host, which [`FetchPolicy::precheck`] accepts (literal
    /// addresses, `localhost`). Its resolved addresses are checked when it is connected to.
    pub fn redirect_target(&self, base: &url::Url, location: &str) -> Result<url::Url, FetchError> {
        let refused = |why: &str| {
            FetchError::Refused(format!(
                "'{base}' redirects to '{}', which is not allowed: {why}",
                location.escape_debug()
            ))
        };
        if location_has_empty_host(location) {
            return Err(refused("the URL has no host"));
        }
        let next = base
            .join(location.trim())
            .map_err(|e| refused(&format!("not a valid URL ({e})")))?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(refused("only http and https redirects are followed"));
        }
        if next.host_str().is_none_or(str::is_empty) {
            return Err(refused("the URL has no host"));
        }
        self.precheck(next.as_str())
            .map_err(|e| refused(&e.to_string()))?;
        Ok(next)
    }

    fn read_body(&self, resp: ureq::Response) -> Result<Fetched, FetchError> {
        if let Some(len) = resp
            .header("Content-Length")
            .and_then(|l| l.trim().parse::<u64>().ok())
        {
            if len > self.max_size {
                return Err(FetchError::TooLarge(self.max_size));
            }
        }
        let content_type = resp.header("Content-Type").map(str::to_owned);
        let data = read_limited(resp.into_reader(), self.max_size)?;
        Ok(Fetched { data, content_type })
    }
}

/// One request, no redirect followed: a 3xx answer is returned as it is.
fn one_request(
    agent: &ureq::Agent,
    url: &url::Url,
    method: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<ureq::Response, FetchError> {
    let mut req = agent.request_url(method, url).timeout(timeout);
    for (k, v) in headers {
        let lk = k.trim().to_ascii_lowercase();
        let forbidden = [
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "te",
            "upgrade",
            "proxy-authorization",
        ];
        if lk.is_empty() || forbidden.contains(&lk.as_str()) {
            continue;
        }
        req = req.set(k.trim(), v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    result.map_err(|e| match e {
        ureq::Error::Status(code, _) => {
            FetchError::Failed(format!("fetching '{url}' answered HTTP {code}"))
        }
        ureq::Error::Transport(t) => FetchError::Failed(format!("cannot fetch '{url}': {t}")),
    })
}

/// Runs library code so that a panic in it (a bug there, triggered by what a remote server
/// sent) becomes a failed fetch instead of taking the request or the pool worker down.
fn guarded<T>(url: &url::Url, f: impl FnOnce() -> Result<T, FetchError>) -> Result<T, FetchError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(FetchError::Failed(format!(
            "fetching '{url}' failed: internal error in the HTTP client"
        )))
    })
}

/// Whether a `Location` value names an empty host (`http:///x`, `///x`, `https:\\\x`):
/// URL parsers disagree about these (WHATWG's takes the first path segment as the host), so
/// they are refused before parsing. Tabs and line breaks are ignored, as URL parsers do.
fn location_has_empty_host(location: &str) -> bool {
    let s: String = location
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let s = s.trim_matches(|c: char| c <= ' ');
    let rest = match s.split_once(':') {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            rest
        }
        _ => s,
    };
    let slashes = rest.chars().take_while(|c| matches!(c, '/' | '\\')).count();
    let after = &rest[slashes..];
    slashes >= 3 || (slashes == 2 && (after.is_empty() || after.starts_with(['?', '#'])))
}

/// Reads at most `max` bytes; more → `TooLarge` (the rest is never read).
fn read_limited(r: impl Read, max: u64) -> Result<Vec<u8>, FetchError> {
    let mut data = Vec::new();
    r.take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| FetchError::Failed(format!("cannot read the referenced data: {e}")))?;
    if data.len() as u64 > max {
        return Err(FetchError::TooLarge(max));
    }
    Ok(data)
}

fn parse_url(href: &str) -> Result<url::Url, FetchError> {
    url::Url::parse(href.trim())
        .map_err(|e| FetchError::Refused(format!("'{href}' is not a valid URL: {e}")))
}

fn url_host(url: &url::Url) -> Result<String, FetchError> {
    match url.host() {
        Some(url::Host::Domain(d)) => Ok(d.to_owned()),
        Some(url::Host::Ipv4(a)) => Ok(a.to_string()),
        Some(url::Host::Ipv6(a)) => Ok(a.to_string()),
        None => Err(FetchError::Refused(format!("'{url}' has no host"))),
    }
}

/// Resolves `netloc` (`host:port`, `[v6]:port`) and checks every address against the policy:
/// all must pass, or the connection is refused.
pub fn checked_resolve(policy: &FetchPolicy, netloc: &str) -> Result<Vec<SocketAddr>, FetchError> {
    let (host, port) = match netloc.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().unwrap_or(80)),
        None => (netloc, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| FetchError::Failed(format!("cannot resolve '{host}': {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(FetchError::Failed(format!("'{host}' has no address")));
    }
    if !policy.host_allowed_by_name(host) {
        for a in &addrs {
            policy.check_addr(host, a.ip())?;
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(hosts: &[&str], paths: Vec<PathBuf>) -> FetchPolicy {
        FetchPolicy {
            allowed_hosts: hosts.iter().map(|h| HostRule::parse(h).unwrap()).collect(),
            allowed_paths: paths,
            max_size: 1000,
            timeout: Duration::from_secs(1),
            max_redirects: 2,
        }
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for a in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.169.254",
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(a)), "{a} must not be public");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "100.128.0.1",
            "2a00:1450:4001::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(a)), "{a} must be public");
        }
    }

    #[test]
    fn allowlist_rules() {
        let p = policy(
            &["127.0.0.1", "10.0.0.0/8", "fd00::/8", "intranet.example"],
            vec![],
        );
        assert!(p.check_addr("h", ip("127.0.0.1")).is_ok());
        assert!(p.check_addr("h", ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check_addr("h", ip("127.0.0.2")).is_err());
        assert!(p.check_addr("h", ip("10.9.8.7")).is_ok());
        assert!(p.check_addr("h", ip("192.168.0.1")).is_err());
        assert!(p.check_addr("h", ip("fd00::5")).is_ok());
        assert!(p.check_addr("h", ip("fe80::1")).is_err());
        assert!(p.check_addr("h", ip("8.8.8.8")).is_ok());
        assert!(p.host_allowed_by_name("Intranet.Example."));
        assert!(HostRule::parse("10.0.0.0/33").is_err());
        assert!(HostRule::parse("a b").is_err());
        assert_eq!(
            HostRule::parse("[::1]").unwrap(),
            HostRule::Net(ip("::1"), 128)
        );
        // the resolver refuses a loopback literal, allows it once listed
        let strict = policy(&[], vec![]);
        assert!(matches!(
            checked_resolve(&strict, "127.0.0.1:80"),
            Err(FetchError::Refused(_))
        ));
        assert!(matches!(
            checked_resolve(&strict, "[::1]:8080"),
            Err(FetchError::Refused(_))
        ));
        assert_eq!(
            checked_resolve(&p, "127.0.0.1:81").unwrap(),
            vec!["127.0.0.1:81".parse().unwrap()]
        );
    }

    #[test]
    fn precheck_schemes_and_hosts() {
        let p = policy(&[], vec![]);
        for bad in [
            "file:///etc/passwd",
            "http://127.0.0.1/x",
            "http://[::1]:8080/x",
            "http://localhost/x",
            "http://foo.localhost/x",
            "https://169.254.169.254/latest/meta-data/",
            "http://[::ffff:7f00:1]/",
            "http://0x7f000001/",
            "http://2130706433/",
            "gopher://example.com/",
            "ftp://example.com/x",
            "not a url",
        ] {
            assert!(p.precheck(bad).is_err(), "{bad}");
        }
        assert!(p.precheck("https://example.com/data.gml").is_ok());
        let p = policy(&["localhost"], vec![]);
        assert!(p.precheck("http://localhost:8080/x").is_ok());
    }

    /// A loopback HTTP server: each request gets `answer(method, path, request head)` (the
    /// whole response); the counter counts connections.
    fn serve(
        addr: &str,
        answer: impl Fn(&str, &str, &str) -> String + Send + 'static,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::Write;
        let l = std::net::TcpListener::bind(addr).unwrap();
        let port = l.local_addr().unwrap().port();
        let count: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let c2 = count.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = s.read_exact(&mut body);
                let mut words = head.split(' ');
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let _ = s.write_all(answer(method, path, &head).as_bytes());
            }
        });
        (port, count)
    }

    fn redirect(location: &str) -> String {
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn get(p: &FetchPolicy, href: String) -> Result<Fetched, FetchError> {
        p.fetch(&Reference {
            href,
            ..Default::default()
        })
    }

    fn conns(c: &std::sync::atomic::AtomicUsize) -> usize {
        c.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Redirects to URLs that are not http(s) with a host are refused, without a panic and
    /// without any further connection.
    #[test]
    fn redirects_to_non_http_or_hostless_urls_are_refused() {
        const TARGETS: &[&str] = &[
            "file:///etc/passwd",
            "http:///x",
            "https:///",
            "///x",
            "http:\\\\\\x",
            "http://",
            "http://?x",
            "gopher://127.0.0.1/",
            "ftp://127.0.0.1/x",
            "data:text/plain,root:x:0:0",
            "javascript:alert(1)",
            "http://[::1",
        ];
        let (port, count) = serve("127.0.0.1:0", |_, path, _| {
            let i: usize = path.trim_start_matches("/r/").parse().unwrap();
            redirect(TARGETS[i])
        });
        let p = policy(&["127.0.0.1"], vec![]);
        for (i, target) in TARGETS.iter().enumerate() {
            let before = conns(&count);
            let r = get(&p, format!("http://127.0.0.1:{port}/r/{i}"));
            match r {
                Err(FetchError::Refused(m)) => assert!(m.contains("not allowed"), "{target}: {m}"),
                other => panic!("{target}: {other:?}"),
            }
            assert_eq!(conns(&count), before + 1, "{target}");
        }
        for (loc, empty) in [
            ("http:///x", true),
            ("  http:\t///x", true),
            ("HTTPS:///", true),
            ("//", true),
            ("http://h/x", false),
            ("//h/x", false),
            ("/x", false),
            ("x", false),
            ("?a=//", false),
        ] {
            assert_eq!(location_has_empty_host(loc), empty, "{loc}");
        }
    }

    /// A redirect to an address the policy refuses is refused before any connection to it.
    #[test]
    fn redirects_to_disallowed_addresses_are_refused_without_connecting() {
        let (far_port, far_count) = serve("127.0.0.2:0", |_, _, _| ok("secret"));
        let targets = [
            format!("http://127.0.0.2:{far_port}/x"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://10.1.2.3/x".to_owned(),
            "http://[::1]:1/x".to_owned(),
            "http://[::ffff:127.0.0.2]:1/x".to_owned(),
        ];
        let t2 = targets.clone();
        let (port, _) = serve("127.0.0.1:0", move |_, path, _| {
            let i: usize = path.trim_start_matches("/r/").parse().unwrap();
            redirect(&t2[i])
        });
        let p = policy(&["127.0.0.1"], vec![]);
        for (i, target) in targets.iter().enumerate() {
            match get(&p, format!("http://127.0.0.1:{port}/r/{i}")) {
                Err(FetchError::Refused(m)) => assert!(m.contains("non-public"), "{target}: {m}"),
                other => panic!("{target}: {other:?}"),
            }
        }
        assert_eq!(conns(&far_count), 0);
        // allowed once listed
        let p = policy(&["127.0.0.1", "127.0.0.2"], vec![]);
        let r = get(&p, format!("http://127.0.0.1:{port}/r/0")).unwrap();
        assert_eq!(r.data, b"secret");
        assert_eq!(conns(&far_count), 1);
    }

    /// At most `max_redirects` redirects are followed (2 here); relative locations work.
    #[test]
    fn redirect_chains_are_limited() {
        let (port, count) = serve("127.0.0.1:0", |_, path, _| {
            let n: u32 = path.trim_start_matches("/chain/").parse().unwrap();
            if n == 0 {
                ok("done")
            } else {
                redirect(&format!("/chain/{}", n - 1))
            }
        });
        let p = policy(&["127.0.0.1"], vec![]);
        let r = get(&p, format!("http://127.0.0.1:{port}/chain/2")).unwrap();
        assert_eq!(r.data, b"done");
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert_eq!(conns(&count), 3);
        match get(&p, format!("http://127.0.0.1:{port}/chain/3")) {
            Err(FetchError::Failed(m)) => assert!(m.contains("more than 2 redirects"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(conns(&count), 6, "no request after the limit");
        match get(&p, format!("http://127.0.0.1:{port}/chain/50")) {
            Err(FetchError::Failed(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    /// 303 turns a POST into a GET without body; the reference's headers are not sent to
    /// another origin.
    #[test]
    fn redirected_requests() {
        let (echo_port, _) = serve("127.0.0.1:0", |method, _, head| {
            ok(&format!(
                "{method} {}",
                head.to_ascii_lowercase().contains("x-token")
            ))
        });
        let moved = |status: &str| {
            format!("HTTP/1.1 {status}\r\nLocation: /echo\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        };
        let (port, _) = serve("127.0.0.1:0", move |method, path, head| match path {
            "/post" => moved("303 See Other"),
            "/keep" => moved("307 Temporary Redirect"),
            "/away" => redirect(&format!("http://127.0.0.1:{echo_port}/echo")),
            "/echo" => ok(&format!(
                "{method} {}",
                head.to_ascii_lowercase().contains("x-token")
            )),
            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        });
        let p = policy(&["127.0.0.1"], vec![]);
        let fetch = |path: &str, method: &str| {
            let r = p.fetch(&Reference {
                href: format!("http://127.0.0.1:{port}{path}"),
                method: Some(method.into()),
                body: (method == "POST").then(|| "q".to_owned()),
                headers: vec![("X-Token".into(), "s".into())],
                ..Default::default()
            });
            String::from_utf8(r.unwrap().data).unwrap()
        };
        assert_eq!(fetch("/echo", "POST"), "POST true");
        assert_eq!(fetch("/post", "POST"), "GET true");
        assert_eq!(fetch("/keep", "POST"), "POST true");
        assert_eq!(fetch("/away", "GET"), "GET false");
        assert!(matches!(
            get(&p, format!("http://127.0.0.1:{port}/nope")),
            Err(FetchError::Failed(m)) if m.contains("404")
        ));
    }

    #[test]
    fn a_panic_in_the_client_is_a_failed_fetch() {
        let url = url::Url::parse("http://example.com/").unwrap();
        let r: Result<(), FetchError> = guarded(&url, || panic!("bug in the library"));
        assert!(matches!(r, Err(FetchError::Failed(m)) if m.contains("internal error")));
    }

    #[test]
    fn file_references_stay_inside_allowed_directories() {
        let root = std::env::temp_dir().join(format!("mod_wps-fetch-{}", uuid::Uuid::new_v4()));
        let allowed = root.join("allowed");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::write(allowed.join("sub/a.gml"), b"<a/>").unwrap();
        std::fs::write(root.join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), allowed.join("link.txt")).unwrap();
        let p = policy(&[], vec![allowed.clone()]);
        let get = |href: String| {
            p.fetch(&Reference {
                href,
                ..Default::default()
            })
        };
        let url = |path: &std::path::Path| format!("file://{}", path.display());
        assert_eq!(get(url(&allowed.join("sub/a.gml"))).unwrap().data, b"<a/>");
        // `..`, symlinks and absent files are refused alike
        for p in [
            allowed.join("sub/../../secret.txt"),
            allowed.join("link.txt"),
            allowed.join("nope.gml"),
            allowed.clone(),
            PathBuf::from("/etc/passwd"),
        ] {
            assert!(matches!(get(url(&p)), Err(FetchError::Refused(_))), "{p:?}");
        }
        // %2e%2e is `..` once decoded; it stays inside here, so it is fine
        assert!(get(
            format!("file://{}/sub/a.gml", allowed.display()).replace("/sub/", "/sub/%2e%2e/sub/")
        )
        .is_ok());
        // no allowedinputpaths: no file:// at all
        let none = policy(&[], vec![]);
        assert!(matches!(
            none.fetch(&Reference {
                href: url(&allowed.join("sub/a.gml")),
                ..Default::default()
            }),
            Err(FetchError::Refused(_))
        ));
        // larger than max_size
        std::fs::write(allowed.join("big.txt"), vec![b'x'; 1001]).unwrap();
        assert_eq!(
            get(url(&allowed.join("big.txt"))),
            Err(FetchError::TooLarge(1000))
        );
        assert_eq!(
            crate::config::values::parse_paths("/a:/b, c", std::path::Path::new("/etc")),
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/etc/c")
            ]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
