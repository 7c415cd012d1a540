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

use std::future::Future;
use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::Args;
use tokio::time::Instant;
use tokio_postgres::Client;
use tracing::{debug, warn};

use bytebase_signal_client::connect::{ConnectOptions, Established, Target};
use bytebase_signal_client::Error;

use crate::Conn;
use decide::{Api, ConnectionFacts};
use gather::Session;
use report::{Check, CheckId, Report};

/// The doctor's `application_name`: its sessions are not mistaken for listeners (the CLI's
/// default is the listener's).
pub(crate) const DOCTOR_APPLICATION_NAME: &str = "bytebase-signal-doctor";

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
    let doctor = match connected {
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
    match &api {
        Some(api) => {
            report.push(doctor.privileges(api).await);
            report.push(doctor.log(api).await);
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
        let queue_at_limit = doctor.queue(&mut report, api.as_ref()).await;
        report.push(doctor.listeners().await);
        report.push(doctor.round_trip(api.as_ref(), queue_at_limit).await);
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
}

/// Connects (the first connection) and reads who the session is.
async fn connect(mut options: ConnectOptions, timeout: Duration) -> Result<Doctor, Error> {
    options.settings_mut().connect_timeout.get_or_insert(DEFAULT_CONNECT_TIMEOUT.max(timeout));
    let Established { client, connection, target, tls } = options.connect().await?;
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
    Ok(Doctor { options, client, connection, session, timeout })
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
        Ok(result) => result.map_err(Error::Database),
        Err(_) => Err(Error::Timeout { what, after }),
    }
}

/// A check that could not gather its facts fails with the error.
fn unchecked(id: CheckId, error: &Error) -> Check {
    Check::fail(id, format!("could not be checked: {error}"), "see the error; rerun with RUST_LOG=debug")
}

impl Doctor {
    /// The edition check; the API the later checks use.
    async fn edition(&self, report: &mut Report) -> Option<Api> {
        match within("the edition check", self.timeout, gather::edition(&self.client)).await {
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
        match within("the privileges check", self.timeout, facts).await {
            Ok(facts) => decide::privileges(&facts),
            Err(e) => unchecked(CheckId::Privileges, &e),
        }
    }

    async fn log(&self, api: &Api) -> Check {
        match within("the log check", self.timeout, gather::log(&self.client, api)).await {
            Ok(facts) => decide::log(&facts),
            Err(e) => unchecked(CheckId::Log, &e),
        }
    }

    /// The queue check; whether a logged send goes without NOTIFY now.
    async fn queue(&self, report: &mut Report, api: Option<&Api>) -> bool {
        let limit_applies = api.is_some_and(Api::has_queue_limit);
        let facts = gather::queue(&self.client, self.session.pid, limit_applies);
        match within("the queue check", self.timeout, facts).await {
            Ok(facts) => {
                report.push(decide::queue(&facts));
                facts.at_limit()
            }
            Err(e) => {
                report.push(unchecked(CheckId::NotificationQueue, &e));
                false
            }
        }
    }

    async fn listeners(&self) -> Check {
        match within("the listeners check", self.timeout, gather::listeners(&self.client)).await {
            Ok(sessions) => decide::listeners(&sessions, &self.session.database),
            Err(e) => unchecked(CheckId::Listeners, &e),
        }
    }

    async fn round_trip(&self, api: Option<&Api>, queue_at_limit: bool) -> Check {
        let path = round_trip::choose_path(&self.client, api, &self.session.user);
        let path = match within("choosing the probe", self.timeout, path).await {
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
            queue_at_limit,
        );
        match tokio::time::timeout(whole, trip).await {
            Ok(facts) => decide::round_trip(&facts),
            Err(_) => unchecked(CheckId::RoundTrip, &Error::Timeout { what: "the round trip", after: whole }),
        }
    }

    async fn clock_skew(&self) -> Check {
        match within("the clock check", self.timeout, clock_skew(&self.client)).await {
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
    fn the_timeout_is_a_positive_number_of_seconds() {
        assert_eq!(parse_timeout("2.5"), Ok(2.5));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
