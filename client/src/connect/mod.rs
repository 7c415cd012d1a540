//! Connecting the way libpq does, for the listener, the CLI and the application's own sending
//! connections: one place that turns a connection string (libpq conninfo or a `postgres://` URL),
//! the service file, the `PG*` environment and libpq's defaults into [`Settings`], and those into
//! a connection — over TLS with libpq's meaning of every `sslmode`, with the password file looked
//! up per host, a password provider asked before every attempt, and errors that name the host, the
//! port and the cause of each failed attempt.
//!
//! ```no_run
//! # async fn example() -> Result<(), bytebase_signal_client::Error> {
//! use bytebase_signal_client::connect::ConnectOptions;
//!
//! // As psql would read it: the string first, then PGSERVICE's service, then PG*, then defaults.
//! let options = ConnectOptions::parse("host=db.example.com dbname=bytebase sslmode=verify-full")?;
//! let client = options.connect_spawned().await?; // a sending connection, driven in the background
//! client.execute("SELECT bytebase_cancel_task_run(42)", &[]).await?;
//! # Ok(()) }
//! ```
//!
//! One concern per file:
//!
//! ```text
//! conninfo.rs   the syntax: `key=value` strings and URLs into keyword/value pairs
//! resolve.rs    explicit settings, then the service file, then PG* variables, then defaults
//! service.rs    pg_service.conf lookup
//! pgpass.rs     the password file, per host
//! env.rs        what resolution reads from the process (variables, the OS user, the home
//!               directory), behind a trait so that it is tested without touching the process
//! settings.rs   the typed result
//! error.rs      what is wrong with the settings (`ConfigError`)
//! tls.rs        rustls configured per sslmode: verifiers, client certificates, CRLs
//! stream.rs     the TLS stream and its connector, with SCRAM's channel binding
//! plan.rs       libpq's order of attempts (hosts, addresses, TLS steps), without I/O
//! establish.rs  the attempts themselves
//! failure.rs    why an attempt failed (`ConnectError`), in libpq's words
//! ```

mod conninfo;
mod env;
mod error;
mod establish;
mod failure;
mod from_pg;
mod pgpass;
mod plan;
mod resolve;
mod service;
pub mod settings;
mod stream;
mod tls;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::Client;
use tracing::error;

pub use conninfo::parse;
pub use env::{Environment, MapEnvironment, SystemEnvironment, DEFAULT_SOCKET_DIR, DEFAULT_SYSCONFDIR};
pub use error::{ConfigError, Origin};
pub use establish::Established;
pub use failure::{AttemptError, Cause, ConnectError, Target, TlsFailure};
pub use settings::Settings;
pub use stream::{Negotiated, TlsStream};
pub use tls::TlsSetupError;

/// An error a [`PasswordProvider`] may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`PasswordProvider`] is asked for: the login of one connection attempt (cloud IAM
/// tokens are issued per host, port and user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordRequest {
    /// The host being connected to (as given; a socket path for a Unix-domain socket).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The user logging in.
    pub user: String,
    /// The database.
    pub dbname: String,
}

/// Supplies the password of each connection attempt, asked anew every time: an RDS/Aurora IAM
/// token, an Azure Entra ID token or a Cloud SQL IAM token expires after minutes, so a listener
/// that reconnects days later must not reuse the one it started with.
///
/// Any `Fn(PasswordRequest) -> impl Future<Output = Result<String, BoxError>>` is one.
pub trait PasswordProvider: Send + Sync + 'static {
    /// The password for `request`.
    fn password(
        &self,
        request: PasswordRequest,
    ) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;
}

impl<F, Fut> PasswordProvider for F
where
    F: Fn(PasswordRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
{
    fn password(
        &self,
        request: PasswordRequest,
    ) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>> {
        Box::pin(self(request))
    }
}

/// Resolved connection settings, and how to connect with them.
#[derive(Clone)]
pub struct ConnectOptions {
    pub(crate) settings: Settings,
    /// The OS user's home directory, for the `~/.postgresql/` TLS defaults.
    pub(crate) home: Option<PathBuf>,
    pub(crate) password_provider: Option<Arc<dyn PasswordProvider>>,
}

impl ConnectOptions {
    /// Reads `dsn` (a libpq conninfo string or a `postgres://` / `postgresql://` URL; empty for
    /// none) as libpq does: its settings, then the service it names (or `PGSERVICE`'s), then the
    /// `PG*` environment variables, then the defaults.
    pub fn parse(dsn: &str) -> Result<Self, ConfigError> {
        Self::parse_in(dsn, &SystemEnvironment)
    }

    /// The settings of the environment alone, as `psql` with no arguments would connect.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse("")
    }

    fn parse_in(dsn: &str, env: &dyn Environment) -> Result<Self, ConfigError> {
        let explicit = conninfo::parse(dsn)?;
        let settings = resolve::resolve(&explicit, env)?;
        Ok(ConnectOptions { settings, home: env.home_dir(), password_provider: None })
    }

    /// The resolved settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The resolved settings, to change before connecting.
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// Asks `provider` for the password before every connection attempt (it wins over `password`,
    /// `PGPASSWORD` and the password file).
    pub fn with_password_provider(mut self, provider: impl PasswordProvider) -> Self {
        self.password_provider = Some(Arc::new(provider));
        self
    }

    /// Connects: each host in turn (each of its addresses, each TLS step its `sslmode` allows)
    /// until one accepts; the error lists every attempt.
    pub async fn connect(&self) -> Result<Established, ConnectError> {
        establish::establish(self).await
    }

    /// Connects and drives the connection on a background task (which logs its end if it fails):
    /// for sending connections, which need no notifications.
    pub async fn connect_spawned(&self) -> Result<Client, ConnectError> {
        let Established { client, connection, target, .. } = self.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                error!(server = %target, error = %e, "connection failed");
            }
        });
        Ok(client)
    }
}

impl FromStr for ConnectOptions {
    type Err = ConfigError;

    fn from_str(dsn: &str) -> Result<Self, ConfigError> {
        ConnectOptions::parse(dsn)
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (Settings' Debug redacts the password.)
        f.debug_struct("ConnectOptions")
            .field("settings", &self.settings)
            .field("password_provider", &self.password_provider.is_some())
            .finish()
    }
}
