//! A nearly full notification queue must not fail the cancel's transaction: one listening session
//! that stays in a transaction holds the server-wide queue for every listener, and at 100 % every
//! NOTIFYing commit fails. At or above `bytebase_signal.notify_queue_limit` a logged signal is
//! sent without NOTIFY, with a WARNING that names the usage and the likely holder; the caller
//! commits, and the listeners get the cancel from the log at their next heartbeat.

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::{send, Signal, SignalKind};
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::{default_bindir, major_of, Install};
use bytebase_signal_tests::installs::pg_bindir;
use bytebase_signal_tests::raw_listener::RawListener;
use bytebase_signal_tests::wait;

bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    at_the_queue_limit_the_cancel_commits_warns_and_arrives_from_the_log,
);

async fn at_the_queue_limit_the_cancel_commits_warns_and_arrives_from_the_log(
    install: Install,
) -> Result<()> {
    let (cluster, sender) = cluster_with(install).await?;
    // A listening session elsewhere that stopped reading. Its transaction opens before the
    // listener under test starts, so that it is the oldest open one even while a heartbeat's
    // replay is running (the listener's replays are transactions too).
    let stuck = cluster.connect(DB).await?;
    hold_the_queue(&stuck).await?;
    let stuck_pid: i32 = stuck.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;
    next_event(&mut l.events, replayed).await?;
    let mut raw = RawListener::connect(&cluster.config(DB), "bytebase_signal").await?;

    // The queue is empty, so a limit of 0 is reached by any send. psql shows the warning.
    let out = cluster
        .psql(DB)
        .args([
            "-c",
            "SET bytebase_signal.notify_queue_limit = 0",
            "-c",
            "BEGIN",
            "-c",
            "SELECT bytebase_cancel_task_run(42)",
            "-c",
            "COMMIT",
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "the cancel transaction failed: {stderr}");
    for part in [
        "WARNING:  bytebase_signal: the notification queue is 0.0% full, at or above bytebase_signal.notify_queue_limit (0.0%): the signal was logged without NOTIFY; listeners read it from the log at their next heartbeat",
        &format!("DETAIL:  The oldest open transaction you may see, which may be the listening session holding the queue: pid {stuck_pid} "),
        "idle in transaction since",
        "HINT:  A session that ran LISTEN and stays in a transaction keeps every notification queued for all listeners",
    ] {
        assert!(stderr.contains(part), "the warning lacks {part:?}:\n{stderr}");
    }

    // No NOTIFY went out (a bare listener sees nothing), the log has it, the listener delivers it.
    assert_eq!(raw.drain(&sender).await?, Vec::<String>::new());
    let logged: i64 =
        sender.query_one("SELECT count(*) FROM bytebase_signal_log WHERE uid = 42", &[]).await?.get(0);
    assert_eq!(logged, 1);
    assert_eq!(recv(&mut l.signals).await?, Signal::new(SignalKind::TaskRun, uid(42)));
    // (Counted just after the hand-off.)
    wait::until("counted as recovered from the log", PATIENCE, || async {
        (l.handle.status().replayed == 1).then_some(())
    })
    .await?;

    // A sender that may not see the superuser's sessions is not shown them.
    sender
        .batch_execute(
            "CREATE ROLE bytebase_app; GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint) TO bytebase_app",
        )
        .await?;
    let out = cluster
        .psql(DB)
        .args([
            "-c",
            "SET ROLE bytebase_app",
            "-c",
            "SET bytebase_signal.notify_queue_limit = 0",
            "-c",
            "SELECT bytebase_cancel_task_run(44)",
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "the cancel failed: {stderr}");
    assert!(stderr.contains("DETAIL:  No other open transaction is visible to you."), "{stderr}");
    assert!(!stderr.contains(&stuck_pid.to_string()), "{stderr}");
    assert_eq!(recv(&mut l.signals).await?, Signal::new(SignalKind::TaskRun, uid(44)));

    // protojson senders are upstream Go replicas' kind, which never read the log: their NOTIFY
    // goes even at the limit, without a warning.
    let out = cluster
        .psql(DB)
        .args([
            "-c",
            "SET bytebase_signal.notify_queue_limit = 0",
            "-c",
            "SET bytebase_signal.wire_format = 'protojson'",
            "-c",
            "SELECT bytebase_cancel_task_run(45)",
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "the cancel failed: {stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    assert_eq!(raw.drain(&sender).await?, [r#"{"type":"CANCEL_TASK_RUN","uid":"45"}"#]);
    assert_eq!(recv(&mut l.signals).await?, Signal::new(SignalKind::TaskRun, uid(45)));

    // Below the limit (the default 0.5) the NOTIFY goes as before.
    l.delivers(&sender, 43).await?;
    drop(stuck);
    l.stop().await.map(drop)
}

/// A database still at 0.3.0 under this release's library keeps its NOTIFY at the limit: its
/// listeners (of 0.3.0 perhaps) read the log only after a reconnect.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_3_0_database_keeps_its_notify_at_the_limit() -> Result<()> {
    let cluster = bytebase_signal_tests::cluster::Cluster::start()?;
    let admin = cluster.connect("postgres").await?;
    admin.batch_execute(&format!("CREATE DATABASE {DB}")).await?;
    let db = cluster.connect(DB).await?;
    db.batch_execute("CREATE EXTENSION bytebase_signal VERSION '0.3.0'").await?;
    let mut raw = RawListener::connect(&cluster.config(DB), "bytebase_signal").await?;
    let out = cluster
        .psql(DB)
        .args([
            "-c",
            "SET bytebase_signal.notify_queue_limit = 0",
            "-c",
            "SELECT bytebase_cancel_task_run(42)",
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "the cancel failed: {stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    assert_eq!(raw.drain(&db).await?, [r#"{"type":"cancel_task_run","uid":42}"#]);
    Ok(())
}

/// A really full queue, on PostgreSQL 17 and later (`max_notify_queue_pages = 64`): a listening
/// session that stopped reading inside a transaction holds the queue, and NOTIFYs of 7.9 kB fill
/// it until PostgreSQL refuses one. Then, with the log on, cancel transactions commit (the send
/// sees the queue at the limit and logs without NOTIFY) and the listener gets every one from the
/// log; with it off (`bytebase_signal.durable = off`), the commit fails as PostgreSQL fails it.
/// The pure-SQL edition runs on the server under test if it is 17 or later, else on the pinned
/// 17; the extension only where the server under test is 17 or later (it is installed there).
#[tokio::test(flavor = "multi_thread")]
async fn a_really_full_queue_on_17_and_later() -> Result<()> {
    let own = default_bindir()?;
    let own_major = major_of(&own)?;
    if own_major >= QUEUE_PAGES_MAJOR {
        really_full_queue(&own, Install::Fresh).await?;
        really_full_queue(&own, Install::PureSql).await
    } else {
        really_full_queue(&pg_bindir(QUEUE_PAGES_MAJOR)?, Install::PureSql).await
    }
}

async fn really_full_queue(bindir: &std::path::Path, install: Install) -> Result<()> {
    let cluster = small_queue_cluster(bindir, install).await?;
    let sender = cluster.connect(DB).await?;
    let stuck = cluster.connect(DB).await?;
    hold_the_queue(&stuck).await?;
    let mut l = start(listener_on(&cluster, cluster.port(), quick())).await?;
    next_event(&mut l.events, replayed).await?;

    let usage = fill_notification_queue(&cluster.connect(DB).await?).await?;
    assert!(usage > 0.9, "the queue is {usage} full");

    // The log on: every cancel commits and arrives from the log.
    for n in 1..=20 {
        send::cancel_task_run(&sender, uid(n))
            .await
            .with_context(|| format!("cancel {n} at a full queue"))?;
    }
    let mut got = Vec::new();
    for _ in 1..=20 {
        got.push(recv(&mut l.signals).await?.uid.get());
    }
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<i64>>(), "{install:?}");

    // The log off: the NOTIFY is attempted, and the commit fails as PostgreSQL fails it.
    let e = sender
        .batch_execute("SET bytebase_signal.durable = off; SELECT bytebase_cancel_task_run(99)")
        .await
        .expect_err("a NOTIFY into a full queue commits");
    let db = e.as_db_error().context("not a server error")?;
    assert_eq!(db.message(), QUEUE_FULL, "{install:?}: {db:?}");
    drop(stuck);
    l.stop().await.map(drop)
}
