//! Protocol configuration: every knob of memberlist's `Config` that the
//! protocol core uses, with the LAN, WAN and local presets of Go memberlist.

use core::fmt;
use core::time::Duration;

use std::net::IpAddr;

use crate::cidr::{self, Cidr};
use crate::wire::Keyring;

/// Newest protocol version we speak.
pub const PROTOCOL_VERSION_MAX: u8 = 5;
/// Oldest protocol version we speak. Version 1 differs only in encryption
/// padding, which the security layer handles.
pub const PROTOCOL_VERSION_MIN: u8 = 1;
/// Largest node metadata accepted, as in Go (`MetaMaxSize`).
pub const META_MAX_SIZE: usize = 512;

/// Protocol configuration. Start from a preset, [`Config::lan`],
/// [`Config::wan`] or [`Config::local`], and change what you need with the
/// `with_*` setters (one per field); [`Config::validate`] says what is
/// wrong. The fields are public for reading (and may be assigned), but the
/// struct is `#[non_exhaustive]`: new knobs arrive as new fields with a
/// default that keeps today's behaviour, so struct literals are not
/// possible outside this crate.
///
/// ```
/// use std::time::Duration;
/// use headcount_proto::Config;
///
/// let config = Config::lan()
///     .with_probe_interval(Duration::from_millis(500))
///     .with_probe_timeout(Duration::from_millis(250))
///     .with_label("prod");
/// assert!(config.validate().is_ok());
/// ```
///
/// # Go memberlist's `Config`, field by field
///
/// | Go field | headcount |
/// |---|---|
/// | `Name`, `BindAddr`, `BindPort`, `AdvertiseAddr`, `AdvertisePort` | the node's identity and sockets: [`LocalNode`](crate::LocalNode) here, `headcount::Options` in the shell |
/// | `Transport` | the shell's sockets; the core has no I/O |
/// | `ProtocolVersion` | [`Config::protocol_version`] |
/// | `TCPTimeout` | [`Config::tcp_timeout`] |
/// | `IndirectChecks` | [`Config::indirect_checks`] |
/// | `RetransmitMult` | [`Config::retransmit_mult`] |
/// | `SuspicionMult`, `SuspicionMaxTimeoutMult` | [`Config::suspicion_mult`], [`Config::suspicion_max_timeout_mult`] |
/// | `PushPullInterval` | [`Config::push_pull_interval`] |
/// | `ProbeInterval`, `ProbeTimeout` | [`Config::probe_interval`], [`Config::probe_timeout`] |
/// | `DisableTcpPings` | [`Config::disable_tcp_pings`] |
/// | `DisableTcpPingsForNode` | [`Hooks::disable_tcp_pings_for_node`](crate::Hooks::disable_tcp_pings_for_node) (`PingDelegate::disable_tcp_pings_for_node` in the shell): a predicate, so a hook rather than a field, which keeps `Config` `Clone + Eq + Debug` |
/// | `AwarenessMaxMultiplier` | [`Config::awareness_max_multiplier`] |
/// | `GossipInterval`, `GossipNodes`, `GossipToTheDeadTime` | [`Config::gossip_interval`], [`Config::gossip_nodes`], [`Config::gossip_to_the_dead_time`] |
/// | `GossipVerifyIncoming`, `GossipVerifyOutgoing` | [`Config::gossip_verify_incoming`], [`Config::gossip_verify_outgoing`] |
/// | `EnableCompression` | [`Config::enable_compression`] |
/// | `SecretKey`, `Keyring` | [`Config::keyring`] (its first key is the primary) |
/// | `Delegate`, `Events`, `Conflict`, `Merge`, `Ping`, `Alive` | [`Hooks`](crate::Hooks) and [`Event`](crate::Event)s here; `Delegates` in the shell |
/// | `DelegateProtocolVersion`, `DelegateProtocolMin`, `DelegateProtocolMax` | [`Config::delegate_protocol_version`], [`Config::delegate_protocol_min`], [`Config::delegate_protocol_max`] |
/// | `DNSConfigPath` | not a protocol knob: DNS is the shell's (see `headcount::Options`) |
/// | `LogOutput`, `Logger` | omitted: logs go through [`tracing`]; the subscriber decides where |
/// | `HandoffQueueDepth` | [`Config::handoff_queue_depth`] |
/// | `UDPBufferSize` | [`Config::udp_buffer_size`] |
/// | `DeadNodeReclaimTime` | [`Config::dead_node_reclaim_time`] |
/// | `RequireNodeNames` | omitted: it makes sends to an address without a node name fail, which matters only to a name-aware transport (Go's `NodeAwareTransport`); headcount always addresses a member by its socket address, and a join address has no name to require |
/// | `CIDRsAllowed` | [`Config::cidrs_allowed`] |
/// | `Label`, `SkipInboundLabelCheck` (newer memberlist) | [`Config::label`], [`Config::skip_inbound_label_check`] |
/// | `MetricLabels` (newer memberlist) | [`Config::metric_labels`] (see [`crate::metrics`]) |
/// | `QueueCheckInterval` (newer memberlist) | [`Config::queue_check_interval`]: the driver samples the broadcast queue's length into `memberlist.queue.broadcasts` |
/// | — (headcount only) | [`Config::reconnect_interval`], [`Config::reconnect_timeout`], [`Config::lifeguard_suspect_piggyback`], [`Config::lifeguard_nacks`], [`Config::lifeguard_health_scaled_suspicion`], [`Config::retry_direct_ping`] |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Protocol version we speak (`pCur`), between 1 and 5. Go's default is 2.
    pub protocol_version: u8,
    /// Delegate protocol version we speak (`dCur`).
    pub delegate_protocol_version: u8,
    /// Lowest delegate protocol version we understand (`dMin`).
    pub delegate_protocol_min: u8,
    /// Highest delegate protocol version we understand (`dMax`).
    pub delegate_protocol_max: u8,
    /// Timeout for stream (TCP) operations: push/pull, reliable sends, fallback pings.
    pub tcp_timeout: Duration,
    /// Number of peers asked to probe a target that missed a direct ping.
    pub indirect_checks: usize,
    /// Multiplier for the number of retransmissions of a broadcast.
    pub retransmit_mult: u32,
    /// Multiplier for the suspicion timeout.
    pub suspicion_mult: u32,
    /// Upper bound of the suspicion timeout, as a multiple of its lower bound.
    pub suspicion_max_timeout_mult: u32,
    /// Interval between periodic push/pull exchanges; zero disables them.
    pub push_pull_interval: Duration,
    /// Interval between probes.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before probing indirectly.
    pub probe_timeout: Duration,
    /// Never use the TCP fallback ping.
    pub disable_tcp_pings: bool,
    /// Upper bound of the Lifeguard health multiplier (health score < this).
    pub awareness_max_multiplier: u32,
    /// Interval between gossip rounds; zero disables gossip.
    pub gossip_interval: Duration,
    /// Peers gossiped to per round.
    pub gossip_nodes: usize,
    /// How long dead nodes are still gossiped to (and kept before reaping).
    pub gossip_to_the_dead_time: Duration,
    /// How often to try reaching a member we declared dead, Serf's
    /// reconnect (headcount only; memberlist has none): a push/pull with a
    /// random failed member, so that a partition longer than the suspicion
    /// timeout heals. Zero turns it off (memberlist's behaviour).
    pub reconnect_interval: Duration,
    /// How long a failed member is tried before it is given up.
    pub reconnect_timeout: Duration,
    /// Compress outgoing messages with LZW.
    pub enable_compression: bool,
    /// Largest UDP packet we build.
    pub udp_buffer_size: usize,
    /// Most alive messages, and most other gossip messages, held at once
    /// while a burst of packets is handled (Go `HandoffQueueDepth`; see
    /// [`crate::inbound`]).
    pub handoff_queue_depth: usize,
    /// After this long dead, a node's name may be taken by a new address;
    /// zero means never.
    pub dead_node_reclaim_time: Duration,
    /// Label prefixed to every packet and dialed stream; empty for none.
    pub label: Vec<u8>,
    /// Accept traffic whatever its label.
    pub skip_inbound_label_check: bool,
    /// Lifeguard: when probing a suspect node, send it the accusation with
    /// the ping so it can refute at once. Off only to study plain SWIM.
    pub lifeguard_suspect_piggyback: bool,
    /// Lifeguard: ask indirect-probe helpers for nacks, which feed the
    /// health score. Off only to study plain SWIM.
    pub lifeguard_nacks: bool,
    /// Lifeguard, extended (headcount only; Go has no such switch): a node
    /// whose own health score is above zero waits `score + 1` times its
    /// suspicion timeout before it declares a suspect dead itself. A slow
    /// node is the likeliest to miss a refutation that sits in its own
    /// receive backlog; healthy nodes still declare on time and their
    /// `dead` gossip reaches the slow one. Purely local: nothing on the
    /// wire changes. Off gives memberlist's exact timing.
    pub lifeguard_health_scaled_suspicion: bool,
    /// headcount only (Go pings once): when the direct ping goes
    /// unanswered for `probe_timeout`, ping the target directly once more,
    /// alongside the indirect pings and the TCP ping. Under packet loss the
    /// direct path is the likeliest to get through (two packets against an
    /// indirect probe's four), so a probe fails, and a healthy member is
    /// suspected, about half as often at 30 % loss; it costs one ping and
    /// ack per failed direct ping, nothing when there is no loss. The
    /// target answers with the same sequence number, so Go peers need
    /// nothing new. Off gives memberlist's exact probing.
    pub retry_direct_ping: bool,
    /// Encryption keys the node starts with; `None` (the default) for no
    /// encryption. A node with a keyring needs a nonce source
    /// ([`NodeBuilder::nonce_source`](crate::node::NodeBuilder::nonce_source)).
    /// Change keys at run time with [`Node::add_key`](crate::Node::add_key)
    /// and friends; the node's keys are then
    /// [`Node::keyring`](crate::Node::keyring), not this field.
    pub keyring: Option<Keyring>,
    /// With a keyring, drop packets and streams that are not encrypted
    /// with one of our keys (Go `GossipVerifyIncoming`, default true). Off,
    /// a packet that does not decrypt is read as plaintext and plaintext
    /// streams are accepted. Settable at run time
    /// ([`Node::set_gossip_verify_incoming`](crate::Node::set_gossip_verify_incoming));
    /// the current value is
    /// [`Node::gossip_verify_incoming`](crate::Node::gossip_verify_incoming).
    pub gossip_verify_incoming: bool,
    /// With a keyring, encrypt what we send (Go `GossipVerifyOutgoing`,
    /// default true). Off, we send plaintext. Settable at run time
    /// ([`Node::set_gossip_verify_outgoing`](crate::Node::set_gossip_verify_outgoing));
    /// the current value is
    /// [`Node::gossip_verify_outgoing`](crate::Node::gossip_verify_outgoing).
    ///
    /// Migrating a running cluster from plaintext to encryption: (1) on
    /// every node turn both flags off and install the key; (2) turn
    /// outgoing on everywhere; (3) turn incoming on everywhere.
    pub gossip_verify_outgoing: bool,
    /// Allow-list of source and advertised addresses (Go `CIDRsAllowed`);
    /// `None` (the default) allows every address. With a list, packets and
    /// streams from other addresses are dropped, and `alive` messages that
    /// announce a new node or a new address outside the list are ignored.
    /// UDP source addresses can be spoofed: this filters, it does not
    /// authenticate. An empty list is refused by [`Config::validate`]
    /// (Go would read it as "allow all").
    pub cidrs_allowed: Option<Vec<Cidr>>,
    /// Labels on every metric the node records (Go `MetricLabels`), as
    /// (name, value) pairs; empty in the presets. See [`crate::metrics`].
    pub metric_labels: Vec<(String, String)>,
    /// How often the driver samples the broadcast queue's length into
    /// `memberlist.queue.broadcasts` (Go `QueueCheckInterval`, 30 s).
    pub queue_check_interval: Duration,
}

