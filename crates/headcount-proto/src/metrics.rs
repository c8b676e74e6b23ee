//! Go memberlist's metrics, recorded by the core where Go records them.
//!
//! With the cargo feature `metrics` the core records through the
//! [`metrics`](https://docs.rs/metrics) facade: counters, gauges and
//! histograms under Go memberlist's names (`memberlist.msg.suspect`, ...),
//! with [`Config::metric_labels`](crate::Config::metric_labels) on every one.
//! Nothing is exported here: the application installs a recorder (an
//! exporter) **before it builds the node**, because the node registers its
//! handles once, when it is built, and a handle registered without a
//! recorder stays a no-op. Without the feature, or without a recorder, each
//! recording is a call that does nothing.
//!
//! Recording does not change what the node does: like its `tracing` logs,
//! it is a side channel, so a simulated run is the same with or without it.
//! Durations (`memberlist.probeNode`, `memberlist.pushPullNode`) are taken
//! from the times the driver hands the node, in milliseconds as Go's
//! `MeasureSince` records them.
//!
//! The names are listed here so that drivers and documentation use the
//! same strings; docs/metrics.md maps each to Go's.

/// Counter: an `alive` message was applied (Go `aliveNode`, after the
/// state update).
pub const MSG_ALIVE: &str = "memberlist.msg.alive";
/// Counter: a `suspect` message about another node was applied.
pub const MSG_SUSPECT: &str = "memberlist.msg.suspect";
/// Counter: a `dead` message was applied (not a refuted one).
pub const MSG_DEAD: &str = "memberlist.msg.dead";
/// Counter: a probe started with a probe interval stretched by the health
/// score.
pub const DEGRADED_PROBE: &str = "memberlist.degraded.probe";
/// Counter: a suspicion timed out with fewer independent confirmations
/// than expected.
pub const DEGRADED_TIMEOUT: &str = "memberlist.degraded.timeout";
/// Gauge: the local health (awareness) score, set when it changes.
pub const HEALTH_SCORE: &str = "memberlist.health.score";
/// Gauge, label `node_state` (`alive`, `suspect`, `dead`, `left`): members
/// in each state, set when our state is sent in a push/pull.
pub const NODE_INSTANCES: &str = "memberlist.node.instances";
/// Gauge: bytes of the local state sent in a push/pull.
pub const SIZE_LOCAL: &str = "memberlist.size.local";
/// Histogram: bytes of an encrypted stream message read (Go
/// `decryptRemoteState`); recorded by the driver.
pub const SIZE_REMOTE: &str = "memberlist.size.remote";
/// Histogram (ms): one probe, from its ping to its ack or its end.
pub const PROBE_NODE: &str = "memberlist.probeNode";
/// Histogram (ms): one push/pull we started, from the dial to the merge.
pub const PUSH_PULL_NODE: &str = "memberlist.pushPullNode";
/// Histogram (ms): one gossip round; measured by the driver.
pub const GOSSIP: &str = "memberlist.gossip";
/// Histogram: broadcasts queued, sampled every
/// [`Config::queue_check_interval`](crate::Config::queue_check_interval) by
/// the driver.
pub const QUEUE_BROADCASTS: &str = "memberlist.queue.broadcasts";
/// Counter: bytes of UDP packets sent; recorded by the driver.
pub const UDP_SENT: &str = "memberlist.udp.sent";
/// Counter: bytes of UDP packets received; recorded by the driver.
pub const UDP_RECEIVED: &str = "memberlist.udp.received";
/// Counter: bytes written on TCP streams; recorded by the driver.
pub const TCP_SENT: &str = "memberlist.tcp.sent";
/// Counter: inbound TCP connections accepted; recorded by the driver.
pub const TCP_ACCEPT: &str = "memberlist.tcp.accept";
/// Counter: outbound TCP connections made for a push/pull; recorded by the
/// driver.
pub const TCP_CONNECT: &str = "memberlist.tcp.connect";

/// headcount only. Counter: packets dropped whole (bad label, CRC,
/// framing, decryption) or from a source outside the allow-list.
pub const HC_PACKETS_DROPPED: &str = "headcount.packets.dropped";
/// headcount only. Counter: messages in packets that could not be decoded
/// or were of an unknown type.
pub const HC_MESSAGES_MALFORMED: &str = "headcount.messages.malformed";
/// headcount only. Histogram: messages waiting in the inbound queue when a
/// burst of packets had been taken in.
pub const HC_INBOUND_DEPTH: &str = "headcount.inbound.depth";
/// headcount only. Counter: push/pulls started to reconnect with a failed
/// member.
pub const HC_RECONNECT_ATTEMPTS: &str = "headcount.reconnect.attempts";
/// headcount only. Counter: probes that ended without any ack.
pub const HC_PROBES_FAILED: &str = "headcount.probes.failed";

/// headcount only. Counter: UDP sends that failed; recorded by the driver.
pub const HC_UDP_SEND_ERRORS: &str = "headcount.udp.send_errors";
/// headcount only. Counter: inbound connections closed at once (outside
/// the allow-list, or too many waiting); recorded by the driver.
pub const HC_TCP_REFUSED: &str = "headcount.tcp.refused";
/// headcount only. Counter: streams we dialed that failed; recorded by the
/// driver.
pub const HC_TCP_DIAL_FAILURES: &str = "headcount.tcp.dial_failures";

