//! The listener: one dedicated connection per replica that LISTENs on `bytebase_signal`, decodes
//! what arrives and hands it on, and never gives up on the server.
//!
//! It is one loop over three states:
//!
//! ```text
//!            ┌────────────── shutdown (any state) ──────────────► Stopped
//!            ▼
//!   Connecting ──ok──► Listening ──lost / ping timeout──► Backing off ──delay──► Connecting
//!       │                                                    ▲
//!       └────────────────────── failed ──────────────────────┘
//! ```
//!
//! *Listening* drives the tokio-postgres `Connection` itself with `poll_message` (a plain
//! `tokio::spawn(connection)` would discard the notifications), and in the same task sends an idle
//! ping with a hard timeout: a connection that goes silent without closing (half-open, a frozen
//! proxy) is given up after `ping_interval + ping_timeout` instead of hanging forever. TCP
//! keepalives cover the same case at the kernel level. Each notification is decoded and offered to
//! a bounded queue without waiting, so a slow handler never stops the socket being read (which
//! would make the server-wide notification queue grow); what does not fit is counted as
//! overflowed.
//!
//! *Catching up* (extension 0.2.0 and later): after every LISTEN — LISTEN first, so nothing
//! committed from then on can be missed — the listener reads the durable signal log from its last
//! "known alive" mark (the server's `now()` at its last successful heartbeat or replay; on the
//! first connection, the moment the listener was spawned) minus [`ListenerConfig::replay_grace`],
//! for senders whose transactions committed late. Signals
//! already handed on are skipped ([`crate::seen`] window), so each cancel reaches the handler once
//! however it arrived. A hand-off queue overflow is repaired the same way at the next heartbeat.
//! Against a database without the log the listener is a plain listener and says so once.
//!
//! *Strict mode* acts only on signals the log confirms: a notification just names a candidate,
//! and a replay restricted to its uid (run after the notification arrived, so after the sender
//! committed) must return it. A forged `pg_notify` is counted as unconfirmed and dropped.
//!
//! *Backing off* follows [`Backoff`]: the first retry is immediate. Hosts: the configuration may
//! name several; the listener asks for `target_session_attrs=read-write`, so a hot standby (which
//! cannot LISTEN) is skipped, and a host that refuses LISTEN anyway is just another failed attempt.

use std::collections::HashSet;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Connection, Notification, Socket};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::{Backoff, BackoffState};
use crate::connect::settings::TargetSessionAttrs;
use crate::connect::{ConnectOptions, Established, PasswordProvider, TlsStream};
use crate::error::Error;
use crate::registry::{Dispatch, Registry};
use crate::replay::{Log, Unavailable};
use crate::seen::{self, Offered, Seen};
use crate::signal::{shorten, Signal};
use crate::status::{Event, Shared, Status};
use crate::wire::CHANNEL;

/// `application_name` of the listener's connection unless the configuration sets one, so that
/// operators can find it in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "bytebase-signal";

/// The largest hand-off queue a listener allocates; larger `queue_capacity` values are shortened.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

/// The extension's replay function (0.2.0 and later).
pub const DEFAULT_REPLAY_FUNCTION: &str = "bytebase_signal_replay";

/// Tunables of a [`Listener`]. The defaults detect a half-open connection within 15 s.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// The channel to LISTEN on (default [`CHANNEL`]).
    pub channel: String,
    /// Signals buffered between the socket reader and the handler.
    pub queue_capacity: usize,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Deadline for connecting and authenticating.
    pub connect_timeout: Duration,
    /// How often an idle connection is pinged.
    pub ping_interval: Duration,
    /// How long a ping may take before the connection is given up.
    pub ping_timeout: Duration,
    /// TCP keepalive idle time (probes follow every `keepalive_idle / 2`, 3 times).
    pub keepalive_idle: Duration,
    /// Deadline for the polite `UNLISTEN` at shutdown.
    pub unlisten_timeout: Duration,
    /// How far before the last "known alive" mark a replay starts: longer than the longest
    /// transaction that sends a cancel (its log row is stamped when the function is called, but
    /// becomes visible only at commit).
    pub replay_grace: Duration,
    /// Deadline for one replay of the log (after LISTEN, after an overflow, or confirming in
    /// strict mode): longer than a ping's, since it may return a grace period's worth of rows,
    /// and no longer than the half-open detection bound (`ping_interval + ping_timeout`).
    pub replay_timeout: Duration,
    /// The replay function, schema-qualified if the extension's schema is not on the listener's
    /// `search_path` (default [`DEFAULT_REPLAY_FUNCTION`]).
    pub replay_function: String,
    /// Act only on signals the durable log confirms; notifications without a log row (a forged
    /// `pg_notify`, or `bytebase_signal.durable = off` senders) are counted as unconfirmed.
    pub strict: bool,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            channel: CHANNEL.to_owned(),
            queue_capacity: 4096,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            keepalive_idle: Duration::from_secs(10),
            unlisten_timeout: Duration::from_secs(2),
            replay_grace: Duration::from_secs(60),
            replay_timeout: Duration::from_secs(15),
            replay_function: DEFAULT_REPLAY_FUNCTION.to_owned(),
            strict: false,
        }
    }
}

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
        (handle, Signals { rx, shared })
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
        let intake = Intake::new(sink, Arc::clone(&shared), events.clone(), self.config.strict);
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
    shared: Arc<Shared>,
}

