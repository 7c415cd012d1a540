//! The resolved connection settings: every libpq keyword we support, typed, after the explicit
//! settings, the service file, the `PG*` environment and the defaults have been merged (see
//! `resolve.rs`). Nothing here touches the network or the file system.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A value that none of an enumerated keyword's names spells (libpq's names; case matters, except
/// for the TLS versions, as in libpq).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {keyword} value: \"{value}\" (expected one of: {})", .expected.join(", "))]
#[non_exhaustive]
pub struct UnknownValue {
    /// The keyword, e.g. `sslmode`.
    pub keyword: &'static str,
    /// The value given.
    pub value: String,
    /// The names the keyword takes.
    pub expected: &'static [&'static str],
}

/// An enumerated keyword's value: its names, in libpq's spelling, one place for parsing and
/// printing them.
pub(crate) trait KeywordValue: Copy + 'static {
    /// The keyword.
    const KEYWORD: &'static str;
    /// Every value with its name.
    const NAMES: &'static [(&'static str, Self)];
    /// The names alone, for messages.
    const EXPECTED: &'static [&'static str];
}

/// `as_str`, `FromStr` and `Display` for an enum of keyword values, from one table of names.
macro_rules! keyword_values {
    ($ty:ident, $keyword:literal, [$(($name:literal, $variant:ident)),+ $(,)?]) => {
        impl KeywordValue for $ty {
            const KEYWORD: &'static str = $keyword;
            const NAMES: &'static [(&'static str, Self)] = &[$(($name, $ty::$variant)),+];
            const EXPECTED: &'static [&'static str] = &[$($name),+];
        }

        impl $ty {
            #[doc = concat!("libpq's name of this `", $keyword, "` value.")]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownValue;

            #[doc = concat!("A `", $keyword, "` value by libpq's name (case matters, as in libpq).")]
            fn from_str(value: &str) -> Result<Self, UnknownValue> {
                <Self as KeywordValue>::NAMES
                    .iter()
                    .find(|(name, _)| *name == value)
                    .map(|&(_, v)| v)
                    .ok_or_else(|| UnknownValue {
                        keyword: $keyword,
                        value: value.to_string(),
                        expected: <Self as KeywordValue>::EXPECTED,
                    })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// libpq's `sslmode`: whether TLS is used and what is verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS if the server refuses the plaintext session.
    Allow,
    /// TLS if the server offers it (no verification), else plaintext. libpq's default.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate chain is verified only if a root certificate file exists.
    Require,
    /// TLS, the chain verified against `sslrootcert`.
    VerifyCa,
    /// TLS, the chain verified and the certificate issued to the host name.
    VerifyFull,
}

/// libpq's `sslnegotiation` (PostgreSQL 17).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslNegotiation {
    /// An `SSLRequest` first, as every PostgreSQL version understands.
    #[default]
    Postgres,
    /// The TLS handshake at once, with ALPN `postgresql` (servers 17 and later).
    Direct,
}

/// libpq's `channel_binding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelBinding {
    /// Never.
    Disable,
    /// SCRAM-SHA-256-PLUS when TLS is in use and the server offers it.
    #[default]
    Prefer,
    /// Refuse any authentication that is not channel-bound.
    Require,
}

/// libpq's `target_session_attrs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server.
    #[default]
    Any,
    /// A session that accepts writes by default (`transaction_read_only` off).
    ReadWrite,
    /// A session that is read-only by default.
    ReadOnly,
    /// A server that is not in hot standby.
    Primary,
    /// A server in hot standby.
    Standby,
    /// A standby if any host is one, else any server.
    PreferStandby,
}

/// libpq's `load_balance_hosts` (PostgreSQL 16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoadBalanceHosts {
    /// Try the hosts in the order given.
    #[default]
    Disable,
    /// Try them in random order.
    Random,
}

/// libpq's `sslcertmode` (PostgreSQL 16): whether a client certificate is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslCertMode {
    /// Never send one.
    Disable,
    /// Send one if the server asks and one is configured (or at the default location).
    #[default]
    Allow,
    /// Fail unless the server asks for one and it is sent.
    Require,
}

/// The TLS protocol versions rustls speaks (`ssl_min_protocol_version` /
/// `ssl_max_protocol_version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// `TLSv1`: accepted as a bound, but rustls never negotiates below TLS 1.2.
    Tls1_0,
    /// `TLSv1.1`: likewise.
    Tls1_1,
    /// `TLSv1.2` (libpq's default minimum).
    Tls1_2,
    /// `TLSv1.3`.
    Tls1_3,
}

