//! The listener's tunables ([`ListenerConfig`]) and the names it uses on the server, in a module
//! of their own, so that the session and the log read them without importing the listener module
//! (which imports them). `listener` re-exports them for users.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::wire::CHANNEL;

/// `application_name` of the listener's connection unless the configuration sets one, so that
/// operators can find it in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "bytebase-signal";

/// `tagged!()` is [`STATEMENT_TAG`] as a literal; `tagged!("SELECT ...")` the statement opened with
/// it (for `const` statements: `concat!` takes literals only).
macro_rules! tagged {
    () => {
        "/* bytebase_signal listener */"
    };
    ($sql:literal) => {
        concat!($crate::listener::config::tagged!(), " ", $sql)
    };
}
pub(crate) use tagged;

/// The comment that opens the listener's statements (its replays, its probe's NOTIFY, its look at
/// what the log offers, its server identity and clock reads), so that `pg_stat_activity.query`
/// shows any session running them as a listener's, whatever its `application_name`
/// (`bytebase-signal doctor` looks for it).
pub const STATEMENT_TAG: &str = tagged!();

/// The largest hand-off queue a listener allocates; larger `queue_capacity` values are shortened.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

/// The replay grace unless configured ([`ListenerConfig::replay_grace`]): a sending transaction
/// that stays open longer than this after its cancel call is covered only by an exact replay.
pub const DEFAULT_REPLAY_GRACE: Duration = Duration::from_secs(60);

/// The longest replay grace that means anything: the log's longest retention
/// ([`crate::limits::MAX_RETENTION_SECS`]); a replay never looks further back.
pub const MAX_REPLAY_GRACE: Duration = Duration::from_secs(crate::limits::MAX_RETENTION_SECS as u64);

/// The extension's replay function (0.2.0 and later).
pub const DEFAULT_REPLAY_FUNCTION: &str = "bytebase_signal_replay";

/// The most cancels a listener remembers in order to recognise a replayed copy of one it handed
/// on already. Only a flood fills it; then the oldest are forgotten (a cancel may be handed on
/// twice, never lost), and memory stays bounded.
pub const DEDUP_WINDOW_MAX: usize = crate::seen::MAX_SEEN;

/// Tunables of a [`Listener`](crate::Listener). The defaults detect a half-open connection within 15 s (25 s where
/// a heartbeat reads the log by time: see `replay_timeout`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListenerConfig {
    // What each field means is on its setter (`accessors!` below); the listener's modules read
    // the fields directly.
    pub(super) channel: String,
    pub(super) queue_capacity: usize,
    pub(super) backoff: Backoff,
    pub(super) connect_timeout: Duration,
    pub(super) ping_interval: Duration,
    pub(super) ping_timeout: Duration,
    pub(super) probe_interval: Duration,
    pub(super) keepalive_idle: Duration,
    pub(super) unlisten_timeout: Duration,
    pub(super) replay_grace: Duration,
    pub(super) replay_timeout: Duration,
    pub(super) replay_function: String,
    pub(super) strict: bool,
}

crate::accessors::accessors!(ListenerConfig {
    /// The channel to LISTEN on (default [`CHANNEL`]).
    channel, get_channel: String => &str;
    /// Signals buffered between the socket reader and the handler (beyond it, [`super::Signals`]
    /// may hold up to 256 it took from the queue in one go and has not returned yet).
    queue_capacity, get_queue_capacity: usize;
    /// Reconnect delays.
    backoff, get_backoff: Backoff => &Backoff;
    /// Deadline for connecting and authenticating.
    connect_timeout, get_connect_timeout: Duration;
    /// How often an idle connection is pinged.
    ping_interval, get_ping_interval: Duration;
    /// How long a ping may take before the connection is given up (and how long a probe
    /// notification may take to come back).
    ping_timeout, get_ping_timeout: Duration;
    /// How often the listener checks, by sending itself a notification, that notifications reach
    /// it at all (after LISTEN, then at the first heartbeat after each interval); as often, it
    /// looks again at what the database's log offers (an update, a GRANT, a REVOKE).
    probe_interval, get_probe_interval: Duration;
    /// TCP keepalive idle time (probes follow every `keepalive_idle / 2`, 3 times).
    keepalive_idle, get_keepalive_idle: Duration;
    /// Deadline for the polite `UNLISTEN` at shutdown.
    unlisten_timeout, get_unlisten_timeout: Duration;
    /// How far before the last "known alive" mark a replay starts: longer than the longest
    /// transaction that sends a cancel (its log row is stamped when the function is called, but
    /// becomes visible only at commit).
    replay_grace, get_replay_grace: Duration;
    /// Deadline for a replay that reads the log by time (a reconnect's catch-up, the heartbeats
    /// of a 0.2.0 or 0.3.0 database or while a dropped hand-off is pending) and for strict mode's
    /// confirmations: longer than a ping's, since it may return a grace period's worth of rows.
    /// A heartbeat's exact replay has `ping_timeout`. Half-open detection takes up to
    /// `ping_interval + replay_timeout` where heartbeats read by time.
    replay_timeout, get_replay_timeout: Duration;
    /// The replay function, schema-qualified if the extension's schema is not on the listener's
    /// `search_path` (default [`DEFAULT_REPLAY_FUNCTION`]).
    replay_function, get_replay_function: String => &str;
    /// Act only on signals the durable log confirms; notifications without a log row (a forged
    /// `pg_notify`, or `bytebase_signal.durable = off` senders) are counted as unconfirmed.
    strict, get_strict: bool;
});

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            channel: CHANNEL.to_owned(),
            queue_capacity: 4096,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            probe_interval: Duration::from_secs(60),
            keepalive_idle: Duration::from_secs(10),
            unlisten_timeout: Duration::from_secs(2),
            replay_grace: DEFAULT_REPLAY_GRACE,
            replay_timeout: Duration::from_secs(15),
            replay_function: DEFAULT_REPLAY_FUNCTION.to_owned(),
            strict: false,
        }
    }
}
