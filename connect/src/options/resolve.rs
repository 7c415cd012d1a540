//! Turns explicit settings into [`Settings`] the way libpq 17 does: each keyword takes the first
//! value found in
//!
//! 1. the explicit settings (a connection string's pairs, the last one of a keyword winning),
//! 2. the service named by `service` or `PGSERVICE` (see [`super::service`]): it never overrides
//!    an explicit setting,
//! 3. the keyword's `PG*` environment variable,
//! 4. the default.
//!
//! A value is a value even when empty, as in libpq: `host=''`, `PGHOST=` and `host=` in a service
//! file all stop the search, and then mean the default for `host`, `port`, `user`, `dbname`,
//! `password`, `passfile`, `options` and the TLS file names, but are an invalid value for an
//! enumeration (`PGSSLMODE=` fails with `invalid sslmode value: ""`, as `psql` does) and an
//! invalid integer for the numbers. An empty `application_name` means none, not the fallback.
//!
//! Then come libpq's checks across settings (`connectOptions2`), in its order: host, hostaddr
//! and port lists; `channel_binding`; `sslmode`; `sslnegotiation=direct` needs an `sslmode` of
//! `require` or stronger; `sslrootcert=system` makes the default `sslmode` `verify-full` and
//! refuses any other; the TLS version range; `sslcertmode`; `gssencmode`;
//! `target_session_attrs`; `load_balance_hosts`. The checks libpq leaves to connection time
//! (port numbers, `hostaddr` syntax, the integers) are made here, so a bad setting fails before
//! any host is tried, and for every host, where libpq skips a host with a bad port.
//!
//! Unix-socket endpoints never use TLS, whatever `sslmode` says (libpq 15 and 17 connect in
//! plaintext even with `sslmode=verify-full`): the connecting code must do the same, and must
//! refuse `channel_binding=require` without TLS at authentication, where libpq refuses it
//! (`channel binding required but not supported by server's authentication request`).
//!
//! # Keywords
//!
//! Every keyword of libpq 19 is known (anything else is `invalid connection option`).
//! What each one does here:
//!
//! | keyword | variable | here |
//! |---|---|---|
//! | `host`, `hostaddr`, `port` | `PGHOST`, `PGHOSTADDR`, `PGPORT` | [`Settings::endpoints`] |
//! | `user`, `dbname` | `PGUSER`, `PGDATABASE` | [`Settings::user`], [`Settings::dbname`] |
//! | `password`, `passfile` | `PGPASSWORD`, `PGPASSFILE` | [`Settings::password`], [`Settings::passfile`] |
//! | `application_name`, `fallback_application_name` | `PGAPPNAME`, - | [`Settings::application_name`] |
//! | `options` | `PGOPTIONS` | [`Settings::options`]; `PGDATESTYLE`, `PGTZ` and `PGGEQO`, which libpq sends as startup parameters, are appended as `-c datestyle=...` etc. (the server applies them after `options`, so they win there too) |
//! | `connect_timeout` | `PGCONNECT_TIMEOUT` | [`Settings::connect_timeout`] |
//! | `keepalives`, `keepalives_idle`, `keepalives_interval`, `keepalives_count`, `tcp_user_timeout` | - | the keepalive fields, [`Settings::tcp_user_timeout`] |
//! | `target_session_attrs`, `load_balance_hosts` | `PGTARGETSESSIONATTRS`, `PGLOADBALANCEHOSTS` | the fields of those names |
//! | `sslmode`, `sslnegotiation`, `sslrootcert`, `sslcert`, `sslkey`, `sslcrl`, `sslcrldir`, `sslsni`, `sslcertmode`, `ssl_min_protocol_version`, `ssl_max_protocol_version`, `channel_binding` | `PGSSLMODE` (and the old `PGREQUIRESSL=1`), `PGSSLNEGOTIATION`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGSSLCRL`, `PGSSLCRLDIR`, `PGSSLSNI`, `PGSSLCERTMODE`, `PGSSLMINPROTOCOLVERSION`, `PGSSLMAXPROTOCOLVERSION`, `PGCHANNELBINDING` | the fields of those names |
//! | `service`, `servicefile` (19) | `PGSERVICE`, `PGSERVICEFILE` | which service to read, from where |
//! | `client_encoding` | `PGCLIENTENCODING` | accepted when UTF-8 (`UTF8`, `utf-8`, `UNICODE`, ...) or `auto`: tokio-postgres always speaks UTF-8, whatever the locale; anything else is an error |
//! | `gssencmode` | `PGGSSENCMODE` | as a libpq built without GSSAPI: `disable` and `prefer` mean no GSSAPI encryption, `require` is libpq's error for that build |
//! | `sslcompression` | `PGSSLCOMPRESSION` | accepted, no effect: libpq ignores it too since TLS compression was removed |
//! | `krbsrvname`, `gsslib`, `gssdelegation` | `PGKRBSRVNAME`, `PGGSSLIB`, `PGGSSDELEGATION` | accepted, no effect: they only matter for GSSAPI authentication, which a libpq without GSSAPI cannot do either |
//! | `max_protocol_version` (18) | `PGMAXPROTOCOLVERSION` | `3.0`, `3.2` or `latest` accepted, no effect: we speak 3.0, within any of them |
//! | `min_protocol_version` (18) | `PGMINPROTOCOLVERSION` | `3.0` accepted; `3.2` and `latest` refused: we speak 3.0 only |
//! | `replication` | - | empty or false (`false`, `off`, `no`, `0`) accepted; anything else refused: no replication protocol |
//! | `require_auth` | `PGREQUIREAUTH` | refused: we cannot restrict the server's authentication methods |
//! | `requirepeer` | `PGREQUIREPEER` | refused: we cannot check the server process's OS user |
//! | `sslpassword` | - | refused: we cannot decrypt an encrypted client key |
//! | `sslkeylogfile` (18) | - | refused: we do not log TLS keys |
//! | `oauth_issuer`, `oauth_client_id`, `oauth_client_secret`, `oauth_scope` (18) | - | refused: no OAuth |
//! | `oauth_ca_file` (19) | `PGOAUTHCAFILE` | accepted, no effect: only an OAuth login reads it, and one cannot start without `oauth_issuer` |
//! | `scram_client_key`, `scram_server_key` (18) | - | refused: no SCRAM key pass-through |
//!
//! "Refused" is [`ConfigError::Unsupported`], and only for a non-empty value (an empty one is no
//! setting in libpq either). Secrets are never echoed in errors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::env::Environment;
use super::error::{ConfigError, Origin};
use super::keywords::{is_secret, keyword, unalias, KEYWORDS};
use super::lexical::{in_dir, is_c_space};
use super::service;
use super::settings::{
    ChannelBinding, Endpoint, Host, KeywordValue, LoadBalanceHosts, RootCert, Settings, SslCertMode, SslMode,
    SslNegotiation, TargetSessionAttrs, TlsVersion,
};

/// Session settings libpq sends as startup parameters when their variable is set (to anything
/// but `default`), and the server setting each one names.
const SESSION_VARIABLES: [(&str, &str); 3] =
    [("PGDATESTYLE", "datestyle"), ("PGTZ", "timezone"), ("PGGEQO", "geqo")];

/// libpq's default port.
const DEFAULT_PORT: u16 = 5432;

/// One keyword's value and where it came from.
#[derive(Debug)]
struct Value {
    text: String,
    origin: Origin,
}