keyword_values!(
    SslMode,
    "sslmode",
    [
        ("disable", Disable),
        ("allow", Allow),
        ("prefer", Prefer),
        ("require", Require),
        ("verify-ca", VerifyCa),
        ("verify-full", VerifyFull),
    ]
);
keyword_values!(SslNegotiation, "sslnegotiation", [("postgres", Postgres), ("direct", Direct)]);
keyword_values!(
    ChannelBinding,
    "channel_binding",
    [("disable", Disable), ("prefer", Prefer), ("require", Require)]
);
keyword_values!(
    TargetSessionAttrs,
    "target_session_attrs",
    [
        ("any", Any),
        ("read-write", ReadWrite),
        ("read-only", ReadOnly),
        ("primary", Primary),
        ("standby", Standby),
        ("prefer-standby", PreferStandby),
    ]
);
keyword_values!(LoadBalanceHosts, "load_balance_hosts", [("disable", Disable), ("random", Random)]);
keyword_values!(SslCertMode, "sslcertmode", [("disable", Disable), ("allow", Allow), ("require", Require)]);

impl TlsVersion {
    const NAMES: [(&'static str, TlsVersion); 4] = [
        ("TLSv1", TlsVersion::Tls1_0),
        ("TLSv1.1", TlsVersion::Tls1_1),
        ("TLSv1.2", TlsVersion::Tls1_2),
        ("TLSv1.3", TlsVersion::Tls1_3),
    ];

    /// libpq's name of this version (`TLSv1.2`).
    pub fn as_str(self) -> &'static str {
        Self::NAMES.iter().find(|(_, v)| *v == self).map_or("", |(name, _)| name)
    }
}

impl FromStr for TlsVersion {
    type Err = UnknownValue;

    /// A version by libpq's name, in any case (libpq compares them with `pg_strcasecmp`).
    fn from_str(value: &str) -> Result<Self, UnknownValue> {
        Self::NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(value)).map(|&(_, v)| v).ok_or_else(
            || UnknownValue {
                keyword: "ssl_min_protocol_version or ssl_max_protocol_version",
                value: value.to_string(),
                expected: &["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
            },
        )
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the certificate authorities for verifying the server come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trusted roots (`SSL_CERT_FILE` / `SSL_CERT_DIR`
    /// honoured, as OpenSSL does).
    System,
}

/// Where one host is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Host {
    /// A host name or IP address (the name certificates are checked against).
    Tcp(String),
    /// A Unix-domain socket directory (a `host` starting with `/` or `@`).
    Unix(PathBuf),
}

/// One entry of the comma-separated `host` / `hostaddr` / `port` lists.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Endpoint {
    /// `host`; `None` when only `hostaddr` was given for this position.
    pub host: Option<Host>,
    /// `hostaddr`: the address actually connected to, skipping name resolution.
    pub hostaddr: Option<IpAddr>,
    /// `port` (5432 unless given).
    pub port: u16,
}

impl Endpoint {
    /// Host `host` (or only the address `hostaddr`), port `port`.
    pub fn new(host: Option<Host>, hostaddr: Option<IpAddr>, port: u16) -> Self {
        Endpoint { host, hostaddr, port }
    }
}

