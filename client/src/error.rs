//! Errors of the client: typed, so callers can tell a bad setting from a refused connection from
//! a lost one.

use crate::connect::{ConfigError, ConnectError};

/// What [`crate::send`], [`crate::Listener::from_dsn`] and the other fallible calls of this crate
/// can return. What ends a running listener's connection is not an `Error` of the caller's: it is
/// reported as text in [`crate::Event`] and [`crate::Status::last_error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connection setting (the connection string, the service file, a `PG*` variable) cannot
    /// be used; the error names it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No host accepted a connection: each attempt, with its host, port and cause.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A statement on the connection failed.
    #[error("database error: {}", describe(.0))]
    Database(#[from] tokio_postgres::Error),
    /// A run uid was not positive.
    #[error(transparent)]
    InvalidUid(#[from] crate::validate::ValueError),
    /// An argument of a send was rejected (say, an empty project), as the SQL functions would.
    #[error(transparent)]
    InvalidArgument(#[from] crate::validate::ArgumentError),
    /// A combination of arguments that no SQL function takes.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// A tokio-postgres error in full: its own `Display` says only "db error" for a server's error,
/// which would hide the message, SQLSTATE and detail from logs and `status().last_error`.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" (DETAIL: {detail})"));
        }
        return text;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_side_error_keeps_its_cause() {
        let parse = "host=a port=x".parse::<tokio_postgres::Config>().unwrap_err();
        let text = Error::Database(parse).to_string();
        assert!(text.starts_with("database error: invalid connection string: "), "{text}");
    }
}
