//! Why a push/pull (and so a join) failed, and the application's veto.
//!
//! Stream failures themselves are [`StreamFailure`]s, reported by the
//! driver; these types say what the core made of them.

use std::sync::Arc;

use crate::event::StreamFailure;

/// Why a push/pull with one address failed (one entry of
/// [`Completion::JoinFinished`](crate::Completion::JoinFinished)'s `errors`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushPullError {
    /// The stream failed: connecting, writing, reading or decoding the
    /// reply.
    #[error(transparent)]
    Stream(StreamFailure),
    /// The peer answered with an error message (Go's `errResp`); this is
    /// its text, as the peer wrote it.
    #[error("remote error: {0}")]
    Remote(String),
    /// The peer answered with something other than its state.
    #[error("unexpected reply to push/pull")]
    UnexpectedReply,
    /// The peer's state was received but not merged.
    #[error(transparent)]
    Merge(MergeError),
}

/// Why a remote state was not merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// A node's current protocol version lies outside the range every
    /// alive node supports (Go `verifyProtocol`).
    #[error("node '{node}' protocol version ({version}) is incompatible: [{min}, {max}]")]
    ProtocolIncompatible {
        /// The node.
        node: String,
        /// Its current protocol version.
        version: u8,
        /// The highest minimum among alive nodes.
        min: u8,
        /// The lowest maximum among alive nodes.
        max: u8,
    },
    /// A node's current delegate protocol version lies outside the range
    /// every alive node supports (Go `verifyProtocol`).
    #[error("node '{node}' delegate protocol version ({version}) is incompatible: [{min}, {max}]")]
    DelegateIncompatible {
        /// The node.
        node: String,
        /// Its current delegate protocol version.
        version: u8,
        /// The highest minimum among alive nodes.
        min: u8,
        /// The lowest maximum among alive nodes.
        max: u8,
    },
    /// The merge hook refused it
    /// ([`Hooks::allow_merge`](crate::Hooks::allow_merge)).
    #[error("merge refused: {0}")]
    Vetoed(Veto),
}

/// The application's refusal of a merge or of an alive message
/// ([`Hooks::allow_merge`](crate::Hooks::allow_merge),
/// [`Hooks::allow_alive`](crate::Hooks::allow_alive)), with its reason.
///
/// Like an [`std::io::Error`] made from a custom error, it is transparent:
/// it displays as its reason and reports the reason's source as its own;
/// [`Veto::reason`] gives the reason itself (to downcast it). Two vetoes
/// are equal when their reasons read the same.
#[derive(Clone)]
pub struct Veto(Arc<dyn std::error::Error + Send + Sync>);

impl Veto {
    /// A veto for `reason`: a message (`Veto::new("not this cluster")`)
    /// or an error of the application's.
    pub fn new(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Veto {
        Veto(Arc::from(reason.into()))
    }

    /// The reason given to [`Veto::new`].
    pub fn reason(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl core::fmt::Display for Veto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl core::fmt::Debug for Veto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Veto").field(&self.0).finish()
    }
}

impl std::error::Error for Veto {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Veto {
    fn eq(&self, other: &Veto) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Veto {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("quota of {0} nodes reached")]
    struct Quota(usize);

    #[test]
    fn veto_keeps_its_reason() {
        let v = Veto::new(Quota(3));
        assert_eq!(v.to_string(), "quota of 3 nodes reached");
        assert_eq!(v.reason().downcast_ref::<Quota>().map(|q| q.0), Some(3));
        assert_eq!(v, Veto::new("quota of 3 nodes reached"));
        assert_ne!(v, Veto::new("no"));
        let e = PushPullError::Merge(MergeError::Vetoed(v.clone()));
        assert_eq!(e.to_string(), "merge refused: quota of 3 nodes reached");
        assert!(matches!(e, PushPullError::Merge(MergeError::Vetoed(ref w)) if *w == v));
    }
}
