//! Address rules of the reference policy (`[server] allowedhosts`).

use std::net::IpAddr;

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

    /// Whether the address is in this network (host names contain no address).
    pub fn contains(&self, ip: IpAddr) -> bool {
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
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}
