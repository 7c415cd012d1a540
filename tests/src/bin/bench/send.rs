//! Send cost: what a cancel costs the sender, measured with pgbench on a throwaway cluster with
//! production durability (fsync and synchronous_commit on), one live listener draining.
//!
//! Every variant runs in interleaved rounds and is compared with the same work done through raw
//! `pg_notify` with identical payload bytes.
//!
//! Variants:
//! - standalone `SELECT bytebase_cancel_task_run(n)`, durable log off and on, against
//!   `SELECT pg_notify(...)`;
//! - the realistic cancel transaction — `UPDATE` the run's status row, then signal, one commit —
//!   with the function (log on) against the same with `pg_notify`, and with no signal at all;
//! - both cancel transactions again with 32 idle listeners connected (each NOTIFY wakes them all);
//! - the pure-SQL edition (`sql/pure/install.sql`, in a second database of the same cluster) in
//!   the standalone and the cancel-transaction workloads, beside the extension.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use bytebase_signal_client::Listener;
use bytebase_signal_tests::cluster::{Cluster, Install};
use tokio_util::sync::CancellationToken;

use crate::feed;

const DB: &str = "bench";
/// The database with the pure-SQL edition instead of the extension.
const PURE_DB: &str = "bench_pure";
const RUNS: i64 = 100_000;
const CLIENTS: &str = "4";
const ROUNDS: usize = 3;
const SECONDS_PER_RUN: &str = "5";

const RAW_NOTIFY: &str =
    r#"SELECT pg_notify('bytebase_signal', '{"type":"cancel_task_run","uid":' || :uid || '}');"#;

/// One pgbench workload.
struct Variant {
    name: &'static str,
    /// The transaction script (`:uid` is a random run id).
    script: String,
    /// `PGOPTIONS` for its sessions.
    options: &'static str,
    /// What it is compared with, and the goal for that ratio.
    baseline: Option<(&'static str, &'static str)>,
    /// Idle listeners connected (and drained) besides the live one: each NOTIFY wakes them all.
    idle: usize,
    /// The database it runs in: [`DB`] (the extension) or [`PURE_DB`].
    db: &'static str,
}

fn variants() -> Vec<Variant> {
    let tx = |signal: &str| {
        format!("BEGIN;\nUPDATE task_run SET status = 'CANCELED' WHERE id = :uid;\n{signal}\nCOMMIT;")
    };
    vec![
        Variant {
            name: "standalone pg_notify (raw)",
            script: RAW_NOTIFY.into(),
            options: "",
            baseline: None,
            idle: 0,
            db: DB,
        },
        Variant {
            name: "standalone bytebase_cancel_task_run, durable = off",
            script: "SELECT bytebase_cancel_task_run(:uid);".into(),
            options: "-c bytebase_signal.durable=off",
            baseline: Some(("standalone pg_notify (raw)", "≥ 0.97×")),
            idle: 0,
            db: DB,
        },
        Variant {
            name: "standalone bytebase_cancel_task_run, durable = on",
            script: "SELECT bytebase_cancel_task_run(:uid);".into(),
            options: "",
            baseline: Some(("standalone pg_notify (raw)", "reported: a WAL flush per commit")),
            idle: 0,
            db: DB,
        },
        Variant {
            name: "cancel transaction, pg_notify (raw)",
            script: tx(RAW_NOTIFY),
            options: "",
            baseline: None,
            idle: 0,
            db: DB,
        },
        Variant {
            name: "cancel transaction, bytebase_cancel_task_run, durable = on",
            script: tx("SELECT bytebase_cancel_task_run(:uid);"),
            options: "",
            baseline: Some(("cancel transaction, pg_notify (raw)", "≥ 0.9×")),
            idle: 0,
            db: DB,
        },
        Variant {
            name: "cancel transaction without any signal",
            script: tx(""),
            options: "",
            baseline: Some(("cancel transaction, pg_notify (raw)", "reference")),
            idle: 0,
            db: DB,
        },
        Variant {
            name: "cancel transaction, pg_notify (raw), 32 idle listeners",
            script: tx(RAW_NOTIFY),
            options: "",
            baseline: Some((
                "cancel transaction, pg_notify (raw)",
                "reported: every NOTIFY wakes every listener",
            )),
            idle: 32,
            db: DB,
        },
        Variant {
            name: "cancel transaction, bytebase_cancel_task_run, 32 idle listeners",
            script: tx("SELECT bytebase_cancel_task_run(:uid);"),
            options: "",
            baseline: Some(("cancel transaction, pg_notify (raw), 32 idle listeners", "≥ 0.9×")),
            idle: 32,
            db: DB,
        },
        Variant {
            name: "standalone bytebase_cancel_task_run (pure SQL), durable = off",
            script: "SELECT bytebase_cancel_task_run(:uid);".into(),
            options: "-c bytebase_signal.durable=off",
            baseline: Some(("standalone pg_notify (raw)", "reported")),
            idle: 0,
            db: PURE_DB,
        },
        Variant {
            name: "standalone bytebase_cancel_task_run (pure SQL), durable = on",
            script: "SELECT bytebase_cancel_task_run(:uid);".into(),
            options: "",
            baseline: Some(("standalone pg_notify (raw)", "reported: a WAL flush per commit")),
            idle: 0,
            db: PURE_DB,
        },
        Variant {
            name: "cancel transaction, bytebase_cancel_task_run (pure SQL), durable = on",
            script: tx("SELECT bytebase_cancel_task_run(:uid);"),
            options: "",
            baseline: Some(("cancel transaction, pg_notify (raw)", "reported")),
            idle: 0,
            db: PURE_DB,
        },
    ]
}

