//! The errors of the public API.

use std::io;
use std::net::SocketAddr;

use headcount_proto::{ConfigError, PushPullError, StreamFailure};

pub use crate::resolve::AddressError;

/// What went wrong in a [`crate::Memberlist`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options are not usable.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),
    /// The advertise address given is unspecified (`0.0.0.0` or `::`):
    /// other nodes cannot reach it.
    #[error("cannot announce the unspecified address {}: set an advertise address", .addr.ip())]
    AdvertiseUnspecified {
        /// The address it would announce.
        addr: SocketAddr,
    },
    /// The node is bound to `0.0.0.0` or `::`, has no advertise address,
    /// and no interface has an address to announce in its place (a private
    /// IPv4 address for `0.0.0.0`; a unique local or global IPv6 address
    /// for `::`; see [`crate::Options::bind_addr`]). Go memberlist fails
    /// the same way ("No private IP address found").
    #[error("bound to {bind} and no interface has an address to announce in its place: set an advertise address")]
    NoPrivateAddress {
        /// The address the node is bound to (with the port it got).
        bind: SocketAddr,
    },
    /// The operating system's secure random generator failed.
    #[error("the OS random generator failed: {0}")]
    Random(RandomError),
    /// Binding the UDP socket or the TCP listener failed.
    #[error("cannot bind {addr}: {kind}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// Why it failed.
        kind: io::ErrorKind,
    },
    /// A join address could not be parsed or resolved.
    #[error("bad join address {addr:?}: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// Why it is unusable.
        reason: AddressError,
    },
    /// No join address completed a push/pull.
    #[error("join failed: no address answered ({})", format_failures(.failures))]
    JoinFailed {
        /// Each address tried (or given, when it could not be resolved), with why it failed.
        failures: Vec<(String, JoinError)>,
    },
    /// The operation did not finish in the time allowed.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A ping got no answer within the probe timeout.
    #[error("no ack from {0} within the probe timeout")]
    NoAck(String),
    /// The message is larger than the limit of the transport.
    #[error("message of {size} bytes is too large (limit {limit} bytes)")]
    TooLarge {
        /// Size of the message.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The node metadata is larger than allowed
    /// ([`crate::META_MAX_SIZE`]).
    #[error("node metadata is {size} bytes, at most {limit} allowed")]
    MetaTooLarge {
        /// Size of the metadata.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No member has this name.
    #[error("no member is called {0:?}")]
    UnknownNode(String),
    /// This node has left the cluster, so it no longer sends.
    #[error("this node has left the cluster")]
    Left,
    /// A reliable message could not be delivered.
    #[error("reliable send to {to} failed: {reason}")]
    SendFailed {
        /// The destination.
        to: SocketAddr,
        /// Why it failed.
        reason: StreamFailure,
    },
    /// The node was shut down.
    #[error("the memberlist is shut down")]
    Shutdown,
    /// A keyring operation was refused (bad key length, key not installed,
    /// removing the primary key, no keyring).
    #[error("keyring: {0}")]
    Keyring(headcount_proto::KeyringError),
}

/// Why one address of a join failed (see [`Error::JoinFailed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The address could not be parsed or resolved.
    #[error(transparent)]
    Address(AddressError),
    /// The push/pull with it failed.
    #[error(transparent)]
    PushPull(PushPullError),
}

/// Why the operating system's random generator failed (see
/// [`Error::Random`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RandomError(pub(crate) getrandom::Error);

impl RandomError {
    /// The operating system's error code, if it gave one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.0.raw_os_error()
    }
}

fn format_failures(f: &[(String, JoinError)]) -> String {
    if f.is_empty() {
        return "no address given".to_string();
    }
    f.iter()
        .map(|(a, e)| format!("{a}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<headcount_proto::node::SendError> for Error {
    fn from(e: headcount_proto::node::SendError) -> Self {
        use headcount_proto::node::SendError;
        match e {
            SendError::TooLarge { size, limit } => Error::TooLarge { size, limit },
            SendError::Left => Error::Left,
            SendError::UnknownNode(n) => Error::UnknownNode(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_failure_message() {
        let refused = JoinError::PushPull(PushPullError::Stream(StreamFailure::Io(
            io::ErrorKind::ConnectionRefused,
        )));
        let e = Error::JoinFailed {
            failures: vec![("127.0.0.1:7000".into(), refused)],
        };
        assert_eq!(
            e.to_string(),
            "join failed: no address answered (127.0.0.1:7000: connection refused)"
        );
    }
}