#[cfg(feature = "metrics")]
mod handles {
    use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, Label};

    /// Every handle the core records into, registered once.
    pub(super) struct Handles {
        pub msg_alive: Counter,
        pub msg_suspect: Counter,
        pub msg_dead: Counter,
        pub degraded_probe: Counter,
        pub degraded_timeout: Counter,
        pub health_score: Gauge,
        /// alive, suspect, dead, left.
        pub node_instances: [Gauge; 4],
        pub size_local: Gauge,
        pub probe_node: Histogram,
        pub push_pull_node: Histogram,
        pub packets_dropped: Counter,
        pub messages_malformed: Counter,
        pub inbound_depth: Histogram,
        pub reconnect_attempts: Counter,
        pub probes_failed: Counter,
    }

    /// Help texts and units for exporters (`# HELP` lines), from the
    /// constants' documentation. Cheap, and harmless to repeat per node.
    fn describe() {
        use super::*;
        use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_counter!(MSG_ALIVE, Unit::Count, "alive messages applied");
        describe_counter!(MSG_SUSPECT, Unit::Count, "suspect messages applied");
        describe_counter!(MSG_DEAD, Unit::Count, "dead messages applied");
        describe_counter!(
            DEGRADED_PROBE,
            Unit::Count,
            "probes with an interval stretched by the health score"
        );
        describe_counter!(
            DEGRADED_TIMEOUT,
            Unit::Count,
            "suspicions timed out with fewer confirmations than expected"
        );
        describe_gauge!(
            HEALTH_SCORE,
            Unit::Count,
            "local health (awareness) score, 0 is healthy"
        );
        describe_gauge!(
            NODE_INSTANCES,
            Unit::Count,
            "members by state, as of the last push/pull sent"
        );
        describe_gauge!(
            SIZE_LOCAL,
            Unit::Bytes,
            "bytes of the local state sent in the last push/pull"
        );
        describe_histogram!(
            SIZE_REMOTE,
            Unit::Bytes,
            "bytes of encrypted stream messages read"
        );
        describe_histogram!(PROBE_NODE, Unit::Milliseconds, "duration of a probe");
        describe_histogram!(
            PUSH_PULL_NODE,
            Unit::Milliseconds,
            "duration of a push/pull we started"
        );
        describe_histogram!(GOSSIP, Unit::Milliseconds, "duration of a gossip round");
        describe_histogram!(
            QUEUE_BROADCASTS,
            Unit::Count,
            "broadcasts queued, sampled periodically"
        );
        describe_counter!(UDP_SENT, Unit::Bytes, "bytes of UDP packets sent");
        describe_counter!(UDP_RECEIVED, Unit::Bytes, "bytes of UDP packets received");
        describe_counter!(TCP_SENT, Unit::Bytes, "bytes written on TCP streams");
        describe_counter!(TCP_ACCEPT, Unit::Count, "inbound TCP connections accepted");
        describe_counter!(
            TCP_CONNECT,
            Unit::Count,
            "TCP connections made for push/pulls"
        );
        describe_counter!(HC_PACKETS_DROPPED, Unit::Count, "packets dropped whole");
        describe_counter!(
            HC_MESSAGES_MALFORMED,
            Unit::Count,
            "malformed or unknown messages in packets"
        );
        describe_histogram!(
            HC_INBOUND_DEPTH,
            Unit::Count,
            "messages in the inbound queue after a burst of packets"
        );
        describe_counter!(
            HC_RECONNECT_ATTEMPTS,
            Unit::Count,
            "push/pulls started to reconnect with a failed member"
        );
        describe_counter!(
            HC_PROBES_FAILED,
            Unit::Count,
            "probes that ended without any ack"
        );
        describe_counter!(HC_UDP_SEND_ERRORS, Unit::Count, "UDP sends that failed");
        describe_counter!(
            HC_TCP_REFUSED,
            Unit::Count,
            "inbound connections closed at once"
        );
        describe_counter!(
            HC_TCP_DIAL_FAILURES,
            Unit::Count,
            "streams we dialed that failed"
        );
    }

    impl Handles {
        pub(super) fn new(labels: &[(String, String)]) -> Self {
            describe();
            let l: Vec<Label> = labels
                .iter()
                .map(|(k, v)| Label::new(k.clone(), v.clone()))
                .collect();
            let state = |s: &'static str| {
                let mut l = l.clone();
                l.push(Label::new("node_state", s));
                gauge!(super::NODE_INSTANCES, l)
            };
            Handles {
                msg_alive: counter!(super::MSG_ALIVE, l.clone()),
                msg_suspect: counter!(super::MSG_SUSPECT, l.clone()),
                msg_dead: counter!(super::MSG_DEAD, l.clone()),
                degraded_probe: counter!(super::DEGRADED_PROBE, l.clone()),
                degraded_timeout: counter!(super::DEGRADED_TIMEOUT, l.clone()),
                health_score: gauge!(super::HEALTH_SCORE, l.clone()),
                node_instances: [
                    state("alive"),
                    state("suspect"),
                    state("dead"),
                    state("left"),
                ],
                size_local: gauge!(super::SIZE_LOCAL, l.clone()),
                probe_node: histogram!(super::PROBE_NODE, l.clone()),
                push_pull_node: histogram!(super::PUSH_PULL_NODE, l.clone()),
                packets_dropped: counter!(super::HC_PACKETS_DROPPED, l.clone()),
                messages_malformed: counter!(super::HC_MESSAGES_MALFORMED, l.clone()),
                inbound_depth: histogram!(super::HC_INBOUND_DEPTH, l.clone()),
                reconnect_attempts: counter!(super::HC_RECONNECT_ATTEMPTS, l.clone()),
                probes_failed: counter!(super::HC_PROBES_FAILED, l),
            }
        }
    }
}

