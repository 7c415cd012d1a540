//! Why a connection failed: every attempt, with the server it tried and the cause in words a user
//! can act on, the way libpq words them (`connection to server at "db" (10.0.0.5), port 5432
//! failed: ...`).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustls::CertificateError;

use super::tls::TlsSetupError;
use crate::options::settings::SslMode;

/// Where one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A TCP server.
    Tcp {
        /// The host as given (`host`, else `hostaddr`).
        host: String,
        /// The address connected to, when it differs from `host` (a resolved name, `hostaddr`).
        addr: Option<IpAddr>,
        /// The port.
        port: u16,
    },
    /// A Unix-domain socket (`<dir>/.s.PGSQL.<port>`).
    Unix {
        /// The socket file.
        socket: PathBuf,
    },
}

impl Target {
    /// The host as given, or the socket file.
    pub fn host(&self) -> String {
        match self {
            Target::Tcp { host, .. } => host.clone(),
            Target::Unix { socket } => socket.display().to_string(),
        }
    }

    /// The address connected to (TCP).
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Target::Tcp { addr, .. } => *addr,
            Target::Unix { .. } => None,
        }
    }

    /// The port (TCP).
    pub fn port(&self) -> Option<u16> {
        match self {
            Target::Tcp { port, .. } => Some(*port),
            Target::Unix { .. } => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, addr: Some(addr), port } if *host != addr.to_string() => {
                write!(f, "server at \"{host}\" ({addr}), port {port}")
            }
            Target::Tcp { host, port, .. } => write!(f, "server at \"{host}\", port {port}"),
            Target::Unix { socket } => write!(f, "server on socket \"{}\"", socket.display()),
        }
    }
}

/// The cause of one failed attempt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Cause {
    /// The host name did not resolve.
    #[error("could not translate host name \"{host}\" to address: {reason}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's words.
        reason: String,
    },
    /// The socket could not be connected (refused, unreachable, ...): the next address is tried.
    #[error("{message}")]
    Connect {
        /// The kind, for callers that react to it.
        kind: io::ErrorKind,
        /// The operating system's words (`Connection refused (os error 111)`).
        message: String,
    },
    /// The connection broke during startup (reset, ...).
    #[error("{message}")]
    Io {
        /// The kind, for callers that react to it.
        kind: io::ErrorKind,
        /// The operating system's words (`Connection refused (os error 111)`).
        message: String,
    },
    /// No answer within `connect_timeout`.
    #[error("timeout expired after {}", humanize(*.0))]
    Timeout(Duration),
    /// The server answered the SSLRequest with "no", and the mode insists on TLS.
    #[error("server does not support TLS, but sslmode={0} requires it")]
    TlsNotSupported(&'static str),
    /// TLS could not be set up from the settings (files missing, unreadable or unsafe).
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    /// The TLS handshake failed.
    #[error(transparent)]
    Tls(#[from] TlsFailure),
    /// The server refused us with an error (FATAL), e.g. no `pg_hba.conf` entry, a wrong password.
    #[error("{severity}:  {message} (SQLSTATE {code}){}", detail.as_deref().map(|d| format!("; DETAIL: {d}")).unwrap_or_default())]
    Server {
        /// `FATAL`, `ERROR`, ...
        severity: String,
        /// The SQLSTATE.
        code: String,
        /// The primary message.
        message: String,
        /// The detail, if any.
        detail: Option<String>,
    },
    /// The server asked for a password and none was given or found in the password file.
    #[error("fe_sendauth: no password supplied")]
    NoPassword,
    /// The password provider failed.
    #[error("the password provider failed: {0}")]
    PasswordProvider(String),
    /// Authentication failed on our side (an unsupported method, channel binding refused).
    #[error("{0}")]
    Authentication(String),
    /// The server is not what `target_session_attrs` asks for.
    #[error("{0}")]
    SessionAttrs(&'static str),
    /// `sslcertmode=require`, and the server let us in without a client certificate (it did not ask
    /// for one, or none is configured).
    #[error("server accepted connection without a valid SSL certificate (sslcertmode=require)")]
    CertificateNotSent,
    /// The server closed the connection during startup.
    #[error("server closed the connection unexpectedly; it probably terminated abnormally before or while processing the request")]
    Closed,
    /// Anything else the driver reported.
    #[error("{0}")]
    Other(String),
}

/// Why the TLS handshake failed, in terms of the server's certificate where that is the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The certificate was not issued by a CA in the root certificates.
    #[error(
        "server certificate is not trusted: it was not issued by a certificate authority in sslrootcert"
    )]
    UnknownIssuer,
    /// The certificate does not name the host.
    #[error("{}", not_valid_for_name(.expected, .presented))]
    NotValidForName {
        /// The host name we expected.
        expected: String,
        /// The names the certificate gives (subjectAltName).
        presented: Vec<String>,
    },
    /// The certificate has expired.
    #[error("server certificate has expired")]
    Expired,
    /// The certificate is not valid yet.
    #[error("server certificate is not yet valid")]
    NotValidYet,
    /// A CRL revokes the certificate.
    #[error("server certificate is revoked (by sslcrl)")]
    Revoked,
    /// The CRL is past its next update (OpenSSL, as libpq configures it, refuses it too).
    #[error("the certificate revocation list (sslcrl) has expired: its issuer's next update is past; fetch a current one")]
    ExpiredRevocationList,
    /// A CRL could not tell whether the certificate is revoked.
    #[error("revocation status of the server certificate is unknown: sslcrl holds no current list from its issuer")]
    UnknownRevocationStatus,
    /// The server presented a CA certificate as its own; OpenSSL accepts that, rustls does not.
    #[error(
        "server certificate is a CA certificate: rustls refuses a CA certificate used as the server's own \
         certificate (OpenSSL, and so libpq, accepts it); give the server a certificate issued by the CA"
    )]
    CaUsedAsServerCertificate,
    /// The server's certificate is X.509 version 1, which rustls does not verify.
    #[error(
        "server certificate (or one in its chain) is not X.509 version 3: version 1 is what \
         `openssl x509 -req` makes without -extfile; rustls verifies version 3 certificates only, \
         where libpq also verifies version 1 with sslmode=verify-ca; reissue it as version 3 with \
         the server's name, e.g. `openssl x509 -req ... -extfile <(printf 'subjectAltName=DNS:<host>')`"
    )]
    Version1Certificate,
    /// The server refused our client certificate, or asked for one we do not have.
    #[error("the server refused the TLS handshake: {0}")]
    Alert(String),
    /// The server speaks no TLS version in range (or none rustls speaks).
    #[error("no TLS protocol version in common with the server: {0}")]
    ProtocolVersion(String),
    /// Anything else.
    #[error("TLS handshake failed: {0}")]
    Other(String),
}

