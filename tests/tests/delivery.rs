//! End to end: the SQL functions on a real server, observed by a bare LISTEN connection.
//!
//! Every test gets its own throwaway cluster (the extension must be installed into the PostgreSQL
//! that `PG_CONFIG` names; `make test` does that first).

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytebase_signal_client::validate::RunUid;
use bytebase_signal_client::wire::{encode_seed, SignalKind, CHANNEL};
use bytebase_signal_tests::cluster::{Cluster, Install, PURE_INSTALL, SUPERUSER};
use bytebase_signal_tests::raw_listener::RawListener;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const DB: &str = "app";

// Every install must behave the same: a fresh install of the current version, each older version
// upgraded with `ALTER EXTENSION ... UPDATE`, and the pure-SQL edition, fresh and over each older
// one.
bytebase_signal_tests::on_installs!(
    [
        fresh: Fresh,
        upgraded_from_0_1_0: UpgradedFrom010,
        upgraded_from_0_2_0: UpgradedFrom020,
        upgraded_from_0_3_0: UpgradedFrom030,
        pure_sql: PureSql,
        pure_sql_upgraded_from_0_2_0: PureSqlUpgradedFrom020,
        pure_sql_upgraded_from_0_3_0: PureSqlUpgradedFrom030,
    ];
    commit_delivers_the_exact_seed_bytes,
    nothing_arrives_before_commit,
    nothing_arrives_after_rollback,
    a_rolled_back_savepoint_takes_its_signals_with_it,
    identical_signals_in_one_transaction_arrive_once,
    transactions_arrive_in_commit_order,
    batches_send_one_signal_per_distinct_uid_in_order,
    bad_input_reaches_the_client_as_its_sqlstate_and_sends_nothing,
    an_independent_psql_listener_receives_exactly_the_payload,
    a_repeatable_read_send_is_not_failed_by_a_concurrent_prune,
);

/// A cluster with the extension, one listener and two sender connections (for interleaving).
struct Setup {
    cluster: Cluster,
    listener: RawListener,
    sender: Client,
    other: Client,
}

async fn setup(install: Install) -> Result<Setup> {
    let cluster = Cluster::start()?;
    cluster.create_database_with(DB, install).await?;
    let listener = RawListener::connect(&cluster.config(DB), CHANNEL).await?;
    let sender = cluster.connect(DB).await?;
    let other = cluster.connect(DB).await?;
    Ok(Setup { cluster, listener, sender, other })
}

impl Setup {
    /// Everything committed so far that the listener has not seen yet.
    async fn drain(&mut self) -> Result<Vec<String>> {
        self.listener.drain(&self.other).await
    }
}

fn seed(kind: SignalKind, uid: i64) -> String {
    encode_seed(kind, RunUid::new(uid).expect("positive"))
}

fn task(uid: i64) -> String {
    seed(SignalKind::TaskRun, uid)
}

