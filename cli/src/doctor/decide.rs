//! Each check's verdict from the facts it found: plain functions, no I/O, so that every branch
//! is unit-tested below. The facts are gathered in [`super::gather`] and [`super::round_trip`].

use std::cmp::Ordering;
use std::time::Duration;

use bytebase_signal_client::limits::DEFAULT_NOTIFY_QUEUE_LIMIT;
use bytebase_signal_client::listener::DEFAULT_REPLAY_GRACE;
use bytebase_signal_client::wire::quote_ident;

use super::report::{Check, CheckId};

/// The queue usage from which the doctor warns: far below any limit, but already a sign that
/// some listening session has stopped reading (a healthy queue is empty within milliseconds).
pub(crate) const QUEUE_WARN_USAGE: f64 = 0.05;

/// Clock skew above this is a warning.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(1);

/// The listeners' default replay grace (`bytebase-signal listen --grace`): a shorter retention
/// deletes rows a reconnecting listener still asks for.
const LISTENER_GRACE_SECS: f64 = DEFAULT_REPLAY_GRACE.as_secs() as f64;

/// How the connection was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectionFacts {
    /// `host 127.0.0.1, port 5432` or `socket /run/postgresql/.s.PGSQL.5432`.
    pub(crate) server: String,
    pub(crate) user: String,
    /// TLS version and cipher, `None`: not encrypted.
    pub(crate) tls: Option<(String, String)>,
}

pub(crate) fn connection(facts: &ConnectionFacts) -> Check {
    let encryption = match &facts.tls {
        Some((version, cipher)) => format!("{version} {cipher}"),
        None => "not encrypted".to_owned(),
    };
    Check::ok(CheckId::Connection, format!("{}, user {}, {encryption}", facts.server, facts.user))
}

/// The connection failed: `error` names each host, port and cause.
pub(crate) fn connection_failed(error: &str) -> Check {
    Check::fail(
        CheckId::Connection,
        error,
        "check the host, port, user and password (--dsn, DATABASE_URL, PG* variables), and that the \
         server accepts this client (pg_hba.conf, sslmode)",
    )
}

/// Whether the server is a primary; `version` is its `server_version`.
pub(crate) fn server_role(in_recovery: bool, version: &str) -> Check {
    if in_recovery {
        return Check::fail(
            CheckId::ServerRole,
            format!("standby (in recovery), PostgreSQL {version}: it cannot send, and refuses LISTEN during recovery"),
            "point at the primary: give every host and target_session_attrs=read-write \
             (host=db1,db2 ... target_session_attrs=read-write)",
        );
    }
    Check::ok(CheckId::ServerRole, format!("primary, PostgreSQL {version}"))
}

/// What is installed in the database, and what the server offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EditionFacts {
    /// The extension's version and schema, if it is installed.
    pub(crate) extension: Option<(String, String)>,
    /// The pure-SQL edition's version (from its internal function's comment, if readable) and
    /// schema, if it is installed.
    pub(crate) pure_sql: Option<(Option<String>, String)>,
    /// `pg_available_extensions.default_version`: the extension's files on this server.
    pub(crate) available: Option<String>,
}

/// The edition found, for the later checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Api {
    /// `extension` or `pure-SQL edition`.
    pub(crate) edition: &'static str,
    /// Its version, if known.
    pub(crate) version: Option<String>,
    /// The schema holding its functions and the log.
    pub(crate) schema: String,
}

/// The first version with `bytebase_signal.notify_queue_limit`.
const QUEUE_LIMIT_SINCE: &str = "0.4.0";

impl Api {
    /// Whether its sends skip NOTIFY at `bytebase_signal.notify_queue_limit` (0.4.0 and later;
    /// a pure-SQL edition of unknown version is taken to be current).
    pub(crate) fn has_queue_limit(&self) -> bool {
        self.version.as_deref().is_none_or(|v| !newer_version(QUEUE_LIMIT_SINCE, v))
    }
}

/// The edition's verdict, and the API the later checks use (`None`: nothing installed).
/// `release` is this doctor's own version, the newest pure-SQL edition it knows.
pub(crate) fn edition(facts: &EditionFacts, release: &str) -> (Check, Option<Api>) {
    if let Some((version, schema)) = &facts.extension {
        let api = Api { edition: "extension", version: Some(version.clone()), schema: schema.clone() };
        let found = format!("extension {version} in schema {schema}");
        let check = match &facts.available {
            Some(newer) if newer_version(newer, version) => Check::warn(
                CheckId::Edition,
                format!("{found}; {newer} is available on this server"),
                format!(
                    "ALTER EXTENSION bytebase_signal UPDATE, in one transaction with the grants {newer} \
                     needs (docs/upgrading.md)"
                ),
            ),
            _ => Check::ok(CheckId::Edition, format!("{found} (the newest on this server)")),
        };
        return (check, Some(api));
    }
    if let Some((version, schema)) = &facts.pure_sql {
        let api = Api { edition: "pure-SQL edition", version: version.clone(), schema: schema.clone() };
        let check = match version {
            Some(v) if newer_version(release, v) => Check::warn(
                CheckId::Edition,
                format!("pure-SQL edition {v} in schema {schema}; {release} is released"),
                format!(
                    "run sql/pure/install.sql of {release} with {schema} first on search_path (it updates \
                     in place, keeping the log and the grants; docs/upgrading.md)"
                ),
            ),
            Some(v) => Check::ok(CheckId::Edition, format!("pure-SQL edition {v} in schema {schema}")),
            None => {
                Check::ok(CheckId::Edition, format!("pure-SQL edition (version unknown) in schema {schema}"))
            }
        };
        return (check, Some(api));
    }
    let action = match &facts.available {
        Some(version) => format!(
            "as a superuser: CREATE EXTENSION bytebase_signal ({version} is available on this server), \
             then grant (README, Grant)"
        ),
        None => "the extension is not available on this server: run sql/pure/install.sql \
                 (psql -v ON_ERROR_STOP=1 -d <database> -f sql/pure/install.sql), or install the \
                 extension's files (make install) and CREATE EXTENSION bytebase_signal"
            .to_owned(),
    };
    (
        Check::fail(CheckId::Edition, "neither the extension nor the pure-SQL edition is installed", action),
        None,
    )
}

