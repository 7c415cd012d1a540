//! The listener: one dedicated connection per replica that LISTENs on `bytebase_signal`, decodes
//! what arrives and hands it on, reads the durable log for whatever NOTIFY did not deliver, and
//! never gives up on the server.
//!
//! It is one loop over three states:
//!
//! ```text
//!            ┌────────────── shutdown (any state) ──────────────► Stopped
//!            ▼
//!   Connecting ──ok──► Listening ──lost / heartbeat timeout──► Backing off ──delay──► Connecting
//!       │                                                         ▲
//!       └────────────────────────── failed ───────────────────────┘
//! ```
//!
//! One concern per file:
//!
//! ```text
//! mod.rs       the configuration, the Listener, its handle and Signals, the loop above
//! session.rs   one connection's life: setup, catch-up, heartbeat, probe, confirming
//! catch_up.rs  what the listener knows about the log across connections (cursor, marks,
//!              de-duplication, strict mode's candidates), as decisions without I/O
//! probe.rs     whether notifications arrive at all, as decisions without I/O
//! log.rs       the log's SQL: what the database offers, the replays
//! intake.rs    where signals go: the queue or the registry, counted
//! ```
//!
//! *Listening* drives the tokio-postgres `Connection` itself with `poll_message` (a plain
//! `tokio::spawn(connection)` would discard the notifications). Each notification is decoded and
//! offered to a bounded queue without waiting, so a slow handler never stops the socket being read
//! (which would make the server-wide notification queue grow); what does not fit is counted as
//! overflowed and comes back from the log.
//!
//! *The log is the source of truth, NOTIFY the fast path* (extension and pure-SQL edition 0.4.0):
//! after every LISTEN — LISTEN first, so nothing committed from then on can be missed — and at
//! every heartbeat the listener replays what committed since its previous replay on that server,
//! exactly (each log row carries its transaction id, each replay returns the snapshot it read
//! with). So a cancel is delivered however long its transaction stayed open, and a notification
//! lost for any reason (a transaction-pooling proxy, a dropped hand-off) arrives within one ping
//! interval. A listener's first catch-up, and the first after a failover or a restart, are
//! time-based: from the last moment the server was known alive minus
//! [`ListenerConfig::replay_grace`], joined with the exact one after a reconnect to the same
//! server. Older databases (0.2.0, 0.3.0) get the time-based kind only, at every heartbeat too.
//! What the log offers is detected again every [`ListenerConfig::probe_interval`], so an update
//! or a GRANT takes effect without a reconnect. Without the log the listener is a plain listener,
//! says so once, and its heartbeat reads the clock. Each cancel reaches the handler once however
//! it arrived (the de-duplication window).
//!
//! *Hearing*: after LISTEN and every few heartbeats the listener sends itself a probe notification;
//! if it does not come back (PgBouncer in transaction mode), it says so once, loudly, shows
//! `notifications: Some(false)` in its status and keeps delivering from the log.
//!
//! *Strict mode* acts only on signals the log confirms: a notification just names a candidate,
//! and a replay restricted to its uid (run after the notification arrived, so after the sender
//! committed) must return it. A forged `pg_notify` is counted as unconfirmed and dropped.
//!
//! *Backing off* follows [`Backoff`](crate::Backoff): the first retry is immediate. Hosts: the configuration may
//! name several; the listener asks for `target_session_attrs=read-write`, so a hot standby (which
//! cannot LISTEN) is skipped, and a host that refuses LISTEN anyway is just another failed attempt.

mod catch_up;
mod config;
mod intake;
pub(crate) mod log;
mod log_access;
mod lost;
mod probe;
mod session;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::BackoffState;
use crate::connect::settings::TargetSessionAttrs;
use crate::connect::{ConnectOptions, Established, PasswordProvider};
use crate::error::Error;
use crate::registry::Registry;
use crate::signal::Signal;
use crate::status::{Event, Shared, Status};
use catch_up::CatchUp;
pub use config::{
    ListenerConfig, DEDUP_WINDOW_MAX, DEFAULT_APPLICATION_NAME, DEFAULT_REPLAY_FUNCTION,
    DEFAULT_REPLAY_GRACE, MAX_QUEUE_CAPACITY, MAX_REPLAY_GRACE, STATEMENT_TAG,
};
use intake::{Intake, Sink};
use lost::Lost;
use probe::Probe;
use session::Ended;

