//! What a [`crate::Memberlist`] is created from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::delegate::{
    AliveDelegate, BroadcastDelegate, ConflictDelegate, Delegates, EventDelegate, MergeDelegate,
    MessageDelegate, NodeMetaDelegate, PingDelegate, StateDelegate,
};
use crate::{Cidr, Config, Keyring};

/// Options of [`crate::Memberlist::create`]. Build with [`Options::new`]
/// and the `with_*` methods, or assign the public fields. It is
/// `#[non_exhaustive]` so that options can be added without breaking
/// anyone: struct literals are not possible outside this crate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Unique name of this node in the cluster.
    pub name: String,
    /// Address to bind, UDP and TCP on the same port. Port 0 picks a free
    /// port for both. The bound port is also the port of join addresses
    /// given without one (see [`crate::Memberlist::join`]).
    ///
    /// Bound to `0.0.0.0` or `::` without an
    /// [`advertise_addr`](Self::advertise_addr), the node announces an
    /// address of one of the host's interfaces that are up, chosen when it
    /// is created:
    ///
    /// - `0.0.0.0`: a private IPv4 address, as Go memberlist's
    ///   `sockaddr.GetPrivateIP`: in 10/8, 172.16/12, 192.168/16,
    ///   100.64/10 (RFC 6598), 192.88.99/24 or 198.18/15; the default
    ///   route's interface first, then the larger network (shorter prefix),
    ///   then the order the system lists them in.
    /// - `::`: a unique local IPv6 address (fc00::/7), else any other
    ///   IPv6 address a router forwards (not loopback, link-local,
    ///   v4-mapped or documentation), ranked the same way. Go memberlist
    ///   announces `::` itself here.
    ///
    /// IPv4 for `0.0.0.0` and IPv6 for `::` only, so the announced address
    /// is one the socket serves. When no address fits,
    /// [`crate::Memberlist::create`] fails with
    /// [`crate::Error::NoPrivateAddress`].
    pub bind_addr: SocketAddr,
    /// Address to announce to other nodes. Default: the bound address, or
    /// for `0.0.0.0` and `::` one chosen from the host's interfaces (see
    /// [`bind_addr`](Self::bind_addr)). A port of 0 means the bound port.
    /// An unspecified address here is refused
    /// ([`crate::Error::AdvertiseUnspecified`]).
    pub advertise_addr: Option<SocketAddr>,
    /// The resolv.conf that name servers and resolver options are read
    /// from when a join address is a host name (Go's `DNSConfigPath`).
    /// Default: `/etc/resolv.conf`. When it cannot be read, host names are
    /// resolved by the system resolver. Unused without the `dns` feature
    /// (host names are then refused).
    pub dns_config_path: PathBuf,
    /// Protocol configuration: start from [`Config::lan`], [`Config::wan`]
    /// or [`Config::local`].
    pub config: Config,
    /// Node metadata (at most 512 bytes), used when no
    /// [`NodeMetaDelegate`] is set.
    pub meta: Vec<u8>,
    /// The application's delegates.
    pub delegates: Delegates,
    /// Seed of the node's random choices; `None` draws one.
    pub seed: Option<u64>,
    /// How many events each stream of [`crate::Memberlist::events`] may
    /// fall behind: a slower reader misses the oldest and is then told
    /// how many ([`crate::Lagged`]).
    pub event_capacity: usize,
}

impl Options {
    /// Options for a node called `name` bound to `bind_addr` with
    /// `config` (e.g. [`Config::lan`]), no metadata and no delegates.
    pub fn new(name: impl Into<String>, bind_addr: SocketAddr, config: Config) -> Self {
        Options {
            name: name.into(),
            bind_addr,
            advertise_addr: None,
            dns_config_path: crate::resolve::DEFAULT_DNS_CONFIG_PATH.into(),
            config,
            meta: Vec::new(),
            delegates: Delegates::default(),
            seed: None,
            event_capacity: 1024,
        }
    }

