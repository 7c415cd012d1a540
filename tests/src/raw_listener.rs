//! A bare LISTEN connection that records exactly what the server delivers.
//!
//! It is plain tokio-postgres driven with `poll_message` — no decoding, no reconnects — so a test
//! built on it checks the extension and PostgreSQL, not the client crate.
//!
//! Absence is checked without sleeping: [`RawListener::drain`] commits a unique marker on the same
//! channel from another connection and collects everything that arrives before it. PostgreSQL
//! delivers notifications to a listener in commit order, so whatever was committed before the
//! marker has arrived by then, and whatever has not arrived was not committed.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Notification};

/// How long [`RawListener::drain`] waits for its own marker before calling the delivery broken.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Payloads of markers start with this, so they can never be mistaken for signals.
const MARKER_PREFIX: &str = "marker:";

/// A connection that LISTENs on one channel and queues every notification it receives.
pub struct RawListener {
    client: Client,
    channel: String,
    notifications: mpsc::UnboundedReceiver<Notification>,
    driver: JoinHandle<()>,
    markers_sent: u64,
}

impl RawListener {
    /// Connects with `config` and LISTENs on `channel`.
    pub async fn connect(config: &Config, channel: &str) -> Result<Self> {
        let (client, mut connection) = config.connect(NoTls).await.context("listener connect")?;
        let (tx, notifications) = mpsc::unbounded_channel();
        // `poll_message` both drives the connection and yields the asynchronous messages that a
        // plain `connection.await` would silently discard.
        let driver = tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(n) = message {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN \"{channel}\""))
            .await
            .with_context(|| format!("LISTEN {channel}"))?;
        Ok(RawListener { client, channel: channel.to_owned(), notifications, driver, markers_sent: 0 })
    }

    /// The listening connection's backend pid (the `pid` of every notification it sent itself).
    pub async fn backend_pid(&self) -> Result<i32> {
        Ok(self.client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0))
    }

    /// The next notification, or `None` if none arrives within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Notification> {
        tokio::time::timeout(timeout, self.notifications.recv()).await.ok().flatten()
    }

    /// Every payload committed on the channel before now, in arrival order, and nothing else.
    ///
    /// `via` must be a connection to the same database in autocommit state (no open transaction):
    /// it commits the marker.
    pub async fn drain(&mut self, via: &Client) -> Result<Vec<String>> {
        self.markers_sent += 1;
        let marker = format!("{MARKER_PREFIX}{}", self.markers_sent);
        via.execute("SELECT pg_notify($1, $2)", &[&self.channel, &marker])
            .await
            .context("sending the drain marker")?;
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let mut payloads = Vec::new();
        loop {
            let n = tokio::time::timeout_at(deadline, self.notifications.recv())
                .await
                .map_err(|_| anyhow!("marker {marker} did not arrive within {DRAIN_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("listener connection closed"))?;
            if n.channel() != self.channel {
                bail!("notification on unexpected channel {:?}", n.channel());
            }
            match n.payload() {
                p if p == marker => return Ok(payloads),
                p if p.starts_with(MARKER_PREFIX) => bail!("stale marker {p} (expected {marker})"),
                p => payloads.push(p.to_owned()),
            }
        }
    }
}

impl Drop for RawListener {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
