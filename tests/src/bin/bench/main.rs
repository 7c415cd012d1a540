//! `make bench`: benchmarks on throwaway clusters, printing markdown tables with the goal beside
//! each figure. The machine is noisy, so every table compares variants measured side by side in
//! the same run (interleaved rounds, medians, ratios); absolute numbers alone mean little.
//!
//! ```text
//! bytebase-signal-bench [send] [receive] [cli-vs-psycopg] [latency] [recovery] [heartbeat]
//!                       [memory] [fanout]                                       (default: all)
//! ```
//!
//! Needs the extension installed in release mode and the `bytebase-signal` CLI built in release
//! mode next to this binary (`make bench` does both). Leaves nothing running.

use std::process::ExitCode;

use anyhow::{bail, Result};
use bytebase_signal_tests::cluster::DEFAULT_PG_CONFIG;

mod fanout;
mod feed;
mod heartbeat;
mod latency;
mod memory;
mod peer_sqlx;
mod receive;
mod recovery;
mod send;

/// Counts allocated bytes for the memory table.
#[global_allocator]
static ALLOCATOR: memory::Counting = memory::Counting;

async fn bench(sections: &[String]) -> Result<()> {
    let all = sections.is_empty();
    let wants = |name: &str| all || sections.iter().any(|s| s == name);
    for s in sections {
        if !["send", "receive", "cli-vs-psycopg", "latency", "recovery", "heartbeat", "memory", "fanout"]
            .contains(&s.as_str())
        {
            bail!(
                "unknown section {s:?}: expected send, receive, cli-vs-psycopg, latency, recovery, heartbeat, memory or fanout"
            );
        }
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| DEFAULT_PG_CONFIG.to_owned());
    println!("Machine: {cpus} CPUs; PostgreSQL of {pg_config}");
    if wants("send") {
        send::run().await?;
    }
    if wants("receive") {
        receive::run().await?;
    }
    if wants("cli-vs-psycopg") {
        receive::run_cli_vs_psycopg().await?;
    }
    if wants("latency") {
        latency::run().await?;
    }
    if wants("recovery") {
        recovery::run().await?;
    }
    if wants("heartbeat") {
        heartbeat::run().await?;
    }
    if wants("memory") {
        memory::run().await?;
    }
    if wants("fanout") {
        fanout::run().await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let sections: Vec<String> = std::env::args().skip(1).collect();
    match bench(&sections).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
