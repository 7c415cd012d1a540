//! Whether the listener's connection delivers notifications at all.
//!
//! Through a transaction-pooling proxy (PgBouncer with `pool_mode = transaction`) LISTEN succeeds
//! and every query works, but the notifications go to whichever server connection ran LISTEN,
//! not to the listener. (A NOTIFY that happens to run on that very server connection does come
//! back, so each probe is [`PROBE_NOTIFICATIONS`] notifications, each in its own transaction, and
//! all must come back: a pool's luck does not pass for hearing.) So the listener sends itself a
//! probe: it LISTENs on a channel of its own and NOTIFYs it, after LISTEN and again at the first
//! heartbeat after each `ListenerConfig::probe_interval`. A session always receives its own
//! notifications, at commit; if the probe does not come back before its deadline, the listener
//! cannot hear. Two things say so at once: the server refusing the NOTIFY (a full queue), and a
//! replay reporting that its session does not LISTEN on the channel (the pool ran it elsewhere).
//! The decisions are here, without I/O.

use std::time::Duration;

use tokio::time::Instant;

/// Notifications per probe, each sent in its own transaction.
pub(crate) const PROBE_NOTIFICATIONS: usize = 3;

/// What a probe's outcome changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The first answer, or notifications arrive again.
    Hears,
    /// A probe did not come back: notifications do not arrive.
    Deaf,
}

/// The probe of one listener.
#[derive(Debug)]
pub(crate) struct Probe {
    channel: String,
    sent: u64,
    /// The payloads of the probe under way not back yet, and when it was sent.
    outstanding: Option<(Vec<String>, Instant)>,
    last_sent: Option<Instant>,
    hears: Option<bool>,
}

impl Probe {
    /// A probe on a channel of its own, named from `tag` (random per listener, so that no other
    /// listener receives it).
    pub(crate) fn new(tag: u64) -> Self {
        Probe {
            channel: format!("bytebase_signal_probe_{tag:016x}"),
            sent: 0,
            outstanding: None,
            last_sent: None,
            hears: None,
        }
    }

    /// The channel it LISTENs and NOTIFYs on.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether notifications arrive, as far as the last probe says (`None`: not probed yet).
    #[cfg(test)]
    pub(crate) fn hears(&self) -> Option<bool> {
        self.hears
    }

    /// Whether a probe is due at `now`, one `every` after the last.
    pub(crate) fn due(&self, now: Instant, every: Duration) -> bool {
        self.last_sent.is_none_or(|last| now.saturating_duration_since(last) >= every)
    }

    /// A probe sent at `now`: the payloads of its notifications.
    pub(crate) fn send(&mut self, now: Instant) -> Vec<String> {
        self.last_sent = Some(now);
        let payloads: Vec<String> = (0..PROBE_NOTIFICATIONS)
            .map(|_| {
                self.sent += 1;
                self.sent.to_string()
            })
            .collect();
        self.outstanding = Some((payloads.clone(), now));
        payloads
    }

    /// A notification on the probe's channel arrived with `payload`.
    pub(crate) fn arrived(&mut self, payload: &str) -> Option<Change> {
        let (awaited, _) = self.outstanding.as_mut()?;
        // An older probe's late copy, or someone else's NOTIFY on our channel: no verdict.
        let i = awaited.iter().position(|p| p == payload)?;
        awaited.swap_remove(i);
        if awaited.is_empty() {
            self.outstanding = None;
            return self.set(true);
        }
        None
    }

    /// Whether the probe outstanding is still awaited.
    pub(crate) fn awaited(&self) -> bool {
        self.outstanding.is_some()
    }

