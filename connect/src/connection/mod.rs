//! The connection: libpq's order of attempts over the resolved [`Settings`](crate::Settings), TLS
//! per `sslmode`, the attempts themselves, and why each one failed.
//!
//! ```text
//! plan.rs       libpq's order of attempts (hosts, addresses, TLS steps), without I/O
//! tls.rs        rustls configured per sslmode: verifiers, client certificates, CRLs
//! stream.rs     the TLS stream and its connector, with SCRAM's channel binding
//! establish.rs  the attempts themselves
//! failure.rs    why an attempt failed (`ConnectError`), in libpq's words
//! ```

pub(crate) mod establish;
pub(crate) mod failure;
mod plan;
pub(crate) mod stream;
pub(crate) mod tls;

use tokio_postgres::Client;
use tracing::error;

use crate::options::ConnectOptions;
use establish::Established;
use failure::ConnectError;

impl ConnectOptions {
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
