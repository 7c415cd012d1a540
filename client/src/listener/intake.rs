//! Where everything a listener receives goes: decoded, de-duplicated ([`CatchUp`]), handed to the
//! application's queue or straight into a registry, and counted. One `Intake` lives as long as
//! the listener, across its connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::Instant;
use tokio_postgres::Notification;
use tracing::warn;

use crate::listener::catch_up::{Arrival, CatchUp};
use crate::listener::log::{Logged, Unavailable};
use crate::listener::probe::{Change, Probe};
use crate::metrics::Via;
use crate::registry::{Dispatch, Registry};
use crate::seen::Offered;
use crate::signal::{shorten, Signal};
use crate::status::{Event, Shared};

/// Where signals go.
pub(crate) enum Sink {
    /// A bounded queue to the application's handler ([`super::Signals`]).
    Queue(mpsc::Sender<Signal>),
    /// Straight into a registry, in the reading task.
    Registry(Registry),
}

/// What became of a signal offered to the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handed {
    On,
    Duplicate,
    Dropped,
}

/// Where a signal read from the log stands in time: its row's age by the server's clock when the
/// replay started, and the local instant the replay was sent. The server started the statement
/// between `sent` and its answer, so the row was stamped about `age` before `sent` (at most a
/// one-way network latency later than that): no comparison of the two machines' clocks needed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    pub(crate) age: Duration,
    pub(crate) sent: Instant,
}

impl Stamp {
    /// Whether the row was stamped at or after local instant `since`, as far as the estimate says.
    pub(crate) fn stamped_since(self, since: Instant) -> bool {
        self.sent.checked_sub(self.age).is_some_and(|stamped| stamped >= since)
    }

    /// The delivery lag of a hand-off at local instant `handed`: from the row's stamp to it
    /// (zero if the estimate puts the hand-off before the stamp, by a latency's error).
    pub(crate) fn lag_at(self, handed: Instant) -> Duration {
        if handed >= self.sent {
            self.age.saturating_add(handed - self.sent)
        } else {
            self.age.saturating_sub(self.sent - handed)
        }
    }
}

pub(crate) struct Intake {
    /// When the listener started: a row stamped before it is not timed (it waited for the
    /// listener to exist, not for delivery).
    started: Instant,
    sink: Sink,
    pub(crate) shared: Arc<Shared>,
    events: broadcast::Sender<Event>,
    /// The catch-up state: cursor, marks, de-duplication, strict mode's candidates.
    state: Mutex<CatchUp>,
    /// Whether notifications arrive.
    probe: Mutex<Probe>,
    /// The probe's channel (fixed: compared with every notification's without a lock).
    probe_channel: String,
    /// Strict mode: notifications wait for the log to confirm them; the bell for that.
    pub(crate) strict: bool,
    pub(crate) confirm: Notify,
    /// Whether "the log cannot be read" was said (it is said once, not per reconnect).
    warned_unavailable: AtomicBool,
    /// Whether "notifications do not arrive" was said.
    warned_deaf: AtomicBool,
    /// Whether "the exact replay is not granted" was said.
    warned_not_exact: AtomicBool,
}

impl Intake {
    pub(crate) fn new(
        sink: Sink,
        shared: Arc<Shared>,
        events: broadcast::Sender<Event>,
        strict: bool,
        state: CatchUp,
        probe: Probe,
    ) -> Self {
        Intake {
            started: state.started(),
            sink,
            shared,
            events,
            state: Mutex::new(state),
            probe_channel: probe.channel().to_owned(),
            probe: Mutex::new(probe),
            strict,
            confirm: Notify::new(),
            warned_unavailable: AtomicBool::new(false),
            warned_deaf: AtomicBool::new(false),
            warned_not_exact: AtomicBool::new(false),
        }
    }

