//! The round trip: a second connection LISTENs as a listener would, the first one sends a probe
//! through the real send path, and the second one waits for it.
//!
//! The probe is a project-scoped task-run cancel for a project that cannot exist
//! (`bytebase-signal-doctor/<pid>-<nanos>`) and the largest uid (a sequence never hands it out):
//! a registry cancels a run only if the project matches or the run was registered without a
//! project under that uid, so no real run is cancelled anywhere. Versions without a
//! project-scoped send (or a role that may not run it) get a `pg_notify` on a channel of the
//! doctor's own instead, which tests LISTEN/NOTIFY but not the send functions.

use std::future::poll_fn;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, Client, Notification};
use tracing::debug;

use bytebase_signal_client::connect::{ConnectOptions, Established};
use bytebase_signal_client::wire::CHANNEL;

use super::decide::{qualify, Api, Fallback, ProbePath, RoundTripFacts, WithoutNotify};
use bytebase_signal_client::wire::quote_ident;

/// The project-scoped send the probe goes through (0.3.0 and later).
const SCOPED_SEND: &str = "bytebase_cancel_task_run(bigint, text)";

/// The probe's uid: valid, and never a real run's (sequences start at 1 and never get here).
const PROBE_UID: i64 = i64::MAX;

/// Chooses the probe's path: the real send where this role may run the project-scoped form.
pub(crate) async fn choose_path(
    client: &Client,
    api: Option<&Api>,
    role: &str,
) -> Result<ProbePath, tokio_postgres::Error> {
    let unique = unique_suffix();
    let private = |why| ProbePath::Private {
        channel: format!("bytebase_signal_doctor_{}", unique.replace('-', "_")),
        why,
    };
    let Some(api) = api else { return Ok(private(Fallback::NoEdition)) };
    let function = format!("{}.{SCOPED_SEND}", quote_ident(&api.schema));
    let row = client
        .query_typed_one(
            "SELECT f.oid IS NOT NULL, coalesce(pg_catalog.has_function_privilege(f.oid, 'EXECUTE'), false) \
               FROM (SELECT pg_catalog.to_regprocedure($1)::oid AS oid) AS f",
            &[(&function, Type::TEXT)],
        )
        .await?;
    let (exists, granted): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
    let shown = qualify(&api.schema, SCOPED_SEND);
    Ok(match (exists, granted) {
        (false, _) => private(Fallback::NoScopedSend),
        (true, false) => private(Fallback::NotGranted { function: shown, role: role.to_owned() }),
        (true, true) => ProbePath::Scoped {
            function: shown,
            call: format!("{}.bytebase_cancel_task_run", quote_ident(&api.schema)),
            project: format!("bytebase-signal-doctor/{unique}"),
        },
    })
}

/// `<pid>-<nanoseconds since the epoch>`: unique to this run of the doctor.
fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

/// The listening connection: its client, and the notifications its driver task hands over.
struct Listening {
    client: Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        // The connection closes with it; nothing is left LISTENing.
        self.driver.abort();
    }
}

/// Connects the second connection and drives it, keeping its notifications.
async fn connect(options: &ConnectOptions) -> Result<Listening, String> {
    let Established { client, mut connection, .. } = options.connect().await.map_err(|e| e.to_string())?;
    let (tx, notifications) = mpsc::unbounded_channel();
    // `poll_message` drives the connection and yields what a plain `connection.await` discards.
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(error = %e, "the doctor's listening connection failed");
                    return;
                }
            }
        }
    });
    Ok(Listening { client, notifications, driver })
}

