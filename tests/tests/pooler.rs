//! The listener behind a real PgBouncer. In `pool_mode = session` (the README's recipe for a
//! pooler in front of the listener) it works as it does on a direct connection: it receives, and
//! it survives losing its server connection. In `pool_mode = transaction` notifications never
//! reach it: it says so, once, and delivers every cancel from the log at its heartbeats.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::{send, Listener};
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::terminate_backends;
use bytebase_signal_tests::ours::cli_binary;
use bytebase_signal_tests::pgbouncer::{Neighbours, PgBouncer, PoolMode};
use bytebase_signal_tests::wait;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStderr, Command};

#[tokio::test(flavor = "multi_thread")]
async fn through_pgbouncer_in_session_mode_the_listener_receives_and_reconnects() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let bouncer = PgBouncer::start(&cluster, DB, PoolMode::Session, 4)?;
    let dsn =
        format!("host=127.0.0.1 port={} user=postgres dbname={DB} application_name={APP}", bouncer.port());
    let mut l = start(Listener::from_dsn(&dsn)?.with_config(quick())).await?;
    l.delivers(&sender, 1).await?;

    // The server connection behind the pool is lost: PgBouncer drops the client, which reconnects.
    ensure!(terminate_backends(&sender, APP).await? >= 1, "no listener backend behind PgBouncer");
    next_event(&mut l.events, disconnected).await?;
    next_event(&mut l.events, connected).await?;
    l.delivers(&sender, 2).await?;
    assert_eq!(l.handle.status().replay_available, Some(true), "the log is read through the pool too");
    drop(bouncer);
    l.stop().await.map(drop)
}

/// Behind PgBouncer in `pool_mode = transaction` (shared with other clients) LISTEN succeeds and
/// every query works, but notifications go to whichever server connection ran LISTEN. The CLI
/// says so once, and prints every cancel anyway, from the log, within a heartbeat or two.
#[tokio::test(flavor = "multi_thread")]
async fn through_pgbouncer_in_transaction_mode_cancels_arrive_from_the_log_and_the_deafness_is_said_once(
) -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let bouncer = PgBouncer::start(&cluster, DB, PoolMode::Transaction, 4)?;
    let neighbours = Neighbours::start(&cluster, DB, bouncer.port(), 3);
    let dsn = format!("host=127.0.0.1 port={} user=postgres dbname={DB}", bouncer.port());
    let mut cli = Command::new(cli_binary()?)
        .args(["listen", "--dsn", &dsn, "--ping-interval", "1"])
        .env("RUST_LOG", "info,bytebase_signal_client::listener::session=debug")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = BufReader::new(cli.stdout.take().context("stdout")?).lines();
    let stderr = BufReader::new(cli.stderr.take().context("stderr")?).lines();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    tokio::spawn(collect(stderr, Arc::clone(&log)));
    let said = |needle: &'static str| {
        let log = Arc::clone(&log);
        move || {
            let log = Arc::clone(&log);
            async move { (log.lock().unwrap().iter().filter(|l| l.contains(needle)).count() > 0).then_some(()) }
        }
    };
    wait::until("the CLI listening", PATIENCE, said("listening")).await?;
    wait::until("the deafness said", PATIENCE, said("does not deliver notifications"))
        .await
        .with_context(|| format!("{:#?}", log.lock().unwrap()))?;

    let interval = Duration::from_secs(1);
    for n in 1..=5_i64 {
        send::cancel_task_run(&sender, uid(n)).await?;
        let committed = Instant::now();
        let line = tokio::time::timeout(PATIENCE, stdout.next_line()).await??.context("stdout closed")?;
        assert_eq!(line, format!(r#"{{"type":"cancel_task_run","uid":{n}}}"#));
        // The next heartbeat's replay has it: within one interval, plus the replay itself.
        assert!(
            committed.elapsed() < 2 * interval + Duration::from_secs(2),
            "{n} took {:?}",
            committed.elapsed()
        );
    }
    // Two more probes (one every six heartbeats) come and go unanswered: still said only once.
    let probes_failed = |at_least: usize| {
        let log = Arc::clone(&log);
        move || {
            let log = Arc::clone(&log);
            async move {
                (log.lock().unwrap().iter().filter(|l| l.contains("the probe did not come back")).count()
                    >= at_least)
                    .then_some(())
            }
        }
    };
    wait::until("two more unanswered probes", Duration::from_secs(60), probes_failed(3)).await?;
    let warnings =
        log.lock().unwrap().iter().filter(|l| l.contains("does not deliver notifications")).count();
    assert_eq!(warnings, 1, "{:#?}", log.lock().unwrap());
    drop(neighbours);
    cli.kill().await?;
    Ok(())
}

async fn collect(mut lines: Lines<BufReader<ChildStderr>>, into: Arc<Mutex<Vec<String>>>) {
    while let Ok(Some(line)) = lines.next_line().await {
        into.lock().unwrap().push(line);
    }
}
