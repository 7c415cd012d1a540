//! What the listener reports about itself: a snapshot of counters and an event stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// A point-in-time view of a listener, from [`crate::listener::ListenerHandle::status`].
///
/// With the `serde` feature it serializes with these field names (`connected_since` as serde
/// writes a `SystemTime`: seconds and nanoseconds since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

/// The counters behind [`Status`], shared between the listener's tasks and its handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    connects: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dispatched: AtomicU64,
    pub(crate) unmatched: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) replays: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    unconfirmed: AtomicU64,
    text: Mutex<Text>,
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
            received: self.received.load(Ordering::Relaxed),
            dispatched: self.dispatched.load(Ordering::Relaxed),
            unmatched: self.unmatched.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            replays: self.replays.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            unconfirmed: self.unconfirmed.load(Ordering::Relaxed),
            replay_available: text.replay_available,
            notifications: text.notifications,
            last_error: text.last_error.clone(),
        }
    }

    pub(crate) fn set_connected(&self) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.connected_since = Some(SystemTime::now());
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_disconnected(&self, reason: &str) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.connected_since = None;
        text.last_error = Some(reason.to_owned());
    }

    pub(crate) fn set_error(&self, reason: &str) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.last_error = Some(reason.to_owned());
    }

    pub(crate) fn set_replay_available(&self, available: bool) {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).replay_available = Some(available);
    }

    pub(crate) fn set_notifications(&self, arriving: bool) {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).notifications = Some(arriving);
    }

    pub(crate) fn add_unconfirmed(&self, n: u64) {
        self.unconfirmed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
