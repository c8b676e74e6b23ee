//! Parsing and resolving join addresses.

use std::io;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::error::ResolveErrorKind;

use hickory_resolver::TokioAsyncResolver;
use tokio::sync::OnceCell;

/// The port used when a join address has none (Go's default `BindPort`).
pub const DEFAULT_PORT: u16 = 7946;

/// Why a join address is unusable (see [`crate::JoinError::Address`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// `name/address` with nothing before the `/`.
    #[error("the node name before '/' is empty")]
    EmptyNodeName,
    /// Nothing to resolve.
    #[error("empty address")]
    Empty,
    /// `[` without its `]`.
    #[error("missing ']' after an IPv6 address")]
    MissingBracket,
    /// Something other than `:port` after `[address]`.
    #[error("expected ':' after ']'")]
    ExpectedColon,
    /// Between `[` and `]` is not an IPv6 address (the text found).
    #[error("{0:?} is not an IPv6 address")]
    BadIpv6(String),
    /// The port is not a number from 0 to 65535 (the text found).
    #[error("{0:?} is not a port number")]
    BadPort(String),
    /// A port without a host.
    #[error("empty host")]
    EmptyHost,
    /// The host name has no A or AAAA records.
    #[error("{host} has no addresses")]
    NoRecords {
        /// The host name.
        host: String,
    },
    /// Looking the host name up failed.
    #[error("cannot resolve {host}: {kind}")]
    LookupFailed {
        /// The host name.
        host: String,
        /// Why, as far as the resolver said.
        kind: io::ErrorKind,
    },
}

/// A join address split into host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub host: String,
    pub port: u16,
}

/// Parses `host:port`, `name/host:port`, `[v6]:port`, `[v6]`, a bare IP or
/// a bare host name. The name part of `name/…` is ignored but must not be
/// empty.
pub(crate) fn parse(s: &str) -> Result<HostPort, AddressError> {
    let s = s.trim();
    let rest = match s.split_once('/') {
        Some((name, rest)) => {
            if name.is_empty() {
                return Err(AddressError::EmptyNodeName);
            }
            rest
        }
        None => s,
    };
    if rest.is_empty() {
        return Err(AddressError::Empty);
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or(AddressError::MissingBracket)?;
        let port = if after.is_empty() {
            DEFAULT_PORT
        } else {
            let p = after.strip_prefix(':').ok_or(AddressError::ExpectedColon)?;
            parse_port(p)?
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AddressError::BadIpv6(host.to_string()));
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
        return Err(AddressError::EmptyHost);
    }
    Ok(HostPort { host, port })
}

fn parse_port(p: &str) -> Result<u16, AddressError> {
    p.parse::<u16>()
        .map_err(|_| AddressError::BadPort(p.to_string()))
}

/// Resolves join addresses: IP literals directly, host names to all their
/// A and AAAA records with hickory (system configuration), falling back to
/// the system resolver.
#[derive(Default)]
pub(crate) struct Resolver {
    hickory: OnceCell<Option<TokioAsyncResolver>>,
}

impl Resolver {
    pub(crate) async fn resolve(&self, s: &str) -> Result<Vec<SocketAddr>, AddressError> {
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
        // Why hickory failed, if it did: no records, or the error kind.
        let mut first_err: Option<Option<io::ErrorKind>> = None;
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
                Err(e) => {
                    first_err = Some(match e.kind() {
                        ResolveErrorKind::NoRecordsFound { .. } => None,
                        ResolveErrorKind::Timeout => Some(io::ErrorKind::TimedOut),
                        ResolveErrorKind::Io(e) => Some(e.kind()),
                        _ => Some(io::ErrorKind::Other),
                    })
                }
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
                    Err(AddressError::NoRecords {
                        host: hp.host.clone(),
                    })
                } else {
                    Ok(out)
                }
            }
            Err(e) => Err(match first_err {
                Some(None) => AddressError::NoRecords {
                    host: hp.host.clone(),
                },
                Some(Some(kind)) => AddressError::LookupFailed {
                    host: hp.host.clone(),
                    kind,
                },
                None => AddressError::LookupFailed {
                    host: hp.host.clone(),
                    kind: e.kind(),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> Result<HostPort, AddressError> {
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
    }

    #[test]
    fn says_what_is_wrong() {
        use AddressError::*;
        assert_eq!(parse("/127.0.0.1:7000"), Err(EmptyNodeName));
        assert_eq!(parse("127.0.0.1:x"), Err(BadPort("x".into())));
        assert_eq!(parse("127.0.0.1:70000"), Err(BadPort("70000".into())));
        assert_eq!(parse("[::1"), Err(MissingBracket));
        assert_eq!(parse("[::1]7000"), Err(ExpectedColon));
        assert_eq!(parse("[10.0.0.1]:7000"), Err(BadIpv6("10.0.0.1".into())));
        assert_eq!(parse(""), Err(Empty));
        assert_eq!(parse("n/"), Err(Empty));
        assert_eq!(parse(":7000"), Err(EmptyHost));
        assert_eq!(
            BadPort("x".into()).to_string(),
            "\"x\" is not a port number"
        );
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
