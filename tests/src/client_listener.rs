//! A spawned client [`Listener`] as the end-to-end tests drive it: quick liveness settings, a
//! connection to a test cluster, and waits on its events and signals with a deadline.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytebase_signal_client::send;
use bytebase_signal_client::{
    Backoff, Event, Listener, ListenerConfig, ListenerHandle, RunUid, Signal, SignalKind, Signals,
};
use tokio::sync::broadcast;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, Install, SUPERUSER};

/// The database the tests use.
pub const DB: &str = "app";
/// `application_name` of the listener under test, to find (and terminate) its backend.
pub const APP: &str = "listener-under-test";
/// Generous: these bound waits for things that normally take milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `n` as a run uid (tests use positive literals).
pub fn uid(n: i64) -> RunUid {
    RunUid::new(n).expect("positive")
}

/// Fast liveness settings so fault tests finish quickly.
pub fn quick() -> ListenerConfig {
    ListenerConfig::default()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_secs(1))
        .replay_timeout(Duration::from_secs(2))
        // Probes, and looks at what the log offers, every second: an update or a GRANT under a
        // running listener takes effect within a test's patience.
        .probe_interval(Duration::from_secs(1))
        .backoff(Backoff::default().initial(Duration::from_millis(50)).max(Duration::from_millis(500)))
}

/// A fresh cluster with database [`DB`] holding the extension, and a sender connection to it.
pub async fn cluster_with_extension() -> Result<(Cluster, Client)> {
    cluster_with(Install::Fresh).await
}

/// Like [`cluster_with_extension`], with the API installed the way `install` says.
pub async fn cluster_with(install: Install) -> Result<(Cluster, Client)> {
    let cluster = Cluster::start()?;
    cluster.create_database_with(DB, install).await?;
    let sender = cluster.connect(DB).await?;
    Ok((cluster, sender))
}

/// A listener for [`DB`] on `cluster`, reached through `port` (the cluster's own or a proxy's).
pub fn listener_on(cluster: &Cluster, port: u16, config: ListenerConfig) -> Listener {
    let mut pg = tokio_postgres::Config::new();
    pg.host(cluster.host()).port(port).user(SUPERUSER).dbname(DB).application_name(APP);
    Listener::new(pg).with_config(config)
}

/// The next event that `want` accepts, within [`PATIENCE`].
pub async fn next_event(events: &mut broadcast::Receiver<Event>, want: fn(&Event) -> bool) -> Result<Event> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let e = events.recv().await?;
            if want(&e) {
                return Ok(e);
            }
        }
    })
    .await
    .context("event did not arrive")?
}

/// Accepts [`Event::Connected`].
pub fn connected(e: &Event) -> bool {
    matches!(e, Event::Connected { .. })
}

/// Accepts [`Event::Disconnected`].
pub fn disconnected(e: &Event) -> bool {
    matches!(e, Event::Disconnected { .. })
}

/// The next signal, within [`PATIENCE`].
pub async fn recv(signals: &mut Signals) -> Result<Signal> {
    tokio::time::timeout(PATIENCE, signals.recv()).await?.context("listener stopped")
}

/// Stops a listener and waits (bounded) for its tasks to finish.
pub async fn stop(shutdown: &CancellationToken, handle: ListenerHandle) -> Result<()> {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle.join()).await.context("listener did not stop")
}

/// Accepts [`Event::Replayed`]: the listener has caught up from the durable log.
pub fn replayed(e: &Event) -> bool {
    matches!(e, Event::Replayed { .. })
}

/// A spawned listener that has connected, and what tests watch it through.
pub struct Running {
    /// The running listener.
    pub handle: ListenerHandle,
    /// Its signals.
    pub signals: Signals,
    /// Its events since the start.
    pub events: broadcast::Receiver<Event>,
    /// Cancel to stop it.
    pub shutdown: CancellationToken,
    /// `host:port` it connected to first.
    pub server: String,
}

