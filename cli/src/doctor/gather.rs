//! The facts each check judges, read from the server. Every statement is an unnamed one
//! (`query_typed`), so that the doctor also works through a transaction-pooling proxy, where it
//! should say what is wrong rather than fail on a prepared statement.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use bytebase_signal_client::listener::{DEFAULT_APPLICATION_NAME, STATEMENT_TAG};
use bytebase_signal_client::wire::{quote_ident, CHANNEL};

use super::decide::{
    Api, EditionFacts, Grant, Holder, ListenerSession, LogFacts, PrivilegeFacts, QueueFacts,
    REPLAY_FUNCTIONS, SEND_FUNCTIONS,
};
use bytebase_signal_client::limits::DEFAULT_NOTIFY_QUEUE_LIMIT;

/// The doctor's `application_name`: its sessions are not mistaken for listeners (the CLI's
/// default is the listener's), and its own are left out of what it gathers.
pub(crate) const DOCTOR_APPLICATION_NAME: &str = "bytebase-signal-doctor";

/// Who the doctor is on the server and what the server is.
pub(crate) struct Session {
    pub(crate) pid: i32,
    pub(crate) user: String,
    pub(crate) database: String,
    pub(crate) in_recovery: bool,
    pub(crate) server_version: String,
}

pub(crate) async fn session(client: &Client) -> Result<Session, tokio_postgres::Error> {
    let row = client
        .query_typed_one(
            "SELECT pg_catalog.pg_backend_pid(), current_user::text, pg_catalog.current_database()::text, \
                    pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('server_version')",
            &[],
        )
        .await?;
    Ok(Session {
        pid: row.try_get(0)?,
        user: row.try_get(1)?,
        database: row.try_get(2)?,
        in_recovery: row.try_get(3)?,
        server_version: row.try_get(4)?,
    })
}

/// The extension from `pg_extension`, the pure-SQL edition from its internal function (whose
/// comment names its version: `bytebase_signal pure-SQL edition 0.4.0: ...`), and what the
/// server's extension files offer.
pub(crate) async fn edition(client: &Client) -> Result<EditionFacts, tokio_postgres::Error> {
    let row = client
        .query_typed_one(
            "SELECT (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'bytebase_signal'), \
                    (SELECT n.nspname::text FROM pg_catalog.pg_extension e \
                       JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'bytebase_signal'), \
                    p.schema, \
                    substring(p.comment FROM 'pure-SQL edition ([0-9][0-9.]*)'), \
                    (SELECT a.default_version FROM pg_catalog.pg_available_extensions a WHERE a.name = 'bytebase_signal') \
               FROM (SELECT) AS one \
               LEFT JOIN (SELECT n.nspname::text AS schema, pg_catalog.obj_description(f.oid, 'pg_proc') AS comment \
                            FROM pg_catalog.pg_proc f JOIN pg_catalog.pg_namespace n ON n.oid = f.pronamespace \
                           WHERE f.proname = '_bytebase_signal_send' \
                           ORDER BY f.oid DESC LIMIT 1) AS p ON true",
            &[],
        )
        .await?;
    let extension = match (row.try_get::<_, Option<String>>(0)?, row.try_get::<_, Option<String>>(1)?) {
        (Some(version), Some(schema)) => Some((version, schema)),
        _ => None,
    };
    let pure_sql = row.try_get::<_, Option<String>>(2)?.map(|schema| (row.try_get(3).ok().flatten(), schema));
    Ok(EditionFacts { extension, pure_sql, available: row.try_get(4)? })
}