async fn commit_delivers_the_exact_seed_bytes(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    s.sender.batch_execute("SELECT bytebase_cancel_task_run(42)").await?;
    s.sender.batch_execute("SELECT bytebase_cancel_plan_check_run(7)").await?;
    assert_eq!(
        s.drain().await?,
        [r#"{"type":"cancel_task_run","uid":42}"#, r#"{"type":"cancel_plan_check_run","uid":7}"#]
    );
    // The widest uid, through a bound parameter this time.
    s.sender.execute("SELECT bytebase_cancel_task_run($1)", &[&i64::MAX]).await?;
    assert_eq!(s.drain().await?, [r#"{"type":"cancel_task_run","uid":9223372036854775807}"#]);
    Ok(())
}

async fn nothing_arrives_before_commit(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    s.sender.batch_execute("BEGIN; SELECT bytebase_cancel_task_run(42)").await?;
    assert_eq!(s.drain().await?, Vec::<String>::new(), "delivered before commit");
    s.sender.batch_execute("COMMIT").await?;
    assert_eq!(s.drain().await?, [task(42)]);
    Ok(())
}

async fn nothing_arrives_after_rollback(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    s.sender
        .batch_execute("BEGIN; SELECT bytebase_cancel_task_run(1); SELECT bytebase_cancel_plan_check_runs('{2,3}'); ROLLBACK")
        .await?;
    assert_eq!(s.drain().await?, Vec::<String>::new());
    Ok(())
}

async fn a_rolled_back_savepoint_takes_its_signals_with_it(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    s.sender
        .batch_execute(
            "BEGIN;
             SELECT bytebase_cancel_task_run(1);
             SAVEPOINT s;
             SELECT bytebase_cancel_task_run(2);
             SELECT bytebase_cancel_task_runs('{4,5}');
             ROLLBACK TO SAVEPOINT s;
             SELECT bytebase_cancel_task_run(3);
             COMMIT",
        )
        .await?;
    assert_eq!(s.drain().await?, [task(1), task(3)]);
    Ok(())
}

async fn identical_signals_in_one_transaction_arrive_once(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    s.sender
        .batch_execute(
            "BEGIN;
             SELECT bytebase_cancel_task_run(5);
             SELECT bytebase_cancel_task_run(5);
             SELECT bytebase_cancel_task_runs('{5,6,5}');
             SELECT bytebase_cancel_plan_check_run(5);
             COMMIT",
        )
        .await?;
    // Same uid, different kind: a different signal.
    assert_eq!(s.drain().await?, [task(5), task(6), seed(SignalKind::PlanCheckRun, 5)]);
    // Across transactions nothing is merged: each commit delivers again.
    s.sender.batch_execute("SELECT bytebase_cancel_task_run(5)").await?;
    s.sender.batch_execute("SELECT bytebase_cancel_task_run(5)").await?;
    assert_eq!(s.drain().await?, [task(5), task(5)]);
    Ok(())
}

async fn transactions_arrive_in_commit_order(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    // Interleaved: the transaction that started first commits last.
    s.sender.batch_execute("BEGIN; SELECT bytebase_cancel_task_run(1)").await?;
    s.other.batch_execute("BEGIN; SELECT bytebase_cancel_task_run(2)").await?;
    s.other.batch_execute("COMMIT").await?;
    s.sender.batch_execute("COMMIT").await?;
    assert_eq!(s.drain().await?, [task(2), task(1)]);

    // A run of autocommit calls keeps its order.
    for uid in 1..=50_i64 {
        s.sender.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
    }
    assert_eq!(s.drain().await?, (1..=50).map(task).collect::<Vec<_>>());
    Ok(())
}

async fn batches_send_one_signal_per_distinct_uid_in_order(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    for kind in SignalKind::ALL {
        let f = kind.batch_cancel_function();
        let uids: Vec<i64> = vec![3, 1, 3, 2];
        let n: i32 = s.sender.query_one(&format!("SELECT {f}($1)"), &[&uids]).await?.get(0);
        assert_eq!(n, 3);
        assert_eq!(s.drain().await?, [seed(kind, 3), seed(kind, 1), seed(kind, 2)]);

        let n: i32 = s.sender.query_one(&format!("SELECT {f}('{{}}')"), &[]).await?.get(0);
        assert_eq!(n, 0);
        assert_eq!(s.drain().await?, Vec::<String>::new());
    }
    // A large batch: every distinct uid arrives once.
    let uids: Vec<i64> = (1..=5000).chain(1..=5000).collect();
    let n: i32 = s.sender.query_one("SELECT bytebase_cancel_task_runs($1)", &[&uids]).await?.get(0);
    assert_eq!(n, 5000);
    assert_eq!(s.drain().await?, (1..=5000).map(task).collect::<Vec<_>>());
    Ok(())
}

async fn bad_input_reaches_the_client_as_its_sqlstate_and_sends_nothing(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    let cases: &[(&str, SqlState, &str)] = &[
        ("SELECT bytebase_cancel_task_run(NULL)", SqlState::NULL_VALUE_NOT_ALLOWED, "uid must not be NULL"),
        ("SELECT bytebase_cancel_task_run(0)", SqlState::INVALID_PARAMETER_VALUE, "got 0"),
        ("SELECT bytebase_cancel_plan_check_run(-1)", SqlState::INVALID_PARAMETER_VALUE, "got -1"),
        ("SELECT bytebase_cancel_task_runs(NULL)", SqlState::NULL_VALUE_NOT_ALLOWED, "uids must not be NULL"),
        // The bad element comes last: validation covers the whole batch before anything is sent.
        ("SELECT bytebase_cancel_task_runs('{1,2,NULL}')", SqlState::NULL_VALUE_NOT_ALLOWED, "uids[3]"),
        ("SELECT bytebase_cancel_plan_check_runs('{1,2,-3}')", SqlState::INVALID_PARAMETER_VALUE, "uids[3]"),
    ];
    for (sql, code, part) in cases {
        let err = s.sender.batch_execute(sql).await.expect_err(sql);
        let db = err.as_db_error().with_context(|| format!("{sql}: {err}"))?;
        assert_eq!(db.code(), code, "{sql}: {}", db.message());
        assert!(db.message().contains(part), "{sql}: {:?} lacks {part:?}", db.message());
    }
    // Caught in a savepoint, a failed batch leaves nothing queued in the surviving transaction.
    s.sender
        .batch_execute(
            "BEGIN;
             SAVEPOINT s;
             DO $$ BEGIN PERFORM bytebase_cancel_task_runs('{10,11,0}'); EXCEPTION WHEN invalid_parameter_value THEN NULL; END $$;
             SELECT bytebase_cancel_task_run(12);
             COMMIT",
        )
        .await?;
    assert_eq!(s.drain().await?, [task(12)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_extension_can_live_in_its_own_schema() -> Result<()> {
    lives_in_its_own_schema(Install::Fresh).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pure_sql_edition_can_live_in_its_own_schema() -> Result<()> {
    lives_in_its_own_schema(Install::PureSql).await
}

async fn lives_in_its_own_schema(install: Install) -> Result<()> {
    let cluster = Cluster::start()?;
    let admin = cluster.connect("postgres").await?;
    admin.batch_execute("CREATE DATABASE other").await?;
    let db = cluster.connect("other").await?;
    db.batch_execute("CREATE SCHEMA signals").await?;
    if install == Install::PureSql {
        // The installer uses the first schema on search_path, as CREATE EXTENSION does.
        cluster.run_sql_file("other", SUPERUSER, PURE_INSTALL, &[("PGOPTIONS", "-c search_path=signals")])?;
    } else {
        db.batch_execute("CREATE EXTENSION bytebase_signal SCHEMA signals").await?;
    }
    let schemas: Vec<String> = db
        .query("SELECT DISTINCT pronamespace::regnamespace::text FROM pg_proc WHERE proname LIKE 'bytebase_cancel_%'", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(schemas, ["signals"]);
    let mut listener = RawListener::connect(&cluster.config("other"), CHANNEL).await?;
    db.batch_execute("SELECT signals.bytebase_cancel_task_run(8)").await?;
    db.batch_execute("SET search_path = signals; SELECT bytebase_cancel_task_run(9)").await?;
    let fresh = cluster.connect("other").await?;
    assert_eq!(listener.drain(&fresh).await?, [task(8), task(9)]);
    Ok(())
}

/// The acceptance check with a client that is not ours: `psql` LISTENs and prints what arrives.
async fn an_independent_psql_listener_receives_exactly_the_payload(install: Install) -> Result<()> {
    let s = setup(install).await?;
    let mut psql = s
        .cluster
        .psql(DB)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting psql")?;
    let mut stdin = psql.stdin.take().context("psql stdin")?;
    writeln!(stdin, "LISTEN bytebase_signal;")?;
    stdin.flush()?;
    // Wait until psql's LISTEN is in effect before sending.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = s
            .sender
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'psql' AND query LIKE 'LISTEN%'",
                &[],
            )
            .await?
            .get(0);
        if n == 1 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "psql did not LISTEN within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.sender.batch_execute("BEGIN; SELECT bytebase_cancel_task_run(41); ROLLBACK").await?;
    s.sender.batch_execute("SELECT bytebase_cancel_task_run(42)").await?;
    // psql prints notifications after each command it runs; the notification was committed before
    // these commands were sent, so it is printed by the time psql exits.
    writeln!(stdin, "SELECT 1;\nSELECT 2;")?;
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || psql.wait_with_output()).await??;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
    let received: Vec<&str> = stdout.lines().filter(|l| l.starts_with("Asynchronous notification")).collect();
    assert_eq!(received.len(), 1, "psql output:\n{stdout}");
    assert!(
        received[0].starts_with(r#"Asynchronous notification "bytebase_signal" with payload "{"type":"cancel_task_run","uid":42}" received"#),
        "psql output:\n{stdout}"
    );
    Ok(())
}

/// Pruning is part of sending; a send in a REPEATABLE READ transaction must not fail because
/// another session pruned rows that its snapshot still shows (it would get SQLSTATE 40001).
async fn a_repeatable_read_send_is_not_failed_by_a_concurrent_prune(install: Install) -> Result<()> {
    let mut s = setup(install).await?;
    s.other
        .batch_execute(
            "INSERT INTO bytebase_signal_log (type, uid, created_at, sent_by)
             SELECT 'cancel_task_run', g, now() - interval '2 hours', current_user FROM generate_series(1, 200) g",
        )
        .await?;
    s.sender
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM bytebase_signal_log")
        .await?;
    let pruned: i64 = s.other.query_one("SELECT bytebase_signal_prune()", &[]).await?.get(0);
    assert_eq!(pruned, 200);
    // 64 consecutive ids include a multiple of 64: in READ COMMITTED this send would prune.
    s.sender
        .batch_execute(
            "SELECT bytebase_cancel_task_runs(ARRAY(SELECT generate_series(1, 64)::bigint)); COMMIT",
        )
        .await
        .context("the repeatable-read send failed")?;
    assert_eq!(s.drain().await?.len(), 64);
    Ok(())
}
