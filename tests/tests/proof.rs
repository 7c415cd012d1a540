//! The proof, with numbers: no cancel is lost with the durable log, whatever happens to the
//! listener's connection — and how many are lost without it (`bytebase_signal.durable = off`,
//! NOTIFY alone, as the first Go design of this signal had it).
//!
//! Six fault scenarios, each run with the log on and off:
//!
//! - **kills + restart**: 4 concurrent senders commit 10,000 cancels while the listener's backend
//!   is terminated at random moments 30–130 ms apart (at least 50 times) and the server is
//!   restarted once;
//! - **cut off**: the listener cannot reach the server for 3 s while 50 cancels are sent;
//! - **half-open**: the listener's stream freezes without closing while 20 cancels are sent;
//! - **long transaction**: a cancel transaction stays open 15 s, across many heartbeats and three
//!   times the listener's grace period, and commits while the listener is cut off (a time-based
//!   catch-up starts after its rows' stamps: only the exact one finds them);
//! - **transaction pooler**: the listener connects through PgBouncer in `pool_mode = transaction`,
//!   shared with other clients, while 50 cancels are sent: notifications never reach it;
//! - **full queue**: a listening session elsewhere stays in a transaction and the senders' queue
//!   limit is reached (lowered to 0 for them), so sends log without NOTIFY;
//! - **really full queue** (PostgreSQL 17 and later, `max_notify_queue_pages = 64`): the same
//!   session holds the queue while NOTIFYs fill it until PostgreSQL refuses one; with the log the
//!   cancels commit without NOTIFY, without it their commits fail (counted in the faults).
//!
//! A cancel is *sent* when its autocommit call returned (a call cut off by a fault is retried, so
//! some are sent twice; that is fine, handlers are idempotent). When the faults are over, one more
//! cancel (the marker) is sent; once it has arrived, whatever sent cancel has not is *lost*. The
//! table goes to stdout and to `target/tmp/fault-proof.md` (`make test` prints it at the end).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::{Backoff, Event, ListenerConfig, ListenerHandle};
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::{default_bindir, major_of, terminate_backends, Cluster, Install};
use bytebase_signal_tests::pgbouncer::{Neighbours, PgBouncer, PoolMode};
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::wait;
use tokio::sync::broadcast;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

const SENDERS: i64 = 4;
const PER_SENDER: i64 = 2_500;
const MIN_KILLS: u64 = 50;
const MARKER: i64 = 999_999_999;

/// One row of the table.
struct Outcome {
    scenario: &'static str,
    durable: bool,
    sent: usize,
    faults: String,
    lost: usize,
    replayed: u64,
    duplicates: u64,
}

/// Listener settings for a connection that is killed every few tens of milliseconds: reconnect
/// at once every time (production backs off), look back 5 s (these senders commit at once).
fn config() -> ListenerConfig {
    quick()
        .replay_grace(Duration::from_secs(5))
        // Each reconnect replays thousands of rows here; a tight deadline would only loop.
        .replay_timeout(Duration::from_secs(10))
        .backoff(
            Backoff::default()
                .initial(Duration::from_millis(10))
                .max(Duration::from_millis(50))
                .reset_after(Duration::from_millis(1)),
        )
}

/// A listener whose signals are collected into a set of uids.
struct Collector {
    handle: ListenerHandle,
    events: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
    uids: Arc<Mutex<HashSet<i64>>>,
}

impl Collector {
    async fn start(cluster: &Cluster, port: u16) -> Result<Self> {
        let shutdown = CancellationToken::new();
        let (handle, mut signals) = listener_on(cluster, port, config()).spawn(shutdown.clone());
        let mut events = handle.events();
        next_event(&mut events, replayed).await.context("first catch-up")?;
        let uids = Arc::new(Mutex::new(HashSet::new()));
        let sink = Arc::clone(&uids);
        tokio::spawn(async move {
            while let Some(signal) = signals.recv().await {
                sink.lock().unwrap().insert(signal.uid.get());
            }
        });
        Ok(Collector { handle, events, shutdown, uids })
    }

