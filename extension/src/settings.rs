//! The extension's settings (GUCs), registered when the library is loaded.
//!
//! - `bytebase_signal.durable` (boolean, default on, any role may change it for its session):
//!   whether the send functions also write the signal log. Off is 0.1.0's behaviour, NOTIFY only,
//!   for callers that accept losing cancels to avoid a WAL flush.
//! - `bytebase_signal.retention` (time, default 1 hour, superuser only): how long logged signals
//!   are kept for replay. Only a superuser may change it because pruning with a short retention
//!   deletes rows that other sessions' listeners may still need.
//! - `bytebase_signal.wire_format` (`seed` or `protojson`, default `seed`, any role): how the
//!   send functions spell the payload; `protojson` is what upstream Bytebase's Go replicas parse.
//! - `bytebase_signal.notify_queue_limit` (real 0..1, default 0.5, any role): at or above this
//!   `pg_notification_queue_usage()`, a logged signal is sent without NOTIFY (see `queue`).

use bytebase_signal_client::limits::{
    DEFAULT_NOTIFY_QUEUE_LIMIT, DEFAULT_RETENTION_SECS, MAX_RETENTION_SECS, MIN_RETENTION_SECS,
};
use bytebase_signal_client::wire::WireFormat;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;

/// `bytebase_signal.durable`.
static DURABLE: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `bytebase_signal.retention`, in seconds (the GUC accepts any time unit: `'90min'`, `'2h'`).
static RETENTION_SECS: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_RETENTION_SECS);

/// `bytebase_signal.wire_format`.
static WIRE_FORMAT: GucSetting<WireFormatSetting> =
    GucSetting::<WireFormatSetting>::new(WireFormatSetting::Seed);

/// `bytebase_signal.notify_queue_limit`.
static NOTIFY_QUEUE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(DEFAULT_NOTIFY_QUEUE_LIMIT);

/// The values of `bytebase_signal.wire_format` (PostgreSQL matches them ignoring case), in the
/// order of [`WireFormat::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PostgresGucEnum)]
enum WireFormatSetting {
    #[name = c"seed"]
    Seed,
    #[name = c"protojson"]
    ProtoJson,
}

/// Registers the settings; called once per backend from `_PG_init`.
pub(crate) fn register() {
    GucRegistry::define_bool_guc(
        c"bytebase_signal.durable",
        c"Whether bytebase_cancel_* functions also write the signal log listeners replay from.",
        c"Off sends NOTIFY only (0.1.0 behaviour): cheaper, but a listener that is disconnected \
          at the moment of commit never sees the signal.",
        &DURABLE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"bytebase_signal.retention",
        c"How long logged signals are kept for listeners to replay.",
        c"Older rows are pruned as part of sending and by bytebase_signal_prune(). Keep it well \
          above the listeners' replay grace period and their longest expected outage.",
        &RETENTION_SECS,
        MIN_RETENTION_SECS,
        MAX_RETENTION_SECS,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_enum_guc(
        c"bytebase_signal.wire_format",
        c"How bytebase_cancel_* functions spell the payload: seed or protojson.",
        c"seed: {\"type\":\"cancel_task_run\",\"uid\":42} (the default, Go's json.Marshal bytes of the first design). \
          protojson: {\"type\":\"CANCEL_TASK_RUN\",\"uid\":\"42\"}, what upstream Bytebase's Go \
          replicas parse. Listeners of bytebase-signal-client read both.",
        &WIRE_FORMAT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"bytebase_signal.notify_queue_limit",
        c"Notification queue usage at or above which logged signals are sent without NOTIFY.",
        c"A nearly full queue (one listening session that does not read holds it for everyone) would \
          fail every NOTIFYing commit; logged signals reach listeners from the log at their next \
          heartbeat instead. 0 never NOTIFYs logged signals; 1 always does.",
        &NOTIFY_QUEUE_LIMIT,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    // Reject misspelt settings such as `bytebase_signal.durabel` instead of keeping them as
    // placeholders nobody reads.
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    // SAFETY: called from _PG_init with a static, NUL-terminated prefix.
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"bytebase_signal".as_ptr());
    }
}

/// Whether sends are logged.
pub(crate) fn durable() -> bool {
    DURABLE.get()
}

/// How payloads are spelled.
pub(crate) fn wire_format() -> WireFormat {
    match WIRE_FORMAT.get() {
        WireFormatSetting::Seed => WireFormat::Seed,
        WireFormatSetting::ProtoJson => WireFormat::ProtoJson,
    }
}

/// The queue usage at which logged signals go without NOTIFY.
pub(crate) fn notify_queue_limit() -> f64 {
    NOTIFY_QUEUE_LIMIT.get()
}

/// How long logged signals are kept, in seconds.
pub(crate) fn retention_secs() -> f64 {
    f64::from(RETENTION_SECS.get())
}
