//! What the listener reports about itself: a snapshot of counters and an event stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::metrics::{self as n, Via};

/// A point-in-time view of a listener, from [`crate::listener::ListenerHandle::status`].
///
/// With the `serde` feature it serializes with these field names (`connected_since` as serde
/// writes a `SystemTime`: seconds and nanoseconds since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Status {
    /// Whether the listener holds a connection on which LISTEN is in effect.
    pub connected: bool,
    /// When the current connection started listening; `None` while disconnected.
    pub connected_since: Option<SystemTime>,
    /// Successful connections after the first one.
    pub reconnects: u64,
    /// Notifications received on the channel (well-formed or not).
    pub received: u64,
    /// Signals handed to the handler (or registry).
    pub dispatched: u64,
    /// Dispatched signals that named no run registered here.
    pub unmatched: u64,
    /// Payloads that did not decode as a signal.
    pub malformed: u64,
    /// Signals dropped because the hand-off queue was full (the handler is too slow). With the
    /// durable log they come back with the next heartbeat's replay.
    pub overflowed: u64,
    /// Signals recovered from the durable log that had not arrived as notifications.
    pub replayed: u64,
    /// Reads of the durable log that completed (catch-ups and heartbeat replays).
    pub replays: u64,
    /// Signals skipped because the same cancel was already handed on (a replayed copy, or a
    /// notification for a cancel recovered first by replay).
    pub duplicates: u64,
    /// Strict mode: notifications the durable log did not confirm, ignored.
    pub unconfirmed: u64,
    /// Whether this database's durable log can be replayed (`None` until first connected).
    pub replay_available: Option<bool>,
    /// Whether notifications reach the listener, as its last probe found (`None` until probed).
    /// `Some(false)` behind a transaction-pooling proxy: cancels then come from the log alone.
    pub notifications: Option<bool>,
    /// The last connection error or disconnect reason.
    pub last_error: Option<String>,
}

/// Something that happened to the listener's connection.
///
/// With the `serde` feature it serializes tagged by `event`, in snake case:
/// `{"event":"connected","server":"db:5432"}`, `{"event":"overflow"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Event {
    /// LISTEN is in effect on a new connection.
    Connected {
        /// `host:port` of the server.
        server: String,
    },
    /// The connection was lost (or given up) and the listener will reconnect unless stopping.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// Why, in words.
        reason: String,
    },
    /// The hand-off queue was full and a signal was dropped.
    Overflow,
    /// The first replay of the durable log after LISTEN returned: the listener has caught up,
    /// except for what a full hand-off queue refused (the next replays bring it).
    Replayed {
        /// Signals recovered that had not arrived as notifications.
        signals: u64,
    },
    /// A probe found that notifications stopped reaching the listener, or reach it again (or
    /// the first probe's answer).
    Notifications {
        /// Whether they arrive.
        arriving: bool,
    },
}

/// One counter of [`Status`], also counted by the `metrics` recorder (feature `metrics`).
#[derive(Debug)]
pub(crate) struct Count {
    value: AtomicU64,
    #[cfg(feature = "metrics")]
    metric: ::metrics::Counter,
}

impl Count {
    fn new(#[cfg_attr(not(feature = "metrics"), allow(unused_variables))] name: &'static str) -> Self {
        Count {
            value: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            metric: crate::metrics::counter(name),
        }
    }

    /// Counts one.
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// Counts `n`.
    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metric.increment(n);
    }

    fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// The counters behind [`Status`], shared between the listener's tasks and its handle.
#[derive(Debug)]
pub(crate) struct Shared {
    connects: AtomicU64,
    pub(crate) received: Count,
    pub(crate) dispatched: Count,
    pub(crate) unmatched: Count,
    pub(crate) malformed: Count,
    pub(crate) overflowed: Count,
    pub(crate) replayed: Count,
    pub(crate) replays: Count,
    pub(crate) duplicates: Count,
    unconfirmed: Count,
    text: Mutex<Text>,
    #[cfg(feature = "metrics")]
    instruments: crate::metrics::Instruments,
}

