//! The egress allowlist: `host[:port]` entries, exact names or `*.suffix`, ports 443 and 80
//! unless one is given; `*` lets everything through. Exact entries may name private addresses
//! (a server of the user's own); wildcards reach public addresses only, so an allowed suffix
//! re-pointed at an internal address (DNS rebinding) gets nowhere.

use std::net::IpAddr;

/// What every task may reach: the model API and the package index `uv` uses.
pub const DEFAULTS: [&str; 3] = ["api.anthropic.com", "pypi.org", "files.pythonhosted.org"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: Host,
    /// None: 443 and 80.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Suffix(String),
}

impl HostPattern {
    /// Parses one entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an empty entry".into());
        }
        if entry.contains("://") || entry.contains('/') {
            return Err(
                "a host and optional port, not a URL: e.g. `example.com` or `example.com:8443`".into(),
            );
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or("an unclosed `[`")?;
            match after {
                "" => (h, None),
                a => (h, Some(a.strip_prefix(':').ok_or("`:PORT` must follow `]`")?)),
            }
        } else if entry.matches(':').count() > 1 {
            (entry, None) // a bare IPv6 address
        } else {
            match entry.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (entry, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{p}` is not a port (1-65535)"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        };
        let host = if host == "*" {
            Host::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if !valid_name(suffix) {
                return Err(format!("`{suffix}` after `*.` is not a host name"));
            }
            Host::Suffix(suffix.to_string())
        } else if host.parse::<IpAddr>().is_ok() || valid_name(&host) {
            Host::Exact(host)
        } else {
            return Err(format!(
                "`{host}` is not a host name, an IP address, `*.suffix` or `*`"
            ));
        };
        Ok(Self { host, port })
    }

    pub fn is_any(&self) -> bool {
        self.host == Host::Any
    }

    /// Whether a connection to `host:port` matches this entry.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 443 || port == 80,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        port_ok
            && match &self.host {
                Host::Any => true,
                Host::Exact(h) => *h == host,
                Host::Suffix(s) => host.len() > s.len() + 1 && host.ends_with(&format!(".{s}")),
            }
    }

    /// Whether this entry may reach a private, loopback or link-local address.
    pub fn reaches_private(&self) -> bool {
        matches!(self.host, Host::Exact(_))
    }
}

/// A task's whole list: the first entry that matches decides.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<HostPattern>);

impl AllowList {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| HostPattern::parse(e).map_err(|why| format!("`{e}`: {why}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The entry allowing `host:port`, if any.
    pub fn find(&self, host: &str, port: u16) -> Option<&HostPattern> {
        self.0.iter().find(|p| p.matches(host, port))
    }
}

/// Addresses only an exact entry may reach: the machine itself, private networks, link-local
/// ones (cloud metadata services live there), and the like.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_match_as_documented() {
        let p = HostPattern::parse("api.anthropic.com").unwrap();
        assert!(p.matches("api.anthropic.com", 443) && p.matches("API.anthropic.com.", 80));
        assert!(!p.matches("api.anthropic.com", 8443) && !p.matches("x.api.anthropic.com", 443));
        let p = HostPattern::parse("*.example.com:8443").unwrap();
        assert!(p.matches("a.b.example.com", 8443));
        assert!(!p.matches("example.com", 8443) && !p.matches("a.example.com", 443));
        assert!(!p.matches("evilexample.com", 8443));
        let p = HostPattern::parse("10.1.2.3:8080").unwrap();
        assert!(p.matches("10.1.2.3", 8080) && p.reaches_private());
        let p = HostPattern::parse("[::1]:8080").unwrap();
        assert!(p.matches("::1", 8080));
        assert!(HostPattern::parse("::1").unwrap().matches("::1", 443));
        assert!(HostPattern::parse("*").unwrap().is_any());
        assert!(!HostPattern::parse("*.example.com").unwrap().reaches_private());
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (bad, says) in [
            ("", "empty"),
            ("https://x.com", "not a URL"),
            ("x.com:0", "not a port"),
            ("x.com:99999", "not a port"),
            ("x.com:http", "not a port"),
            ("exa mple.com", "not a host name"),
            ("*.", "not a host name"),
            ("a..b", "not a host name"),
            ("-a.com", "not a host name"),
        ] {
            let e = HostPattern::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "10.0.0.1",
            "172.17.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "151.101.0.223", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
