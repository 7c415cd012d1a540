//! `bytebase-signal`: listen for, send, and inspect bytebase_signal cancel signals.
//!
//! ```text
//! bytebase-signal listen [--dsn DSN] [--strict]      one JSON line per signal on stdout
//!     [--metrics-addr 127.0.0.1:9464]                 /metrics (Prometheus) and /healthz
//! bytebase-signal send task-run UID... [--raw]       cancel task runs (at once, autocommit)
//! bytebase-signal send plan-check-run UID... [--raw] cancel plan check runs
//!     [--project P [--approval-input-version V]] [--format seed|protojson]
//! bytebase-signal status [--dsn DSN]                 server, extension and queue, as JSON
//! bytebase-signal doctor [--dsn DSN] [--json]        check one database end to end
//! ```
//!
//! The connection comes from `--dsn` (libpq conninfo or URL), else `DATABASE_URL`, completed as
//! psql completes it: the service file, the `PG*` variables, `~/.pgpass`, libpq's defaults; TLS
//! with every `sslmode`. Logs go to stderr (`RUST_LOG`).

use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use bytebase_signal_client::connect::{ConnectOptions, Established, Negotiated, Target};
use bytebase_signal_client::listener::{DEFAULT_REPLAY_GRACE, MAX_REPLAY_GRACE};
use bytebase_signal_client::send::{Cancel, SendMode};
use bytebase_signal_client::wire::WireFormat;
use bytebase_signal_client::{Listener, RunUid, Signal, SignalKind};

use crate::error::Error;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::error;

mod doctor;
mod error;
mod serve_metrics;

#[derive(Parser)]
#[command(name = "bytebase-signal", version, about = "Bytebase cancel signals over PostgreSQL NOTIFY/LISTEN")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every signal received, one JSON line each, until SIGINT or SIGTERM. Signals missed
    /// while disconnected are recovered from the durable log (extension 0.2.0) and printed too.
    Listen(ListenArgs),
    /// Send cancel signals (committed at once).
    Send {
        #[command(subcommand)]
        kind: SendKind,
    },
    /// Print the server version, the installed extension version, the notification queue usage
    /// and whether the server is a primary, as JSON.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// Check one database end to end (connection, edition, grants, log, queue, listeners, a round
    /// trip, clock skew) and print a checklist; exits 1 if a check fails.
    Doctor(doctor::DoctorArgs),
}

#[derive(Subcommand)]
enum SendKind {
    /// Cancel task runs.
    TaskRun(SendArgs),
    /// Cancel plan check runs.
    PlanCheckRun(SendArgs),
}

#[derive(Args)]
struct SendArgs {
    /// Run ids (positive integers).
    #[arg(required = true, value_parser = parse_uid, allow_negative_numbers = true)]
    uids: Vec<RunUid>,
    /// Send the payloads with plain pg_notify (no extension needed).
    #[arg(long)]
    raw: bool,
    /// The project the runs belong to (upstream Bytebase numbers runs per project).
    #[arg(long)]
    project: Option<String>,
    /// The plan's approval input version (plan check runs, with --project).
    #[arg(long, value_name = "VERSION", requires = "project", allow_negative_numbers = true)]
    approval_input_version: Option<i64>,
    /// How the payload is spelled: seed or protojson (upstream Go replicas). Through the
    /// extension it sets bytebase_signal.wire_format for this session; its default is the
    /// server's setting, and seed with --raw.
    #[arg(long, value_name = "FORMAT")]
    format: Option<WireFormat>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
struct ListenArgs {
    /// How far before the last moment the connection was known alive a replay starts, in
    /// seconds: longer than the longest transaction that sends a cancel.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_REPLAY_GRACE.as_secs(), value_parser = clap::value_parser!(u64).range(0..=MAX_REPLAY_GRACE.as_secs()))]
    grace: u64,
    /// Print only signals the durable log confirms (ignores forged pg_notify payloads).
    #[arg(long)]
    strict: bool,
    /// Seconds between heartbeats (each one a replay of the log where the database has exact
    /// replays, so a lost notification is printed within one interval); a probe checks every six
    /// that notifications arrive at all.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    ping_interval: u64,
    /// Signals buffered between the connection and stdout. A burst beyond it is dropped (counted,
    /// and recovered from the durable log where the senders log); the default absorbs a burst of
    /// a quarter of a million.
    #[arg(long, value_name = "SIGNALS", default_value_t = 1 << 18, value_parser = clap::value_parser!(u32).range(1..=1 << 24))]
    queue: u32,
    /// The replay function, schema-qualified if its schema is not on the search_path.
    #[arg(long, value_name = "NAME", default_value = bytebase_signal_client::listener::DEFAULT_REPLAY_FUNCTION)]
    replay_function: String,
    /// Serve the listener's metrics in Prometheus' text format on http://ADDR/metrics, and
    /// /healthz (200 while connected and hearing notifications, else 503). Port 0 picks a free
    /// port, logged at start.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub(crate) struct Conn {
    /// libpq conninfo or postgres:// URL, completed by the service file and the PG* variables as
    /// psql completes it [default: $DATABASE_URL]
    #[arg(long)]
    dsn: Option<String>,
}

fn parse_uid(s: &str) -> Result<RunUid, String> {
    let n: i64 = s.parse().map_err(|e| format!("{s:?} is not a bigint: {e}"))?;
    RunUid::new(n).map_err(|e| format!("uid {e}"))
}

impl Conn {
    /// The connection settings as libpq would resolve them: `--dsn`, else `DATABASE_URL`, each
    /// completed by the service file, the `PG*` variables and the defaults; `application_name`
    /// the listener's unless given.
    pub(crate) fn options(&self) -> Result<ConnectOptions, Error> {
        self.options_for(bytebase_signal_client::listener::DEFAULT_APPLICATION_NAME)
    }

