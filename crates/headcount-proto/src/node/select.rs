//! Random choice of members: Go's `kRandomNodes` and the shuffle of the
//! probe order, drawing from the node's own seeded generator so every
//! choice depends only on the seed.

use std::net::SocketAddr;

use rand_core::RngCore;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::Node;
use crate::state::{Member, MemberTable};

impl Node {
    /// Up to `k` distinct random members not excluded, as (address, pMax).
    /// Go's `kRandomNodes`: an exhaustive shuffle for small tables, else
    /// up to 3n random draws.
    pub(super) fn k_random_members(
        &mut self,
        k: usize,
        exclude: impl Fn(&Member) -> bool,
    ) -> Vec<(SocketAddr, u8)> {
        k_random_members(&mut self.rng, &self.members, k, exclude)
    }
}

/// Up to `k` members not excluded, picked at random (Go `kRandomNodes`).
pub(super) fn k_random_members(
    rng: &mut Xoshiro256PlusPlus,
    members: &MemberTable,
    k: usize,
    exclude: impl Fn(&Member) -> bool,
) -> Vec<(SocketAddr, u8)> {
    let n = members.len();
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    if k == 0 || n == 0 {
        return Vec::new();
    }
    if n < k * 3 {
        let mut idx: Vec<usize> = (0..n).collect();
        shuffle(rng, &mut idx);
        for i in idx {
            if picked.len() >= k {
                break;
            }
            if !exclude(members.at(i).expect("in range")) {
                picked.push(i);
            }
        }
    } else {
        for _ in 0..3 * n {
            if picked.len() >= k {
                break;
            }
            let i = (rng.next_u64() % n as u64) as usize;
            if picked.contains(&i) || exclude(members.at(i).expect("in range")) {
                continue;
            }
            picked.push(i);
        }
    }
    picked
        .into_iter()
        .map(|i| {
            let m = members.at(i).expect("in range");
            (m.addr(), m.protocol_max())
        })
        .collect()
}

/// Fisher-Yates with our own generator, so results depend only on the seed.
pub(super) fn shuffle<T>(rng: &mut Xoshiro256PlusPlus, s: &mut [T]) {
    for i in (1..s.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        s.swap(i, j);
    }
}