/// A listener, configured but not yet running. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Listener {
    options: ConnectOptions,
    config: ListenerConfig,
}

impl Listener {
    /// A listener for the database `options` name (one or several hosts): resolved libpq
    /// settings ([`ConnectOptions::parse`]), or a tokio-postgres `Config`.
    pub fn new(options: impl Into<ConnectOptions>) -> Self {
        Listener { options: options.into(), config: ListenerConfig::default() }
    }

    /// A listener from a libpq conninfo (`host=db1,db2 dbname=bytebase sslmode=verify-full`) or a
    /// URL (`postgres://user@db1,db2/bytebase`), completed as libpq completes it: the service file,
    /// the `PG*` environment, the defaults.
    pub fn from_dsn(dsn: &str) -> Result<Self, Error> {
        Ok(Listener::new(ConnectOptions::parse(dsn)?))
    }

    /// Asks `provider` for the password before every connection attempt, so that a listener that
    /// reconnects days later logs in with a fresh cloud IAM token, not the one it started with.
    pub fn with_password_provider(mut self, provider: impl PasswordProvider) -> Self {
        self.options = self.options.with_password_provider(provider);
        self
    }

    /// Replaces the tunables.
    pub fn with_config(mut self, config: ListenerConfig) -> Self {
        self.config = config;
        self
    }

    /// The tunables in effect.
    pub fn config(&self) -> &ListenerConfig {
        &self.config
    }

    /// Starts listening on the current tokio runtime. Signals arrive on the returned [`Signals`];
    /// cancelling `shutdown` stops the listener, after which [`ListenerHandle::join`] returns.
    pub fn spawn(self, shutdown: CancellationToken) -> (ListenerHandle, Signals) {
        let (tx, rx) = mpsc::channel(self.config.queue_capacity.clamp(1, MAX_QUEUE_CAPACITY));
        let (handle, shared) = self.start(Sink::Queue(tx), shutdown);
        (handle, Signals { rx, taken: Vec::new(), shared })
    }

    /// Starts listening and dispatches every signal into `registry`, which cancels the runs this
    /// replica owns. `status()` then also counts unmatched signals.
    ///
    /// The dispatch happens right where the signal is read: it only looks the run up and cancels
    /// tokens, never waits, so no hand-off queue is needed and nothing can overflow.
    pub fn spawn_with_registry(self, registry: Registry, shutdown: CancellationToken) -> ListenerHandle {
        self.start(Sink::Registry(registry), shutdown).0
    }

    fn start(self, sink: Sink, shutdown: CancellationToken) -> (ListenerHandle, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        let (events, first_events) = broadcast::channel(256);
        let catch_up = CatchUp::new(self.config.replay_grace, Instant::now());
        let probe = Probe::new(rand::random());
        let intake =
            Intake::new(sink, Arc::clone(&shared), events.clone(), self.config.strict, catch_up, probe);
        let task = tokio::spawn(run(self.connect_options(), self.config, intake, shutdown));
        let handle = ListenerHandle {
            shared: Arc::clone(&shared),
            events,
            first_events: Mutex::new(Some(first_events)),
            tasks: vec![task],
        };
        (handle, shared)
    }