    /// Waits until the listener is connected and has caught up from the log after the last fault:
    /// its last connection event is a catch-up (other events, a probe's verdict say, do not
    /// count either way).
    async fn caught_up(&mut self) -> Result<()> {
        let mut caught_up = None;
        let note = |e: &Event, caught_up: &mut Option<bool>| match e {
            Event::Replayed { .. } => *caught_up = Some(true),
            Event::Disconnected { .. } | Event::ConnectFailed { .. } | Event::Connected { .. } => {
                *caught_up = Some(false)
            }
            _ => {}
        };
        loop {
            match self.events.try_recv() {
                Ok(e) => note(&e, &mut caught_up),
                Err(broadcast::error::TryRecvError::Lagged(_)) => caught_up = Some(false),
                Err(_) => break,
            }
        }
        // Nothing since the first catch-up (which `start` waited for): still caught up.
        if caught_up.unwrap_or(true) && self.handle.status().connected {
            return Ok(());
        }
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.events.recv().await {
                    Ok(Event::Replayed { .. }) => return Ok(()),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        })
        .await
        .with_context(|| format!("no catch-up after the faults: {:?}", self.handle.status()))?
    }

    /// Once the listener has caught up, waits as `until` says; then counts what of `sent` never
    /// arrived.
    async fn finish(
        mut self,
        cluster: &Cluster,
        scenario: &'static str,
        durable: bool,
        sent: Vec<i64>,
        faults: String,
        until: Until,
    ) -> Result<Outcome> {
        self.caught_up().await?;
        match until {
            Until::Marker { setup } => {
                let marker = connect(cluster, true).await?;
                marker.batch_execute(setup).await?;
                marker.execute("SELECT bytebase_cancel_task_run($1)", &[&MARKER]).await?;
                wait::until("the marker", Duration::from_secs(60), || async {
                    self.uids.lock().unwrap().contains(&MARKER).then_some(())
                })
                .await?;
            }
            // Nothing arrives but through the log: once the listener knows it cannot hear, what
            // the log did not deliver is lost.
            Until::Deaf => {
                wait::until("the probe's verdict", Duration::from_secs(60), || async {
                    (self.handle.status().notifications == Some(false)).then_some(())
                })
                .await?;
            }
        }
        let got = self.uids.lock().unwrap().clone();
        let status = self.handle.status();
        stop(&self.shutdown, self.handle).await?;
        let distinct: HashSet<i64> = sent.into_iter().collect();
        let lost = distinct.iter().filter(|uid| !got.contains(uid)).count();
        Ok(Outcome {
            scenario,
            durable,
            sent: distinct.len(),
            faults,
            lost,
            replayed: status.replayed,
            duplicates: status.duplicates,
        })
    }
}

/// When a scenario's deliveries are over.
enum Until {
    /// Once a last cancel sent after the faults (run `setup` first on its connection) arrived:
    /// PostgreSQL delivers in commit order, and a replay returns rows in it too.
    Marker { setup: &'static str },
    /// Once the listener found that notifications do not reach it (only the log delivers).
    Deaf,
}

/// The marker as the other cancels are sent.
const PLAIN: Until = Until::Marker { setup: "" };

/// A sender connection with the log switched on or off for its session.
async fn connect(cluster: &Cluster, durable: bool) -> Result<Client> {
    let (client, connection) = cluster.config(DB).connect(NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET bytebase_signal.durable = {}", if durable { "on" } else { "off" }))
        .await?;
    Ok(client)
}

/// Sends `uids` one autocommit call each, reconnecting (and retrying the call) after a fault;
/// returns the uids whose call returned.
async fn send_all(
    pg: tokio_postgres::Config,
    durable: bool,
    uids: Vec<i64>,
    pace: Duration,
) -> Result<Vec<i64>> {
    let mut sent = Vec::with_capacity(uids.len());
    let mut client: Option<Client> = None;
    for uid in uids {
        loop {
            if client.is_none() {
                client = Some(
                    wait::until("a sender connection", Duration::from_secs(60), || {
                        let pg = pg.clone();
                        async move {
                            let (client, connection) = pg.connect(NoTls).await.ok()?;
                            tokio::spawn(connection);
                            let on = if durable { "on" } else { "off" };
                            client
                                .batch_execute(&format!("SET bytebase_signal.durable = {on}"))
                                .await
                                .ok()?;
                            Some(client)
                        }
                    })
                    .await?,
                );
            }
            match client
                .as_ref()
                .expect("connected")
                .execute("SELECT bytebase_cancel_task_run($1)", &[&uid])
                .await
            {
                Ok(_) => {
                    sent.push(uid);
                    break;
                }
                Err(_) => client = None, // the outcome is unknown: send it again
            }
        }
        tokio::time::sleep(pace).await; // spreads the sends over the fault window
    }
    Ok(sent)
}

/// A small xorshift: random fault timing without another dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn kills_and_a_restart(durable: bool) -> Result<Outcome> {
    let (cluster, _) = cluster_with_extension().await?;
    let collector = Collector::start(&cluster, cluster.port()).await?;
    let (app, postgres) = (cluster.config(DB), cluster.config("postgres"));
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));

    let killer = {
        let (done, kills) = (Arc::clone(&done), Arc::clone(&kills));
        // The killer owns the cluster (to restart it) and hands it back at the end.
        let mut cluster = cluster;
        tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ u64::from(std::process::id());
            let mut restarted = false;
            let mut admin: Option<Client> = None;
            while !(done.load(Ordering::Relaxed) && kills.load(Ordering::Relaxed) >= MIN_KILLS) {
                // Fault injection at random moments, 30–130 ms apart: the timing is the point.
                tokio::time::sleep(Duration::from_millis(30 + next_random(&mut seed) % 100)).await;
                if kills.load(Ordering::Relaxed) == MIN_KILLS / 2 && !restarted {
                    cluster =
                        tokio::task::spawn_blocking(move || cluster.restart().map(|()| cluster)).await??;
                    restarted = true;
                    admin = None;
                    continue;
                }
                if admin.is_none() {
                    let Ok((client, connection)) = postgres.connect(NoTls).await else { continue };
                    tokio::spawn(connection);
                    admin = Some(client);
                }
                match terminate_backends(admin.as_ref().expect("connected"), APP).await {
                    Ok(n) if n > 0 => {
                        kills.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => admin = None,
                }
            }
            anyhow::Ok((cluster, restarted))
        })
    };

    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let uids = (1..=PER_SENDER).map(|k| s * 1_000_000 + k).collect();
            tokio::spawn(send_all(app.clone(), durable, uids, Duration::from_millis(1)))
        })
        .collect();
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await??);
    }
    done.store(true, Ordering::Relaxed);
    let (cluster, restarted) = killer.await??;
    let kills = kills.load(Ordering::Relaxed);
    ensure!(restarted, "the server was not restarted");
    let faults = format!("{kills} backend kills, 1 restart");
    collector.finish(&cluster, "kills + restart", durable, sent, faults, PLAIN).await
}

