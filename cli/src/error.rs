//! What the command-line tool can fail with: the client library's errors, and its own (a local
//! stream such as stdout or a signal handler, a deadline of the doctor's).

use std::time::Duration;

use bytebase_signal_client::connect::{ConfigError, ConnectError};

/// An error of a subcommand, printed on stderr before the tool exits with a failure code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A bad setting, a refused connection, a failed statement, a rejected argument.
    #[error(transparent)]
    Client(#[from] bytebase_signal_client::Error),
    /// Reading or writing a local stream (stdout, signals, the metrics socket) failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered nothing within the deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The operation that timed out.
        what: &'static str,
        /// The deadline it exceeded.
        after: Duration,
    },
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Client(e.into())
    }
}

impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Self {
        Error::Client(e.into())
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Client(e.into())
    }
}
