//! The two editions are interchangeable: the extension and the pure-SQL edition (`sql/pure`), side
//! by side in two databases of one cluster, are given the same statements in the same order and
//! must answer alike: the same rows, the same SQLSTATEs, messages, details and hints, the same
//! notifications (byte for byte, in the same order), the same log rows and replay, the same
//! declared API (attributes, privileges, comments, table definition). Any drift in either edition
//! fails here, naming the statement.
//!
//! The rest of the end-to-end suite runs against both editions as well (`Install::PureSql` in
//! `delivery.rs`, `privileges.rs`, `cli.rs`, `recovery.rs`).

use anyhow::{ensure, Context, Result};
use bytebase_signal_tests::cluster::{Cluster, Install, PURE_INSTALL, PURE_UNINSTALL, SUPERUSER};

/// The scripts that move a database between editions.
const MOVE_FROM_EXTENSION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/pure/move-from-extension.sql");
const MOVE_TO_EXTENSION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/pure/move-to-extension.sql");
use bytebase_signal_tests::raw_listener::RawListener;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The role the privilege scripts act as (roles are cluster-wide, so both databases share it).
const APP_ROLE: &str = "conformance_app";

/// Each entry runs as one simple-query message (several statements form one implicit
/// transaction unless they say BEGIN), on both editions in turn. Settings statements are reset by
/// the entry that follows them, so every entry starts from the same state on both sides.
const SCRIPTS: &[&str] = &[
    // The declared API.
    r"SELECT p.oid::regprocedure, pg_get_function_result(p.oid), p.provolatile, p.proparallel,
            p.proisstrict, p.prosecdef, p.proconfig, p.proacl, obj_description(p.oid, 'pg_proc')
       FROM pg_proc p WHERE p.proname LIKE 'bytebase\_%' ORDER BY p.oid::regprocedure::text",
    "SELECT prosrc FROM pg_proc WHERE proname = 'bytebase_signal_replay'",
    "SELECT prosrc FROM pg_proc WHERE proname = 'bytebase_signal_replay_after'",
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
            pg_get_expr(d.adbin, d.adrelid)
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = 'bytebase_signal_log'::regclass AND a.attnum > 0 ORDER BY a.attnum",
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
      WHERE conrelid = 'bytebase_signal_log'::regclass ORDER BY 1",
    "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'bytebase_signal_log'::regclass ORDER BY 1",
    "SELECT relacl, obj_description(oid, 'pg_class') FROM pg_class WHERE oid = 'bytebase_signal_log'::regclass",
    // Single forms: the exact bytes, the edges, every rejection.
    "SELECT bytebase_cancel_task_run(42)",
    "SELECT bytebase_cancel_plan_check_run(7)",
    "SELECT bytebase_cancel_task_run(9223372036854775807)",
    "SELECT bytebase_cancel_task_run(NULL)",
    "SELECT bytebase_cancel_plan_check_run(NULL)",
    "SELECT bytebase_cancel_task_run(0)",
    "SELECT bytebase_cancel_plan_check_run(-1)",
    "SELECT bytebase_cancel_task_run(-9223372036854775808)",
    "SELECT bytebase_cancel_task_run('x')",
    "SELECT bytebase_cancel_task_run(1.5)",
    // Batch forms.
    "SELECT bytebase_cancel_task_runs(NULL)",
    "SELECT bytebase_cancel_plan_check_runs(NULL)",
    "SELECT bytebase_cancel_task_runs('{}')",
    "SELECT bytebase_cancel_task_runs('{3,1,3,2,1}')",
    "SELECT bytebase_cancel_plan_check_runs('{3,1,3,2,1}')",
    "SELECT bytebase_cancel_task_runs('{NULL}')",
    "SELECT bytebase_cancel_task_runs('{1,NULL,3}')",
    "SELECT bytebase_cancel_plan_check_runs('{5,-1,NULL}')",
    "SELECT bytebase_cancel_plan_check_runs('{5,NULL,-1}')",
    "SELECT bytebase_cancel_task_runs('{{1,2},{3,-4}}')",
    "SELECT bytebase_cancel_task_runs('{{11,12},{13,11}}')",
    "SELECT bytebase_cancel_task_runs('[0:2]={7,8,7}')",
    // Crosses several multiples of 64 ids: the pruning path runs.
    "SELECT bytebase_cancel_task_runs(ARRAY(SELECT generate_series(1, 300)::bigint))",
    // Project-scoped forms (0.3.0): the uid first, then the project, then the version.
    "SELECT bytebase_cancel_task_run(1, 'proj-a')",
    "SELECT bytebase_cancel_task_run(1, NULL)",
    "SELECT bytebase_cancel_task_run(1, '')",
    "SELECT bytebase_cancel_task_run(1, repeat('p', 1025))",
    "SELECT bytebase_cancel_task_run(1, repeat('é', 512))",
    "SELECT bytebase_cancel_task_run(0, NULL)",
    "SELECT bytebase_cancel_plan_check_run(7, 'p', 2)",
    "SELECT bytebase_cancel_plan_check_run(7, 'p')",
    "SELECT bytebase_cancel_plan_check_run(7, 'p', 0)",
    "SELECT bytebase_cancel_plan_check_run(7, 'p', -1)",
    "SELECT bytebase_cancel_plan_check_run(7, NULL, -1)",
    "SELECT bytebase_cancel_plan_check_run(uid => 7, project => 'p', approval_input_version => 3)",
    "SELECT bytebase_cancel_task_runs('{1,2,1}', 'proj-a')",
    "SELECT bytebase_cancel_plan_check_runs('{3,1,3}', 'p', 5)",
    "SELECT bytebase_cancel_plan_check_runs('{3,NULL}', NULL)",
    "SELECT bytebase_cancel_plan_check_runs('{}', NULL)",
    "SELECT bytebase_cancel_task_runs(NULL, 'p')",
    "SELECT bytebase_cancel_task_run(10, E'we\"ird\\\\ \\n\\t\\x01\\x1f ü <&>')",
    // The wire format.
    "SET bytebase_signal.wire_format = 'protojson'; SELECT bytebase_cancel_task_run(123, 'proj-a');
     SELECT bytebase_cancel_plan_check_runs('{7,8}', 'p', 0); SELECT bytebase_cancel_task_run(5);
     SELECT bytebase_cancel_plan_check_run(9, E'q\"\\\\', 9223372036854775807)",
    "RESET bytebase_signal.wire_format; SELECT bytebase_cancel_task_run(5, 'p')",
    "SET bytebase_signal.wire_format = 'json'; SELECT bytebase_cancel_task_run(1)",
    "RESET bytebase_signal.wire_format; SET bytebase_signal.wire_format = 'ProtoJSON'; SELECT bytebase_cancel_task_run(9, 'x')",
    "RESET bytebase_signal.wire_format",
    // Transactions.
    "BEGIN; SELECT bytebase_cancel_task_run(1); SAVEPOINT s; SELECT bytebase_cancel_task_run(2);
     SELECT bytebase_cancel_task_runs('{4,5}'); ROLLBACK TO SAVEPOINT s; SELECT bytebase_cancel_task_run(3); COMMIT",
    "BEGIN; SELECT bytebase_cancel_task_run(5); SELECT bytebase_cancel_task_run(5);
     SELECT bytebase_cancel_task_runs('{5,6,5}'); SELECT bytebase_cancel_plan_check_run(5); COMMIT",
    "BEGIN; SELECT bytebase_cancel_task_run(100); SELECT bytebase_cancel_plan_check_runs('{101}'); ROLLBACK",
    "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT bytebase_cancel_task_runs(ARRAY(SELECT generate_series(1, 64)::bigint)); COMMIT",
    "BEGIN; SELECT bytebase_cancel_task_run(102); SELECT bytebase_cancel_task_run(0); COMMIT",
    // Settings.
    "SET bytebase_signal.durable = off; SELECT bytebase_cancel_task_run(200);
     SELECT bytebase_cancel_task_runs('{201,202}')",
    "RESET bytebase_signal.durable; SELECT bytebase_cancel_task_run(203)",
    "SET bytebase_signal.durable = 'maybe'; SELECT bytebase_cancel_task_run(204)",
    "RESET bytebase_signal.durable; SET bytebase_signal.retention = 'abc'; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SET bytebase_signal.retention = '40d'; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SET bytebase_signal.retention = '0.4'; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SET bytebase_signal.retention = '5 weeks'; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SET bytebase_signal.retention = '-5'; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SET bytebase_signal.retention = ' 1.5 h '; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SET bytebase_signal.retention = '2592000'; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SELECT bytebase_signal_prune()",
    "UPDATE bytebase_signal_log SET created_at = created_at - interval '2 hours' WHERE uid < 100",
    // Below REPEATABLE READ, sends prune as in READ COMMITTED.
    "BEGIN ISOLATION LEVEL READ UNCOMMITTED; SELECT bytebase_cancel_task_runs(ARRAY(SELECT generate_series(500, 563)::bigint)); COMMIT",
    "SET bytebase_signal.durable = ' off'; SELECT bytebase_cancel_task_run(205)",
    "RESET bytebase_signal.durable",
    "SET bytebase_signal.retention = '90min'; SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention; SELECT bytebase_signal_prune()",
    // The queue limit: at or above it a logged signal goes without NOTIFY (the queue is empty
    // here, so a limit of 0 is reached); without the log the NOTIFY goes anyway.
    "SET bytebase_signal.notify_queue_limit = 0; SELECT bytebase_cancel_task_run(600); SELECT bytebase_cancel_task_runs('{601,602}')",
    "SET bytebase_signal.notify_queue_limit = 0; SET bytebase_signal.durable = off; SELECT bytebase_cancel_task_run(603)",
    "RESET bytebase_signal.durable; SET bytebase_signal.notify_queue_limit = 1; SELECT bytebase_cancel_task_run(604)",
    "SET bytebase_signal.notify_queue_limit = 1.5; SELECT bytebase_cancel_task_run(605)",
    "RESET bytebase_signal.notify_queue_limit; SET bytebase_signal.notify_queue_limit = 'abc'; SELECT bytebase_cancel_task_run(606)",
    "RESET bytebase_signal.notify_queue_limit; SET bytebase_signal.notify_queue_limit = -0.5; SELECT bytebase_cancel_task_run(607)",
    "RESET bytebase_signal.notify_queue_limit; SELECT bytebase_cancel_task_run(608)",
    // A caller's search_path cannot redirect the functions.
    "CREATE SCHEMA evil; CREATE TABLE evil.bytebase_signal_log (LIKE public.bytebase_signal_log)",
    "SET search_path = evil, public; SELECT bytebase_cancel_task_run(400)",
    "RESET search_path; SELECT count(*) FROM evil.bytebase_signal_log",
    // Privileges: nothing without the README's grants, then exactly what they allow.
    "SET ROLE conformance_app; SELECT bytebase_cancel_task_run(1)",
    "SET ROLE conformance_app; SELECT bytebase_cancel_task_run(1, 'p')",
    "SET ROLE conformance_app; SELECT * FROM bytebase_signal_replay(now())",
    "SET ROLE conformance_app; SELECT * FROM bytebase_signal_replay_after(pg_current_snapshot())",
    "SET ROLE conformance_app; SELECT count(*) FROM bytebase_signal_log",
    "SET ROLE conformance_app; SELECT bytebase_signal_prune()",
    "GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint), bytebase_cancel_plan_check_run(bigint),
         bytebase_cancel_task_runs(bigint[]), bytebase_cancel_plan_check_runs(bigint[]),
         bytebase_cancel_task_run(bigint, text), bytebase_cancel_plan_check_run(bigint, text, bigint),
         bytebase_cancel_task_runs(bigint[], text), bytebase_cancel_plan_check_runs(bigint[], text, bigint)
         TO conformance_app;
     GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz), bytebase_signal_replay_after(pg_snapshot)
         TO conformance_app",
    "SET ROLE conformance_app; SELECT bytebase_cancel_task_runs('{300,301}'); SELECT bytebase_cancel_plan_check_run(302)",
    "SET ROLE conformance_app; SELECT bytebase_cancel_task_run(303, 'p'); SELECT bytebase_cancel_plan_check_runs('{304}', 'p', 1)",
    "SET ROLE conformance_app; SELECT bytebase_signal_prune()",
    "SET ROLE conformance_app; SELECT count(*) FROM bytebase_signal_log",
    "RESET ROLE",
    // Replay: the same rows (ids included) in the same order, and its own rejection.
    "SELECT id, type, uid, created_at > now() - interval '10 minutes', project, approval_input_version
       FROM bytebase_signal_replay('-infinity')",
    "SELECT id, type, uid, sent_by, project, approval_input_version FROM bytebase_signal_log ORDER BY id",
    "SELECT count(*) FROM bytebase_signal_replay(now() - interval '10 minutes')",
    "SELECT count(*) FROM bytebase_signal_replay('infinity')",
    "SELECT * FROM bytebase_signal_replay(NULL)",
    "SET ROLE conformance_app; SELECT id, type, uid FROM bytebase_signal_replay(now() - interval '10 minutes')",
    // The exact replay: everything a snapshot taken before any of it had not seen, nothing that
    // the current one has seen committed, and its own rejection.
    "SELECT id, type, uid, project, approval_input_version FROM bytebase_signal_replay_after('1:1:')",
    "SELECT count(*) FROM bytebase_signal_replay_after(pg_current_snapshot())",
    "SELECT * FROM bytebase_signal_replay_after(NULL)",
    "SET ROLE conformance_app; SELECT count(*) FROM bytebase_signal_replay_after('1:1:')",
];

