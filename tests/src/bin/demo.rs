//! `make demo`: the main job end to end on a throwaway cluster.
//!
//! Starts a private PostgreSQL and installs the extension. Part 1 watches the SQL API with a bare
//! LISTEN connection: nothing while the cancelling transaction is open, the exact payload at
//! commit, nothing after a rollback, one signal per distinct run from a batch. Part 2 runs two
//! replicas, each with its own `Listener` and `Registry`: a cancel for a run that replica B owns
//! stops it on B while A counts it unmatched, and a run registered just after its cancel arrived
//! starts out cancelled. Then B's network fails while its run is cancelled: NOTIFY alone would
//! never reach it, but when the network is back B replays the durable signal log and the run
//! stops. Part 3 runs `bytebase-signal doctor` against the database while a third replica
//! listens, and shows its checklist. Stops everything it started, also on error.

use std::process::ExitCode;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::wire::CHANNEL;
use bytebase_signal_client::{Event, Listener, ListenerHandle, Registry, RunUid, SignalKind};
use bytebase_signal_tests::cluster::Cluster;
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::raw_listener::RawListener;
use bytebase_signal_tests::wait;
use tokio_util::sync::CancellationToken;

const DB: &str = "bytebase";

fn show(step: &str, payloads: &[String]) {
    println!("  {step}");
    if payloads.is_empty() {
        println!("      (nothing arrived)");
    }
    for p in payloads {
        println!("      received on {CHANNEL}: {p}");
    }
}