    /// Like [`Conn::options`], with `application_name` defaulting to `application_name`.
    pub(crate) fn options_for(&self, application_name: &str) -> Result<ConnectOptions, Error> {
        let dsn = self.dsn.clone().or_else(|| std::env::var("DATABASE_URL").ok()).unwrap_or_default();
        let mut options = ConnectOptions::parse(&dsn)?;
        let settings = options.settings_mut();
        if settings.application_name.is_none() {
            settings.application_name = Some(application_name.to_owned());
        }
        Ok(options)
    }
}

/// A connection for one command, driven in the background.
async fn connect(conn: &Conn) -> Result<(tokio_postgres::Client, Target, Option<Negotiated>), Error> {
    // Not the listener's application_name: `send` and `status` are not listeners (the doctor
    // and operators find listeners by it).
    let Established { client, connection, target, tls, .. } =
        conn.options_for("bytebase-signal-cli")?.connect().await?;
    let server = target.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            error!(%server, error = %e, "connection failed");
        }
    });
    Ok((client, target, tls))
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
fn on_termination(shutdown: CancellationToken) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind as Sig};
    let mut term = signal(Sig::terminate()).map_err(Error::Io)?;
    let mut int = signal(Sig::interrupt()).map_err(Error::Io)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        shutdown.cancel();
    });
    Ok(())
}

async fn listen(args: ListenArgs) -> Result<(), Error> {
    let shutdown = CancellationToken::new();
    on_termination(shutdown.clone())?;
    // The recorder first: the listener takes its metric handles when it starts.
    let metrics = match args.metrics_addr {
        Some(addr) => Some((serve_metrics::install_recorder()?, serve_metrics::bind(addr).await?)),
        None => None,
    };
    let listener = Listener::new(args.conn.options()?);
    let config = listener
        .config()
        .clone()
        .replay_grace(Duration::from_secs(args.grace))
        .ping_interval(Duration::from_secs(args.ping_interval))
        .probe_interval(Duration::from_secs(6 * args.ping_interval))
        .strict(args.strict)
        .replay_function(args.replay_function)
        .queue_capacity(args.queue as usize);
    let (handle, mut signals) = listener.with_config(config).spawn(shutdown.clone());
    let server = metrics.map(|(recorder, socket)| {
        tokio::spawn(serve_metrics::serve(socket, recorder, handle.status_reader(), shutdown.clone()))
    });
    // 64 KiB: a flood is written in few system calls (std's default is 8 KiB).
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout());
    // One buffer for every line: encoded in place, no allocation or formatting per signal.
    let mut line = String::with_capacity(128);
    let mut print = |signal: Signal, out: &mut BufWriter<std::io::Stdout>| {
        line.clear();
        signal.encode_into(WireFormat::Seed, &mut line);
        line.push('\n');
        out.write_all(line.as_bytes())
    };
    let written = async {
        while let Some(signal) = signals.recv().await {
            print(signal, &mut out)?;
            // Write out whatever else is queued, then flush once: prompt without a flush per line.
            while let Some(signal) = signals.try_recv() {
                print(signal, &mut out)?;
            }
            out.flush()?;
        }
        Ok::<_, std::io::Error>(())
    }
    .await;
    shutdown.cancel();
    handle.join().await;
    if let Some(server) = server {
        // A scrape under way is answered; a client that never finishes its request is not waited for.
        if tokio::time::timeout(Duration::from_secs(5), server).await.is_err() {
            tracing::warn!("the metrics endpoint did not stop within 5 s; exiting anyway");
        }
    }
    written.map_err(Error::Io)
}

