//! Which address a node bound to `0.0.0.0` or `::` announces.
//!
//! Go memberlist (`net_transport.go`, `NetTransport.FinalAdvertiseAddr`)
//! announces `sockaddr.GetPrivateIP()` when bound to `0.0.0.0`, and fails
//! with "No private IP address found" when there is none. go-sockaddr's
//! `GetPrivateInterfaces` (`ifaddrs.go`) keeps the IP addresses of
//! interfaces that are up whose address is "forwardable" (outside its
//! `ForwardingBlacklist`, `rfc.go`), sorts them by (interface of the default
//! route first, IPv4 before IPv6, larger network first) and keeps those in
//! RFC 6890's special-purpose blocks (`rfc.go`, `KnownRFCs()[6890]`); the
//! first one wins.
//!
//! [`choose`] applies that rule to a list of interface addresses, so it can
//! be tested without the host's interfaces; [`unspecified_bind`] feeds it
//! the host's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Error;

/// One address of a network interface, as [`choose`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InterfaceAddr {
    /// The interface's name (`eth0`).
    pub name: String,
    /// The address.
    pub ip: IpAddr,
    /// The length of the address's network prefix (24 for a /24).
    pub prefix_len: u8,
    /// Whether the interface is up and running.
    pub up: bool,
}

/// Addresses go-sockaddr calls private: RFC 6890's blocks less its
/// `ForwardingBlacklist`, written out (10/8, 100.64/10, 172.16/12,
/// 192.88.99/24, 192.168/16, 198.18/15).
const PRIVATE_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
];

/// Unique local IPv6 addresses (RFC 4193), the private IPv6 block.
/// go-sockaddr's RFC 6890 list also has 64:ff9b::/96, 100::/64, 2001::/16
/// and 2002::/16, but 2001::/16 covers much of the global unicast space
/// (2001:4860::/32 and the like), so those count as global here.
const UNIQUE_LOCAL: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7);

/// go-sockaddr's `ForwardingBlacklist`, IPv6 part.
const UNFORWARDABLE_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
];

fn in_v4(ip: Ipv4Addr, blocks: &[(Ipv4Addr, u8)]) -> bool {
    blocks.iter().any(|&(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        u32::from(ip) & mask == u32::from(net)
    })
}

fn in_v6(ip: Ipv6Addr, blocks: &[(Ipv6Addr, u8)]) -> bool {
    blocks.iter().any(|&(net, len)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        u128::from(ip) & mask == u128::from(net)
    })
}

/// Whether `ip` is private: go-sockaddr's private IPv4 blocks, and unique
/// local IPv6.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => in_v4(v4, PRIVATE_V4),
        IpAddr::V6(v6) => in_v6(v6, &[UNIQUE_LOCAL]),
    }
}

/// Whether `ip` is an IPv6 unicast address that a router forwards and is
/// not unique local (go-sockaddr's forwardable test, multicast aside).
fn is_global_v6(ip: Ipv6Addr) -> bool {
    !ip.is_multicast() && !in_v6(ip, UNFORWARDABLE_V6) && !in_v6(ip, &[UNIQUE_LOCAL])
}

/// The address to announce for a node bound to the unspecified address of
/// `ip`'s family, from the host's interface addresses `addrs` (in the order
/// the system lists them) and the name of the interface of the default
/// route, if any.
///
/// - Bound to `0.0.0.0`: the first IPv4 address of an interface that is up
///   in 10/8, 100.64/10, 172.16/12, 192.88.99/24, 192.168/16 or 198.18/15
///   (go-sockaddr's private blocks), ranked as go-sockaddr does: on the
///   default route's interface first, then the larger network (shorter
///   prefix) first, then in the system's order (Go's sort is not stable,
///   so it leaves ties in no particular order). IPv6 addresses are not
///   considered: an IPv4 socket cannot be reached on them (Go would
///   announce a private IPv6 address when there is no private IPv4 one).
/// - Bound to `::`: the first unique local IPv6 address (fc00::/7) of an
///   interface that is up, ranked the same way; when there is none, the
///   first other IPv6 address a router forwards (not loopback, link-local,
///   v4-mapped, multicast, 2001:db8::/32 or 2001:10::/28). Go does
///   not handle `::` (it announces `::` itself); IPv4 addresses are not
///   considered because the socket may be IPv6-only.
///
/// `None` when nothing fits.
pub(crate) fn choose(
    unspecified: IpAddr,
    addrs: &[InterfaceAddr],
    default_interface: Option<&str>,
) -> Option<IpAddr> {
    let same_family = |a: &&InterfaceAddr| a.up && a.ip.is_ipv4() == unspecified.is_ipv4();
    // Stable sort: ties keep the system's order.
    let rank = |a: &&InterfaceAddr| (Some(a.name.as_str()) != default_interface, a.prefix_len);
    let mut private: Vec<&InterfaceAddr> = addrs
        .iter()
        .filter(same_family)
        .filter(|a| is_private(a.ip))
        .collect();
    private.sort_by_key(rank);
    if let Some(a) = private.first() {
        return Some(a.ip);
    }
    let mut global: Vec<&InterfaceAddr> = addrs
        .iter()
        .filter(same_family)
        .filter(|a| matches!(a.ip, IpAddr::V6(v6) if is_global_v6(v6)))
        .collect();
    global.sort_by_key(rank);
    global.first().map(|a| a.ip)
}