    /// The connection settings actually used: ours where the caller left them unset.
    fn connect_options(&self) -> ConnectOptions {
        let mut options = self.options.clone();
        let s = options.settings_mut();
        if s.application_name.is_none() {
            s.application_name = Some(DEFAULT_APPLICATION_NAME.to_owned());
        }
        // LISTEN needs the primary; a standby would refuse it ("cannot execute LISTEN during
        // recovery"), so skip it among several hosts. `primary` asks for the same thing.
        if s.target_session_attrs != TargetSessionAttrs::Primary {
            s.target_session_attrs = TargetSessionAttrs::ReadWrite;
        }
        s.connect_timeout.get_or_insert(self.config.connect_timeout);
        // Keepalives stay on (a half-open connection must be noticed); the settings' own timings
        // win over ours.
        s.keepalives = true;
        s.keepalives_idle.get_or_insert(self.config.keepalive_idle);
        s.keepalives_interval.get_or_insert((self.config.keepalive_idle / 2).max(Duration::from_secs(1)));
        s.keepalives_count.get_or_insert(3);
        options
    }
}

/// Reads a listener's status; see [`ListenerHandle::status_reader`].
#[derive(Clone, Debug)]
pub struct StatusReader {
    shared: Arc<Shared>,
}

impl StatusReader {
    /// A snapshot of the listener's state and counters, as [`ListenerHandle::status`].
    pub fn status(&self) -> Status {
        self.shared.snapshot()
    }
}

/// The running listener: its status, its events, and the way to wait for it to stop.
pub struct ListenerHandle {
    shared: Arc<Shared>,
    events: broadcast::Sender<Event>,
    first_events: Mutex<Option<broadcast::Receiver<Event>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ListenerHandle {
    /// A snapshot of the listener's state and counters.
    pub fn status(&self) -> Status {
        self.shared.snapshot()
    }

    /// A cheap, cloneable reader of [`ListenerHandle::status`], for tasks that outlive a borrow
    /// of the handle (a health endpoint) while the handle itself waits in [`ListenerHandle::join`].
    pub fn status_reader(&self) -> StatusReader {
        StatusReader { shared: Arc::clone(&self.shared) }
    }

    /// A stream of connection events. The first call sees every event since the start; later
    /// calls see events from the moment of the call.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        let first = self.first_events.lock().unwrap_or_else(|e| e.into_inner()).take();
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Waits until the listener has stopped, after its shutdown token was cancelled.
    pub async fn join(self) {
        for task in self.tasks {
            if let Err(e) = task.await {
                warn!(error = %e, "listener task failed");
            }
        }
    }
}

/// The receiving end of a listener's hand-off queue.
pub struct Signals {
    rx: mpsc::Receiver<Signal>,
    /// Signals taken from the queue together and not yet returned, last first: in a flood the
    /// queue is emptied [`TAKE_AT_ONCE`] at a time, so that its permits go back and its sender
    /// hears of the room once per batch rather than once per signal.
    taken: Vec<Signal>,
    shared: Arc<Shared>,
}

/// The most signals [`Signals`] takes from the queue at once: a bound on what it holds beyond
/// the queue's capacity.
const TAKE_AT_ONCE: usize = 256;

impl Signals {
    /// The next signal; `None` once the listener has stopped.
    pub async fn recv(&mut self) -> Option<Signal> {
        if self.taken.is_empty() {
            self.rx.recv_many(&mut self.taken, TAKE_AT_ONCE).await;
            self.taken.reverse();
        }
        self.next_taken()
    }

    /// The next signal if one is queued right now. (Inside a task that has used up tokio's
    /// cooperative budget it may say `None` although one is queued: the next `recv` has it.)
    pub fn try_recv(&mut self) -> Option<Signal> {
        if self.taken.is_empty() {
            // One look, without waiting: a waker that does nothing (the next `recv` sets its own).
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if self.rx.poll_recv_many(&mut cx, &mut self.taken, TAKE_AT_ONCE).is_ready() {
                self.taken.reverse();
            }
        }
        self.next_taken()
    }