async fn demo() -> Result<()> {
    println!("starting a throwaway PostgreSQL cluster ...");
    let cluster = Cluster::start()?;
    println!("  listening on {}:{} (data in {})", cluster.host(), cluster.port(), cluster.root().display());
    cluster.create_database_with_extension(DB).await?;
    let app = cluster.connect(DB).await?;
    let version: String = app
        .query_one("SELECT extversion FROM pg_extension WHERE extname = 'bytebase_signal'", &[])
        .await?
        .get(0);
    println!("  CREATE EXTENSION bytebase_signal -> version {version}");

    let mut replica = RawListener::connect(&cluster.config(DB), CHANNEL).await?;
    let probe = cluster.connect(DB).await?;
    println!("a replica's connection runs LISTEN {CHANNEL}\n");

    println!("BEGIN; UPDATE task_run SET status = 'CANCELED' ...; SELECT bytebase_cancel_task_run(42);");
    app.batch_execute(
        "CREATE TABLE task_run (id bigint PRIMARY KEY, status text NOT NULL);
         INSERT INTO task_run VALUES (42, 'RUNNING'), (43, 'RUNNING'), (44, 'RUNNING');
         BEGIN;
         UPDATE task_run SET status = 'CANCELED' WHERE id = 42;
         SELECT bytebase_cancel_task_run(42);",
    )
    .await?;
    let before = replica.drain(&probe).await?;
    show("before COMMIT:", &before);
    ensure!(before.is_empty(), "a signal arrived before commit");
    app.batch_execute("COMMIT").await?;
    let after = replica.drain(&probe).await?;
    show("after COMMIT:", &after);
    ensure!(after == [r#"{"type":"cancel_task_run","uid":42}"#], "unexpected delivery: {after:?}");

    println!("\nBEGIN; SELECT bytebase_cancel_task_run(43); ROLLBACK;");
    app.batch_execute("BEGIN; SELECT bytebase_cancel_task_run(43); ROLLBACK").await?;
    let rolled_back = replica.drain(&probe).await?;
    show("after ROLLBACK:", &rolled_back);
    ensure!(rolled_back.is_empty(), "a rolled-back signal arrived");

    println!("\nSELECT bytebase_cancel_plan_check_runs('{{7,8,7}}');");
    let n: i32 = app.query_one("SELECT bytebase_cancel_plan_check_runs('{7,8,7}')", &[]).await?.get(0);
    let batch = replica.drain(&probe).await?;
    show(&format!("returned {n}; after COMMIT:"), &batch);
    ensure!(n == 2 && batch.len() == 2, "batch delivered {batch:?}");

    println!("\nSELECT bytebase_cancel_task_run(0);");
    let err = app.batch_execute("SELECT bytebase_cancel_task_run(0)").await.expect_err("0 is rejected");
    if let Some(db) = err.as_db_error() {
        println!("  ERROR {}: {}", db.code().code(), db.message());
    }

    replicas(&cluster).await?;
    doctor(&cluster).await?;

    println!("\nstopping the cluster");
    drop(cluster);
    println!("demo finished: every step behaved as documented");
    Ok(())
}

/// Part 3: `bytebase-signal doctor` checks the database while a replica listens, as an operator
/// would after deploying: the checklist it prints is the demo's last word.
async fn doctor(cluster: &Cluster) -> Result<()> {
    println!("\n--- bytebase-signal doctor, while replica C listens ---");
    let shutdown = CancellationToken::new();
    let c = Replica::start("C", cluster, cluster.port(), &shutdown).await?;
    // `make demo` builds the CLI beside this binary.
    let cli = std::env::current_exe()?.with_file_name("bytebase-signal");
    println!("$ bytebase-signal doctor --dsn '{}'", cluster.conninfo(DB));
    let status = tokio::process::Command::new(&cli)
        .args(["doctor", "--dsn", &cluster.conninfo(DB)])
        .env_remove("DATABASE_URL")
        .status()
        .await
        .with_context(|| format!("running {}", cli.display()))?;
    shutdown.cancel();
    c.listener.join().await;
    ensure!(status.success(), "the doctor found a failure on the demo's own database ({status})");
    Ok(())
}

/// A replica: its registry and its listener.
struct Replica {
    name: &'static str,
    registry: Registry,
    listener: ListenerHandle,
}

impl Replica {
    /// Starts replica `name`, reaching the server through `port` (its own, or a proxy's).
    async fn start(
        name: &'static str,
        cluster: &Cluster,
        port: u16,
        shutdown: &CancellationToken,
    ) -> Result<Self> {
        let mut pg = cluster.config_via(DB, port);
        pg.application_name(format!("bytebase-replica-{name}"));
        let registry = Registry::new();
        let listener = Listener::new(pg).spawn_with_registry(registry.clone(), shutdown.clone());
        let mut events = listener.events();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .context("listener connect")??
            {
                Event::Connected { server } => println!("  replica {name}: listening on {server}"),
                // Caught up from the log: from here on its counters only move with new signals.
                Event::Replayed { .. } => break,
                other => println!("  replica {name}: {other:?}"),
            }
        }
        Ok(Replica { name, registry, listener })
    }

    /// Starts a pretend task run that works until its cancel token fires.
    fn run_task(&self, uid: i64) -> tokio::task::JoinHandle<Duration> {
        let guard = self.registry.register(SignalKind::TaskRun, RunUid::new(uid).expect("positive"));
        let name = self.name;
        println!("  replica {name}: task run {uid} started");
        tokio::spawn(async move {
            let started = Instant::now();
            guard.cancelled().await;
            println!("  replica {name}: task run {uid} CANCELED after {:?}", started.elapsed());
            started.elapsed()
        })
    }
}

async fn replicas(cluster: &Cluster) -> Result<()> {
    println!("\n--- two replicas, each with a Listener and a Registry ---");
    let shutdown = CancellationToken::new();
    // B reaches the server through a proxy, so that its network can fail below.
    let network_b = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let a = Replica::start("A", cluster, cluster.port(), &shutdown).await?;
    let b = Replica::start("B", cluster, network_b.port(), &shutdown).await?;
    let _a_work = a.run_task(101);
    let b_work = b.run_task(201);
    let app = cluster.connect(DB).await?;

    // Each replica's first catch-up already handed it the cancels of part 1 (committed within the
    // grace period before it started): count from here.
    let (a_unmatched, a_dispatched, b_dispatched) =
        (a.listener.status().unmatched, a.listener.status().dispatched, b.listener.status().dispatched);
    println!(
        "  (each replica's first catch-up replayed the log's last 60 s: part 1's {a_dispatched} cancels, \
         not theirs, harmless)"
    );
    println!("\nSELECT bytebase_cancel_task_run(201);  -- the run replica B owns");
    app.batch_execute("SELECT bytebase_cancel_task_run(201)").await?;
    tokio::time::timeout(Duration::from_secs(30), b_work).await.context("B's run was not cancelled")??;
    wait::until("A to count the signal", Duration::from_secs(30), || async {
        (a.listener.status().unmatched == a_unmatched + 1).then_some(())
    })
    .await?;
    println!("  replica A: not mine, counted as unmatched");

    println!("\nSELECT bytebase_cancel_task_run(301);  -- a run nobody has started yet");
    app.batch_execute("SELECT bytebase_cancel_task_run(301)").await?;
    wait::until("both replicas to see it", Duration::from_secs(30), || async {
        (a.listener.status().dispatched == a_dispatched + 2
            && b.listener.status().dispatched == b_dispatched + 2)
            .then_some(())
    })
    .await?;
    let late = a.registry.register(SignalKind::TaskRun, RunUid::new(301).expect("positive"));
    println!(
        "  replica A: registers task run 301 just after its cancel -> cancelled at once: {}",
        late.is_cancelled()
    );
    ensure!(late.is_cancelled(), "tombstone missing");

    println!("\n--- replica B's network fails while its run 202 is cancelled ---");
    let b_work = b.run_task(202);
    let mut b_events = b.listener.events();
    network_b.set_mode(Mode::Refuse);
    wait::until("B to notice", Duration::from_secs(30), || async {
        (!b.listener.status().connected).then_some(())
    })
    .await?;
    println!("  replica B: connection lost");
    println!("SELECT bytebase_cancel_task_run(202);  -- NOTIFY alone would never reach B");
    app.batch_execute("SELECT bytebase_cancel_task_run(202)").await?;
    network_b.set_mode(Mode::Forward);
    println!("  (network back)");
    tokio::time::timeout(Duration::from_secs(30), b_work)
        .await
        .context("B's run 202 was not cancelled")??;
    let recovered = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Event::Replayed { signals } = b_events.recv().await? {
                if signals > 0 {
                    return anyhow::Ok(signals);
                }
            }
        }
    })
    .await
    .context("B did not catch up")??;
    println!("  replica B: caught up from the signal log: {recovered} signal(s) it had not seen (202)");

    for r in [&a, &b] {
        let s = r.listener.status();
        println!(
            "  replica {}: received {}, replayed {}, dispatched {}, unmatched {}, reconnects {}",
            r.name, s.received, s.replayed, s.dispatched, s.unmatched, s.reconnects
        );
    }
    shutdown.cancel();
    a.listener.join().await;
    b.listener.join().await;
    println!("  both listeners stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
