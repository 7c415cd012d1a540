//! Upgrades: older databases keep working with the new library until they are updated, and
//! `ALTER EXTENSION bytebase_signal UPDATE` produces exactly what a fresh install does; so does
//! running the pure-SQL edition's installer over its older versions; no cancel is lost while an
//! update runs under a listener; listeners of 0.3.0 read a 0.4.0 log, and listeners of this
//! release read a 0.3.0 one. (The delivery suite also runs on every updated database:
//! `delivery.rs`.)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytebase_signal_client::Listener;
use bytebase_signal_tests::client_listener::{
    disconnected, next_event, quick, recv, replayed, start, APP, PATIENCE,
};
use bytebase_signal_tests::cluster::{
    terminate_backends, Cluster, Install, PURE_INSTALL, PURE_INSTALL_0_2_0, PURE_INSTALL_0_3_0, SUPERUSER,
};
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::raw_listener::RawListener;
use bytebase_signal_tests::wait;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

/// Everything an edition owns, one line per fact, in a stable order: functions (full definition,
/// privileges, comment), relations, columns, constraints, indexes, initial privileges (what
/// pg_dump restores) and the version. The extension's objects are its members; the pure-SQL
/// edition's are found by name in the schema of its internal send function.
const CATALOG: &str = r#"
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'bytebase_signal'),
pure AS (SELECT pronamespace AS nsp FROM pg_proc WHERE proname = '_bytebase_signal_send'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION
    SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p, pure
     WHERE p.pronamespace = pure.nsp AND (p.proname LIKE 'bytebase\_%' OR p.proname LIKE '\_bytebase\_signal\_%')
    UNION
    SELECT 'pg_class'::regclass, c.oid FROM pg_class c, pure
     WHERE c.relnamespace = pure.nsp AND c.relname = 'bytebase_signal_log' AND c.relkind = 'r'
),
tables AS (SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM members
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid)
       || ' acl=' || coalesce(p.proacl::text, 'default')
       || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT 'relation ' || relname || ' kind=' || relkind::text || ' acl=' || coalesce(relacl::text, 'default')
       || ' comment=' || coalesce(obj_description(oid, 'pg_class'), '')
  FROM tables
UNION ALL
SELECT 'column ' || t.relname || '.' || a.attname || ' #' || a.attnum || ' '
       || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
       || ' identity=' || a.attidentity::text || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
  FROM tables t
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = t.oid AND ad.adnum = a.attnum
UNION ALL
SELECT 'constraint ' || t.relname || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)
  FROM tables t JOIN pg_constraint co ON co.conrelid = t.oid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM tables t JOIN pg_index i ON i.indrelid = t.oid
UNION ALL
SELECT 'initprivs ' || pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) || ' ' || ip.initprivs::text
  FROM pg_init_privs ip JOIN members m ON m.classid = ip.classoid AND m.objid = ip.objoid
UNION ALL
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'bytebase_signal'
UNION ALL
SELECT 'version ' || obj_description(p.oid, 'pg_proc') FROM pg_proc p, pure
 WHERE p.pronamespace = pure.nsp AND p.proname = '_bytebase_signal_send'
ORDER BY 1
"#;

