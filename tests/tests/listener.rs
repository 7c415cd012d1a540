//! End to end: the client crate's `Listener`, `Registry` and sender against real clusters,
//! including the faults it exists to survive.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::send::{self, SendMode};
use bytebase_signal_client::{Event, Listener, ListenerConfig, Registry, RunUid, Signal, SignalKind};
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::{terminate_backends, SUPERUSER};
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::raw_listener::RawListener;
use bytebase_signal_tests::wait;
use tokio_util::sync::CancellationToken;

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
        let killed = terminate_backends(&sender, APP).await?;
        // A backend terminated in the previous round may still be on its way out.
        ensure!(killed >= 1, "no listener backend to terminate");
        next_event(&mut l.events, disconnected).await?;
        next_event(&mut l.events, connected).await?;
        l.delivers(&sender, round).await?;
    }
    // At least: under load a heartbeat may also time out and cost a reconnect.
    assert!(l.handle.status().reconnects >= 3, "{:?}", l.handle.status());
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
    let bound = config.get_ping_interval() + config.get_ping_timeout();
    let mut l = start(listener_on(&cluster, proxy.port(), config)).await?;

    proxy.set_mode(Mode::Freeze);
    let frozen_at = tokio::time::Instant::now();
    let lost = next_event(&mut l.events, disconnected).await?;
    let detected_after = frozen_at.elapsed();
    // The liveness bound, with slack for a loaded two-core machine; without the ping this would
    // hang until the kernel gave up on the socket (minutes to hours).
    assert!(detected_after < bound * 10, "half-open connection detected after {detected_after:?}: {lost:?}");

    // Recovery of what was sent meanwhile is tested in recovery.rs; here, that it reconnects.
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
    let config = quick().queue_capacity(8);
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
    assert!(l.handle.status().overflowed >= 92, "{:?}", l.handle.status());
    // The queued ones are the first eight, in order; the 92 dropped ones are not lost: the next
    // heartbeat replays them from the durable log as the handler catches up.
    for n in 1..=8 {
        assert_eq!(recv(&mut l.signals).await?.uid, uid(n));
    }
    let mut rest = BTreeSet::new();
    while rest.len() < 92 {
        let signal = recv(&mut l.signals).await?;
        assert!(rest.insert(signal.uid.get()), "{signal:?} handed on twice");
    }
    assert_eq!(rest, (9..=100).collect(), "every dropped signal came back once");
    // The counter moves just after the hand-off, so poll for it.
    wait::until("92 counted as replayed", PATIENCE, || async {
        (l.handle.status().replayed == 92).then_some(())
    })
    .await?;
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
