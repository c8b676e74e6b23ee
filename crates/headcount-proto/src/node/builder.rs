//! The one way to construct a [`Node`]: [`Node::builder`].

use core::fmt;

use super::{LocalNode, Node};
use crate::config::{Config, ConfigError};
use crate::delegate::{Hooks, NoHooks};
use crate::time::Instant;
use crate::wire::security::NonceSource;

/// What a [`Node`] is built from; see [`Node::builder`].
///
/// ```
/// use headcount_proto::{Config, Instant, LocalNode, Node};
///
/// let local = LocalNode::new("a", "127.0.0.1:7946".parse().unwrap());
/// let node = Node::builder(Config::local(), local)
///     .seed(42)
///     .build(Instant::ZERO)
///     .unwrap();
/// assert_eq!(node.name(), "a");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct NodeBuilder {
    pub(super) config: Config,
    pub(super) local: LocalNode,
    pub(super) hooks: Box<dyn Hooks>,
    pub(super) seed: u64,
    pub(super) nonces: Option<NonceSource>,
}

impl fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hooks are not `Debug`, and the whole config would drown the rest.
        f.debug_struct("NodeBuilder")
            .field("local", &self.local)
            .field("seed", &self.seed)
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts building a node that runs `config` as `local`. Defaults: no
    /// hooks ([`NoHooks`]), seed 0, no nonce source.
    pub fn builder(config: Config, local: LocalNode) -> NodeBuilder {
        NodeBuilder {
            config,
            local,
            hooks: Box::new(NoHooks),
            seed: 0,
            nonces: None,
        }
    }
}

impl NodeBuilder {
    /// The application's hooks (user messages, broadcasts, state,
    /// merge and alive checks).
    pub fn hooks(mut self, hooks: Box<dyn Hooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Drives every random choice the node makes (never its nonces).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The source of encryption nonces. Required when
    /// [`Config::keyring`] is set; without a keyring it lets keys be added
    /// later with [`Node::add_key`].
    ///
    /// A real node must pass a cryptographically secure source
    /// ([`NonceSource::from_fn`] over the OS generator): AES-GCM loses
    /// all security if a nonce repeats under one key. Simulations may pass
    /// [`NonceSource::insecure_seeded_for_simulation`]. The node's seeded
    /// generator is never used for nonces, so turning encryption on does
    /// not change its other random choices.
    pub fn nonce_source(mut self, nonces: NonceSource) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// Validates the configuration ([`Config::validate`], the name and
    /// metadata of the local node, a nonce source for a keyring) and
    /// creates the node at `now`: it knows only itself, announces itself
    /// alive and arms its probe, gossip and push/pull timers (each
    /// staggered by a random fraction of its interval, as Go does).
    pub fn build(self, now: Instant) -> Result<Node, ConfigError> {
        Node::new(self, now)
    }
}