    /// The probe outstanding has waited `timeout` by `now`: if it is still missing, the listener is
    /// deaf. `None` if no probe is overdue; `Some` with what that changed (`None` inside: it was
    /// deaf already) if one is.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Option<Option<Change>> {
        match &self.outstanding {
            Some((_, sent)) if now.saturating_duration_since(*sent) >= timeout => {
                self.outstanding = None;
                Some(self.set(false))
            }
            _ => None,
        }
    }

    /// The server refused to send the probe (a full notification queue): nothing can arrive.
    pub(crate) fn refused(&mut self) -> Option<Change> {
        self.outstanding = None;
        self.set(false)
    }

    /// A statement ran on a session that does not LISTEN on the listener's channel (a
    /// transaction pool's other server connection): deaf, whatever a lucky probe said before.
    pub(crate) fn not_listening(&mut self) -> Option<Change> {
        self.set(false)
    }

    fn set(&mut self, hears: bool) -> Option<Change> {
        let before = self.hears.replace(hears);
        match (before, hears) {
            (Some(true), true) | (Some(false), false) => None,
            (_, true) => Some(Change::Hears),
            (_, false) => Some(Change::Deaf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_that_comes_back_means_the_listener_hears() {
        let mut p = Probe::new(0xab);
        assert_eq!(p.channel(), "bytebase_signal_probe_00000000000000ab");
        assert_eq!(p.hears(), None);
        let t0 = Instant::now();
        let payloads = p.send(t0);
        assert_eq!(payloads.len(), PROBE_NOTIFICATIONS);
        assert_eq!(p.arrived("someone else's"), None);
        assert_eq!(p.arrived(&payloads[1]), None, "not all back yet");
        assert_eq!(p.arrived(&payloads[0]), None);
        assert!(p.awaited());
        assert_eq!(p.arrived(&payloads[2]), Some(Change::Hears), "all back");
        assert_eq!(p.hears(), Some(true));
        assert_eq!(p.expire(t0 + Duration::from_secs(60), Duration::from_secs(5)), None, "answered already");
        let again = p.send(t0);
        assert!(again.iter().map(|a| p.arrived(a)).all(|c| c.is_none()), "no change: it heard before");
    }

    #[test]
    fn a_probe_missing_at_its_deadline_means_deaf_once_until_one_comes_back() {
        let mut p = Probe::new(1);
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        let first = p.send(t0);
        // Two of three came back (a pool's luck): not enough.
        p.arrived(&first[0]);
        p.arrived(&first[2]);
        assert_eq!(p.expire(t0 + Duration::from_secs(4), timeout), None, "not yet");
        assert_eq!(p.expire(t0 + timeout, timeout), Some(Some(Change::Deaf)));
        assert_eq!(p.hears(), Some(false));
        assert_eq!(p.arrived(&first[1]), None, "a late first probe is no verdict");
        p.send(t0);
        assert_eq!(p.expire(t0 + timeout, timeout), Some(None), "missing again, but nothing changed");
        let third = p.send(t0);
        let changes: Vec<_> = third.iter().filter_map(|a| p.arrived(a)).collect();
        assert_eq!(changes, [Change::Hears]);
    }

    #[test]
    fn a_refused_probe_or_a_session_not_listening_is_deaf_at_once() {
        let mut p = Probe::new(1);
        let t0 = Instant::now();
        let first = p.send(t0);
        assert_eq!(p.refused(), Some(Change::Deaf));
        assert!(!p.awaited(), "nothing more is awaited from a probe the server refused");
        assert_eq!(p.arrived(&first[0]), None);
        assert_eq!(p.not_listening(), None, "deaf already");
        let second = p.send(t0);
        let changes: Vec<_> = second.iter().filter_map(|a| p.arrived(a)).collect();
        assert_eq!(changes, [Change::Hears]);
        assert_eq!(p.not_listening(), Some(Change::Deaf));
    }

    #[test]
    fn a_probe_is_due_at_first_then_once_per_interval() {
        let mut p = Probe::new(1);
        let (t0, every) = (Instant::now(), Duration::from_secs(60));
        assert!(p.due(t0, every), "the first one at once");
        p.send(t0);
        assert!(!p.due(t0 + Duration::from_secs(59), every));
        assert!(p.due(t0 + every, every));
    }
}