async fn send(kind: SignalKind, args: SendArgs) -> Result<(), Error> {
    let (client, _, _) = connect(&args.conn).await?;
    let mode = if args.raw { SendMode::Raw } else { SendMode::Extension };
    if let (SendMode::Extension, Some(format)) = (mode, args.format) {
        client
            .execute("SELECT set_config('bytebase_signal.wire_format', $1, false)", &[&format.name()])
            .await?;
    }
    let mut cancel = Cancel::new(kind, &args.uids).mode(mode).format(args.format.unwrap_or_default());
    if let Some(project) = &args.project {
        cancel = cancel.in_project(project);
    }
    if let Some(version) = args.approval_input_version {
        cancel = cancel.with_approval_input_version(version);
    }
    let n = cancel.send(&client).await?;
    eprintln!("sent {n} {} signal(s)", kind.seed_type());
    Ok(())
}

async fn status(conn: Conn) -> Result<(), Error> {
    let (client, target, tls) = connect(&conn).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'),
                    (SELECT extversion FROM pg_extension WHERE extname = 'bytebase_signal'),
                    pg_notification_queue_usage(),
                    NOT pg_is_in_recovery(),
                    EXISTS (SELECT FROM pg_proc WHERE proname = '_bytebase_signal_send'),
                    current_user::text,
                    host(inet_server_addr()),
                    inet_server_port(),
                    ssl.version,
                    ssl.cipher,
                    ssl.bits,
                    current_setting('server_version_num')::int
               FROM (SELECT) AS one
               LEFT JOIN pg_stat_ssl AS ssl ON ssl.pid = pg_backend_pid() AND ssl.ssl",
            &[],
        )
        .await?;
    let extension_version = row.get::<_, Option<String>>(1);
    // What the server's side of this session says (behind a TLS-terminating pooler, its link).
    let (server_tls_version, server_tls_cipher) =
        (row.get::<_, Option<String>>(8), row.get::<_, Option<String>>(9));
    let server_sees = match (&server_tls_version, &server_tls_cipher, row.get::<_, Option<i32>>(10)) {
        (Some(version), Some(cipher), Some(bits)) => format!("{version} {cipher} ({bits} bits)"),
        _ => "not encrypted".to_owned(),
    };
    // The pure-SQL edition (sql/pure/install.sql) is known by its internal send function.
    let edition = match (&extension_version, row.get::<_, bool>(4)) {
        (Some(_), _) => Some("extension"),
        (None, true) => Some("pure-sql"),
        (None, false) => None,
    };
    let status = serde_json::json!({
        "server_version": row.get::<_, String>(0),
        "edition": edition,
        "extension_version": extension_version,
        "notification_queue_usage": row.get::<_, f64>(2),
        "primary": row.get::<_, bool>(3),
        "host": target.host(),
        "hostaddr": target.addr().map(|a| a.to_string()),
        "port": target.port(),
        "server_address": row.get::<_, Option<String>>(6),
        "server_port": row.get::<_, Option<i32>>(7),
        "user": row.get::<_, String>(5),
        // What this client negotiated.
        "encryption": tls.as_ref().map_or_else(|| "not encrypted".to_owned(), |t| t.to_string()),
        "tls_version": tls.as_ref().map(|t| t.version.clone()),
        "tls_cipher": tls.as_ref().map(|t| t.cipher.clone()),
        "server_sees": server_sees,
        "server_version_num": row.get::<_, i32>(11),
    });
    println!("{status}");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Listen(args) => listen(args).await,
        Command::Send { kind: SendKind::TaskRun(args) } => send(SignalKind::TaskRun, args).await,
        Command::Send { kind: SendKind::PlanCheckRun(args) } => send(SignalKind::PlanCheckRun, args).await,
        Command::Status { conn } => status(conn).await,
        Command::Doctor(args) => match doctor::run(args).await {
            Ok(healthy) if !healthy => return ExitCode::FAILURE,
            other => other.map(drop),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
