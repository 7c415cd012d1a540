//! Making the connection: every host, every address of it and every TLS step `sslmode` allows, in
//! libpq's order and with libpq's rules for what a failure means ([`super::plan`]); each address
//! with one deadline (`connect_timeout`) over its steps, each attempt with its own password and a
//! record of why it failed. tokio-postgres does the protocol; this decides what it is asked to do.

use std::future::{poll_fn, Future};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use rand::seq::SliceRandom;
use tokio::time::Instant;
use tokio_postgres::{Client, Connection, SimpleQueryMessage, Socket};
use tracing::{debug, warn};

use super::failure::{classify, AttemptError, Cause, ConnectError, Target, TlsFailure};
use super::plan::{self, Failed, Next, Step, Wanted};
use super::stream::{MakeTls, Negotiated, TlsStream};
use super::tls::{self, Tls, TlsSetupError};
use crate::options::settings::{
    ChannelBinding, Endpoint, Host, LoadBalanceHosts, Settings, SslCertMode, SslMode, SslNegotiation,
};
use crate::options::{pgpass, resolve, ConnectOptions, PasswordRequest};

/// A connection that is up, with what it took to get there.
#[non_exhaustive]
pub struct Established {
    /// The client half.
    pub client: Client,
    /// The connection half: drive it (`poll_message`, or spawn it) or nothing happens.
    pub connection: Connection<Socket, TlsStream>,
    /// The server that answered.
    pub target: Target,
    /// What TLS negotiated, as this client sees it; `None`: not encrypted.
    pub tls: Option<Negotiated>,
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established").field("target", &self.target).field("tls", &self.tls).finish()
    }
}

/// One address to try.
struct Address {
    target: Target,
    /// The name TLS checks the certificate against and sends as SNI (`host`, else `hostaddr`).
    tls_name: Option<String>,
    /// Where tokio-postgres connects.
    connect: Connect,
    endpoint: Endpoint,
}

enum Connect {
    Tcp(IpAddr, u16),
    Unix(PathBuf, u16),
}

impl Address {
    fn unix(&self) -> bool {
        matches!(self.connect, Connect::Unix(..))
    }
}

/// What one address came to.
enum OnAddress {
    Up(Box<Established>),
    Failed(Next),
}

pub(crate) async fn establish(options: &ConnectOptions) -> Result<Established, ConnectError> {
    let settings = &options.settings;
    // The settings may have been changed since they were resolved: libpq's rules across them
    // hold for whatever is connected with.
    resolve::check(settings).map_err(ConnectError::Settings)?;
    let mut attempts = Vec::new();
    // TLS is configured once per call (files may change between calls: rotated certificates).
    let tls = match settings.sslmode {
        SslMode::Disable => None,
        _ => Some(tls::configure(settings, options.home.as_deref())),
    };
    if let Some(Err(setup)) = &tls {
        // `prefer` then goes without TLS, libpq's fallback: say why, once per connection.
        if settings.sslmode == SslMode::Prefer {
            warn!(error = %setup, "TLS could not be set up; sslmode=prefer connects without it");
        }
    }
    let mut endpoints = settings.endpoints.clone();
    if settings.load_balance_hosts == LoadBalanceHosts::Random {
        endpoints.shuffle(&mut rand::rng());
    }
    'passes: for &wanted in plan::passes(settings.target_session_attrs) {
        'hosts: for endpoint in &endpoints {
            let addresses = match addresses(endpoint, settings).await {
                Ok(addresses) => addresses,
                Err(failed) => {
                    // A name that does not resolve: the next host, as libpq.
                    attempts.push(failed);
                    continue;
                }
            };
            for address in addresses {
                match on_address(options, &address, tls.as_ref(), wanted, &mut attempts).await {
                    OnAddress::Up(established) => {
                        for failed in &attempts {
                            debug!(%failed, "earlier connection attempt failed");
                        }
                        return Ok(*established);
                    }
                    OnAddress::Failed(Next::Address | Next::Retry(_)) => continue,
                    OnAddress::Failed(Next::Host) => continue 'hosts,
                    OnAddress::Failed(Next::Stop) => break 'passes,
                }
            }
        }
    }
    Err(ConnectError::Attempts(attempts))
}