/// Runs pgbench once; returns transactions per second.
fn pgbench(cluster: &Cluster, variant: &Variant, dir: &std::path::Path) -> Result<f64> {
    let script = dir.join(format!("{}.sql", variant.name.replace([' ', ',', '=', '(', ')'], "_")));
    std::fs::write(&script, format!("\\set uid random(1, {RUNS})\n{}\n", variant.script))?;
    let out = Command::new(cluster.bindir().join("pgbench"))
        .args(["-n", "-M", "prepared", "-c", CLIENTS, "-j", "2", "-T", SECONDS_PER_RUN, "-f"])
        .arg(&script)
        .args(["-h", cluster.host(), "-p", &cluster.port().to_string(), "-U", "postgres", variant.db])
        .env("PGOPTIONS", variant.options)
        .output()
        .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "pgbench {}: {}{}",
        variant.name,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|rest| rest.split_whitespace().next()?.parse().ok()))
        .with_context(|| format!("no tps in pgbench output: {stdout}"))
}

/// The median (the mean of the middle two for an even count).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len().is_multiple_of(2) {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    }
}

/// Runs the send-cost table.
pub async fn run() -> Result<()> {
    eprintln!("starting a throwaway cluster with fsync and synchronous_commit on ...");
    let cluster =
        Cluster::start_with(&[("fsync", "on"), ("synchronous_commit", "on"), ("full_page_writes", "on")])?;
    // One live listener draining per database, as in production: each NOTIFY must reach somebody.
    let shutdown = CancellationToken::new();
    let mut listeners = Vec::new();
    for (name, install) in [(DB, Install::Fresh), (PURE_DB, Install::PureSql)] {
        cluster.create_database_with(name, install).await?;
        let db = cluster.connect(name).await?;
        db.batch_execute(&format!(
            "CREATE TABLE task_run (id bigint PRIMARY KEY, status text NOT NULL);
             INSERT INTO task_run SELECT g, 'RUNNING' FROM generate_series(1, {RUNS}) g;"
        ))
        .await?;
        db.batch_execute("VACUUM ANALYZE task_run").await?;
        let (handle, mut signals) = Listener::new(cluster.config(name)).spawn(shutdown.clone());
        let drain = tokio::spawn(async move { while signals.recv().await.is_some() {} });
        listeners.push((handle, drain));
    }

    let variants = variants();
    let dir = tempfile::tempdir()?;
    let mut tps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..ROUNDS {
        // Rotate the order each round, so that no variant always runs first (or last).
        for i in 0..variants.len() {
            let v = &variants[(i + round) % variants.len()];
            let mut idle = Vec::with_capacity(v.idle);
            for _ in 0..v.idle {
                idle.push(feed::bare(&cluster.config(v.db), u64::MAX).await?);
            }
            let (cluster, dir) = (&cluster, dir.path());
            let t = tokio::task::block_in_place(|| pgbench(cluster, v, dir))?;
            for listener in idle {
                listener.close().await;
            }
            eprintln!("round {}: {:<60} {t:>9.0} tps", round + 1, v.name);
            tps.entry(v.name).or_default().push(t);
        }
    }
    shutdown.cancel();
    for (handle, drain) in listeners {
        let status = handle.status();
        handle.join().await;
        drain.await?;
        if status.overflowed > 0 {
            bail!("a draining listener overflowed ({status:?}); figures would not be comparable");
        }
    }

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("\n### Send cost (pgbench, {CLIENTS} clients, {ROUNDS}×{SECONDS_PER_RUN} s interleaved, medians; {cpus} CPUs, fsync on)\n");
    println!("| workload | TPS (median) | vs | ratio | goal |");
    println!("|---|---:|---|---:|---|");
    for v in &variants {
        let own = median(tps[v.name].clone());
        match v.baseline {
            None => println!("| {} | {own:.0} | | | |", v.name),
            Some((base, goal)) => {
                let ratio = own / median(tps[base].clone());
                println!("| {} | {own:.0} | {base} | {ratio:.2}× | {goal} |", v.name);
            }
        }
    }
    Ok(())
}
