//! The virtual network: per-link latency, loss and partitions.
//!
//! Everything here is integer arithmetic driven by the simulator's one
//! seeded generator, so the same seed gives the same deliveries on any
//! machine (no `ln`, `exp` or other platform-dependent float functions).

use core::time::Duration;

use rand_core::RngCore;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// A network and protocol preset: which `headcount_proto::Config` preset the
/// nodes run, and how the links behave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// `lan`, `wan` or `local`.
    pub name: &'static str,
    /// Smallest one-way base latency of a link, in microseconds.
    pub base_lo_us: u64,
    /// Largest one-way base latency of a link, in microseconds.
    pub base_hi_us: u64,
    /// Mean of the per-packet jitter added to the base, in microseconds
    /// (triangular on `[0, 2 × mean]`).
    pub jitter_mean_us: u64,
    /// Packets per million that suffer an extra tail delay.
    pub tail_per_million: u64,
    /// Largest tail delay, in microseconds (uniform on `[0, tail_us]`).
    pub tail_us: u64,
}

impl Profile {
    /// A data-centre LAN: 0.1 to 0.5 ms per link, 50 µs jitter, one packet
    /// in a thousand delayed up to 5 ms. Nodes run `Config::lan()`.
    pub fn lan() -> Self {
        Profile {
            name: "lan",
            base_lo_us: 100,
            base_hi_us: 500,
            jitter_mean_us: 50,
            tail_per_million: 1_000,
            tail_us: 5_000,
        }
    }

    /// A wide-area network: 10 to 80 ms per link, 2 ms jitter, one packet
    /// in a hundred delayed up to 50 ms. Nodes run `Config::wan()`.
    pub fn wan() -> Self {
        Profile {
            name: "wan",
            base_lo_us: 10_000,
            base_hi_us: 80_000,
            jitter_mean_us: 2_000,
            tail_per_million: 10_000,
            tail_us: 50_000,
        }
    }

    /// Loopback: 20 to 60 µs, 10 µs jitter, no tail. Nodes run
    /// `Config::local()`.
    pub fn local() -> Self {
        Profile {
            name: "local",
            base_lo_us: 20,
            base_hi_us: 60,
            jitter_mean_us: 10,
            tail_per_million: 0,
            tail_us: 0,
        }
    }

    /// The preset called `name`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "lan" => Some(Self::lan()),
            "wan" => Some(Self::wan()),
            "local" => Some(Self::local()),
            _ => None,
        }
    }

    /// The protocol configuration that goes with this network.
    pub fn proto_config(&self) -> headcount_proto::Config {
        match self.name {
            "wan" => headcount_proto::Config::wan(),
            "local" => headcount_proto::Config::local(),
            _ => headcount_proto::Config::lan(),
        }
    }
}

/// Which direction of traffic a partition cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Cut {
    /// Nothing crosses between the side and the rest.
    Both,
    /// Traffic from the side to the rest is dropped; the other way passes.
    Outbound,
    /// Traffic from the rest to the side is dropped; the other way passes.
    Inbound,
}

/// A partition: a set of nodes (the "side") cut off from all others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Identifies the partition when it heals.
    pub id: u64,
    /// `side[i]` is whether node `i` is on the cut-off side; nodes beyond
    /// the end are not.
    pub side: Vec<bool>,
    /// Which direction is cut.
    pub cut: Cut,
}

impl Partition {
    /// Whether a packet from `from` to `to` is dropped by this partition.
    pub fn blocks(&self, from: usize, to: usize) -> bool {
        let a = self.side.get(from).copied().unwrap_or(false);
        let b = self.side.get(to).copied().unwrap_or(false);
        if a == b {
            return false;
        }
        match self.cut {
            Cut::Both => true,
            Cut::Outbound => a,
            Cut::Inbound => b,
        }
    }
}

/// The network state: profile, loss and active partitions.
#[derive(Clone, Debug)]
pub struct Network {
    profile: Profile,
    /// Loss probability scaled to `u64::MAX`.
    loss_threshold: u64,
    loss: f64,
    link_seed: u64,
    partitions: Vec<Partition>,
}

