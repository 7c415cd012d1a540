//! Least privilege: nobody may send or replay without the README's grants, and with them the
//! application's role sends and the listeners' role replays.

use anyhow::{Context, Result};
use bytebase_signal_client::{Listener, Signal, SignalKind};
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::Install;
use bytebase_signal_tests::wait;
use tokio_postgres::error::SqlState;

/// The two grants the README tells operators to run, verbatim.
const SENDER_GRANT: &str =
    "GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint), bytebase_cancel_plan_check_run(bigint),
    bytebase_cancel_task_runs(bigint[]), bytebase_cancel_plan_check_runs(bigint[]),
    bytebase_cancel_task_run(bigint, text), bytebase_cancel_plan_check_run(bigint, text, bigint),
    bytebase_cancel_task_runs(bigint[], text), bytebase_cancel_plan_check_runs(bigint[], text, bigint)
    TO bytebase_app;";
const LISTENER_GRANT: &str =
    "GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz), bytebase_signal_replay_after(pg_snapshot)
    TO bytebase_listener;";

fn denied(e: tokio_postgres::Error, what: &str) -> Result<String> {
    let db = e.as_db_error().with_context(|| format!("{what}: not a server error: {e}"))?;
    assert_eq!(db.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{what}: {}", db.message());
    Ok(db.message().to_owned())
}

bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    senders_and_listeners_need_exactly_the_readme_grants,
);

async fn senders_and_listeners_need_exactly_the_readme_grants(install: Install) -> Result<()> {
    let readme = include_str!("../../README.md");
    assert!(readme.contains(SENDER_GRANT) && readme.contains(LISTENER_GRANT), "README lost the GRANTs");

    let (cluster, admin) = cluster_with(install).await?;
    admin.batch_execute("CREATE ROLE bytebase_app LOGIN; CREATE ROLE bytebase_listener LOGIN").await?;
    let app = cluster.connect_as(DB, "bytebase_app").await?;
    let listener_role = cluster.connect_as(DB, "bytebase_listener").await?;

    // Before the grants: 42501 everywhere, naming the function.
    let e = app.batch_execute("SELECT bytebase_cancel_task_run(1)").await.expect_err("no grant yet");
    assert!(denied(e, "send")?.contains("bytebase_cancel_task_run"));
    let e = listener_role
        .batch_execute("SELECT * FROM bytebase_signal_replay(now())")
        .await
        .expect_err("no grant");
    denied(e, "replay")?;
    let listener = |config| {
        let mut pg = cluster.config(DB);
        pg.user("bytebase_listener").application_name(APP);
        Listener::new(pg).with_config(config)
    };
    let mut ungranted = start(listener(quick())).await?;
    wait::until("replay found not granted", PATIENCE, || async {
        (ungranted.handle.status().replay_available == Some(false)).then_some(())
    })
    .await?;

    admin.batch_execute(SENDER_GRANT).await?;
    admin.batch_execute(LISTENER_GRANT).await?;
    app.batch_execute("SELECT bytebase_cancel_task_run(1)").await?;
    // Still a plain listener, it got the notification.
    assert_eq!(recv(&mut ungranted.signals).await?, Signal::new(SignalKind::TaskRun, uid(1)));
    ungranted.stop().await?;

    // The log names the sending role, also after SET ROLE, and is closed to the app and listener.
    admin.batch_execute("SET ROLE bytebase_app; SELECT bytebase_cancel_task_run(2); RESET ROLE").await?;
    let sent_by: Vec<String> = admin
        .query("SELECT sent_by::text FROM bytebase_signal_log ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sent_by, ["bytebase_app", "bytebase_app"]);
    for (client, what) in [(&app, "app reads the log"), (&listener_role, "listener reads the log")] {
        denied(client.batch_execute("SELECT * FROM bytebase_signal_log").await.expect_err(what), what)?;
    }
    let e = app.batch_execute("SELECT bytebase_signal_prune()").await.expect_err("app prunes");
    denied(e, "prune")?;
    let e =
        listener_role.batch_execute("SELECT bytebase_cancel_task_run(3)").await.expect_err("listener sends");
    denied(e, "listener sends")?;

    // With its grant, the listener reads the log: its first catch-up looks back one grace period
    // (for senders whose transactions were open when it started), which holds 1 and 2.
    let mut granted = start(listener(quick())).await?;
    next_event(&mut granted.events, replayed).await?;
    assert_eq!(granted.handle.status().replay_available, Some(true));
    assert_eq!(recv(&mut granted.signals).await?.uid, uid(1));
    assert_eq!(recv(&mut granted.signals).await?.uid, uid(2));
    app.batch_execute("SELECT bytebase_cancel_task_run(4)").await?;
    assert_eq!(recv(&mut granted.signals).await?.uid, uid(4));
    app.batch_execute("SELECT bytebase_cancel_plan_check_runs('{5}', 'proj-a', 1)")
        .await
        .context("project-scoped send")?;
    assert_eq!(
        recv(&mut granted.signals).await?,
        Signal::new(SignalKind::PlanCheckRun, uid(5)).with_project("proj-a").with_approval_input_version(1)
    );
    granted.stop().await.map(drop)
}