impl Signals {
    /// The next signal; `None` once the listener has stopped.
    pub async fn recv(&mut self) -> Option<Signal> {
        let signal = self.rx.recv().await;
        if signal.is_some() {
            Shared::bump(&self.shared.dispatched);
        }
        signal
    }

    /// The next signal if one is queued right now.
    pub fn try_recv(&mut self) -> Option<Signal> {
        let signal = self.rx.try_recv().ok();
        if signal.is_some() {
            Shared::bump(&self.shared.dispatched);
        }
        signal
    }
}

/// How a signal reached the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// As a notification.
    Notification,
    /// As a notification that a replay from mark `from` confirmed (strict mode).
    Confirmed { from: Option<SystemTime> },
    /// Only from the log, by a replay from mark `from`: the notification was missed.
    Replay { from: Option<SystemTime> },
}

/// Where signals go.
enum Sink {
    /// A bounded queue to the application's handler ([`Signals`]).
    Queue(mpsc::Sender<Signal>),
    /// Straight into a registry, in the reading task.
    Registry(Registry),
}

/// What became of a signal offered to the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handed {
    On,
    Duplicate,
    Dropped,
}

/// Where everything the listener receives goes, and what it remembers across connections.
struct Intake {
    sink: Sink,
    shared: Arc<Shared>,
    events: broadcast::Sender<Event>,
    /// Signals handed on recently, to skip replayed duplicates.
    seen: Mutex<Seen>,
    /// The server's `now()` at the last successful heartbeat or replay, on any connection.
    alive: Mutex<Option<SystemTime>>,
    /// Strict mode: notifications waiting for the log to confirm them, and the bell for that.
    strict: bool,
    unconfirmed: Mutex<Vec<Signal>>,
    confirm: Notify,
    /// Signals were dropped on overflow: the next heartbeat replays from this mark (the earliest
    /// that covers every dropped one; `None` inside means "from the listener's start"), and keeps
    /// doing so until a replay hands everything on.
    resync_from: Mutex<Option<Option<SystemTime>>>,
    /// When the listener was spawned: its first catch-up reaches back to here (minus the grace).
    started: Instant,
    /// Whether "the log cannot be read" was already said (it is said once, not per reconnect).
    warned_unavailable: AtomicBool,
}

impl Intake {
    fn new(sink: Sink, shared: Arc<Shared>, events: broadcast::Sender<Event>, strict: bool) -> Self {
        Intake {
            sink,
            shared,
            events,
            seen: Mutex::default(),
            alive: Mutex::default(),
            strict,
            unconfirmed: Mutex::default(),
            confirm: Notify::new(),
            resync_from: Mutex::default(),
            started: Instant::now(),
            warned_unavailable: AtomicBool::new(false),
        }
    }

    /// A notification from the socket.
    fn take(&self, n: &Notification) {
        Shared::bump(&self.shared.received);
        match Signal::decode(n.payload()) {
            Ok(signal) if self.strict => {
                lock(&self.unconfirmed).push(signal);
                self.confirm.notify_one();
            }
            Ok(signal) => {
                self.hand_on(signal, Origin::Notification);
            }
            Err(e) => {
                Shared::bump(&self.shared.malformed);
                warn!(error = %e, payload = %shorten(n.payload(), 200), pid = n.process_id(), "malformed signal ignored");
            }
        }
    }

