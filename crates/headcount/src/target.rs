//! [`Target`], where [`crate::Memberlist::send_best_effort`] and
//! [`crate::Memberlist::send_reliable`] send a user message; the driver
//! resolves a name to an address when the message is sent.

use std::net::SocketAddr;

use crate::MemberInfo;

/// Where a user message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A member, by name.
    Node(String),
    /// An address.
    Addr(SocketAddr),
}

impl From<&str> for Target {
    fn from(s: &str) -> Self {
        Target::Node(s.to_string())
    }
}

impl From<String> for Target {
    fn from(s: String) -> Self {
        Target::Node(s)
    }
}

impl From<&String> for Target {
    fn from(s: &String) -> Self {
        Target::Node(s.clone())
    }
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Self {
        Target::Addr(a)
    }
}

impl From<&MemberInfo> for Target {
    fn from(m: &MemberInfo) -> Self {
        Target::Addr(m.addr)
    }
}
