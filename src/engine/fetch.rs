//! Reference (`xlink:href`) inputs: the address policy and the fetcher.
//!
//! - `http://` and `https://` references are fetched with `ureq` (rustls), with a time limit, a
//!   redirect limit and `maxsingleinputsize` (the body is read no further than that).
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

use crate::model::Reference;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Time limit of one fetch (connect, request and the whole body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed at most.
pub const MAX_REDIRECTS: u32 = 5;

/// One entry of `[server] allowedhosts`: a network (an address is a /32 or /128) or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    Net(IpAddr, u8),
    Name(String),
}

impl HostRule {
    /// Parses `127.0.0.1`, `10.0.0.0/8`, `::1`, `[::1]`, `fd00::/8` or a host name.
    pub fn parse(s: &str) -> Result<HostRule, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => match p.trim().parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("'{s}': invalid network prefix length")),
                },
            };
            return Ok(HostRule::Net(ip, prefix));
        }
        let name = s.to_ascii_lowercase();
        let valid = prefix.is_none()
            && !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if valid {
            Ok(HostRule::Name(name))
        } else {
            Err(format!(
                "'{s}' is neither an address, a network nor a host name"
            ))
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let HostRule::Net(net, prefix) = self else {
            return false;
        };
        match (canonical(*net), canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let p = (*prefix).min(32) as u32;
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let p = (*prefix).min(128) as u32;
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

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
            .redirects(self.max_redirects)
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
        let mut req = agent.request_url(method, url);
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
            Some(b) => req.send_bytes(&b),
            None => req.call(),
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                if let Some(r) = refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(r);
                }
                return Err(match e {
                    ureq::Error::Status(code, _) => {
                        FetchError::Failed(format!("fetching '{url}' answered HTTP {code}"))
                    }
                    ureq::Error::Transport(t) => {
                        FetchError::Failed(format!("cannot fetch '{url}': {t}"))
                    }
                });
            }
        };
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

/// `allowedinputpaths`: directories separated by `:` or `,` (PyWPS's syntax), kept absolute.
pub fn parse_paths(v: &str, base: &Path) -> Vec<PathBuf> {
    v.split([':', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| base.join(s))
        .collect()
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
        let url = |path: &Path| format!("file://{}", path.display());
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
            parse_paths("/a:/b, c", Path::new("/etc")),
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/etc/c")
            ]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