    /// Offers `signal` to the handler unless it was handed on already (see [`Seen`] for what
    /// counts as "already").
    fn hand_on(&self, signal: Signal, origin: Origin) -> Handed {
        let key = seen::key(&signal);
        let from_log = matches!(origin, Origin::Replay { .. });
        let (now, mut refused) = (Instant::now(), None);
        let offered = lock(&self.seen).offer(key, now, from_log, || match &self.sink {
            Sink::Queue(tx) => tx.try_send(signal).map_err(|e| refused = Some(e)).is_ok(),
            Sink::Registry(registry) => {
                Shared::bump(&self.shared.dispatched);
                if registry.dispatch_at(&signal, now.into_std()) == Dispatch::Unmatched {
                    Shared::bump(&self.shared.unmatched);
                }
                true
            }
        });
        match (offered, refused) {
            (Offered::Duplicate, _) => {
                Shared::bump(&self.shared.duplicates);
                Handed::Duplicate
            }
            (Offered::Accepted, _) => {
                if from_log {
                    Shared::bump(&self.shared.replayed);
                }
                Handed::On
            }
            (Offered::Refused, Some(mpsc::error::TrySendError::Full(signal))) => {
                // Not marked as seen: a resynchronising replay from early enough brings it back.
                Shared::bump(&self.shared.overflowed);
                let from = match origin {
                    Origin::Notification => self.last_alive(),
                    Origin::Confirmed { from } | Origin::Replay { from } => from,
                };
                self.resync_from(from);
                let _ = self.events.send(Event::Overflow);
                warn!(?signal, "handler too slow: hand-off queue full, signal dropped until the next replay");
                Handed::Dropped
            }
            // The receiver is gone: nobody wants signals any more; keep the connection so that
            // status stays truthful until shutdown.
            (Offered::Refused, _) => Handed::Dropped,
        }
    }

    /// Asks for a resynchronising replay from mark `from` (or earlier, if one is pending).
    fn resync_from(&self, from: Option<SystemTime>) {
        let mut pending = lock(&self.resync_from);
        let merged = match (*pending, from) {
            (None, from) => from,
            // "From the listener's start" covers everything.
            (Some(None), _) | (Some(_), None) => None,
            (Some(Some(earlier)), Some(from)) => Some(earlier.min(from)),
        };
        *pending = Some(merged);
    }

    /// The mark and look-back of a replay from `from` (`None`: from the listener's start).
    fn replay_window(
        &self,
        from: Option<SystemTime>,
        config: &ListenerConfig,
    ) -> (Option<SystemTime>, Duration) {
        match from {
            Some(mark) => (Some(mark), config.replay_grace),
            // Nothing was missed before the listener existed; the grace still covers senders
            // whose transactions were open when it started.
            None => (None, config.replay_grace.saturating_add(self.started.elapsed())),
        }
    }

    /// Replays from mark `from` and hands on what it returns; returns the new "known alive"
    /// mark and how many signals were recovered. What overflows asks for another resync.
    async fn replay(
        &self,
        log: &Log,
        client: &Client,
        from: Option<SystemTime>,
        config: &ListenerConfig,
    ) -> Result<(SystemTime, u64), tokio_postgres::Error> {
        let (since, grace) = self.replay_window(from, config);
        let replayed = log.replay(client, since, grace, None).await?;
        let recovered = replayed
            .signals
            .into_iter()
            .filter(|s| self.hand_on(s.clone(), Origin::Replay { from }) == Handed::On)
            .count() as u64;
        Ok((replayed.alive, recovered))
    }

    /// Records a "known alive" mark taken by a query sent at local instant `sent`.
    fn alive(&self, server_now: SystemTime, sent: Instant, config: &ListenerConfig) {
        *lock(&self.alive) = Some(server_now);
        // A pending resync reaches back to an older mark than this one: what it may return again
        // must still be recognised, so nothing is forgotten until it has succeeded.
        if lock(&self.resync_from).is_none() {
            lock(&self.seen).alive_at(sent, config.replay_grace, config.ping_timeout);
        }
    }

    fn last_alive(&self) -> Option<SystemTime> {
        *lock(&self.alive)
    }

