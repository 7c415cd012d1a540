//! `bytebase-signal doctor`: checks one database end to end and prints a checklist.
//!
//! In order: the connection, the server's role, the edition, this role's privileges, the log,
//! the notification queue, the listeners connected now, a round trip through the real send path
//! on a second connection, and the clock. Each check gathers its facts ([`gather`],
//! [`round_trip`]) and a plain function judges them ([`decide`]); the [`report`] prints them as
//! lines or as one JSON object. Any failure makes the exit code 1; warnings do not.

mod decide;
mod gather;
mod report;
mod round_trip;

use std::cell::Cell;
use std::future::Future;
use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::Args;
use tokio::time::Instant;
use tokio_postgres::Client;
use tracing::{debug, warn};

use crate::error::Error;
use bytebase_signal_client::connect::settings::{Endpoint, Host, LoadBalanceHosts};
use bytebase_signal_client::connect::{ConnectOptions, Established, Target};

use crate::Conn;
use decide::{Api, ConnectionFacts, WithoutNotify};
use gather::{Session, DOCTOR_APPLICATION_NAME};
use report::{Check, CheckId, Report};

/// The connect timeout per address where the settings give none: the doctor must not hang.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The doctor's arguments.
#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Print the checklist as one JSON object instead of lines.
    #[arg(long)]
    pub(crate) json: bool,
    /// How long the round trip's probe may take, in seconds; also each check's deadline.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = parse_timeout)]
    pub(crate) timeout: f64,
    #[command(flatten)]
    pub(crate) conn: Conn,
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 3600.0 => Ok(secs),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 3600")),
    }
}

/// Runs every check and prints the checklist; `Ok(false)` if a check failed.
pub(crate) async fn run(args: DoctorArgs) -> Result<bool, Error> {
    let timeout = Duration::from_secs_f64(args.timeout);
    let report = examine(&args.conn, timeout).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        write!(out, "{}", report.to_text())?;
    }
    out.flush()?;
    Ok(report.healthy())
}

/// Every check, in order; a check that cannot run says why.
async fn examine(conn: &Conn, timeout: Duration) -> Report {
    let mut report = Report::default();
    let connected = match conn.options_for(DOCTOR_APPLICATION_NAME) {
        Ok(options) => connect(options, timeout).await,
        Err(e) => Err(e),
    };
    let mut doctor = match connected {
        Ok(doctor) => doctor,
        Err(e) => {
            report.push(decide::connection_failed(&e.to_string()));
            skip_after(&mut report, CheckId::Connection, "there is no connection");
            return report;
        }
    };
    report.push(decide::connection(&doctor.connection));
    report.push(decide::server_role(doctor.session.in_recovery, &doctor.session.server_version));
    let api = doctor.edition(&mut report).await;
    doctor.recover().await;
    match &api {
        Some(api) => {
            report.push(doctor.privileges(api).await);
            doctor.recover().await;
            report.push(doctor.log(api).await);
            doctor.recover().await;
        }
        None => {
            report.skip(CheckId::Privileges, "no edition is installed");
            report.skip(CheckId::Log, "no edition is installed");
        }
    }
    if doctor.session.in_recovery {
        let reason = "the server is a standby: notifications and listeners are the primary's";
        for id in [CheckId::NotificationQueue, CheckId::Listeners, CheckId::RoundTrip] {
            report.skip(id, reason);
        }
    } else {
        let without_notify = doctor.queue(&mut report, api.as_ref()).await;
        doctor.recover().await;
        report.push(doctor.listeners().await);
        doctor.recover().await;
        report.push(doctor.round_trip(api.as_ref(), without_notify).await);
        doctor.recover().await;
    }
    report.push(doctor.clock_skew().await);
    report
}

/// Marks every check after `last` as not run.
fn skip_after(report: &mut Report, last: CheckId, reason: &str) {
    for id in CheckId::ALL.into_iter().skip_while(|&id| id != last).skip(1) {
        report.skip(id, reason);
    }
}

/// The doctor's first connection, and what it knows about the session.
struct Doctor {
    options: ConnectOptions,
    client: Client,
    connection: ConnectionFacts,
    session: Session,
    timeout: Duration,
    /// A check's statement outlived its deadline: it still runs on the server, and every later
    /// statement on this session would queue behind it, so the next check gets a new session.
    timed_out: Cell<bool>,
}

/// Connects (the first connection) and reads who the session is.
async fn connect(mut options: ConnectOptions, timeout: Duration) -> Result<Doctor, Error> {
    options.settings_mut().connect_timeout.get_or_insert(DEFAULT_CONNECT_TIMEOUT.max(timeout));
    let Established { client, connection, target, tls, .. } = options.connect().await?;
    // The round trip's second connection must reach this very server, not the next of several
    // hosts (load_balance_hosts=random, or a failover meanwhile): pin it.
    pin(&mut options, &target);
    let server = target.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(%server, error = %e, "the doctor's connection failed");
        }
    });
    let session = within("reading the session", timeout, gather::session(&client)).await?;
    let connection = ConnectionFacts {
        server: describe_target(&target),
        user: session.user.clone(),
        tls: tls.map(|t| (t.version, t.cipher)),
    };
    Ok(Doctor { options, client, connection, session, timeout, timed_out: Cell::new(false) })
}

