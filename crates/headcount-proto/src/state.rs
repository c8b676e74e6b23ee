//! The membership table: who we know, in which state, in probe order.

use hashbrown::HashTable;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::fxhash::hash_str;
use crate::name::Name;
use crate::time::Instant;
use crate::wire::{Vsn, WireState, VSN_PROTOCOL_MAX};

/// The state of a member as this node believes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; will be declared dead unless it refutes in time.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left gracefully.
    Left,
}

impl MemberState {
    /// Lower-case name, as printed by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }

    /// Dead or left.
    pub fn is_dead_or_left(self) -> bool {
        matches!(self, MemberState::Dead | MemberState::Left)
    }

    /// The state as carried in push/pull.
    pub fn to_wire(self) -> WireState {
        match self {
            MemberState::Alive => WireState::Alive,
            MemberState::Suspect => WireState::Suspect,
            MemberState::Dead => WireState::Dead,
            MemberState::Left => WireState::Left,
        }
    }
}

impl core::fmt::Display for MemberState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of one member, as given to the application.
///
/// `#[non_exhaustive]`: fields may be added, so outside this crate build
/// one with [`MemberInfo::new`] (for tests of your delegates) and assign
/// the fields you need.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Unique node name.
    pub name: String,
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// Node metadata.
    pub meta: Vec<u8>,
    /// Current state.
    pub state: MemberState,
    /// Current incarnation.
    pub incarnation: u32,
    /// Version vector `[pMin, pMax, pCur, dMin, dMax, dCur]`.
    pub vsn: Vsn,
}

impl MemberInfo {
    /// An alive member at incarnation 0, without metadata, speaking what
    /// [`Config::lan`](crate::Config::lan) announces.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        MemberInfo {
            name: name.into(),
            addr,
            meta: Vec::new(),
            state: MemberState::Alive,
            incarnation: 0,
            vsn: crate::Config::lan().vsn(),
        }
    }
}

