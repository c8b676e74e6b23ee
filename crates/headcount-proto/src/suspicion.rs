//! Suspicion timers with Lifeguard's confirmation-driven acceleration, and
//! the suspicion scaling formulas of memberlist (`util.go`). The other two
//! cluster-size formulas live with what they scale and are re-exported
//! here: [`retransmit_limit`] (the broadcast queue) and
//! [`push_pull_scale`] (push/pull).
//!
//! When a node is suspected, it is declared dead after a timeout that starts
//! long (`max`) and shrinks towards `min` as independent peers confirm the
//! suspicion. After `c` of the `k` expected confirmations the total timeout,
//! measured from when the suspicion started, is
//! `max − (ln(c + 1) / ln(k + 1)) × (max − min)`, floored to whole
//! milliseconds and never below `min`.
//!
//! Everything here is pure: a [`Suspicion`] only computes its deadline, the
//! caller owns the timer.

use core::time::Duration;

use crate::name::Name;
use crate::time::Instant;

pub use crate::broadcast::retransmit_limit;
pub use crate::node::push_pull::{push_pull_scale, PUSH_PULL_SCALE_THRESHOLD};

/// Converts a count of nanoseconds to a `Duration`, saturating.
fn duration_from_nanos_u128(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = nanos / NANOS_PER_SEC;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// The minimum suspicion timeout for a cluster of `n` known nodes:
/// `suspicion_mult × max(1, log10(max(1, n))) × interval`.
///
/// Computed as Go's `suspicionTimeout` does: the node scale is truncated to
/// thousandths before it multiplies the interval, so for `n = 50` and a 1 s
/// interval the factor is 1.698, not 1.69897…. Saturates at `Duration::MAX`.
pub fn suspicion_timeout(suspicion_mult: u32, n: usize, interval: Duration) -> Duration {
    let node_scale = (n.max(1) as f64).log10().max(1.0);
    // Truncation toward zero, like Go's float-to-Duration conversion; the
    // value is at least 1000 and at most ~19_300, so it fits.
    let scale_milli = (node_scale * 1000.0) as u128;
    let nanos = u128::from(suspicion_mult)
        .saturating_mul(scale_milli)
        .saturating_mul(interval.as_nanos())
        / 1000;
    duration_from_nanos_u128(nanos)
}

/// The total suspicion timeout after `confirmations` of `k` expected
/// independent confirmations, minus the `elapsed` time since the suspicion
/// started; zero once that time has passed (Go returns a negative duration
/// there, meaning "fire now").
///
/// Matches Go's `remainingSuspicionTime`: the timeout
/// `max − (ln(c + 1) / ln(k + 1)) × (max − min)` is computed in seconds as a
/// float, floored to whole milliseconds, and raised to `min` if below it.
/// With `k = 0` the fraction is undefined and the timeout is `min`.
pub fn remaining_suspicion_time(
    confirmations: u32,
    k: u32,
    elapsed: Duration,
    min: Duration,
    max: Duration,
) -> Duration {
    suspicion_total_timeout(confirmations, k, min, max).saturating_sub(elapsed)
}

/// The timeout measured from the start of the suspicion, before subtracting
/// the elapsed time: Go's `remainingSuspicionTime` with `elapsed = 0`.
fn suspicion_total_timeout(confirmations: u32, k: u32, min: Duration, max: Duration) -> Duration {
    let frac = (f64::from(confirmations) + 1.0).ln() / (f64::from(k) + 1.0).ln();
    let raw = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    let millis = (1000.0 * raw).floor();
    // Go compares a (possibly negative, possibly garbage for NaN) duration
    // with `min`; every such case ends at `min`.
    if !millis.is_finite() || millis < 0.0 {
        return min;
    }
    // `as` saturates for values beyond u64::MAX.
    Duration::from_millis(millis as u64).max(min)
}

/// The number of independent confirmations a new suspicion expects:
/// `suspicion_mult − 2`, or 0 when the other `n − 2` known nodes (everyone but
/// us and the suspect) could not supply that many. Also 0 when
/// `suspicion_mult < 2`.
pub fn suspicion_k(suspicion_mult: u32, n: usize) -> u32 {
    let k = suspicion_mult.saturating_sub(2);
    if (n as u64) < u64::from(k) + 2 {
        0
    } else {
        k
    }
}

/// The `(min, max)` suspicion timeouts for a cluster of `n` known nodes:
/// `min =` [`suspicion_timeout`]`(suspicion_mult, n, probe_interval)` and
/// `max = suspicion_max_timeout_mult × min` (saturating).
pub fn suspicion_bounds(
    suspicion_mult: u32,
    suspicion_max_timeout_mult: u32,
    n: usize,
    probe_interval: Duration,
) -> (Duration, Duration) {
    let min = suspicion_timeout(suspicion_mult, n, probe_interval);
    (min, min.saturating_mul(suspicion_max_timeout_mult))
}

/// The suspicion of one node: the accusers seen so far and when it times out.
///
/// The timer runs from `start`: to `start + max` while confirmations are
/// expected (`k ≥ 1`), to `start + min` otherwise. Each new independent
/// confirmation moves the deadline to `start +` the shortened timeout (see
/// the [module docs](self)); a deadline at or before the current time means
/// the suspect should be declared dead now.
///
/// ```
/// use core::time::Duration;
/// use headcount_proto::suspicion::Suspicion;
/// use headcount_proto::Instant;
///
/// let start = Instant::from_millis(1_000);
/// let (min, max) = (Duration::from_millis(500), Duration::from_secs(2));
/// let mut s = Suspicion::new("me", 3, min, max, start);
/// assert_eq!(s.deadline(), start + max);
/// assert!(!s.confirm("me")); // the original accuser does not count
/// assert!(s.confirm("foo"));
/// assert!(!s.confirm("foo")); // nor does a repeat
/// assert_eq!(s.deadline(), start + Duration::from_millis(1_250));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspicion {
    k: u32,
    min: Duration,
    max: Duration,
    start: Instant,
    /// The original accuser followed by each confirming node; at most
    /// `k + 1` entries, so a linear scan is cheap.
    /// Names rather than boxed strings: inline up to 23 bytes, so a
    /// suspicion allocates only its vector (in a storm of suspicions every
    /// node holds one per suspect).
    accusers: Vec<Name>,
}

