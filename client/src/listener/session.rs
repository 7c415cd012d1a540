//! One connection's life: [`setup`] (LISTEN, who the server is, what its log offers), then
//! [`Session::catch_up`] on what was missed, then reading while the heartbeat runs — each beat an
//! exact replay of the log where the database has them ([`Session::heartbeat`]), every few beats
//! a probe of whether notifications arrive at all ([`Session::probe`]) — and, in strict mode,
//! [`Session::confirm`]ing notifications against the log; until the connection fails or the
//! listener is told to stop.
//!
//! The connection is driven by [`read_messages`] alone, in the same task: every statement's reply
//! arrives through it, so no statement is awaited outside a `select!` with it.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, Connection, Socket};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::connect::TlsStream;
use crate::listener::catch_up::{Arrival, CatchUp};
use crate::listener::config::ListenerConfig;
use crate::listener::intake::{lock, Intake};
use crate::listener::log::{self, Ask, Log, Unavailable};
use crate::listener::log_access::{AfterFailure, LogAccess, ReadFailure};
use crate::listener::lost::Lost;
use crate::status::Event;
use crate::wire::quote_ident;

/// How a session ended.
pub(crate) enum Ended {
    Shutdown,
    Lost(Lost),
}

/// What [`setup`] found.
struct Ready {
    /// `host:port` of the server, for events and logs.
    server: String,
    /// Who the server is, for the cursor (its postmaster's start time).
    identity: String,
    /// The log, or why it cannot be read.
    log: Result<Log, Unavailable>,
}

/// A connection that is listening.
struct Session<'a> {
    client: &'a Client,
    config: &'a ListenerConfig,
    intake: &'a Intake,
    /// Whether the log may be read, and as what (see `log_access.rs`). The heartbeat and strict
    /// mode's confirmations share it; each clones the log before awaiting.
    access: Mutex<LogAccess>,
}

/// Runs one connection until it is lost or `shutdown` is cancelled.
pub(crate) async fn run(
    client: &Client,
    mut connection: Connection<Socket, TlsStream>,
    config: &ListenerConfig,
    intake: &Intake,
    shutdown: &CancellationToken,
) -> Ended {
    let mut reader = pin!(read_messages(&mut connection, intake));

    // A server (or proxy) that accepts the connection and then says nothing must not keep the
    // listener waiting forever.
    let ready = tokio::select! {
        () = shutdown.cancelled() => return Ended::Shutdown,
        e = &mut reader => return Ended::Lost(e),
        r = tokio::time::timeout(config.connect_timeout, setup(client, config, intake)) => match r {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let wrong_host = e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION);
                return Ended::Lost(if wrong_host { Lost::WrongHost(e) } else { Lost::Database(e) });
            }
            Err(_) => return Ended::Lost(Lost::Timeout { what: "LISTEN", after: config.connect_timeout }),
        },
    };
    intake.shared.set_connected();
    info!(server = %ready.server, channel = %config.channel, "listening");
    intake.event(Event::Connected { server: ready.server });
    let session = Session { client, config, intake, access: Mutex::new(LogAccess::new(Instant::now())) };
    session.report(&ready.log);
    let exact = lock(&session.access).adopt(ready.log, Instant::now());
    intake.state().connected(&ready.identity, exact);

    // Catch up on what was committed while we were not listening.
    let caught_up = tokio::select! {
        () = shutdown.cancelled() => return Ended::Shutdown,
        e = &mut reader => return Ended::Lost(e),
        r = session.catch_up() => r,
    };
    if let Err(e) = caught_up {
        return Ended::Lost(e);
    }

    // Can we hear at all? The answer is judged at the heartbeats; a probe that does not come
    // back is reported, not fatal.
    let probed = tokio::select! {
        () = shutdown.cancelled() => return Ended::Shutdown,
        e = &mut reader => return Ended::Lost(e),
        r = session.probe() => r,
    };
    if let Err(e) = probed {
        return Ended::Lost(e);
    }

    tokio::select! {
        e = &mut reader => Ended::Lost(e),
        e = session.heartbeat() => Ended::Lost(e),
        e = session.confirm() => Ended::Lost(e),
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

/// LISTEN first (on the signals' channel and the probe's), so that nothing committed from here on
/// can be missed; then who the server is and what its log offers this role.
async fn setup(
    client: &Client,
    config: &ListenerConfig,
    intake: &Intake,
) -> Result<Ready, tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "LISTEN {}; LISTEN {}",
            quote_ident(&config.channel),
            quote_ident(intake.probe_channel())
        ))
        .await?;
    let server = server_name(client).await;
    let identity = log::server_identity(client).await?;
    let log = detect(client, config).await?;
    Ok(Ready { server, identity, log })
}