/// Restricts `options` to the one server `target` names.
fn pin(options: &mut ConnectOptions, target: &Target) {
    let endpoint = match target {
        Target::Tcp { host, addr, port } => Endpoint::new(Some(Host::Tcp(host.clone())), *addr, *port),
        Target::Unix { socket } => {
            // `<dir>/.s.PGSQL.<port>`
            let port = socket
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(".s.PGSQL."))
                .and_then(|p| p.parse().ok());
            match (socket.parent(), port) {
                (Some(dir), Some(port)) => Endpoint::new(Some(Host::Unix(dir.to_owned())), None, port),
                _ => return,
            }
        }
        // A kind of server this doctor does not know: left as the settings name it.
        _ => return,
    };
    let settings = options.settings_mut();
    settings.endpoints = vec![endpoint];
    settings.load_balance_hosts = LoadBalanceHosts::Disable;
}

/// `host db (10.0.0.5), port 5432` or `socket /run/postgresql/.s.PGSQL.5432`.
fn describe_target(target: &Target) -> String {
    match (target.port(), target.addr()) {
        (Some(port), Some(addr)) if addr.to_string() != target.host() => {
            format!("host {} ({addr}), port {port}", target.host())
        }
        (Some(port), _) => format!("host {}, port {port}", target.host()),
        (None, _) => format!("socket {}", target.host()),
    }
}

/// Runs `query` with a deadline: a server that does not answer is a timeout, never a hang.
async fn within<T>(
    what: &'static str,
    after: Duration,
    query: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(after, query).await {
        Ok(result) => result.map_err(Error::from),
        Err(_) => Err(Error::Timeout { what, after }),
    }
}

/// A check that could not gather its facts fails with the error.
fn unchecked(id: CheckId, error: &Error) -> Check {
    Check::fail(id, format!("could not be checked: {error}"), "see the error; rerun with RUST_LOG=debug")
}

impl Doctor {
    /// [`within`] the check deadline, remembering a timeout for [`Doctor::recover`].
    async fn within<T>(
        &self,
        what: &'static str,
        query: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Error> {
        let result = within(what, self.timeout, query).await;
        if matches!(result, Err(Error::Timeout { .. })) {
            self.timed_out.set(true);
        }
        result
    }

    /// After a check timed out: a new session (to the same server) for the checks that follow,
    /// so that they do not wait behind the statement still running (the server finishes it; the
    /// doctor does not cancel it). If that fails, the checks that follow time out too, and the
    /// log says why.
    async fn recover(&mut self) {
        if !self.timed_out.replace(false) {
            return;
        }
        debug!("a check timed out: continuing on a new session");
        let reconnected = async {
            let Established { client, connection, target, .. } = self.options.connect().await?;
            let server = target.to_string();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    warn!(%server, error = %e, "the doctor's connection failed");
                }
            });
            // The new session's pid: the checks tell the doctor's own session from others by it.
            let session = within("reading the session", self.timeout, gather::session(&client)).await?;
            Ok::<_, Error>((client, session))
        };
        match reconnected.await {
            Ok((client, session)) => {
                self.client = client;
                self.session.pid = session.pid;
            }
            Err(e) => warn!(error = %e, "the doctor could not open a new session after a timeout"),
        }
    }

    /// The edition check; the API the later checks use.
    async fn edition(&self, report: &mut Report) -> Option<Api> {
        match self.within("the edition check", gather::edition(&self.client)).await {
            Ok(facts) => {
                debug!(?facts, "edition");
                let (check, api) = decide::edition(&facts, env!("CARGO_PKG_VERSION"));
                report.push(check);
                api
            }
            Err(e) => {
                report.push(unchecked(CheckId::Edition, &e));
                None
            }
        }
    }

    async fn privileges(&self, api: &Api) -> Check {
        let facts = gather::privileges(&self.client, api, &self.session.user);
        match self.within("the privileges check", facts).await {
            Ok(facts) => decide::privileges(&facts),
            Err(e) => unchecked(CheckId::Privileges, &e),
        }
    }

    async fn log(&self, api: &Api) -> Check {
        match self.within("the log check", gather::log(&self.client, api)).await {
            Ok(facts) => decide::log(&facts),
            Err(e) => unchecked(CheckId::Log, &e),
        }
    }

    /// The queue check; whether a logged send goes without NOTIFY now.
    async fn queue(&self, report: &mut Report, api: Option<&Api>) -> WithoutNotify {
        let limit_applies = api.is_some_and(Api::has_queue_limit);
        let facts = gather::queue(&self.client, self.session.pid, limit_applies);
        match self.within("the queue check", facts).await {
            Ok(facts) => {
                report.push(decide::queue(&facts));
                facts.without_notify()
            }
            Err(e) => {
                report.push(unchecked(CheckId::NotificationQueue, &e));
                WithoutNotify::No
            }
        }
    }

    async fn listeners(&self) -> Check {
        match self.within("the listeners check", gather::listeners(&self.client)).await {
            Ok(sessions) => decide::listeners(&sessions, &self.session.database),
            Err(e) => unchecked(CheckId::Listeners, &e),
        }
    }

    async fn round_trip(&self, api: Option<&Api>, without_notify: WithoutNotify) -> Check {
        let path = round_trip::choose_path(&self.client, api, &self.session.user);
        let path = match self.within("choosing the probe", path).await {
            Ok(path) => path,
            Err(e) => return unchecked(CheckId::RoundTrip, &e),
        };
        debug!(?path, "round trip");
        // The probe waits `timeout` itself; connecting and LISTEN get their own deadlines.
        let whole = self.timeout * 2 + DEFAULT_CONNECT_TIMEOUT;
        let trip = round_trip::run(
            &self.options,
            &self.client,
            self.session.pid,
            path,
            self.timeout,
            without_notify,
        );
        match tokio::time::timeout(whole, trip).await {
            Ok(facts) => decide::round_trip(&facts),
            Err(_) => {
                self.timed_out.set(true);
                unchecked(CheckId::RoundTrip, &Error::Timeout { what: "the round trip", after: whole })
            }
        }
    }

    async fn clock_skew(&self) -> Check {
        match self.within("the clock check", clock_skew(&self.client)).await {
            Ok((skew, round_trip)) => decide::clock_skew(skew, round_trip),
            Err(e) => unchecked(CheckId::ClockSkew, &e),
        }
    }
}

