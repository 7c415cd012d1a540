//! Reconnect delays: the first retry is immediate, then capped exponential backoff with jitter,
//! and a connection that stayed healthy long enough starts the sequence over.
//!
//! Immediate first retry matters because most losses are one-off (a terminated backend, a
//! restarted server): every millisecond disconnected is a millisecond in which cancels are missed.
//! The cap and the jitter matter when the server stays away: many replicas must not hammer it in
//! lock step, nor fill the logs (graphile-worker #224).

use std::time::Duration;

/// Reconnect delay policy.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    // What each field means is on its setter (`accessors!` below).
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    reset_after: Duration,
}

crate::accessors::accessors!(Backoff {
    /// The delay before the second retry; it doubles (times `multiplier`) with each further one.
    initial, get_initial: Duration;
    /// No delay exceeds this.
    max, get_max: Duration;
    /// Growth factor between consecutive delays (at least 1).
    multiplier, get_multiplier: f64;
    /// Fraction of each delay that is randomised away, in `0.0..=1.0`: with 0.5 a nominal 4 s
    /// delay becomes anything from 2 s to 4 s.
    jitter, get_jitter: f64;
    /// A connection that lived at least this long counts as healthy: the next loss starts again
    /// with an immediate retry.
    reset_after, get_reset_after: Duration;
});

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(30),
        }
    }
}

/// The running state of a [`Backoff`] policy: how many retries in a row have failed.
#[derive(Debug)]
pub(crate) struct BackoffState {
    policy: Backoff,
    failures: u32,
    rng: u64,
}

impl BackoffState {
    pub(crate) fn new(policy: Backoff) -> Self {
        // Per-process, per-listener seed: replicas started together must not jitter alike.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32)
            ^ (&policy as *const Backoff as u64);
        BackoffState { policy, failures: 0, rng: seed | 1 }
    }

    /// A connection was lost after living `lived` (zero if it never came up). Returns how long to
    /// wait before the next attempt.
    pub(crate) fn next_delay(&mut self, lived: Duration) -> Duration {
        if lived >= self.policy.reset_after {
            self.failures = 0;
        }
        let attempt = self.failures;
        self.failures = self.failures.saturating_add(1);
        if attempt == 0 {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(attempt - 1).unwrap_or(i32::MAX);
        let nominal = self.policy.initial.as_secs_f64() * self.policy.multiplier.max(1.0).powi(exponent);
        let capped = nominal.min(self.policy.max.as_secs_f64());
        let jitter = self.policy.jitter.clamp(0.0, 1.0) * self.next_unit();
        Duration::from_secs_f64(capped * (1.0 - jitter))
    }

    /// A uniform number in `[0, 1)` (xorshift64*: jitter needs spread, not cryptography).
    fn next_unit(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Backoff {
        Backoff { jitter: 0.0, ..Backoff::default() }
    }

    #[test]
    fn first_retry_is_immediate_then_doubles_up_to_the_cap() {
        let mut b = BackoffState::new(no_jitter());
        let delays: Vec<_> = (0..10).map(|_| b.next_delay(Duration::ZERO).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
    }

    #[test]
    fn a_healthy_connection_resets_the_sequence() {
        let mut b = BackoffState::new(no_jitter());
        for _ in 0..5 {
            b.next_delay(Duration::ZERO);
        }
        assert_eq!(b.next_delay(Duration::from_secs(29)), Duration::from_millis(1600));
        assert_eq!(b.next_delay(Duration::from_secs(30)), Duration::ZERO);
        assert_eq!(b.next_delay(Duration::ZERO), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_varies() {
        let mut b = BackoffState::new(Backoff { jitter: 0.5, ..Backoff::default() });
        for _ in 0..20 {
            b.next_delay(Duration::ZERO);
        }
        let delays: Vec<Duration> = (0..200).map(|_| b.next_delay(Duration::ZERO)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(5) && *d <= Duration::from_secs(10)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter is not random enough: {} distinct", distinct.len());
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = BackoffState::new(no_jitter());
        b.failures = u32::MAX - 1;
        assert_eq!(b.next_delay(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(b.next_delay(Duration::ZERO), Duration::from_secs(10));
    }
}