/// Spawns `listener` and waits for its first connection.
pub async fn start(listener: Listener) -> Result<Running> {
    log_to_test_output();
    let shutdown = CancellationToken::new();
    let (handle, signals) = listener.spawn(shutdown.clone());
    let mut events = handle.events();
    let server =
        match next_event(&mut events, connected).await.with_context(|| format!("{:?}", handle.status()))? {
            Event::Connected { server } => server,
            other => bail!("unexpected {other:?}"),
        };
    Ok(Running { handle, signals, events, shutdown, server })
}

impl Running {
    /// Sends a task-run cancel for `n` and checks that it, and nothing else, arrives next.
    pub async fn delivers(&mut self, sender: &Client, n: i64) -> Result<()> {
        send::cancel_task_run(sender, uid(n)).await?;
        assert_eq!(recv(&mut self.signals).await?, Signal::new(SignalKind::TaskRun, uid(n)));
        Ok(())
    }

    /// Stops the listener and returns what is left of its signal stream.
    pub async fn stop(self) -> Result<Signals> {
        stop(&self.shutdown, self.handle).await?;
        Ok(self.signals)
    }
}

/// Sends the client's log to the test's captured output (shown when it fails), filtered by
/// `TEST_LOG` (`bytebase_signal_client=debug`); nothing without it.
pub fn log_to_test_output() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The first major whose notification queue can be made small enough to fill for real
/// (`max_notify_queue_pages`, at least 64 pages of 8 kB).
pub const QUEUE_PAGES_MAJOR: u32 = 17;

/// PostgreSQL's words when a commit's NOTIFY does not fit in the queue.
pub const QUEUE_FULL: &str = "too many notifications in the NOTIFY queue";

/// A server of `bindir` (17 or later) whose notification queue is as small as it can be
/// (`max_notify_queue_pages = 64`), with database [`DB`] holding the API as `install` says.
pub async fn small_queue_cluster(bindir: &std::path::Path, install: Install) -> Result<Cluster> {
    let cluster = Cluster::builder().bindir(bindir).setting("max_notify_queue_pages", "64").start()?;
    cluster.create_database_with(DB, install).await?;
    Ok(cluster)
}

/// The channel [`fill_notification_queue`] fills the queue on; only [`hold_the_queue`]'s session
/// listens to it.
pub const FILLER_CHANNEL: &str = "bytebase_signal_filler";

/// Makes `client` a listening session that stopped reading: it listens on the cancels' channel and
/// on [`FILLER_CHANNEL`], then stays in an open transaction, so that every notification queued
/// after it stays queued for all listeners. PostgreSQL 19 queues a notification only when some
/// session listens on its channel (its shared channel map), hence the filler's LISTEN.
pub async fn hold_the_queue(client: &Client) -> Result<()> {
    // LISTEN on its own first: inside the transaction it would only take effect at commit.
    client.batch_execute(&format!("LISTEN bytebase_signal; LISTEN {FILLER_CHANNEL}")).await?;
    client.batch_execute("BEGIN; SELECT 1").await?;
    Ok(())
}

/// Fills the notification queue (while [`hold_the_queue`]'s session holds it) with NOTIFYs of
/// 7.9 kB on [`FILLER_CHANNEL`], one a transaction, until PostgreSQL refuses one; checks that it
/// refused in its words ([`QUEUE_FULL`]) and returns the queue's usage then.
pub async fn fill_notification_queue(client: &Client) -> Result<f64> {
    for i in 0..100_000 {
        let payload = format!("{i:07}{}", "x".repeat(7_900));
        if let Err(e) = client.execute("SELECT pg_notify($1, $2)", &[&FILLER_CHANNEL, &payload]).await {
            let message = e.as_db_error().map(|db| db.message().to_owned()).unwrap_or_else(|| e.to_string());
            anyhow::ensure!(message == QUEUE_FULL, "a NOTIFY failed otherwise: {message}");
            return Ok(client.query_one("SELECT pg_notification_queue_usage()", &[]).await?.get(0));
        }
    }
    anyhow::bail!("the notification queue never filled (is max_notify_queue_pages set?)")
}