fn not_valid_for_name(expected: &str, presented: &[String]) -> String {
    if presented.is_empty() {
        format!(
            "server certificate is not valid for \"{expected}\": it has no subjectAltName, and rustls does not \
             fall back to the Common Name as libpq does; reissue it with a subjectAltName for \"{expected}\""
        )
    } else {
        format!("server certificate is not valid for \"{expected}\" (it names {})", presented.join(", "))
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// One failed attempt: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("connection to {target} failed: {cause}")]
#[non_exhaustive]
pub struct AttemptError {
    /// The server tried.
    pub target: Target,
    /// Whether this attempt was made over TLS.
    pub tls: bool,
    /// Why it failed.
    pub cause: Cause,
}

/// The connection failed: the settings themselves before any attempt, or each attempt, in order
/// (libpq's rules decide how many hosts and addresses that is).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// Settings changed after they were resolved break libpq's rules across settings
    /// (`sslrootcert=system` with a weaker `sslmode`, say): nothing was tried.
    Settings(crate::options::error::ConfigError),
    /// Every attempt failed: the attempts, in the order they were made (none when there was no
    /// host to connect to).
    Attempts(Vec<AttemptError>),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Settings(settings) => write!(f, "{settings}"),
            ConnectError::Attempts(attempts) if attempts.is_empty() => f.write_str("no host to connect to"),
            ConnectError::Attempts(attempts) => {
                for (i, a) in attempts.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
        }
    }
}

impl StdError for ConnectError {}

impl ConnectError {
    /// The attempts made, in order: none when the settings stopped it first.
    pub fn attempts(&self) -> &[AttemptError] {
        match self {
            ConnectError::Attempts(attempts) => attempts,
            ConnectError::Settings(_) => &[],
        }
    }

    /// Whether the server refused the login itself (authentication failed, no `pg_hba.conf`
    /// entry, no such database: SQLSTATE class 28 or 3D000), so that retrying soon with the same
    /// settings will not help. Not for transient refusals (starting up, too many connections).
    pub fn is_refused_by_server(&self) -> bool {
        self.attempts().last().is_some_and(|a| match &a.cause {
            Cause::Server { code, .. } => code.starts_with("28") || code == "3D000",
            _ => false,
        })
    }
}

/// Classifies a tokio-postgres error of one attempt. `sslmode` words the TLS refusal; `tls` says
/// whether TLS was in use (for channel binding's wording).
pub(crate) fn classify(e: &tokio_postgres::Error, sslmode: SslMode, tls: bool) -> Cause {
    if let Some(db) = e.as_db_error() {
        return Cause::Server {
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
        };
    }
    if e.is_closed() {
        return Cause::Closed;
    }
    if let Some(rustls) = find::<rustls::Error>(e) {
        return Cause::Tls(tls_failure(rustls));
    }
    let text = e.to_string();
    let source = e.source().map(|s| s.to_string()).unwrap_or_default();
    if text.starts_with("error performing TLS handshake") {
        if source.contains("server does not support TLS") {
            return Cause::TlsNotSupported(sslmode.as_str());
        }
        if let Some(io) = find::<io::Error>(e) {
            return Cause::Tls(TlsFailure::Other(io.to_string()));
        }
        return Cause::Tls(TlsFailure::Other(source));
    }
    if text.starts_with("invalid configuration") && source == "password missing" {
        return Cause::NoPassword;
    }
    if text.starts_with("authentication error") {
        if source == "server did not use channel binding" && !tls {
            return Cause::Authentication("channel binding required, but SSL not in use".to_owned());
        }
        if source == "server did not use channel binding" {
            return Cause::Authentication(
                "channel binding required, but server authenticated client without channel binding"
                    .to_owned(),
            );
        }
        return Cause::Authentication(source);
    }
    if let Some(io) = find::<io::Error>(e) {
        if text.starts_with("error connecting to server") {
            return Cause::Connect { kind: io.kind(), message: io.to_string() };
        }
        return Cause::Io { kind: io.kind(), message: io.to_string() };
    }
    if source.is_empty() {
        Cause::Other(text)
    } else {
        Cause::Other(format!("{text}: {source}"))
    }
}