impl Suspicion {
    /// A suspicion raised by `from` at `start`, expecting `k` independent
    /// confirmations to drive the timeout from `max` down to `min`.
    ///
    /// `from` itself is never counted as a confirmation, since our own
    /// suspicion can be gossiped back to us.
    pub fn new(from: &str, k: u32, min: Duration, max: Duration, start: Instant) -> Self {
        // Room for the confirmations only when they come: most suspicions
        // are refuted or expire before the first.
        let accusers = vec![Name::new(from)];
        Suspicion {
            k,
            min,
            max,
            start,
            accusers,
        }
    }

    /// Records that `from` also suspects the node. Returns `true` if this is
    /// new information: `from` is neither the original accuser nor a repeat,
    /// and fewer than `k` confirmations had been seen. Only then does the
    /// deadline move (and should the suspicion be gossiped again).
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.confirmations() >= self.k {
            return false;
        }
        if self.accusers.iter().any(|a| **a == *from) {
            return false;
        }
        self.accusers.push(Name::new(from));
        true
    }

    /// The number of independent confirmations seen so far (at most `k`).
    pub fn confirmations(&self) -> u32 {
        // Bounded by k + 1 entries, so this fits.
        (self.accusers.len() - 1) as u32
    }

    /// The node that raised the suspicion we first heard of.
    pub fn accuser(&self) -> &str {
        &self.accusers[0]
    }

    /// The number of confirmations expected.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// When the suspicion started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The total timeout, from [`start`](Self::start), given the
    /// confirmations so far.
    pub fn timeout(&self) -> Duration {
        if self.k < 1 {
            self.min
        } else if self.confirmations() == 0 {
            // Go arms the timer with `max` itself, not with the formula's
            // millisecond-floored value.
            self.max
        } else {
            suspicion_total_timeout(self.confirmations(), self.k, self.min, self.max)
        }
    }

    /// When the suspect should be declared dead: `start + timeout()`.
    pub fn deadline(&self) -> Instant {
        self.start + self.timeout()
    }

    /// The time left at `now` before the deadline (zero once it passed).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.deadline() - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const SECS: fn(u64) -> Duration = Duration::from_secs;

    /// Go's `TestSuspicion_remainingSuspicionTime`; negative results are zero.
    #[test]
    fn remaining_go_table() {
        let cases: &[(u32, u32, Duration, Duration, Duration, Duration)] = &[
            (0, 3, Duration::ZERO, SECS(2), SECS(30), SECS(30)),
            (1, 3, SECS(2), SECS(2), SECS(30), SECS(14)),
            (2, 3, SECS(3), SECS(2), SECS(30), MS(4810)),
            (3, 3, SECS(4), SECS(2), SECS(30), Duration::ZERO), // Go: -2 s
            (4, 3, SECS(5), SECS(2), SECS(30), Duration::ZERO), // Go: -3 s
            (5, 3, SECS(10), SECS(2), SECS(30), Duration::ZERO), // Go: -8 s
        ];
        for (i, &(n, k, elapsed, min, max, want)) in cases.iter().enumerate() {
            assert_eq!(
                remaining_suspicion_time(n, k, elapsed, min, max),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn remaining_edge_cases() {
        // Over-confirmed: the formula goes below min, min wins.
        assert_eq!(
            remaining_suspicion_time(3, 3, Duration::ZERO, SECS(2), SECS(30)),
            SECS(2)
        );
        assert_eq!(
            remaining_suspicion_time(9, 3, SECS(1), SECS(2), SECS(30)),
            SECS(1)
        );
        // k = 0: NaN (0/0) or -inf in Go; both end at min.
        assert_eq!(
            remaining_suspicion_time(0, 0, Duration::ZERO, SECS(2), SECS(30)),
            SECS(2)
        );
        assert_eq!(
            remaining_suspicion_time(1, 0, Duration::ZERO, SECS(2), SECS(30)),
            SECS(2)
        );
        // Floored to whole milliseconds, but a sub-millisecond min survives.
        assert_eq!(
            remaining_suspicion_time(
                0,
                3,
                Duration::ZERO,
                Duration::from_micros(1500),
                Duration::from_micros(2500)
            ),
            MS(2)
        );
        assert_eq!(
            remaining_suspicion_time(
                3,
                3,
                Duration::ZERO,
                Duration::from_micros(1500),
                Duration::from_micros(2500)
            ),
            Duration::from_micros(1500)
        );
        // Never negative.
        assert_eq!(
            remaining_suspicion_time(0, 3, Duration::MAX, SECS(2), SECS(30)),
            Duration::ZERO
        );
    }

    /// Go's `TestSuspicion_Timer` cases (k = 3, min 500 ms, max 2 s):
    /// (expected confirmations, [(from, is new)], timeout from start).
    #[test]
    fn timer_go_table() {
        type Case = (u32, &'static [(&'static str, bool)], Duration);
        let cases: &[Case] = &[
            (0, &[], SECS(2)),
            (1, &[("me", false), ("foo", true)], MS(1250)),
            (
                1,
                &[("me", false), ("foo", true), ("foo", false), ("foo", false)],
                MS(1250),
            ),
            // Go's test says 810 ms within its 25 ms sleep tolerance; the
            // formula gives 2 − (ln 3 / ln 4) × 1.5 = 0.8113 s → 811 ms.
            (2, &[("me", false), ("foo", true), ("bar", true)], MS(811)),
            (
                3,
                &[("me", false), ("foo", true), ("bar", true), ("baz", true)],
                MS(500),
            ),
            (
                3,
                &[
                    ("me", false),
                    ("foo", true),
                    ("bar", true),
                    ("baz", true),
                    ("zoo", false),
                ],
                MS(500),
            ),
        ];
        let start = Instant::from_millis(77_000);
        for (i, &(count, confirms, want)) in cases.iter().enumerate() {
            let mut s = Suspicion::new("me", 3, MS(500), SECS(2), start);
            for &(from, new) in confirms {
                assert_eq!(s.confirm(from), new, "case {i}: confirm {from}");
            }
            assert_eq!(s.confirmations(), count, "case {i}");
            assert_eq!(s.timeout(), want, "case {i}");
            assert_eq!(s.deadline(), start + want, "case {i}");
            // A late confirmation changes nothing once k is reached, and
            // the accuser set stays bounded by k + 1.
            s.confirm("late");
            assert!(s.accusers.len() <= 4, "case {i}");
        }
    }

    /// Go's `TestSuspicion_Timer_ZeroK`: no confirmations expected, min.
    #[test]
    fn zero_k_uses_min_and_rejects_confirmations() {
        let start = Instant::from_millis(5);
        let mut s = Suspicion::new("me", 0, MS(25), SECS(30), start);
        assert_eq!(s.deadline(), start + MS(25));
        assert!(!s.confirm("foo"));
        assert_eq!(s.confirmations(), 0);
        assert_eq!(s.deadline(), start + MS(25));
    }

    /// Go's `TestSuspicion_Timer_Immediate`: a confirmation whose shortened
    /// timeout has already elapsed puts the deadline in the past.
    #[test]
    fn confirmation_can_expire_immediately() {
        let start = Instant::from_millis(0);
        let mut s = Suspicion::new("me", 1, MS(100), SECS(30), start);
        let now = start + MS(200);
        assert!(s.remaining(now) > Duration::ZERO);
        assert!(s.confirm("foo"));
        assert_eq!(s.deadline(), start + MS(100));
        assert!(s.deadline() <= now);
        assert_eq!(s.remaining(now), Duration::ZERO);
        assert_eq!(s.accuser(), "me");
        assert_eq!(s.k(), 1);
        assert_eq!(s.start(), start);
    }

    /// Go's `TestSuspicionTimeout`: `suspicion_timeout(3, n, 1 s) / 3`.
    #[test]
    fn suspicion_timeout_go_table() {
        let cases: &[(usize, u64)] = &[
            (5, 1000),
            (10, 1000),
            (50, 1698),
            (100, 2000),
            (500, 2698),
            (1000, 3000),
        ];
        for &(n, want_ms) in cases {
            assert_eq!(suspicion_timeout(3, n, SECS(1)) / 3, MS(want_ms), "n = {n}");
        }
        assert_eq!(suspicion_timeout(4, 0, SECS(1)), SECS(4));
        assert_eq!(suspicion_timeout(4, 1, MS(200)), MS(800));
        // Truncation to thousandths of the node scale, not of the result.
        assert_eq!(suspicion_timeout(6, 50, SECS(5)), MS(6 * 1698 * 5));
        assert_eq!(
            suspicion_timeout(u32::MAX, usize::MAX, Duration::MAX),
            Duration::MAX
        );
    }

    /// Values printed by Go's `suspicionTimeout(1, n, time.Second)`; the
    /// whole range 1..=300_000 was compared with Go 1.x during development
    /// and matched to the nanosecond.
    #[test]
    fn suspicion_timeout_matches_go_output() {
        let cases: &[(usize, u64)] = &[
            (2, 1000),
            (3, 1000),
            (7, 1000),
            (11, 1041),
            (33, 1518),
            (64, 1806),
            (128, 2107),
            (250, 2397),
            (999, 2999),
            (1001, 3000),
            (4096, 3612),
            (12345, 4091),
            (65536, 4816),
            (99999, 4999),
            (100001, 5000),
            (262144, 5418),
        ];
        for &(n, want_ms) in cases {
            assert_eq!(suspicion_timeout(1, n, SECS(1)), MS(want_ms), "n = {n}");
        }
    }

    /// Values printed by Go's `remainingSuspicionTime(c, k, 0, min, max)`
    /// (in ms): (c, k, min, max, result).
    #[test]
    fn remaining_matches_go_output() {
        let cases: &[(u32, u32, u64, u64, u64)] = &[
            (0, 1, 4000, 24000, 24000),
            (1, 1, 1337, 9999, 1337),
            (1, 2, 2000, 30000, 12333),
            (2, 2, 6792, 40752, 6792),
            (1, 3, 500, 2000, 1250),
            (2, 3, 4000, 24000, 8150),
            (3, 3, 1337, 9999, 1337),
            (1, 4, 2000, 30000, 17941),
            (2, 4, 6792, 40752, 17570),
            (4, 4, 500, 2000, 500),
            (0, 5, 4000, 24000, 24000),
            (1, 5, 1337, 9999, 6648),
            (3, 5, 2000, 30000, 8336),
            (4, 5, 6792, 40752, 10247),
        ];
        for &(c, k, min, max, want) in cases {
            assert_eq!(
                remaining_suspicion_time(c, k, Duration::ZERO, MS(min), MS(max)),
                MS(want),
                "c {c}, k {k}, min {min}, max {max}"
            );
        }
    }

    /// Powers of ten must give exact integral scales, as in Go.
    #[test]
    fn suspicion_timeout_powers_of_ten() {
        let mut n = 10usize;
        let mut digits = 1u32;
        while let Some(next) = n.checked_mul(10) {
            assert_eq!(
                suspicion_timeout(1, n, SECS(1)),
                SECS(u64::from(digits)),
                "n = {n}"
            );
            if n >= 1000 {
                // 1000 × log10(n + 1) is just above an integer.
                assert_eq!(
                    suspicion_timeout(1, n + 1, SECS(1)),
                    SECS(u64::from(digits)),
                    "n = {}",
                    n + 1
                );
            }
            n = next;
            digits += 1;
        }
    }

    #[test]
    fn k_and_bounds() {
        // (suspicion_mult, n, k)
        let cases: &[(u32, usize, u32)] = &[
            (4, 0, 0),
            (4, 3, 0),
            (4, 4, 2),
            (6, 5, 0),
            (6, 6, 4),
            (4, 100, 2),
            (3, 2, 0),
            (3, 3, 1),
            (2, 100, 0),
            (1, 100, 0),
            (0, 0, 0),
        ];
        for &(mult, n, want) in cases {
            assert_eq!(suspicion_k(mult, n), want, "mult {mult}, n {n}");
        }
        // LAN preset: SuspicionMult 4, SuspicionMaxTimeoutMult 6, 1 s probes.
        assert_eq!(suspicion_bounds(4, 6, 3, SECS(1)), (SECS(4), SECS(24)));
        assert_eq!(
            suspicion_bounds(4, 6, 50, SECS(1)),
            (MS(4 * 1698), MS(6 * 4 * 1698))
        );
    }
}