/// Whether each function of the API exists in the edition's schema and may be executed.
async fn grants(
    client: &Client,
    schema: &str,
    signatures: &[&'static str],
) -> Result<Vec<Grant>, tokio_postgres::Error> {
    let names: Vec<String> = signatures.iter().map(|s| format!("{}.{s}", quote_ident(schema))).collect();
    let rows = client
        .query_typed(
            "SELECT f.oid IS NOT NULL, coalesce(pg_catalog.has_function_privilege(f.oid, 'EXECUTE'), false) \
               FROM unnest($1::text[]) WITH ORDINALITY AS s(name, n) \
               LEFT JOIN LATERAL (SELECT pg_catalog.to_regprocedure(s.name)::oid AS oid) AS f ON true \
              ORDER BY s.n",
            &[(&names, Type::TEXT_ARRAY)],
        )
        .await?;
    signatures
        .iter()
        .zip(rows)
        .map(|(&signature, row)| Ok(Grant { signature, exists: row.try_get(0)?, granted: row.try_get(1)? }))
        .collect()
}

pub(crate) async fn privileges(
    client: &Client,
    api: &Api,
    role: &str,
) -> Result<PrivilegeFacts, tokio_postgres::Error> {
    let schema_usage = client
        .query_typed_one(
            "SELECT coalesce(pg_catalog.has_schema_privilege(n.oid, 'USAGE'), false) \
               FROM (SELECT (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) AS oid) AS n",
            &[(&api.schema, Type::TEXT)],
        )
        .await?
        .try_get(0)?;
    Ok(PrivilegeFacts {
        role: role.to_owned(),
        schema: api.schema.clone(),
        schema_usage,
        sends: grants(client, &api.schema, &SEND_FUNCTIONS).await?,
        replays: grants(client, &api.schema, &REPLAY_FUNCTIONS).await?,
    })
}

/// The most log rows counted one by one; beyond it the count is given as "about".
const COUNT_BOUND: i64 = 1_000_000;

/// The log's settings and size; its rows counted from the table where this role may read it,
/// else through the time-based replay (bounded by the retention), else the planner's estimate
/// (none before the table was first vacuumed or analysed: `reltuples` is -1 then).
pub(crate) async fn log(client: &Client, api: &Api) -> Result<LogFacts, tokio_postgres::Error> {
    let table = format!("{}.bytebase_signal_log", quote_ident(&api.schema));
    let replay = format!("{}.bytebase_signal_replay(timestamptz)", quote_ident(&api.schema));
    let row = client
        .query_typed_one(
            "SELECT t.oid IS NOT NULL, \
                    nullif(pg_catalog.current_setting('bytebase_signal.retention', true), ''), \
                    pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(t.oid)), \
                    (SELECT c.reltuples::bigint FROM pg_catalog.pg_class c WHERE c.oid = t.oid AND c.reltuples >= 0), \
                    coalesce(pg_catalog.has_table_privilege(t.oid, 'SELECT'), false), \
                    coalesce(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure($2), 'EXECUTE'), false) \
               FROM (SELECT pg_catalog.to_regclass($1)::oid AS oid) AS t",
            &[(&table, Type::TEXT), (&replay, Type::TEXT)],
        )
        .await?;
    let mut facts = LogFacts {
        exists: row.try_get(0)?,
        retention: row.try_get(1)?,
        size: row.try_get(2)?,
        rows: row.try_get::<_, Option<i64>>(3)?.map(|n| (n, false)),
        ..LogFacts::default()
    };
    let (table_readable, replay_granted): (bool, bool) = (row.try_get(4)?, row.try_get(5)?);
    let source = match (table_readable, replay_granted) {
        (true, _) => Some(("table", table)),
        (false, true) => {
            Some(("replay", format!("{}.bytebase_signal_replay('-infinity')", quote_ident(&api.schema))))
        }
        (false, false) => None,
    };
    if let (true, Some((through, from))) = (facts.exists, source) {
        // Counted up to a bound, so that a huge log (a retention set far too long) answers within
        // the doctor's deadline. The table's oldest row comes from its created_at index; the
        // replay returns its rows oldest first, so the bounded rows hold the oldest.
        let sql = if through == "table" {
            format!(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM {from} LIMIT {bound}) AS l), \
                        extract(epoch FROM pg_catalog.now() - (SELECT min(created_at) FROM {from}))::float8",
                bound = COUNT_BOUND + 1
            )
        } else {
            format!(
                "SELECT count(*), extract(epoch FROM pg_catalog.now() - min(l.created_at))::float8 \
                   FROM (SELECT created_at FROM {from} LIMIT {bound}) AS l",
                bound = COUNT_BOUND + 1
            )
        };
        let counted = client.query_typed_one(&sql, &[]).await?;
        let rows: i64 = counted.try_get(0)?;
        facts.rows = Some((rows.min(COUNT_BOUND), true));
        facts.rows_capped = rows > COUNT_BOUND;
        facts.oldest_age_secs = counted.try_get(1)?;
        facts.read_through = Some(through);
    }
    Ok(facts)
}