/// Whether version `a` is newer than `b` (dotted numbers; anything else compares as text).
pub(crate) fn newer_version(a: &str, b: &str) -> bool {
    let parse = |v: &str| v.split('.').map(str::parse::<u64>).collect::<Result<Vec<_>, _>>();
    match (parse(a), parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b) == Ordering::Greater,
        _ => a > b,
    }
}

/// One function of the API and whether the current role may execute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    /// `bytebase_cancel_task_run(bigint)`.
    pub(crate) signature: &'static str,
    /// Whether the installed version has it.
    pub(crate) exists: bool,
    /// Whether the current role may execute it.
    pub(crate) granted: bool,
}

/// What the current role may execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PrivilegeFacts {
    pub(crate) role: String,
    pub(crate) schema: String,
    /// Whether the role may use the edition's schema at all (without USAGE no function in it
    /// can be called, whatever its EXECUTE grant).
    pub(crate) schema_usage: bool,
    pub(crate) sends: Vec<Grant>,
    pub(crate) replays: Vec<Grant>,
}

/// The send functions, as the README's grant names them (0.1.0 has the first four).
pub(crate) const SEND_FUNCTIONS: [&str; 8] = [
    "bytebase_cancel_task_run(bigint)",
    "bytebase_cancel_plan_check_run(bigint)",
    "bytebase_cancel_task_runs(bigint[])",
    "bytebase_cancel_plan_check_runs(bigint[])",
    "bytebase_cancel_task_run(bigint, text)",
    "bytebase_cancel_plan_check_run(bigint, text, bigint)",
    "bytebase_cancel_task_runs(bigint[], text)",
    "bytebase_cancel_plan_check_runs(bigint[], text, bigint)",
];

/// The replay functions (0.2.0 has the first, 0.4.0 both).
pub(crate) const REPLAY_FUNCTIONS: [&str; 2] =
    ["bytebase_signal_replay(timestamptz)", "bytebase_signal_replay_after(pg_snapshot)"];

/// How much of one group of functions the role may execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coverage {
    /// Every function of the group that exists (or the version has none).
    All,
    /// Some.
    Partly,
    /// None of those that exist.
    Nothing,
}

fn coverage(grants: &[Grant]) -> Coverage {
    let existing: Vec<_> = grants.iter().filter(|g| g.exists).collect();
    match existing.iter().filter(|g| g.granted).count() {
        n if n == existing.len() => Coverage::All,
        0 => Coverage::Nothing,
        _ => Coverage::Partly,
    }
}

/// The functions that exist and may not be executed.
fn missing(grants: &[Grant]) -> Vec<&'static str> {
    grants.iter().filter(|g| g.exists && !g.granted).map(|g| g.signature).collect()
}

pub(crate) fn privileges(facts: &PrivilegeFacts) -> Check {
    let role = &facts.role;
    let (sends, replays) = (coverage(&facts.sends), coverage(&facts.replays));
    let grant = |functions: &[&str]| {
        let qualified: Vec<String> = functions.iter().map(|f| qualify(&facts.schema, f)).collect();
        format!("GRANT EXECUTE ON FUNCTION {} TO {}", qualified.join(", "), quote_ident(role))
    };
    let (missing_sends, missing_replays) = (missing(&facts.sends), missing(&facts.replays));
    if !facts.schema_usage {
        return Check::fail(
            CheckId::Privileges,
            format!(
                "role {role} has no USAGE on schema {}: it can call none of the functions in it",
                quote_ident(&facts.schema)
            ),
            format!("GRANT USAGE ON SCHEMA {} TO {}", quote_ident(&facts.schema), quote_ident(role)),
        );
    }
    match (sends, replays) {
        (Coverage::All, Coverage::All) => {
            Check::ok(CheckId::Privileges, format!("role {role} may send and replay"))
        }
        (Coverage::Nothing, Coverage::Nothing) => Check::fail(
            CheckId::Privileges,
            format!("role {role} may neither send nor replay"),
            format!(
                "for the application's role: {}; for the listeners' role: {}",
                grant(&missing_sends),
                grant(&missing_replays)
            ),
        ),
        (Coverage::All, Coverage::Nothing) => Check::warn(
            CheckId::Privileges,
            format!("role {role} may send but not replay: it suits a sender-only role (the application); a listener with it cannot replay the log"),
            format!("if it also listens: {}", grant(&missing_replays)),
        ),
        (Coverage::Nothing, Coverage::All) => Check::warn(
            CheckId::Privileges,
            format!("role {role} may replay but not send: it suits a listener-only role; an application with it cannot cancel"),
            format!("if it also sends: {}", grant(&missing_sends)),
        ),
        _ => {
            let all_missing: Vec<&str> = missing_sends.iter().chain(&missing_replays).copied().collect();
            Check::warn(
                CheckId::Privileges,
                format!("role {role} may not execute {}", all_missing.join(", ")),
                grant(&all_missing),
            )
        }
    }
}