/// The first error of type `T` in `e`'s chain of sources, looking inside `io::Error`s too (tokio's
/// TLS streams carry rustls' errors that way).
fn find<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            if let Some(t) = inner.downcast_ref::<T>() {
                return Some(t);
            }
            if let Some(t) = find::<T>(inner) {
                return Some(t);
            }
        }
        next = e.source();
    }
    None
}

/// What rustls said, as a cause a user can act on.
fn tls_failure(e: &rustls::Error) -> TlsFailure {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
            CertificateError::NotValidForNameContext { expected, presented } => TlsFailure::NotValidForName {
                expected: server_name(expected),
                presented: presented.iter().map(|name| plain_name(name)).collect(),
            },
            CertificateError::NotValidForName => {
                TlsFailure::NotValidForName { expected: String::new(), presented: vec!["other names".into()] }
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::NotValidYet
            }
            CertificateError::Revoked => TlsFailure::Revoked,
            CertificateError::UnknownRevocationStatus => TlsFailure::UnknownRevocationStatus,
            CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => TlsFailure::ExpiredRevocationList,
            CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => TlsFailure::CaUsedAsServerCertificate,
                Some(webpki::Error::UnsupportedCertVersion) => TlsFailure::Version1Certificate,
                _ => TlsFailure::Other(e.to_string()),
            },
            _ => TlsFailure::Other(e.to_string()),
        },
        E::AlertReceived(alert) => TlsFailure::Alert(format!("{alert:?}")),
        E::PeerIncompatible(p) => TlsFailure::ProtocolVersion(format!("{p:?}")),
        _ => TlsFailure::Other(e.to_string()),
    }
}

/// A name as webpki presents it (`DnsName("db.test")`, `IpAddress(127.0.0.1)`), as a user writes it.
fn plain_name(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(")
        .or_else(|| presented.strip_prefix("IpAddress("))
        .and_then(|rest| rest.strip_suffix(')'));
    match inner {
        Some(inner) => inner.trim_matches('"').to_owned(),
        None => presented.to_owned(),
    }
}

fn server_name(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_worded_as_libpq_words_them() {
        let named = Target::Tcp { host: "db.test".into(), addr: Some([127, 0, 0, 1].into()), port: 5432 };
        assert_eq!(named.to_string(), "server at \"db.test\" (127.0.0.1), port 5432");
        let ip = Target::Tcp { host: "127.0.0.1".into(), addr: Some([127, 0, 0, 1].into()), port: 1 };
        assert_eq!(ip.to_string(), "server at \"127.0.0.1\", port 1");
        let unix = Target::Unix { socket: "/tmp/.s.PGSQL.5432".into() };
        assert_eq!(unix.to_string(), "server on socket \"/tmp/.s.PGSQL.5432\"");
    }

    #[test]
    fn every_attempt_is_named_with_its_cause() {
        let refused = |port| AttemptError {
            target: Target::Tcp { host: "127.0.0.1".into(), addr: None, port },
            tls: false,
            cause: Cause::Connect {
                kind: io::ErrorKind::ConnectionRefused,
                message: "Connection refused (os error 111)".into(),
            },
        };
        let e = ConnectError::Attempts(vec![refused(1), refused(2)]);
        assert_eq!(
            e.to_string(),
            "connection to server at \"127.0.0.1\", port 1 failed: Connection refused (os error 111); \
             connection to server at \"127.0.0.1\", port 2 failed: Connection refused (os error 111)"
        );
        assert!(!e.is_refused_by_server());
    }

    #[test]
    fn presented_names_are_written_as_users_write_them() {
        assert_eq!(plain_name("DnsName(\"db.test\")"), "db.test");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("*.example.com"), "*.example.com");
    }

    #[test]
    fn name_mismatches_say_what_the_certificate_names() {
        let f = TlsFailure::NotValidForName {
            expected: "wrong.example".into(),
            presented: vec!["db.test".into()],
        };
        assert_eq!(f.to_string(), "server certificate is not valid for \"wrong.example\" (it names db.test)");
        let f = TlsFailure::NotValidForName { expected: "db.test".into(), presented: vec![] };
        assert!(f.to_string().contains("no subjectAltName"), "{f}");
    }
}