/// Every setting of one connection, resolved. Built by `resolve.rs`; read by the TLS and
/// establishing code.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// The hosts to try, in order (after `load_balance_hosts` shuffling, which happens per
    /// connection attempt).
    pub endpoints: Vec<Endpoint>,
    /// `user` (default: the operating-system user name).
    pub user: String,
    /// `dbname` (default: the user name).
    pub dbname: String,
    /// `password` from the connection string, the service file or `PGPASSWORD`. When `None`, the
    /// password file is consulted for each host.
    pub password: Option<String>,
    /// `passfile` / `PGPASSFILE`, else `~/.pgpass`.
    pub passfile: Option<PathBuf>,
    /// `application_name`, else `fallback_application_name`.
    pub application_name: Option<String>,
    /// `options`: command-line options sent to the server (`-c name=value ...`).
    pub options: Option<String>,
    /// `connect_timeout`: per host; `None` waits indefinitely (libpq treats 0 and negative
    /// values so). libpq 17 waits exactly the seconds given; libpq 16 and older raised 1 s to 2 s.
    pub connect_timeout: Option<Duration>,
    /// `keepalives` (default on).
    pub keepalives: bool,
    /// `keepalives_idle`.
    pub keepalives_idle: Option<Duration>,
    /// `keepalives_interval`.
    pub keepalives_interval: Option<Duration>,
    /// `keepalives_count`.
    pub keepalives_count: Option<u32>,
    /// `tcp_user_timeout` (`None`: the system default).
    pub tcp_user_timeout: Option<Duration>,
    /// `target_session_attrs`.
    pub target_session_attrs: TargetSessionAttrs,
    /// `load_balance_hosts`.
    pub load_balance_hosts: LoadBalanceHosts,
    /// `sslmode`.
    pub sslmode: SslMode,
    /// `sslnegotiation`.
    pub sslnegotiation: SslNegotiation,
    /// `sslrootcert`; `None`: `~/.postgresql/root.crt` if it exists.
    pub sslrootcert: Option<RootCert>,
    /// `sslcert`; `None`: `~/.postgresql/postgresql.crt` if it exists.
    pub sslcert: Option<PathBuf>,
    /// `sslkey`; `None`: `~/.postgresql/postgresql.key` if it exists.
    pub sslkey: Option<PathBuf>,
    /// `sslcrl`; `None`: `~/.postgresql/root.crl` if it exists.
    pub sslcrl: Option<PathBuf>,
    /// `sslcrldir`: a directory of CRL files.
    pub sslcrldir: Option<PathBuf>,
    /// `sslsni` (default on): send the host name in the TLS handshake.
    pub sslsni: bool,
    /// `sslcertmode`.
    pub sslcertmode: SslCertMode,
    /// `ssl_min_protocol_version` (default `TLSv1.2`; an empty value is no bound: `TLSv1`).
    pub ssl_min_protocol_version: TlsVersion,
    /// `ssl_max_protocol_version` (`None`: the newest).
    pub ssl_max_protocol_version: Option<TlsVersion>,
    /// `channel_binding`.
    pub channel_binding: ChannelBinding,
}

impl std::fmt::Debug for Settings {
    /// Every setting, the password only as `<redacted>`: settings end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("passfile", &self.passfile)
            .field("application_name", &self.application_name)
            .field("options", &self.options)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalives", &self.keepalives)
            .field("keepalives_idle", &self.keepalives_idle)
            .field("keepalives_interval", &self.keepalives_interval)
            .field("keepalives_count", &self.keepalives_count)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("load_balance_hosts", &self.load_balance_hosts)
            .field("sslmode", &self.sslmode)
            .field("sslnegotiation", &self.sslnegotiation)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("sslcrl", &self.sslcrl)
            .field("sslcrldir", &self.sslcrldir)
            .field("sslsni", &self.sslsni)
            .field("sslcertmode", &self.sslcertmode)
            .field("ssl_min_protocol_version", &self.ssl_min_protocol_version)
            .field("ssl_max_protocol_version", &self.ssl_max_protocol_version)
            .field("channel_binding", &self.channel_binding)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name parses to its value and prints back, through the one table.
    fn round_trips<T: KeywordValue + FromStr<Err = UnknownValue> + fmt::Display + PartialEq + fmt::Debug>() {
        for &(name, value) in T::NAMES {
            assert_eq!(name.parse::<T>(), Ok(value));
            assert_eq!(value.to_string(), name);
        }
        let error = "Verify-Full".parse::<T>().unwrap_err();
        assert_eq!(
            (error.keyword, error.value.as_str(), error.expected),
            (T::KEYWORD, "Verify-Full", T::EXPECTED)
        );
    }

    #[test]
    fn names_round_trip() {
        round_trips::<SslMode>();
        round_trips::<SslNegotiation>();
        round_trips::<ChannelBinding>();
        round_trips::<TargetSessionAttrs>();
        round_trips::<LoadBalanceHosts>();
        round_trips::<SslCertMode>();
        assert_eq!(SslMode::VerifyCa.as_str(), "verify-ca");
        assert_eq!(TargetSessionAttrs::PreferStandby.as_str(), "prefer-standby");
    }

    #[test]
    fn an_unknown_value_names_the_keyword_and_the_choices() {
        assert_eq!(
            "verify_full".parse::<SslMode>().unwrap_err().to_string(),
            r#"invalid sslmode value: "verify_full" (expected one of: disable, allow, prefer, require, verify-ca, verify-full)"#
        );
    }

    #[test]
    fn tls_versions_parse_in_any_case_and_print_as_libpq_spells_them() {
        for (name, version) in TlsVersion::NAMES {
            assert_eq!(name.to_ascii_lowercase().parse::<TlsVersion>(), Ok(version));
            assert_eq!(version.as_str(), name);
        }
        assert!("TLSv1.4".parse::<TlsVersion>().is_err());
    }
}
