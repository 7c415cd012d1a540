//! `bytebase-signal doctor` against real servers, one cluster per scenario: a healthy database,
//! each edition; the extension missing; a role without grants; a standby; a stuck listener
//! filling the notification queue; a transaction-pooling PgBouncer; a TLS server. Each asserts
//! the line of the check concerned and the exit code.
//!
//! `make test` builds the binary first (`cargo build -p bytebase-signal-cli`).

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::Listener;
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::{Cluster, Install, SUPERUSER};
use bytebase_signal_tests::libpq::quote;
use bytebase_signal_tests::ours::{doctor, DoctorLine, DoctorRun};
use bytebase_signal_tests::pgbouncer::{PgBouncer, PoolMode};
use bytebase_signal_tests::pki::{Pki, ServerCert, SERVER_NAME};
use bytebase_signal_tests::tls_cluster::Hba;
use bytebase_signal_tests::wait;

/// The checks, in the order the doctor prints them.
const CHECKS: [&str; 9] = [
    "connection",
    "server role",
    "edition",
    "privileges",
    "log",
    "notification queue",
    "listeners",
    "round trip",
    "clock skew",
];

/// A conninfo for database [`DB`] of `cluster` at `port` (the server's or a pooler's) as `user`.
fn dsn(cluster: &Cluster, port: u16, user: &str) -> String {
    format!("host={} port={port} user={user} dbname={DB}", cluster.host())
}

/// The doctor on `dsn` with `args`, in a clean environment.
async fn run(dsn: &str, args: &[&str]) -> Result<DoctorRun> {
    doctor(dsn, args, std::iter::empty::<(&str, &str)>()).await
}

/// Asserts that `line` has `status` and that its found text contains every one of `parts`.
fn assert_line(line: &DoctorLine, status: &str, parts: &[&str]) {
    assert_eq!(line.status, status, "{line:#?}");
    for part in parts {
        assert!(line.found.contains(part), "{:?} lacks {part:?}", line.found);
    }
}

