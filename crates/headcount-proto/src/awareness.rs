//! Lifeguard's local health multiplier ("awareness").
//!
//! A node that is slow to process messages (an overloaded CPU, a stalled
//! network stack) tends to accuse healthy peers. Lifeguard keeps a local
//! health score: it rises when our probes fail without helpers nacking and when
//! we have to refute accusations about ourselves, and falls on every
//! successful probe. The score stretches our probe interval and probe
//! deadline, so an unhealthy node slows down instead of spreading false
//! suspicions.

use core::time::Duration;

/// The local health score, kept in `[0, max - 1]`; 0 is perfectly healthy.
///
/// ```
/// use core::time::Duration;
/// use headcount_proto::awareness::Awareness;
///
/// let mut a = Awareness::new(8);
/// assert_eq!(a.apply_delta(3), Some(3));
/// assert_eq!(a.scale_timeout(Duration::from_secs(1)), Duration::from_secs(4));
/// assert_eq!(a.apply_delta(-10), Some(0));
/// assert_eq!(a.apply_delta(-1), None); // already at the floor
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy score (0) whose ceiling is `max - 1`.
    ///
    /// `max` is `AwarenessMaxMultiplier` (8 in every preset). A `max` of 0 is
    /// treated as 1, which pins the score at 0 and disables the feature.
    pub fn new(max: u32) -> Self {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// The exclusive upper bound of the score.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The current score: 0 is healthy, `max - 1` is the worst.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Adds `delta` to the score, clamped to `[0, max - 1]`.
    ///
    /// Returns the new score if it changed, `None` if the score was already
    /// railed at the bound the delta pushes towards (or `delta` is 0).
    pub fn apply_delta(&mut self, delta: i32) -> Option<u32> {
        let ceiling = i64::from(self.max - 1);
        let next = (i64::from(self.score) + i64::from(delta)).clamp(0, ceiling);
        // `next` lies in [0, max - 1], which fits in u32.
        let next = next as u32;
        if next == self.score {
            None
        } else {
            self.score = next;
            Some(next)
        }
    }

    /// `d × (score + 1)`, saturating at `Duration::MAX`.
    pub fn scale_timeout(&self, d: Duration) -> Duration {
        d.saturating_mul(self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `TestAwareness` table: (delta, score, scaled 1 s timeout).
    #[test]
    fn go_table() {
        let cases: &[(i32, u32, u64)] = &[
            (0, 0, 1),
            (-1, 0, 1),
            (-10, 0, 1),
            (1, 1, 2),
            (-1, 0, 1),
            (10, 7, 8),
            (-1, 6, 7),
            (-1, 5, 6),
            (-1, 4, 5),
            (-1, 3, 4),
            (-1, 2, 3),
            (-1, 1, 2),
            (-1, 0, 1),
            (-1, 0, 1),
        ];
        let mut a = Awareness::new(8);
        for (i, &(delta, score, secs)) in cases.iter().enumerate() {
            let before = a.score();
            let changed = a.apply_delta(delta);
            assert_eq!(a.score(), score, "case {i}");
            assert_eq!(
                changed,
                (before != score).then_some(score),
                "case {i}: change report"
            );
            assert_eq!(
                a.scale_timeout(Duration::from_secs(1)),
                Duration::from_secs(secs),
                "case {i}"
            );
        }
    }

    #[test]
    fn extreme_deltas_and_degenerate_max() {
        let mut a = Awareness::new(8);
        assert_eq!(a.apply_delta(i32::MAX), Some(7));
        assert_eq!(a.apply_delta(i32::MAX), None);
        assert_eq!(a.apply_delta(i32::MIN), Some(0));
        assert_eq!(a.apply_delta(0), None);

        let mut off = Awareness::new(0);
        assert_eq!(off.max(), 1);
        assert_eq!(off.apply_delta(5), None);
        assert_eq!(off.score(), 0);
        assert_eq!(
            off.scale_timeout(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn scale_saturates() {
        let mut a = Awareness::new(8);
        a.apply_delta(7);
        assert_eq!(a.scale_timeout(Duration::MAX), Duration::MAX);
    }
}
