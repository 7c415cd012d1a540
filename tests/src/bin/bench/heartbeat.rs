//! What the heartbeat's replay costs the server: the server's CPU time (every process of the
//! cluster, from /proc) while listeners run, with heartbeats that replay the log exactly (a 0.4.0
//! database), that replay it by time (a 0.3.0 database), and that only read the clock (as 0.3.0's
//! listeners did; here listeners told of a replay function that does not exist, on the 0.4.0
//! database), side by side in one cluster, in interleaved rounds. Two loads: 100 idle listeners,
//! and 8 listeners while a sender commits 1,000 cancels a second. The heartbeat runs every second
//! here, ten times the default, so that its cost stands out; at the default 10 s it is a tenth.

use std::time::Duration;

use anyhow::{Context, Result};
use bytebase_signal_client::{Listener, ListenerConfig};
use bytebase_signal_tests::cluster::Cluster;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::send::median;

const ROUNDS: usize = 2;
const WINDOW: Duration = Duration::from_secs(10);
const PING: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
struct Load {
    name: &'static str,
    listeners: usize,
    per_second: u64,
}

const LOADS: [Load; 2] = [
    Load { name: "100 idle listeners", listeners: 100, per_second: 0 },
    Load { name: "8 listeners, 1,000 cancels/s", listeners: 8, per_second: 1_000 },
];

/// A kind of heartbeat: its label, the database it runs against, the replay function named.
struct Kind {
    label: &'static str,
    db: &'static str,
    replay_function: &'static str,
}

/// The kinds of heartbeat; the last is the baseline.
const KINDS: [Kind; 3] = [
    Kind { label: "exact replay (0.4.0)", db: "exact", replay_function: "bytebase_signal_replay" },
    Kind {
        label: "replay by time (a 0.3.0 database)",
        db: "timed",
        replay_function: "bytebase_signal_replay",
    },
    Kind {
        label: "clock only (no log, as 0.3.0's listeners)",
        db: "exact",
        replay_function: "no_replay_here",
    },
];

/// Runs the heartbeat table.
pub async fn run() -> Result<()> {
    eprintln!("heartbeat: starting a throwaway cluster ...");
    let cluster = Cluster::start_with(&[("max_connections", "150")])?;
    let admin = cluster.connect("postgres").await?;
    admin.batch_execute("CREATE DATABASE exact").await?;
    admin.batch_execute("CREATE DATABASE timed").await?;
    cluster.connect("exact").await?.batch_execute("CREATE EXTENSION bytebase_signal").await?;
    cluster.connect("timed").await?.batch_execute("CREATE EXTENSION bytebase_signal VERSION '0.3.0'").await?;
    let ticks = clock_ticks()?;
    let mut rows = Vec::new();
    for load in LOADS {
        let mut cpu: [Vec<f64>; 3] = Default::default();
        for round in 0..ROUNDS {
            for i in 0..KINDS.len() {
                let which = (i + round) % KINDS.len();
                let seconds = measure(&cluster, &KINDS[which], load, ticks).await?;
                eprintln!(
                    "round {}: {} / {}: {seconds:.2} server CPU s",
                    round + 1,
                    load.name,
                    KINDS[which].label
                );
                cpu[which].push(seconds);
            }
        }
        let clock = median(cpu[KINDS.len() - 1].clone());
        for (k, samples) in cpu.into_iter().enumerate() {
            let s = median(samples);
            rows.push((load.name, KINDS[k].label, s * 60.0 / WINDOW.as_secs_f64(), s / clock));
        }
    }
    println!(
        "\n### Heartbeat cost (server CPU while listening; heartbeat every {} s, {} s windows, {ROUNDS} interleaved rounds, medians)\n",
        PING.as_secs(),
        WINDOW.as_secs()
    );
    println!("| load | heartbeat | server CPU s per minute | vs clock only | goal |");
    println!("|---|---|---:|---:|---|");
    for (load, kind, per_minute, ratio) in rows {
        println!("| {load} | {kind} | {per_minute:.2} | {ratio:.2}× | reported |");
    }
    Ok(())
}

/// The server CPU seconds spent during one window of `load` with heartbeats of `kind`.
async fn measure(cluster: &Cluster, kind: &Kind, load: Load, ticks: f64) -> Result<f64> {
    let stop = CancellationToken::new();
    let mut handles = Vec::with_capacity(load.listeners);
    for _ in 0..load.listeners {
        let mut pg = cluster.config(kind.db);
        pg.application_name("bench-heartbeat");
        let config = ListenerConfig::default().ping_interval(PING).replay_function(kind.replay_function);
        let handle =
            Listener::new(pg).with_config(config).spawn_with_registry(Default::default(), stop.clone());
        handles.push(handle);
    }
    for handle in &handles {
        if kind.replay_function == "bytebase_signal_replay" {
            crate::feed::caught_up(handle).await?;
        } else {
            without_log(handle).await?;
        }
    }
    let sender = cluster.connect(kind.db).await?;
    let before = server_cpu(cluster, ticks)?;
    let started = Instant::now();
    match 1_000_000_u64.checked_div(load.per_second) {
        // The measurement window itself.
        None => tokio::time::sleep(WINDOW).await,
        Some(micros) => {
            let mut tick = tokio::time::interval(Duration::from_micros(micros));
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut uid = 0_i64;
            while started.elapsed() < WINDOW {
                tick.tick().await;
                uid += 1;
                sender.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
            }
        }
    }
    let after = server_cpu(cluster, ticks)?;
    stop.cancel();
    for handle in handles {
        handle.join().await;
    }
    Ok(after - before)
}

/// Waits until `handle`'s listener is connected and found that it has no log to replay.
async fn without_log(handle: &bytebase_signal_client::ListenerHandle) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.status().replay_available != Some(false) {
        anyhow::ensure!(Instant::now() < deadline, "listener start: {:?}", handle.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// CPU seconds (user and system) of the cluster's postmaster and all its children so far.
fn server_cpu(cluster: &Cluster, ticks: f64) -> Result<f64> {
    let pid_file = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid"))?;
    let postmaster: u32 = pid_file.lines().next().context("postmaster.pid")?.trim().parse()?;
    let mut total = 0_u64;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the parenthesised command: state, ppid, ..., utime (14th), stime (15th).
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split(' ').collect();
        let ppid: u32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
        if pid == postmaster || ppid == postmaster {
            let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
            total += utime + stime;
        }
    }
    Ok(total as f64 / ticks)
}

/// The kernel's clock ticks per second (the unit of /proc's CPU times).
fn clock_ticks() -> Result<f64> {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}