/// What the log holds, as far as this role may see.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LogFacts {
    /// Whether the table exists (0.1.0 has none).
    pub(crate) exists: bool,
    /// `bytebase_signal.retention` as this session sees it (`None`: not set, the default).
    pub(crate) retention: Option<String>,
    /// Rows, counted (`Some(true)` exact) or the planner's estimate (`Some(false)`).
    pub(crate) rows: Option<(i64, bool)>,
    /// The count stopped at its bound: there are more rows than `rows` says.
    pub(crate) rows_capped: bool,
    /// `pg_size_pretty(pg_total_relation_size(..))`.
    pub(crate) size: Option<String>,
    /// The oldest row's age in seconds (`None`: empty, or not readable).
    pub(crate) oldest_age_secs: Option<f64>,
    /// How it was read: `None` if this role can read neither the table nor a replay.
    pub(crate) read_through: Option<&'static str>,
}

pub(crate) fn log(facts: &LogFacts) -> Check {
    if !facts.exists {
        return Check::warn(
            CheckId::Log,
            "no durable log (version 0.1.0): a listener disconnected when a cancel commits never sees it",
            "ALTER EXTENSION bytebase_signal UPDATE (docs/upgrading.md)",
        );
    }
    let retention = match &facts.retention {
        Some(setting) => format!("retention {setting}"),
        None => "retention 1h (the default)".to_owned(),
    };
    let rows = match facts.rows {
        Some((1, true)) => "1 row".to_owned(),
        Some((n, true)) if facts.rows_capped => format!("more than {n} rows"),
        Some((n, true)) => format!("{n} rows"),
        Some((n, false)) => format!("about {n} rows (estimated)"),
        None => "rows unknown".to_owned(),
    };
    let oldest = match facts.oldest_age_secs {
        Some(age) => format!(", the oldest {} old", human_duration(age)),
        // Empty, or nothing is known of the rows at all.
        None if facts.rows.is_none_or(|(n, exact)| exact && n == 0) => String::new(),
        None => ", the oldest's age unknown".to_owned(),
    };
    let size = facts.size.as_deref().map(|s| format!(", {s}")).unwrap_or_default();
    let found = format!("{retention}, {rows}{size}{oldest}");
    if facts.read_through.is_none() {
        return Check::warn(
            CheckId::Log,
            format!("{found}; this role can read neither the log nor its replay"),
            "a listener with this role cannot recover missed cancels: grant it the replay functions \
             (see privileges)",
        );
    }
    match facts.retention.as_deref().and_then(setting_secs) {
        Some(secs) if secs < LISTENER_GRACE_SECS => Check::warn(
            CheckId::Log,
            found,
            format!(
                "the retention is shorter than the listeners' default replay grace ({}): a listener \
                 that reconnects asks for rows already pruned; ALTER DATABASE <db> SET \
                 bytebase_signal.retention = '1h'",
                human_duration(LISTENER_GRACE_SECS)
            ),
        ),
        _ => Check::ok(CheckId::Log, found),
    }
}

/// A time setting (`90min`, `1h`, `3600`, `3600s`) in seconds, as PostgreSQL reads it; `None`
/// if it cannot be read (the doctor then does not judge it).
pub(crate) fn setting_secs(setting: &str) -> Option<f64> {
    let setting = setting.trim();
    let split = setting.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(setting.len());
    let (number, unit) = setting.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    Some(number * factor)
}

/// The session that most likely holds the notification queue: the oldest open transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Holder {
    pub(crate) pid: i32,
    pub(crate) application_name: Option<String>,
    pub(crate) client_addr: Option<String>,
    pub(crate) state: Option<String>,
    /// `xact_start`, as text.
    pub(crate) since: Option<String>,
    pub(crate) age_secs: Option<f64>,
}

impl Holder {
    fn describe(&self) -> String {
        let or_hidden = |v: &Option<String>| v.clone().unwrap_or_else(|| "hidden".to_owned());
        let mut text = format!(
            "pid {} (application_name '{}', client {}, {}",
            self.pid,
            self.application_name.as_deref().unwrap_or(""),
            self.client_addr.as_deref().unwrap_or("local"),
            or_hidden(&self.state)
        );
        if let Some(since) = &self.since {
            text.push_str(&format!(" since {since}"));
        }
        if let Some(age) = self.age_secs {
            text.push_str(&format!(", for {}", human_duration(age)));
        }
        text.push(')');
        text
    }
}