    /// Sets the protocol configuration.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the address announced to other nodes.
    pub fn with_advertise_addr(mut self, addr: SocketAddr) -> Self {
        self.advertise_addr = Some(addr);
        self
    }

    /// Sets the resolv.conf read to resolve host names
    /// ([`Options::dns_config_path`]).
    pub fn with_dns_config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.dns_config_path = path.into();
        self
    }

    /// Sets the node metadata.
    pub fn with_meta(mut self, meta: impl Into<Vec<u8>>) -> Self {
        self.meta = meta.into();
        self
    }

    /// Sets the random seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets all the delegates at once (the `with_*_delegate` methods set
    /// one each).
    pub fn with_delegates(mut self, delegates: Delegates) -> Self {
        self.delegates = delegates;
        self
    }

    /// Sets the capacity of the event channel ([`Options::event_capacity`]).
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Encrypts gossip with `keyring` (its first key is the primary, the
    /// one we encrypt with; all are tried to decrypt). Sets
    /// [`Config::keyring`]; see [`Config::gossip_verify_incoming`] and
    /// [`Config::gossip_verify_outgoing`] to migrate a running cluster.
    /// Keys can also be added later with [`crate::Memberlist::add_key`].
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.config.keyring = Some(keyring);
        self
    }

    /// Sets the cluster label ([`Config::label`], at most 255 bytes): it
    /// prefixes every packet and dialed stream, and traffic with another
    /// label is dropped. It separates clusters that share a network; it is
    /// not a secret.
    pub fn with_label(mut self, label: impl Into<Vec<u8>>) -> Self {
        self.config.label = label.into();
        self
    }

    /// Accepts traffic, and new members, only from these address blocks
    /// ([`Config::cidrs_allowed`]).
    pub fn with_cidrs_allowed(mut self, cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        self.config.cidrs_allowed = Some(cidrs.into_iter().collect());
        self
    }

    /// Labels every metric the node records (Go memberlist's
    /// `MetricLabels`, [`Config::metric_labels`]); see the `metrics`
    /// feature and docs/metrics.md.
    pub fn with_metric_labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.config = self.config.with_metric_labels(labels);
        self
    }

    /// Sets the metadata delegate.
    pub fn with_node_meta_delegate(mut self, d: Arc<dyn NodeMetaDelegate>) -> Self {
        self.delegates.node_meta = Some(d);
        self
    }

    /// Sets the user message delegate.
    pub fn with_message_delegate(mut self, d: Arc<dyn MessageDelegate>) -> Self {
        self.delegates.message = Some(d);
        self
    }

    /// Sets the user broadcast delegate.
    pub fn with_broadcast_delegate(mut self, d: Arc<dyn BroadcastDelegate>) -> Self {
        self.delegates.broadcast = Some(d);
        self
    }

    /// Sets the push/pull state delegate.
    pub fn with_state_delegate(mut self, d: Arc<dyn StateDelegate>) -> Self {
        self.delegates.state = Some(d);
        self
    }

    /// Sets the membership event delegate.
    pub fn with_event_delegate(mut self, d: Arc<dyn EventDelegate>) -> Self {
        self.delegates.event = Some(d);
        self
    }

    /// Sets the conflict delegate.
    pub fn with_conflict_delegate(mut self, d: Arc<dyn ConflictDelegate>) -> Self {
        self.delegates.conflict = Some(d);
        self
    }

    /// Sets the merge delegate.
    pub fn with_merge_delegate(mut self, d: Arc<dyn MergeDelegate>) -> Self {
        self.delegates.merge = Some(d);
        self
    }

    /// Sets the alive delegate.
    pub fn with_alive_delegate(mut self, d: Arc<dyn AliveDelegate>) -> Self {
        self.delegates.alive = Some(d);
        self
    }

    /// Sets the ping delegate.
    pub fn with_ping_delegate(mut self, d: Arc<dyn PingDelegate>) -> Self {
        self.delegates.ping = Some(d);
        self
    }
}
