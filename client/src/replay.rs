//! Reading the durable signal log (`bytebase_signal_replay`, extension 0.2.0; with each signal's
//! project and approval input version from 0.3.0, in either edition): what a listener
//! does after every (re)LISTEN to recover the signals committed while it was not listening, and in
//! strict mode to confirm that a notification was really sent through the extension.
//!
//! One round trip returns both the rows and the server's `now()`, the new "known alive" mark: the
//! next replay starts from that server time minus the grace period, so the client's clock never
//! matters. `now()` is the statement's start, taken before its snapshot, so every transaction that
//! committed before the mark is visible to this query or to a later one.

use std::time::{Duration, SystemTime};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};
use tracing::warn;

use crate::signal::Signal;
use crate::validate::RunUid;
use crate::wire::SignalKind;

/// The longest look-back a replay asks for: the extension's longest retention (30 days).
const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The prepared replay statement of one connection.
pub(crate) struct Log {
    replay: Statement,
}

/// Why the log cannot be read on this connection; the listener then works as a plain listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// No such function: extension 0.1.0, plain `pg_notify` senders, or another schema.
    Missing,
    /// The listener's role lacks EXECUTE on it.
    NotGranted,
}

impl Unavailable {
    /// Classifies an error of preparing or running the replay; `None` if it is not about the log
    /// (a lost connection, a timeout) and should end the session instead.
    pub(crate) fn of(e: &tokio_postgres::Error) -> Option<Unavailable> {
        match e.code() {
            Some(c) if *c == SqlState::UNDEFINED_FUNCTION => Some(Unavailable::Missing),
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => Some(Unavailable::NotGranted),
            _ => None,
        }
    }

    /// What it means, for the log line.
    pub(crate) fn explain(self, function: &str) -> String {
        match self {
            Unavailable::Missing => format!(
                "{function}(timestamptz) does not exist in this database (extension older than 0.2.0, \
                 plain pg_notify senders, or its schema not on the search_path): signals sent while \
                 the listener is disconnected are not recovered"
            ),
            Unavailable::NotGranted => format!(
                "this role may not execute {function}(timestamptz) (GRANT EXECUTE ON FUNCTION \
                 {function}(timestamptz) TO <listener role>): signals sent while the listener is \
                 disconnected are not recovered"
            ),
        }
    }
}

/// What one replay returned.
pub(crate) struct Replayed {
    /// The server's `now()` when the query started: the new "known alive" mark.
    pub(crate) alive: SystemTime,
    /// The logged signals, oldest first.
    pub(crate) signals: Vec<Signal>,
}

impl Log {
    /// Prepares the statements; fails with an error [`Unavailable::of`] recognises when the
    /// function is missing.
    pub(crate) async fn prepare(client: &Client, function: &str) -> Result<Log, tokio_postgres::Error> {
        let direct = replay_query(function, "r.project, r.approval_input_version");
        match client.prepare(&direct).await {
            // A 0.2.0 replay, without the two columns. Read them through `to_jsonb` of the whole
            // row: NULL now, and the real values once the database is updated under this
            // connection (a statement naming the columns, or NULLs, would stay blind to them).
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_COLUMN) => {
                let by_name = "to_jsonb(r) ->> 'project', (to_jsonb(r) ->> 'approval_input_version')::bigint";
                Ok(Log { replay: client.prepare(&replay_query(function, by_name)).await? })
            }
            prepared => Ok(Log { replay: prepared? }),
        }
    }

    /// The signals logged since `since` minus `grace` (since the server's `now()` minus `grace`
    /// when there is no mark yet), restricted to `only` these uids if given.
    pub(crate) async fn replay(
        &self,
        client: &Client,
        since: Option<SystemTime>,
        grace: Duration,
        only: Option<&[i64]>,
    ) -> Result<Replayed, tokio_postgres::Error> {
        // A grace beyond the longest retention only asks for rows that cannot exist (and an
        // interval PostgreSQL may not represent).
        let grace = grace.min(MAX_GRACE).as_secs_f64();
        let rows = client.query(&self.replay, &[&since, &grace, &only]).await?;
        let mut alive = SystemTime::UNIX_EPOCH;
        let mut signals = Vec::with_capacity(rows.len());
        for row in rows {
            alive = row.try_get(0)?;
            let (Some(kind), Some(uid)) =
                (row.try_get::<_, Option<&str>>(1)?, row.try_get::<_, Option<i64>>(2)?)
            else {
                continue; // the LEFT JOIN's empty row
            };
            let project: Option<String> = row.try_get(3)?;
            let approval_input_version: Option<i64> = row.try_get(4)?;
            match (SignalKind::ALL.into_iter().find(|k| k.seed_type() == kind), RunUid::new(uid)) {
                (Some(kind), Ok(uid)) => signals.push(Signal { kind, uid, project, approval_input_version }),
                // The table's CHECK constraints make this unreachable unless someone altered it.
                _ => warn!(kind, uid, "unexpected row in the signal log ignored"),
            }
        }
        Ok(Replayed { alive, signals })
    }
}

/// The replay statement, reading the signal's project and version with `optional` (two columns).
///
/// A LEFT JOIN so that the mark comes back even when nothing was logged. The function is
/// SECURITY DEFINER, hence never inlined: the uid filter of strict mode is applied to its result,
/// server-side, which is cheap next to sending the rows.
fn replay_query(function: &str, optional: &str) -> String {
    format!(
        "SELECT now(), r.type, r.uid, {optional} \
           FROM (SELECT 1) AS one \
           LEFT JOIN {function}(coalesce($1::timestamptz, now()) - make_interval(secs => $2::float8)) AS r \
             ON $3::bigint[] IS NULL OR r.uid = ANY ($3) \
          ORDER BY r.created_at, r.id"
    )
}