    /// The catch-up state, locked.
    pub(crate) fn state(&self) -> MutexGuard<'_, CatchUp> {
        lock(&self.state)
    }

    /// The probe, locked.
    pub(crate) fn probe(&self) -> MutexGuard<'_, Probe> {
        lock(&self.probe)
    }

    /// The channel the probe LISTENs and NOTIFYs on.
    pub(crate) fn probe_channel(&self) -> &str {
        &self.probe_channel
    }

    /// A notification from the socket, read at about `now`: a signal, or our probe coming back.
    pub(crate) fn take(&self, n: &Notification, now: Instant) {
        if n.channel() == self.probe_channel {
            let change = self.probe().arrived(n.payload());
            if let Some(change) = change {
                self.probe_changed(change, "");
            }
            return;
        }
        self.shared.received.bump();
        match Signal::decode(n.payload()) {
            Ok(signal) if self.strict => {
                self.state().candidate(signal);
                self.confirm.notify_one();
            }
            Ok(signal) => {
                self.hand_on_at(signal, Arrival::Notification, None, now);
            }
            Err(e) => {
                self.shared.malformed.bump();
                warn!(error = %e, payload = %shorten(n.payload(), 200), pid = n.process_id(), "malformed signal ignored");
            }
        }
    }

    /// Offers `signal` to the handler unless it was handed on already. `stamp` is its log row's,
    /// for a signal read from the log: it times the delivery (see `crate::metrics`).
    pub(crate) fn hand_on(&self, signal: Signal, arrival: Arrival, stamp: Option<Stamp>) -> Handed {
        self.hand_on_at(signal, arrival, stamp, Instant::now())
    }

    /// [`Intake::hand_on`] at `now` (the notifications read together share one clock reading).
    fn hand_on_at(&self, signal: Signal, arrival: Arrival, stamp: Option<Stamp>, now: Instant) -> Handed {
        let stamp = stamp.filter(|s| s.stamped_since(self.started));
        let mut refused = None;
        let offered = self.state().offer(&signal, arrival, now, || match &self.sink {
            Sink::Queue(tx) => match tx.try_send(signal.clone()) {
                Ok(()) => true,
                // Nobody receives any more: nothing is pending either (a refusal would keep the
                // de-duplication window growing until shutdown).
                Err(mpsc::error::TrySendError::Closed(_)) => true,
                Err(e) => {
                    refused = Some(e);
                    false
                }
            },
            Sink::Registry(registry) => {
                self.shared.dispatched.bump();
                if registry.dispatch_at(&signal, now.into_std()) == Dispatch::Unmatched {
                    self.shared.unmatched.bump();
                }
                true
            }
        });
        match (offered, refused) {
            (Offered::Duplicate(notified), _) => {
                self.shared.duplicates.bump();
                if let (Some(notified), Some(stamp)) = (notified, stamp) {
                    self.shared.lag(Via::Notification, stamp.lag_at(notified));
                }
                Handed::Duplicate
            }
            (Offered::Accepted, _) => {
                if arrival == Arrival::Replay {
                    self.shared.replayed.bump();
                    if let Some(stamp) = stamp {
                        self.shared.lag(Via::Replay, stamp.lag_at(now));
                    }
                }
                Handed::On
            }
            (Offered::Refused, Some(mpsc::error::TrySendError::Full(signal))) => {
                self.shared.overflowed.bump();
                let _ = self.events.send(Event::Overflow);
                warn!(?signal, "handler too slow: hand-off queue full, signal dropped until the next replay");
                Handed::Dropped
            }
            // Only a full queue refuses (see above).
            (Offered::Refused, _) => Handed::Dropped,
        }
    }

    /// Hands on what a replay sent at local instant `sent` returned; how many were new.
    pub(crate) fn hand_on_replayed(&self, signals: Vec<Logged>, sent: Instant) -> u64 {
        signals
            .into_iter()
            .map(|Logged { signal, age }| self.hand_on(signal, Arrival::Replay, Some(Stamp { age, sent })))
            .filter(|handed| *handed == Handed::On)
            .count() as u64
    }

    /// Says once per listener that the log cannot be read, and why.
    pub(crate) fn log_unavailable(&self, why: Unavailable, function: &str) {
        self.shared.set_replay_available(false);
        if !self.warned_unavailable.swap(true, Ordering::Relaxed) {
            warn!("{}", why.explain(function));
            if self.strict {
                warn!("strict mode: no notification can be confirmed, so none is acted on");
            }
        }
    }

    /// Says once per listener that the log has an exact replay this role may not execute.
    pub(crate) fn log_not_exact(&self, function: &str) {
        if !self.warned_not_exact.swap(true, Ordering::Relaxed) {
            warn!(
                "this role may not execute {function}(pg_snapshot) (GRANT EXECUTE ON FUNCTION \
                 {function}(pg_snapshot) TO <listener role>): the listener replays the log by time \
                 instead, which misses a cancel whose transaction stays open longer than the replay grace"
            );
        }
    }

    /// What a probe found out; `how` says what delivers cancels meanwhile, for the warning.
    pub(crate) fn probe_changed(&self, change: Change, how: &str) {
        match change {
            Change::Hears => {
                self.shared.set_notifications(true);
                if self.warned_deaf.load(Ordering::Relaxed) {
                    tracing::info!("notifications arrive again on the listener's connection");
                }
                self.event(Event::Notifications { arriving: true });
            }
            Change::Deaf => {
                self.shared.set_notifications(false);
                if !self.warned_deaf.swap(true, Ordering::Relaxed) {
                    warn!(
                        channel = %self.probe_channel,
                        "the listener's connection does not deliver notifications: a probe it sent itself on channel \
                         {} did not come back. The usual cause is a transaction-pooling proxy (PgBouncer with \
                         pool_mode = transaction) between the listener and the server, where LISTEN succeeds and \
                         notifications go to whichever server connection ran it. Connect the listener directly, or \
                         through a pool in session mode. {how}",
                        self.probe_channel
                    );
                }
                self.event(Event::Notifications { arriving: false });
            }
        }
    }

    pub(crate) fn event(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}

/// Locks `m`, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod stamp_tests {
    use super::*;

    #[test]
    fn a_lag_counts_from_the_row_stamp_before_the_replay_to_the_hand_off_on_either_side_of_it() {
        let sent = Instant::now();
        let stamp = Stamp { age: Duration::from_millis(300), sent };
        assert_eq!(
            stamp.lag_at(sent + Duration::from_millis(5)),
            Duration::from_millis(305),
            "a replayed row"
        );
        assert_eq!(
            stamp.lag_at(sent - Duration::from_millis(299)),
            Duration::from_millis(1),
            "its notification"
        );
        assert_eq!(
            stamp.lag_at(sent - Duration::from_secs(1)),
            Duration::ZERO,
            "an estimate before the stamp"
        );
    }
}
