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

use std::num::NonZeroI64;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::expiring::{Expiring, Record};
use crate::signal::Signal;
use crate::validate::RunUid;
use crate::wire::SignalKind;

/// The most signals remembered. Cancels are rare, so this is only reached by a flood (a benchmark,
/// a bulk cancel); then memory stays bounded and de-duplication becomes best effort for the
/// oldest entries — never a lost signal, at worst one handed on twice.
pub(crate) const MAX_SEEN: usize = 1 << 17;

/// What makes two signals the same cancel: the run (kind, uid, project) and the approval input
/// version it names. Zero values count as absent, as in protojson, which omits them: the same
/// cancel logged with version 0 and notified in protojson without one is one cancel.
/// (The project is shared, not copied, between a record and the lists of keys from the log.)
pub(crate) type Key = (SignalKind, RunUid, Option<Arc<str>>, Option<NonZeroI64>);

/// The key of `signal`.
pub(crate) fn key(signal: &Signal) -> Key {
    let (project, version) = signal.scope();
    (signal.kind, signal.uid, project.map(Arc::from), version)
}

/// One remembered signal (when it was last handed on is its stamp in the table).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Whether that copy came from the log, so its own notification may still arrive late.
    from_log: bool,
    /// Whether that copy was a cancel's first notification and no replay has returned its log
    /// row yet: the row tells its delivery lag (`crate::metrics`).
    untimed: bool,
}

impl Record for Entry {
    /// One record per key: a later hand-off of the same cancel (a notification appended without
    /// a lookup) replaces the earlier one.
    fn replaces(&self, _older: &Self) -> bool {
        true
    }

    /// A cancel sent again: not timed, as a replay by time may return the earlier send's row
    /// first, and one flag cannot tell the two rows apart. Sending a cancel again is rare. (If a
    /// flood forgets the earlier send's record before anyone looks, the second send's record
    /// stays timed, and a replay returning the first row first times it early: one sample of the
    /// lag histogram, in a flood; nothing is delivered twice or lost.)
    fn succeed(&mut self, _older: Self) {
        self.untimed = false;
    }
}

/// Keys handed on recently, each stamped with the instant of its latest hand-off.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// One record per key, stamped with the instant of its latest hand-off.
    entries: Expiring<Key, Entry, Instant>,
    /// Keys handed on from the log since the last heartbeat, and those of the heartbeat before:
    /// a late notification arrives before the next heartbeat's answer, so after two heartbeats a
    /// notification is a cancel sent again, not a late copy.
    from_log_recent: Vec<Key>,
    from_log_settling: Vec<Key>,
}

/// What [`Seen::offer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// Already handed on: not offered. A copy read from the log that is the first row returned
    /// for a cancel handed on as a notification carries when that notification was handed on.
    Duplicate(Option<Instant>),
    /// Offered, accepted, and remembered.
    Accepted,
    /// Offered and refused (a full queue): not remembered, so a replay can bring it back.
    Refused,
}

