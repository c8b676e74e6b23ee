//! Parsing and resolving join addresses, as Go memberlist's `resolveAddr`
//! and `tcpLookupIP` (`memberlist.go`) do. Host names need the `dns`
//! feature; without it only IP addresses resolve.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[cfg(feature = "dns")]
use std::path::Path;
#[cfg(feature = "dns")]
use std::time::Duration;

#[cfg(feature = "dns")]
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig};
#[cfg(feature = "dns")]
use hickory_resolver::error::ResolveErrorKind;
#[cfg(feature = "dns")]
use hickory_resolver::TokioAsyncResolver;
#[cfg(feature = "dns")]
use tokio::sync::OnceCell;

/// Go memberlist's default `BindPort` and `AdvertisePort`, the port
/// memberlist clusters conventionally listen on. A join address without a
/// port uses the joining node's own bound port, not this one (as Go does).
pub const DEFAULT_PORT: u16 = 7946;

/// Go memberlist's default `DNSConfigPath`.
pub(crate) const DEFAULT_DNS_CONFIG_PATH: &str = "/etc/resolv.conf";

/// How long the TCP-first lookup may take (Go's `dns.Client` dials and
/// reads with 2 s timeouts).
#[cfg(feature = "dns")]
const TCP_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// A host name, and this build resolves none: the crate was built
    /// without its `dns` feature (as the lean `headcount` agent is).
    #[error(
        "{host} is a host name, and this build resolves none (built without the `dns` \
         feature): give an IP address"
    )]
    NoDns {
        /// The host name.
        host: String,
    },
}

/// A join address split into host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub host: String,
    pub port: u16,
}

/// Parses `host:port`, `name/host:port`, `[v6]:port`, `[v6]`, a bare IP or
/// a bare host name; `default_port` when there is no port (in every form,
/// `name/host` included, as Go's `ensurePort`). The name part of `name/…`
/// is ignored but must not be empty.
pub(crate) fn parse(s: &str, default_port: u16) -> Result<HostPort, AddressError> {
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
            default_port
        } else {
            let p = after.strip_prefix(':').ok_or(AddressError::ExpectedColon)?;
            parse_port(p)?
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AddressError::BadIpv6(host.to_string()));
        }
        (host.to_string(), port)
    } else if rest.parse::<IpAddr>().is_ok() {
        (rest.to_string(), default_port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), parse_port(p)?),
            None => (rest.to_string(), default_port),
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

/// Resolves join addresses as Go's `resolveAddr`: IP literals directly;
/// a host name with a dot first over TCP to the first name server of the
/// DNS configuration (Go's `tcpLookupIP`: UDP answers may be cut short
/// without the truncated bit, as Consul's are), then with hickory over the
/// usual transports (hosts file, search domains), then with the system
/// resolver. Every lookup asks for both A and AAAA records and keeps all
/// of them, as Go's `net.LookupIP` does.
pub(crate) struct Resolver {
    /// The port of an address without one: the node's bound port.
    default_port: u16,
    /// The resolv.conf to read name servers and options from.
    #[cfg(feature = "dns")]
    dns_config_path: PathBuf,
    #[cfg(feature = "dns")]
    hickory: OnceCell<Option<Lookups>>,
}

/// The two hickory resolvers built from the DNS configuration.
#[cfg(feature = "dns")]
struct Lookups {
    /// Only the first name server, only over TCP; `None` without name
    /// servers.
    tcp_first: Option<TokioAsyncResolver>,
    /// Every name server, as configured.
    normal: TokioAsyncResolver,
}

