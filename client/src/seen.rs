//! Which signals the listener has already handed on, so that a replayed signal (or a notification
//! arriving after its replayed copy) is delivered once.
//!
//! Each entry remembers whether the copy handed on came from the log. A row read from the log is
//! skipped if its cancel was handed on in any way. A notification is skipped only if the copy
//! handed on came from the log (it is that copy's late notification); after a notification, a
//! second notification for the same run is a cancel sent again, and is handed on again.
//!
//! The window is driven by the listener's liveness marks, not by a fixed age: after a successful
//! heartbeat at local instant `L`, the next replay starts at the server time of that heartbeat
//! minus the grace period, so only signals received after about `L - grace` can come back.
//! Entries older than that (minus a margin for the heartbeat's own latency) are forgotten. While
//! disconnected nothing is forgotten, however long the outage: the replay after reconnecting
//! still needs them.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::signal::Signal;
use crate::validate::RunUid;
use crate::wire::SignalKind;

/// The most signals remembered. Cancels are rare, so this is only reached by a flood (a benchmark,
/// a bulk cancel); then memory stays bounded and de-duplication becomes best effort for the
/// oldest entries — never a lost signal, at worst one handed on twice.
pub(crate) const MAX_SEEN: usize = 1 << 17;

/// What makes two signals the same cancel.
pub(crate) type Key = (SignalKind, RunUid);

/// The key of `signal`.
pub(crate) fn key(signal: &Signal) -> Key {
    (signal.kind, signal.uid)
}

/// One remembered signal.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When it was last handed on (a cancel sent again moves it).
    at: Instant,
    /// Whether that copy came from the log, so its own notification may still arrive late.
    from_log: bool,
}

/// Keys handed on recently, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    entries: HashMap<Key, Entry>,
    /// Every (re)insertion in time order; an item whose instant no longer matches its entry's is
    /// stale and skipped when it reaches the front.
    order: VecDeque<(Instant, Key)>,
    /// Keys handed on from the log since the last heartbeat, and those of the heartbeat before:
    /// a late notification arrives before the next heartbeat's answer, so after two heartbeats a
    /// notification is a cancel sent again, not a late copy.
    from_log_recent: Vec<Key>,
    from_log_settling: Vec<Key>,
}

impl Seen {
    /// Whether a copy of `key` read from the log is a duplicate.
    pub(crate) fn has(&self, key: &Key) -> bool {
        self.entries.contains_key(key)
    }

    /// Whether a notification for `key` is a duplicate: the late notification of a copy that was
    /// just handed on from the log. It is then remembered as notified, so that a cancel sent
    /// again later is not mistaken for it.
    pub(crate) fn notified_again(&mut self, key: &Key) -> bool {
        match self.entries.get_mut(key) {
            Some(entry) if entry.from_log => {
                entry.from_log = false;
                true
            }
            _ => false,
        }
    }

    /// Records `key` as handed on at `at` (`from_log`: read from the log, not notified).
    pub(crate) fn insert(&mut self, key: Key, at: Instant, from_log: bool) {
        self.entries.insert(key, Entry { at, from_log });
        self.order.push_back((at, key));
        if from_log {
            self.from_log_recent.push(key);
        }
        // A flood: forget the oldest. At worst a replay hands that one on a second time.
        while self.entries.len() > MAX_SEEN || self.order.len() > 2 * MAX_SEEN {
            let Some((at, oldest)) = self.order.pop_front() else { break };
            if self.entries.get(&oldest).is_some_and(|e| e.at == at) {
                self.entries.remove(&oldest);
            }
        }
    }

