//! Upgrades: older databases keep working with the new library until they are updated, and
//! `ALTER EXTENSION bytebase_signal UPDATE` produces exactly what a fresh install does; so does
//! running the pure-SQL edition's installer over its 0.2.0. (The delivery suite also runs on every
//! updated database: `delivery.rs`.)

use anyhow::{Context, Result};
use bytebase_signal_client::{Listener, ListenerConfig};
use bytebase_signal_tests::cluster::{terminate_backends, Cluster, Install};
use bytebase_signal_tests::listen::RawListener;
use bytebase_signal_tests::listening::{next_event, quick, recv, replayed, start, APP};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

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
        (Install::PureSql, Install::PureSqlUpgradedFrom020),
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
/// table) until it is updated, and a listener replays its log; then the README's recipe updates it
/// in one transaction without the listeners losing their grant.
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
    let mut listener =
        start(Listener::new(pg).with_config(ListenerConfig { strict: true, ..quick() })).await?;
    next_event(&mut listener.events, replayed).await?;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(recv(&mut listener.signals).await?.uid.get());
    }
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(listener.handle.status().replay_available, Some(true));

    // The README's recipe: update and re-grant the listeners in one transaction.
    let readme = include_str!("../../README.md");
    assert!(readme.contains(UPDATE_RECIPE), "README lost the update recipe");
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

/// The README's update recipe from 0.2.0, verbatim.
const UPDATE_RECIPE: &str = "BEGIN;
ALTER EXTENSION bytebase_signal UPDATE;
GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz) TO bytebase_listener;
COMMIT;";