/// The addresses of one endpoint: `hostaddr` (which wins over any `host`, a socket directory
/// included, as in libpq), an IP literal, a resolved name (within `connect_timeout`), or a socket.
async fn addresses(endpoint: &Endpoint, settings: &Settings) -> Result<Vec<Address>, AttemptError> {
    let port = endpoint.port;
    let one = |target, tls_name, connect| Address { target, tls_name, connect, endpoint: endpoint.clone() };
    match (&endpoint.host, endpoint.hostaddr) {
        (host, Some(ip)) => {
            let tcp_name = match host {
                Some(Host::Tcp(name)) => Some(name.clone()),
                _ => None,
            };
            let shown = tcp_name.clone().unwrap_or_else(|| ip.to_string());
            Ok(vec![one(Target::Tcp { host: shown, addr: Some(ip), port }, tcp_name, Connect::Tcp(ip, port))])
        }
        (Some(Host::Unix(dir)), None) => {
            let socket = dir.join(format!(".s.PGSQL.{port}"));
            Ok(vec![one(Target::Unix { socket }, None, Connect::Unix(dir.clone(), port))])
        }
        (Some(Host::Tcp(name)), None) => {
            if let Ok(ip) = name.parse::<IpAddr>() {
                let target = Target::Tcp { host: name.clone(), addr: Some(ip), port };
                return Ok(vec![one(target, Some(name.clone()), Connect::Tcp(ip, port))]);
            }
            let failed = |cause| AttemptError {
                target: Target::Tcp { host: name.clone(), addr: None, port },
                tls: false,
                cause,
            };
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            let resolved = match settings.connect_timeout {
                Some(limit) => {
                    tokio::time::timeout(limit, lookup).await.map_err(|_| failed(Cause::Timeout(limit)))?
                }
                None => lookup.await,
            }
            .map_err(|e| failed(Cause::Resolve { host: name.clone(), reason: e.to_string() }))?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for addr in resolved {
                if !ips.contains(&addr.ip()) {
                    ips.push(addr.ip());
                }
            }
            if settings.load_balance_hosts == LoadBalanceHosts::Random {
                ips.shuffle(&mut rand::rng());
            }
            Ok(ips
                .into_iter()
                .map(|ip| {
                    let target = Target::Tcp { host: name.clone(), addr: Some(ip), port };
                    one(target, Some(name.clone()), Connect::Tcp(ip, port))
                })
                .collect())
        }
        (None, None) => Err(AttemptError {
            target: Target::Tcp { host: String::new(), addr: None, port },
            tls: false,
            cause: Cause::Other("neither host nor hostaddr given".into()),
        }),
    }
}

/// Every step `sslmode` allows on one address, within one `connect_timeout` (libpq restarts its
/// timer per address, not per step).
async fn on_address(
    options: &ConnectOptions,
    address: &Address,
    tls: Option<&Result<Tls, TlsSetupError>>,
    wanted: Wanted,
    attempts: &mut Vec<AttemptError>,
) -> OnAddress {
    let settings = &options.settings;
    let deadline = settings.connect_timeout.map(|limit| (Instant::now() + limit, limit));
    let tls_ready = matches!(tls, Some(Ok(_)));
    let mut step = plan::first_step(settings.sslmode, address.unix(), tls_ready);
    loop {
        let started = Arc::new(AtomicBool::new(false));
        let attempt = attempt(options, address, tls, step, wanted, &started);
        let outcome = match deadline {
            Some((at, limit)) => {
                tokio::time::timeout_at(at, attempt).await.unwrap_or(Err(Cause::Timeout(limit)))
            }
            None => attempt.await,
        };
        let cause = match outcome {
            Ok(established) => return OnAddress::Up(Box::new(established)),
            Err(cause) => cause,
        };
        let tls_used = started.load(Ordering::Relaxed);
        let failed = failed_as(&cause, tls_used);
        attempts.push(AttemptError { target: address.target.clone(), tls: tls_used, cause });
        match plan::next(settings.sslmode, step, address.unix(), failed) {
            Next::Retry(next) => step = next,
            other => return OnAddress::Failed(other),
        }
    }
}

/// libpq's reading of a cause: what it means for the attempts after it.
///
/// One deliberate difference: a connection that the other end closes (or breaks) during startup
/// gives way to the next address, where libpq stops. A load balancer or proxy without a healthy
/// backend does exactly that, and a listener given several hosts must get past it; nothing was
/// refused, so no credential goes anywhere it would not have gone anyway.
fn failed_as(cause: &Cause, tls_used: bool) -> Failed {
    match cause {
        Cause::Connect { .. } | Cause::Timeout(_) | Cause::Closed | Cause::Io { .. } => Failed::Unreachable,
        Cause::Tls(_) | Cause::TlsNotSupported(_) | Cause::TlsSetup(_) => Failed::Handshake,
        Cause::Server { code, .. } if code == "57P03" => Failed::CannotConnectNow,
        Cause::Server { .. } => Failed::Refused { tls: tls_used },
        Cause::SessionAttrs(_) => Failed::WrongSession,
        _ => Failed::Fatal,
    }
}

