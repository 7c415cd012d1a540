//! Recovery: the listener's backend is terminated; time until LISTEN is re-established and the
//! catch-up replay is done (the `Replayed` event), p50 / p99 over 100 kills.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytebase_signal_client::{Backoff, Event, Listener, ListenerConfig};
use bytebase_signal_tests::cluster::{terminate_backends, Cluster};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const KILLS: usize = 100;
const DB: &str = "bench";
const APP: &str = "bench-recovery";

/// Waits for the next catch-up; returns when it was seen.
async fn next_replayed(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Result<Instant> {
    loop {
        if let Event::Replayed { .. } =
            tokio::time::timeout(Duration::from_secs(30), events.recv()).await.context("no catch-up")??
        {
            return Ok(Instant::now());
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the recovery table.
pub async fn run() -> Result<()> {
    eprintln!("recovery: starting a throwaway cluster ...");
    let cluster = Cluster::start()?;
    cluster.create_database_with_extension(DB).await?;
    let admin = cluster.connect(DB).await?;
    // A backlog the catch-up must read: an hour's worth of a busy deployment's cancels.
    admin
        .batch_execute("SELECT bytebase_cancel_task_runs(ARRAY(SELECT generate_series(1, 1000)::bigint))")
        .await?;
    let mut config = cluster.config(DB);
    config.application_name(APP);
    // Production settings, except that the backoff resets after 100 ms of health instead of 30 s:
    // each kill here is an isolated incident, measured on the immediate first retry.
    let listener_config =
        ListenerConfig::default().backoff(Backoff::default().reset_after(Duration::from_millis(100)));
    let stop = CancellationToken::new();
    let (handle, _signals) = Listener::new(config).with_config(listener_config).spawn(stop.clone());
    let mut events = handle.events();
    next_replayed(&mut events).await?;
    let mut millis = Vec::with_capacity(KILLS);
    for _ in 0..KILLS {
        // Healthy for longer than the backoff's reset period (the incident is isolated).
        tokio::time::sleep(Duration::from_millis(150)).await;
        let killed_at = Instant::now();
        let n = terminate_backends(&admin, APP).await?;
        if n != 1 {
            bail!("expected one listener backend, terminated {n}");
        }
        let back = next_replayed(&mut events).await?;
        millis.push((back - killed_at).as_secs_f64() * 1000.0);
    }
    stop.cancel();
    handle.join().await;
    millis.sort_by(f64::total_cmp);
    println!("\n### Recovery (backend terminated → LISTEN re-established and replay done; {KILLS} kills, 1,000 logged signals in the window)\n");
    println!("| p50 | p99 | max | goal |");
    println!("|---:|---:|---:|---|");
    println!(
        "| {:.1} ms | {:.1} ms | {:.1} ms | p50 ≤ 50 ms |",
        percentile(&millis, 0.5),
        percentile(&millis, 0.99),
        millis[millis.len() - 1]
    );
    Ok(())
}