    /// Forgets the keys last handed on before `cutoff`.
    pub(crate) fn forget_before(&mut self, cutoff: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|e| e.at == at) {
                self.entries.remove(&key);
            }
        }
    }

    /// After a heartbeat at `alive`: forgets what no replay can bring back any more (replays
    /// reach back `grace` before it, plus `margin` for the heartbeat's latency), and stops waiting
    /// for late notifications of what was replayed two heartbeats ago.
    pub(crate) fn alive_at(&mut self, alive: Instant, grace: Duration, margin: Duration) {
        for key in std::mem::take(&mut self.from_log_settling) {
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.from_log = false;
            }
        }
        self.from_log_settling = std::mem::take(&mut self.from_log_recent);
        if let Some(cutoff) = alive.checked_sub(grace.saturating_add(margin)) {
            self.forget_before(cutoff);
        }
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uid;

    #[test]
    fn a_replayed_copy_is_skipped_once_handed_on_either_way() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let k = (SignalKind::TaskRun, uid(1));
        assert!(!seen.has(&k));
        seen.insert(k, t0, false);
        assert!(seen.has(&k), "a replayed row after its notification");
        assert!(!seen.has(&(SignalKind::PlanCheckRun, uid(1))), "kinds are distinct");
        seen.forget_before(t0 + Duration::from_secs(1));
        assert!(!seen.has(&k));
    }

    #[test]
    fn a_notification_is_skipped_only_after_a_copy_from_the_log() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let (replayed, notified) = ((SignalKind::TaskRun, uid(1)), (SignalKind::TaskRun, uid(2)));
        seen.insert(replayed, t0, true);
        seen.insert(notified, t0, false);
        assert!(seen.notified_again(&replayed), "the late notification of a replayed cancel");
        assert!(!seen.notified_again(&replayed), "a cancel sent again after that");
        assert!(!seen.notified_again(&notified), "a cancel sent again");
        assert!(seen.has(&replayed) && seen.has(&notified));
    }

    #[test]
    fn a_flood_keeps_only_the_newest() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        for n in 1..=(MAX_SEEN as i64 + 5) {
            seen.insert((SignalKind::TaskRun, uid(n)), t0, false);
        }
        assert_eq!(seen.len(), MAX_SEEN);
        assert!(!seen.has(&(SignalKind::TaskRun, uid(5))) && seen.has(&(SignalKind::TaskRun, uid(6))));
    }

    #[test]
    fn a_cancel_sent_again_is_remembered_from_its_latest_hand_off() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let k = (SignalKind::TaskRun, uid(1));
        seen.insert(k, t0, false);
        seen.insert(k, t0 + Duration::from_secs(50), false);
        seen.forget_before(t0 + Duration::from_secs(10));
        assert!(seen.has(&k), "forgotten on the schedule of its first send");
        seen.forget_before(t0 + Duration::from_secs(51));
        assert!(!seen.has(&k));
    }

    #[test]
    fn a_replayed_copy_awaits_its_late_notification_for_two_heartbeats_only() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let (grace, margin) = (Duration::from_secs(60), Duration::from_secs(5));
        let k = (SignalKind::TaskRun, uid(1));
        seen.insert(k, t0, true);
        seen.alive_at(t0, grace, margin);
        assert!(seen.notified_again(&k), "a late notification right after the replay");
        seen.insert(k, t0, true);
        seen.alive_at(t0, grace, margin);
        seen.alive_at(t0, grace, margin);
        assert!(!seen.notified_again(&k), "two heartbeats later it is a cancel sent again");
        assert!(seen.has(&k), "but a replayed copy is still a duplicate");
    }

    #[test]
    fn heartbeats_forget_only_what_replay_can_no_longer_return() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        for (i, n) in [1, 2, 3].into_iter().enumerate() {
            seen.insert((SignalKind::TaskRun, uid(n)), t0 + Duration::from_secs(10 * i as u64), false);
        }
        let (grace, margin) = (Duration::from_secs(60), Duration::from_secs(5));
        seen.alive_at(t0 + Duration::from_secs(60), grace, margin);
        assert_eq!(seen.len(), 3, "nothing is older than alive - grace - margin yet");
        seen.alive_at(t0 + Duration::from_secs(76), grace, margin);
        assert_eq!(seen.len(), 1, "keys at t0 and t0+10s are older than t0+11s");
        seen.alive_at(t0, Duration::MAX, margin); // a huge grace forgets nothing, and never panics
        assert_eq!(seen.len(), 1);
        assert!(seen.has(&(SignalKind::TaskRun, uid(3))));
    }
}