/// One connection attempt: a fresh password, tokio-postgres' startup, then the checks libpq makes
/// once it is in (a client certificate sent, the session's attributes).
async fn attempt(
    options: &ConnectOptions,
    address: &Address,
    tls: Option<&Result<Tls, TlsSetupError>>,
    step: Step,
    wanted: Wanted,
    started: &Arc<AtomicBool>,
) -> Result<Established, Cause> {
    let settings = &options.settings;
    let direct = settings.sslnegotiation == SslNegotiation::Direct;
    let connector = match (step.may_use_tls(), tls) {
        (true, Some(Err(setup))) => return Err(Cause::TlsSetup(setup.clone())),
        (true, Some(Ok(tls))) => {
            check_verifiable_name(settings, address)?;
            tls.certificate_requested.store(false, Ordering::Relaxed);
            tls.connector(Arc::clone(started), direct)
        }
        // Plaintext still needs a connector of the same type; it is never asked to connect.
        _ => MakeTls::plaintext(),
    };
    let negotiated = connector.negotiated();
    let password = password_for(options, address).await?;
    let pg = pg_config(settings, address, step, password);
    let (client, mut connection) = pg
        .connect(connector)
        .await
        .map_err(|e| classify(&e, settings.sslmode, started.load(Ordering::Relaxed)))?;
    let tls_info = negotiated.get().cloned();
    // libpq checks this at the end of authentication whatever the transport: without TLS no
    // certificate was sent either.
    if settings.sslcertmode == SslCertMode::Require {
        let sent = match (&tls_info, tls) {
            (Some(_), Some(Ok(tls))) => {
                tls.has_client_certificate && tls.certificate_requested.load(Ordering::Relaxed)
            }
            _ => false,
        };
        if !sent {
            return Err(Cause::CertificateNotSent);
        }
    }
    if let Some(mismatch) = check_session(&client, &mut connection, wanted).await? {
        return Err(Cause::SessionAttrs(mismatch));
    }
    Ok(Established { client, connection, target: address.target.clone(), tls: tls_info })
}

/// verify-full needs a name to check: libpq refuses without `host`, and rustls needs it to be a
/// DNS name or an IP address.
fn check_verifiable_name(settings: &Settings, address: &Address) -> Result<(), Cause> {
    if settings.sslmode != SslMode::VerifyFull {
        return Ok(());
    }
    match &address.tls_name {
        None => Err(Cause::Tls(TlsFailure::Other("host name must be specified for a verified SSL connection".into()))),
        Some(name) if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() => {
            Err(Cause::Tls(TlsFailure::Other(format!(
                "host name \"{name}\" is neither a DNS name nor an IP address, so no certificate can be checked against it"
            ))))
        }
        Some(_) => Ok(()),
    }
}

/// The password of this attempt: the provider's (asked anew every time), else the settings', else
/// the password file's entry for this host.
async fn password_for(options: &ConnectOptions, address: &Address) -> Result<Option<String>, Cause> {
    let settings = &options.settings;
    if let Some(provider) = &options.password_provider {
        let host = match (&address.connect, &address.target) {
            (Connect::Unix(dir, _), _) => dir.display().to_string(),
            (Connect::Tcp(..), target) => target.host(),
        };
        let request = PasswordRequest {
            host,
            port: address.endpoint.port,
            user: settings.user.clone(),
            dbname: settings.dbname.clone(),
        };
        return provider
            .password(request)
            .await
            .map(Some)
            .map_err(|e| Cause::PasswordProvider(e.to_string()));
    }
    if settings.password.is_some() {
        return Ok(settings.password.clone());
    }
    Ok(settings
        .passfile
        .as_deref()
        .and_then(|file| pgpass::lookup(file, &address.endpoint, &settings.dbname, &settings.user)))
}

