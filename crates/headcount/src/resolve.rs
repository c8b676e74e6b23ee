//! Parsing and resolving join addresses.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioAsyncResolver;
use tokio::sync::OnceCell;

/// The port used when a join address has none (Go's default `BindPort`).
pub const DEFAULT_PORT: u16 = 7946;

/// A join address split into host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub host: String,
    pub port: u16,
}

/// Parses `host:port`, `name/host:port`, `[v6]:port`, `[v6]`, a bare IP or
/// a bare host name. The name part of `name/…` is ignored but must not be
/// empty.
pub(crate) fn parse(s: &str) -> Result<HostPort, String> {
    let s = s.trim();
    let rest = match s.split_once('/') {
        Some((name, rest)) => {
            if name.is_empty() {
                return Err("the node name before '/' is empty".to_string());
            }
            rest
        }
        None => s,
    };
    if rest.is_empty() {
        return Err("empty address".to_string());
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or("missing ']' after an IPv6 address")?;
        let port = if after.is_empty() {
            DEFAULT_PORT
        } else {
            let p = after.strip_prefix(':').ok_or("expected ':' after ']'")?;
            parse_port(p)?
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        (host.to_string(), port)
    } else if rest.parse::<IpAddr>().is_ok() {
        (rest.to_string(), DEFAULT_PORT)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), parse_port(p)?),
            None => (rest.to_string(), DEFAULT_PORT),
        }
    };
    if host.is_empty() {
        return Err("empty host".to_string());
    }
    Ok(HostPort { host, port })
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .map_err(|_| format!("{p:?} is not a port number"))
}

/// Resolves join addresses: IP literals directly, host names to all their
/// A and AAAA records with hickory (system configuration), falling back to
/// the system resolver.
#[derive(Default)]
pub(crate) struct Resolver {
    hickory: OnceCell<Option<TokioAsyncResolver>>,
}

impl Resolver {
    pub(crate) async fn resolve(&self, s: &str) -> Result<Vec<SocketAddr>, String> {
        let hp = parse(s)?;
        if let Ok(ip) = hp.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, hp.port)]);
        }
        let hickory = self
            .hickory
            .get_or_init(|| async {
                match TokioAsyncResolver::tokio_from_system_conf() {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::debug!("no DNS resolver from the system configuration ({e}); using the system resolver");
                        None
                    }
                }
            })
            .await;
        let mut first_err = None;
        if let Some(r) = hickory {
            match r.lookup_ip(hp.host.as_str()).await {
                Ok(ips) => {
                    let mut out: Vec<SocketAddr> =
                        ips.iter().map(|ip| SocketAddr::new(ip, hp.port)).collect();
                    out.dedup();
                    if !out.is_empty() {
                        return Ok(out);
                    }
                }
                Err(e) => first_err = Some(e.to_string()),
            }
        }
        let looked_up = tokio::net::lookup_host((hp.host.as_str(), hp.port)).await;
        match looked_up {
            Ok(addrs) => {
                let mut out: Vec<SocketAddr> = Vec::new();
                for a in addrs {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                if out.is_empty() {
                    Err(format!("{} has no addresses", hp.host))
                } else {
                    Ok(out)
                }
            }
            Err(e) => Err(first_err.unwrap_or_else(|| format!("cannot resolve {}: {e}", hp.host))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> Result<HostPort, String> {
        Ok(HostPort {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn parses_forms() {
        assert_eq!(parse("127.0.0.1:7000"), hp("127.0.0.1", 7000));
        assert_eq!(parse("127.0.0.1"), hp("127.0.0.1", DEFAULT_PORT));
        assert_eq!(parse("node-a/127.0.0.1:7000"), hp("127.0.0.1", 7000));
        assert_eq!(parse("[::1]:7000"), hp("::1", 7000));
        assert_eq!(parse("[::1]"), hp("::1", DEFAULT_PORT));
        assert_eq!(parse("::1"), hp("::1", DEFAULT_PORT));
        assert_eq!(parse("localhost:1234"), hp("localhost", 1234));
        assert_eq!(
            parse("example.invalid"),
            hp("example.invalid", DEFAULT_PORT)
        );
        assert!(parse("/127.0.0.1:7000").is_err());
        assert!(parse("127.0.0.1:x").is_err());
        assert!(parse("127.0.0.1:70000").is_err());
        assert!(parse("[::1").is_err());
        assert!(parse("").is_err());
        assert!(parse(":7000").is_err());
    }

    #[tokio::test]
    async fn resolves_literals_without_dns() {
        let r = Resolver::default();
        assert_eq!(
            r.resolve("n/127.0.0.1:9").await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("[::1]:9").await.unwrap(),
            vec!["[::1]:9".parse().unwrap()]
        );
    }

    #[tokio::test]
    async fn resolves_localhost() {
        let r = Resolver::default();
        let addrs = r.resolve("localhost:9").await.unwrap();
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9),
            "{addrs:?}"
        );
    }
}
