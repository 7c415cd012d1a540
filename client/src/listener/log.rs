//! Reading the durable signal log: what this database offers (found once per connection), and the
//! replays themselves.
//!
//! Two ways to ask, both returning, in the same round trip, the server's `now()` (the "known
//! alive" mark), its `pg_current_snapshot()` and who the server is (its postmaster's start time):
//!
//! - **after a snapshot** (`bytebase_signal_replay_after`, extension and pure-SQL edition 0.4.0):
//!   the rows whose transactions that snapshot did not see committed. Fed with the snapshot of the
//!   previous replay on the same server, it returns exactly what committed since, however long a
//!   sender's transaction stayed open. The function is STABLE, so it reads with the calling
//!   statement's snapshot: the very one `pg_current_snapshot()` reports beside it.
//! - **since a time** (`bytebase_signal_replay`, 0.2.0 and later): the rows stamped since a mark
//!   minus a grace period; for a listener's first catch-up, after a failover or restart (a
//!   snapshot is only meaningful on the server that took it), and for databases before 0.4.0.
//!
//! Every statement is sent as an unnamed one in a single round trip (`query_typed`): it works
//! through a transaction-pooling proxy, where a named prepared statement would meet another server
//! connection on its next use.

use std::time::{Duration, SystemTime};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};
use tracing::warn;

#[cfg(test)]
use crate::listener::config::DEFAULT_REPLAY_FUNCTION;
use crate::listener::config::{tagged, MAX_REPLAY_GRACE, STATEMENT_TAG};
use crate::signal::Signal;
use crate::validate::RunUid;
use crate::wire::SignalKind;

/// The longest look-back a replay asks for: the longest retention.
const MAX_GRACE: Duration = MAX_REPLAY_GRACE;

/// The suffix of the exact replay function's name, after the time-based one's.
const AFTER_SUFFIX: &str = "_after";

/// What this database's log offers, as far as this connection's role may use it.
#[derive(Clone, Debug)]
pub(crate) struct Log {
    /// `bytebase_signal_replay(timestamptz)`, as named in the configuration.
    since: String,
    /// `bytebase_signal_replay_after(pg_snapshot)`, where it exists and may be executed.
    after: Option<String>,
    /// Whether `after` exists but may not be executed by this role.
    after_not_granted: bool,
    /// How the project and approval input version are read (0.2.0's replay has neither).
    optional: &'static str,
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
    /// Classifies an error of running a replay; `None` if it is not about the log (a lost
    /// connection, a timeout) and should end the session instead.
    pub(crate) fn of(e: &tokio_postgres::Error) -> Option<Unavailable> {
        match e.code() {
            // A name that is no function name at all (`replay_function` misspelt) is as missing.
            Some(c) if *c == SqlState::UNDEFINED_FUNCTION || *c == SqlState::INVALID_NAME => {
                Some(Unavailable::Missing)
            }
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

/// A time-based replay: what was stamped since `since` (the server's `now()` if `None`) minus
/// `grace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Since {
    pub(crate) since: Option<SystemTime>,
    pub(crate) grace: Duration,
}

/// Which replay to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    /// What `snapshot` (a `pg_snapshot` in its text form) had not seen committed, joined with a
    /// time-based replay if `since` is given (after a reconnect: see `catch_up`).
    After { snapshot: String, since: Option<Since> },
    /// Time-based alone.
    Since(Since),
}

/// What one replay returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// The server's `now()` when the statement started: the new "known alive" mark.
    pub(crate) alive: SystemTime,
    /// The statement's snapshot, the next exact replay's starting point.
    pub(crate) snapshot: String,
    /// Which server answered (its postmaster's start time): a snapshot is only meaningful there.
    pub(crate) server: String,
    /// The server's transaction ids went back below the snapshot asked after (a crash lost the
    /// end of the WAL): the exact part may have skipped rows under reused ids.
    pub(crate) rewound: bool,
    /// Whether the session that ran the statement LISTENs on the listener's channel: through a
    /// transaction-pooling proxy it is another server connection, which does not.
    pub(crate) listening: bool,
    /// The logged signals, oldest first.
    pub(crate) signals: Vec<Logged>,
}

/// A signal read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) signal: Signal,
    /// How old its row's stamp was when the replay started, by the server's clock (`now()` of
    /// the replay minus the row's `created_at`, the clock when the send function ran).
    pub(crate) age: Duration,
}

