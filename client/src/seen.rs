//! Which signals the listener has already handed on, so that a replayed signal (or a notification
//! arriving after its replayed copy) is delivered once.
//!
//! The window is driven by the listener's liveness marks, not by a fixed age: after a successful
//! heartbeat at local instant `L`, the next replay starts at the server time of that heartbeat
//! minus the grace period, so only signals received after about `L - grace` can come back.
//! Entries older than that (minus a margin for the heartbeat's own latency) are forgotten. While
//! disconnected nothing is forgotten, however long the outage: the replay after reconnecting
//! still needs them.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::signal::Signal;
use crate::validate::RunUid;
use crate::wire::SignalKind;

/// What makes two signals the same cancel.
pub(crate) type Key = (SignalKind, RunUid);

/// The key of `signal`.
pub(crate) fn key(signal: &Signal) -> Key {
    (signal.kind, signal.uid)
}

/// Keys handed on recently, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    keys: HashSet<Key>,
    order: VecDeque<(Instant, Key)>,
}

impl Seen {
    /// Whether `key` was handed on within the window.
    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.keys.contains(key)
    }

    /// Records `key` as handed on at `at`; returns false if it already was.
    pub(crate) fn insert(&mut self, key: Key, at: Instant) -> bool {
        if !self.keys.insert(key) {
            return false;
        }
        self.order.push_back((at, key));
        true
    }

    /// Forgets the keys recorded before `cutoff`.
    pub(crate) fn forget_before(&mut self, cutoff: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&key);
        }
    }

    /// Forgets what no replay can bring back any more, after a heartbeat at `alive` with replays
    /// reaching back `grace` before it (and `margin` for the heartbeat's latency).
    pub(crate) fn alive_at(&mut self, alive: Instant, grace: Duration, margin: Duration) {
        if let Some(cutoff) = alive.checked_sub(grace + margin) {
            self.forget_before(cutoff);
        }
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uid;

    #[test]
    fn a_key_is_new_once_until_it_is_forgotten() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let k = (SignalKind::TaskRun, uid(1));
        assert!(seen.insert(k, t0));
        assert!(!seen.insert(k, t0 + Duration::from_secs(1)));
        assert!(seen.contains(&k));
        assert!(!seen.contains(&(SignalKind::PlanCheckRun, uid(1))), "kinds are distinct");
        seen.forget_before(t0 + Duration::from_secs(1));
        assert!(!seen.contains(&k));
        assert!(seen.insert(k, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn heartbeats_forget_only_what_replay_can_no_longer_return() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        for (i, n) in [1, 2, 3].into_iter().enumerate() {
            seen.insert((SignalKind::TaskRun, uid(n)), t0 + Duration::from_secs(10 * i as u64));
        }
        let (grace, margin) = (Duration::from_secs(60), Duration::from_secs(5));
        seen.alive_at(t0 + Duration::from_secs(60), grace, margin);
        assert_eq!(seen.len(), 3, "nothing is older than alive - grace - margin yet");
        seen.alive_at(t0 + Duration::from_secs(76), grace, margin);
        assert_eq!(seen.len(), 1, "keys at t0 and t0+10s are older than t0+11s");
        assert!(seen.contains(&(SignalKind::TaskRun, uid(3))));
    }
}
