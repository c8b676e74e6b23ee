//! The metrics the driver records: the ones Go memberlist records around
//! its network I/O (`memberlist.udp.*`, `memberlist.tcp.*`,
//! `memberlist.size.remote`), the real duration of a gossip round
//! (`memberlist.gossip`) and the broadcast queue's length
//! (`memberlist.queue.broadcasts`), plus headcount's own I/O counters
//! (`headcount.*`). The protocol core records the rest
//! ([`headcount_proto::metrics`]). Every method is a no-op without the
//! `metrics` feature.

#[cfg(feature = "metrics")]
mod imp {
    use headcount_proto::metrics as names;
    use metrics::{counter, histogram, Counter, Histogram, Label};

    /// The driver's handles, registered once when the node starts.
    pub(crate) struct ShellMetrics {
        udp_sent: Counter,
        udp_received: Counter,
        tcp_sent: Counter,
        tcp_accept: Counter,
        tcp_connect: Counter,
        size_remote: Histogram,
        gossip: Histogram,
        queue_broadcasts: Histogram,
        udp_send_errors: Counter,
        tcp_refused: Counter,
        tcp_dial_failures: Counter,
    }

    impl ShellMetrics {
        pub(crate) fn new(labels: &[(String, String)]) -> Self {
            let l: Vec<Label> = labels
                .iter()
                .map(|(k, v)| Label::new(k.clone(), v.clone()))
                .collect();
            ShellMetrics {
                udp_sent: counter!(names::UDP_SENT, l.clone()),
                udp_received: counter!(names::UDP_RECEIVED, l.clone()),
                tcp_sent: counter!(names::TCP_SENT, l.clone()),
                tcp_accept: counter!(names::TCP_ACCEPT, l.clone()),
                tcp_connect: counter!(names::TCP_CONNECT, l.clone()),
                size_remote: histogram!(names::SIZE_REMOTE, l.clone()),
                gossip: histogram!(names::GOSSIP, l.clone()),
                queue_broadcasts: histogram!(names::QUEUE_BROADCASTS, l.clone()),
                udp_send_errors: counter!(names::HC_UDP_SEND_ERRORS, l.clone()),
                tcp_refused: counter!(names::HC_TCP_REFUSED, l.clone()),
                tcp_dial_failures: counter!(names::HC_TCP_DIAL_FAILURES, l),
            }
        }
        pub(crate) fn udp_sent(&self, bytes: usize) {
            self.udp_sent.increment(bytes as u64);
        }
        pub(crate) fn udp_received(&self, bytes: usize) {
            self.udp_received.increment(bytes as u64);
        }
        pub(crate) fn tcp_sent(&self, bytes: usize) {
            self.tcp_sent.increment(bytes as u64);
        }
        pub(crate) fn tcp_accept(&self) {
            self.tcp_accept.increment(1);
        }
        pub(crate) fn tcp_connect(&self) {
            self.tcp_connect.increment(1);
        }
        pub(crate) fn size_remote(&self, bytes: u32) {
            self.size_remote.record(f64::from(bytes));
        }
        pub(crate) fn gossip(&self, d: std::time::Duration) {
            self.gossip.record(d.as_secs_f64() * 1000.0);
        }
        pub(crate) fn queue_broadcasts(&self, n: usize) {
            self.queue_broadcasts.record(n as f64);
        }
        pub(crate) fn udp_send_error(&self) {
            self.udp_send_errors.increment(1);
        }
        pub(crate) fn tcp_refused(&self) {
            self.tcp_refused.increment(1);
        }
        pub(crate) fn tcp_dial_failure(&self) {
            self.tcp_dial_failures.increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    /// Without the `metrics` feature: nothing.
    pub(crate) struct ShellMetrics;

    #[allow(clippy::unused_self)]
    impl ShellMetrics {
        pub(crate) fn new(_labels: &[(String, String)]) -> Self {
            ShellMetrics
        }
        pub(crate) fn udp_sent(&self, _bytes: usize) {}
        pub(crate) fn udp_received(&self, _bytes: usize) {}
        pub(crate) fn tcp_sent(&self, _bytes: usize) {}
        pub(crate) fn tcp_accept(&self) {}
        pub(crate) fn tcp_connect(&self) {}
        pub(crate) fn size_remote(&self, _bytes: u32) {}
        pub(crate) fn queue_broadcasts(&self, _n: usize) {}
        pub(crate) fn udp_send_error(&self) {}
        pub(crate) fn tcp_refused(&self) {}
        pub(crate) fn tcp_dial_failure(&self) {}
    }
}

pub(crate) use imp::ShellMetrics;

/// The length field of an encrypted stream message at the start of `buf`
/// (after an optional label header), which Go samples into
/// `memberlist.size.remote` when it decrypts a stream; `None` for a plain
/// message.
pub(crate) fn encrypted_len(buf: &[u8]) -> Option<u32> {
    use headcount_proto::wire::MessageType;
    let mut pos = 0;
    if buf.first() == Some(&(MessageType::HasLabel as u8)) {
        pos = 2 + usize::from(*buf.get(1)?);
    }
    if buf.get(pos) != Some(&(MessageType::Encrypt as u8)) {
        return None;
    }
    let len = buf.get(pos + 1..pos + 5)?;
    Some(u32::from_be_bytes([len[0], len[1], len[2], len[3]]))
}
