//! The options: what to connect to and how, as libpq reads them. The syntax of a connection string
//! or URL, the service file, the `PG*` environment, the password file and libpq's defaults become
//! typed [`Settings`]; nothing here opens a socket.
//!
//! ```text
//! keywords.rs   libpq's keyword table (a leaf)
//! lexical.rs    libpq's white space and path spelling (a leaf)
//! conninfo.rs   the syntax: `key=value` strings and URLs into keyword/value pairs
//! resolve.rs    explicit settings, then the service file, then PG* variables, then defaults
//! service.rs    pg_service.conf lookup
//! pgpass.rs     the password file, per host
//! env.rs        what resolution reads from the process (variables, the OS user, the home
//!               directory), behind a trait so that it is tested without touching the process
//! settings.rs   the typed result
//! error.rs      what is wrong with the settings (`ConfigError`)
//! from_pg.rs    a tokio-postgres `Config` as options
//! ```

pub(crate) mod conninfo;
pub(crate) mod env;
pub(crate) mod error;
mod from_pg;
mod keywords;
mod lexical;
pub(crate) mod pgpass;
pub(crate) mod resolve;
mod service;
pub mod settings;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

#[cfg(doc)]
use env::MapEnvironment;
use env::{Environment, SystemEnvironment};
use error::ConfigError;
use settings::Settings;

/// An error a [`PasswordProvider`] may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`PasswordProvider`] is asked for: the login of one connection attempt (cloud IAM
/// tokens are issued per host, port and user).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

    /// Reads `dsn` as [`ConnectOptions::parse`] does, but with `env` in place of the process's
    /// variables, OS user, home directory and system configuration directory: a
    /// [`MapEnvironment`] to resolve settings as another environment would, e.g. in tests.
    pub fn parse_in(dsn: &str, env: &dyn Environment) -> Result<Self, ConfigError> {
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