/// This machine's clock minus the server's `clock_timestamp()`, taken as at the middle of the
/// query's round trip; of three samples, the one with the shortest round trip (the least
/// uncertain). Returns the skew in seconds and that round trip.
async fn clock_skew(client: &Client) -> Result<(f64, Duration), tokio_postgres::Error> {
    let mut best: Option<(f64, Duration)> = None;
    for _ in 0..3 {
        let local_before = SystemTime::now();
        let started = Instant::now();
        let row = client.query_typed_one("SELECT pg_catalog.clock_timestamp()", &[]).await?;
        let round_trip = started.elapsed();
        let server: SystemTime = row.try_get(0)?;
        let skew = signed_secs(local_before + round_trip / 2, server);
        if best.is_none_or(|(_, shortest)| round_trip < shortest) {
            best = Some((skew, round_trip));
        }
    }
    Ok(best.unwrap_or_default())
}

/// `a - b` in seconds, negative if `a` is earlier.
fn signed_secs(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_connection_skips_every_later_check() {
        let mut report = Report::default();
        skip_after(&mut report, CheckId::Connection, "no connection");
        assert_eq!(report.not_run.len(), CheckId::ALL.len() - 1);
        assert_eq!(report.not_run[0].id, CheckId::ServerRole);
    }

    #[test]
    fn skew_is_signed() {
        let now = SystemTime::now();
        assert!((signed_secs(now + Duration::from_secs(2), now) - 2.0).abs() < 1e-9);
        assert!((signed_secs(now, now + Duration::from_secs(2)) + 2.0).abs() < 1e-9);
    }

    #[test]
    fn targets_read_as_host_and_port_or_socket() {
        let tcp = Target::Tcp { host: "db".into(), addr: Some([10, 0, 0, 5].into()), port: 5432 };
        assert_eq!(describe_target(&tcp), "host db (10.0.0.5), port 5432");
        let ip = Target::Tcp { host: "127.0.0.1".into(), addr: Some([127, 0, 0, 1].into()), port: 1 };
        assert_eq!(describe_target(&ip), "host 127.0.0.1, port 1");
        let unix = Target::Unix { socket: "/run/postgresql/.s.PGSQL.5432".into() };
        assert_eq!(describe_target(&unix), "socket /run/postgresql/.s.PGSQL.5432");
    }

    #[test]
    fn the_second_connection_is_pinned_to_the_server_the_first_reached() {
        let mut options =
            ConnectOptions::parse("host=db1,db2 port=5432,5433 load_balance_hosts=random").unwrap();
        pin(&mut options, &Target::Tcp { host: "db2".into(), addr: Some([10, 0, 0, 6].into()), port: 5433 });
        let s = options.settings();
        assert_eq!(
            s.endpoints,
            [Endpoint::new(Some(Host::Tcp("db2".into())), Some([10, 0, 0, 6].into()), 5433)]
        );
        assert_eq!(s.load_balance_hosts, LoadBalanceHosts::Disable);
        pin(&mut options, &Target::Unix { socket: "/run/postgresql/.s.PGSQL.5434".into() });
        assert_eq!(
            options.settings().endpoints,
            [Endpoint::new(Some(Host::Unix("/run/postgresql".into())), None, 5434)]
        );
    }

    #[test]
    fn the_timeout_is_a_positive_number_of_seconds() {
        assert_eq!(parse_timeout("2.5"), Ok(2.5));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
