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
const HAS_EXACT_REPLAY: &str = include_str!("../sql/extension/has_exact_replay.sql");

/// The warning's message, detail and hint, in SQL so that the pure-SQL edition words it
/// identically (the file says what its parameters are).
const WARNING: &str = include_str!("../sql/extension/queue_warning.sql");

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
    let (message, detail, hint) = Spi::get_three_with_args::<String, String, String>(
        WARNING,
        &[usage.into(), limit.into(), signals.into(), caller.into()],
    )
    .unwrap_or_else(|e| error!("bytebase_signal: wording the queue warning failed: {e}"));
    let message = message.unwrap_or_else(|| "bytebase_signal: the notification queue is too full".to_owned());
    ErrorReport::new(PgSqlErrorCode::ERRCODE_WARNING, message, "bytebase_signal")
        .set_detail(detail.unwrap_or_default())
        .set_hint(hint.unwrap_or_default())
        .report(PgLogLevel::WARNING);
    true
}