/// What the core records, each method a no-op without the `metrics`
/// feature. Boxed so that a node without a recorder pays one pointer.
pub(crate) struct NodeMetrics {
    #[cfg(feature = "metrics")]
    h: Box<handles::Handles>,
}

/// Milliseconds, as Go's `MeasureSince` records them.
#[cfg(feature = "metrics")]
fn millis(d: core::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(feature = "metrics")]
impl NodeMetrics {
    pub(crate) fn new(labels: &[(String, String)]) -> Self {
        NodeMetrics {
            h: Box::new(handles::Handles::new(labels)),
        }
    }
    #[inline]
    pub(crate) fn msg_alive(&self) {
        self.h.msg_alive.increment(1);
    }
    #[inline]
    pub(crate) fn msg_suspect(&self) {
        self.h.msg_suspect.increment(1);
    }
    #[inline]
    pub(crate) fn msg_dead(&self) {
        self.h.msg_dead.increment(1);
    }
    #[inline]
    pub(crate) fn degraded_probe(&self) {
        self.h.degraded_probe.increment(1);
    }
    #[inline]
    pub(crate) fn degraded_timeout(&self) {
        self.h.degraded_timeout.increment(1);
    }
    #[inline]
    pub(crate) fn health_score(&self, score: u32) {
        self.h.health_score.set(f64::from(score));
    }
    /// Members alive, suspect, dead and left (counted by `counts`).
    #[inline]
    pub(crate) fn node_instances(&self, counts: impl FnOnce() -> [usize; 4]) {
        for (g, n) in self.h.node_instances.iter().zip(counts()) {
            g.set(n as f64);
        }
    }
    #[inline]
    pub(crate) fn size_local(&self, bytes: usize) {
        self.h.size_local.set(bytes as f64);
    }
    #[inline]
    pub(crate) fn probe_node(&self, d: core::time::Duration) {
        self.h.probe_node.record(millis(d));
    }
    #[inline]
    pub(crate) fn push_pull_node(&self, d: core::time::Duration) {
        self.h.push_pull_node.record(millis(d));
    }
    #[inline]
    pub(crate) fn packets_dropped(&self, n: u64) {
        self.h.packets_dropped.increment(n);
    }
    #[inline]
    pub(crate) fn messages_malformed(&self, n: u64) {
        self.h.messages_malformed.increment(n);
    }
    #[inline]
    pub(crate) fn inbound_depth(&self, n: usize) {
        self.h.inbound_depth.record(n as f64);
    }
    #[inline]
    pub(crate) fn reconnect_attempt(&self) {
        self.h.reconnect_attempts.increment(1);
    }
    #[inline]
    pub(crate) fn probe_failed(&self) {
        self.h.probes_failed.increment(1);
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(clippy::unused_self)]
impl NodeMetrics {
    pub(crate) fn new(_labels: &[(String, String)]) -> Self {
        NodeMetrics {}
    }
    #[inline]
    pub(crate) fn msg_alive(&self) {}
    #[inline]
    pub(crate) fn msg_suspect(&self) {}
    #[inline]
    pub(crate) fn msg_dead(&self) {}
    #[inline]
    pub(crate) fn degraded_probe(&self) {}
    #[inline]
    pub(crate) fn degraded_timeout(&self) {}
    #[inline]
    pub(crate) fn health_score(&self, _score: u32) {}
    #[inline]
    pub(crate) fn node_instances(&self, _counts: impl FnOnce() -> [usize; 4]) {}
    #[inline]
    pub(crate) fn size_local(&self, _bytes: usize) {}
    #[inline]
    pub(crate) fn probe_node(&self, _d: core::time::Duration) {}
    #[inline]
    pub(crate) fn push_pull_node(&self, _d: core::time::Duration) {}
    #[inline]
    pub(crate) fn packets_dropped(&self, _n: u64) {}
    #[inline]
    pub(crate) fn messages_malformed(&self, _n: u64) {}
    #[inline]
    pub(crate) fn inbound_depth(&self, _n: usize) {}
    #[inline]
    pub(crate) fn reconnect_attempt(&self) {}
    #[inline]
    pub(crate) fn probe_failed(&self) {}
}