/// Turns wire address bytes and a port into a socket address. IPv4-mapped
/// IPv6 addresses become IPv4 so that they can be dialled from an IPv4
/// socket. Any length other than 4 or 16 is not an address.
pub fn socket_addr_from_wire(addr: &[u8], port: u16) -> Option<SocketAddr> {
    let ip = match addr.len() {
        4 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(addr);
            let v6 = Ipv6Addr::from(b);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The wire bytes for an IP address: 4 bytes for IPv4, 16 for IPv6.
pub fn wire_addr(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Address bytes exactly as a node announced them: 4 bytes for IPv4, 16
/// for IPv6, stored inline (no heap allocation per member).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawAddr {
    bytes: [u8; 16],
    len: u8,
}

impl RawAddr {
    /// The address bytes, or `None` when they are not 4 or 16 bytes long
    /// (such bytes are not an address; see [`socket_addr_from_wire`]).
    pub fn new(bytes: &[u8]) -> Option<RawAddr> {
        if bytes.len() != 4 && bytes.len() != 16 {
            return None;
        }
        let mut b = [0u8; 16];
        b[..bytes.len()].copy_from_slice(bytes);
        Some(RawAddr {
            bytes: b,
            len: bytes.len() as u8,
        })
    }

    /// The wire bytes of `ip` (see [`wire_addr`]).
    pub fn from_ip(ip: IpAddr) -> RawAddr {
        let mut b = [0u8; 16];
        let len = match ip {
            IpAddr::V4(v4) => {
                b[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                b = v6.octets();
                16
            }
        };
        RawAddr { bytes: b, len }
    }

    /// The address bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The socket address of these bytes and `port` (see
    /// [`socket_addr_from_wire`]; a `RawAddr` always has a valid length).
    #[inline]
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        let ip = if self.len == 4 {
            let b = &self.bytes;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        } else {
            let v6 = Ipv6Addr::from(self.bytes);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        };
        SocketAddr::new(ip, port)
    }

    /// The address bytes, copied into a vector (for the wire structs).
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }
}

impl core::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq<[u8]> for RawAddr {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

/// One entry of the membership table.
///
/// Every node holds one per member, so the entry is kept small (80 bytes
/// on 64-bit targets): the name is stored inline when short, the socket
/// address is derived from `raw_addr` and `port` rather than stored, and
/// the metadata is a boxed slice.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Member {
    /// Unique node name.
    pub name: Name,
    /// Address bytes exactly as the node announced them.
    pub raw_addr: RawAddr,
    /// Port.
    pub port: u16,
    /// Metadata.
    pub meta: Box<[u8]>,
    /// Incarnation.
    pub incarnation: u32,
    /// State.
    pub state: MemberState,
    /// When `state` last changed.
    pub state_change: Instant,
    /// Version vector.
    pub vsn: Vsn,
}

impl Member {
    /// The socket address, derived from `raw_addr` and `port` (see
    /// [`socket_addr_from_wire`]).
    #[inline]
    pub fn addr(&self) -> SocketAddr {
        self.raw_addr.socket_addr(self.port)
    }

    /// The snapshot handed to the application.
    pub fn info(&self) -> MemberInfo {
        MemberInfo {
            name: self.name.to_string(),
            addr: self.addr(),
            meta: self.meta.to_vec(),
            state: self.state,
            incarnation: self.incarnation,
            vsn: self.vsn,
        }
    }

    /// The highest protocol version the member speaks.
    pub fn protocol_max(&self) -> u8 {
        self.vsn[VSN_PROTOCOL_MAX]
    }
}

/// Members in probe order, with an index by name.
///
/// Probe order is a vector that is shuffled at each wrap of the probe loop;
/// new members go to a random place in it, so that a joining node is not
/// probed by everyone at once.
#[derive(Clone, Debug, Default)]
pub struct MemberTable {
    order: Vec<Member>,
    /// Positions in `order`, hashed by the name stored there (the names
    /// are not duplicated).
    index: HashTable<u32>,
}

impl MemberTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries, dead and left ones included.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The member called `name`.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.position(name).map(|i| &self.order[i])
    }

    /// The member called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Member> {
        self.position(name).map(|i| &mut self.order[i])
    }

    /// Whether a member is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// The position in probe order of the member called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        let order = &self.order;
        self.index
            .find(hash_str(name), |&i| order[i as usize].name == *name)
            .map(|&i| i as usize)
    }

    /// Changes the index entry of `name` from `from` to `to`. Values are
    /// unique, so matching on the value alone finds the right entry.
    fn repoint(&mut self, name_at: usize, from: u32, to: u32) {
        let hash = hash_str(&self.order[name_at].name);
        if let Some(slot) = self.index.find_mut(hash, |&j| j == from) {
            *slot = to;
        }
    }

    /// Makes room for `additional` more members without reallocating
    /// (exactly that many: the table is not grown speculatively).
    pub fn reserve(&mut self, additional: usize) {
        self.order.reserve_exact(additional);
        let order = &self.order;
        self.index
            .reserve(additional, |&i| hash_str(&order[i as usize].name));
    }

    /// The member at position `i` of the probe order.
    pub fn at(&self, i: usize) -> Option<&Member> {
        self.order.get(i)
    }

    /// The member at position `i` of the probe order, mutably.
    pub fn at_mut(&mut self, i: usize) -> Option<&mut Member> {
        self.order.get_mut(i)
    }

    /// All members in probe order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.order.iter()
    }

    /// Inserts a new member at position `offset` of the probe order (the
    /// member there moves to the end). `offset` is clamped to the length.
    pub fn insert_at(&mut self, member: Member, offset: usize) {
        debug_assert!(!self.contains(&member.name));
        let n = self.order.len();
        assert!(n < (u32::MAX - 1) as usize, "member table full");
        if self.order.len() == self.order.capacity() {
            // Grow by an eighth rather than doubling: every node holds a
            // table of the whole cluster, and one join into a full table
            // would otherwise double all of them at once. Still geometric,
            // so pushes stay amortised O(1).
            self.order.reserve_exact((n / 8).max(4));
        }
        let order = &self.order;
        self.index
            .insert_unique(hash_str(&member.name), n as u32, |&i| {
                hash_str(&order[i as usize].name)
            });
        self.order.push(member);
        let offset = offset.min(n);
        if offset != n {
            // Swap the two index values through a sentinel so that every
            // value stays unique at each step.
            let (o, e) = (offset as u32, n as u32);
            self.repoint(n, e, u32::MAX);
            self.repoint(offset, o, e);
            self.repoint(n, u32::MAX, o);
            self.order.swap(offset, n);
        }
    }

    /// Removes dead and left members whose state changed more than `older_than`
    /// ago (relative to `now`), except the one called `local` (the local
    /// node, which must stay in the table even after it left), then
    /// reorders the rest with `shuffle`, which gets the slice to permute.
    /// Returns the removed members.
    pub fn reap_and_shuffle(
        &mut self,
        now: Instant,
        older_than: core::time::Duration,
        local: &str,
        shuffle: impl FnOnce(&mut [Member]),
    ) -> Vec<Member> {
        let (keep, reaped): (Vec<Member>, Vec<Member>) = self.order.drain(..).partition(|m| {
            m.name == local || !(m.state.is_dead_or_left() && now - m.state_change > older_than)
        });
        self.order = keep;
        shuffle(&mut self.order);
        self.rebuild_index();
        reaped
    }

    fn rebuild_index(&mut self) {
        self.index.clear();
        let order = &self.order;
        for (i, m) in order.iter().enumerate() {
            self.index.insert_unique(hash_str(&m.name), i as u32, |&j| {
                hash_str(&order[j as usize].name)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            raw_addr: RawAddr::new(&[127, 0, 0, 1]).unwrap(),
            port: 1,
            meta: Box::default(),
            incarnation: 1,
            state: MemberState::Alive,
            state_change: Instant::ZERO,
            vsn: [1, 5, 2, 0, 0, 0],
        }
    }

    #[test]
    fn member_is_compact() {
        // One per node × member: a regression here costs memory quadratically.
        assert!(core::mem::size_of::<Member>() <= 80);
        assert_eq!(member("a").addr(), "127.0.0.1:1".parse().unwrap());
        let mapped = RawAddr::from_ip("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(mapped.socket_addr(7), "10.0.0.1:7".parse().unwrap());
    }

    #[test]
    fn table_grows_by_an_eighth_not_double() {
        let mut t = MemberTable::new();
        t.reserve(100);
        for i in 0..100 {
            t.insert_at(member(&format!("m{i}")), i);
        }
        assert_eq!(t.order.capacity(), 100);
        t.insert_at(member("one-more"), 0);
        assert!(t.order.capacity() <= 100 + 100 / 8 + 1);
        for m in t.iter() {
            assert_eq!(t.get(&m.name).unwrap().name, m.name);
        }
    }

    #[test]
    fn insert_at_keeps_index_consistent() {
        let mut t = MemberTable::new();
        for (i, n) in ["a", "b", "c", "d"].iter().enumerate() {
            t.insert_at(member(n), i / 2);
        }
        assert_eq!(t.len(), 4);
        for m in t.iter() {
            assert_eq!(t.get(&m.name).unwrap().name, m.name);
        }
        assert_eq!(t.at(0).unwrap().name, "b");
    }

    #[test]
    fn reap_removes_only_old_dead() {
        let mut t = MemberTable::new();
        for n in ["a", "b", "c"] {
            t.insert_at(member(n), usize::MAX);
        }
        t.get_mut("b").unwrap().state = MemberState::Dead;
        t.get_mut("c").unwrap().state = MemberState::Left;
        t.get_mut("c").unwrap().state_change = Instant::from_millis(9_000);
        let now = Instant::from_millis(10_000);
        let reaped =
            t.reap_and_shuffle(now, core::time::Duration::from_secs(5), "", |s| s.reverse());
        assert_eq!(reaped.len(), 1);
        assert_eq!(reaped[0].name, "b");
        assert!(t.get("b").is_none());
        assert_eq!(t.at(0).unwrap().name, "c");
        assert_eq!(t.get("a").unwrap().name, "a");
        // The local node stays even when it left long ago.
        t.get_mut("c").unwrap().state_change = Instant::ZERO;
        let reaped = t.reap_and_shuffle(now, core::time::Duration::from_secs(5), "c", |_| {});
        assert!(reaped.is_empty());
        assert!(t.get("c").is_some());
    }

    #[test]
    fn wire_addresses() {
        assert_eq!(
            socket_addr_from_wire(&[10, 0, 0, 1], 7946),
            Some("10.0.0.1:7946".parse().unwrap())
        );
        let mapped = Ipv4Addr::new(127, 0, 0, 2).to_ipv6_mapped().octets();
        assert_eq!(
            socket_addr_from_wire(&mapped, 1),
            Some("127.0.0.2:1".parse().unwrap())
        );
        assert_eq!(socket_addr_from_wire(&[1, 2, 3], 1), None);
    }
}