async fn cut_off(durable: bool) -> Result<Outcome> {
    let (cluster, _) = cluster_with_extension().await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let mut collector = Collector::start(&cluster, proxy.port()).await?;
    let sender = connect(&cluster, durable).await?;
    proxy.set_mode(Mode::Refuse);
    next_event(&mut collector.events, disconnected).await?;
    let started = Instant::now();
    let mut sent = Vec::new();
    for uid in 1..=50 {
        sender.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
        sent.push(uid);
    }
    // The outage itself: the server stays unreachable for 3 s in all.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed())).await;
    proxy.set_mode(Mode::Forward);
    collector.finish(&cluster, "cut off", durable, sent, "unreachable for 3 s".into(), PLAIN).await
}

async fn half_open(durable: bool) -> Result<Outcome> {
    let (cluster, _) = cluster_with_extension().await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let mut collector = Collector::start(&cluster, proxy.port()).await?;
    let sender = connect(&cluster, durable).await?;
    proxy.set_mode(Mode::Freeze);
    let frozen = Instant::now();
    let mut sent = Vec::new();
    for uid in 1..=20 {
        sender.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
        sent.push(uid);
    }
    next_event(&mut collector.events, disconnected).await?;
    let detected = frozen.elapsed();
    proxy.set_mode(Mode::Forward);
    let faults = format!("frozen stream, detected after {} ms", detected.as_millis());
    collector.finish(&cluster, "half-open", durable, sent, faults, PLAIN).await
}

/// How long the long transaction stays open: three times the proof's grace period.
const HOLD: Duration = Duration::from_secs(15);

async fn long_transaction(durable: bool) -> Result<Outcome> {
    let (cluster, _) = cluster_with_extension().await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let mut collector = Collector::start(&cluster, proxy.port()).await?;
    let sender = connect(&cluster, durable).await?;
    let sent: Vec<i64> = (8001..=8010).collect();
    sender.batch_execute("BEGIN").await?;
    sender.execute("SELECT bytebase_cancel_task_runs($1)", &[&sent]).await?;
    // The scenario itself: the transaction stays open (its UPDATE waits on a row lock, say) while
    // the listener's heartbeats move its "known alive" mark past the rows' stamps.
    tokio::time::sleep(HOLD).await;
    proxy.set_mode(Mode::Refuse);
    next_event(&mut collector.events, disconnected).await?;
    sender.batch_execute("COMMIT").await?;
    proxy.set_mode(Mode::Forward);
    let faults = format!(
        "open {} s, committed while cut off (grace {} s)",
        HOLD.as_secs(),
        config().get_replay_grace().as_secs()
    );
    collector.finish(&cluster, "long transaction", durable, sent, faults, PLAIN).await
}

