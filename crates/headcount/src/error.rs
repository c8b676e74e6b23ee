//! The errors of the public API.

use std::net::SocketAddr;

/// What went wrong in a [`crate::Memberlist`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options are not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Binding the UDP socket or the TCP listener failed.
    #[error("cannot bind {addr}: {reason}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },
    /// A join address could not be parsed or resolved.
    #[error("bad join address {addr:?}: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// Why it is unusable.
        reason: String,
    },
    /// No join address completed a push/pull.
    #[error("join failed: no address answered ({})", format_failures(.failures))]
    JoinFailed {
        /// Each address tried (or given, when it could not be resolved), with why it failed.
        failures: Vec<(String, String)>,
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
        reason: String,
    },
    /// The node was shut down.
    #[error("the memberlist is shut down")]
    Shutdown,
    /// A keyring operation was refused (bad key length, key not installed,
    /// removing the primary key, no keyring).
    #[error("keyring: {0}")]
    Keyring(headcount_proto::KeyringError),
}

fn format_failures(f: &[(String, String)]) -> String {
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
        let e = Error::JoinFailed {
            failures: vec![("127.0.0.1:7000".into(), "connection refused".into())],
        };
        assert_eq!(
            e.to_string(),
            "join failed: no address answered (127.0.0.1:7000: connection refused)"
        );
    }
}