/// Asserts the exit code, showing the whole output if it is not `code`.
fn assert_exit(run: &DoctorRun, code: i32) {
    assert_eq!(run.code, Some(code), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    a_healthy_database_passes_every_check_and_the_json_agrees,
);

async fn a_healthy_database_passes_every_check_and_the_json_agrees(install: Install) -> Result<()> {
    let (cluster, _sender) = cluster_with(install).await?;
    let dsn = dsn(&cluster, cluster.port(), SUPERUSER);
    // A listener as a replica runs it: the default application_name.
    let mut l = start(Listener::from_dsn(&dsn)?.with_config(quick())).await?;
    next_event(&mut l.events, replayed).await?;

    let out = run(&dsn, &[]).await?;
    assert_exit(&out, 0);
    let lines = out.lines();
    let names: Vec<&str> = lines.iter().map(|l| l.check.as_str()).collect();
    assert_eq!(names, CHECKS, "{}", out.stdout);
    for line in &lines {
        assert_line(line, "ok", &[]);
        assert_eq!(line.action, None, "{line:#?}");
    }
    let port = cluster.port().to_string();
    assert_line(&lines[0], "ok", &["host 127.0.0.1, port ", &port, "user postgres, not encrypted"]);
    assert_line(&lines[1], "ok", &["primary, PostgreSQL "]);
    let edition = if install.is_pure_sql() {
        "pure-SQL edition 0.4.0 in schema public"
    } else {
        "extension 0.4.0 in schema public"
    };
    assert_line(&lines[2], "ok", &[edition]);
    assert_line(&lines[3], "ok", &["role postgres may send and replay"]);
    assert_line(&lines[4], "ok", &["retention 1h (the default)", "rows"]);
    assert_line(&lines[5], "ok", &["0.0 % full (bytebase_signal.notify_queue_limit 50.0 %)"]);
    assert_line(&lines[6], "ok", &["1 listener: pid ", "'bytebase-signal' from 127.0.0.1"]);
    assert_line(
        &lines[7],
        "ok",
        &["a cancel for project bytebase-signal-doctor/", "arrived on channel bytebase_signal in"],
    );
    assert!(out.stdout.ends_with("healthy: 0 failures, 0 warnings, 0 not run\n"), "{}", out.stdout);

    // The probe went through the real send path, to the real listener: a cancel for a project
    // no run belongs to, under a uid no sequence reaches.
    let probe = recv(&mut l.signals).await?;
    assert_eq!(probe.uid.get(), i64::MAX);
    let project = probe.project.as_deref().context("the probe names no project")?;
    assert!(project.starts_with("bytebase-signal-doctor/"), "{project}");

    let json = run(&dsn, &["--json"]).await?;
    assert_exit(&json, 0);
    let value = json.json()?;
    assert_eq!(value["healthy"], true, "{value}");
    let checks = value["checks"].as_array().context("checks")?;
    let json_names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(json_names, CHECKS);
    assert!(checks.iter().all(|c| c["status"] == "ok" && c["action"].is_null()), "{value}");
    assert_eq!(value["not_run"], serde_json::json!([]));
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_edition_the_doctor_fails_and_names_create_extension() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.admin().await?.batch_execute(&format!("CREATE DATABASE {DB}")).await?;
    let out = run(&dsn(&cluster, cluster.port(), SUPERUSER), &[]).await?;
    assert_exit(&out, 1);
    let edition = out.line("edition")?;
    assert_line(&edition, "fail", &["neither the extension nor the pure-SQL edition is installed"]);
    let action = edition.action.context("no action")?;
    assert!(
        action.contains("CREATE EXTENSION bytebase_signal (0.4.0 is available on this server)"),
        "{action}"
    );
    for check in ["privileges", "log"] {
        assert_line(&out.line(check)?, "skip", &["not run: no edition is installed"]);
    }
    // LISTEN and NOTIFY are still tried, on the doctor's own channel.
    assert_line(
        &out.line("round trip")?,
        "warn",
        &["pg_notify on the doctor's own channel", "no edition is installed"],
    );
    assert!(out.stdout.ends_with("unhealthy: 1 failure, 2 warnings, 2 not run\n"), "{}", out.stdout);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_without_grants_fails_and_a_sender_only_role_warns() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    sender.batch_execute("CREATE ROLE nobody LOGIN").await?;
    let dsn = dsn(&cluster, cluster.port(), "nobody");

    let out = run(&dsn, &[]).await?;
    assert_exit(&out, 1);
    let privileges = out.line("privileges")?;
    assert_line(&privileges, "fail", &["role nobody may neither send nor replay"]);
    let action = privileges.action.context("no action")?;
    for part in [
        "GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint), bytebase_cancel_plan_check_run(bigint),",
        "bytebase_cancel_plan_check_runs(bigint[], text, bigint) TO \"nobody\"",
        "GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz), bytebase_signal_replay_after(pg_snapshot) TO \"nobody\"",
    ] {
        assert!(action.contains(part), "{action:?} lacks {part:?}");
    }
    assert_line(&out.line("log")?, "warn", &["this role can read neither the log nor its replay"]);
    assert_line(
        &out.line("round trip")?,
        "warn",
        &["role nobody may not execute bytebase_cancel_task_run(bigint, text)"],
    );

    // The application's grant only, as the README gives it: fit for a sender, and says so.
    sender
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint), bytebase_cancel_plan_check_run(bigint),
                 bytebase_cancel_task_runs(bigint[]), bytebase_cancel_plan_check_runs(bigint[]),
                 bytebase_cancel_task_run(bigint, text), bytebase_cancel_plan_check_run(bigint, text, bigint),
                 bytebase_cancel_task_runs(bigint[], text), bytebase_cancel_plan_check_runs(bigint[], text, bigint)
                 TO nobody",
        )
        .await?;
    let out = run(&dsn, &[]).await?;
    assert_exit(&out, 0);
    let privileges = out.line("privileges")?;
    assert_line(&privileges, "warn", &["role nobody may send but not replay", "sender-only"]);
    assert_eq!(
        privileges.action.as_deref(),
        Some(
            "if it also listens: GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz), \
             bytebase_signal_replay_after(pg_snapshot) TO \"nobody\""
        )
    );
    // Now it takes the real send path.
    assert_line(&out.line("round trip")?, "ok", &["sent with bytebase_cancel_task_run(bigint, text)"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_fails_and_points_at_the_primary() -> Result<()> {
    let (primary, _sender) = cluster_with_extension().await?;
    let standby = primary.start_standby()?;
    let out = run(&dsn(&standby, standby.port(), SUPERUSER), &[]).await?;
    assert_exit(&out, 1);
    let role = out.line("server role")?;
    assert_line(&role, "fail", &["standby (in recovery)", "refuses LISTEN during recovery"]);
    assert!(role.action.context("no action")?.contains("target_session_attrs=read-write"));
    // What a standby replicates is still checked; what only a primary does is not tried.
    assert_line(&out.line("edition")?, "ok", &["extension 0.4.0"]);
    for check in ["notification queue", "listeners", "round trip"] {
        assert_line(&out.line(check)?, "skip", &["the server is a standby"]);
    }
    Ok(())
}

/// Fills the notification queue past 5 % in a second or two: 60,000 notifications of nearly a
/// page each (the queue holds 8 GB in pages of 8 kB on every supported major), one
/// transaction per 5,000 so that no backend holds them all in memory at once. On
/// [`FILLER_CHANNEL`], which `hold_the_queue`'s session listens to.
fn fill_queue() -> String {
    format!(
        "DO $$ BEGIN
    FOR i IN 1..12 LOOP
        PERFORM pg_notify('{FILLER_CHANNEL}', repeat('x', 7900) || j) FROM generate_series(1, 5000) AS j;
        COMMIT;
    END LOOP;
END $$"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_listener_filling_the_queue_is_named_and_at_the_limit_it_fails() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    // A listening session that stopped reading: in a transaction, it holds the queue for all.
    let stuck = cluster.connect(DB).await?;
    hold_the_queue(&stuck).await?;
    let stuck_pid: i32 = stuck.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    sender.batch_execute(&fill_queue()).await?;
    let usage: f64 = sender.query_one("SELECT pg_notification_queue_usage()", &[]).await?.get(0);
    ensure!(usage >= 0.05, "the queue is only {usage} full");
    let dsn = dsn(&cluster, cluster.port(), SUPERUSER);

    let out = run(&dsn, &[]).await?;
    assert_exit(&out, 0);
    let queue = out.line("notification queue")?;
    let holder = format!("pid {stuck_pid} (application_name 'bytebase-signal-tests', client 127.0.0.1, idle in transaction since ");
    assert_line(&queue, "warn", &["% full (bytebase_signal.notify_queue_limit 50.0 %)", &holder]);
    assert!(queue.action.context("no action")?.contains(&format!("pg_terminate_backend({stuck_pid})")));
    // Below the limit the cancels still NOTIFY.
    assert_line(&out.line("round trip")?, "ok", &["arrived"]);

    // At the limit, logged cancels go without NOTIFY: the queue fails, and so does the probe.
    sender
        .batch_execute(&format!("ALTER DATABASE {DB} SET bytebase_signal.notify_queue_limit = 0.04"))
        .await?;
    let out = run(&dsn, &["--timeout", "1"]).await?;
    assert_exit(&out, 1);
    assert_line(
        &out.line("notification queue")?,
        "fail",
        &["(bytebase_signal.notify_queue_limit 4.0 %)", "without NOTIFY", &holder],
    );
    assert_line(
        &out.line("round trip")?,
        "fail",
        &["the probe did not arrive within 1 s", "logged without NOTIFY"],
    );
    drop(stuck);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_transaction_pool_the_round_trip_fails_naming_the_pooler() -> Result<()> {
    let (cluster, _sender) = cluster_with_extension().await?;
    let bouncer = PgBouncer::start(&cluster, DB, PoolMode::Transaction, 4)?;
    let out = run(&dsn(&cluster, bouncer.port(), SUPERUSER), &["--timeout", "2"]).await?;
    assert_exit(&out, 1);
    assert_line(&out.line("connection")?, "ok", &[&format!("port {}", bouncer.port())]);
    let trip = out.line("round trip")?;
    assert_line(&trip, "fail", &["a transaction-pooling proxy (PgBouncer pool_mode=transaction?)"]);
    assert!(trip.action.context("no action")?.contains("pool_mode=session"));
    // Everything else reads fine through the pool.
    let others = out.lines().into_iter().filter(|l| l.check != "round trip" && l.check != "listeners");
    for line in others {
        assert_line(&line, "ok", &[]);
    }
    drop(bouncer);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_the_connection_line_names_the_version_and_cipher() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = Cluster::builder().tls(&pki, ServerCert::Valid).hba(Hba::HostsslTrust).start()?;
    cluster.create_database_with(DB, Install::Fresh).await?;
    let dsn = format!(
        "host={SERVER_NAME} hostaddr={} port={} user={SUPERUSER} dbname={DB} sslmode=verify-full sslrootcert={}",
        cluster.host(),
        cluster.port(),
        quote(pki.ca_cert())
    );
    let out = run(&dsn, &[]).await?;
    assert_exit(&out, 0);
    let at = format!("host {SERVER_NAME} (127.0.0.1), port {}, user postgres, TLSv1.3 TLS_", cluster.port());
    assert_line(&out.line("connection")?, "ok", &[&at]);
    // The second connection (the round trip's) is made with the same settings.
    assert_line(&out.line("round trip")?, "ok", &["arrived"]);
    // The doctor leaves no session behind.
    let admin = cluster.admin_on(DB).await?;
    wait::until("the doctor's sessions to end", PATIENCE, || async {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bytebase-signal-doctor'",
                &[],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) == 0).then_some(())
    })
    .await?;
    Ok(())
}
