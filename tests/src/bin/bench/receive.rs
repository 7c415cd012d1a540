//! Receive throughput: 1,000,000 notifications committed in batches of 50,000; seconds from the
//! first commit until the last one is dispatched, per consumer, in interleaved rounds. The server
//! takes TLS and plaintext alike, so the TLS row measures the same server as the others.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use crate::feed::{self, Consumer};
use crate::send::median;

const TOTAL: i64 = 1_000_000;
const ROUNDS: usize = 3;
const REGISTERED_RUNS: i64 = 10_000;
const DB: &str = "bench";

const BARE: &str = "bare tokio-postgres poll_message loop (floor)";
const OURS: &str = "Listener + Registry (10,000 runs registered)";
const OURS_TLS: &str = "Listener + Registry, over TLS (verify-full)";
const CLI: &str = "bytebase-signal listen > file";
const SQLX: &str = "sqlx PgListener (Rust peer)";
const SQLX_CLI: &str = "sqlx PgListener CLI > file (Rust peer)";
const PSYCOPG: &str = "psycopg 3 notifies() (Python peer)";

/// Runs the receive-throughput table.
pub async fn run() -> Result<()> {
    let names = [BARE, OURS, OURS_TLS, CLI, SQLX, SQLX_CLI, PSYCOPG];
    let (seconds, commit_seconds) = measure(TOTAL, &names, ROUNDS).await?;
    let floor = median(seconds[BARE].clone());
    println!("\n### Receive throughput ({TOTAL} notifications in batches of 50,000; {ROUNDS} interleaved rounds, medians)\n");
    println!(
        "| consumer | seconds, first commit → last dispatched | signals/s | vs floor | vs its peer | goal |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for name in names {
        let s = median(seconds[name].clone());
        // Each of ours beside the peer that does the same job.
        let (peer, goal) = match name {
            BARE => (None, ""),
            OURS => (Some(SQLX), "≥ 0.9× the floor, ≥ 1.0× sqlx PgListener"),
            OURS_TLS => (Some(SQLX), "reported: what TLS costs (the floor is plaintext)"),
            CLI => (Some(SQLX_CLI), "≥ 1.0× the sqlx CLI"),
            _ => (None, "peer"),
        };
        let vs_peer = peer.map_or(String::new(), |p| format!("{:.2}×", median(seconds[p].clone()) / s));
        println!("| {name} | {s:.2} | {:.0} | {:.2}× | {vs_peer} | {goal} |", TOTAL as f64 / s, floor / s);
    }
    println!("\n(Committing the {TOTAL} took {:.2} s, median: the producer alone.)", median(commit_seconds));
    Ok(())
}

/// The acceptance check on its own: the CLI against the sqlx CLI and psycopg at 200,000
/// notifications, in more rounds than the full table.
pub async fn run_cli_vs_psycopg() -> Result<()> {
    const SMALL: i64 = 200_000;
    const MORE_ROUNDS: usize = 5;
    let names = [CLI, SQLX_CLI, PSYCOPG];
    let (seconds, _) = measure(SMALL, &names, MORE_ROUNDS).await?;
    println!("\n### The CLI against its peers ({SMALL} notifications; {MORE_ROUNDS} interleaved rounds)\n");
    println!("| consumer | median s | every round, s | vs the sqlx CLI | CLI faster in | goal |");
    println!("|---|---:|---|---:|---:|---|");
    let wins = |peer: &str| seconds[CLI].iter().zip(&seconds[peer]).filter(|(c, p)| c <= p).count();
    let sqlx_cli = median(seconds[SQLX_CLI].clone());
    for name in names {
        let rounds: Vec<String> = seconds[name].iter().map(|s| format!("{s:.2}")).collect();
        let ratio = format!("{:.2}×", sqlx_cli / median(seconds[name].clone()));
        let (won, goal) = match name {
            CLI => (
                format!(
                    "{} of {MORE_ROUNDS} against the sqlx CLI, {} against psycopg",
                    wins(SQLX_CLI),
                    wins(PSYCOPG)
                ),
                "≥ 1.0× the sqlx CLI",
            ),
            _ => (String::new(), "peer"),
        };
        println!(
            "| {name} | {:.2} | {} | {ratio} | {won} | {goal} |",
            median(seconds[name].clone()),
            rounds.join(", ")
        );
    }
    Ok(())
}

/// Commits `total` notifications once per consumer per round, the consumers in a rotating order;
/// returns each consumer's seconds from the first commit until it had them all, and the
/// producer's own seconds.
async fn measure<'a>(
    total: i64,
    names: &[&'a str],
    rounds: usize,
) -> Result<(BTreeMap<&'a str, Vec<f64>>, Vec<f64>)> {
    eprintln!("receive: starting a throwaway cluster ...");
    let (cluster, pki) = feed::cluster_with_tls()?;
    cluster.create_database_with_extension(DB).await?;
    let producer = cluster.connect(DB).await?;
    let config = cluster.config(DB);
    let tls = feed::tls_options(&cluster, &pki, DB)?;
    let dir = tempfile::tempdir()?;
    let mut seconds: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut commit_seconds = Vec::new();
    for round in 0..rounds {
        for i in 0..names.len() {
            let name = names[(i + round) % names.len()];
            let consumer: Consumer = match name {
                BARE => feed::bare(&config, total as u64).await?,
                OURS => feed::ours(feed::plaintext(&config), total as u64, REGISTERED_RUNS).await?,
                OURS_TLS => feed::ours(tls.clone(), total as u64, REGISTERED_RUNS).await?,
                CLI => feed::cli(&config, total as u64, dir.path()).await?,
                SQLX => feed::sqlx(&config, total as u64).await?,
                SQLX_CLI => feed::sqlx_cli(&config, total as u64, dir.path()).await?,
                _ => feed::psycopg(&config, total as u64).await?,
            };
            let started = Instant::now();
            feed::produce(&producer, total).await?;
            commit_seconds.push(started.elapsed().as_secs_f64());
            let finished = consumer.finish(Duration::from_secs(300)).await?;
            let s = (finished - started).as_secs_f64();
            eprintln!("round {}: {name:<50} {s:>7.2} s", round + 1);
            seconds.entry(name).or_default().push(s);
        }
    }
    Ok((seconds, commit_seconds))
}