/// tokio-postgres' configuration for one attempt on one address. (Its own `connect_timeout` is
/// not set: the address's deadline covers every step.)
fn pg_config(
    settings: &Settings,
    address: &Address,
    step: Step,
    password: Option<String>,
) -> tokio_postgres::Config {
    use tokio_postgres::config;
    let mut pg = tokio_postgres::Config::new();
    match &address.connect {
        Connect::Tcp(ip, port) => {
            // The host is the name TLS checks; the address is where the socket goes.
            pg.host(address.tls_name.as_deref().unwrap_or(&ip.to_string())).hostaddr(*ip).port(*port);
        }
        Connect::Unix(dir, port) => {
            pg.host_path(Path::new(dir)).port(*port);
        }
    }
    pg.user(&settings.user).dbname(&settings.dbname);
    if let Some(password) = password {
        pg.password(password);
    }
    if let Some(name) = &settings.application_name {
        pg.application_name(name);
    }
    if let Some(options) = &settings.options {
        pg.options(options);
    }
    pg.keepalives(settings.keepalives);
    if let Some(idle) = settings.keepalives_idle {
        pg.keepalives_idle(idle);
    }
    if let Some(interval) = settings.keepalives_interval {
        pg.keepalives_interval(interval);
    }
    if let Some(count) = settings.keepalives_count {
        pg.keepalives_retries(count);
    }
    if let Some(timeout) = settings.tcp_user_timeout {
        pg.tcp_user_timeout(timeout);
    }
    pg.ssl_mode(match step {
        Step::Plain => config::SslMode::Disable,
        Step::TlsIfOffered => config::SslMode::Prefer,
        Step::TlsRequired => config::SslMode::Require,
    });
    pg.ssl_negotiation(match settings.sslnegotiation {
        SslNegotiation::Postgres => config::SslNegotiation::Postgres,
        SslNegotiation::Direct => config::SslNegotiation::Direct,
    });
    pg.channel_binding(match settings.channel_binding {
        ChannelBinding::Disable => config::ChannelBinding::Disable,
        ChannelBinding::Prefer => config::ChannelBinding::Prefer,
        ChannelBinding::Require => config::ChannelBinding::Require,
    });
    pg
}

/// Asks the server what `wanted` needs to know, driving the connection meanwhile; returns libpq's
/// words for a mismatch.
async fn check_session(
    client: &Client,
    connection: &mut Connection<Socket, TlsStream>,
    wanted: Wanted,
) -> Result<Option<&'static str>, Cause> {
    let sql = match wanted {
        Wanted::Any => return Ok(None),
        Wanted::ReadWrite | Wanted::ReadOnly => "SHOW transaction_read_only",
        Wanted::Primary | Wanted::Standby => "SELECT CASE WHEN pg_is_in_recovery() THEN 'on' ELSE 'off' END",
    };
    let messages = drive(connection, client.simple_query(sql))
        .await?
        .map_err(|e| classify(&e, SslMode::Disable, false))?;
    let value = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "on"),
        _ => None,
    });
    Ok(match wanted {
        Wanted::ReadWrite | Wanted::ReadOnly => plan::judge(wanted, value, None),
        _ => plan::judge(wanted, None, value),
    })
}

/// Runs `work` while driving `connection` (whose asynchronous messages, notices at this point, are
/// dropped); fails if the connection ends first. The address's deadline bounds it.
async fn drive<F: Future>(
    connection: &mut Connection<Socket, TlsStream>,
    work: F,
) -> Result<F::Output, Cause> {
    let mut work = pin!(work);
    poll_fn(|cx| loop {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match connection.poll_message(cx) {
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(classify(&e, SslMode::Disable, false))),
            Poll::Ready(None) => return Poll::Ready(Err(Cause::Closed)),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> Cause {
        Cause::Server { severity: "FATAL".into(), code: code.into(), message: String::new(), detail: None }
    }

    #[test]
    fn causes_are_read_as_libpq_reads_them() {
        let refused = Cause::Connect { kind: std::io::ErrorKind::ConnectionRefused, message: String::new() };
        assert_eq!(failed_as(&refused, false), Failed::Unreachable);
        assert_eq!(failed_as(&Cause::Timeout(std::time::Duration::from_secs(1)), true), Failed::Unreachable);
        assert_eq!(
            failed_as(&Cause::Closed, false),
            Failed::Unreachable,
            "our difference: a proxy without a backend"
        );
        assert_eq!(failed_as(&server("57P03"), true), Failed::CannotConnectNow);
        assert_eq!(failed_as(&server("28000"), true), Failed::Refused { tls: true });
        assert_eq!(failed_as(&Cause::SessionAttrs("session is read-only"), true), Failed::WrongSession);
        assert_eq!(failed_as(&Cause::TlsNotSupported("require"), false), Failed::Handshake);
        assert_eq!(failed_as(&Cause::NoPassword, false), Failed::Fatal);
        assert_eq!(failed_as(&Cause::CertificateNotSent, true), Failed::Fatal);
    }
}
