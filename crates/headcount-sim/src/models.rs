//! Analytic expectations set beside the measured dissemination.
//!
//! Both are mean-field models of push gossip on a complete graph of `n`
//! nodes, one informed at round 0. Each round every *active* informed node
//! sends the rumour to `fanout` distinct random peers; each copy arrives
//! with probability `1 − loss`. A node not yet informed stays so with
//! probability `(1 − (1 − loss)/(n − 1))^(fanout × active)`.
//!
//! - [`swim_curve`]: memberlist's gossip as SWIM describes it, with the
//!   retransmit limit: a node passes a broadcast on
//!   `RetransmitMult × ceil(log10(n + 1))` times, i.e. for
//!   `ceil(limit / fanout)` rounds after it learnt it, then falls silent.
//!   Piggybacking on probes is ignored, so this is a slight
//!   underestimate of memberlist's speed.
//! - [`serf_curve`]: the model of Serf's convergence simulator as we read
//!   it: every informed node keeps gossiping each interval (no retransmit
//!   limit). It bounds the speed from above.
//!
//! [`swim_rounds_all`] is the classic closed form for push gossip to reach
//! everyone, `log_(1+f)(n) + ln(n)/f` rounds with `f = fanout × (1 − loss)`
//! (Pittel 1987, the basis of SWIM's `O(log n)` claim).
//!
//! Outputs are rounded to 1e-6 so that libm differences between machines
//! cannot change a report.

/// Fraction of nodes informed after each round, for at most `max_rounds`
/// rounds, under the SWIM model with retransmit limit `limit`.
pub fn swim_curve(n: usize, fanout: usize, loss: f64, limit: usize, max_rounds: usize) -> Vec<f64> {
    let active_rounds = limit.div_ceil(fanout.max(1)).max(1);
    curve(n, fanout, loss, Some(active_rounds), max_rounds)
}

/// Fraction of nodes informed after each round under Serf's model (every
/// informed node gossips forever).
pub fn serf_curve(n: usize, fanout: usize, loss: f64, max_rounds: usize) -> Vec<f64> {
    curve(n, fanout, loss, None, max_rounds)
}

fn curve(
    n: usize,
    fanout: usize,
    loss: f64,
    active_rounds: Option<usize>,
    max_rounds: usize,
) -> Vec<f64> {
    let nf = n as f64;
    if n <= 1 {
        return vec![1.0];
    }
    let p_miss_one = 1.0 - (1.0 - loss) / (nf - 1.0);
    // newly[r] = expected nodes informed in round r.
    let mut newly = vec![1.0f64];
    let mut informed = 1.0f64;
    let mut out = vec![round6(informed / nf)];
    for r in 1..=max_rounds {
        let active: f64 = match active_rounds {
            None => informed,
            Some(a) => newly[r.saturating_sub(a)..r].iter().sum(),
        };
        let p_stay = p_miss_one.powf(fanout as f64 * active);
        let gained = (nf - informed) * (1.0 - p_stay);
        informed += gained;
        newly.push(gained);
        out.push(round6(informed / nf));
        if nf - informed < 1e-3 || (active_rounds.is_some() && active < 1e-9) {
            break;
        }
    }
    out
}

/// First round at which `curve` reaches a share `q` of `n` nodes, if it
/// does. As in the measurements, `q` means `ceil(q × n)` nodes; the
/// expected count must come within half a node of it.
pub fn rounds_to(curve: &[f64], q: f64, n: usize) -> Option<usize> {
    let need = (q * n as f64).ceil().clamp(1.0, n as f64);
    let target = (need - 0.5) / n as f64;
    curve.iter().position(|&f| f >= target)
}

/// Rounds push gossip with `fanout` needs to reach all `n` nodes:
/// `log_(1+f)(n) + ln(n)/f`, `f = fanout × (1 − loss)`.
pub fn swim_rounds_all(n: usize, fanout: usize, loss: f64) -> f64 {
    let f = fanout as f64 * (1.0 - loss);
    if n <= 1 || f <= 0.0 {
        return 0.0;
    }
    let ln_n = (n as f64).ln();
    round6(ln_n / (1.0 + f).ln() + ln_n / f)
}

/// Rounds `x` to six decimals.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_grow_to_one() {
        let s = serf_curve(1000, 3, 0.0, 100);
        assert!(s.windows(2).all(|w| w[1] >= w[0]));
        assert!(*s.last().unwrap() > 0.999);
        let r50 = rounds_to(&s, 0.5, 1000).unwrap();
        assert!((4..=8).contains(&r50), "{r50}");
        let w = swim_curve(1000, 3, 0.0, 12, 100);
        assert!(rounds_to(&w, 0.5, 1000).unwrap() >= r50);
        let lossy = serf_curve(1000, 3, 0.5, 100);
        assert!(rounds_to(&lossy, 0.99, 1000) > rounds_to(&s, 0.99, 1000));
        assert!(swim_rounds_all(1000, 3, 0.0) > 5.0);
    }
}