/// The notification queue as the send functions see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct QueueFacts {
    /// `pg_notification_queue_usage()`, 0..1.
    pub(crate) usage: f64,
    /// `bytebase_signal.notify_queue_limit` as this session sees it.
    pub(crate) limit: f64,
    /// Whether the installed version applies the limit (0.4.0 and later); an older one NOTIFYs
    /// until the queue is full, and then its commits fail.
    pub(crate) limit_applies: bool,
    /// The setting's text, when it could not be read as a number (the default is assumed).
    pub(crate) unreadable_limit: Option<String>,
    /// The oldest open transaction other than the doctor's.
    pub(crate) holder: Option<Holder>,
}

/// Whether a logged send goes out without NOTIFY now, and why: it explains a probe that never
/// arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WithoutNotify {
    /// Sends NOTIFY.
    No,
    /// The queue is at `bytebase_signal.notify_queue_limit`.
    QueueAtLimit,
    /// `bytebase_signal.notify_queue_limit` is 0: never.
    LimitZero,
}

impl QueueFacts {
    /// Whether a logged cancel goes out without NOTIFY now because the queue reached the limit.
    pub(crate) fn at_limit(&self) -> bool {
        self.limit_applies && self.limit > 0.0 && self.usage >= self.limit
    }

    /// Whether a logged cancel goes out without NOTIFY now, and why.
    pub(crate) fn without_notify(&self) -> WithoutNotify {
        if self.limit_applies && self.unreadable_limit.is_none() && self.limit == 0.0 {
            WithoutNotify::LimitZero
        } else if self.at_limit() {
            WithoutNotify::QueueAtLimit
        } else {
            WithoutNotify::No
        }
    }
}

pub(crate) fn queue(facts: &QueueFacts) -> Check {
    let percent = |v: f64| format!("{:.1} %", v * 100.0);
    let found = if facts.limit_applies {
        format!("{} full (bytebase_signal.notify_queue_limit {})", percent(facts.usage), percent(facts.limit))
    } else {
        format!("{} full (this version has no bytebase_signal.notify_queue_limit)", percent(facts.usage))
    };
    let holder = match &facts.holder {
        Some(h) => format!(
            "; the oldest open transaction, likely the listening session holding it: {}",
            h.describe()
        ),
        None => "; no other open transaction is visible to this role".to_owned(),
    };
    let end_it = match &facts.holder {
        Some(h) => format!(
            "end that session's transaction, or SELECT pg_terminate_backend({}); a listening session \
             that stays in a transaction keeps every notification queued for all listeners",
            h.pid
        ),
        None => "find the listening session that stays in a transaction (as a role that sees every \
                 session: pg_read_all_stats) and end it"
            .to_owned(),
    };
    if !facts.limit_applies {
        // Before 0.4.0 the sends NOTIFY whatever the usage: judged against the default limit.
        if facts.usage >= DEFAULT_NOTIFY_QUEUE_LIMIT {
            return Check::fail(
                CheckId::NotificationQueue,
                format!("{found}: at 100 % every NOTIFYing commit fails, cancels included{holder}"),
                format!("{end_it}; 0.4.0 sends logged cancels without NOTIFY near the limit (ALTER EXTENSION bytebase_signal UPDATE)"),
            );
        }
        if facts.usage >= QUEUE_WARN_USAGE {
            return Check::warn(CheckId::NotificationQueue, format!("{found}{holder}"), end_it);
        }
        return Check::ok(CheckId::NotificationQueue, found);
    }
    if let Some(text) = &facts.unreadable_limit {
        return Check::warn(
            CheckId::NotificationQueue,
            format!("{found}; bytebase_signal.notify_queue_limit is {text:?}, which is not a number"),
            "set bytebase_signal.notify_queue_limit to a number from 0 to 1 (default 0.5)",
        );
    }
    if facts.limit == 0.0 {
        return Check::warn(
            CheckId::NotificationQueue,
            format!("{found}: logged cancels never NOTIFY"),
            "listeners get every cancel from the log at their next heartbeat only; RESET \
             bytebase_signal.notify_queue_limit (default 0.5) unless that is meant",
        );
    }
    if facts.at_limit() {
        return Check::fail(
            CheckId::NotificationQueue,
            format!("{found}: logged cancels go out without NOTIFY, listeners get them at their next heartbeat{holder}"),
            end_it,
        );
    }
    if facts.usage >= QUEUE_WARN_USAGE {
        return Check::warn(CheckId::NotificationQueue, format!("{found}{holder}"), end_it);
    }
    Check::ok(CheckId::NotificationQueue, found)
}

/// A session that looks like a listener.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ListenerSession {
    pub(crate) pid: i32,
    pub(crate) application_name: String,
    pub(crate) client_addr: Option<String>,
    /// `backend_start` as text (`None`: hidden from this role).
    pub(crate) since: Option<String>,
    pub(crate) age_secs: Option<f64>,
}