    fn next_taken(&mut self) -> Option<Signal> {
        let signal = self.taken.pop();
        if signal.is_some() {
            self.shared.dispatched.bump();
        }
        signal
    }
}

/// The state machine: connect, listen, back off, until shutdown.
async fn run(options: ConnectOptions, config: ListenerConfig, intake: Intake, shutdown: CancellationToken) {
    let mut backoff = BackoffState::new(config.backoff.clone());
    loop {
        let started = Instant::now();
        // Each host, address and TLS step has its own deadline (`connect_timeout`); the error
        // names every attempt.
        let connected = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = options.connect() => r.map_err(Lost::Connect),
        };
        let lived = match connected {
            Ok(Established { client, connection, target, tls, .. }) => {
                debug!(%target, tls = ?tls, "connected");
                let ended = session::run(&client, connection, &config, &intake, &shutdown).await;
                let lived = started.elapsed();
                match ended {
                    Ended::Shutdown => break,
                    Ended::Lost(e) => {
                        let reason = e.to_string();
                        warn!(%reason, "listener connection lost; reconnecting");
                        intake.shared.set_disconnected(&reason);
                        intake.event(Event::Disconnected { reason });
                    }
                }
                lived
            }
            Err(e) => {
                let reason = e.to_string();
                warn!(%reason, "listener could not connect");
                intake.shared.set_error(&reason);
                intake.event(Event::ConnectFailed { reason });
                Duration::ZERO
            }
        };
        let delay = backoff.next_delay(lived);
        if !delay.is_zero() {
            debug!(?delay, "backing off before reconnecting");
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
    intake.shared.set_disconnected("shut down");
    info!("listener stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signals_taken_in_batches_come_out_in_order_each_counted_once() {
        let (tx, rx) = mpsc::channel(1024);
        let shared = Arc::new(Shared::default());
        let mut signals = Signals { rx, taken: Vec::new(), shared: Arc::clone(&shared) };
        // More than one batch, then a closed queue.
        for n in 1..=(2 * TAKE_AT_ONCE as i64 + 10) {
            tx.try_send(Signal::new(crate::SignalKind::TaskRun, crate::test_support::uid(n))).unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        // Both ways of taking, interleaved: each refills the batch only when it is empty.
        while let Some(signal) = if got.len() % 3 == 0 { signals.recv().await } else { signals.try_recv() } {
            got.push(signal.uid.get());
        }
        assert_eq!(got, (1..=(2 * TAKE_AT_ONCE as i64 + 10)).collect::<Vec<_>>());
        assert_eq!(shared.snapshot().dispatched, got.len() as u64);
        assert!(signals.recv().await.is_none() && signals.try_recv().is_none());
    }

    #[test]
    fn statements_that_name_no_log_function_carry_the_listeners_tag() {
        for sql in [session::PROBE_NOTIFY, log::CLOCK, log::IDENTITY, log::DETECT] {
            assert!(sql.starts_with(STATEMENT_TAG), "{sql}");
        }
    }

    #[test]
    fn our_connection_settings_apply_only_where_unset() {
        let l = Listener::from_dsn("host=a,b user=u application_name=mine keepalives_idle=99").unwrap();
        let options = l.connect_options();
        let s = options.settings();
        assert_eq!(s.application_name.as_deref(), Some("mine"));
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::ReadWrite);
        assert_eq!(s.endpoints.len(), 2);
        assert_eq!(s.keepalives_idle, Some(Duration::from_secs(99)), "the DSN's timing wins");
        let l = Listener::from_dsn("postgres://u@a/db?target_session_attrs=primary&keepalives=0").unwrap();
        let options = l.connect_options();
        let s = options.settings();
        assert_eq!(s.application_name.as_deref(), Some(DEFAULT_APPLICATION_NAME));
        assert!(s.keepalives, "a listener always keeps alive");
        assert_eq!(s.target_session_attrs, TargetSessionAttrs::Primary, "primary asks for what LISTEN needs");
        assert_eq!(s.connect_timeout, Some(ListenerConfig::default().connect_timeout));
    }

    #[test]
    fn a_bad_dsn_is_a_typed_error() {
        let e = Listener::from_dsn("host=a port=notaport").unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert_eq!(e.to_string(), "invalid integer value \"notaport\" for connection option \"port\"");
    }
}