async fn through_a_transaction_pooler(durable: bool) -> Result<Outcome> {
    let (cluster, _) = cluster_with_extension().await?;
    let bouncer = PgBouncer::start(&cluster, DB, PoolMode::Transaction, 4)?;
    // Other clients share the pool, as in production: server connections change hands.
    let neighbours = Neighbours::start(&cluster, DB, bouncer.port(), 3);
    let collector = Collector::start(&cluster, bouncer.port()).await?;
    let sender = connect(&cluster, durable).await?;
    let mut sent = Vec::new();
    for uid in 1..=50 {
        sender.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
        sent.push(uid);
        tokio::time::sleep(Duration::from_millis(20)).await; // spread over a few heartbeats
    }
    // With the log the marker arrives from it (after the others, in commit order); without it
    // nothing does, and the probe says so.
    let until = if durable { PLAIN } else { Until::Deaf };
    let outcome = collector
        .finish(
            &cluster,
            "transaction pooler",
            durable,
            sent,
            "PgBouncer pool_mode = transaction, 3 other clients".into(),
            until,
        )
        .await;
    drop(neighbours);
    outcome
}

async fn a_full_queue(durable: bool) -> Result<Outcome> {
    let (cluster, _) = cluster_with_extension().await?;
    let collector = Collector::start(&cluster, cluster.port()).await?;
    // A listening session that stopped reading: it holds the queue for everyone.
    let stuck = cluster.connect(DB).await?;
    hold_the_queue(&stuck).await?;
    let sender = connect(&cluster, durable).await?;
    const AT_LIMIT: &str = "SET bytebase_signal.notify_queue_limit = 0";
    sender.batch_execute(AT_LIMIT).await?;
    let mut sent = Vec::new();
    for uid in 1..=50 {
        sender.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
        sent.push(uid);
    }
    let faults = "a listening session idle in transaction; queue limit reached (lowered to 0)".into();
    let outcome = collector
        .finish(&cluster, "full queue", durable, sent, faults, Until::Marker { setup: AT_LIMIT })
        .await;
    drop(stuck);
    outcome
}

/// A queue filled for real, on a server of 17 or later (the one under test, else none: `None`).
async fn a_really_full_queue(durable: bool) -> Result<Option<Outcome>> {
    let bindir = default_bindir()?;
    if major_of(&bindir)? < QUEUE_PAGES_MAJOR {
        return Ok(None);
    }
    let cluster = small_queue_cluster(&bindir, Install::Fresh).await?;
    let collector = Collector::start(&cluster, cluster.port()).await?;
    let stuck = cluster.connect(DB).await?;
    hold_the_queue(&stuck).await?;
    let usage = fill_notification_queue(&cluster.connect(DB).await?).await?;
    let sender = connect(&cluster, durable).await?;
    let (mut sent, mut refused) = (Vec::new(), 0);
    for uid in 1..=50 {
        match sender.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await {
            Ok(_) => sent.push(uid),
            Err(e) if e.as_db_error().is_some_and(|db| db.message() == QUEUE_FULL) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    let faults = format!(
        "a listening session idle in transaction; queue filled to {:.0}% (max_notify_queue_pages = 64); \
         {refused} cancel commits failed: {QUEUE_FULL}",
        usage * 100.0
    );
    let outcome = collector.finish(&cluster, "really full queue", durable, sent, faults, PLAIN).await;
    drop(stuck);
    outcome.map(Some)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cancel_is_lost_with_the_durable_log() -> Result<()> {
    let mut outcomes = Vec::new();
    for durable in [true, false] {
        outcomes.push(kills_and_a_restart(durable).await?);
        outcomes.push(cut_off(durable).await?);
        outcomes.push(half_open(durable).await?);
        outcomes.push(long_transaction(durable).await?);
        outcomes.push(through_a_transaction_pooler(durable).await?);
        outcomes.push(a_full_queue(durable).await?);
        outcomes.extend(a_really_full_queue(durable).await?);
    }
    let mut table = String::from(
        "| scenario | durable log | cancels sent | faults | lost | recovered by replay | duplicates skipped |\n\
         |---|---|---:|---|---:|---:|---:|\n",
    );
    for o in &outcomes {
        writeln!(
            table,
            "| {} | {} | {} | {} | **{}** | {} | {} |",
            o.scenario,
            if o.durable { "on" } else { "off" },
            o.sent,
            o.faults,
            o.lost,
            o.replayed,
            o.duplicates
        )?;
    }
    println!("\n{table}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-proof.md");
    std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;

    for o in outcomes.iter().filter(|o| o.durable) {
        ensure!(
            o.lost == 0,
            "{}: {} of {} cancels lost with the durable log\n{table}",
            o.scenario,
            o.lost,
            o.sent
        );
    }
    let kills = &outcomes[0];
    ensure!(kills.sent as i64 >= SENDERS * PER_SENDER, "only {} sent", kills.sent);
    ensure!(
        kills.faults.split(' ').next().and_then(|n| n.parse::<u64>().ok()) >= Some(MIN_KILLS),
        "{}",
        kills.faults
    );
    Ok(())
}