pub(crate) fn listeners(sessions: &[ListenerSession], database: &str) -> Check {
    if sessions.is_empty() {
        return Check::warn(
            CheckId::Listeners,
            format!(
                "no listener connected to database {database} (no session with application_name \
                 'bytebase-signal' or whose last statement was LISTEN bytebase_signal or a listener's own)"
            ),
            "start the replicas' listeners (or bytebase-signal listen); a listener with its own \
             application_name is recognised only by its last statement",
        );
    }
    let described: Vec<String> = sessions
        .iter()
        .map(|s| {
            let since = match (&s.since, s.age_secs) {
                (Some(since), Some(age)) => format!(" since {since} ({})", human_duration(age)),
                _ => " (details hidden from this role)".to_owned(),
            };
            format!(
                "pid {} '{}' from {}{since}",
                s.pid,
                s.application_name,
                s.client_addr.as_deref().unwrap_or("local")
            )
        })
        .collect();
    let n = sessions.len();
    Check::ok(
        CheckId::Listeners,
        format!("{n} listener{}: {}", if n == 1 { "" } else { "s" }, described.join("; ")),
    )
}

/// What the probe was sent with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProbePath {
    /// The real send path: a project-scoped cancel through `function` (as shown), called as
    /// `call` (schema-qualified and quoted, whatever the search_path).
    Scoped { function: String, call: String, project: String },
    /// `pg_notify` on a channel of the doctor's own, because of `why`.
    Private { channel: String, why: Fallback },
}

/// Why the probe could not take the real send path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// No edition is installed.
    NoEdition,
    /// The installed version has no project-scoped send (before 0.3.0).
    NoScopedSend,
    /// This role may not execute the project-scoped send.
    NotGranted { function: String, role: String },
}

/// What happened to the probe.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RoundTripFacts {
    /// It arrived after `elapsed`.
    Arrived { path: ProbePath, elapsed: Duration },
    /// LISTEN succeeded, but the listening session does not list the channel: a statement ran on
    /// another server session.
    NotListening { channel: String },
    /// Two statements on the listening connection ran in different server sessions
    /// (`listening`), or in the sending connection's (`sender`): a pool hands them out per
    /// transaction.
    SessionsChange { sender: i32, listening: [i32; 2] },
    /// It did not arrive within `after`.
    TimedOut { path: ProbePath, after: Duration, without_notify: WithoutNotify },
    /// A statement or the second connection failed.
    Failed { what: &'static str, error: String },
}

const POOLER: &str = "a transaction-pooling proxy (PgBouncer pool_mode=transaction?)";
const POOLER_ACTION: &str = "connect listeners straight to the server or through a session-mode pool \
     (pool_mode=session); senders may stay on the transaction pool";

pub(crate) fn round_trip(facts: &RoundTripFacts) -> Check {
    match facts {
        RoundTripFacts::Arrived { path: ProbePath::Scoped { function, project, .. }, elapsed } => Check::ok(
            CheckId::RoundTrip,
            format!(
                "a cancel for project {project} sent with {function} arrived on channel bytebase_signal \
                 in {:.1} ms",
                elapsed.as_secs_f64() * 1000.0
            ),
        ),
        RoundTripFacts::Arrived { path: ProbePath::Private { channel, why }, elapsed } => Check::warn(
            CheckId::RoundTrip,
            format!(
                "a pg_notify on the doctor's own channel {channel} arrived in {:.1} ms, but the real send \
                 path was not tried: {}",
                elapsed.as_secs_f64() * 1000.0,
                fallback_reason(why)
            ),
            fallback_action(why),
        ),
        RoundTripFacts::NotListening { channel } => Check::fail(
            CheckId::RoundTrip,
            format!(
                "LISTEN {channel} succeeded, but the next statement's session does not listen on it: \
                 {POOLER} runs each transaction on another server connection"
            ),
            POOLER_ACTION,
        ),
        RoundTripFacts::SessionsChange { sender, listening: [first, second] } => {
            let seen = if first != second {
                format!(
                    "two statements on the listening connection ran in server sessions {first} and {second}"
                )
            } else {
                format!("the doctor's listening and sending connections both ran in server session {sender}")
            };
            Check::fail(
                CheckId::RoundTrip,
                format!(
                    "{seen}: {POOLER} hands out server connections per transaction, and notifications go \
                     to whichever ran LISTEN"
                ),
                POOLER_ACTION,
            )
        }
        RoundTripFacts::TimedOut { after, without_notify: WithoutNotify::LimitZero, .. } => Check::warn(
            CheckId::RoundTrip,
            format!(
                "the probe did not arrive within {} s: bytebase_signal.notify_queue_limit is 0, so logged \
                 cancels (the probe too) go out without NOTIFY and reach listeners from the log alone",
                after.as_secs_f64()
            ),
            "RESET bytebase_signal.notify_queue_limit (default 0.5) unless that is meant (see notification queue)",
        ),
        RoundTripFacts::TimedOut { after, without_notify: WithoutNotify::QueueAtLimit, .. } => Check::fail(
            CheckId::RoundTrip,
            format!(
                "the probe did not arrive within {} s: the queue is at bytebase_signal.notify_queue_limit, \
                 so it was logged without NOTIFY",
                after.as_secs_f64()
            ),
            "free the notification queue (see notification queue)",
        ),
        RoundTripFacts::TimedOut { after, .. } => Check::fail(
            CheckId::RoundTrip,
            format!(
                "the probe did not arrive within {} s although LISTEN succeeded: {POOLER} between here and \
                 the server delivers notifications to another client, or the server is overloaded",
                after.as_secs_f64()
            ),
            format!("{POOLER_ACTION}; on a slow server, try a longer --timeout"),
        ),
        RoundTripFacts::Failed { what, error } => Check::fail(
            CheckId::RoundTrip,
            format!("{what} failed: {error}"),
            "see the error; LISTEN and NOTIFY need a primary and a session of their own",
        ),
    }
}