/// Builds the resolvers from the resolv.conf at `path`.
#[cfg(feature = "dns")]
fn lookups(path: &Path) -> io::Result<Lookups> {
    let text = std::fs::read(path)?;
    let (config, mut opts) = hickory_resolver::system_conf::parse_resolv_conf(text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // hickory's default (Ipv4thenIpv6) asks for AAAA only when there is no
    // A record; Go returns both.
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    let tcp_first = config.name_servers().first().map(|ns| {
        let server = NameServerConfig::new(ns.socket_addr, Protocol::Tcp);
        let mut tcp_opts = opts.clone();
        tcp_opts.timeout = TCP_LOOKUP_TIMEOUT;
        tcp_opts.attempts = 1;
        // Go's TCP lookup asks the server, never the hosts file.
        tcp_opts.use_hosts_file = false;
        TokioAsyncResolver::tokio(
            ResolverConfig::from_parts(None, vec![], vec![server]),
            tcp_opts,
        )
    });
    Ok(Lookups {
        tcp_first,
        normal: TokioAsyncResolver::tokio(config, opts),
    })
}

/// All the addresses of `ips` at `port`, in order, without duplicates.
#[cfg(feature = "dns")]
fn with_port(ips: impl IntoIterator<Item = IpAddr>, port: u16) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in ips {
        let a = SocketAddr::new(ip, port);
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

impl Resolver {
    /// A resolver that gives addresses without a port `default_port` and
    /// reads name servers from `dns_config_path` (when first needed; not
    /// at all without the `dns` feature).
    pub(crate) fn new(default_port: u16, dns_config_path: PathBuf) -> Self {
        #[cfg(not(feature = "dns"))]
        let _ = dns_config_path;
        Resolver {
            default_port,
            #[cfg(feature = "dns")]
            dns_config_path,
            #[cfg(feature = "dns")]
            hickory: OnceCell::new(),
        }
    }

    pub(crate) async fn resolve(&self, s: &str) -> Result<Vec<SocketAddr>, AddressError> {
        let hp = parse(s, self.default_port)?;
        if let Ok(ip) = hp.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, hp.port)]);
        }
        self.lookup(hp).await
    }

    /// Without the `dns` feature a host name is an error.
    #[cfg(not(feature = "dns"))]
    async fn lookup(&self, hp: HostPort) -> Result<Vec<SocketAddr>, AddressError> {
        Err(AddressError::NoDns { host: hp.host })
    }

    /// Looks a host name up: TCP first to the first name server (names with
    /// a dot), then hickory as configured, then the system resolver.
    #[cfg(feature = "dns")]
    async fn lookup(&self, hp: HostPort) -> Result<Vec<SocketAddr>, AddressError> {
        let hickory = self
            .hickory
            .get_or_init(|| async {
                match lookups(&self.dns_config_path) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::debug!(
                            "no DNS resolver from {} ({e}); using the system resolver",
                            self.dns_config_path.display()
                        );
                        None
                    }
                }
            })
            .await;
        // Why hickory failed, if it did: no records, or the error kind.
        let mut first_err: Option<Option<io::ErrorKind>> = None;
        if let Some(r) = hickory {
            if let (Some(tcp), true) = (&r.tcp_first, hp.host.contains('.')) {
                // Fully qualified, as Go makes it: no search domains.
                let fqdn = if hp.host.ends_with('.') {
                    hp.host.clone()
                } else {
                    format!("{}.", hp.host)
                };
                match tcp.lookup_ip(fqdn.as_str()).await {
                    Ok(ips) if ips.iter().next().is_some() => {
                        return Ok(with_port(ips.iter(), hp.port));
                    }
                    Ok(_) => {}
                    // Not fatal, as in Go: the usual lookup follows.
                    Err(e) => {
                        tracing::debug!("TCP-first lookup of {} failed ({e}); trying UDP", hp.host)
                    }
                }
            }
            match r.normal.lookup_ip(hp.host.as_str()).await {
                Ok(ips) => {
                    let out = with_port(ips.iter(), hp.port);
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
                let out = with_port(addrs.map(|a| a.ip()), hp.port);
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

    /// The bind port a test node would have.
    const BIND: u16 = 7001;

    fn parse(s: &str) -> Result<HostPort, AddressError> {
        super::parse(s, BIND)
    }

    fn resolver() -> Resolver {
        Resolver::new(BIND, DEFAULT_DNS_CONFIG_PATH.into())
    }

    #[test]
    fn parses_forms() {
        assert_eq!(parse("127.0.0.1:7000"), hp("127.0.0.1", 7000));
        assert_eq!(parse("node-a/127.0.0.1:7000"), hp("127.0.0.1", 7000));
        assert_eq!(parse("[::1]:7000"), hp("::1", 7000));
        assert_eq!(parse("localhost:1234"), hp("localhost", 1234));
    }

    #[test]
    fn no_port_means_the_bind_port() {
        // Go's resolveAddr: ensurePort(host, m.config.BindPort), after the
        // node name is peeled off.
        assert_eq!(parse("127.0.0.1"), hp("127.0.0.1", BIND));
        assert_eq!(parse("node-a/127.0.0.1"), hp("127.0.0.1", BIND));
        assert_eq!(parse("[::1]"), hp("::1", BIND));
        assert_eq!(parse("::1"), hp("::1", BIND));
        assert_eq!(parse("node-a/[::1]"), hp("::1", BIND));
        assert_eq!(parse("example.invalid"), hp("example.invalid", BIND));
        assert_eq!(parse("n/example.invalid"), hp("example.invalid", BIND));
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
        let r = resolver();
        assert_eq!(
            r.resolve("127.0.0.1").await.unwrap(),
            vec![SocketAddr::from(([127, 0, 0, 1], BIND))]
        );
        assert_eq!(
            r.resolve("n/127.0.0.1:9").await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("[::1]:9").await.unwrap(),
            vec!["[::1]:9".parse().unwrap()]
        );
    }

    #[cfg(feature = "dns")]
    #[tokio::test]
    async fn resolves_localhost() {
        let r = resolver();
        let addrs = r.resolve("localhost:9").await.unwrap();
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9),
            "{addrs:?}"
        );
    }

    #[cfg(not(feature = "dns"))]
    #[tokio::test]
    async fn names_need_the_dns_feature() {
        let r = resolver();
        let e = r.resolve("localhost:9").await.unwrap_err();
        assert_eq!(
            e,
            AddressError::NoDns {
                host: "localhost".into()
            }
        );
        assert!(e.to_string().contains("`dns` feature"), "{e}");
        // Literals still resolve.
        assert_eq!(
            r.resolve("10.0.0.1").await.unwrap(),
            vec![SocketAddr::from(([10, 0, 0, 1], BIND))]
        );
    }
}
