//! End to end: what the durable log adds to the listener — working without it, strict mode, and
//! failover to a promoted standby. The fault scenarios with numbers are in `proof.rs`.

use std::collections::BTreeSet;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytebase_signal_client::send;
use bytebase_signal_client::{Event, Listener, Signal, SignalKind};
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::{terminate_backends, Cluster, Install, SUPERUSER};
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::wait;
use tokio_postgres::Client;

// What the listener recovers must not depend on the edition that logged it.
bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    strict_mode_acts_only_on_signals_the_log_confirms,
    after_failover_missed_cancels_are_replayed_from_the_promoted_standby,
    after_a_failover_that_reuses_transaction_ids_nothing_committed_on_the_new_primary_is_skipped,
    after_a_crash_restart_missed_cancels_are_replayed,
    a_cancel_sent_again_is_handed_on_again_but_a_replayed_copy_is_not,
    a_catch_up_bigger_than_the_queue_loses_nothing,
    the_same_uid_in_two_projects_is_two_cancels_and_protojson_is_confirmed,
    a_replay_that_keeps_failing_gives_the_log_up_and_notifications_go_on,
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
    let mut l = start(listener_on(&cluster, cluster.port(), quick().strict(true))).await?;
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

/// An asynchronous standby that stopped receiving before the primary went on: once promoted it
/// hands out again transaction ids the old primary used. A snapshot taken on the old primary
/// then sees the new primary's fresh transactions as committed long ago — an exact replay from
/// it would skip them. The listener notices the other server and catches up by time once.
async fn after_a_failover_that_reuses_transaction_ids_nothing_committed_on_the_new_primary_is_skipped(
    install: Install,
) -> Result<()> {
    let (mut primary, sender) = cluster_with(install).await?;
    let replication = Proxy::start(([127, 0, 0, 1], primary.port()).into()).await?;
    let standby = primary.start_standby_through(replication.port())?;
    let dsn = format!(
        "host={h},{h} port={},{} user={SUPERUSER} dbname={DB} application_name={APP}",
        primary.port(),
        standby.port(),
        h = primary.host()
    );
    let mut l = start(Listener::from_dsn(&dsn)?.with_config(quick())).await?;
    next_event(&mut l.events, replayed).await?;
    l.delivers(&sender, 1).await?;
    let on_standby = standby.connect(DB).await?;
    wait::until("the first cancel replicated", PATIENCE, || async {
        let n: i64 = on_standby.query_one("SELECT count(*) FROM bytebase_signal_log", &[]).await.ok()?.get(0);
        (n >= 1).then_some(())
    })
    .await?;

    // A transaction stays open on the primary; the standby stops receiving; the primary goes on,
    // spending transaction ids, and the listener reads its log (its cursor moves on there).
    let open = primary.connect(DB).await?;
    open.batch_execute("BEGIN; SELECT bytebase_cancel_task_run(2)").await?;
    replication.set_mode(Mode::Refuse);
    for _ in 0..50 {
        sender.batch_execute("SELECT pg_current_xact_id()").await?;
    }
    sender.batch_execute("SELECT bytebase_cancel_task_run(3)").await?;
    assert_eq!(recv(&mut l.signals).await?.uid, uid(3), "3 arrives from the old primary");
    // A heartbeat's replay after 3: the cursor is a snapshot of the old primary from here on.
    next_replay_after(&l).await?;
    let old_snapshot: String = sender.query_one("SELECT pg_current_snapshot()::text", &[]).await?.get(0);

    // Promoted, the standby commits a cancel while the listener still hears the old primary.
    standby.promote()?;
    let new_sender = standby.connect(DB).await?;
    // (A few ids first: the standby may not have seen the open transaction's id, and would hand
    // that very id out next; past it, its ids are ones the old primary had finished with.)
    for _ in 0..5 {
        new_sender.batch_execute("SELECT pg_current_xact_id()").await?;
    }
    new_sender.batch_execute("SELECT bytebase_cancel_task_run(4)").await?;
    let reused: bool = new_sender
        .query_one(
            "SELECT pg_visible_in_snapshot(xid, $1::text::pg_snapshot) FROM bytebase_signal_log WHERE uid = 4",
            &[&old_snapshot],
        )
        .await?
        .get(0);
    assert!(
        reused,
        "the scenario must reuse transaction ids: the old snapshot already sees 4's as committed"
    );
    tokio::task::spawn_blocking(move || primary.crash().map(|()| primary)).await??;
    drop(open);

    let server = loop {
        if let Event::Connected { server } = next_event(&mut l.events, connected).await? {
            break server;
        }
    };
    assert_eq!(server, format!("{}:{}", standby.host(), standby.port()), "moved to the promoted standby");
    assert_eq!(recv(&mut l.signals).await?.uid, uid(4), "the new primary's cancel, from its log");
    l.delivers(&new_sender, 5).await?;
    l.stop().await.map(drop)
}