fn fallback_reason(why: &Fallback) -> String {
    match why {
        Fallback::NoEdition => "no edition is installed".to_owned(),
        Fallback::NoScopedSend => {
            "the installed version has no project-scoped send (0.3.0 and later)".to_owned()
        }
        Fallback::NotGranted { function, role } => format!("role {role} may not execute {function}"),
    }
}

fn fallback_action(why: &Fallback) -> String {
    match why {
        Fallback::NoEdition => "install an edition (see edition)".to_owned(),
        Fallback::NoScopedSend => "ALTER EXTENSION bytebase_signal UPDATE (docs/upgrading.md)".to_owned(),
        Fallback::NotGranted { .. } => {
            "run the doctor as a role that may send to test the real path (see privileges)".to_owned()
        }
    }
}

/// This machine's clock minus the server's, in seconds, and the query round trip it was
/// measured with.
pub(crate) fn clock_skew(skew_secs: f64, round_trip: Duration) -> Check {
    let measured = format!("measured over a {:.1} ms round trip", round_trip.as_secs_f64() * 1000.0);
    let found = match skew_secs {
        s if s.abs() < 0.001 => {
            format!("this machine's clock agrees with the server's within 1 ms ({measured})")
        }
        s => format!(
            "this machine's clock is {:.3} s {} the server's ({measured})",
            s.abs(),
            if s > 0.0 { "ahead of" } else { "behind" }
        ),
    };
    if skew_secs.abs() > MAX_CLOCK_SKEW.as_secs_f64() {
        return Check::warn(
            CheckId::ClockSkew,
            found,
            "synchronise the clocks (NTP, chrony): logs and timestamps of the two disagree",
        );
    }
    Check::ok(CheckId::ClockSkew, found)
}

