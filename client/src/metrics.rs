//! The listener's counters, state and delivery lag through the [`metrics`] facade (feature
//! `metrics`), for whatever recorder the application installs: Prometheus' exporter (as
//! `bytebase-signal listen --metrics-addr` does), OpenTelemetry, or its own.
//!
//! Every [`Status`](crate::Status) counter is a counter here, named after Prometheus' conventions
//! (`bytebase_signal_<what>_total`), and the listener's state is a gauge set to 0 or 1. The
//! **delivery lag** is a histogram in seconds, labelled `via="notification"` or `via="replay"`:
//! from the stamp of the signal's log row (the server's clock when the send function ran, so the
//! rest of the sending transaction counts too) to the moment the listener handed the signal on. A replayed signal's lag is known
//! when it is handed on; a notification's when the next replay returns its row as a duplicate, so
//! only signals that were logged (and whose row a replay of this listener read) are timed. Both
//! are measured against the server's clock read by the same replay, so the two machines' clocks
//! need not agree.
//!
//! The counter and histogram handles are taken when a listener starts, and the gauges go to the
//! recorder installed when they change: install the recorder (globally) before spawning it. The
//! metrics carry no label per listener: several listeners in one process add up their counters
//! and overwrite each other's gauges (one listener per replica is the design). Give
//! the histogram buckets ([`DELIVERY_LAG_BUCKETS`] suits the 1 s alert of docs/operating.md), or
//! a Prometheus exporter renders it as a summary, which does not aggregate across replicas.
//!
//! The names, buckets and labels are here with `runtime` alone too, for applications that bridge
//! [`Status`](crate::Status) to their own metrics library.
//!
//! ```
//! use bytebase_signal_client::metrics::{DELIVERY_LAG_SECONDS, NAMES};
//!
//! # #[cfg(feature = "metrics")]
//! bytebase_signal_client::metrics::describe(); // help texts and units for the recorder, if any
//! assert!(NAMES.contains(&DELIVERY_LAG_SECONDS));
//! assert!(NAMES.iter().all(|n| n.starts_with("bytebase_signal_")));
//! ```

#[cfg(feature = "metrics")]
use std::time::Duration;

#[cfg(feature = "metrics")]
use ::metrics::{Counter, Histogram, Unit};

/// Gauge: 1 while the listener holds a connection on which LISTEN is in effect, else 0.
pub const CONNECTED: &str = "bytebase_signal_connected";
/// Gauge: 1 while notifications reach the listener as its last probe found, 0 when they do not
/// (a transaction-pooling proxy); absent until the first probe's answer, kept while disconnected.
pub const NOTIFICATIONS_ARRIVING: &str = "bytebase_signal_notifications_arriving";
/// Gauge: 1 while this database's durable log can be replayed, 0 when it cannot; absent until
/// first found out, kept while disconnected.
pub const REPLAY_AVAILABLE: &str = "bytebase_signal_replay_available";
/// Counter: successful connections after the first one.
pub const RECONNECTS: &str = "bytebase_signal_reconnects_total";
/// Counter: notifications received on the channel, well-formed or not.
pub const RECEIVED: &str = "bytebase_signal_notifications_received_total";
/// Counter: signals handed to the handler or registry.
pub const DISPATCHED: &str = "bytebase_signal_signals_dispatched_total";
/// Counter: dispatched signals that named no run registered here.
pub const UNMATCHED: &str = "bytebase_signal_signals_unmatched_total";
/// Counter: payloads that did not decode as a signal.
pub const MALFORMED: &str = "bytebase_signal_payloads_malformed_total";
/// Counter: signals dropped because the hand-off queue was full.
pub const OVERFLOWED: &str = "bytebase_signal_signals_overflowed_total";
/// Counter: signals recovered from the log that had not arrived as notifications.
pub const REPLAYED: &str = "bytebase_signal_signals_replayed_total";
/// Counter: reads of the log that completed.
pub const REPLAYS: &str = "bytebase_signal_replays_total";
/// Counter: signals skipped because the same cancel was already handed on.
pub const DUPLICATES: &str = "bytebase_signal_signals_duplicate_total";
/// Counter: strict mode's notifications that the log did not confirm, ignored.
pub const UNCONFIRMED: &str = "bytebase_signal_notifications_unconfirmed_total";
/// Histogram, seconds, labelled `via`: from a signal's log row stamp to its hand-off.
pub const DELIVERY_LAG_SECONDS: &str = "bytebase_signal_delivery_lag_seconds";

