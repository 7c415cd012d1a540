//! Connecting to PostgreSQL with tokio-postgres the way libpq does. One place turns a connection
//! string (libpq conninfo or a `postgres://` URL), the service file, the `PG*` environment and
//! libpq's defaults into [`Settings`], and those into a connection: over TLS with libpq's meaning of
//! every `sslmode`, with the password file looked up per host, a password provider asked before
//! every attempt, and errors that name the host, the port and the cause of each failed attempt.
//!
//! In `bytebase_signal`'s data flow this crate is the first step of every connection: the
//! listener's, the CLI's and the application's own sending connections (`bytebase-signal-client`
//! re-exports it as `bytebase_signal_client::connect`). It knows nothing of signals, and any
//! tokio-postgres user may take it alone:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use bytebase_signal_connect::ConnectOptions;
//!
//! // As psql would read it: the string first, then PGSERVICE's service, then PG*, then defaults.
//! let options = ConnectOptions::parse("host=db.example.com dbname=app sslmode=verify-full")?;
//! let client = options.connect_spawned().await?; // driven in the background
//! let rows = client.query("SELECT current_user", &[]).await?;
//! println!("connected as {}", rows[0].get::<_, String>(0));
//! # Ok(()) }
//! ```
//!
//! [`ConnectOptions::connect`] instead hands back the connection to drive yourself
//! ([`Established`]), with what was negotiated ([`Negotiated`]) and where ([`Target`]).
//!
//! The crate keeps the options apart from the connection:
//!
//! ```text
//! options/      what to connect to: syntax, service file, environment, password file,
//!               resolution, the typed settings (no I/O but reading those files)
//! connection/   how: the attempt plan, TLS, the attempts, their failures
//! ```
//!
//! Imports run one way: `connection` reads `options`, never the reverse.

#![warn(missing_docs)]

mod connection;
mod options;

pub use connection::establish::Established;
pub use connection::failure::{AttemptError, Cause, ConnectError, Target, TlsFailure};
pub use connection::stream::{Negotiated, TlsStream};
pub use connection::tls::TlsSetupError;
pub use options::conninfo::parse;
pub use options::env::{
    Environment, MapEnvironment, SystemEnvironment, DEFAULT_SOCKET_DIR, DEFAULT_SYSCONFDIR,
};
pub use options::error::{ConfigError, Origin};
pub use options::settings::{self, Settings};
pub use options::{BoxError, ConnectOptions, PasswordProvider, PasswordRequest};