impl Seen {
    /// Decides whether a signal with `key` is new, offers it with `offer` (which says whether it
    /// was accepted) if it is, and remembers it as handed on at `at` if it was. A copy read from
    /// the log (`from_log`) is a duplicate if its cancel was handed on in any way; a notification
    /// only if the copy handed on came from the log (see the module docs). A notification while
    /// no copy from the log awaits its late notification needs no lookup at all: it is recorded
    /// and indexed later (the hot path of a flood).
    pub(crate) fn offer(
        &mut self,
        key: Key,
        at: Instant,
        from_log: bool,
        offer: impl FnOnce() -> bool,
    ) -> Offered {
        if !from_log && self.from_log_recent.is_empty() && self.from_log_settling.is_empty() {
            // No copy handed on from the log awaits its late notification, so this notification
            // is new or a cancel sent again: handed on either way, without a lookup. Its record is
            // indexed (and replaces an earlier send's) when a replay next looks.
            if !offer() {
                // Refused: an earlier send's record goes too (see below).
                if let Some(slot) = self.entries.find(&key, |_| true) {
                    self.entries.remove(slot);
                }
                return Offered::Refused;
            }
            self.entries.append(key, Entry { from_log: false, untimed: true }, at);
            self.trim();
            return Offered::Accepted;
        }
        match self.entries.find(&key, |_| true) {
            Some(slot) => {
                let entry = self.entries.get_mut(slot);
                if from_log {
                    let untimed = std::mem::take(&mut entry.untimed);
                    return Offered::Duplicate(untimed.then(|| self.entries.at(slot)));
                }
                if entry.from_log {
                    // The late notification of a copy just handed on from the log. A cancel
                    // sent again later is not mistaken for it.
                    entry.from_log = false;
                    return Offered::Duplicate(None);
                }
                // A cancel sent again: handed on again, remembered from now.
                if !offer() {
                    // Forgotten, so that its row in the log (replayed because of this refusal)
                    // is not taken for the copy handed on before.
                    self.entries.remove(slot);
                    return Offered::Refused;
                }
                let (key, entry) = self.entries.remove(slot);
                self.entries.append(key, Entry { untimed: false, ..entry }, at);
            }
            None => {
                if !offer() {
                    return Offered::Refused;
                }
                if from_log {
                    self.from_log_recent.push(key.clone());
                }
                self.entries.append(key, Entry { from_log, untimed: !from_log }, at);
            }
        }
        self.trim();
        Offered::Accepted
    }

    /// A flood: forgets the oldest. At worst a replay hands that one on a second time.
    fn trim(&mut self) {
        while self.entries.stampings() > MAX_SEEN {
            if self.entries.expire_oldest().is_none() {
                break;
            }
        }
    }

    /// Forgets the keys last handed on before `cutoff`.
    pub(crate) fn forget_before(&mut self, cutoff: Instant) {
        self.entries.expire_while(|at| at < cutoff);
    }

    /// After a heartbeat at `alive`: forgets what no replay can bring back any more (replays
    /// reach back `grace` before it, plus `margin` for the heartbeat's latency), and stops waiting
    /// for late notifications of what was replayed two heartbeats ago.
    pub(crate) fn alive_at(&mut self, alive: Instant, grace: Duration, margin: Duration) {
        for key in std::mem::take(&mut self.from_log_settling) {
            if let Some(slot) = self.entries.find(&key, |_| true) {
                self.entries.get_mut(slot).from_log = false;
            }
        }
        self.from_log_settling = std::mem::take(&mut self.from_log_recent);
        if let Some(cutoff) = alive.checked_sub(grace.saturating_add(margin)) {
            self.forget_before(cutoff);
        }
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(crate) fn len(&mut self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uid;

    /// Hands `key` on (the offer is accepted) unless it is a duplicate.
    fn hand(seen: &mut Seen, key: &Key, at: Instant, from_log: bool) -> Offered {
        seen.offer(key.clone(), at, from_log, || true)
    }

    /// Whether a copy of `key` read from the log would be a duplicate.
    fn replayed_is_duplicate(seen: &mut Seen, key: &Key) -> bool {
        matches!(seen.offer(key.clone(), Instant::now(), true, || false), Offered::Duplicate(_))
    }

    /// The key of a signal for run `n` of `kind`, without the optional fields.
    fn key_of(kind: SignalKind, n: i64) -> Key {
        key(&Signal::new(kind, uid(n)))
    }

    #[test]
    fn keys_tell_projects_and_versions_apart_and_treat_zero_as_absent() {
        let plain = Signal::new(SignalKind::PlanCheckRun, uid(7));
        let in_a = plain.clone().with_project("proj-a");
        let in_b = plain.clone().with_project("proj-b");
        assert_ne!(key(&in_a), key(&in_b), "the same uid in two projects: two runs");
        assert_ne!(key(&in_a), key(&plain));
        assert_ne!(key(&in_a.clone().with_approval_input_version(2)), key(&in_a));
        // protojson omits a version of 0 and an empty project: the logged row has them explicit.
        assert_eq!(key(&in_a.clone().with_approval_input_version(0)), key(&in_a));
        assert_eq!(key(&plain.clone().with_project("")), key(&plain));
    }

    #[test]
    fn a_replayed_copy_is_skipped_once_handed_on_either_way() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let k = key_of(SignalKind::TaskRun, 1);
        assert!(!replayed_is_duplicate(&mut seen, &k));
        hand(&mut seen, &k, t0, false);
        assert!(replayed_is_duplicate(&mut seen, &k), "a replayed row after its notification");
        assert!(
            !replayed_is_duplicate(&mut seen, &key_of(SignalKind::PlanCheckRun, 1)),
            "kinds are distinct"
        );
        seen.forget_before(t0 + Duration::from_secs(1));
        assert!(!replayed_is_duplicate(&mut seen, &k));
    }

    #[test]
    fn a_notification_is_skipped_only_after_a_copy_from_the_log() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let (replayed, notified) = (key_of(SignalKind::TaskRun, 1), key_of(SignalKind::TaskRun, 2));
        hand(&mut seen, &replayed, t0, true);
        hand(&mut seen, &notified, t0, false);
        assert_eq!(
            hand(&mut seen, &replayed, t0, false),
            Offered::Duplicate(None),
            "the late notification of a replayed cancel"
        );
        assert_eq!(
            hand(&mut seen, &replayed, t0, false),
            Offered::Accepted,
            "a cancel sent again after that"
        );
        assert_eq!(hand(&mut seen, &notified, t0, false), Offered::Accepted, "a cancel sent again");
        assert!(replayed_is_duplicate(&mut seen, &replayed) && replayed_is_duplicate(&mut seen, &notified));
    }

