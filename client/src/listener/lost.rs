//! Why a listener's session ended or one of its statements failed. Only the listener sees these:
//! they reach users as text, in `Event::Disconnected`, `Event::ConnectFailed` and
//! `Status::last_error`, so they are not part of the public [`crate::Error`].

use std::time::Duration;

use crate::connect::ConnectError;
use crate::error::describe;

/// What ended a session (or an attempt to start one).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Lost {
    /// No host accepted a connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A statement on the connection failed, or the connection itself.
    #[error("database error: {}", describe(.0))]
    Database(#[from] tokio_postgres::Error),
    /// The server answered nothing within the deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The operation that timed out.
        what: &'static str,
        /// The deadline it exceeded.
        after: Duration,
    },
    /// The server is a hot standby (or otherwise refuses LISTEN/NOTIFY): the wrong host for us.
    #[error("host refuses LISTEN/NOTIFY (a hot standby?): {}", describe(.0))]
    WrongHost(#[source] tokio_postgres::Error),
    /// The connection closed.
    #[error("connection closed by the server")]
    Closed,
}