/// Runs the round trip over a second connection made with `options`; `sender` (the doctor's
/// first connection, backend `sender_pid`) sends the probe along `path`. `without_notify` says
/// whether a logged send goes without NOTIFY now (it explains a probe that never arrives).
pub(crate) async fn run(
    options: &ConnectOptions,
    sender: &Client,
    sender_pid: i32,
    path: ProbePath,
    timeout: Duration,
    without_notify: WithoutNotify,
) -> RoundTripFacts {
    let failed = |what: &'static str| move |error: String| RoundTripFacts::Failed { what, error };
    let mut listening = match connect(options).await {
        Ok(listening) => listening,
        Err(e) => return failed("the second connection")(e),
    };
    let channel = match &path {
        ProbePath::Scoped { .. } => CHANNEL.to_owned(),
        ProbePath::Private { channel, .. } => channel.clone(),
    };
    if let Err(e) = listening.client.batch_execute(&format!("LISTEN {}", quote_ident(&channel))).await {
        return failed("LISTEN")(describe(e));
    }
    match sessions(&listening.client, &channel).await {
        Ok((false, _)) => return RoundTripFacts::NotListening { channel },
        // Two statements in two server sessions, or the sender's session: a pool in between.
        Ok((true, [first, second])) if first != second || first == sender_pid => {
            return RoundTripFacts::SessionsChange { sender: sender_pid, listening: [first, second] };
        }
        Ok(_) => {}
        Err(e) => return failed("pg_listening_channels()")(describe(e)),
    }
    // A pg_notify of our own always NOTIFYs; only the send functions may go without.
    let without_notify =
        if matches!(path, ProbePath::Private { .. }) { WithoutNotify::No } else { without_notify };
    let started = Instant::now();
    let (needle, sent) = match &path {
        ProbePath::Scoped { call, project, .. } => {
            (project.clone(), send_scoped(sender, call, project).await)
        }
        ProbePath::Private { channel, .. } => {
            let payload = format!("bytebase-signal-doctor probe {}", unique_suffix());
            let sent = sender
                .query_typed(
                    "SELECT pg_catalog.pg_notify($1, $2)",
                    &[(channel, Type::TEXT), (&payload, Type::TEXT)],
                )
                .await
                .map(drop);
            (payload, sent)
        }
    };
    if let Err(e) = sent {
        return failed("sending the probe")(describe(e));
    }
    match wait_for(&mut listening.notifications, &channel, &needle, started + timeout).await {
        Some(()) => RoundTripFacts::Arrived { path, elapsed: started.elapsed() },
        None => RoundTripFacts::TimedOut { path, after: timeout, without_notify },
    }
}

/// Sends the project-scoped probe through `call` (the schema-qualified send function), committed
/// at once (autocommit).
async fn send_scoped(sender: &Client, call: &str, project: &str) -> Result<(), tokio_postgres::Error> {
    sender
        .query_typed(
            &format!("SELECT {call}($1::bigint, $2::text)"),
            &[(&PROBE_UID, Type::INT8), (&project, Type::TEXT)],
        )
        .await
        .map(drop)
}

/// Whether the listening connection's session lists `channel`, and the backend pids of two
/// statements on it.
async fn sessions(client: &Client, channel: &str) -> Result<(bool, [i32; 2]), tokio_postgres::Error> {
    let row = client
        .query_typed_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_listening_channels() AS c WHERE c = $1), \
                    pg_catalog.pg_backend_pid()",
            &[(&channel, Type::TEXT)],
        )
        .await?;
    let again = client.query_typed_one("SELECT pg_catalog.pg_backend_pid()", &[]).await?;
    Ok((row.try_get(0)?, [row.try_get(1)?, again.try_get(0)?]))
}

/// Waits until `deadline` for a notification on `channel` whose payload contains `needle`; real
/// signals arriving meanwhile are passed over.
async fn wait_for(
    notifications: &mut mpsc::UnboundedReceiver<Notification>,
    channel: &str,
    needle: &str,
    deadline: Instant,
) -> Option<()> {
    loop {
        let n = tokio::time::timeout_at(deadline, notifications.recv()).await.ok()??;
        if n.channel() == channel && n.payload().contains(needle) {
            return Some(());
        }
    }
}

/// An error's text with the server's message (tokio-postgres's own says only "db error").
fn describe(e: tokio_postgres::Error) -> String {
    bytebase_signal_client::Error::Database(e).to_string()
}