    /// Says once per listener that the log cannot be read, and why.
    fn log_unavailable(&self, why: Unavailable, config: &ListenerConfig) {
        self.shared.set_replay_available(false);
        if !self.warned_unavailable.swap(true, Ordering::Relaxed) {
            warn!("{}", why.explain(&config.replay_function));
            if self.strict {
                warn!("strict mode: no notification can be confirmed, so none is acted on");
            }
        }
    }

    fn event(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}

/// Locks `m`, ignoring poisoning: every critical section leaves its data consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a listening session ended.
enum Ended {
    Shutdown,
    Lost(Error),
}

/// The state machine: connect, listen, back off, until shutdown.
async fn run(options: ConnectOptions, config: ListenerConfig, intake: Intake, shutdown: CancellationToken) {
    let mut backoff = BackoffState::new(config.backoff.clone());
    let listen_sql = format!("LISTEN {}", quote_ident(&config.channel));
    loop {
        let started = Instant::now();
        // Each host, address and TLS step has its own deadline (`connect_timeout`); the error
        // names every attempt.
        let connected = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = options.connect() => r.map_err(Error::Connect),
        };
        let lived = match connected {
            Ok(Established { client, connection, target, tls }) => {
                debug!(%target, tls = ?tls, "connected");
                let ended = listen(&client, connection, &listen_sql, &config, &intake, &shutdown).await;
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

/// One connection's life: LISTEN, then read and ping until it fails or we are told to stop.
async fn listen(
    client: &Client,
    mut connection: Connection<Socket, TlsStream>,
    listen_sql: &str,
    config: &ListenerConfig,
    intake: &Intake,
    shutdown: &CancellationToken,
) -> Ended {
    let mut reader = pin!(read_messages(&mut connection, intake));

    // LISTEN first. Every reply arrives through the connection, so it is driven meanwhile: no
    // statement on `client` may be awaited outside a select with `reader`.
    let setup = async {
        client.batch_execute(listen_sql).await?;
        let server = server_name(client).await;
        let clock = client.prepare("SELECT now()").await?;
        let log = match Log::prepare(client, &config.replay_function).await {
            Ok(log) => Ok(log),
            Err(e) => Err(Unavailable::of(&e).ok_or(e)?),
        };
        Ok::<_, tokio_postgres::Error>((server, clock, log))
    };
    let (server, clock, log) = tokio::select! {
        () = shutdown.cancelled() => return Ended::Shutdown,
        e = &mut reader => return Ended::Lost(e),
        // A server (or proxy) that accepts the connection and then says nothing must not keep
        // the listener waiting forever.
        r = tokio::time::timeout(config.connect_timeout, setup) => match r {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let wrong_host = e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION);
                return Ended::Lost(if wrong_host { Error::WrongHost(e) } else { Error::Database(e) });
            }
            Err(_) => return Ended::Lost(Error::Timeout { what: "LISTEN", after: config.connect_timeout }),
        },
    };
    intake.shared.set_connected();
    info!(%server, channel = %config.channel, "listening");
    intake.event(Event::Connected { server });

    // Catch up on what was committed while we were not listening.
    let log = match log {
        Ok(log) => {
            let sent = Instant::now();
            let from = intake.last_alive();
            let catch_up =
                tokio::time::timeout(config.replay_timeout, intake.replay(&log, client, from, config));
            let caught_up = tokio::select! {
                () = shutdown.cancelled() => return Ended::Shutdown,
                e = &mut reader => return Ended::Lost(e),
                r = catch_up => r,
            };
            match caught_up {
                Ok(Ok((alive, recovered))) => {
                    intake.alive(alive, sent, config);
                    intake.shared.set_replay_available(true);
                    if recovered > 0 {
                        info!(recovered, "replayed signals missed while not listening");
                    }
                    intake.event(Event::Replayed { signals: recovered });
                    Some(log)
                }
                Ok(Err(e)) => match Unavailable::of(&e) {
                    Some(why) => {
                        intake.log_unavailable(why, config);
                        None
                    }
                    None => return Ended::Lost(Error::Database(e)),
                },
                Err(_) => {
                    return Ended::Lost(Error::Timeout { what: "replay", after: config.replay_timeout })
                }
            }
        }
        Err(why) => {
            intake.log_unavailable(why, config);
            None
        }
    };

    // Heartbeat: a ping with a hard deadline that also moves the "known alive" mark, or, after an
    // overflow, a resynchronising replay from early enough to cover every dropped signal.
    let heartbeat = async {
        let mut tick = tokio::time::interval(config.ping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let sent = Instant::now();
            let resync = match &log {
                Some(log) => lock(&intake.resync_from).take().map(|from| (log, from)),
                None => None,
            };
            let beat = match resync {
                Some((log, from)) => {
                    let replay =
                        async { intake.replay(log, client, from, config).await.map(|(alive, _)| alive) };
                    within("resynchronising replay", config.replay_timeout, replay).await
                }
                None => {
                    let ping = async { client.query_one(&clock, &[]).await?.try_get(0) };
                    within("heartbeat", config.ping_timeout, ping).await
                }
            };
            match beat {
                Ok(now) => intake.alive(now, sent, config),
                Err(e) => {
                    // A resync that did not complete is asked for again (on the next connection).
                    if let Some((_, from)) = resync {
                        intake.resync_from(from);
                    }
                    return e;
                }
            }
        }
    };

    // Strict mode: confirm notifications against the log, in batches.
    let confirmer = async {
        if !intake.strict {
            return std::future::pending().await;
        }
        loop {
            intake.confirm.notified().await;
            let candidates = std::mem::take(&mut *lock(&intake.unconfirmed));
            if candidates.is_empty() {
                continue;
            }
            let Some(log) = &log else {
                intake.shared.add_unconfirmed(candidates.len() as u64);
                continue;
            };
            let uids: Vec<i64> = candidates.iter().map(|s| s.uid.get()).collect();
            let from = intake.last_alive();
            let (since, grace) = intake.replay_window(from, config);
            let confirm = log.replay(client, since, grace, Some(&uids));
            let found = match within("confirming replay", config.replay_timeout, confirm).await {
                Ok(replayed) => replayed.signals,
                Err(e) => return e,
            };
            // Only what was named: the uid filter also matches the other kind's runs.
            let wanted: HashSet<_> = candidates.iter().map(seen::key).collect();
            let mut confirmed = HashSet::new();
            for signal in found {
                let key = seen::key(&signal);
                if wanted.contains(&key) && confirmed.insert(key) {
                    intake.hand_on(signal, Origin::Confirmed { from });
                }
            }
            for signal in candidates.iter().filter(|s| !confirmed.contains(&seen::key(s))) {
                intake.shared.add_unconfirmed(1);
                warn!(?signal, "strict mode: notification not confirmed by the signal log, ignored");
            }
        }
    };

    tokio::select! {
        e = &mut reader => Ended::Lost(e),
        e = heartbeat => Ended::Lost(e),
        e = confirmer => Ended::Lost(e),
        () = shutdown.cancelled() => {
            // Politely stop listening, still driving the connection; a dead server must not
            // delay shutdown beyond the deadline.
            let unlisten = async {
                tokio::select! {
                    _ = client.batch_execute("UNLISTEN *") => {}
                    _ = &mut reader => {}
                }
            };
            if tokio::time::timeout(config.unlisten_timeout, unlisten).await.is_err() {
                debug!("UNLISTEN timed out at shutdown");
            }
            Ended::Shutdown
        }
    }
}

/// Reads the connection until it fails, feeding every notification on our channel to `intake`.
async fn read_messages(connection: &mut Connection<Socket, TlsStream>, intake: &Intake) -> Error {
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) => intake.take(&n),
            Some(Ok(AsyncMessage::Notice(notice))) => debug!(notice = %notice.message(), "server notice"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Error::Database(e),
            None => return Error::Closed,
        }
    }
}

/// Runs `query` with a deadline; a late answer is a [`Error::Timeout`] naming `what`.
async fn within<T>(
    what: &'static str,
    after: Duration,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(after, query).await {
        Ok(result) => result.map_err(Error::Database),
        Err(_) => Err(Error::Timeout { what, after }),
    }
}

/// `host:port` of the server, for events and logs.
async fn server_name(client: &Client) -> String {
    let row = client
        .query_opt(
            "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port(), 0)",
            &[],
        )
        .await;
    match row {
        Ok(Some(row)) => row.try_get::<_, String>(0).unwrap_or_default(),
        _ => String::from("unknown"),
    }
}

/// Quotes a channel name as a SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_quoted_as_identifiers() {
        assert_eq!(quote_ident("bytebase_signal"), "\"bytebase_signal\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
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