impl Config {
    /// Go memberlist's `DefaultLANConfig`.
    pub fn lan() -> Self {
        Config {
            protocol_version: 2,
            delegate_protocol_version: 0,
            delegate_protocol_min: 0,
            delegate_protocol_max: 0,
            tcp_timeout: Duration::from_secs(10),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            disable_tcp_pings: false,
            awareness_max_multiplier: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_the_dead_time: Duration::from_secs(30),
            // Serf's defaults.
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(24 * 3600),
            enable_compression: true,
            udp_buffer_size: 1400,
            handoff_queue_depth: 1024,
            dead_node_reclaim_time: Duration::ZERO,
            label: Vec::new(),
            skip_inbound_label_check: false,
            lifeguard_suspect_piggyback: true,
            lifeguard_nacks: true,
            lifeguard_health_scaled_suspicion: true,
            retry_direct_ping: true,
            keyring: None,
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
            cidrs_allowed: None,
            metric_labels: Vec::new(),
            queue_check_interval: Duration::from_secs(30),
        }
    }

    /// Go memberlist's `DefaultWANConfig`.
    pub fn wan() -> Self {
        Config {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Self::lan()
        }
    }

    /// Go memberlist's `DefaultLocalConfig`, for loopback clusters.
    pub fn local() -> Self {
        Config {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Self::lan()
        }
    }
}

