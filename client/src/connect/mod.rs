//! Connecting the way libpq does, for the listener, the CLI and the application's own sending
//! connections: one place that turns a connection string (libpq conninfo or a `postgres://` URL),
//! the service file, the `PG*` environment and libpq's defaults into [`Settings`], and those into
//! a connection — over TLS with libpq's meaning of every `sslmode`, with the password file looked
//! up per host, a password provider asked before every attempt, and errors that name the host, the
//! port and the cause of each failed attempt.
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
//! ```

mod conninfo;
mod env;
mod error;
mod pgpass;
mod resolve;
mod service;
pub mod settings;

pub use conninfo::parse;
pub use env::{Environment, MapEnvironment, SystemEnvironment, DEFAULT_SOCKET_DIR, DEFAULT_SYSCONFDIR};
pub use error::{ConfigError, Origin};
pub use settings::Settings;