/// One edition under test: a session that runs the scripts, and a bare listener on its database.
struct Edition {
    session: Client,
    probe: Client,
    listener: RawListener,
}

impl Edition {
    async fn start(cluster: &Cluster, db: &str, install: Install) -> Result<Self> {
        cluster.create_database_with(db, install).await?;
        let listener = RawListener::connect(&cluster.config(db), "bytebase_signal").await?;
        Ok(Edition { session: cluster.connect(db).await?, probe: cluster.connect(db).await?, listener })
    }

    /// Runs `script`, then collects what it delivered.
    async fn run(&mut self, script: &str) -> Result<Outcome> {
        let answer = match self.session.simple_query(script).await {
            Ok(messages) => Answer::Rows(
                messages
                    .iter()
                    .filter_map(|m| match m {
                        SimpleQueryMessage::Row(row) => {
                            Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect())
                        }
                        _ => None,
                    })
                    .collect(),
            ),
            Err(e) => {
                let db = e.as_db_error().with_context(|| format!("{script}: not a server error: {e}"))?;
                // A script that opened a transaction leaves it aborted.
                self.session.batch_execute("ROLLBACK").await?;
                Answer::Error {
                    code: db.code().code().to_owned(),
                    message: db.message().to_owned(),
                    detail: db.detail().map(str::to_owned),
                    hint: db.hint().map(str::to_owned),
                }
            }
        };
        Ok(Outcome { answer, delivered: self.listener.drain(&self.probe).await? })
    }
}