/// One `with_*` setter per field: `$name(value)` sets `$field`.
macro_rules! setters {
    ($($name:ident => $field:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`Config::", stringify!($field), "`].")]
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

/// Builder-style setters, one per field, named like `Options::with_*` in
/// the shell. Each takes and returns the config, so they chain from a
/// preset.
impl Config {
    setters! {
        with_protocol_version => protocol_version: u8,
        with_delegate_protocol_version => delegate_protocol_version: u8,
        with_delegate_protocol_min => delegate_protocol_min: u8,
        with_delegate_protocol_max => delegate_protocol_max: u8,
        with_tcp_timeout => tcp_timeout: Duration,
        with_indirect_checks => indirect_checks: usize,
        with_retransmit_mult => retransmit_mult: u32,
        with_suspicion_mult => suspicion_mult: u32,
        with_suspicion_max_timeout_mult => suspicion_max_timeout_mult: u32,
        with_push_pull_interval => push_pull_interval: Duration,
        with_probe_interval => probe_interval: Duration,
        with_probe_timeout => probe_timeout: Duration,
        with_disable_tcp_pings => disable_tcp_pings: bool,
        with_awareness_max_multiplier => awareness_max_multiplier: u32,
        with_gossip_interval => gossip_interval: Duration,
        with_gossip_nodes => gossip_nodes: usize,
        with_gossip_to_the_dead_time => gossip_to_the_dead_time: Duration,
        with_reconnect_interval => reconnect_interval: Duration,
        with_reconnect_timeout => reconnect_timeout: Duration,
        with_enable_compression => enable_compression: bool,
        with_udp_buffer_size => udp_buffer_size: usize,
        with_handoff_queue_depth => handoff_queue_depth: usize,
        with_dead_node_reclaim_time => dead_node_reclaim_time: Duration,
        with_skip_inbound_label_check => skip_inbound_label_check: bool,
        with_lifeguard_suspect_piggyback => lifeguard_suspect_piggyback: bool,
        with_lifeguard_nacks => lifeguard_nacks: bool,
        with_lifeguard_health_scaled_suspicion => lifeguard_health_scaled_suspicion: bool,
        with_retry_direct_ping => retry_direct_ping: bool,
        with_gossip_verify_incoming => gossip_verify_incoming: bool,
        with_gossip_verify_outgoing => gossip_verify_outgoing: bool,
    }

    /// Sets [`Config::label`] (at most 255 bytes).
    #[must_use]
    pub fn with_label(mut self, label: impl Into<Vec<u8>>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets [`Config::keyring`]: a [`Keyring`] to encrypt with, or `None`
    /// for plaintext.
    #[must_use]
    pub fn with_keyring(mut self, keyring: impl Into<Option<Keyring>>) -> Self {
        self.keyring = keyring.into();
        self
    }

    /// Sets [`Config::metric_labels`].
    #[must_use]
    pub fn with_metric_labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.metric_labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Sets [`Config::queue_check_interval`].
    #[must_use]
    pub fn with_queue_check_interval(mut self, interval: Duration) -> Self {
        self.queue_check_interval = interval;
        self
    }

    /// Sets [`Config::cidrs_allowed`] to these blocks (`None`, every
    /// address, is the presets' value).
    #[must_use]
    pub fn with_cidrs_allowed(mut self, cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        self.cidrs_allowed = Some(cidrs.into_iter().collect());
        self
    }
}

impl Config {
    /// Our version vector `[pMin, pMax, pCur, dMin, dMax, dCur]`.
    pub fn vsn(&self) -> [u8; 6] {
        [
            PROTOCOL_VERSION_MIN,
            PROTOCOL_VERSION_MAX,
            self.protocol_version,
            self.delegate_protocol_min,
            self.delegate_protocol_max,
            self.delegate_protocol_version,
        ]
    }

    /// Whether `ip` passes [`Config::cidrs_allowed`] (Go `IPAllowed`).
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        cidr::ip_allowed(self.cidrs_allowed.as_deref(), ip)
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use ConfigError::*;
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&self.protocol_version) {
            return Err(ProtocolVersion(self.protocol_version));
        }
        if self.delegate_protocol_min > self.delegate_protocol_max
            || !(self.delegate_protocol_min..=self.delegate_protocol_max)
                .contains(&self.delegate_protocol_version)
        {
            return Err(DelegateVersions {
                min: self.delegate_protocol_min,
                cur: self.delegate_protocol_version,
                max: self.delegate_protocol_max,
            });
        }
        if self.probe_interval.is_zero() {
            return Err(Zero("probe_interval"));
        }
        if self.probe_timeout.is_zero() {
            return Err(Zero("probe_timeout"));
        }
        if self.probe_timeout > self.probe_interval {
            return Err(ProbeTimeoutAboveInterval);
        }
        if self.tcp_timeout.is_zero() {
            return Err(Zero("tcp_timeout"));
        }
        if self.suspicion_mult == 0 {
            return Err(Zero("suspicion_mult"));
        }
        if self.suspicion_max_timeout_mult == 0 {
            return Err(Zero("suspicion_max_timeout_mult"));
        }
        if self.retransmit_mult == 0 {
            return Err(Zero("retransmit_mult"));
        }
        if self.awareness_max_multiplier == 0 {
            return Err(Zero("awareness_max_multiplier"));
        }
        if self.handoff_queue_depth == 0 {
            return Err(Zero("handoff_queue_depth"));
        }
        // A packet must hold at least a compound header, a CRC header, a
        // label and one small message; below this nothing useful fits.
        if self.udp_buffer_size < 512 || self.udp_buffer_size > 65_507 {
            return Err(UdpBufferSize(self.udp_buffer_size));
        }
        if self.label.len() > 255 {
            return Err(LabelTooLong(self.label.len()));
        }
        if self.cidrs_allowed.as_ref().is_some_and(Vec::is_empty) {
            return Err(EmptyAllowList);
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::lan()
    }
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `protocol_version` is outside 1..=5.
    ProtocolVersion(u8),
    /// Delegate versions do not satisfy min ≤ cur ≤ max.
    DelegateVersions {
        /// `delegate_protocol_min`
        min: u8,
        /// `delegate_protocol_version`
        cur: u8,
        /// `delegate_protocol_max`
        max: u8,
    },
    /// A setting that must be positive is zero.
    Zero(&'static str),
    /// `probe_timeout` is longer than `probe_interval`.
    ProbeTimeoutAboveInterval,
    /// `udp_buffer_size` is outside 512..=65507.
    UdpBufferSize(usize),
    /// The label is longer than 255 bytes.
    LabelTooLong(usize),
    /// The node name is empty.
    EmptyName,
    /// The node metadata is longer than [`META_MAX_SIZE`].
    MetaTooLarge(usize),
    /// A keyring is configured but the node was built without a nonce
    /// source (see
    /// [`NodeBuilder::nonce_source`](crate::node::NodeBuilder::nonce_source)).
    NonceSourceRequired,
    /// `cidrs_allowed` is an empty list, which would refuse everyone; use
    /// `None` to allow every address.
    EmptyAllowList,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ProtocolVersion(v) => write!(
                f,
                "protocol_version {v} is not supported (use {PROTOCOL_VERSION_MIN} to {PROTOCOL_VERSION_MAX})"
            ),
            ConfigError::DelegateVersions { min, cur, max } => write!(
                f,
                "delegate protocol versions must satisfy min <= current <= max, got min {min}, current {cur}, max {max}"
            ),
            ConfigError::Zero(name) => write!(f, "{name} must be greater than zero"),
            ConfigError::ProbeTimeoutAboveInterval => {
                write!(f, "probe_timeout must not exceed probe_interval")
            }
            ConfigError::UdpBufferSize(n) => {
                write!(f, "udp_buffer_size {n} is outside 512..=65507")
            }
            ConfigError::LabelTooLong(n) => write!(f, "label is {n} bytes, at most 255 allowed"),
            ConfigError::EmptyName => write!(f, "node name must not be empty"),
            ConfigError::MetaTooLarge(n) => {
                write!(f, "node metadata is {n} bytes, at most {META_MAX_SIZE} allowed")
            }
            ConfigError::NonceSourceRequired => write!(
                f,
                "a keyring is configured but no nonce source was given: encryption needs a secure one (NodeBuilder::nonce_source)"
            ),
            ConfigError::EmptyAllowList => write!(
                f,
                "cidrs_allowed is empty, which would refuse every node (use None to allow all)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_match_go() {
        for c in [Config::lan(), Config::wan(), Config::local()] {
            c.validate().unwrap();
        }
        let l = Config::local();
        assert_eq!(l.probe_timeout, Duration::from_millis(200));
        assert_eq!(l.indirect_checks, 1);
        assert_eq!(Config::wan().probe_interval, Duration::from_secs(5));
        assert_eq!(Config::lan().vsn(), [1, 5, 2, 0, 0, 0]);
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = Config::lan();
        c.delegate_protocol_min = 2;
        c.delegate_protocol_max = 5;
        c.delegate_protocol_version = 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DelegateVersions { .. })
        ));
        let mut c = Config::lan();
        c.probe_timeout = Duration::from_secs(2);
        assert_eq!(c.validate(), Err(ConfigError::ProbeTimeoutAboveInterval));
        let mut c = Config::lan();
        c.protocol_version = 9;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("protocol_version 9"));
    }
}
