//! A tokio-postgres `Config` as [`ConnectOptions`], for applications that already build one: its
//! settings, exactly, and libpq's defaults for the rest — but no `PG*` variables, no service file
//! and no password file: a `Config` is explicit, and tokio-postgres reads none of them. The
//! keepalive idle time tokio-postgres defaults to (2 hours) counts as unset, so that a listener's
//! own applies. (A password that is not UTF-8 is taken lossily.)

use tokio_postgres::config::{self, Host as PgHost};

use super::env::{Environment, SystemEnvironment};
use super::settings::{
    ChannelBinding, Endpoint, Host, LoadBalanceHosts, SslCertMode, SslMode, SslNegotiation,
    TargetSessionAttrs, TlsVersion,
};
use super::{ConnectOptions, Settings};

/// What `Config::get_keepalives_idle` answers when nobody set it.
const TOKIO_POSTGRES_KEEPALIVES_IDLE: std::time::Duration = std::time::Duration::from_secs(2 * 60 * 60);

impl From<tokio_postgres::Config> for ConnectOptions {
    fn from(pg: tokio_postgres::Config) -> Self {
        ConnectOptions::from(&pg)
    }
}

impl From<&tokio_postgres::Config> for ConnectOptions {
    fn from(pg: &tokio_postgres::Config) -> Self {
        from_pg(pg, &SystemEnvironment)
    }
}

fn from_pg(pg: &tokio_postgres::Config, env: &dyn Environment) -> ConnectOptions {
    let ports = pg.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts = pg.get_hosts();
    let hostaddrs = pg.get_hostaddrs();
    let endpoints = (0..hosts.len().max(hostaddrs.len()))
        .map(|i| Endpoint {
            host: hosts.get(i).map(|h| match h {
                PgHost::Tcp(name) => Host::Tcp(name.clone()),
                PgHost::Unix(path) => Host::Unix(path.clone()),
            }),
            hostaddr: hostaddrs.get(i).copied(),
            port: port(i),
        })
        .collect::<Vec<_>>();
    let endpoints = if endpoints.is_empty() {
        vec![Endpoint { host: Some(Host::Tcp("localhost".into())), hostaddr: None, port: port(0) }]
    } else {
        endpoints
    };
    let user = pg
        .get_user()
        .map(str::to_owned)
        .or_else(|| env.user_name().ok())
        .unwrap_or_else(|| "postgres".into());
    let dbname = pg.get_dbname().map_or_else(|| user.clone(), str::to_owned);
    let settings = Settings {
        endpoints,
        dbname,
        password: pg.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
        passfile: None,
        application_name: pg.get_application_name().map(str::to_owned),
        options: pg.get_options().map(str::to_owned),
        connect_timeout: pg.get_connect_timeout().copied(),
        keepalives: pg.get_keepalives(),
        keepalives_idle: Some(pg.get_keepalives_idle())
            .filter(|idle| *idle != TOKIO_POSTGRES_KEEPALIVES_IDLE),
        keepalives_interval: pg.get_keepalives_interval(),
        keepalives_count: pg.get_keepalives_retries(),
        tcp_user_timeout: pg.get_tcp_user_timeout().copied(),
        target_session_attrs: match pg.get_target_session_attrs() {
            config::TargetSessionAttrs::ReadWrite => TargetSessionAttrs::ReadWrite,
            config::TargetSessionAttrs::ReadOnly => TargetSessionAttrs::ReadOnly,
            _ => TargetSessionAttrs::Any,
        },
        load_balance_hosts: match pg.get_load_balance_hosts() {
            config::LoadBalanceHosts::Random => LoadBalanceHosts::Random,
            _ => LoadBalanceHosts::Disable,
        },
        sslmode: match pg.get_ssl_mode() {
            config::SslMode::Disable => SslMode::Disable,
            config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        },
        sslnegotiation: match pg.get_ssl_negotiation() {
            config::SslNegotiation::Direct => SslNegotiation::Direct,
            _ => SslNegotiation::Postgres,
        },
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        sslcrl: None,
        sslcrldir: None,
        sslsni: true,
        sslcertmode: SslCertMode::Allow,
        ssl_min_protocol_version: TlsVersion::Tls1_2,
        ssl_max_protocol_version: None,
        channel_binding: match pg.get_channel_binding() {
            config::ChannelBinding::Disable => ChannelBinding::Disable,
            config::ChannelBinding::Require => ChannelBinding::Require,
            _ => ChannelBinding::Prefer,
        },
        user,
    };
    ConnectOptions { settings, home: env.home_dir(), password_provider: None }
}
