//! End to end: the client crate's `Listener`, `Registry` and sender against real clusters,
//! including the faults it exists to survive.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytebase_signal_client::send::{self, SendMode};
use bytebase_signal_client::{
    Backoff, Event, Listener, ListenerConfig, ListenerHandle, Registry, RunUid, Signal, SignalKind, Signals,
};
use bytebase_signal_tests::cluster::{Cluster, SUPERUSER};
use bytebase_signal_tests::listen::RawListener;
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::wait;
use tokio::sync::broadcast;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

const DB: &str = "app";
const APP: &str = "listener-under-test";
/// Generous: these bound waits for things that normally take milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);

fn uid(n: i64) -> RunUid {
    RunUid::new(n).expect("positive")
}

/// Fast liveness settings so fault tests finish quickly.
fn quick() -> ListenerConfig {
    ListenerConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(1),
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            ..Backoff::default()
        },
        ..ListenerConfig::default()
    }
}

async fn cluster_with_extension() -> Result<(Cluster, Client)> {
    let cluster = Cluster::start()?;
    cluster.create_database_with_extension(DB).await?;
    let sender = cluster.connect(DB).await?;
    Ok((cluster, sender))
}

fn listener_on(cluster: &Cluster, port: u16, config: ListenerConfig) -> Listener {
    let mut pg = tokio_postgres::Config::new();
    pg.host(cluster.host()).port(port).user(SUPERUSER).dbname(DB).application_name(APP);
    Listener::new(pg).with_config(config)
}

async fn next_event(events: &mut broadcast::Receiver<Event>, want: fn(&Event) -> bool) -> Result<Event> {
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

fn connected(e: &Event) -> bool {
    matches!(e, Event::Connected { .. })
}

fn disconnected(e: &Event) -> bool {
    matches!(e, Event::Disconnected { .. })
}

async fn recv(signals: &mut Signals) -> Result<Signal> {
    tokio::time::timeout(PATIENCE, signals.recv()).await?.context("listener stopped")
}

async fn stop(shutdown: &CancellationToken, handle: ListenerHandle) -> Result<()> {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle.join()).await.context("listener did not stop")
}

/// A spawned listener that has connected, and what tests watch it through.
struct Running {
    handle: ListenerHandle,
    signals: Signals,
    events: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
    /// `host:port` it connected to first.
    server: String,
}

