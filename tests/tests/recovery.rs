//! End to end: what the durable log adds to the listener — working without it, strict mode, and
//! failover to a promoted standby. The fault scenarios with numbers are in `proof.rs`.

use std::collections::BTreeSet;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytebase_signal_client::send;
use bytebase_signal_client::{Event, Listener, ListenerConfig, Signal, SignalKind};
use bytebase_signal_tests::cluster::{terminate_backends, Cluster, Install, SUPERUSER};
use bytebase_signal_tests::listening::*;
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::wait;
use tokio_postgres::Client;

// What the listener recovers must not depend on the edition that logged it.
bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    strict_mode_acts_only_on_signals_the_log_confirms,
    after_failover_missed_cancels_are_replayed_from_the_promoted_standby,
    a_cancel_sent_again_is_handed_on_again_but_a_replayed_copy_is_not,
    a_catch_up_bigger_than_the_queue_loses_nothing,
    the_same_uid_in_two_projects_is_two_cancels_and_protojson_is_confirmed,
);

/// Receives signals until `n` distinct task-run uids arrived; fails on a duplicate.
async fn receive_distinct(l: &mut Running, n: usize) -> Result<BTreeSet<i64>> {
    let mut got = BTreeSet::new();
    while got.len() < n {
        let signal = recv(&mut l.signals).await?;
        if !got.insert(signal.uid.get()) {
            bail!("{signal:?} handed on twice");
        }
    }
    Ok(got)
}