/// Every metric name above.
pub const NAMES: &[&str] = &[
    CONNECTED,
    NOTIFICATIONS_ARRIVING,
    REPLAY_AVAILABLE,
    RECONNECTS,
    RECEIVED,
    DISPATCHED,
    UNMATCHED,
    MALFORMED,
    OVERFLOWED,
    REPLAYED,
    REPLAYS,
    DUPLICATES,
    UNCONFIRMED,
    DELIVERY_LAG_SECONDS,
];

/// Buckets for [`DELIVERY_LAG_SECONDS`], in seconds: fine below a millisecond (a notification on
/// a LAN), then up to a heartbeat interval and beyond (a replay after an outage).
pub const DELIVERY_LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How a timed signal reached the listener: the `via` label of [`DELIVERY_LAG_SECONDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    /// As a notification.
    Notification,
    /// From the log, by a replay.
    Replay,
}

impl Via {
    /// The label's value.
    pub fn label(self) -> &'static str {
        match self {
            Via::Notification => "notification",
            Via::Replay => "replay",
        }
    }
}

#[cfg(feature = "metrics")]
/// Gives the installed recorder each metric's help text and unit. [`crate::Listener`] calls it
/// when it starts; call it yourself to have them before the first listener.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTED, "1 while the listener holds a connection on which LISTEN is in effect");
    describe_gauge!(
        NOTIFICATIONS_ARRIVING,
        "1 while notifications reach the listener, as its last probe found"
    );
    describe_gauge!(REPLAY_AVAILABLE, "1 while the durable signal log can be replayed");
    describe_counter!(RECONNECTS, "successful connections after the first one");
    describe_counter!(RECEIVED, "notifications received on the channel, well-formed or not");
    describe_counter!(DISPATCHED, "signals handed to the handler or registry");
    describe_counter!(UNMATCHED, "dispatched signals that named no run registered here");
    describe_counter!(MALFORMED, "payloads that did not decode as a signal");
    describe_counter!(OVERFLOWED, "signals dropped because the hand-off queue was full");
    describe_counter!(REPLAYED, "signals recovered from the log that had not arrived as notifications");
    describe_counter!(REPLAYS, "reads of the durable log that completed");
    describe_counter!(DUPLICATES, "signals skipped because the same cancel was already handed on");
    describe_counter!(UNCONFIRMED, "strict mode: notifications the log did not confirm");
    describe_histogram!(
        DELIVERY_LAG_SECONDS,
        Unit::Seconds,
        "from a signal's log row stamp (server clock at the send call) to its hand-off"
    );
}

#[cfg(feature = "metrics")]
/// The handles one listener updates, taken from the recorder installed when it started. The
/// gauges are set through the recorder when they change (rarely), so that one not known yet
/// stays absent instead of reading 0.
#[derive(Debug)]
pub(crate) struct Instruments {
    reconnects: Counter,
    lag_notification: Histogram,
    lag_replay: Histogram,
}

#[cfg(feature = "metrics")]
impl Instruments {
    /// The handles of the current recorder (no-ops without one); `connected` starts at 0.
    pub(crate) fn new() -> Self {
        describe();
        set_flag(CONNECTED, false);
        Instruments {
            reconnects: ::metrics::counter!(RECONNECTS),
            lag_notification: ::metrics::histogram!(DELIVERY_LAG_SECONDS, "via" => Via::Notification.label()),
            lag_replay: ::metrics::histogram!(DELIVERY_LAG_SECONDS, "via" => Via::Replay.label()),
        }
    }

    /// Counts a connection after the first.
    pub(crate) fn reconnected(&self) {
        self.reconnects.increment(1);
    }

    /// Records one delivery lag.
    pub(crate) fn lag(&self, via: Via, lag: Duration) {
        match via {
            Via::Notification => self.lag_notification.record(lag.as_secs_f64()),
            Via::Replay => self.lag_replay.record(lag.as_secs_f64()),
        }
    }
}

#[cfg(feature = "metrics")]
/// The counter handle named `name`, from the current recorder.
pub(crate) fn counter(name: &'static str) -> Counter {
    ::metrics::counter!(name)
}

#[cfg(feature = "metrics")]
/// The gauge `name` set to a state: 1 for true, 0 for false.
pub(crate) fn set_flag(name: &'static str, on: bool) {
    ::metrics::gauge!(name).set(if on { 1.0 } else { 0.0 });
}