impl Default for Shared {
    /// Zero counters, and the metric handles of the recorder installed now.
    fn default() -> Self {
        Shared {
            connects: AtomicU64::new(0),
            received: Count::new(n::RECEIVED),
            dispatched: Count::new(n::DISPATCHED),
            unmatched: Count::new(n::UNMATCHED),
            malformed: Count::new(n::MALFORMED),
            overflowed: Count::new(n::OVERFLOWED),
            replayed: Count::new(n::REPLAYED),
            replays: Count::new(n::REPLAYS),
            duplicates: Count::new(n::DUPLICATES),
            unconfirmed: Count::new(n::UNCONFIRMED),
            text: Mutex::default(),
            #[cfg(feature = "metrics")]
            instruments: crate::metrics::Instruments::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Text {
    connected_since: Option<SystemTime>,
    last_error: Option<String>,
    replay_available: Option<bool>,
    notifications: Option<bool>,
}

impl Shared {
    pub(crate) fn snapshot(&self) -> Status {
        let text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        Status {
            connected: text.connected_since.is_some(),
            connected_since: text.connected_since,
            reconnects: self.connects.load(Ordering::Relaxed).saturating_sub(1),
            received: self.received.get(),
            dispatched: self.dispatched.get(),
            unmatched: self.unmatched.get(),
            malformed: self.malformed.get(),
            overflowed: self.overflowed.get(),
            replayed: self.replayed.get(),
            replays: self.replays.get(),
            duplicates: self.duplicates.get(),
            unconfirmed: self.unconfirmed.get(),
            replay_available: text.replay_available,
            notifications: text.notifications,
            last_error: text.last_error.clone(),
        }
    }

    pub(crate) fn set_connected(&self) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.connected_since = Some(SystemTime::now());
        let before = self.connects.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        {
            crate::metrics::set_flag(n::CONNECTED, true);
            if before > 0 {
                self.instruments.reconnected();
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = before;
    }

    pub(crate) fn set_disconnected(&self, reason: &str) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.connected_since = None;
        text.last_error = Some(reason.to_owned());
        #[cfg(feature = "metrics")]
        crate::metrics::set_flag(n::CONNECTED, false);
    }

    pub(crate) fn set_error(&self, reason: &str) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.last_error = Some(reason.to_owned());
    }

    pub(crate) fn set_replay_available(&self, available: bool) {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).replay_available = Some(available);
        #[cfg(feature = "metrics")]
        crate::metrics::set_flag(n::REPLAY_AVAILABLE, available);
    }

    pub(crate) fn set_notifications(&self, arriving: bool) {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).notifications = Some(arriving);
        #[cfg(feature = "metrics")]
        crate::metrics::set_flag(n::NOTIFICATIONS_ARRIVING, arriving);
    }

    pub(crate) fn add_unconfirmed(&self, n: u64) {
        self.unconfirmed.add(n);
    }

    /// A signal's delivery lag: from its log row's stamp to its hand-off (see `crate::metrics`).
    pub(crate) fn lag(&self, via: Via, lag: Duration) {
        #[cfg(feature = "metrics")]
        self.instruments.lag(via, lag);
        #[cfg(not(feature = "metrics"))]
        let _ = (via, lag);
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use std::time::Duration;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    use super::*;
    use crate::metrics as names;

    #[test]
    fn every_counter_and_state_reaches_the_recorder_by_its_prometheus_name() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let shared = ::metrics::with_local_recorder(&recorder, || {
            let shared = Shared::default();
            shared.received.bump();
            shared.received.bump();
            shared.dispatched.bump();
            shared.add_unconfirmed(3);
            shared.set_connected();
            shared.set_disconnected("gone");
            shared.set_connected();
            shared.set_notifications(false);
            shared.lag(Via::Replay, Duration::from_millis(250));
            shared
        });
        assert_eq!(shared.snapshot().received, 2, "the status counts as before");
        let values: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels: Vec<String> =
                    key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                (key.kind(), key.key().name().to_owned(), labels, value)
            })
            .collect();
        let find = |kind: MetricKind, name: &str, label: &[&str]| {
            values
                .iter()
                .find(|(k, n, l, _)| {
                    *k == kind && n == name && l.iter().map(String::as_str).eq(label.iter().copied())
                })
                .map(|(.., v)| v)
                .unwrap_or_else(|| panic!("{name} {label:?} missing from {values:?}"))
        };
        assert_eq!(find(MetricKind::Counter, names::RECEIVED, &[]), &DebugValue::Counter(2));
        assert_eq!(find(MetricKind::Counter, names::DISPATCHED, &[]), &DebugValue::Counter(1));
        assert_eq!(find(MetricKind::Counter, names::UNCONFIRMED, &[]), &DebugValue::Counter(3));
        assert_eq!(
            find(MetricKind::Counter, names::RECONNECTS, &[]),
            &DebugValue::Counter(1),
            "the first connect is none"
        );
        assert_eq!(find(MetricKind::Gauge, names::CONNECTED, &[]), &DebugValue::Gauge(1.0.into()));
        assert_eq!(
            find(MetricKind::Gauge, names::NOTIFICATIONS_ARRIVING, &[]),
            &DebugValue::Gauge(0.0.into())
        );
        assert_eq!(
            find(MetricKind::Histogram, names::DELIVERY_LAG_SECONDS, &["via=replay"]),
            &DebugValue::Histogram(vec![0.25.into()])
        );
        assert!(
            !values.iter().any(|(_, name, ..)| name == names::REPLAY_AVAILABLE),
            "a state not found out yet is absent, not 0"
        );
        for (_, name, ..) in &values {
            assert!(names::NAMES.contains(&name.as_str()), "{name} is listed in NAMES");
        }
    }
}