async fn send_range(sender: &Client, uids: std::ops::RangeInclusive<i64>) -> Result<()> {
    for n in uids {
        send::cancel_task_run(sender, uid(n)).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_log_the_listener_still_listens() -> Result<()> {
    // A database with no extension at all: senders use plain pg_notify.
    let cluster = Cluster::start()?;
    cluster.connect("postgres").await?.batch_execute(&format!("CREATE DATABASE {DB}")).await?;
    let sender = cluster.connect(DB).await?;
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;
    wait::until("replay found unavailable", PATIENCE, || async {
        (l.handle.status().replay_available == Some(false)).then_some(())
    })
    .await?;
    send::cancel(&sender, SignalKind::TaskRun, &[uid(3)], send::SendMode::Raw).await?;
    assert_eq!(recv(&mut l.signals).await?, Signal::new(SignalKind::TaskRun, uid(3)));
    // After a reconnect too (the warning is said once; the CLI test checks that).
    terminate_backends(&sender, APP).await?;
    next_event(&mut l.events, connected).await?;
    send::cancel(&sender, SignalKind::TaskRun, &[uid(4)], send::SendMode::Raw).await?;
    assert_eq!(recv(&mut l.signals).await?, Signal::new(SignalKind::TaskRun, uid(4)));
    assert_eq!(l.handle.status().replayed, 0);
    l.stop().await.map(drop)
}

async fn strict_mode_acts_only_on_signals_the_log_confirms(install: Install) -> Result<()> {
    let (cluster, sender) = cluster_with(install).await?;
    let mut l =
        start(listener_on(&cluster, cluster.port(), ListenerConfig { strict: true, ..quick() })).await?;
    next_event(&mut l.events, replayed).await?;

    // Forged: anyone who can connect can pg_notify; and a sender that opted out of the log.
    sender
        .batch_execute(r#"SELECT pg_notify('bytebase_signal', '{"type":"cancel_task_run","uid":666}')"#)
        .await?;
    sender.batch_execute("SET bytebase_signal.durable = off; SELECT bytebase_cancel_task_run(667)").await?;
    sender.batch_execute("RESET bytebase_signal.durable").await?;
    send_range(&sender, 42..=43).await?;

    assert_eq!(recv(&mut l.signals).await?.uid, uid(42));
    assert_eq!(recv(&mut l.signals).await?.uid, uid(43));
    wait::until("2 unconfirmed", PATIENCE, || async { (l.handle.status().unconfirmed == 2).then_some(()) })
        .await?;
    let status = l.handle.status();
    assert_eq!((status.received, status.dispatched), (4, 2), "{status:?}");
    l.stop().await.map(drop)
}

/// A primary and its streaming standby; the listener is given both hosts. The primary's stream
/// freezes (so cancels committed there are not delivered), then the standby is promoted and the
/// old primary dies: the listener must find the new primary by itself and replay what it missed.
async fn after_failover_missed_cancels_are_replayed_from_the_promoted_standby(
    install: Install,
) -> Result<()> {
    let (mut primary, sender) = cluster_with(install).await?;
    let standby = primary.start_standby()?;
    let proxy = Proxy::start(([127, 0, 0, 1], primary.port()).into()).await?;
    let dsn = format!(
        "host={h},{h} port={},{} user={SUPERUSER} dbname={DB} application_name={APP}",
        proxy.port(),
        standby.port(),
        h = primary.host()
    );
    let mut l = start(Listener::from_dsn(&dsn)?.with_config(quick())).await?;
    assert_eq!(l.server, format!("{}:{}", primary.host(), primary.port()), "the primary first");
    next_event(&mut l.events, replayed).await?;

    proxy.set_mode(Mode::Freeze);
    send_range(&sender, 1..=20).await?;
    let on_standby = standby.connect(DB).await?;
    wait::until("the 20 replicated to the standby", PATIENCE, || async {
        let n: i64 = on_standby.query_one("SELECT count(*) FROM bytebase_signal_log", &[]).await.ok()?.get(0);
        (n == 20).then_some(())
    })
    .await?;

    standby.promote()?;
    tokio::task::spawn_blocking(move || primary.crash().map(|()| primary)).await??;
    proxy.set_mode(Mode::Refuse);
    let server = loop {
        if let Event::Connected { server } = next_event(&mut l.events, connected).await? {
            break server;
        }
    };
    assert_eq!(server, format!("{}:{}", standby.host(), standby.port()), "moved to the promoted standby");
    assert_eq!(receive_distinct(&mut l, 20).await?, (1..=20).collect());

    let new_sender = standby.connect(DB).await?;
    send_range(&new_sender, 21..=25).await?;
    assert_eq!(receive_distinct(&mut l, 5).await?, (21..=25).collect());
    assert!(l.handle.status().replayed >= 20, "{:?}", l.handle.status());
    l.stop().await.map(drop)
}

async fn a_cancel_sent_again_is_handed_on_again_but_a_replayed_copy_is_not(install: Install) -> Result<()> {
    let (cluster, sender) = cluster_with(install).await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let mut l = start(listener_on(&cluster, proxy.port(), quick())).await?;
    next_event(&mut l.events, replayed).await?;

    // Sent twice, in two transactions: both reach the handler (Bytebase may cancel again).
    send_range(&sender, 5..=5).await?;
    assert_eq!(recv(&mut l.signals).await?.uid, uid(5));
    send_range(&sender, 5..=5).await?;
    assert_eq!(recv(&mut l.signals).await?.uid, uid(5));

    // Missed while cut off: recovered once, however many replays return it.
    proxy.set_mode(Mode::Refuse);
    next_event(&mut l.events, disconnected).await?;
    send_range(&sender, 6..=6).await?;
    proxy.set_mode(Mode::Forward);
    next_event(&mut l.events, replayed).await?;
    assert_eq!(recv(&mut l.signals).await?.uid, uid(6));
    // Another reconnect replays 5, 5 and 6 again: all skipped.
    terminate_backends(&sender, APP).await?;
    next_event(&mut l.events, disconnected).await?;
    next_event(&mut l.events, replayed).await?;
    send_range(&sender, 7..=7).await?;
    assert_eq!(recv(&mut l.signals).await?.uid, uid(7), "a replayed copy was handed on again");
    assert_eq!(l.handle.status().replayed, 1);
    l.stop().await.map(drop)
}

/// A catch-up that returns more than the hand-off queue holds must not lose the rest, even when
/// the outage and the handler's stall both last longer than the grace period: they come back
/// with the heartbeats' resynchronising replays, which start from the mark before the outage.
async fn a_catch_up_bigger_than_the_queue_loses_nothing(install: Install) -> Result<()> {
    let (cluster, sender) = cluster_with(install).await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let grace = Duration::from_millis(500);
    let config = ListenerConfig { queue_capacity: 8, replay_grace: grace, ..quick() };
    let mut l = start(listener_on(&cluster, proxy.port(), config)).await?;
    next_event(&mut l.events, replayed).await?;

    proxy.set_mode(Mode::Refuse);
    next_event(&mut l.events, disconnected).await?;
    let uids: Vec<_> = (1..=100).map(uid).collect();
    send::cancel_task_runs(&sender, &uids).await?;
    // The outage outlasts the grace period (the fault's duration, not a synchronisation).
    tokio::time::sleep(grace * 4).await;
    proxy.set_mode(Mode::Forward);
    // Nobody reads until the catch-up is over: 8 fit, 92 overflow.
    next_event(&mut l.events, replayed).await?;
    // Let several heartbeats pass (each moves the known-alive mark) before reading.
    let marks = l.handle.status().reconnects;
    wait::until("a few heartbeats", PATIENCE, || async {
        (l.handle.status().overflowed >= 92 * 3).then_some(())
    })
    .await?;
    assert_eq!(l.handle.status().reconnects, marks, "still on the same connection");
    assert_eq!(receive_distinct(&mut l, 100).await?, (1..=100).collect());
    l.stop().await.map(drop)
}

/// Project-scoped cancels through the log: a protojson notification (which leaves out a version
/// of 0) is confirmed by its logged row in strict mode and not handed on again when that row is
/// replayed; the same uid cancelled in two projects while the listener is cut off comes back as
/// two cancels.
async fn the_same_uid_in_two_projects_is_two_cancels_and_protojson_is_confirmed(
    install: Install,
) -> Result<()> {
    let (cluster, sender) = cluster_with(install).await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let mut l =
        start(listener_on(&cluster, proxy.port(), ListenerConfig { strict: true, ..quick() })).await?;
    next_event(&mut l.events, replayed).await?;

    sender
        .batch_execute(
            "SET bytebase_signal.wire_format = 'protojson'; SELECT bytebase_cancel_plan_check_run(7, 'a', 0)",
        )
        .await?;
    let live = recv(&mut l.signals).await?;
    assert_eq!((live.kind, live.uid, live.project.as_deref()), (SignalKind::PlanCheckRun, uid(7), Some("a")));

    proxy.set_mode(Mode::Refuse);
    next_event(&mut l.events, disconnected).await?;
    sender
        .batch_execute("SELECT bytebase_cancel_task_run(5, 'a'); SELECT bytebase_cancel_task_run(5, 'b')")
        .await?;
    proxy.set_mode(Mode::Forward);
    next_event(&mut l.events, replayed).await?;
    let mut projects = BTreeSet::new();
    for _ in 0..2 {
        let s = recv(&mut l.signals).await?;
        assert_eq!((s.kind, s.uid), (SignalKind::TaskRun, uid(5)), "{s:?}");
        projects.insert(s.project.context("a project")?);
    }
    assert_eq!(projects, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    // Nothing else: a marker cancel sent now is the next signal (plan check 7 was not repeated).
    sender.batch_execute("SELECT bytebase_cancel_task_run(6)").await?;
    assert_eq!(recv(&mut l.signals).await?.uid, uid(6));
    let status = l.handle.status();
    assert_eq!((status.unconfirmed, status.replayed), (0, 2), "{status:?}");
    l.stop().await.map(drop)
}