#[derive(Debug, PartialEq)]
enum Answer {
    Rows(Vec<Vec<Option<String>>>),
    Error { code: String, message: String, detail: Option<String>, hint: Option<String> },
}

/// Where two outcomes part, briefly: the first differing row or notification, not all of them.
fn difference(expected: &Outcome, got: &Outcome) -> String {
    if let (Answer::Rows(e), Answer::Rows(g)) = (&expected.answer, &got.answer) {
        if let Some(i) = (0..e.len().max(g.len())).find(|&i| e.get(i) != g.get(i)) {
            return format!("row {i}: extension {:?}, pure-SQL {:?}", e.get(i), g.get(i));
        }
    } else if expected.answer != got.answer {
        return format!("extension {:?}\npure-SQL  {:?}", expected.answer, got.answer);
    }
    let (e, g) = (&expected.delivered, &got.delivered);
    match (0..e.len().max(g.len())).find(|&i| e.get(i) != g.get(i)) {
        Some(i) => format!("notification {i}: extension {:?}, pure-SQL {:?}", e.get(i), g.get(i)),
        None => "no difference".into(),
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    answer: Answer,
    delivered: Vec<String>,
}

#[tokio::test(flavor = "multi_thread")]
async fn both_editions_answer_every_statement_alike() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.connect("postgres").await?.batch_execute(&format!("CREATE ROLE {APP_ROLE}")).await?;
    let mut extension = Edition::start(&cluster, "extension", Install::Fresh).await?;
    let mut pure = Edition::start(&cluster, "pure", Install::PureSql).await?;
    let (mut codes, mut delivered) = (Vec::new(), 0);
    for script in SCRIPTS {
        let expected = extension.run(script).await?;
        let got = pure.run(script).await?;
        if got != expected {
            panic!(
                "the pure-SQL edition differs from the extension on\n{script}\n{}",
                difference(&expected, &got)
            );
        }
        if let Answer::Error { code, .. } = &expected.answer {
            codes.push(code.clone());
        }
        delivered += expected.delivered.len();
    }
    // The comparison covered what matters: every kind of rejection, and real traffic.
    for code in ["22004", "22023", "42501", "22P02", "42883"] {
        ensure!(codes.iter().any(|c| c == code), "no script raised {code}: {codes:?}");
    }
    ensure!(delivered > 300, "only {delivered} notifications compared");
    Ok(())
}

