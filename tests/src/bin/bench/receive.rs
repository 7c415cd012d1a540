//! Receive throughput: 1,000,000 notifications committed in batches of 50,000 while the listening
//! consumer is held (a process stopped, an in-process consumer's thread blocked), so that they
//! queue on the server; then seconds from letting it go until it has dispatched the last one, per
//! consumer, in interleaved rounds. Timed so, the consumer's own speed is measured, not the
//! producer's (which bounded every consumer alike when they read while it committed). The server
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
const SQLX: &str = "sqlx PgListener + serde_json + a map of 10,000 runs (Rust peer)";
const SQLX_COUNTING: &str = "sqlx PgListener, counting only (sqlx's floor)";
const SQLX_CLI: &str = "sqlx CLI > file (Rust peer)";
const PSYCOPG: &str = "psycopg 3 notifies() (Python peer)";

/// What each row's program does, one line each, printed under the tables.
const WHAT: &[(&str, &str)] = &[
    (BARE, "one task polls a tokio-postgres connection and counts notifications; no decoding"),
    (OURS, "our Listener, each signal decoded, de-duplicated and dispatched to a Registry of 10,000 runs"),
    (CLI, "`bytebase-signal listen --dsn ... > file`: one JSON line per signal"),
    (
        SQLX,
        "one task: `PgListener::recv()`, serde_json into a typed struct, a lookup in a \
         `Mutex<HashMap<(kind, uid), CancellationToken>>` of 10,000 runs (a sqlx user's in-process listener)",
    ),
    (SQLX_COUNTING, "one task: `PgListener::recv()` and a counter, nothing else"),
    (
        SQLX_CLI,
        "one loop on a current-thread runtime: `PgListener::recv()`, serde_json in and out, a 64 KiB \
         `BufWriter` on stdout flushed when no notification is ready without waiting (a sqlx user's CLI)",
    ),
    (PSYCOPG, "`conn.notifies()` in a loop that counts, no decoding (peer_psycopg.py; it prints only its finish time)"),
];

/// Prints what the rows of `names` measure.
fn print_what(names: &[&str]) {
    println!();
    for (name, what) in WHAT.iter().filter(|(name, _)| names.contains(name)) {
        println!("- {name}: {what}.");
    }
}

/// Runs the receive-throughput table.
pub async fn run() -> Result<()> {
    let names = [BARE, OURS, OURS_TLS, CLI, SQLX, SQLX_COUNTING, SQLX_CLI, PSYCOPG];
    let (seconds, commit_seconds) = measure(TOTAL, &names, ROUNDS).await?;
    let floor = median(seconds[BARE].clone());
    println!(
        "\n### Receive throughput ({TOTAL} notifications queued while the consumer is held, then drained; \
         {ROUNDS} interleaved rounds, medians)\n"
    );
    println!("| consumer | seconds, let go → last dispatched | signals/s | vs floor | vs its peer | goal |");
    println!("|---|---:|---:|---:|---:|---|");
    for name in names {
        let s = median(seconds[name].clone());
        // Each of ours beside the peer that does the same job.
        let (peer, goal) = match name {
            BARE => (None, ""),
            OURS => (Some(SQLX), "≥ 0.9× the floor, ≥ 1.0× the sqlx listener"),
            OURS_TLS => (Some(SQLX), "reported: what TLS costs (the floor is plaintext)"),
            CLI => (Some(SQLX_CLI), "≥ 1.0× the sqlx CLI"),
            _ => (None, "peer"),
        };
        let vs_peer = peer.map_or(String::new(), |p| format!("{:.2}×", median(seconds[p].clone()) / s));
        println!("| {name} | {s:.2} | {:.0} | {:.2}× | {vs_peer} | {goal} |", TOTAL as f64 / s, floor / s);
    }
    println!(
        "\n(Committing the {TOTAL} took {:.2} s, median, while the consumer was held: not part of its time.)",
        median(commit_seconds)
    );
    print_what(&names);
    Ok(())
}

/// The acceptance check on its own: the CLI against the sqlx CLI and psycopg at 200,000
/// notifications, in more rounds than the full table.
pub async fn run_cli_vs_psycopg() -> Result<()> {
    const SMALL: i64 = 200_000;
    const MORE_ROUNDS: usize = 5;
    let names = [CLI, SQLX_CLI, PSYCOPG];
    let (seconds, _) = measure(SMALL, &names, MORE_ROUNDS).await?;
    println!(
        "\n### The CLI against its peers ({SMALL} notifications queued while each is stopped, then drained; \
         {MORE_ROUNDS} interleaved rounds)\n"
    );
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
    print_what(&names);
    Ok(())
}

/// Per consumer per round (the consumers in a rotating order): holds the listening consumer,
/// commits `total` notifications (they queue on the server), lets it go, and times it from then
/// until it has them all — its own speed, not the producer's. Returns each consumer's seconds and
/// the producer's.
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
            let n = total as u64;
            // In-process consumers run on a thread of their own, as the CLI does.
            let consumer: Consumer = match name {
                BARE => {
                    let config = config.clone();
                    feed::on_lane(move || async move { feed::bare(&config, n).await }).await?
                }
                OURS => {
                    let options = feed::plaintext(&config);
                    feed::on_lane(move || async move { feed::ours(options, n, REGISTERED_RUNS).await })
                        .await?
                }
                OURS_TLS => {
                    let options = tls.clone();
                    feed::on_lane(move || async move { feed::ours(options, n, REGISTERED_RUNS).await })
                        .await?
                }
                SQLX => {
                    let config = config.clone();
                    feed::on_lane(move || async move { feed::sqlx(&config, n, REGISTERED_RUNS).await })
                        .await?
                }
                SQLX_COUNTING => {
                    let config = config.clone();
                    feed::on_lane(move || async move { feed::sqlx_counting(&config, n).await }).await?
                }
                CLI => feed::cli(&config, n, dir.path()).await?,
                SQLX_CLI => feed::sqlx_cli(&config, n, dir.path()).await?,
                _ => feed::psycopg(&config, n).await?,
            };
            consumer.pause()?;
            let committing = Instant::now();
            feed::produce(&producer, total).await?;
            commit_seconds.push(committing.elapsed().as_secs_f64());
            let started = consumer.resume()?;
            let finished = consumer.finish(Duration::from_secs(300)).await?;
            let s = (finished - started).as_secs_f64();
            eprintln!("round {}: {name:<50} {s:>7.2} s", round + 1);
            seconds.entry(name).or_default().push(s);
        }
    }
    Ok((seconds, commit_seconds))
}
