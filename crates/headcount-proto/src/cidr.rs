//! Address allow-lists: [`Cidr`] and the check of Go's `IPAllowed`.

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

/// A block of IP addresses, `address/prefix`, e.g. `10.0.0.0/8` or
/// `fd00::/8` (Go memberlist's `CIDRsAllowed` entries).
///
/// An IPv4 block also contains the IPv4-mapped IPv6 form of its addresses
/// (`::ffff:10.1.2.3`), as Go's `net.IPNet.Contains` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The block of `prefix` leading bits of `addr`. Bits after the prefix
    /// are cleared. Fails when `prefix` is longer than the address (32 or
    /// 128).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let (bits, max) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        if prefix > max {
            return Err(CidrError::PrefixTooLong { prefix, max });
        }
        let masked = bits & mask(prefix);
        let addr = match addr {
            IpAddr::V4(_) => IpAddr::V4(((masked >> 96) as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(masked.into()),
        };
        Ok(Cidr { addr, prefix })
    }

    /// The first address of the block.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(a)) => u128::from(u32::from(a)) << 96,
            (IpAddr::V6(_), IpAddr::V6(a)) => u128::from(a),
            _ => return false,
        };
        let own = match self.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
            IpAddr::V6(a) => u128::from(a),
        };
        bits & mask(self.prefix) == own
    }
}

fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `address/prefix`. A bare address is a block of one address
    /// (`/32` or `/128`).
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| CidrError::Syntax(s.to_string()))?;
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .map_err(|_| CidrError::Syntax(s.to_string()))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, prefix)
    }
}

/// Why a [`Cidr`] could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// Not of the form `address/prefix`.
    Syntax(String),
    /// The prefix is longer than the address.
    PrefixTooLong {
        /// The prefix given.
        prefix: u8,
        /// The address length in bits.
        max: u8,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Syntax(s) => write!(f, "{s:?} is not a CIDR block like 10.0.0.0/8"),
            CidrError::PrefixTooLong { prefix, max } => {
                write!(
                    f,
                    "prefix /{prefix} is longer than the address ({max} bits)"
                )
            }
        }
    }
}

impl std::error::Error for CidrError {}

/// Go's `IPAllowed`: with no allow-list every address is allowed,
/// otherwise only those in one of its blocks.
pub fn ip_allowed(allowed: Option<&[Cidr]>, ip: IpAddr) -> bool {
    match allowed {
        None => true,
        Some(list) => list.iter().any(|c| c.contains(ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn contains_and_masks() {
        let n = c("127.66.0.9/24");
        assert_eq!(n.to_string(), "127.66.0.0/24");
        assert!(n.contains("127.66.0.200".parse().unwrap()));
        assert!(!n.contains("127.67.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:127.66.0.3".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        assert!(c("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(c("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(!c("fd00::/8").contains("fe80::1".parse().unwrap()));
        assert!(c("10.1.2.3").contains("10.1.2.3".parse().unwrap()));
        assert!(!c("10.1.2.3").contains("10.1.2.4".parse().unwrap()));
    }

    #[test]
    fn bad_blocks() {
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix: 33,
                max: 32
            })
        ));
        assert!(matches!(
            "nope/8".parse::<Cidr>(),
            Err(CidrError::Syntax(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<Cidr>(),
            Err(CidrError::Syntax(_))
        ));
    }

    #[test]
    fn allow_list() {
        let ip = "192.168.1.1".parse().unwrap();
        assert!(ip_allowed(None, ip));
        assert!(!ip_allowed(Some(&[c("10.0.0.0/8")]), ip));
        assert!(ip_allowed(
            Some(&[c("10.0.0.0/8"), c("192.168.0.0/16")]),
            ip
        ));
    }
}