/// The installers' promises: no superuser needed, twice is harmless, the uninstaller removes
/// everything, and the two editions refuse to share a database.
#[tokio::test(flavor = "multi_thread")]
async fn the_installer_needs_no_superuser_and_the_uninstaller_leaves_nothing_behind() -> Result<()> {
    const OBJECTS: &str = "SELECT 'class ' || oid::regclass FROM pg_class WHERE relnamespace = 'public'::regnamespace
                           UNION ALL SELECT 'function ' || oid::regprocedure FROM pg_proc WHERE pronamespace = 'public'::regnamespace
                           UNION ALL SELECT 'type ' || oid::regtype FROM pg_type WHERE typnamespace = 'public'::regnamespace
                           ORDER BY 1";
    let cluster = Cluster::start()?;
    let admin = cluster.connect("postgres").await?;
    admin.batch_execute("CREATE DATABASE app").await?;
    admin.batch_execute("CREATE ROLE installer LOGIN").await?;
    let db = cluster.connect("app").await?;
    db.batch_execute("GRANT CREATE ON SCHEMA public TO installer").await?;
    let snapshot =
        |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>();
    let before = snapshot(db.query(OBJECTS, &[]).await?);

    cluster.run_sql_file("app", "installer", PURE_INSTALL, &[])?;
    // A grant the operator gives, even to PUBLIC, survives running the installer again.
    db.batch_execute("GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint) TO PUBLIC").await?;
    cluster.run_sql_file("app", "installer", PURE_INSTALL, &[])?;
    let public_may: bool = db
        .query_one(
            "SELECT has_function_privilege('public', 'bytebase_cancel_task_run(bigint)', 'EXECUTE')",
            &[],
        )
        .await?
        .get(0);
    assert!(public_may, "the second run revoked the operator's grant");
    let installed = snapshot(db.query(OBJECTS, &[]).await?);
    ensure!(installed.len() > before.len() + 8, "install created too little: {installed:?}");
    let owner: String = db
        .query_one(
            "SELECT proowner::regrole::text FROM pg_proc WHERE oid = 'bytebase_cancel_task_run(bigint)'::regprocedure",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(owner, "installer");

    // The extension refuses to join it, naming the edition.
    let e = db.batch_execute("CREATE EXTENSION bytebase_signal").await.expect_err("both editions");
    let e = e.as_db_error().context("server error")?;
    assert_eq!(e.code().code(), "42710");
    assert!(
        e.message().contains("pure-SQL edition is installed in this database (schema public)"),
        "{}",
        e.message()
    );

    for _ in 0..2 {
        cluster.run_sql_file("app", "installer", PURE_UNINSTALL, &[])?;
    }
    assert_eq!(snapshot(db.query(OBJECTS, &[]).await?), before, "uninstall left something behind");

    // And the pure-SQL edition refuses to join the extension, changing nothing.
    db.batch_execute("CREATE EXTENSION bytebase_signal").await?;
    let with_extension = snapshot(db.query(OBJECTS, &[]).await?);
    let err = cluster.run_sql_file("app", SUPERUSER, PURE_INSTALL, &[]).expect_err("both editions");
    assert!(format!("{err:#}").contains("the extension is installed in this database"), "{err:#}");
    let err = cluster.run_sql_file("app", SUPERUSER, PURE_UNINSTALL, &[]).expect_err("not the edition");
    assert!(format!("{err:#}").contains("has the extension"), "{err:#}");
    assert_eq!(snapshot(db.query(OBJECTS, &[]).await?), with_extension);
    Ok(())
}

/// The move scripts, there and back, with a listener connected throughout: logged signals keep
/// their ids, grants carry over, and sends work at once on the other side.
#[tokio::test(flavor = "multi_thread")]
async fn moving_between_editions_keeps_the_log_the_grants_and_the_listeners() -> Result<()> {
    // In a schema whose name needs quoting, to keep the scripts honest about it.
    let cluster = Cluster::start()?;
    cluster.connect("postgres").await?.batch_execute("CREATE DATABASE app").await?;
    let admin = cluster.connect("app").await?;
    admin
        .batch_execute(&format!(
            r#"CREATE SCHEMA "Meta"; CREATE EXTENSION bytebase_signal SCHEMA "Meta";
               CREATE ROLE {APP_ROLE} LOGIN;
               GRANT USAGE ON SCHEMA "Meta" TO {APP_ROLE};
               GRANT EXECUTE ON FUNCTION "Meta".bytebase_cancel_task_run(bigint), "Meta".bytebase_cancel_task_runs(bigint[]) TO {APP_ROLE}"#
        ))
        .await?;
    let mut listener = RawListener::connect(&cluster.config("app"), "bytebase_signal").await?;
    let log = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, String>(2)))
            .collect::<Vec<_>>()
    };
    const LOG: &str = r#"SELECT id, uid, sent_by::text FROM "Meta".bytebase_signal_log ORDER BY id"#;

    let app = cluster.connect_as("app", APP_ROLE).await?;
    app.batch_execute(r#"SELECT "Meta".bytebase_cancel_task_runs('{1,2}')"#).await?;
    let mut expected = log(admin.query(LOG, &[]).await?);
    for (script, uid, edition) in [(MOVE_FROM_EXTENSION, 3, "pure-SQL"), (MOVE_TO_EXTENSION, 4, "extension")]
    {
        cluster.run_sql_file("app", SUPERUSER, script, &[])?;
        assert_eq!(
            log(admin.query(LOG, &[]).await?),
            expected,
            "the log after moving to the {edition} edition"
        );
        let extension: i64 = admin
            .query_one("SELECT count(*) FROM pg_extension WHERE extname = 'bytebase_signal'", &[])
            .await?
            .get(0);
        assert_eq!(extension, i64::from(edition == "extension"));
        // The same session of the app's role sends with its carried-over grant; the listener,
        // never disconnected, receives it.
        app.execute(r#"SELECT "Meta".bytebase_cancel_task_run($1)"#, &[&uid])
            .await
            .with_context(|| format!("send on {edition}"))?;
        let now = log(admin.query(LOG, &[]).await?);
        assert_eq!(now.len(), expected.len() + 1);
        assert!(now.last().is_some_and(|(id, u, by)| *id > expected.last().map_or(0, |e| e.0)
            && *u == uid
            && by == APP_ROLE));
        expected = now;
    }
    assert_eq!(
        listener.drain(&admin).await?,
        [1, 2, 3, 4].map(|u| format!(r#"{{"type":"cancel_task_run","uid":{u}}}"#))
    );
    // Only the grants that existed were carried over.
    let plans_denied = app
        .batch_execute(r#"SELECT "Meta".bytebase_cancel_plan_check_run(1)"#)
        .await
        .expect_err("never granted");
    assert_eq!(plans_denied.as_db_error().map(|e| e.code().code()), Some("42501"));
    Ok(())
}

bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    nothing_a_schema_user_creates_runs_as_the_owner,
);

/// Shadows that a role allowed to create objects in the API's schema could define: exact-type
/// overloads of the built-ins the functions call, and of the operators they use. Each records who
/// ran it. The functions run as their owner with `search_path = pg_catalog, <schema>, pg_temp`;
/// PostgreSQL prefers an exact match in a later schema over a polymorphic or coerced one in
/// `pg_catalog`, so every built-in call must be qualified and every operator exactly typed.
const SHADOWS: &str = r#"
CREATE FUNCTION public.shadowed(what text) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.hijacked VALUES (current_user, what) $$;
CREATE FUNCTION public.unnest(a bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('unnest'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
CREATE FUNCTION public.cardinality(a bigint[]) RETURNS int LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('cardinality'); RETURN pg_catalog.cardinality(a); END $$;
CREATE FUNCTION public.to_json(t text) RETURNS json LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('to_json'); RETURN pg_catalog.to_json(t); END $$;
CREATE FUNCTION public.upper(t text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('upper'); RETURN pg_catalog.upper(t); END $$;
CREATE FUNCTION public.lower(t text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('lower'); RETURN pg_catalog.lower(t); END $$;
CREATE FUNCTION public.octet_length(t text) RETURNS int LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('octet_length'); RETURN pg_catalog.octet_length(t); END $$;
CREATE FUNCTION public.regexp_match(t text, r text) RETURNS text[] LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('regexp_match'); RETURN pg_catalog.regexp_match(t, r); END $$;
CREATE FUNCTION public.round(x double precision) RETURNS double precision LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('round'); RETURN pg_catalog.round(x); END $$;
CREATE FUNCTION public.current_setting(n text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('current_setting/1'); RETURN pg_catalog.current_setting(n); END $$;
CREATE FUNCTION public.current_setting(n text, m boolean) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('current_setting/2'); RETURN pg_catalog.current_setting(n, m); END $$;
CREATE FUNCTION public.make_interval(secs double precision) RETURNS interval LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('make_interval'); RETURN pg_catalog.make_interval(secs => secs); END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.pg_notify(c text, p text) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('pg_notify'); PERFORM pg_catalog.pg_notify(c, p); END $$;
CREATE FUNCTION public.pg_notification_queue_usage() RETURNS double precision LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('pg_notification_queue_usage'); RETURN 0; END $$;
CREATE FUNCTION public.pg_snapshot_xmin(s pg_snapshot) RETURNS xid8 LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('pg_snapshot_xmin'); RETURN pg_catalog.pg_snapshot_xmin(s); END $$;
CREATE FUNCTION public.pg_visible_in_snapshot(x xid8, s pg_snapshot) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('pg_visible_in_snapshot'); RETURN pg_catalog.pg_visible_in_snapshot(x, s); END $$;
CREATE FUNCTION public.pg_backend_pid() RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('pg_backend_pid'); RETURN pg_catalog.pg_backend_pid(); END $$;
CREATE FUNCTION public.shadow_mul_di(a double precision, b integer) RETURNS double precision LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('double precision * integer'); RETURN a OPERATOR(pg_catalog.*) b::double precision; END $$;
CREATE OPERATOR public.* (LEFTARG = double precision, RIGHTARG = integer, FUNCTION = public.shadow_mul_di);
CREATE FUNCTION public.pg_get_userbyid(o oid) RETURNS name LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('pg_get_userbyid'); RETURN pg_catalog.pg_get_userbyid(o); END $$;
CREATE FUNCTION public._bytebase_signal_prune(l integer) RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('_bytebase_signal_prune(integer)'); RETURN 0; END $$;
CREATE FUNCTION public.shadow_or(a boolean, b boolean) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('bool_or'); RETURN a OR b; END $$;
CREATE AGGREGATE public.bool_or(boolean) (SFUNC = public.shadow_or, STYPE = boolean);
CREATE FUNCTION public.shadow_min(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('min'); RETURN pg_catalog.least(a, b); END $$;
CREATE AGGREGATE public.min(bigint) (SFUNC = public.shadow_min, STYPE = bigint);
CREATE FUNCTION public.shadow_cat_tb(a text, b bigint) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('text || bigint'); RETURN a OPERATOR(pg_catalog.||) b::text; END $$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = bigint, FUNCTION = public.shadow_cat_tb);
CREATE FUNCTION public.shadow_cat_bt(a bigint, b text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('bigint || text'); RETURN a::text OPERATOR(pg_catalog.||) b; END $$;
CREATE OPERATOR public.|| (LEFTARG = bigint, RIGHTARG = text, FUNCTION = public.shadow_cat_bt);
CREATE FUNCTION public.shadow_mod(a bigint, b integer) RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('bigint % integer'); RETURN a OPERATOR(pg_catalog.%) b::bigint; END $$;
CREATE OPERATOR public.% (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.shadow_mod);
CREATE FUNCTION public.shadow_lt(a double precision, b integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('float8 < integer'); RETURN a OPERATOR(pg_catalog.<) b::float8; END $$;
CREATE OPERATOR public.< (LEFTARG = double precision, RIGHTARG = integer, FUNCTION = public.shadow_lt);
CREATE FUNCTION public.shadow_gt(a double precision, b integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('float8 > integer'); RETURN a OPERATOR(pg_catalog.>) b::float8; END $$;
CREATE OPERATOR public.> (LEFTARG = double precision, RIGHTARG = integer, FUNCTION = public.shadow_gt);
CREATE FUNCTION public.shadow_mul(a double precision, b numeric) RETURNS double precision LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('float8 * numeric'); RETURN a OPERATOR(pg_catalog.*) b::float8; END $$;
CREATE OPERATOR public.* (LEFTARG = double precision, RIGHTARG = numeric, FUNCTION = public.shadow_mul);
CREATE FUNCTION public.shadow_oideq(a oid, b integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('oid = integer'); RETURN a OPERATOR(pg_catalog.=) b::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.shadow_oideq);
CREATE FUNCTION public.shadow_le(a bigint, b integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('bigint <= integer'); RETURN a OPERATOR(pg_catalog.<=) b; END $$;
CREATE OPERATOR public.<= (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.shadow_le);
CREATE FUNCTION public.shadow_ne(a bigint, b integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.shadowed('bigint <> integer'); RETURN a OPERATOR(pg_catalog.<>) b; END $$;
CREATE OPERATOR public.<> (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.shadow_ne);
"#;

/// Every path through the API, as an ordinary granted role: each entry on its own, errors allowed.
const EVERY_PATH: &[&str] = &[
    "SELECT bytebase_cancel_task_run(1)",
    "SELECT bytebase_cancel_plan_check_run(2)",
    "SELECT bytebase_cancel_task_runs('{3,4,3}')",
    "SELECT bytebase_cancel_plan_check_runs('{5}')",
    "SELECT bytebase_cancel_task_run(6, 'p')",
    "SELECT bytebase_cancel_plan_check_run(7, 'p', 2)",
    "SELECT bytebase_cancel_task_runs('{8}', E'p\"\\n')",
    "SELECT bytebase_cancel_plan_check_runs('{9}', 'p', 0)",
    "SET bytebase_signal.wire_format = 'protojson'",
    "SELECT bytebase_cancel_task_run(1)",
    "SELECT bytebase_cancel_task_run(6, 'p')",
    "SELECT bytebase_cancel_plan_check_run(7, 'p', 2)",
    "SELECT bytebase_cancel_plan_check_runs('{9,10}', 'p', 3)",
    "SELECT bytebase_cancel_task_runs(ARRAY(SELECT g FROM generate_series(11, 300) AS g)::bigint[])",
    "RESET bytebase_signal.wire_format",
    "SET bytebase_signal.retention = '90min'",
    "SELECT bytebase_cancel_task_runs(ARRAY(SELECT g FROM generate_series(301, 500) AS g)::bigint[])",
    "SELECT bytebase_signal_prune()",
    "SELECT count(*) FROM bytebase_signal_replay('-infinity')",
    "SET bytebase_signal.durable = off",
    "SELECT bytebase_cancel_task_run(501)",
    "RESET bytebase_signal.durable",
    "SELECT bytebase_cancel_task_run(NULL)",
    "SELECT bytebase_cancel_task_run(0)",
    "SELECT bytebase_cancel_task_runs('{1,NULL}')",
    "SELECT bytebase_cancel_task_runs('{1,-1}')",
    "SELECT bytebase_cancel_task_run(1, NULL)",
    "SELECT bytebase_cancel_task_run(1, '')",
    "SELECT bytebase_cancel_task_run(1, repeat('p', 1025))",
    "SELECT bytebase_cancel_plan_check_run(1, 'p', -1)",
    "SET bytebase_signal.notify_queue_limit = 0",
    "SELECT bytebase_cancel_task_run(700)",
    "SELECT bytebase_cancel_task_runs('{701,702}', 'p')",
    "RESET bytebase_signal.notify_queue_limit",
    "SELECT count(*) FROM bytebase_signal_replay_after('1:1:')",
    "SELECT count(*) FROM bytebase_signal_replay_after(pg_current_snapshot())",
    "SET bytebase_signal.retention = '5 weeks'",
    "SELECT bytebase_signal_prune()",
    "SET bytebase_signal.retention = '40d'",
    "SELECT bytebase_signal_prune()",
    "RESET bytebase_signal.retention",
    "SET bytebase_signal.wire_format = 'json'",
    "SELECT bytebase_cancel_task_run(1)",
    "RESET bytebase_signal.wire_format",
    "SET bytebase_signal.durable = 'maybe'",
    "SELECT bytebase_cancel_task_run(1)",
    "SELECT * FROM bytebase_signal_replay(NULL)",
];

async fn nothing_a_schema_user_creates_runs_as_the_owner(install: Install) -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.create_database_with("app", install).await?;
    let admin = cluster.connect("app").await?;
    admin
        .batch_execute(
            "CREATE ROLE intruder LOGIN; CREATE ROLE tester LOGIN;
             GRANT CREATE ON SCHEMA public TO intruder;
             CREATE TABLE public.hijacked (who name, what text);
             GRANT INSERT, SELECT ON public.hijacked TO PUBLIC;
             GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint), bytebase_cancel_plan_check_run(bigint),
                 bytebase_cancel_task_runs(bigint[]), bytebase_cancel_plan_check_runs(bigint[]),
                 bytebase_cancel_task_run(bigint, text), bytebase_cancel_plan_check_run(bigint, text, bigint),
                 bytebase_cancel_task_runs(bigint[], text), bytebase_cancel_plan_check_runs(bigint[], text, bigint),
                 bytebase_signal_prune(), bytebase_signal_replay(timestamptz),
                 bytebase_signal_replay_after(pg_snapshot) TO tester",
        )
        .await?;
    cluster
        .connect_as("app", "intruder")
        .await?
        .batch_execute(SHADOWS)
        .await
        .context("creating the shadows")?;
    let tester = cluster.connect_as("app", "tester").await?;
    // The shadows are live: the tester's own unqualified call of an exact overload runs one.
    tester.batch_execute("SELECT unnest('{1}'::bigint[])").await?;
    for sql in EVERY_PATH {
        let _ = tester.batch_execute(sql).await;
    }
    let hits: Vec<(String, String)> = admin
        .query("SELECT who::text, what FROM public.hijacked ORDER BY what", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(hits.contains(&("tester".into(), "unnest".into())), "the shadows never ran: {hits:?}");
    let as_owner: Vec<_> = hits.iter().filter(|(who, _)| who != "tester").collect();
    assert!(as_owner.is_empty(), "{install:?}: shadows ran inside the API, as its owner: {as_owner:?}");
    Ok(())
}