impl Network {
    /// A network with the given profile and packet-loss probability
    /// (0 to 1). `link_seed` fixes the per-link base latencies.
    pub fn new(profile: Profile, loss: f64, link_seed: u64) -> Self {
        let loss = loss.clamp(0.0, 1.0);
        // IEEE multiplication is exactly rounded, so this is the same on
        // every machine.
        let loss_threshold = if loss >= 1.0 {
            u64::MAX
        } else {
            (loss * 18_446_744_073_709_551_616.0) as u64
        };
        Network {
            profile,
            loss_threshold,
            loss,
            link_seed,
            partitions: Vec::new(),
        }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The packet-loss probability.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// Changes the packet-loss probability.
    pub fn set_loss(&mut self, loss: f64) {
        let p = self.profile.clone();
        *self = Network {
            partitions: core::mem::take(&mut self.partitions),
            ..Network::new(p, loss, self.link_seed)
        };
    }

    /// Starts a partition.
    pub fn add_partition(&mut self, p: Partition) {
        self.partitions.push(p);
    }

    /// Heals the partition `id`; returns whether it existed.
    pub fn heal(&mut self, id: u64) -> bool {
        let before = self.partitions.len();
        self.partitions.retain(|p| p.id != id);
        self.partitions.len() != before
    }

    /// Number of active partitions.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Whether any active partition drops traffic from `from` to `to`.
    pub fn blocked(&self, from: usize, to: usize) -> bool {
        self.partitions.iter().any(|p| p.blocks(from, to))
    }

    /// Draws whether one datagram is lost.
    pub fn lost(&self, rng: &mut Xoshiro256PlusPlus) -> bool {
        self.loss_threshold > 0 && rng.next_u64() < self.loss_threshold
    }

    /// The fixed base latency of the (undirected) link between `a` and `b`.
    pub fn base_latency_us(&self, a: usize, b: usize) -> u64 {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let h = splitmix64(self.link_seed ^ (lo << 32 | hi));
        let span = self.profile.base_hi_us - self.profile.base_lo_us + 1;
        self.profile.base_lo_us + h % span
    }

    /// Draws the one-way latency of one datagram or stream leg.
    pub fn latency(&self, rng: &mut Xoshiro256PlusPlus, from: usize, to: usize) -> Duration {
        let mut us = self.base_latency_us(from, to);
        let j = self.profile.jitter_mean_us;
        if j > 0 {
            us += rng.next_u64() % (j + 1) + rng.next_u64() % (j + 1);
        }
        if self.profile.tail_per_million > 0
            && rng.next_u64() % 1_000_000 < self.profile.tail_per_million
        {
            us += rng.next_u64() % (self.profile.tail_us + 1);
        }
        Duration::from_micros(us.max(1))
    }
}

/// SplitMix64: derives independent seeds from one.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn asymmetric_partition_blocks_one_way() {
        let p = Partition {
            id: 1,
            side: vec![true, false, false],
            cut: Cut::Outbound,
        };
        assert!(p.blocks(0, 1));
        assert!(!p.blocks(1, 0));
        assert!(!p.blocks(1, 2));
        let p = Partition {
            cut: Cut::Inbound,
            ..p
        };
        assert!(!p.blocks(0, 1));
        assert!(p.blocks(1, 0));
    }

    #[test]
    fn latency_within_profile() {
        let net = Network::new(Profile::lan(), 0.0, 7);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for i in 0..50 {
            let l = net.latency(&mut rng, i, i + 1).as_micros() as u64;
            assert!((100..=500 + 100 + 5_000).contains(&l), "{l}");
            assert_eq!(net.base_latency_us(i, i + 1), net.base_latency_us(i + 1, i));
        }
        assert!(!net.lost(&mut rng));
        let all = Network::new(Profile::lan(), 1.0, 7);
        assert!(all.lost(&mut rng));
    }
}