/// `90 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub(crate) fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// `function` qualified with `schema`, unless that is `public` (on everyone's search_path).
pub(crate) fn qualify(schema: &str, function: &str) -> String {
    if schema == "public" {
        function.to_owned()
    } else {
        format!("{}.{function}", quote_ident(schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;

    #[test]
    fn the_connection_line_names_server_user_and_encryption() {
        let mut facts = ConnectionFacts {
            server: "host db, port 5432".to_owned(),
            user: "app".to_owned(),
            tls: Some(("TLSv1.3".to_owned(), "TLS_AES_256_GCM_SHA384".to_owned())),
        };
        assert_eq!(connection(&facts).found, "host db, port 5432, user app, TLSv1.3 TLS_AES_256_GCM_SHA384");
        facts.tls = None;
        assert_eq!(connection(&facts).found, "host db, port 5432, user app, not encrypted");
        assert_eq!(connection_failed("refused").status, Status::Fail);
    }

    #[test]
    fn a_standby_fails_and_points_at_the_primary() {
        assert_eq!(server_role(false, "15.1").status, Status::Ok);
        let check = server_role(true, "15.1");
        assert_eq!(check.status, Status::Fail);
        assert!(check.action.unwrap().contains("target_session_attrs=read-write"));
    }

    #[test]
    fn editions_are_judged_by_what_is_installed_and_available() {
        let current = EditionFacts {
            extension: Some(("0.4.0".into(), "public".into())),
            available: Some("0.4.0".into()),
            ..EditionFacts::default()
        };
        let (check, api) = edition(&current, "0.4.0");
        assert_eq!(check.status, Status::Ok);
        assert_eq!(api.unwrap().schema, "public");

        let old = EditionFacts { extension: Some(("0.3.0".into(), "meta".into())), ..current.clone() };
        let (check, _) = edition(&old, "0.4.0");
        assert_eq!(check.status, Status::Warn);
        assert!(check.found.contains("0.4.0 is available"), "{}", check.found);
        assert!(check.action.unwrap().starts_with("ALTER EXTENSION bytebase_signal UPDATE"));

        let pure = EditionFacts {
            pure_sql: Some((Some("0.3.0".into()), "public".into())),
            ..EditionFacts::default()
        };
        assert_eq!(edition(&pure, "0.4.0").0.status, Status::Warn);
        assert_eq!(edition(&pure, "0.3.0").0.status, Status::Ok);

        let (check, api) =
            edition(&EditionFacts { available: Some("0.4.0".into()), ..EditionFacts::default() }, "0.4.0");
        assert_eq!((check.status, api), (Status::Fail, None));
        assert!(check.action.unwrap().contains("CREATE EXTENSION bytebase_signal"));
        let (check, _) = edition(&EditionFacts::default(), "0.4.0");
        assert!(check.action.unwrap().contains("sql/pure/install.sql"));
    }

    #[test]
    fn the_queue_limit_came_with_0_4_0() {
        let api = |version: Option<&str>| Api {
            edition: "extension",
            version: version.map(str::to_owned),
            schema: "public".into(),
        };
        assert!(api(Some("0.4.0")).has_queue_limit());
        assert!(api(Some("0.5.1")).has_queue_limit());
        assert!(!api(Some("0.3.0")).has_queue_limit());
        assert!(api(None).has_queue_limit());
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(newer_version("0.10.0", "0.9.0"));
        assert!(!newer_version("0.4.0", "0.4.0"));
        assert!(!newer_version("0.3.0", "0.4.0"));
    }

    fn grants(signatures: &[&'static str], granted: bool) -> Vec<Grant> {
        signatures.iter().map(|&signature| Grant { signature, exists: true, granted }).collect()
    }

    fn privilege_facts(send: bool, replay: bool) -> PrivilegeFacts {
        PrivilegeFacts {
            role: "app".into(),
            schema: "public".into(),
            schema_usage: true,
            sends: grants(&SEND_FUNCTIONS, send),
            replays: grants(&REPLAY_FUNCTIONS, replay),
        }
    }

    #[test]
    fn privileges_say_which_role_kind_a_partial_grant_suits() {
        assert_eq!(privileges(&privilege_facts(true, true)).status, Status::Ok);
        let neither = privileges(&privilege_facts(false, false));
        assert_eq!(neither.status, Status::Fail);
        assert!(neither.action.unwrap().contains("bytebase_signal_replay(timestamptz)"));
        let sender = privileges(&privilege_facts(true, false));
        assert_eq!(sender.status, Status::Warn);
        assert!(sender.found.contains("sender-only"), "{}", sender.found);
        assert_eq!(
            sender.action.unwrap(),
            "if it also listens: GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz), \
             bytebase_signal_replay_after(pg_snapshot) TO \"app\""
        );
        let listener = privileges(&privilege_facts(false, true));
        assert!(listener.found.contains("listener-only"), "{}", listener.found);

        let mut partly = privilege_facts(true, true);
        partly.replays[1].granted = false;
        partly.schema = "Meta".into();
        let check = privileges(&partly);
        assert_eq!(check.status, Status::Warn);
        assert_eq!(
            check.action.unwrap(),
            "GRANT EXECUTE ON FUNCTION \"Meta\".bytebase_signal_replay_after(pg_snapshot) TO \"app\""
        );
    }

    #[test]
    fn a_schema_without_usage_fails_whatever_the_function_grants() {
        let mut facts = privilege_facts(true, true);
        facts.schema = "Meta".into();
        facts.schema_usage = false;
        let check = privileges(&facts);
        assert_eq!(check.status, Status::Fail);
        assert_eq!(check.action.unwrap(), "GRANT USAGE ON SCHEMA \"Meta\" TO \"app\"");
    }

    #[test]
    fn functions_a_version_lacks_are_not_asked_for() {
        // 0.1.0: no replay at all, and the four unscoped sends.
        let mut old = privilege_facts(true, false);
        old.replays.iter_mut().for_each(|g| g.exists = false);
        old.sends[4..].iter_mut().for_each(|g| {
            g.exists = false;
            g.granted = false;
        });
        assert_eq!(privileges(&old).status, Status::Ok);
    }

    #[test]
    fn the_log_line_names_retention_rows_size_and_age() {
        let facts = LogFacts {
            exists: true,
            retention: None,
            rows: Some((3, true)),
            rows_capped: false,
            size: Some("48 kB".into()),
            oldest_age_secs: Some(150.0),
            read_through: Some("table"),
        };
        let check = log(&facts);
        assert_eq!(check.status, Status::Ok);
        assert_eq!(check.found, "retention 1h (the default), 3 rows, 48 kB, the oldest 2 min old");
        let short = LogFacts { retention: Some("30s".into()), ..facts.clone() };
        assert_eq!(log(&short).status, Status::Warn);
        let huge = LogFacts { rows: Some((1_000_000, true)), rows_capped: true, ..facts.clone() };
        assert!(log(&huge).found.contains("more than 1000000 rows"), "{}", log(&huge).found);
        let unreadable =
            LogFacts { rows: Some((3, false)), oldest_age_secs: None, read_through: None, ..facts.clone() };
        let check = log(&unreadable);
        assert_eq!(check.status, Status::Warn);
        assert!(
            check.found.contains("about 3 rows (estimated), 48 kB, the oldest's age unknown"),
            "{}",
            check.found
        );
        let never_analysed = LogFacts { rows: None, ..unreadable };
        assert_eq!(
            log(&never_analysed).found,
            "retention 1h (the default), rows unknown, 48 kB; this role can read neither the log nor its replay"
        );
        assert_eq!(log(&LogFacts::default()).status, Status::Warn);
    }

    #[test]
    fn time_settings_read_as_postgresql_reads_them() {
        assert_eq!(setting_secs("1h"), Some(3600.0));
        assert_eq!(setting_secs("90min"), Some(5400.0));
        assert_eq!(setting_secs("3600"), Some(3600.0));
        assert_eq!(setting_secs("500ms"), Some(0.5));
        assert_eq!(setting_secs("soon"), None);
    }

    #[test]
    fn the_queue_warns_from_five_percent_and_fails_at_the_limit() {
        let holder = Holder { pid: 77, application_name: Some("stuck".into()), ..Holder::default() };
        let facts = |usage: f64| QueueFacts {
            usage,
            limit: 0.5,
            limit_applies: true,
            unreadable_limit: None,
            holder: Some(holder.clone()),
        };
        let ok = queue(&facts(0.01));
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.found, "1.0 % full (bytebase_signal.notify_queue_limit 50.0 %)");
        let warn = queue(&facts(0.06));
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.found.contains("pid 77 (application_name 'stuck'"), "{}", warn.found);
        assert!(warn.action.unwrap().contains("pg_terminate_backend(77)"));
        let fail = queue(&facts(0.5));
        assert_eq!(fail.status, Status::Fail);
        assert!(fail.found.contains("without NOTIFY"), "{}", fail.found);
        assert_eq!(queue(&QueueFacts { limit: 0.0, ..facts(0.0) }).status, Status::Warn);
        assert_eq!(queue(&QueueFacts { limit: 0.01, ..facts(0.02) }).status, Status::Fail);
        // Before 0.4.0 the limit does not apply: a nearly full queue fails the commits instead.
        let old = QueueFacts { limit: 0.01, limit_applies: false, ..facts(0.02) };
        assert_eq!((queue(&old).status, old.at_limit()), (Status::Ok, false));
        let check = queue(&QueueFacts { limit_applies: false, ..facts(0.6) });
        assert_eq!(check.status, Status::Fail);
        assert!(check.found.contains("every NOTIFYing commit fails"), "{}", check.found);
    }

    #[test]
    fn no_listener_is_a_warning() {
        assert_eq!(listeners(&[], "app").status, Status::Warn);
        let one = ListenerSession {
            pid: 5,
            application_name: "bytebase-signal".into(),
            client_addr: Some("10.0.0.5".into()),
            since: Some("2025-01-01 00:00:00+00".into()),
            age_secs: Some(7200.0),
        };
        let check = listeners(&[one], "app");
        assert_eq!(check.status, Status::Ok);
        assert_eq!(
            check.found,
            "1 listener: pid 5 'bytebase-signal' from 10.0.0.5 since 2025-01-01 00:00:00+00 (2 h 0 min)"
        );
    }

    #[test]
    fn the_round_trip_names_the_pooler_when_notifications_go_astray() {
        let scoped =
            ProbePath::Scoped { function: "f".into(), call: "\"public\".f".into(), project: "p".into() };
        let arrived = RoundTripFacts::Arrived { path: scoped.clone(), elapsed: Duration::from_millis(3) };
        assert_eq!(round_trip(&arrived).status, Status::Ok);
        let private = ProbePath::Private { channel: "c".into(), why: Fallback::NoScopedSend };
        let fallback =
            round_trip(&RoundTripFacts::Arrived { path: private, elapsed: Duration::from_millis(3) });
        assert_eq!(fallback.status, Status::Warn);
        for facts in [
            RoundTripFacts::NotListening { channel: "bytebase_signal".into() },
            RoundTripFacts::SessionsChange { sender: 1, listening: [2, 3] },
            RoundTripFacts::SessionsChange { sender: 1, listening: [1, 1] },
            RoundTripFacts::TimedOut {
                path: scoped.clone(),
                after: Duration::from_secs(5),
                without_notify: WithoutNotify::No,
            },
        ] {
            let check = round_trip(&facts);
            assert_eq!(check.status, Status::Fail);
            assert!(check.found.contains("PgBouncer pool_mode=transaction"), "{}", check.found);
            assert!(check.action.unwrap().contains("pool_mode=session"));
        }
        let at_limit = RoundTripFacts::TimedOut {
            path: scoped.clone(),
            after: Duration::from_secs(5),
            without_notify: WithoutNotify::QueueAtLimit,
        };
        assert_eq!(round_trip(&at_limit).status, Status::Fail);
        assert!(round_trip(&at_limit).found.contains("the queue is at"));
        let off = RoundTripFacts::TimedOut {
            path: scoped,
            after: Duration::from_secs(5),
            without_notify: WithoutNotify::LimitZero,
        };
        let check = round_trip(&off);
        assert_eq!(check.status, Status::Warn, "a limit of 0 is a setting, not a fault of the round trip");
        assert!(check.found.contains("notify_queue_limit is 0"), "{}", check.found);
    }

    #[test]
    fn clock_skew_above_a_second_warns() {
        assert_eq!(clock_skew(0.2, Duration::from_millis(1)).status, Status::Ok);
        assert!(clock_skew(0.0001, Duration::from_millis(1))
            .found
            .contains("agrees with the server's within 1 ms"));
        let check = clock_skew(-3.5, Duration::from_millis(1));
        assert_eq!(check.status, Status::Warn);
        assert!(check.found.contains("3.500 s behind"), "{}", check.found);
    }

    #[test]
    fn durations_print_as_people_read_them() {
        assert_eq!(human_duration(59.4), "59 s");
        assert_eq!(human_duration(3600.0 * 3.0 + 300.0), "3 h 5 min");
        assert_eq!(human_duration(86400.0 * 2.0 + 3600.0 * 4.0), "2 d 4 h");
    }
}
