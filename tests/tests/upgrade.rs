//! Upgrades: 0.1.0 databases keep working with the new library until they are updated, and
//! `ALTER EXTENSION bytebase_signal UPDATE` produces exactly what a fresh install does. (The
//! delivery suite also runs on an upgraded database: `delivery.rs`, module `upgraded_from_0_1_0`.)

use anyhow::{Context, Result};
use bytebase_signal_tests::cluster::{Cluster, Install};
use bytebase_signal_tests::listen::RawListener;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Everything the extension owns, one line per fact, in a stable order: functions (full
/// definition, privileges, comment), relations, columns, constraints, indexes, initial privileges
/// (what pg_dump restores) and the version.
const CATALOG: &str = r#"
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'bytebase_signal'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
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
ORDER BY 1
"#;

async fn catalog(db: &Client) -> Result<Vec<String>> {
    Ok(db.query(CATALOG, &[]).await?.iter().map(|r| r.get(0)).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_updated_0_1_0_catalog_equals_a_fresh_install() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.create_database_with("fresh", Install::Fresh).await?;
    cluster.create_database_with("upgraded", Install::UpgradedFrom010).await?;
    let fresh = catalog(&cluster.connect("fresh").await?).await?;
    let upgraded = catalog(&cluster.connect("upgraded").await?).await?;
    // Sanity: the snapshot sees what it must compare.
    for part in [
        "function CREATE OR REPLACE FUNCTION public.bytebase_signal_replay",
        "relation bytebase_signal_log",
        "initprivs ",
    ] {
        assert!(fresh.iter().any(|l| l.starts_with(part)), "snapshot lacks {part:?}: {fresh:#?}");
    }
    let only_fresh: Vec<_> = fresh.iter().filter(|l| !upgraded.contains(l)).collect();
    let only_upgraded: Vec<_> = upgraded.iter().filter(|l| !fresh.contains(l)).collect();
    assert!(
        only_fresh.is_empty() && only_upgraded.is_empty(),
        "upgraded catalog differs from a fresh install\nonly fresh: {only_fresh:#?}\nonly upgraded: {only_upgraded:#?}"
    );
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