impl Log {
    /// Finds what the log offers to this connection's role: `Ok(Err(_))` if it cannot be read.
    /// `since` is the time-based replay function, schema-qualified if need be.
    pub(crate) async fn detect(
        client: &Client,
        since: &str,
    ) -> Result<Result<Log, Unavailable>, tokio_postgres::Error> {
        let after = after_name(since);
        let row = client.query_typed_one(DETECT, &[(&since, Type::TEXT), (&after, Type::TEXT)]).await?;
        let (exists, granted, scoped, after_exists, after_granted): (bool, bool, bool, bool, bool) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?);
        Ok(match (exists, granted) {
            (false, _) => Err(Unavailable::Missing),
            (true, false) => Err(Unavailable::NotGranted),
            (true, true) => Ok(Log {
                since: since.to_owned(),
                after: after_granted.then_some(after),
                after_not_granted: after_exists && !after_granted,
                // 0.2.0's replay, without the two columns: read them through `to_jsonb` of the
                // whole row, NULL now and the real values once the database is updated under
                // this connection.
                optional: if scoped {
                    "r.project, r.approval_input_version"
                } else {
                    "pg_catalog.to_jsonb(r) ->> 'project', \
                     (pg_catalog.to_jsonb(r) ->> 'approval_input_version')::bigint"
                },
            }),
        })
    }

    /// A log as a detection could find it, for the decisions' unit tests: exact replays or not.
    #[cfg(test)]
    pub(crate) fn for_tests(exact: bool) -> Log {
        Log {
            since: DEFAULT_REPLAY_FUNCTION.to_owned(),
            after: exact.then(|| after_name(DEFAULT_REPLAY_FUNCTION)),
            after_not_granted: false,
            optional: "NULL, NULL",
        }
    }

    /// Whether exact replays are possible (0.4.0, and granted).
    pub(crate) fn exact(&self) -> bool {
        self.after.is_some()
    }

    /// Whether the exact replay function exists but this role may not execute it (an update to
    /// 0.4.0 without its GRANT): time-based replays work, and a warning says what is missing.
    pub(crate) fn after_not_granted(&self) -> bool {
        self.after_not_granted
    }

    /// The exact replay function's name, for messages.
    pub(crate) fn after_name(&self) -> String {
        after_name(&self.since)
    }

    /// Runs `ask`, restricted to `only` these uids if given (strict mode's confirmations), on a
    /// session that should be LISTENing on `channel`.
    pub(crate) async fn replay(
        &self,
        client: &Client,
        ask: &Ask,
        channel: &str,
        only: Option<&[i64]>,
    ) -> Result<Replayed, tokio_postgres::Error> {
        let only = only.map(<[i64]>::to_vec);
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> =
            vec![(&channel, Type::TEXT), (&only, Type::INT8_ARRAY)];
        let (since, snapshot) = match ask {
            Ask::After { snapshot, since } if self.after.is_some() => (*since, Some(snapshot)),
            Ask::After { since, .. } => {
                // Not reachable (the plan asks for an exact replay only where it exists); the
                // widest time-based one is the safe answer.
                (Some(since.unwrap_or(Since { since: None, grace: MAX_GRACE })), None)
            }
            Ask::Since(since) => (Some(*since), None),
        };
        // A grace beyond the longest retention only asks for rows that cannot exist (and an
        // interval PostgreSQL may not represent).
        let since = since.map(|s| (s.since, s.grace.min(MAX_GRACE).as_secs_f64()));
        let mut parts = Vec::new();
        let mut rewound = String::from("false");
        if let (Some(snapshot), Some(after)) = (snapshot, &self.after) {
            params.push((snapshot, Type::TEXT));
            let n = params.len();
            parts.push(format!("SELECT {COLUMNS} FROM {after}(${n}::text::pg_snapshot)"));
            rewound = format!(
                "pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()) \
                 < pg_catalog.pg_snapshot_xmax(${n}::text::pg_snapshot)"
            );
        }
        if let Some((at, grace)) = &since {
            params.push((at, Type::TIMESTAMPTZ));
            params.push((grace, Type::FLOAT8));
            let n = params.len();
            let call = format!(
                "{}(coalesce(${}::timestamptz, pg_catalog.now()) - pg_catalog.make_interval(secs => ${n}::float8))",
                self.since,
                n - 1
            );
            // Alone, the whole row: a 0.2.0 log's has fewer columns (see `optional`).
            parts.push(if parts.is_empty() {
                format!("SELECT * FROM {call}")
            } else {
                format!("SELECT {COLUMNS} FROM {call}")
            });
        }
        let from = parts.join(" UNION ");
        let sql = format!(
            "{STATEMENT_TAG} SELECT pg_catalog.now(), pg_catalog.pg_current_snapshot()::text, \
                    pg_catalog.pg_postmaster_start_time()::text, {rewound}, \
                    EXISTS (SELECT FROM pg_catalog.pg_listening_channels() AS c WHERE c = $1), \
                    r.type, r.uid, {optional}, r.created_at \
               FROM (SELECT 1) AS one \
               LEFT JOIN ({from}) AS r ON $2::bigint[] IS NULL OR r.uid = ANY ($2::bigint[]) \
              ORDER BY r.created_at, r.id",
            optional = self.optional
        );
        decode(client.query_typed(&sql, &params).await?)
    }
}