/// A backend killed with SIGKILL makes the postmaster end every session and recover (a crash
/// restart), while its start time — the listener's idea of which server it reads — stays the
/// same. Transactions committed with `synchronous_commit = off` whose WAL was not written yet are
/// gone, and their transaction ids are handed out again: the listener's last snapshot sees the
/// new transactions under those ids as committed long ago, so an exact replay alone would skip
/// their cancels. The catch-up after a reconnect also reads by time, and finds them.
async fn after_a_crash_restart_missed_cancels_are_replayed(install: Install) -> Result<()> {
    // Nothing writes the WAL of asynchronous commits before the crash.
    let cluster = Cluster::builder()
        .settings(&[("wal_writer_delay", "10s"), ("autovacuum", "off"), ("checkpoint_timeout", "1h")])
        .start()?;
    cluster.create_database_with(DB, install).await?;
    let sender = cluster.connect(DB).await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    // No probe between the asynchronous commits and the crash: a probe's NOTIFY commits
    // synchronously, which would flush their WAL and keep their ids from coming again.
    let config = quick().probe_interval(Duration::from_secs(3600));
    let mut l = start(listener_on(&cluster, proxy.port(), config)).await?;
    next_event(&mut l.events, replayed).await?;
    l.delivers(&sender, 1).await?;
    let started: String = sender.query_one("SELECT pg_postmaster_start_time()::text", &[]).await?.get(0);

    // Transaction ids spent by commits the crash will lose; the listener's cursor moves past them.
    sender.batch_execute("SET synchronous_commit = off").await?;
    for _ in 0..50 {
        sender.batch_execute("SELECT pg_current_xact_id()").await?;
    }
    let lost: i64 = sender.query_one("SELECT pg_current_xact_id()::text::bigint", &[]).await?.get(0);
    next_replay_after(&l).await?;
    let old_snapshot: String = sender.query_one("SELECT pg_current_snapshot()::text", &[]).await?.get(0);
    proxy.set_mode(Mode::Refuse);
    next_event(&mut l.events, disconnected).await?;

    let pid: i32 = sender.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    // Ready once more than before: a connection made before the postmaster noticed the kill
    // would be ended by the restart it is about to do.
    const READY: &str = "database system is ready to accept connections";
    let ready_before = cluster.log().matches(READY).count();
    let killed = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status()?;
    anyhow::ensure!(killed.success(), "kill -KILL {pid} failed");
    wait::until("the server back from crash recovery", PATIENCE, || async {
        (cluster.log().matches(READY).count() > ready_before).then_some(())
    })
    .await?;
    let sender = wait::until("a connection after the crash restart", PATIENCE, || async {
        let client = cluster.connect(DB).await.ok()?;
        client.query_one("SELECT 1", &[]).await.ok().map(|_| client)
    })
    .await?;
    let after: String = sender.query_one("SELECT pg_postmaster_start_time()::text", &[]).await?.get(0);
    assert_eq!(after, started, "the scenario needs a crash restart, which keeps the start time");
    let next: i64 = sender.query_one("SELECT pg_current_xact_id()::text::bigint", &[]).await?.get(0);
    assert!(next < lost, "the scenario needs transaction ids handed out again: {next} after {lost}");

    // Cancels under reused ids, then enough transactions that the ids are past the cursor's again.
    send_range(&sender, 2..=4).await?;
    let reused: bool = sender
        .query_one(
            "SELECT pg_visible_in_snapshot(xid, $1::text::pg_snapshot) FROM bytebase_signal_log WHERE uid = 2",
            &[&old_snapshot],
        )
        .await?
        .get(0);
    assert!(
        reused,
        "the scenario must reuse transaction ids: the old snapshot already sees 2's as committed"
    );
    for _ in 0..60 {
        sender.batch_execute("SELECT pg_current_xact_id()").await?;
    }

    proxy.set_mode(Mode::Forward);
    assert_eq!(receive_distinct(&mut l, 3).await?, BTreeSet::from([2, 3, 4]));
    l.delivers(&sender, 5).await?;
    l.stop().await.map(drop)
}

/// Waits until the listener has completed a replay of the log that started after now (its next
/// heartbeat's): two completions from now, the second one started after now.
async fn next_replay_after(l: &Running) -> Result<()> {
    let before = l.handle.status().replays;
    wait::until("a heartbeat's replay", PATIENCE, || async {
        (l.handle.status().replays >= before + 2).then_some(())
    })
    .await
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
    let config = quick().queue_capacity(8).replay_grace(grace);
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
    let mut l = start(listener_on(&cluster, proxy.port(), quick().strict(true))).await?;
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

/// Both replay functions raise `insufficient_privilege` from inside, which detection (it checks
/// that the functions exist and may be executed) cannot see: the listener looks once more, then
/// gives the log up until its next look instead of failing every heartbeat, and notifications go
/// on arriving.
async fn a_replay_that_keeps_failing_gives_the_log_up_and_notifications_go_on(
    install: Install,
) -> Result<()> {
    let (cluster, sender) = cluster_with(install).await?;
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;
    next_event(&mut l.events, replayed).await?;
    assert_eq!(l.handle.status().replay_available, Some(true));

    let columns = "TABLE (id bigint, type text, uid bigint, created_at timestamptz, project text, \
                   approval_input_version bigint)";
    for signature in
        ["bytebase_signal_replay(since timestamptz)", "bytebase_signal_replay_after(after pg_snapshot)"]
    {
        sender
            .batch_execute(&format!(
                "CREATE OR REPLACE FUNCTION {signature} RETURNS {columns} LANGUAGE plpgsql AS $broken$
                 BEGIN RAISE EXCEPTION 'broken for the test' USING ERRCODE = 'insufficient_privilege'; END
                 $broken$"
            ))
            .await?;
    }
    wait::until("the log given up", PATIENCE, || async {
        (l.handle.status().replay_available == Some(false)).then_some(())
    })
    .await?;
    send_range(&sender, 50..=50).await?;
    assert_eq!(recv(&mut l.signals).await?.uid, uid(50));
    let status = l.handle.status();
    assert!(status.connected && status.reconnects == 0, "{status:?}");
    l.stop().await.map(drop)
}