/// Spawns `listener` and waits for its first connection.
async fn start(listener: Listener) -> Result<Running> {
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
    async fn delivers(&mut self, sender: &Client, n: i64) -> Result<()> {
        send::cancel_task_run(sender, uid(n)).await?;
        assert_eq!(recv(&mut self.signals).await?, Signal::new(SignalKind::TaskRun, uid(n)));
        Ok(())
    }

    /// Stops the listener and returns what is left of its signal stream.
    async fn stop(self) -> Result<Signals> {
        stop(&self.shutdown, self.handle).await?;
        Ok(self.signals)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_cancel_the_runs_this_replica_owns_and_count_the_rest() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let registry = Registry::new();
    let task_42 = registry.register(SignalKind::TaskRun, uid(42));
    let check_42 = registry.register(SignalKind::PlanCheckRun, uid(42));
    let shutdown = CancellationToken::new();
    let handle = listener_on(&cluster, cluster.port(), quick())
        .spawn_with_registry(registry.clone(), shutdown.clone());
    next_event(&mut handle.events(), connected).await?;

    send::cancel_task_run(&sender, uid(42)).await?;
    tokio::time::timeout(PATIENCE, task_42.cancelled()).await?;
    assert!(!check_42.is_cancelled(), "a task-run cancel hit the plan check run with the same uid");

    // Not ours: counted, harmless. Then a run registered after its cancel arrived starts cancelled.
    send::cancel_task_runs(&sender, &[uid(99), uid(100)]).await?;
    wait::until("2 unmatched", PATIENCE, || async { (handle.status().unmatched == 2).then_some(()) }).await?;
    let late = registry.register(SignalKind::TaskRun, uid(100));
    assert!(late.is_cancelled(), "register-after-signal race: tombstone missing");

    let status = handle.status();
    assert!(status.connected);
    assert_eq!((status.received, status.dispatched, status.unmatched, status.malformed), (3, 3, 2, 0));
    stop(&shutdown, handle).await
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_channel_is_counted_and_the_next_signal_still_arrives() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;

    let long = format!(r#"{{"type":"cancel_task_run","uid":-1,"pad":"{}"}}"#, "x".repeat(7850));
    let garbage: Vec<String> = [
        "not json",
        "",
        "null",
        "[]",
        "\"cancel_task_run\"",
        "{}",
        r#"{"type":"cancel_task_run"}"#,
        r#"{"uid":1}"#,
        r#"{"type":"cancel_task_run","uid":0}"#,
        r#"{"type":"cancel_task_run","uid":-5}"#,
        r#"{"type":"cancel_task_run","uid":1.5}"#,
        r#"{"type":"cancel_task_run","uid":9223372036854775808}"#,
        r#"{"type":"cancel_task_run","uid":"abc"}"#,
        r#"{"type":"cancel_task_run","uid":true}"#,
        r#"{"type":"cancel_everything","uid":1}"#,
        r#"{"type":7,"uid":1}"#,
        r#"{"type":"cancel_task_run","uid":1"#,
    ]
    .into_iter()
    .map(String::from)
    .chain([long])
    .collect();
    for payload in &garbage {
        sender.execute("SELECT pg_notify('bytebase_signal', $1)", &[payload]).await?;
    }
    send::cancel_plan_check_run(&sender, uid(7)).await?;
    // The upstream Go replicas' protobuf-JSON is understood too.
    sender
        .batch_execute(r#"SELECT pg_notify('bytebase_signal', '{"type":"CANCEL_TASK_RUN","uid":"123","project":"proj-a"}')"#)
        .await?;

    assert_eq!(recv(&mut l.signals).await?, Signal::new(SignalKind::PlanCheckRun, uid(7)));
    assert_eq!(
        recv(&mut l.signals).await?,
        Signal::new(SignalKind::TaskRun, uid(123)).with_project("proj-a")
    );
    let status = l.handle.status();
    assert_eq!(status.malformed, garbage.len() as u64);
    assert_eq!(status.received, garbage.len() as u64 + 2);
    assert!(status.connected, "garbage must not cost the connection");
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_backend_is_replaced_and_later_signals_arrive() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;

    for round in 1..=3_i64 {
        let killed: i64 = sender
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                &[&APP],
            )
            .await?
            .get(0);
        ensure!(killed == 1, "expected one listener backend, terminated {killed}");
        next_event(&mut l.events, disconnected).await?;
        next_event(&mut l.events, connected).await?;
        l.delivers(&sender, round).await?;
    }
    assert_eq!(l.handle.status().reconnects, 3);
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_is_survived() -> Result<()> {
    let (mut cluster, _) = cluster_with_extension().await?;
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;

    let cluster = tokio::task::spawn_blocking(move || cluster.restart().map(|()| cluster)).await??;
    next_event(&mut l.events, connected).await?;
    let sender = cluster.connect(DB).await?;
    l.delivers(&sender, 5).await?;
    assert!(l.handle.status().reconnects >= 1);
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_stream_is_detected_and_replaced() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let config = quick();
    let bound = config.ping_interval + config.ping_timeout;
    let mut l = start(listener_on(&cluster, proxy.port(), config)).await?;

    proxy.set_mode(Mode::Freeze);
    let frozen_at = tokio::time::Instant::now();
    let lost = next_event(&mut l.events, disconnected).await?;
    let detected_after = frozen_at.elapsed();
    // The liveness bound, with slack for a loaded two-core machine; without the ping this would
    // hang until the kernel gave up on the socket (minutes to hours).
    assert!(detected_after < bound * 10, "half-open connection detected after {detected_after:?}: {lost:?}");

    // Cancels committed while the listener is cut off are not delivered by NOTIFY alone (the
    // durable log fixes that); cancels after it is back arrive.
    proxy.set_mode(Mode::Forward);
    next_event(&mut l.events, connected).await?;
    l.delivers(&sender, 11).await?;
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_retried_until_it_is_back() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let mut l = start(listener_on(&cluster, proxy.port(), quick())).await?;

    proxy.set_mode(Mode::Refuse);
    next_event(&mut l.events, disconnected).await?;
    // Several failed attempts in a row, with backoff, and no giving up.
    for _ in 0..3 {
        next_event(&mut l.events, |e| matches!(e, Event::ConnectFailed { .. })).await?;
    }
    proxy.set_mode(Mode::Forward);
    next_event(&mut l.events, connected).await?;
    l.delivers(&sender, 12).await?;
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_handler_does_not_stop_the_socket_being_read() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let config = ListenerConfig { queue_capacity: 8, ..quick() };
    let mut l = start(listener_on(&cluster, cluster.port(), config)).await?;

    // Nobody reads `signals` while 100 arrive: the reader keeps draining the socket.
    let uids: Vec<RunUid> = (1..=100).map(uid).collect();
    send::cancel_task_runs(&sender, &uids).await?;
    wait::until("all 100 read off the socket", PATIENCE, || async {
        (l.handle.status().received == 100).then_some(())
    })
    .await?;
    let usage: f64 = sender.query_one("SELECT pg_notification_queue_usage()", &[]).await?.get(0);
    assert_eq!(usage, 0.0, "the server's notification queue is backing up");
    let status = l.handle.status();
    assert_eq!(status.overflowed, 92, "{status:?}");
    // The queued ones are the first eight, in order.
    for n in 1..=8 {
        assert_eq!(recv(&mut l.signals).await?.uid, uid(n));
    }
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_is_prompt_and_leaves_no_connection_behind() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let l = start(listener_on(&cluster, cluster.port(), ListenerConfig::default())).await?;
    let mut signals = l.stop().await?;
    assert!(signals.recv().await.is_none(), "signal stream must end at shutdown");
    wait::until("listener backend gone", PATIENCE, || async {
        let n: i64 = sender
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&APP])
            .await
            .ok()?
            .get(0);
        (n == 0).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_while_the_server_is_down_is_prompt_too() -> Result<()> {
    let (mut cluster, _) = cluster_with_extension().await?;
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;
    tokio::task::spawn_blocking(move || cluster.stop().map(|()| cluster)).await??;
    next_event(&mut l.events, |e| matches!(e, Event::ConnectFailed { .. })).await?;
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sender_is_transactional_and_raw_mode_sends_the_same_bytes() -> Result<()> {
    let (cluster, mut sender) = cluster_with_extension().await?;
    let mut raw = RawListener::connect(&cluster.config(DB), "bytebase_signal").await?;
    let probe = cluster.connect(DB).await?;

    let tx = sender.transaction().await?;
    send::cancel_task_run(&tx, uid(1)).await?;
    tx.rollback().await?;
    let tx = sender.transaction().await?;
    send::cancel_plan_check_run(&tx, uid(2)).await?;
    tx.commit().await?;
    let via_extension = raw.drain(&probe).await?;
    assert_eq!(via_extension, [r#"{"type":"cancel_plan_check_run","uid":2}"#]);

    for mode in [SendMode::Extension, SendMode::Raw] {
        let n = send::cancel(&sender, SignalKind::TaskRun, &[uid(3), uid(1), uid(3)], mode).await?;
        assert_eq!(n, 2, "{mode:?}");
    }
    let both = raw.drain(&probe).await?;
    assert_eq!(both[..2], both[2..], "raw mode differs from the extension: {both:?}");
    assert_eq!(both[0], r#"{"type":"cancel_task_run","uid":3}"#);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hot_standby_listed_first_is_skipped_for_the_primary() -> Result<()> {
    let (primary, sender) = cluster_with_extension().await?;
    let standby = primary.start_standby()?;
    // The standby really cannot LISTEN: that is why the listener must not stay there.
    let on_standby = standby.connect(DB).await?;
    let err = on_standby.batch_execute("LISTEN bytebase_signal").await.expect_err("LISTEN on a standby");
    let db_error = err.as_db_error().context("a server error")?;
    assert!(db_error.message().contains("during recovery"), "{}", db_error.message());

    let dsn = format!(
        "host={h},{h} port={},{} user={SUPERUSER} dbname={DB} application_name={APP}",
        standby.port(),
        primary.port(),
        h = primary.host()
    );
    let mut l = start(Listener::from_dsn(&dsn)?.with_config(quick())).await?;
    assert_eq!(l.server, format!("{}:{}", primary.host(), primary.port()));
    l.delivers(&sender, 21).await?;
    l.stop().await.map(drop)
}