async fn catalog(db: &Client) -> Result<Vec<String>> {
    Ok(db.query(CATALOG, &[]).await?.iter().map(|r| r.get(0)).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_updated_catalog_equals_a_fresh_install() -> Result<()> {
    let cluster = Cluster::start()?;
    for (fresh, updated) in [
        (Install::Fresh, Install::UpgradedFrom010),
        (Install::Fresh, Install::UpgradedFrom020),
        (Install::Fresh, Install::UpgradedFrom030),
        (Install::PureSql, Install::PureSqlUpgradedFrom020),
        (Install::PureSql, Install::PureSqlUpgradedFrom030),
    ] {
        let (a, b) = (format!("{fresh:?}_{updated:?}").to_lowercase(), format!("{updated:?}").to_lowercase());
        cluster.create_database_with(&a, fresh).await?;
        cluster.create_database_with(&b, updated).await?;
        let fresh_catalog = catalog(&cluster.connect(&a).await?).await?;
        let updated_catalog = catalog(&cluster.connect(&b).await?).await?;
        // Sanity: the snapshot sees what it must compare.
        for part in [
            "function CREATE OR REPLACE FUNCTION public.bytebase_signal_replay",
            "function CREATE OR REPLACE FUNCTION public.bytebase_cancel_plan_check_runs(uids bigint[], project text, approval_input_version bigint DEFAULT NULL::bigint)",
            "column bytebase_signal_log.approval_input_version #7 bigint",
            "column bytebase_signal_log.xid #8 xid8 notnull=true identity= default=pg_current_xact_id()",
            "function CREATE OR REPLACE FUNCTION public.bytebase_signal_replay_after(after pg_snapshot)",
            "index CREATE INDEX bytebase_signal_log_xid_idx ON public.bytebase_signal_log USING btree (xid)",
            "relation bytebase_signal_log",
            "version ",
        ] {
            assert!(fresh_catalog.iter().any(|l| l.starts_with(part)), "{fresh:?} snapshot lacks {part:?}: {fresh_catalog:#?}");
        }
        if fresh == Install::Fresh {
            assert!(fresh_catalog.iter().any(|l| l.starts_with("initprivs ")), "{fresh_catalog:#?}");
        }
        let only_fresh: Vec<_> = fresh_catalog.iter().filter(|l| !updated_catalog.contains(l)).collect();
        let only_updated: Vec<_> = updated_catalog.iter().filter(|l| !fresh_catalog.contains(l)).collect();
        assert!(
            only_fresh.is_empty() && only_updated.is_empty(),
            "{updated:?} differs from {fresh:?}\nonly fresh: {only_fresh:#?}\nonly updated: {only_updated:#?}"
        );
    }
    Ok(())
}

/// The new library is installed before anyone runs ALTER EXTENSION: a 0.1.0 database must keep
/// its 0.1.0 behaviour (NOTIFY only, callable by everyone) until it is updated, then get 0.2.0's.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_0_database_keeps_working_with_the_new_library_until_updated() -> Result<()> {
    let cluster = Cluster::start()?;
    let admin = cluster.connect("postgres").await?;
    admin.batch_execute("CREATE DATABASE app").await?;
    admin.batch_execute("CREATE ROLE app LOGIN").await?;
    let db = cluster.connect("app").await?;
    db.batch_execute("CREATE EXTENSION bytebase_signal VERSION '0.1.0'").await?;
    let mut listener = RawListener::connect(&cluster.config("app"), "bytebase_signal").await?;
    let app = cluster.connect_as("app", "app").await?;

    app.batch_execute("SELECT bytebase_cancel_task_run(1); SELECT bytebase_cancel_plan_check_runs('{2,3}')")
        .await
        .context("0.1.0 functions through the new library")?;
    assert_eq!(
        listener.drain(&db).await?,
        [
            r#"{"type":"cancel_task_run","uid":1}"#,
            r#"{"type":"cancel_plan_check_run","uid":2}"#,
            r#"{"type":"cancel_plan_check_run","uid":3}"#
        ]
    );

    db.batch_execute("ALTER EXTENSION bytebase_signal UPDATE").await?;
    let denied = app.batch_execute("SELECT bytebase_cancel_task_run(4)").await.expect_err("PUBLIC revoked");
    assert_eq!(denied.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    // Sessions opened before the update see the new functions at once.
    db.batch_execute("SELECT bytebase_cancel_task_run(5)").await?;
    assert_eq!(listener.drain(&db).await?, [r#"{"type":"cancel_task_run","uid":5}"#]);
    let logged: Vec<i64> = db
        .query("SELECT uid FROM bytebase_signal_log ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(logged, [5], "only 0.2.0 sends are logged");
    Ok(())
}

/// A 0.2.0 database with the new library: its functions keep 0.2.0's behaviour (and its log
/// table) until it is updated, and a listener replays its log; then docs/upgrading.md's recipe
/// updates it in one transaction without the listeners losing their grant.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_2_0_database_keeps_working_and_updates_with_the_readme_recipe() -> Result<()> {
    let cluster = Cluster::start()?;
    let admin = cluster.connect("postgres").await?;
    admin.batch_execute("CREATE DATABASE app").await?;
    admin.batch_execute("CREATE ROLE bytebase_listener LOGIN").await?;
    let db = cluster.connect("app").await?;
    db.batch_execute(
        "CREATE EXTENSION bytebase_signal VERSION '0.2.0';
         GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz) TO bytebase_listener",
    )
    .await?;
    db.batch_execute("SELECT bytebase_cancel_task_run(1); SELECT bytebase_cancel_plan_check_runs('{2,3}')")
        .await
        .context("0.2.0 functions through the new library")?;
    let mut raw = RawListener::connect(&cluster.config("app"), "bytebase_signal").await?;

    // A listener of this release reads 0.2.0's replay (without project columns).
    let mut pg = cluster.config("app");
    pg.user("bytebase_listener").application_name(APP);
    // Strict: it acts only on what its replay confirms, so the replay statement it prepared
    // before the update must read the new columns after it.
    let mut listener = start(Listener::new(pg).with_config(quick().strict(true))).await?;
    next_event(&mut listener.events, replayed).await?;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(recv(&mut listener.signals).await?.uid.get());
    }
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(listener.handle.status().replay_available, Some(true));

    // docs/upgrading.md's recipe: update and re-grant the listeners in one transaction.
    let upgrading = include_str!("../../docs/upgrading.md");
    assert!(upgrading.contains(UPDATE_RECIPE), "docs/upgrading.md lost the update recipe");
    db.batch_execute(UPDATE_RECIPE).await?;
    let version: String = db
        .query_one("SELECT extversion FROM pg_extension WHERE extname = 'bytebase_signal'", &[])
        .await?
        .get(0);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    db.batch_execute("SELECT bytebase_cancel_task_run(4, 'proj-a')").await?;
    assert_eq!(raw.drain(&db).await?, [r#"{"type":"cancel_task_run","uid":4,"project":"proj-a"}"#]);
    let signal = recv(&mut listener.signals).await?;
    assert_eq!((signal.uid.get(), signal.project.as_deref()), (4, Some("proj-a")));
    assert_eq!(listener.handle.status().unconfirmed, 0, "confirmed on the connection from before the update");
    // The listener, still granted, replays the new rows with their project after a reconnect.
    terminate_backends(&db, APP).await?;
    next_event(&mut listener.events, replayed).await?;
    assert_eq!(listener.handle.status().replay_available, Some(true));
    listener.stop().await.map(drop)
}

/// docs/upgrading.md's update recipe from 0.2.0, verbatim.
const UPDATE_RECIPE: &str = "BEGIN;
ALTER EXTENSION bytebase_signal UPDATE;
GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz), bytebase_signal_replay_after(pg_snapshot)
    TO bytebase_listener;
COMMIT;";

/// Updating while cancels flow: a listener of this release listens, a sender commits a cancel
/// every few milliseconds, and the update runs in the middle (the extension's ALTER EXTENSION, or
/// the pure-SQL installer over its older version). The sender runs with
/// `bytebase_signal.notify_queue_limit = 0`, so from the update on its cancels go without NOTIFY:
/// they reach the listener only from the log, which it finds by looking again at what the
/// database offers (no reconnect needed); then its connection is cut and it catches up on the
/// updated database. Every cancel whose call returned arrives.
#[tokio::test(flavor = "multi_thread")]
async fn updating_under_a_running_listener_loses_no_cancel() -> Result<()> {
    for (from, pure) in
        [("0.1.0", false), ("0.2.0", false), ("0.3.0", false), ("0.2.0", true), ("0.3.0", true)]
    {
        let cluster = Cluster::start()?;
        let admin = cluster.connect("postgres").await?;
        admin.batch_execute("CREATE DATABASE app").await?;
        let db = cluster.connect("app").await?;
        if pure {
            let fixture = if from == "0.2.0" { PURE_INSTALL_0_2_0 } else { PURE_INSTALL_0_3_0 };
            cluster.run_sql_file("app", SUPERUSER, fixture, &[])?;
        } else {
            db.batch_execute(&format!("CREATE EXTENSION bytebase_signal VERSION '{from}'")).await?;
        }
        let mut pg = cluster.config("app");
        pg.application_name(APP);
        let mut l = start(Listener::new(pg).with_config(quick())).await?;
        if from != "0.1.0" {
            next_event(&mut l.events, replayed).await?; // (0.1.0 has no log to catch up from)
        }

        let stop = CancellationToken::new();
        let count = Arc::new(AtomicU64::new(0));
        let sending = tokio::spawn(send_until(cluster.config("app"), Arc::clone(&count), stop.clone()));
        let sent_at_least = |n: u64| {
            let count = Arc::clone(&count);
            move || {
                let count = Arc::clone(&count);
                async move { (count.load(Ordering::Relaxed) >= n).then_some(()) }
            }
        };
        // Let a few go before, and some during, the update.
        wait::until("sends before the update", PATIENCE, sent_at_least(20)).await?;
        if pure {
            cluster.run_sql_file("app", SUPERUSER, PURE_INSTALL, &[])?;
        } else {
            db.batch_execute("ALTER EXTENSION bytebase_signal UPDATE").await?;
        }
        let after = count.load(Ordering::Relaxed);
        wait::until("sends after the update", PATIENCE, sent_at_least(after + 20)).await?;
        terminate_backends(&db, APP).await?;
        wait::until("sends after the cut", PATIENCE, sent_at_least(after + 40)).await?;
        stop.cancel();
        let sent = sending.await??;
        let mut got = BTreeSet::new();
        while got.len() < sent.len() {
            let signal = recv(&mut l.signals).await.with_context(|| {
                format!(
                    "from {from} (pure: {pure}): missing {:?}",
                    sent.difference(&got).take(10).collect::<Vec<_>>()
                )
            })?;
            got.insert(signal.uid.get());
        }
        assert_eq!(got, sent, "from {from} (pure: {pure})");
        l.stop().await?;
    }
    Ok(())
}

/// Sends a task-run cancel every few milliseconds until `stop`, with
/// `bytebase_signal.notify_queue_limit = 0` (no NOTIFY once the database is at 0.4.0), counting
/// in `count`. A call that failed (its outcome is unknown while the update runs) is retried with
/// the same uid until it returns; a duplicate is harmless. Returns the uids whose call returned.
async fn send_until(
    pg: tokio_postgres::Config,
    count: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Result<BTreeSet<i64>> {
    let (client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute("SET bytebase_signal.notify_queue_limit = 0").await?;
    let mut sent = BTreeSet::new();
    let mut uid = 1_i64;
    while !stop.is_cancelled() {
        // Not a prepared statement: the update replaces the function under it.
        if client.batch_execute(&format!("SELECT bytebase_cancel_task_run({uid})")).await.is_ok() {
            sent.insert(uid);
            count.fetch_add(1, Ordering::Relaxed);
            uid += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // the senders' own pace
    }
    Ok(sent)
}

/// A listener of 0.3.0 reads a 0.4.0 database: its replay statement, as it sent it, still runs
/// and returns what was logged (the time-based replay did not change).
#[tokio::test(flavor = "multi_thread")]
async fn a_0_3_0_listeners_replay_reads_a_0_4_0_log() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.create_database_with("app", Install::Fresh).await?;
    let db = cluster.connect("app").await?;
    db.batch_execute("SELECT bytebase_cancel_task_run(1); SELECT bytebase_cancel_plan_check_run(2, 'p', 3)")
        .await?;
    // 0.3.0's client/src/replay.rs, verbatim.
    const REPLAY_0_3_0: &str = "SELECT now(), r.type, r.uid, r.project, r.approval_input_version \
           FROM (SELECT 1) AS one \
           LEFT JOIN bytebase_signal_replay(coalesce($1::timestamptz, now()) - make_interval(secs => $2::float8)) AS r \
             ON $3::bigint[] IS NULL OR r.uid = ANY ($3) \
          ORDER BY r.created_at, r.id";
    let statement = db.prepare(REPLAY_0_3_0).await?;
    let rows = db.query(&statement, &[&None::<std::time::SystemTime>, &60.0_f64, &None::<Vec<i64>>]).await?;
    let got: Vec<(String, i64, Option<String>, Option<i64>)> =
        rows.iter().map(|r| (r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    assert_eq!(
        got,
        [
            ("cancel_task_run".to_owned(), 1, None, None),
            ("cancel_plan_check_run".to_owned(), 2, Some("p".to_owned()), Some(3)),
        ]
    );
    Ok(())
}

/// A database left at 0.3.0 (no exact replays): a listener of this release catches up on it by
/// time, as 0.3.0's listeners did.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_0_3_0_database_the_listener_catches_up_by_time() -> Result<()> {
    let cluster = Cluster::start()?;
    let admin = cluster.connect("postgres").await?;
    admin.batch_execute("CREATE DATABASE app").await?;
    let db = cluster.connect("app").await?;
    db.batch_execute("CREATE EXTENSION bytebase_signal VERSION '0.3.0'").await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let mut pg = cluster.config_via("app", proxy.port());
    pg.application_name(APP);
    let mut l = start(Listener::new(pg).with_config(quick())).await?;
    next_event(&mut l.events, replayed).await?;
    proxy.set_mode(Mode::Refuse);
    next_event(&mut l.events, disconnected).await?;
    db.batch_execute("SELECT bytebase_cancel_task_runs('{7,8}')").await?;
    proxy.set_mode(Mode::Forward);
    next_event(&mut l.events, replayed).await?;
    let got: BTreeSet<i64> =
        [recv(&mut l.signals).await?.uid.get(), recv(&mut l.signals).await?.uid.get()].into();
    assert_eq!(got, BTreeSet::from([7, 8]));
    assert_eq!(l.handle.status().replay_available, Some(true));
    l.stop().await.map(drop)
}