/// The host's interface addresses, for [`choose`]. An interface counts as
/// up when it is running (`IFF_RUNNING`, as the `if-addrs` crate reports
/// it; Go checks only `IFF_UP`, so an interface without carrier counts
/// there but not here). Link-local addresses are not listed (Go would not
/// choose them either).
fn host_addrs() -> std::io::Result<Vec<InterfaceAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| InterfaceAddr {
            prefix_len: match &i.addr {
                if_addrs::IfAddr::V4(a) => a.prefixlen,
                if_addrs::IfAddr::V6(a) => a.prefixlen,
            },
            ip: i.ip(),
            up: i.is_oper_up(),
            name: i.name,
        })
        .collect())
}

/// The interface of the default route of `unspecified`'s family, from
/// `/proc/net/route` or `/proc/net/ipv6_route` (go-sockaddr runs `ip route`
/// and looks at the IPv4 default route for both families). `None` when
/// there is no default route or the table cannot be read.
fn default_interface(unspecified: IpAddr) -> Option<String> {
    if unspecified.is_ipv4() {
        let table = std::fs::read_to_string("/proc/net/route").ok()?;
        default_v4_interface(&table)
    } else {
        let table = std::fs::read_to_string("/proc/net/ipv6_route").ok()?;
        default_v6_interface(&table)
    }
}

/// The interface of the first line of `/proc/net/route` whose destination
/// and mask are both 0.
fn default_v4_interface(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask …
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
    })
}

/// The interface of the first line of `/proc/net/ipv6_route` for ::/0 that
/// is not the unreachable route on `lo`.
fn default_v6_interface(table: &str) -> Option<String> {
    const ZERO: &str = "00000000000000000000000000000000";
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // dest dest_len src src_len next_hop metric refcnt use flags iface
        (f.len() > 9 && f[0] == ZERO && f[1] == "00" && f[9] != "lo").then(|| f[9].to_string())
    })
}

/// What to announce for a node bound to `unspecified` (`0.0.0.0` or `::`),
/// by [`choose`] over the host's interfaces; `None` when nothing fits or
/// the interfaces cannot be listed (logged).
pub(crate) fn unspecified_bind(unspecified: IpAddr) -> Option<IpAddr> {
    let addrs = match host_addrs() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("cannot list the network interfaces: {e}");
            return None;
        }
    };
    let default_if = default_interface(unspecified);
    choose(unspecified, &addrs, default_if.as_deref())
}