    #[test]
    fn the_first_row_read_for_a_first_notification_tells_when_it_was_handed_on_and_only_once() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let (notified, replayed) = (key_of(SignalKind::TaskRun, 1), key_of(SignalKind::TaskRun, 2));
        hand(&mut seen, &notified, t0, false);
        hand(&mut seen, &replayed, t0, true);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(hand(&mut seen, &notified, t1, true), Offered::Duplicate(Some(t0)));
        assert_eq!(hand(&mut seen, &notified, t1, true), Offered::Duplicate(None), "timed once");
        assert_eq!(hand(&mut seen, &replayed, t1, true), Offered::Duplicate(None), "timed as a replay");
        assert_eq!(hand(&mut seen, &replayed, t1, false), Offered::Duplicate(None), "its late notification");
        assert_eq!(hand(&mut seen, &notified, t1, false), Offered::Accepted, "sent again");
        assert_eq!(
            hand(&mut seen, &notified, t1, true),
            Offered::Duplicate(None),
            "a cancel sent again is not timed: its first row may come back first"
        );
    }

    #[test]
    fn a_flood_keeps_only_the_newest() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        for n in 1..=(MAX_SEEN as i64 + 5) {
            hand(&mut seen, &key_of(SignalKind::TaskRun, n), t0, false);
        }
        assert_eq!(seen.len(), MAX_SEEN);
        assert!(
            !replayed_is_duplicate(&mut seen, &key_of(SignalKind::TaskRun, 5))
                && replayed_is_duplicate(&mut seen, &key_of(SignalKind::TaskRun, 6))
        );
    }

    #[test]
    fn a_cancel_sent_again_is_remembered_from_its_latest_hand_off() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let k = key_of(SignalKind::TaskRun, 1);
        hand(&mut seen, &k, t0, false);
        hand(&mut seen, &k, t0 + Duration::from_secs(50), false);
        seen.forget_before(t0 + Duration::from_secs(10));
        assert!(replayed_is_duplicate(&mut seen, &k), "forgotten on the schedule of its first send");
        seen.forget_before(t0 + Duration::from_secs(51));
        assert!(!replayed_is_duplicate(&mut seen, &k));
    }

    #[test]
    fn a_replayed_copy_awaits_its_late_notification_for_two_heartbeats_only() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let (grace, margin) = (Duration::from_secs(60), Duration::from_secs(5));
        let (early, late) = (key_of(SignalKind::TaskRun, 1), key_of(SignalKind::TaskRun, 2));
        hand(&mut seen, &early, t0, true);
        seen.alive_at(t0, grace, margin);
        assert_eq!(
            hand(&mut seen, &early, t0, false),
            Offered::Duplicate(None),
            "a late notification right after the replay"
        );
        hand(&mut seen, &late, t0, true);
        seen.alive_at(t0, grace, margin);
        seen.alive_at(t0, grace, margin);
        assert_eq!(
            hand(&mut seen, &late, t0, false),
            Offered::Accepted,
            "two heartbeats later it is a cancel sent again"
        );
        assert!(replayed_is_duplicate(&mut seen, &late), "but a replayed copy is still a duplicate");
    }

    #[test]
    fn notifications_recorded_without_a_lookup_are_found_by_the_next_replay() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let (t1, t2) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
        let (once, twice) = (key_of(SignalKind::TaskRun, 1), key_of(SignalKind::TaskRun, 2));
        assert_eq!(hand(&mut seen, &once, t0, false), Offered::Accepted);
        assert_eq!(hand(&mut seen, &twice, t0, false), Offered::Accepted);
        assert_eq!(hand(&mut seen, &twice, t1, false), Offered::Accepted, "sent again");
        assert_eq!(seen.len(), 2, "a cancel sent again is one record");
        seen.forget_before(t0 + Duration::from_millis(500));
        assert_eq!(seen.len(), 1, "the first send's record is forgotten on its schedule");
        assert_eq!(hand(&mut seen, &twice, t2, true), Offered::Duplicate(None), "sent again: not timed");
        assert!(!replayed_is_duplicate(&mut seen, &once));
    }

    #[test]
    fn a_first_notification_recorded_without_a_lookup_is_timed_by_its_row() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let k = key_of(SignalKind::TaskRun, 1);
        hand(&mut seen, &k, t0, false);
        assert_eq!(hand(&mut seen, &k, t0 + Duration::from_secs(1), true), Offered::Duplicate(Some(t0)));
    }

    #[test]
    fn a_refused_offer_is_not_remembered() {
        let mut seen = Seen::default();
        let k = key_of(SignalKind::TaskRun, 1);
        assert_eq!(seen.offer(k.clone(), Instant::now(), false, || false), Offered::Refused);
        assert_eq!(seen.len(), 0);
        assert!(!replayed_is_duplicate(&mut seen, &k), "a replay brings it back");
    }

    #[test]
    fn a_refused_resend_is_forgotten_so_that_its_replayed_row_is_handed_on() {
        let mut seen = Seen::default();
        let k = key_of(SignalKind::TaskRun, 1);
        let t0 = Instant::now();
        assert_eq!(hand(&mut seen, &k, t0, false), Offered::Accepted);
        assert_eq!(seen.offer(k.clone(), t0, false, || false), Offered::Refused, "sent again, queue full");
        assert!(!replayed_is_duplicate(&mut seen, &k), "the re-sent cancel's row is handed on");
    }

    #[test]
    fn heartbeats_forget_only_what_replay_can_no_longer_return() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        for (i, n) in [1, 2, 3].into_iter().enumerate() {
            hand(&mut seen, &key_of(SignalKind::TaskRun, n), t0 + Duration::from_secs(10 * i as u64), false);
        }
        let (grace, margin) = (Duration::from_secs(60), Duration::from_secs(5));
        seen.alive_at(t0 + Duration::from_secs(60), grace, margin);
        assert_eq!(seen.len(), 3, "nothing is older than alive - grace - margin yet");
        seen.alive_at(t0 + Duration::from_secs(76), grace, margin);
        assert_eq!(seen.len(), 1, "keys at t0 and t0+10s are older than t0+11s");
        seen.alive_at(t0, Duration::MAX, margin); // a huge grace forgets nothing, and never panics
        assert_eq!(seen.len(), 1);
        assert!(replayed_is_duplicate(&mut seen, &key_of(SignalKind::TaskRun, 3)));
    }
}
