//! Fan-out: 32 listeners; time until every one has 100,000 signals. Ours against 32 bare loops.

use std::time::Duration;

use anyhow::Result;
use bytebase_signal_tests::cluster::Cluster;
use tokio::time::Instant;

use crate::feed;
use crate::send::median;

const LISTENERS: usize = 32;
const TOTAL: i64 = 100_000;
const ROUNDS: usize = 3;
const DB: &str = "bench";

/// Runs the fan-out table.
pub async fn run() -> Result<()> {
    eprintln!("fanout: starting a throwaway cluster ...");
    let cluster = Cluster::start_with(&[("max_connections", "100")])?;
    cluster.create_database_with_extension(DB).await?;
    let producer = cluster.connect(DB).await?;
    let config = cluster.config(DB);
    let (mut bare_s, mut ours_s) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for ours in [round % 2 == 0, round % 2 != 0] {
            let mut consumers = Vec::with_capacity(LISTENERS);
            for _ in 0..LISTENERS {
                consumers.push(if ours {
                    feed::ours(feed::plaintext(&config), TOTAL as u64, 0).await?
                } else {
                    feed::bare(&config, TOTAL as u64).await?
                });
            }
            let started = Instant::now();
            feed::produce(&producer, TOTAL).await?;
            let mut last = started;
            for c in consumers {
                last = last.max(c.finish(Duration::from_secs(300)).await?);
            }
            let s = (last - started).as_secs_f64();
            eprintln!("round {}: {} {s:.2} s", round + 1, if ours { "ours" } else { "bare" });
            if ours {
                ours_s.push(s)
            } else {
                bare_s.push(s)
            }
        }
    }
    let (bare, ours) = (median(bare_s), median(ours_s));
    println!(
        "\n### Fan-out ({LISTENERS} listeners, {TOTAL} signals each; {ROUNDS} interleaved rounds, medians)\n"
    );
    println!("| consumers | seconds until all have every signal | vs bare | goal |");
    println!("|---|---:|---:|---|");
    println!("| {LISTENERS} bare poll_message loops | {bare:.2} | 1.00× | |");
    println!("| {LISTENERS} Listeners (ours) | {ours:.2} | {:.2}× | ≥ 0.8× |", bare / ours);
    Ok(())
}