/// The address a node bound to `local` announces: `advertise` when given
/// (its port 0 meaning the bound port), else the bound address, or for an
/// unspecified one what `pick` (normally [`unspecified_bind`]) chooses.
pub(crate) fn final_addr(
    advertise: Option<SocketAddr>,
    local: SocketAddr,
    pick: impl FnOnce(IpAddr) -> Option<IpAddr>,
) -> Result<SocketAddr, Error> {
    let mut addr = match advertise {
        Some(a) if a.ip().is_unspecified() => return Err(Error::AdvertiseUnspecified { addr: a }),
        Some(a) => a,
        None if local.ip().is_unspecified() => {
            let ip = pick(local.ip()).ok_or(Error::NoPrivateAddress { bind: local })?;
            SocketAddr::new(ip, local.port())
        }
        None => local,
    };
    if addr.port() == 0 {
        addr.set_port(local.port());
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

    fn a(name: &str, cidr: &str) -> InterfaceAddr {
        let (ip, len) = cidr.split_once('/').unwrap();
        InterfaceAddr {
            name: name.into(),
            ip: ip.parse().unwrap(),
            prefix_len: len.parse().unwrap(),
            up: true,
        }
    }

    fn down(mut x: InterfaceAddr) -> InterfaceAddr {
        x.up = false;
        x
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn private_v4_over_public_and_loopback() {
        let addrs = [
            a("lo", "127.0.0.1/8"),
            a("eth0", "203.0.114.5/24"),
            a("eth1", "192.168.1.20/24"),
            a("eth1", "fd00::20/64"),
        ];
        assert_eq!(choose(V4, &addrs, None), ip("192.168.1.20"));
    }

    #[test]
    fn every_private_block_and_nothing_else() {
        for p in [
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.1",
            "172.16.0.1",
            "172.31.9.9",
            "192.168.0.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.1",
        ] {
            assert!(is_private(p.parse().unwrap()), "{p}");
        }
        for p in [
            "127.0.0.1",
            "169.254.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "8.8.8.8",
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_private(p.parse().unwrap()), "{p}");
        }
        assert!(is_private("fd12:3456::1".parse().unwrap()));
        assert!(!is_private("2001:4860::1".parse().unwrap()));
    }

    #[test]
    fn first_by_gos_order() {
        // Default-route interface first, then the larger network, then the
        // system's order.
        let addrs = [
            a("eth0", "10.0.0.5/24"),
            a("eth1", "172.16.0.5/16"),
            a("eth2", "192.168.0.5/16"),
            a("eth3", "10.9.0.5/8"),
        ];
        assert_eq!(choose(V4, &addrs, Some("eth0")), ip("10.0.0.5"));
        assert_eq!(choose(V4, &addrs, None), ip("10.9.0.5"));
        assert_eq!(choose(V4, &addrs, Some("wlan0")), ip("10.9.0.5"));
        assert_eq!(choose(V4, &addrs[..3], None), ip("172.16.0.5"));
    }

    #[test]
    fn skips_interfaces_that_are_down() {
        let addrs = [down(a("eth0", "10.0.0.5/24")), a("eth1", "10.1.0.5/24")];
        assert_eq!(choose(V4, &addrs, Some("eth0")), ip("10.1.0.5"));
    }

    #[test]
    fn v6_bind_prefers_unique_local_then_global() {
        let addrs = [
            a("lo", "127.0.0.1/8"),
            a("lo", "::1/128"),
            a("eth0", "10.0.0.5/24"),
            a("eth0", "2a01:4f8::5/64"),
            a("eth0", "fe80::5/64"),
            a("eth1", "fd00:1::5/64"),
        ];
        assert_eq!(choose(V6, &addrs, None), ip("fd00:1::5"));
        assert_eq!(choose(V6, &addrs[..5], None), ip("2a01:4f8::5"));
        // IPv4 only: a v4 bind ignores the v6 addresses and a v6 bind the
        // v4 ones.
        assert_eq!(choose(V4, &addrs, None), ip("10.0.0.5"));
        assert_eq!(choose(V6, &addrs[..3], None), None);
    }

    #[test]
    fn none_when_only_loopback_link_local_or_public_v4() {
        let addrs = [
            a("lo", "127.0.0.1/8"),
            a("lo", "::1/128"),
            a("eth0", "169.254.3.3/16"),
            a("eth0", "fe80::5/64"),
            a("eth1", "8.8.4.4/24"),
            a("eth1", "2001:db8::5/64"),
        ];
        assert_eq!(choose(V4, &addrs, None), None);
        assert_eq!(choose(V6, &addrs, None), None);
        assert_eq!(choose(V4, &[], None), None);
    }

    #[test]
    fn final_address() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let never = |_| -> Option<IpAddr> { panic!("no interface lookup expected") };
        let private = |_| ip("10.77.0.1");
        assert_eq!(
            final_addr(None, sa("127.0.0.1:7001"), never),
            Ok(sa("127.0.0.1:7001"))
        );
        assert_eq!(
            final_addr(Some(sa("10.0.0.1:0")), sa("0.0.0.0:7001"), never),
            Ok(sa("10.0.0.1:7001"))
        );
        assert_eq!(
            final_addr(None, sa("0.0.0.0:7001"), private),
            Ok(sa("10.77.0.1:7001"))
        );
        assert_eq!(
            final_addr(None, sa("[::]:7001"), |_| None),
            Err(Error::NoPrivateAddress {
                bind: sa("[::]:7001")
            })
        );
        assert_eq!(
            final_addr(Some(sa("0.0.0.0:9")), sa("127.0.0.1:7001"), never),
            Err(Error::AdvertiseUnspecified {
                addr: sa("0.0.0.0:9")
            })
        );
    }

    #[test]
    fn reads_default_routes() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(default_v4_interface(v4).as_deref(), Some("eth0"));
        assert_eq!(default_v4_interface("Iface\tDestination\n"), None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n";
        assert_eq!(default_v6_interface(v6).as_deref(), Some("eth0"));
    }
}