/// What the log offers; its absence is not the connection's failure (the listener then works
/// without it).
async fn detect(
    client: &Client,
    config: &ListenerConfig,
) -> Result<Result<Log, Unavailable>, tokio_postgres::Error> {
    match Log::detect(client, &config.replay_function).await {
        Ok(found) => Ok(found),
        Err(e) => Ok(Err(Unavailable::of(&e).ok_or(e)?)),
    }
}

impl Session<'_> {
    /// The log as last detected.
    fn log(&self) -> Option<Log> {
        lock(&self.access).log().cloned()
    }

    /// Says what a detection found: the log available (and whether its exact replay is granted),
    /// or why not.
    fn report(&self, found: &Result<Log, Unavailable>) {
        match found {
            Ok(log) => {
                self.intake.shared.set_replay_available(true);
                if log.after_not_granted() {
                    self.intake.log_not_exact(&log.after_name());
                }
            }
            Err(why) => self.intake.log_unavailable(*why, &self.config.replay_function),
        }
    }

    /// A read of the log failed with `e`: `Ok` if the session goes on.
    async fn failed(&self, e: Lost) -> Result<(), Lost> {
        let why = match &e {
            Lost::Database(db) => Unavailable::of(db),
            _ => None,
        };
        let failure = match &e {
            Lost::Database(db) if db.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => ReadFailure::Locked,
            _ if why.is_some() => ReadFailure::Refused,
            _ => ReadFailure::Lost,
        };
        let after = lock(&self.access).read_failed(failure);
        match after {
            AfterFailure::Skip => {
                debug!("the signal log is locked; this read is skipped");
                Ok(())
            }
            AfterFailure::DoWithout => {
                // Refused again although detection found the log readable: without it (a plain
                // listener) until the next detection, every `probe_interval`. Said once per
                // detection, with the server's answer, since no detection explains it.
                if self.intake.strict {
                    warn!(
                        error = %e,
                        "a replay of the signal log failed again although the log looks readable; \
                         strict mode: no notification can be confirmed, so none is acted on until \
                         the next look at the log"
                    );
                } else {
                    warn!(
                        error = %e,
                        "a replay of the signal log failed again although the log looks readable; \
                         cancels come from notifications alone until the next look at the log"
                    );
                }
                self.intake.shared.set_replay_available(false);
                self.intake.state().set_exact(false);
                Ok(())
            }
            AfterFailure::Redetect => {
                // Granted at detection, revoked or dropped since: perhaps only the exact replay,
                // and the time-based one still works. Detect again.
                debug!(?why, error = %e, "a replay of the log was refused; looking again at what the log offers");
                let found =
                    within("log detection", self.config.ping_timeout, detect(self.client, self.config))
                        .await?;
                self.report(&found);
                let exact = lock(&self.access).redetected(found, Instant::now());
                self.intake.state().set_exact(exact);
                Ok(())
            }
            AfterFailure::End => Err(e),
        }
    }

    /// The replay after (re)connecting: exact from the cursor on the server that issued it,
    /// joined with a time-based one (see `catch_up`). If the log is locked, the heartbeats
    /// complete it.
    async fn catch_up(&self) -> Result<(), Lost> {
        match self.replay().await {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e).await,
        }
    }

    /// One replay, as the catch-up state plans it. Its deadline is a ping's for a heartbeat's
    /// exact replay (a few rows), a replay's for anything with a time window.
    async fn replay(&self) -> Result<(), Lost> {
        let Some(log) = self.log() else { return Ok(()) };
        let sent = Instant::now();
        let ask = self.intake.state().start_replay(sent);
        let after = match ask {
            Ask::After { since: None, .. } => self.config.ping_timeout,
            _ => self.config.replay_timeout,
        };
        let replay = log.replay(self.client, &ask, &self.config.channel, None);
        match within("replay", after, replay).await {
            Ok(mut replayed) => {
                lock(&self.access).read_succeeded();
                let signals = std::mem::take(&mut replayed.signals);
                let recovered = self.intake.hand_on_replayed(signals, sent);
                let first = self.intake.state().replayed(&replayed, sent);
                self.intake.shared.replays.bump();
                if !replayed.listening {
                    self.not_listening();
                }
                if recovered > 0 {
                    info!(
                        recovered,
                        exact = log.exact(),
                        "replayed signals the notifications did not deliver"
                    );
                }
                if first {
                    self.intake.event(Event::Replayed { signals: recovered });
                }
                Ok(())
            }
            Err(e) => {
                self.intake.state().replay_failed();
                Err(e)
            }
        }
    }

    /// The heartbeat: a read with a hard deadline, so that a connection that went silent without
    /// closing (half-open, a frozen proxy) is given up after `ping_interval + ping_timeout`
    /// (`+ replay_timeout` for a beat that reads the log by time).
    /// Where there is a log every beat is a replay of it — exact where the log has exact replays,
    /// by time elsewhere — so a notification lost for any reason (a pooler, a dropped hand-off)
    /// arrives within one interval. Without one it reads the clock.
    async fn heartbeat(&self) -> Lost {
        let mut tick = tokio::time::interval(self.config.ping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            if let Err(e) = self.beat().await {
                return e;
            }
            self.judge_probe();
            let due = {
                let probe = self.intake.probe();
                !probe.awaited() && probe.due(Instant::now(), self.config.probe_interval)
            };
            if due {
                if let Err(e) = self.probe().await {
                    return e;
                }
            }
        }
    }

    /// One heartbeat: the log detected again if due, then a replay or a read of the clock.
    async fn beat(&self) -> Result<(), Lost> {
        let due = lock(&self.access).detection_due(Instant::now(), self.config.probe_interval);
        if due {
            let found =
                within("log detection", self.config.ping_timeout, detect(self.client, self.config)).await?;
            self.report(&found);
            let exact = lock(&self.access).detected_on_schedule(found, Instant::now());
            self.intake.state().set_exact(exact);
        }
        if self.log().is_some() {
            return match self.replay().await {
                Ok(()) => Ok(()),
                Err(e) => self.failed(e).await,
            };
        }
        let sent = Instant::now();
        let now = within("heartbeat", self.config.ping_timeout, log::clock(self.client)).await?;
        self.intake.state().heartbeat(now, sent);
        Ok(())
    }

    /// Sends the listener a probe on its own channel, one notification per statement (so one
    /// transaction each: a pool would route them apart). A session receives its own notifications
    /// at commit; [`Session::judge_probe`] later finds out whether they all came back. A server
    /// that refuses the NOTIFY (a full notification queue) is a deaf verdict, not a lost session.
    async fn probe(&self) -> Result<(), Lost> {
        let payloads = self.intake.probe().send(Instant::now());
        let channel = self.intake.probe_channel();
        for payload in &payloads {
            let params: [(&(dyn ToSql + Sync), Type); 2] = [(&channel, Type::TEXT), (payload, Type::TEXT)];
            let notify = self.client.query_typed(PROBE_NOTIFY, &params);
            match within("probe", self.config.ping_timeout, notify).await {
                Ok(_) => {}
                Err(Lost::Database(e)) if e.code().is_some() => {
                    warn!(error = %e, "the server refused the listener's probe notification");
                    if let Some(change) = self.intake.probe().refused() {
                        self.intake.probe_changed(change, &self.meanwhile());
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A probe still missing `ping_timeout` after it was sent means notifications do not reach
    /// this listener: said once, loudly. (Checked at each heartbeat, so that waiting for it never
    /// delays the heartbeat's replay.)
    fn judge_probe(&self) {
        let Some(change) = self.intake.probe().expire(Instant::now(), self.config.ping_timeout) else {
            return;
        };
        debug!(channel = self.intake.probe_channel(), "the probe did not come back");
        if let Some(change) = change {
            self.intake.probe_changed(change, &self.meanwhile());
        }
    }

    /// A replay ran on a session that does not LISTEN on the channel (a transaction pool handed
    /// the statement to another server connection): notifications cannot arrive here.
    fn not_listening(&self) {
        debug!(channel = %self.config.channel, "a replay ran on a session that does not listen");
        if let Some(change) = self.intake.probe().not_listening() {
            self.intake.probe_changed(change, &self.meanwhile());
        }
    }

    /// What delivers cancels while notifications do not arrive, for the warning.
    fn meanwhile(&self) -> String {
        match self.log() {
            Some(log) if log.exact() => format!(
                "Until then cancels still arrive, from the durable log at every heartbeat (every {:?}).",
                self.config.ping_interval
            ),
            Some(_) => format!(
                "Until then cancels still arrive, from the durable log at every heartbeat (every {:?}), \
                 unless their transaction stays open longer than the replay grace ({:?}): update the \
                 database to 0.4.0 for exact replays.",
                self.config.ping_interval, self.config.replay_grace
            ),
            None => "This database has no signal log this role may read: cancels sent meanwhile are not \
                     delivered."
                .to_owned(),
        }
    }

    /// Strict mode: confirms notifications against the log, in batches, by a replay restricted
    /// to their uids.
    async fn confirm(&self) -> Lost {
        if !self.intake.strict {
            return std::future::pending().await;
        }
        loop {
            self.intake.confirm.notified().await;
            let candidates = self.intake.state().take_candidates();
            if candidates.is_empty() {
                continue;
            }
            let Some(log) = self.log() else {
                self.intake.shared.add_unconfirmed(candidates.len() as u64);
                continue;
            };
            let uids: Vec<i64> = candidates.iter().map(|s| s.uid.get()).collect();
            let ask = self.intake.state().confirming(Instant::now());
            let replay = log.replay(self.client, &ask, &self.config.channel, Some(&uids));
            let found = match within("confirming replay", self.config.replay_timeout, replay).await {
                Ok(replayed) => {
                    lock(&self.access).read_succeeded();
                    replayed.signals.into_iter().map(|logged| logged.signal).collect()
                }
                Err(e) => {
                    // Not lost: put back, confirmed at the next try (the next notification, or
                    // the next heartbeat replay hands them on from the log anyway).
                    for signal in candidates {
                        self.intake.state().candidate(signal);
                    }
                    match self.failed(e).await {
                        Ok(()) => continue,
                        Err(e) => return e,
                    }
                }
            };
            let (confirmed, unconfirmed) = CatchUp::confirm(candidates, found);
            for signal in confirmed {
                self.intake.hand_on(signal, Arrival::Confirmed, None);
            }
            for signal in unconfirmed {
                self.intake.shared.add_unconfirmed(1);
                warn!(?signal, "strict mode: notification not confirmed by the signal log, ignored");
            }
        }
    }
}

/// Reads the connection until it fails, feeding every notification to `intake`. Each wake-up
/// takes every message already read and reads the clock once for them: in a flood, thousands
/// arrive together, and a clock reading each was a measurable part of their cost. (The socket's
/// cooperative budget still makes the task yield in a flood that never pauses.)
async fn read_messages(connection: &mut Connection<Socket, TlsStream>, intake: &Intake) -> Lost {
    poll_fn(|cx| {
        let now = Instant::now();
        loop {
            match connection.poll_message(cx) {
                Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => intake.take(&n, now),
                Poll::Ready(Some(Ok(AsyncMessage::Notice(notice)))) => {
                    debug!(notice = %notice.message(), "server notice")
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Lost::Database(e)),
                Poll::Ready(None) => return Poll::Ready(Lost::Closed),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// Runs `query` with a deadline; a late answer is a [`Lost::Timeout`] naming `what`.
async fn within<T>(
    what: &'static str,
    after: Duration,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Lost> {
    match tokio::time::timeout(after, query).await {
        Ok(result) => result.map_err(Lost::Database),
        Err(_) => Err(Lost::Timeout { what, after }),
    }
}

/// `host:port` of the server, for events and logs.
async fn server_name(client: &Client) -> String {
    let row = client
        .query_typed_opt(
            "SELECT coalesce(pg_catalog.host(pg_catalog.inet_server_addr()), 'local') || ':' \
             || coalesce(pg_catalog.inet_server_port(), 0)",
            &[],
        )
        .await;
    match row {
        Ok(Some(row)) => row.try_get::<_, String>(0).unwrap_or_default(),
        _ => String::from("unknown"),
    }
}

/// The probe's NOTIFY, tagged as a listener's statement.
pub(crate) const PROBE_NOTIFY: &str = crate::listener::config::tagged!("SELECT pg_catalog.pg_notify($1, $2)");