/// The queue's usage, the limit this session's sends would apply (if `limit_applies`: the
/// installed version has one), and the oldest open transaction of a client other than the
/// doctor (`pid`), as the send functions' warning names it.
pub(crate) async fn queue(
    client: &Client,
    pid: i32,
    limit_applies: bool,
) -> Result<QueueFacts, tokio_postgres::Error> {
    let row = client
        .query_typed_one(
            "SELECT pg_catalog.pg_notification_queue_usage(), \
                    nullif(pg_catalog.current_setting('bytebase_signal.notify_queue_limit', true), '')",
            &[],
        )
        .await?;
    let setting: Option<String> = row.try_get(1)?;
    let parsed = setting.as_deref().map(|s| s.trim().parse::<f64>());
    let (limit, unreadable_limit) = match parsed {
        None => (DEFAULT_NOTIFY_QUEUE_LIMIT, None),
        Some(Ok(limit)) if (0.0..=1.0).contains(&limit) => (limit, None),
        Some(_) => (DEFAULT_NOTIFY_QUEUE_LIMIT, setting),
    };
    let holder = client
        .query_typed_opt(
            "SELECT a.pid, a.application_name, host(a.client_addr), a.state, \
                    date_trunc('second', a.xact_start)::text, \
                    extract(epoch FROM pg_catalog.now() - a.xact_start)::float8 \
               FROM pg_catalog.pg_stat_activity a \
              WHERE a.pid <> $1 AND a.xact_start IS NOT NULL AND a.backend_type = 'client backend' \
                AND a.application_name IS DISTINCT FROM $2 \
              ORDER BY a.xact_start LIMIT 1",
            &[(&pid, Type::INT4), (&DOCTOR_APPLICATION_NAME, Type::TEXT)],
        )
        .await?
        .map(|row| holder(&row))
        .transpose()?;
    Ok(QueueFacts { usage: row.try_get(0)?, limit, limit_applies, unreadable_limit, holder })
}

fn holder(row: &Row) -> Result<Holder, tokio_postgres::Error> {
    Ok(Holder {
        pid: row.try_get(0)?,
        application_name: row.try_get(1)?,
        client_addr: row.try_get(2)?,
        state: row.try_get(3)?,
        since: row.try_get(4)?,
        age_secs: row.try_get(5)?,
    })
}

/// A statement that is a query calling a replay function: what another client's listener (or an
/// older one, untagged) runs at its heartbeat. Not an install script, which begins otherwise.
const REPLAY_CALL: &str = r"^\s*SELECT\M.*\mbytebase_signal_replay(_after)?\s*\(";

/// Sessions of this database that look like listeners: the listener's default
/// application_name, or a last statement that is a LISTEN on the channel, one the listener tags
/// as its own (every other statement it runs: its replays, its probe), or a query calling a
/// replay function (other clients' listeners). Other doctors are not listeners. Another role's session
/// shows this role only its database and application_name (not even its backend type), unless it
/// is a member of pg_read_all_stats.
pub(crate) async fn listeners(client: &Client) -> Result<Vec<ListenerSession>, tokio_postgres::Error> {
    let listen = format!(r#"^\s*LISTEN\s+"?{CHANNEL}"?\s*(;|$)"#);
    let rows = client
        .query_typed(
            "SELECT a.pid, coalesce(a.application_name, ''), host(a.client_addr), \
                    date_trunc('second', a.backend_start)::text, \
                    extract(epoch FROM pg_catalog.now() - a.backend_start)::float8 \
               FROM pg_catalog.pg_stat_activity a \
              WHERE a.datname = pg_catalog.current_database() \
                AND coalesce(a.backend_type, 'client backend') = 'client backend' \
                AND a.pid <> pg_catalog.pg_backend_pid() AND a.application_name IS DISTINCT FROM $3 \
                AND (a.application_name = $1 OR a.query ~* $2 OR pg_catalog.starts_with(a.query, $4) \
                     OR a.query ~* $5) \
              ORDER BY a.backend_start, a.pid",
            &[
                (&DEFAULT_APPLICATION_NAME, Type::TEXT),
                (&listen, Type::TEXT),
                (&DOCTOR_APPLICATION_NAME, Type::TEXT),
                (&STATEMENT_TAG, Type::TEXT),
                (&REPLAY_CALL, Type::TEXT),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ListenerSession {
                pid: row.try_get(0)?,
                application_name: row.try_get(1)?,
                client_addr: row.try_get(2)?,
                since: row.try_get(3)?,
                age_secs: row.try_get(4)?,
            })
        })
        .collect()
}