/// The values found so far, by keyword.
#[derive(Debug, Default)]
struct Values(HashMap<&'static str, Value>);

impl Values {
    fn set(&mut self, keyword: &'static str, text: String, origin: Origin) -> Result<(), ConfigError> {
        if text.contains('\0') {
            return Err(ConfigError::NulCharacter { what: keyword.to_string(), origin });
        }
        self.0.insert(keyword, Value { text, origin });
        Ok(())
    }

    fn has(&self, keyword: &str) -> bool {
        self.0.contains_key(keyword)
    }

    fn get(&self, keyword: &str) -> Option<&Value> {
        self.0.get(keyword)
    }

    /// The value, if there is one and it is not empty.
    fn nonempty(&self, keyword: &str) -> Option<&Value> {
        self.get(keyword).filter(|v| !v.text.is_empty())
    }

    fn text(&self, keyword: &str) -> Option<&str> {
        self.get(keyword).map(|v| v.text.as_str())
    }
}

/// A variable of `env`, an error if it is not UTF-8.
fn var(env: &dyn Environment, name: &'static str) -> Result<Option<String>, ConfigError> {
    env.var_os(name).map(|v| v.into_string().map_err(|_| ConfigError::NotUnicode(name))).transpose()
}

/// Resolves `explicit` (a connection string's pairs, later ones winning; see
/// [`super::conninfo::parse`]) with the service file, the `PG*` variables and the defaults of
/// `env` into the settings of one connection, checked as libpq checks them.
pub(crate) fn resolve(explicit: &[(String, String)], env: &dyn Environment) -> Result<Settings, ConfigError> {
    let mut values = Values::default();
    for (name, text) in explicit {
        let (name, text) = unalias(name, text.clone());
        let known = keyword(name).ok_or_else(|| ConfigError::InvalidOption(name.to_string()))?;
        values.set(known.name, text, Origin::Explicit)?;
    }

    // The service: filling what is not explicit.
    let service = match values.text("service") {
        Some(name) => Some(name.to_string()),
        None => var(env, "PGSERVICE")?,
    };
    if let Some(name) = service {
        let servicefile = values.get("servicefile").map(|v| PathBuf::from(&v.text));
        let found = service::lookup(&name, servicefile.as_deref(), env)?;
        for setting in found.settings {
            if !values.has(setting.keyword) {
                let origin = Origin::Service { file: found.file.clone(), line: setting.line };
                values.set(setting.keyword, setting.value, origin)?;
            }
        }
    }

    // The variables: filling what is still missing.
    for keyword in KEYWORDS {
        if let Some(name) = keyword.env {
            if !values.has(keyword.name) {
                if let Some(text) = var(env, name)? {
                    values.set(keyword.name, text, Origin::Env(name))?;
                }
            }
        }
    }
    // libpq's old variable, weaker than PGSSLMODE.
    if !values.has("sslmode") && var(env, "PGREQUIRESSL")?.is_some_and(|v| v.starts_with('1')) {
        values.set("sslmode", "require".into(), Origin::Env("PGREQUIRESSL"))?;
    }

    build(&values, env)
}

/// The typed settings, with the defaults, checked.
/// libpq's rules across settings, for settings changed after they were resolved (through
/// `ConnectOptions::settings_mut`, or built from a tokio-postgres `Config`): a weaker `sslmode`
/// than `sslrootcert=system` or `sslnegotiation=direct` allow is refused, whoever set it.
pub(crate) fn check(settings: &Settings) -> Result<(), ConfigError> {
    let sslmode = || settings.sslmode.as_str().to_string();
    if settings.sslnegotiation == SslNegotiation::Direct && settings.sslmode < SslMode::Require {
        return Err(ConfigError::WeakSslModeForDirectNegotiation {
            sslmode: sslmode(),
            origin: Origin::Explicit,
        });
    }
    if settings.sslrootcert == Some(RootCert::System) && settings.sslmode != SslMode::VerifyFull {
        return Err(ConfigError::WeakSslModeForSystemRoots { sslmode: sslmode(), origin: Origin::Explicit });
    }
    if settings.ssl_max_protocol_version.is_some_and(|max| max < settings.ssl_min_protocol_version) {
        return Err(ConfigError::InvalidSslVersionRange);
    }
    Ok(())
}

fn build(values: &Values, env: &dyn Environment) -> Result<Settings, ConfigError> {
    let lists = HostLists::split(values)?;

    let user = match values.nonempty("user") {
        Some(v) => v.text.clone(),
        None => env.user_name()?,
    };
    let dbname = values.nonempty("dbname").map_or_else(|| user.clone(), |v| v.text.clone());
    let password = values.nonempty("password").map(|v| v.text.clone());
    let passfile = match values.nonempty("passfile") {
        Some(v) => Some(PathBuf::from(&v.text)),
        None => env.home_dir().map(|home| in_dir(home, ".pgpass")),
    };

    refuse(
        values,
        "require_auth",
        "it restricts the authentication methods the server may use, which this client cannot enforce",
    )?;
    let channel_binding = choice(values, ChannelBinding::Prefer)?;

    // sslmode: its default is verify-full with the system's roots.
    let sslrootcert = values.nonempty("sslrootcert").map(|v| match v.text.as_str() {
        "system" => RootCert::System,
        path => RootCert::File(PathBuf::from(path)),
    });
    let sslmode_default =
        if sslrootcert == Some(RootCert::System) { SslMode::VerifyFull } else { SslMode::Prefer };
    let sslmode = choice(values, sslmode_default)?;
    let sslmode_given = || match values.get("sslmode") {
        Some(v) => (v.text.clone(), v.origin.clone()),
        None => (sslmode.as_str().to_string(), Origin::Default),
    };
    let sslnegotiation = choice(values, SslNegotiation::Postgres)?;
    if sslnegotiation == SslNegotiation::Direct && sslmode < SslMode::Require {
        let (sslmode, origin) = sslmode_given();
        return Err(ConfigError::WeakSslModeForDirectNegotiation { sslmode, origin });
    }
    if sslrootcert == Some(RootCert::System) && sslmode != SslMode::VerifyFull {
        let (sslmode, origin) = sslmode_given();
        return Err(ConfigError::WeakSslModeForSystemRoots { sslmode, origin });
    }

    // The TLS versions: the minimum defaults to TLSv1.2; an empty value is no bound.
    let ssl_min_protocol_version = match values.get("ssl_min_protocol_version") {
        None => Some(TlsVersion::Tls1_2),
        Some(_) => tls_version(values, "ssl_min_protocol_version")?,
    };
    let ssl_max_protocol_version = tls_version(values, "ssl_max_protocol_version")?;
    if let (Some(min), Some(max)) = (ssl_min_protocol_version, ssl_max_protocol_version) {
        if max < min {
            return Err(ConfigError::InvalidSslVersionRange);
        }
    }
    let ssl_min_protocol_version = ssl_min_protocol_version.unwrap_or(TlsVersion::Tls1_0);

    let sslcertmode = choice(values, SslCertMode::Allow)?;
    // gssencmode: this client has no GSSAPI, so only `require` is refused (disable and prefer
    // mean plaintext or TLS, as without GSSAPI in libpq).
    if let Some(v) = values.get("gssencmode") {
        match v.text.as_str() {
            "disable" | "prefer" => {}
            "require" => return Err(ConfigError::GssEncryptionUnavailable { origin: v.origin.clone() }),
            _ => {
                return Err(ConfigError::InvalidValue {
                    keyword: "gssencmode",
                    value: v.text.clone(),
                    origin: v.origin.clone(),
                })
            }
        }
    }
    let target_session_attrs = choice(values, TargetSessionAttrs::Any)?;
    let load_balance_hosts = choice(values, LoadBalanceHosts::Disable)?;
    check_client_encoding(values)?;

    // What libpq checks only when it connects.
    let endpoints = lists.endpoints(env)?;
    let connect_timeout = int(values, "connect_timeout")?
        .filter(|&s| s > 0)
        .map(|s| Duration::from_secs(s.unsigned_abs().into()));
    let keepalives = int(values, "keepalives")?.is_none_or(|k| k != 0);
    // libpq reads the other keepalive settings only with keepalives on.
    let keepalive = |keyword| if keepalives { keepalive_setting(values, keyword) } else { Ok(None) };
    let keepalives_idle = keepalive("keepalives_idle")?.map(|s| Duration::from_secs(s.into()));
    let keepalives_interval = keepalive("keepalives_interval")?.map(|s| Duration::from_secs(s.into()));
    let keepalives_count = keepalive("keepalives_count")?;
    let tcp_user_timeout = int(values, "tcp_user_timeout")?
        .filter(|&ms| ms > 0)
        .map(|ms| Duration::from_millis(ms.unsigned_abs().into()));

    check_unsupported(values)?;

    Ok(Settings {
        endpoints,
        user,
        dbname,
        password,
        passfile,
        application_name: match values.get("application_name") {
            Some(v) => Some(v.text.clone()),
            None => values.get("fallback_application_name").map(|v| v.text.clone()),
        }
        .filter(|name| !name.is_empty()),
        options: options(values, env)?,
        connect_timeout,
        keepalives,
        keepalives_idle,
        keepalives_interval,
        keepalives_count,
        tcp_user_timeout,
        target_session_attrs,
        load_balance_hosts,
        sslmode,
        sslnegotiation,
        sslrootcert,
        sslcert: path(values, "sslcert"),
        sslkey: path(values, "sslkey"),
        sslcrl: path(values, "sslcrl"),
        sslcrldir: path(values, "sslcrldir"),
        // libpq sends the name when the value starts with 1, whatever follows.
        sslsni: values.text("sslsni").is_none_or(|v| v.starts_with('1')),
        sslcertmode,
        ssl_min_protocol_version,
        ssl_max_protocol_version,
        channel_binding,
    })
}

fn origin(values: &Values, keyword: &str) -> Origin {
    values.get(keyword).map_or(Origin::Default, |v| v.origin.clone())
}

fn path(values: &Values, keyword: &str) -> Option<PathBuf> {
    values.nonempty(keyword).map(|v| PathBuf::from(&v.text))
}

/// The value of an enumerated keyword: `default` when unset, else exactly one of its names
/// (case matters, as in libpq).
fn choice<T: KeywordValue>(values: &Values, default: T) -> Result<T, ConfigError> {
    let keyword = T::KEYWORD;
    let Some(v) = values.get(keyword) else { return Ok(default) };
    T::NAMES
        .iter()
        .find(|(name, _)| *name == v.text)
        .map(|&(_, value)| value)
        .ok_or_else(|| ConfigError::InvalidValue { keyword, value: v.text.clone(), origin: v.origin.clone() })
}

/// libpq's integer syntax (`strtol`, then nothing but whitespace): optional surrounding
/// whitespace, an optional sign, decimal digits, within 32 bits.
fn parse_int(text: &str) -> Option<i32> {
    text.trim_matches(|c: char| c.is_ascii() && is_c_space(c as u8)).parse().ok()
}

/// An integer keyword, `None` when unset.
fn int(values: &Values, keyword: &'static str) -> Result<Option<i32>, ConfigError> {
    let Some(v) = values.get(keyword) else { return Ok(None) };
    parse_int(&v.text).map(Some).ok_or_else(|| ConfigError::InvalidInteger {
        keyword,
        value: v.text.clone(),
        origin: v.origin.clone(),
    })
}

/// `keepalives_idle`, `keepalives_interval` or `keepalives_count`: at least 1.
fn keepalive_setting(values: &Values, keyword: &'static str) -> Result<Option<u32>, ConfigError> {
    let Some(v) = values.get(keyword) else { return Ok(None) };
    let Some(n) = int(values, keyword)? else { return Ok(None) };
    match u32::try_from(n) {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(ConfigError::KeepaliveTooSmall { keyword, value: v.text.clone(), origin: v.origin.clone() }),
    }
}

/// `ssl_min_protocol_version` or `ssl_max_protocol_version`; `None` when unset or empty.
fn tls_version(values: &Values, keyword: &'static str) -> Result<Option<TlsVersion>, ConfigError> {
    let Some(v) = values.nonempty(keyword) else { return Ok(None) };
    let version = v.text.parse::<TlsVersion>().map_err(|_| ConfigError::InvalidSslVersion {
        keyword,
        value: v.text.clone(),
        origin: v.origin.clone(),
    })?;
    Ok(Some(version))
}

/// `client_encoding`: only UTF-8 (named as PostgreSQL accepts it: any case, punctuation
/// ignored) or `auto`.
fn check_client_encoding(values: &Values) -> Result<(), ConfigError> {
    let Some(v) = values.nonempty("client_encoding") else { return Ok(()) };
    let name: String =
        v.text.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    if v.text == "auto" || name == "utf8" || name == "unicode" {
        Ok(())
    } else {
        Err(ConfigError::UnsupportedClientEncoding { value: v.text.clone(), origin: v.origin.clone() })
    }
}

/// [`ConfigError::Unsupported`] if `keyword` has a non-empty value.
fn refuse(values: &Values, keyword: &'static str, reason: &'static str) -> Result<(), ConfigError> {
    let Some(v) = values.nonempty(keyword) else { return Ok(()) };
    let value = if is_secret(keyword) { "****".to_string() } else { v.text.clone() };
    Err(ConfigError::Unsupported { keyword, value, reason, origin: v.origin.clone() })
}

/// The keywords this client refuses (see the module's table).
fn check_unsupported(values: &Values) -> Result<(), ConfigError> {
    refuse(
        values,
        "requirepeer",
        "it checks the operating-system user running the server, which this client cannot do",
    )?;
    refuse(values, "sslpassword", "it decrypts an encrypted client key, which this client cannot read")?;
    refuse(values, "sslkeylogfile", "this client does not log TLS keys")?;
    for keyword in ["oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope"] {
        refuse(values, keyword, "this client has no OAuth authentication")?;
    }
    for keyword in ["scram_client_key", "scram_server_key"] {
        refuse(values, keyword, "this client cannot authenticate with SCRAM keys")?;
    }
    if let Some(v) = values.nonempty("replication") {
        if !matches!(v.text.to_ascii_lowercase().as_str(), "false" | "off" | "no" | "0") {
            refuse(values, "replication", "this client does not speak the replication protocol")?;
        }
    }
    if let Some(v) = values.nonempty("min_protocol_version") {
        match v.text.as_str() {
            "3.0" => {}
            "3.2" | "latest" => {
                refuse(values, "min_protocol_version", "this client speaks protocol version 3.0 only")?
            }
            _ => return Err(invalid(v, "min_protocol_version")),
        }
    }
    if let Some(v) = values.nonempty("max_protocol_version") {
        if !matches!(v.text.as_str(), "3.0" | "3.2" | "latest") {
            return Err(invalid(v, "max_protocol_version"));
        }
    }
    Ok(())
}

fn invalid(v: &Value, keyword: &'static str) -> ConfigError {
    ConfigError::InvalidValue { keyword, value: v.text.clone(), origin: v.origin.clone() }
}

/// `options`, then the session variables libpq sends as startup parameters, as `-c` switches.
fn options(values: &Values, env: &dyn Environment) -> Result<Option<String>, ConfigError> {
    let mut options = values.nonempty("options").map(|v| v.text.clone());
    for (variable, setting) in SESSION_VARIABLES {
        let Some(value) = var(env, variable)? else { continue };
        // libpq skips `default`; an empty value, which the server would refuse, we skip too.
        if value.is_empty() || value.eq_ignore_ascii_case("default") {
            continue;
        }
        let switch = format!("-c {setting}={}", escape_option(&value));
        options = Some(match options {
            Some(before) => format!("{before} {switch}"),
            None => switch,
        });
    }
    Ok(options)
}

/// Escapes whitespace and backslashes as the server's splitting of `options` expects.
fn escape_option(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || (c.is_ascii() && is_c_space(c as u8)) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The comma-separated `host`, `hostaddr` and `port` lists, matched up.
struct HostLists<'a> {
    hosts: Vec<&'a str>,
    hostaddrs: Vec<&'a str>,
    ports: Vec<&'a str>,
    host_origin: Origin,
    hostaddr_origin: Origin,
    port_origin: Origin,
}

impl<'a> HostLists<'a> {
    /// As libpq: one entry per `hostaddr` if any is given, else per `host`, else one; the
    /// `host` list must then be as long (unless empty), and `port` be one port or one per host.
    fn split(values: &'a Values) -> Result<Self, ConfigError> {
        let list = |keyword| values.nonempty(keyword).map(|v| v.text.split(',').collect::<Vec<_>>());
        let (host, hostaddr, port) = (list("host"), list("hostaddr"), list("port"));
        let count = hostaddr.as_ref().or(host.as_ref()).map_or(1, Vec::len);
        let hosts = match host {
            Some(hosts) if hosts.len() != count => {
                return Err(ConfigError::HostCountMismatch { hosts: hosts.len(), hostaddrs: count })
            }
            Some(hosts) => hosts,
            None => vec![""; count],
        };
        let ports = match port {
            Some(ports) if ports.len() == 1 => vec![ports[0]; count],
            Some(ports) if ports.len() != count => {
                return Err(ConfigError::PortCountMismatch { ports: ports.len(), hosts: count })
            }
            Some(ports) => ports,
            None => vec![""; count],
        };
        Ok(HostLists {
            hosts,
            hostaddrs: hostaddr.unwrap_or_else(|| vec![""; count]),
            ports,
            host_origin: origin(values, "host"),
            hostaddr_origin: origin(values, "hostaddr"),
            port_origin: origin(values, "port"),
        })
    }

    /// One endpoint per entry; an entry with neither host nor hostaddr is the default host.
    fn endpoints(&self, env: &dyn Environment) -> Result<Vec<Endpoint>, ConfigError> {
        let entries = self.hosts.iter().zip(&self.hostaddrs).zip(&self.ports);
        entries
            .map(|((&host, &hostaddr), &port)| {
                let port = match port {
                    "" => DEFAULT_PORT,
                    text => {
                        let origin = self.port_origin.clone();
                        let n = parse_int(text).ok_or_else(|| ConfigError::InvalidInteger {
                            keyword: "port",
                            value: text.to_string(),
                            origin: origin.clone(),
                        })?;
                        u16::try_from(n)
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or(ConfigError::InvalidPort { value: text.to_string(), origin })?
                    }
                };
                let hostaddr = match hostaddr {
                    "" => None,
                    text => Some(text.parse::<IpAddr>().map_err(|_| ConfigError::InvalidHostaddr {
                        value: text.to_string(),
                        origin: self.hostaddr_origin.clone(),
                    })?),
                };
                let host = match host {
                    "" if hostaddr.is_none() => Some(default_host(env)),
                    "" => None,
                    path if path.starts_with('/') => Some(Host::Unix(PathBuf::from(path))),
                    // Linux's abstract socket namespace: the driver can only reach socket files.
                    abstract_socket if abstract_socket.starts_with('@') => {
                        return Err(ConfigError::Unsupported {
                            keyword: "host",
                            value: abstract_socket.to_string(),
                            reason: "abstract Unix-domain sockets (@name) cannot be reached by this client; use a socket directory",
                            origin: self.host_origin.clone(),
                        })
                    }
                    name => Some(Host::Tcp(name.to_string())),
                };
                Ok(Endpoint { host, hostaddr, port })
            })
            .collect()
    }
}

/// Where a connection without host or hostaddr goes: the default socket directory if it exists,
/// else `localhost` (our difference from libpq, which always tries the socket).
fn default_host(env: &dyn Environment) -> Host {
    match env.default_socket_dir() {
        Some(dir) => Host::Unix(dir),
        None => Host::Tcp("localhost".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::options::conninfo::parse;
    use crate::options::env::MapEnvironment;

    /// An environment with only an OS user.
    fn env() -> MapEnvironment {
        MapEnvironment::new().user("alice")
    }

    fn resolved(dsn: &str, env: &MapEnvironment) -> Settings {
        let explicit = parse(dsn).unwrap_or_else(|e| panic!("{dsn:?}: {e}"));
        resolve(&explicit, env).unwrap_or_else(|e| panic!("{dsn:?}: {e}"))
    }

    fn error(dsn: &str, env: &MapEnvironment) -> ConfigError {
        let explicit = parse(dsn).unwrap_or_else(|e| panic!("{dsn:?}: {e}"));
        match resolve(&explicit, env) {
            Ok(settings) => panic!("{dsn:?} resolved to {settings:?}"),
            Err(e) => e,
        }
    }

    fn message(dsn: &str, env: &MapEnvironment) -> String {
        error(dsn, env).to_string()
    }

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint { host: Some(Host::Tcp(host.into())), hostaddr: None, port }
    }

    #[test]
    fn defaults() {
        let s = resolved("", &env());
        assert_eq!(s.endpoints, [tcp("localhost", 5432)]);
        assert_eq!((s.user.as_str(), s.dbname.as_str()), ("alice", "alice"));
        assert_eq!(s.password, None);
        assert_eq!(s.passfile, None);
        assert_eq!(s.application_name, None);
        assert_eq!(s.options, None);
        assert_eq!(s.connect_timeout, None);
        assert!(s.keepalives);
        assert_eq!((s.keepalives_idle, s.keepalives_interval, s.keepalives_count), (None, None, None));
        assert_eq!(s.tcp_user_timeout, None);
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::Any);
        assert_eq!(s.load_balance_hosts, LoadBalanceHosts::Disable);
        assert_eq!(s.sslmode, SslMode::Prefer);
        assert_eq!(s.sslnegotiation, SslNegotiation::Postgres);
        assert_eq!(
            (s.sslrootcert, s.sslcert, s.sslkey, s.sslcrl, s.sslcrldir),
            (None, None, None, None, None)
        );
        assert!(s.sslsni);
        assert_eq!(s.sslcertmode, SslCertMode::Allow);
        assert_eq!((s.ssl_min_protocol_version, s.ssl_max_protocol_version), (TlsVersion::Tls1_2, None));
        assert_eq!(s.channel_binding, ChannelBinding::Prefer);

        // With the socket directory present, the default host is that directory; the password
        // file is ~/.pgpass, spelled as libpq spells it.
        let s = resolved("", &env().socket_dir(DEFAULT_SOCKET).home("/home/alice"));
        assert_eq!(
            s.endpoints,
            [Endpoint { host: Some(Host::Unix(DEFAULT_SOCKET.into())), hostaddr: None, port: 5432 }]
        );
        assert_eq!(s.passfile.as_deref(), Some(Path::new("/home/alice/.pgpass")));
        assert_eq!(resolved("", &env().home("/")).passfile.as_deref(), Some(Path::new("//.pgpass")));

        // No user anywhere: the OS user lookup's error.
        let explicit = parse("host=h").unwrap();
        assert!(matches!(resolve(&explicit, &MapEnvironment::new()), Err(ConfigError::OsUser(_))));
        assert_eq!(resolve(&parse("user=bob").unwrap(), &MapEnvironment::new()).unwrap().dbname, "bob");
    }

    const DEFAULT_SOCKET: &str = "/var/run/postgresql";

    #[test]
    fn explicit_beats_service_beats_variable_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services");
        std::fs::write(&file, "[s]\nhost=from-service\nport=2\nuser=service-user\n").unwrap();
        let env = env()
            .var("PGSERVICEFILE", &file)
            .var("PGHOST", "from-env")
            .var("PGPORT", "3")
            .var("PGUSER", "env-user")
            .var("PGDATABASE", "env-db")
            .var("PGAPPNAME", "env-app");

        let s = resolved("service=s host=explicit", &env);
        assert_eq!(s.endpoints, [tcp("explicit", 2)]);
        assert_eq!(s.user, "service-user");
        assert_eq!(s.dbname, "env-db");
        assert_eq!(s.application_name.as_deref(), Some("env-app"));
        assert_eq!(s.sslmode, SslMode::Prefer);

        // Without the service the variables fill in.
        let s = resolved("host=explicit", &env);
        assert_eq!((s.endpoints, s.user.as_str()), (vec![tcp("explicit", 3)], "env-user"));
        // PGSERVICE selects it as `service` does (psql "PGSERVICE=svc PGUSER=envuser": the
        // service's user won).
        let s = resolved("", &env.clone().var("PGSERVICE", "s"));
        assert_eq!((s.endpoints, s.user.as_str()), (vec![tcp("from-service", 2)], "service-user"));
        // An explicit service beats PGSERVICE.
        let error = error("service=nope", &env.clone().var("PGSERVICE", "s"));
        assert_eq!(error, ConfigError::ServiceNotFound("nope".into()));
    }

    #[test]
    fn a_variable_fills_a_gap_in_the_connection_string() {
        let env = env().var("PGSSLMODE", "verify-full").var("PGCONNECT_TIMEOUT", "7");
        let s = resolved("postgresql://db.example.com/app", &env);
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(
            resolved("postgresql://db.example.com/app?sslmode=disable", &env).sslmode,
            SslMode::Disable
        );
    }

    #[test]
    fn a_service_in_the_user_file_hides_the_system_one() {
        let home = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".pg_service.conf"), "[s]\nhost=user-file\n").unwrap();
        std::fs::write(sys.path().join("pg_service.conf"), "[s]\nhost=system-file\nport=9\n[t]\nport=8\n")
            .unwrap();
        let env = env().home(home.path()).var("PGSYSCONFDIR", sys.path());
        assert_eq!(resolved("service=s", &env).endpoints, [tcp("user-file", 5432)]);
        assert_eq!(resolved("service=t", &env).endpoints, [tcp("localhost", 8)]);
        assert_eq!(message("service=u", &env), r#"definition of service "u" not found"#);
        // PGSERVICE= is the service named "" (psql found the section `[]`), not no service.
        assert_eq!(message("", &env.clone().var("PGSERVICE", "")), r#"definition of service "" not found"#);
    }

    #[test]
    fn errors_in_a_service_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services");
        std::fs::write(&file, "[s]\nhost=h\nsslmode=bogus\n").unwrap();
        let env = env().var("PGSERVICEFILE", &file);
        assert_eq!(
            message("service=s", &env),
            format!(r#"invalid sslmode value: "bogus" (from service file "{}", line 3)"#, file.display())
        );
        assert_eq!(resolved("service=s sslmode=require", &env).sslmode, SslMode::Require);
        std::fs::write(&file, "[s]\nhost=h\nsslmode=disable\n").unwrap();
        assert_eq!(resolved("service=s", &env.clone().var("PGSSLMODE", "require")).sslmode, SslMode::Disable);
    }

    #[test]
    fn empty_values_are_values() {
        // psql: PGSSLMODE= and sslmode='' both fail with invalid sslmode value: "".
        assert_eq!(message("", &env().var("PGSSLMODE", "")), r#"invalid sslmode value: "" (from PGSSLMODE)"#);
        assert_eq!(message("sslmode=''", &env()), r#"invalid sslmode value: """#);
        // psql: PGTARGETSESSIONATTRS=, PGCHANNELBINDING=, PGSSLNEGOTIATION= (17) likewise.
        for (var, keyword) in [
            ("PGTARGETSESSIONATTRS", "target_session_attrs"),
            ("PGCHANNELBINDING", "channel_binding"),
            ("PGSSLNEGOTIATION", "sslnegotiation"),
            ("PGLOADBALANCEHOSTS", "load_balance_hosts"),
            ("PGSSLCERTMODE", "sslcertmode"),
            ("PGGSSENCMODE", "gssencmode"),
        ] {
            assert_eq!(
                message("", &env().var(var, "")),
                format!(r#"invalid {keyword} value: "" (from {var})"#)
            );
        }
        // psql: PGCONNECT_TIMEOUT= fails with invalid integer value "" for connection option
        // "connect_timeout".
        assert_eq!(
            message("", &env().var("PGCONNECT_TIMEOUT", "")),
            r#"invalid integer value "" for connection option "connect_timeout" (from PGCONNECT_TIMEOUT)"#
        );
        assert_eq!(
            message("keepalives=''", &env()),
            r#"invalid integer value "" for connection option "keepalives""#
        );
        // psql: PGHOST=, PGPORT=, PGUSER=, PGDATABASE=, PGOPTIONS= mean the defaults.
        let env = env()
            .var("PGHOST", "")
            .var("PGPORT", "")
            .var("PGUSER", "")
            .var("PGDATABASE", "")
            .var("PGOPTIONS", "")
            .var("PGPASSWORD", "")
            .var("PGSSLROOTCERT", "")
            .var("PGSSLMINPROTOCOLVERSION", "");
        let s = resolved("", &env);
        assert_eq!(s.endpoints, [tcp("localhost", 5432)]);
        assert_eq!(
            (s.user.as_str(), s.dbname.as_str(), s.options, s.password),
            ("alice", "alice", None, None)
        );
        assert_eq!((s.sslrootcert, s.sslmode), (None, SslMode::Prefer));
        // An empty minimum is no minimum.
        assert_eq!(s.ssl_min_protocol_version, TlsVersion::Tls1_0);
        // An empty explicit value stops the search: psql "host='' port=45432" with PGHOST set
        // went to the socket, not to PGHOST.
        let s = resolved(
            "host='' user=''",
            &MapEnvironment::new().var("PGHOST", "elsewhere").var("PGUSER", "x").user("os"),
        );
        assert_eq!((s.endpoints, s.user.as_str()), (vec![tcp("localhost", 5432)], "os"));
        // psql: PGAPPNAME= sent no application_name, not the fallback.
        let env = self::env().var("PGAPPNAME", "");
        assert_eq!(resolved("fallback_application_name=fb", &env).application_name, None);
        assert_eq!(
            resolved("fallback_application_name=fb", &self::env()).application_name.as_deref(),
            Some("fb")
        );
        assert_eq!(
            resolved("application_name=a fallback_application_name=fb", &self::env())
                .application_name
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn host_and_port_lists() {
        let s = resolved("host=a,b,c port=1", &env());
        assert_eq!(s.endpoints, [tcp("a", 1), tcp("b", 1), tcp("c", 1)]);
        let s = resolved("host=a,b port=1,2", &env());
        assert_eq!(s.endpoints, [tcp("a", 1), tcp("b", 2)]);
        // Empty entries are defaults (psql "host=,127.0.0.1" tried the socket first; "port=1,"
        // used 5432 for the second host).
        let s = resolved("host=,b port=1,", &env().socket_dir(DEFAULT_SOCKET));
        let socket = Endpoint { host: Some(Host::Unix(DEFAULT_SOCKET.into())), hostaddr: None, port: 1 };
        assert_eq!(s.endpoints, [socket, tcp("b", 5432)]);
        let s = resolved("postgresql://a:1,b/", &env());
        assert_eq!(s.endpoints, [tcp("a", 1), tcp("b", 5432)]);
        // Unix sockets: a path; Linux's abstract namespace is refused.
        assert!(
            message("host=/tmp,@abstract,h", &env())
                .contains("abstract Unix-domain sockets (@name) cannot be reached"),
            "an abstract socket is refused, not taken for a file"
        );
        let s = resolved("host=/tmp,h", &env());
        let hosts: Vec<_> = s.endpoints.into_iter().map(|e| e.host.unwrap()).collect();
        assert_eq!(hosts, [Host::Unix("/tmp".into()), Host::Tcp("h".into())]);
        // psql: could not match 3 port numbers to 2 hosts
        assert_eq!(message("host=a,b port=1,2,3", &env()), "could not match 3 port numbers to 2 hosts");
        assert_eq!(message("port=1,2", &env()), "could not match 2 port numbers to 1 hosts");
        assert_eq!(message("host=a,b port=,,", &env()), "could not match 3 port numbers to 2 hosts");
    }

    #[test]
    fn hostaddr() {
        let s = resolved("host=db.example.com hostaddr=192.0.2.1", &env());
        let addr = |a: &str| Some(a.parse::<IpAddr>().unwrap());
        assert_eq!(
            s.endpoints,
            [Endpoint {
                host: Some(Host::Tcp("db.example.com".into())),
                hostaddr: addr("192.0.2.1"),
                port: 5432
            }]
        );
        // Only hostaddr: no host at all (psql 17 "hostaddr=127.0.0.1,127.0.0.1 port=1,45432"
        // tried both).
        let s = resolved("hostaddr=127.0.0.1,::1 port=1,2", &env().socket_dir(DEFAULT_SOCKET));
        assert_eq!(
            s.endpoints,
            [
                Endpoint { host: None, hostaddr: addr("127.0.0.1"), port: 1 },
                Endpoint { host: None, hostaddr: addr("::1"), port: 2 }
            ]
        );
        // An empty hostaddr entry leaves that host to name resolution.
        let s = resolved("host=a,b hostaddr=,192.0.2.2", &env());
        assert_eq!(s.endpoints[0], tcp("a", 5432));
        assert_eq!(
            s.endpoints[1],
            Endpoint { host: Some(Host::Tcp("b".into())), hostaddr: addr("192.0.2.2"), port: 5432 }
        );
        // psql: could not match 3 host names to 2 hostaddr values; with host=a,b and one
        // hostaddr: could not match 2 host names to 1 hostaddr values.
        assert_eq!(
            message("host=a,b,c hostaddr=127.0.0.1,127.0.0.2", &env()),
            "could not match 3 host names to 2 hostaddr values"
        );
        assert_eq!(
            message("host=a,b hostaddr=127.0.0.1", &env()),
            "could not match 2 host names to 1 hostaddr values"
        );
        assert_eq!(
            message("host=a hostaddr=127.0.0.1,::1 port=1", &env()),
            "could not match 1 host names to 2 hostaddr values"
        );
        assert_eq!(
            message("host=a,b hostaddr=1.2.3.4 port=1", &env()),
            "could not match 2 host names to 1 hostaddr values"
        );
        // psql: could not parse network address "x": Name or service not known
        assert_eq!(message("hostaddr=x", &env()), r#"could not parse network address "x""#);
        assert_eq!(
            message("", &env().var("PGHOSTADDR", "db")),
            r#"could not parse network address "db" (from PGHOSTADDR)"#
        );
    }

    #[test]
    fn ports() {
        // psql: invalid integer value "abc" for connection option "port"; invalid port number:
        // "99999"; "0" and "-1" likewise; " 5432 " is 5432; " " is not an integer.
        assert_eq!(
            message("port=abc", &env()),
            r#"invalid integer value "abc" for connection option "port""#
        );
        assert_eq!(message("port=99999", &env()), r#"invalid port number: "99999""#);
        assert_eq!(message("port=0", &env()), r#"invalid port number: "0""#);
        assert_eq!(message("port=-1", &env()), r#"invalid port number: "-1""#);
        assert_eq!(message("port=' '", &env()), r#"invalid integer value " " for connection option "port""#);
        assert_eq!(resolved("port=' 5433 '", &env()).endpoints, [tcp("localhost", 5433)]);
        assert_eq!(resolved("port=+5433", &env()).endpoints, [tcp("localhost", 5433)]);
        assert_eq!(
            message("host=a,b port=1,x", &env()),
            r#"invalid integer value "x" for connection option "port""#
        );
        assert_eq!(
            message("", &env().var("PGPORT", "5432x")),
            r#"invalid integer value "5432x" for connection option "port" (from PGPORT)"#
        );
        assert_eq!(
            message("", &env().var("PGPORT", "65536")),
            r#"invalid port number: "65536" (from PGPORT)"#
        );
        assert_eq!(resolved("port=65535", &env()).endpoints, [tcp("localhost", 65535)]);
    }

    #[test]
    fn integers_and_timeouts() {
        let timeout = |v: &str| resolved(&format!("connect_timeout='{v}'"), &env()).connect_timeout;
        assert_eq!(timeout("10"), Some(Duration::from_secs(10)));
        // libpq 17 waits 1 s for 1 (checked with psql 17 against a server that never answers:
        // 1.01 s; psql 15 took 2.04 s), and forever for 0 or less.
        assert_eq!(timeout("1"), Some(Duration::from_secs(1)));
        assert_eq!(timeout("0"), None);
        assert_eq!(timeout("-1"), None);
        // psql accepted " 5 " and "+5" and refused 2147483648.
        assert_eq!(timeout(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(timeout("+5"), Some(Duration::from_secs(5)));
        assert_eq!(
            message("connect_timeout=2147483648", &env()),
            r#"invalid integer value "2147483648" for connection option "connect_timeout""#
        );
        assert_eq!(
            message("connect_timeout=x", &env()),
            r#"invalid integer value "x" for connection option "connect_timeout""#
        );
        assert_eq!(
            message("connect_timeout=1.5", &env()),
            r#"invalid integer value "1.5" for connection option "connect_timeout""#
        );

        let s = resolved(
            "keepalives=1 keepalives_idle=30 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=1500",
            &env(),
        );
        assert!(s.keepalives);
        assert_eq!(
            (s.keepalives_idle, s.keepalives_interval),
            (Some(Duration::from_secs(30)), Some(Duration::from_secs(5)))
        );
        assert_eq!((s.keepalives_count, s.tcp_user_timeout), (Some(3), Some(Duration::from_millis(1500))));
        // psql: keepalives=2 is on, keepalives=x an invalid integer.
        assert!(resolved("keepalives=2", &env()).keepalives);
        assert!(!resolved("keepalives=0", &env()).keepalives);
        assert_eq!(
            message("keepalives=x", &env()),
            r#"invalid integer value "x" for connection option "keepalives""#
        );
        assert_eq!(
            message("keepalives_idle=x", &env()),
            r#"invalid integer value "x" for connection option "keepalives_idle""#
        );
        // psql "keepalives=0 keepalives_idle=x" connected: the others are not read then.
        let s = resolved("keepalives=0 keepalives_idle=x keepalives_count=0", &env());
        assert_eq!((s.keepalives, s.keepalives_idle, s.keepalives_count), (false, None, None));
        // psql with keepalives_idle=0 (or -5), keepalives_interval=0, keepalives_count=0 fails
        // with setsockopt(TCP_KEEPIDLE) failed: Invalid argument, when it connects.
        for keyword in ["keepalives_idle", "keepalives_interval", "keepalives_count"] {
            for value in ["0", "-5"] {
                assert_eq!(
                    message(&format!("{keyword}={value}"), &env()),
                    format!(r#"invalid {keyword} value: "{value}" (must be at least 1)"#)
                );
            }
        }
        // tcp_user_timeout=0 is the system default (psql connected); negative too.
        assert_eq!(resolved("tcp_user_timeout=0", &env()).tcp_user_timeout, None);
        assert_eq!(resolved("tcp_user_timeout=-3", &env()).tcp_user_timeout, None);
        assert_eq!(
            message("tcp_user_timeout=x", &env()),
            r#"invalid integer value "x" for connection option "tcp_user_timeout""#
        );
    }

    #[test]
    fn enumerations() {
        let s = resolved(
            "sslmode=verify-ca sslnegotiation=direct channel_binding=require target_session_attrs=prefer-standby \
             load_balance_hosts=random sslcertmode=require gssencmode=prefer",
            &env(),
        );
        assert_eq!(s.sslmode, SslMode::VerifyCa);
        assert_eq!(s.sslnegotiation, SslNegotiation::Direct);
        assert_eq!(s.channel_binding, ChannelBinding::Require);
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::PreferStandby);
        assert_eq!(s.load_balance_hosts, LoadBalanceHosts::Random);
        assert_eq!(s.sslcertmode, SslCertMode::Require);
        for (value, attrs) in [
            ("any", TargetSessionAttrs::Any),
            ("read-write", TargetSessionAttrs::ReadWrite),
            ("read-only", TargetSessionAttrs::ReadOnly),
            ("primary", TargetSessionAttrs::Primary),
            ("standby", TargetSessionAttrs::Standby),
        ] {
            assert_eq!(
                resolved(&format!("target_session_attrs={value}"), &env()).target_session_attrs,
                attrs
            );
        }
        // Each checked verbatim against psql 17.
        assert_eq!(message("sslmode=verify_full", &env()), r#"invalid sslmode value: "verify_full""#);
        assert_eq!(message("sslmode=Require", &env()), r#"invalid sslmode value: "Require""#);
        assert_eq!(
            message("", &env().var("PGSSLMODE", "bogus")),
            r#"invalid sslmode value: "bogus" (from PGSSLMODE)"#
        );
        assert_eq!(message("channel_binding=x", &env()), r#"invalid channel_binding value: "x""#);
        assert_eq!(message("target_session_attrs=x", &env()), r#"invalid target_session_attrs value: "x""#);
        assert_eq!(message("sslnegotiation=x", &env()), r#"invalid sslnegotiation value: "x""#);
        assert_eq!(message("sslcertmode=x", &env()), r#"invalid sslcertmode value: "x""#);
        assert_eq!(message("gssencmode=x", &env()), r#"invalid gssencmode value: "x""#);
        assert_eq!(message("load_balance_hosts=x", &env()), r#"invalid load_balance_hosts value: "x""#);
        // A libpq built without GSSAPI says this; ours has none.
        assert_eq!(
            message("gssencmode=require", &env()),
            r#"gssencmode value "require" invalid when GSSAPI support is not compiled in"#
        );
        assert_eq!(resolved("gssencmode=disable", &env()).sslmode, SslMode::Prefer);
        // sslsni: on when the value starts with 1, as libpq reads it.
        assert!(!resolved("sslsni=0", &env()).sslsni);
        assert!(!resolved("sslsni=x", &env()).sslsni);
        assert!(!resolved("sslsni=''", &env()).sslsni);
        assert!(resolved("sslsni=1", &env()).sslsni);
        // The old spellings.
        assert_eq!(resolved("requiressl=1", &env()).sslmode, SslMode::Require);
        let explicit = [("requiressl".to_string(), "0".to_string())];
        assert_eq!(resolve(&explicit, &env()).unwrap().sslmode, SslMode::Prefer);
        // psql: PGREQUIRESSL=1 requires SSL, PGSSLMODE beats it.
        assert_eq!(resolved("", &env().var("PGREQUIRESSL", "1")).sslmode, SslMode::Require);
        assert_eq!(
            resolved("", &env().var("PGREQUIRESSL", "1").var("PGSSLMODE", "disable")).sslmode,
            SslMode::Disable
        );
        assert_eq!(resolved("", &env().var("PGREQUIRESSL", "0")).sslmode, SslMode::Prefer);
    }

    #[test]
    fn libpqs_rules_across_tls_settings() {
        // sslrootcert=system: verify-full by default, anything else refused (psql 17:
        // weak sslmode "require" may not be used with sslrootcert=system (use "verify-full")).
        let s = resolved("sslrootcert=system", &env());
        assert_eq!((s.sslmode, s.sslrootcert), (SslMode::VerifyFull, Some(RootCert::System)));
        assert_eq!(
            message("sslrootcert=system sslmode=require", &env()),
            r#"weak sslmode "require" may not be used with sslrootcert=system (use "verify-full")"#
        );
        assert_eq!(
            message("sslrootcert=system", &env().var("PGSSLMODE", "verify-ca")),
            r#"weak sslmode "verify-ca" may not be used with sslrootcert=system (use "verify-full") (from PGSSLMODE)"#
        );
        assert_eq!(resolved("", &env().var("PGSSLROOTCERT", "system")).sslmode, SslMode::VerifyFull);
        let s = resolved("sslrootcert=/etc/ca.pem", &env());
        assert_eq!((s.sslmode, s.sslrootcert), (SslMode::Prefer, Some(RootCert::File("/etc/ca.pem".into()))));
        // sslnegotiation=direct needs require or stronger (psql 17's words, with the default
        // sslmode too).
        assert_eq!(
            message("sslnegotiation=direct", &env()),
            r#"weak sslmode "prefer" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")"#
        );
        assert_eq!(
            message("sslnegotiation=direct sslmode=allow", &env()),
            r#"weak sslmode "allow" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")"#
        );
        assert_eq!(
            resolved("sslnegotiation=direct sslmode=require", &env()).sslnegotiation,
            SslNegotiation::Direct
        );
        // channel_binding=require without TLS is no configuration error in libpq: it fails at
        // authentication (psql: channel binding required but not supported by server's
        // authentication request).
        assert_eq!(
            resolved("channel_binding=require sslmode=disable", &env()).channel_binding,
            ChannelBinding::Require
        );
    }

    #[test]
    fn tls_versions() {
        let s = resolved("ssl_min_protocol_version=tlsv1.3 ssl_max_protocol_version=TLSV1.3", &env());
        assert_eq!(
            (s.ssl_min_protocol_version, s.ssl_max_protocol_version),
            (TlsVersion::Tls1_3, Some(TlsVersion::Tls1_3))
        );
        let s = resolved("ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1", &env());
        assert_eq!(
            (s.ssl_min_protocol_version, s.ssl_max_protocol_version),
            (TlsVersion::Tls1_0, Some(TlsVersion::Tls1_1))
        );
        // psql 17: invalid "ssl_min_protocol_version" value: "TLSv1.4" (psql 15 leaves out the
        // quotes around the keyword).
        assert_eq!(
            message("ssl_min_protocol_version=TLSv1.4", &env()),
            r#"invalid "ssl_min_protocol_version" value: "TLSv1.4""#
        );
        assert_eq!(
            message("ssl_max_protocol_version=1.2", &env()),
            r#"invalid "ssl_max_protocol_version" value: "1.2""#
        );
        // psql: invalid SSL protocol version range, also against the default minimum TLSv1.2.
        assert_eq!(
            message("ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2", &env()),
            "invalid SSL protocol version range"
        );
        assert_eq!(message("ssl_max_protocol_version=tlsv1.1", &env()), "invalid SSL protocol version range");
        let s = resolved("ssl_min_protocol_version='' ssl_max_protocol_version=tlsv1.1", &env());
        assert_eq!(
            (s.ssl_min_protocol_version, s.ssl_max_protocol_version),
            (TlsVersion::Tls1_0, Some(TlsVersion::Tls1_1))
        );
    }

    #[test]
    fn paths_and_strings() {
        let s = resolved(
            "password=pw passfile=/p sslcert=/c sslkey=/k sslcrl=/r sslcrldir=/d options='-c a=b' application_name=app",
            &env().home("/home/alice"),
        );
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.passfile.as_deref(), Some(Path::new("/p")));
        assert_eq!(
            (s.sslcert, s.sslkey, s.sslcrl, s.sslcrldir),
            (Some("/c".into()), Some("/k".into()), Some("/r".into()), Some("/d".into()))
        );
        assert_eq!(s.options.as_deref(), Some("-c a=b"));
        assert_eq!(s.application_name.as_deref(), Some("app"));
        assert_eq!(resolved("", &env().var("PGPASSFILE", "/q")).passfile.as_deref(), Some(Path::new("/q")));
        assert_eq!(resolved("", &env().var("PGPASSWORD", "envpw")).password.as_deref(), Some("envpw"));
    }

    #[test]
    fn session_variables_become_options() {
        // psql sent PGTZ, PGDATESTYLE as the startup parameters timezone and datestyle, next to
        // options, and left out PGGEQO=default.
        let env = env().var("PGTZ", "UTC").var("PGDATESTYLE", "ISO, MDY").var("PGGEQO", "default");
        assert_eq!(
            resolved("options='-c x=y'", &env).options.as_deref(),
            Some(r"-c x=y -c datestyle=ISO,\ MDY -c timezone=UTC")
        );
        assert_eq!(
            resolved("", &self::env().var("PGTZ", r"a\b")).options.as_deref(),
            Some(r"-c timezone=a\\b")
        );
        assert_eq!(resolved("", &self::env().var("PGTZ", "")).options, None);
    }

    #[test]
    fn client_encoding() {
        for value in ["UTF8", "utf8", "UTF-8", "unicode", "UNICODE", "auto", ""] {
            assert!(resolve(&[("client_encoding".into(), value.into())], &env()).is_ok(), "{value}");
        }
        assert_eq!(
            message("client_encoding=LATIN1", &env()),
            r#"client_encoding "LATIN1" is not supported: this client always speaks UTF-8 (use UTF8, or auto)"#
        );
        assert_eq!(
            message("", &env().var("PGCLIENTENCODING", "SQL_ASCII")),
            r#"client_encoding "SQL_ASCII" is not supported: this client always speaks UTF-8 (use UTF8, or auto) (from PGCLIENTENCODING)"#
        );
    }

    #[test]
    fn what_this_client_cannot_do_is_refused() {
        assert_eq!(
            message("require_auth=scram-sha-256", &env()),
            "this client does not support connection option \"require_auth\" (value \"scram-sha-256\"): it restricts \
             the authentication methods the server may use, which this client cannot enforce"
        );
        assert!(message("", &env().var("PGREQUIREPEER", "postgres")).ends_with("(from PGREQUIREPEER)"));
        for dsn in [
            "requirepeer=postgres",
            "sslkeylogfile=/tmp/keys",
            "replication=database",
            "replication=true",
            "min_protocol_version=3.2",
            "min_protocol_version=latest",
            "oauth_issuer=https://x",
            "oauth_client_id=x",
            "oauth_scope=x",
        ] {
            assert!(matches!(error(dsn, &env()), ConfigError::Unsupported { .. }), "{dsn}");
        }
        // Secrets are not echoed.
        for dsn in [
            "sslpassword=hunter2",
            "oauth_client_secret=hunter2",
            "scram_client_key=hunter2",
            "scram_server_key=hunter2",
        ] {
            let error = message(dsn, &env());
            assert!(error.contains("(value \"****\")") && !error.contains("hunter2"), "{error}");
        }
        // Empty or harmless values are accepted.
        for dsn in [
            "require_auth='' requirepeer='' sslpassword='' sslkeylogfile=''",
            "replication=false replication=off",
            "replication=0",
            "min_protocol_version=3.0 max_protocol_version=latest",
            "max_protocol_version=3.2",
            "max_protocol_version=3.0",
            "sslcompression=1 krbsrvname=postgres gsslib=gssapi gssdelegation=1",
            "servicefile=/nonexistent",
            "oauth_ca_file=/x",
        ] {
            assert!(resolve(&parse(dsn).unwrap(), &env()).is_ok(), "{dsn}");
        }
        assert_eq!(
            message("min_protocol_version=3.1", &env()),
            r#"invalid min_protocol_version value: "3.1""#
        );
        assert_eq!(message("max_protocol_version=4", &env()), r#"invalid max_protocol_version value: "4""#);
    }

    #[test]
    fn bad_explicit_settings() {
        let explicit = [("sslmod".to_string(), "x".to_string())];
        assert_eq!(resolve(&explicit, &env()), Err(ConfigError::InvalidOption("sslmod".into())));
        let explicit = [("host".to_string(), "a\0b".to_string())];
        assert_eq!(resolve(&explicit, &env()).unwrap_err().to_string(), "host contains a NUL character");
        let env = MapEnvironment::new()
            .var("PGHOST", <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(vec![0xff]));
        assert_eq!(
            resolve(&[], &env).unwrap_err().to_string(),
            "environment variable PGHOST is not valid UTF-8"
        );
    }

    #[test]
    fn every_keyword_is_known_once() {
        for (i, keyword) in KEYWORDS.iter().enumerate() {
            assert!(KEYWORDS[..i].iter().all(|k| k.name != keyword.name), "{}", keyword.name);
            assert!(parse(&format!("{}=''", keyword.name)).is_ok(), "{}", keyword.name);
        }
        assert_eq!(KEYWORDS.len(), 52);
    }
}
