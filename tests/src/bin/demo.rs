//! `make demo`: the main job end to end on a throwaway cluster.
//!
//! Starts a private PostgreSQL, installs the extension, LISTENs on `bytebase_signal` from a second
//! connection, and walks through what a Bytebase replica sees: nothing while the cancelling
//! transaction is open, the exact payload at commit, nothing after a rollback, one signal per
//! distinct run from a batch. Stops everything it started, also on error.

use std::process::ExitCode;

use anyhow::{ensure, Result};
use bytebase_signal_client::wire::CHANNEL;
use bytebase_signal_tests::cluster::Cluster;
use bytebase_signal_tests::listen::RawListener;

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

    println!("\nstopping the cluster");
    drop(cluster);
    println!("demo finished: every step behaved as documented");
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
