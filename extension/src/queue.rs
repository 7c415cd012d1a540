//! The server-wide notification queue, checked before a logged signal is NOTIFYed.
//!
//! Every NOTIFY in the cluster goes through one queue, which only moves on once every listening
//! session has read it. One listener that stops reading (a session that ran LISTEN and stays in a
//! transaction) makes it grow; when it is full, every transaction that NOTIFYs fails at commit —
//! the cancel's own status update with it. A logged signal does not need its NOTIFY where the
//! listeners read the log at every heartbeat (0.4.0's exact replays). So at or above
//! `bytebase_signal.notify_queue_limit` a send that logs, in a database at 0.4.0, skips the NOTIFY
//! and warns, naming the usage and the oldest open transaction the caller may see (the likely
//! holder), and the caller's transaction commits. A database still at an older version keeps its
//! NOTIFY: its listeners would only read the log after a reconnect. So does a send in the
//! `protojson` wire format (the caller decides, in `send`): it is for upstream Go replicas, which
//! never read the log.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{direct_function_call, PgLogLevel, PgSqlErrorCode};

use crate::settings;

/// Whether this database's API has the exact replay (0.4.0 and later): only then do listeners
/// read the log at every heartbeat.
const HAS_EXACT_REPLAY: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc AS p \
        JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
         AND d.objid = p.oid AND d.deptype = 'e' \
        JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'bytebase_signal' \
       WHERE p.proname = 'bytebase_signal_replay_after')";

/// The warning's message and detail, in SQL so that the pure-SQL edition words it identically.
/// `$1` is the usage, `$2` the limit, `$3` the number of signals, `$4` the role the caller acts
/// as: the detail shows only sessions that role may see in `pg_stat_activity` itself (its own
/// roles' sessions, or all with `pg_read_all_stats`), not what the function's owner may see.
const WARNING: &str = "SELECT pg_catalog.format('bytebase_signal: the notification queue is %s%% full, at or above \
        bytebase_signal.notify_queue_limit (%s%%): %s logged without NOTIFY; listeners read it from the log at their \
        next heartbeat', \
        pg_catalog.round(($1 * 100::double precision)::numeric, 1), \
        pg_catalog.round(($2 * 100::double precision)::numeric, 1), \
        CASE WHEN $3 = 1::bigint THEN 'the signal was' ELSE $3::text || ' signals were' END), \
    coalesce((SELECT pg_catalog.format('The oldest open transaction you may see, which may be the listening session \
                  holding the queue: pid %s (application_name %L, user %L, %s since %s).', \
                  a.pid, a.application_name, a.usename, a.state, a.xact_start) \
                FROM pg_catalog.pg_stat_activity AS a \
               WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.xact_start IS NOT NULL \
                 AND a.backend_type = 'client backend' \
                 AND (pg_catalog.pg_has_role($4, a.usesysid, 'MEMBER') \
                      OR pg_catalog.pg_has_role($4, 'pg_read_all_stats', 'MEMBER')) \
               ORDER BY a.xact_start LIMIT 1), \
             'No other open transaction is visible to you.')";

/// What to do about it, for the warning's hint.
const HINT: &str =
    "A session that ran LISTEN and stays in a transaction keeps every notification queued for all \
    listeners: end its transaction, or pg_terminate_backend() it.";

/// Whether the `signals` just logged must go without NOTIFY because the queue is at or above the
/// limit (and the database is at 0.4.0); if so, says so in a WARNING.
pub(crate) fn too_full_to_notify(signals: usize) -> bool {
    let limit = settings::notify_queue_limit();
    // SAFETY: a builtin taking no arguments and returning a float8 datum.
    let usage =
        unsafe { direct_function_call::<f64>(pg_sys::pg_notification_queue_usage, &[]) }.unwrap_or(0.0);
    if usage < limit {
        return false;
    }
    // Rare (only at the limit), so asked each time: an update may have happened since.
    let exact = Spi::get_one::<bool>(HAS_EXACT_REPLAY)
        .unwrap_or_else(|e| error!("bytebase_signal: checking the database's version failed: {e}"));
    if exact != Some(true) {
        return false;
    }
    let signals = i64::try_from(signals).unwrap_or(i64::MAX);
    // SAFETY: reads a backend global, always set inside a transaction.
    let caller = unsafe { pg_sys::GetOuterUserId() };
    let (message, detail) = Spi::get_two_with_args::<String, String>(
        WARNING,
        &[usage.into(), limit.into(), signals.into(), caller.into()],
    )
    .unwrap_or_else(|e| error!("bytebase_signal: wording the queue warning failed: {e}"));
    let message = message.unwrap_or_else(|| "bytebase_signal: the notification queue is too full".to_owned());
    ErrorReport::new(PgSqlErrorCode::ERRCODE_WARNING, message, "bytebase_signal")
        .set_detail(detail.unwrap_or_default())
        .set_hint(HINT)
        .report(PgLogLevel::WARNING);
    true
}