/// The exact replay function's name beside the time-based one named `since`, which may be
/// schema-qualified and quoted (`"Signals"."bytebase_signal_replay"`): the suffix goes inside a
/// closing quote, or `to_regprocedure` would reject the name's syntax.
fn after_name(since: &str) -> String {
    match since.strip_suffix('"') {
        Some(quoted) => format!("{quoted}{AFTER_SUFFIX}\""),
        None => format!("{since}{AFTER_SUFFIX}"),
    }
}

/// The columns both replay functions return (0.3.0 and later), for a UNION of the two.
const COLUMNS: &str = "id, type, uid, created_at, project, approval_input_version";

/// The server's `now()` and identity, for a heartbeat where no exact replay is possible.
pub(crate) async fn clock(client: &Client) -> Result<SystemTime, tokio_postgres::Error> {
    client.query_typed_one(CLOCK, &[]).await?.try_get(0)
}

/// Who the server is: its postmaster's start time, which differs between servers and changes at
/// every restart (a crash can lose the end of the WAL, and with it transaction ids that then
/// come again).
pub(crate) async fn server_identity(client: &Client) -> Result<String, tokio_postgres::Error> {
    client.query_typed_one(IDENTITY, &[]).await?.try_get(0)
}

/// What the log offers this role (`Log::detect`), tagged as a listener's statement.
pub(crate) const DETECT: &str = tagged!(
    "SELECT f.since IS NOT NULL, \
          coalesce(pg_catalog.has_function_privilege(f.since, 'EXECUTE'), false), \
          coalesce('project' = ANY (p.proargnames), false), \
          f.after IS NOT NULL, \
          coalesce(pg_catalog.has_function_privilege(f.after, 'EXECUTE'), false) \
     FROM (SELECT pg_catalog.to_regprocedure($1 || '(timestamptz)') AS since, \
                  pg_catalog.to_regprocedure($2 || '(pg_snapshot)') AS after) AS f \
     LEFT JOIN pg_catalog.pg_proc AS p ON p.oid = f.since"
);

/// The clock read, tagged as a listener's statement (`super::STATEMENT_TAG`).
pub(crate) const CLOCK: &str = tagged!("SELECT pg_catalog.now()");

/// Who the server is, tagged as a listener's statement.
pub(crate) const IDENTITY: &str = tagged!("SELECT pg_catalog.pg_postmaster_start_time()::text");

/// The rows of a replay statement.
fn decode(rows: Vec<Row>) -> Result<Replayed, tokio_postgres::Error> {
    let mut replayed = Replayed {
        alive: SystemTime::UNIX_EPOCH,
        snapshot: String::new(),
        server: String::new(),
        rewound: false,
        listening: false,
        signals: Vec::new(),
    };
    replayed.signals.reserve(rows.len());
    for row in rows {
        replayed.alive = row.try_get(0)?;
        replayed.snapshot = row.try_get(1)?;
        replayed.server = row.try_get(2)?;
        replayed.rewound = row.try_get(3)?;
        replayed.listening = row.try_get(4)?;
        let (Some(kind), Some(uid)) = (row.try_get::<_, Option<&str>>(5)?, row.try_get::<_, Option<i64>>(6)?)
        else {
            continue; // the LEFT JOIN's empty row
        };
        let project: Option<String> = row.try_get(7)?;
        let approval_input_version: Option<i64> = row.try_get(8)?;
        let created_at: SystemTime = row.try_get(9)?;
        match (SignalKind::ALL.into_iter().find(|k| k.seed_type() == kind), RunUid::new(uid)) {
            (Some(kind), Ok(uid)) => replayed.signals.push(Logged {
                signal: Signal { kind, uid, project, approval_input_version },
                // A row stamped after the replay's start (a clock step back) is as young as can be.
                age: replayed.alive.duration_since(created_at).unwrap_or_default(),
            }),
            // The table's CHECK constraints make this unreachable unless someone altered it.
            _ => warn!(kind, uid, "unexpected row in the signal log ignored"),
        }
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_replay_is_named_beside_the_time_based_one_inside_its_quotes() {
        assert_eq!(after_name("bytebase_signal_replay"), "bytebase_signal_replay_after");
        assert_eq!(after_name("meta.bytebase_signal_replay"), "meta.bytebase_signal_replay_after");
        assert_eq!(
            after_name(r#""Sig"."bytebase_signal_replay""#),
            r#""Sig"."bytebase_signal_replay_after""#
        );
    }
}
