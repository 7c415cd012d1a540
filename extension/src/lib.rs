//! `bytebase_signal`: the SQL boundary of the cancel-signal pipeline.
//!
//! A SQL caller runs `SELECT bytebase_cancel_task_run(42)` (or, where run ids are unique per
//! project, `bytebase_cancel_task_run(42, 'proj-a')`) in the transaction that marks the run
//! canceled. The functions here check their arguments (rules in
//! [`bytebase_signal_client::validate`]), write the signal to the durable log ([`log`], unless
//! `bytebase_signal.durable` is off) and queue a NOTIFY through the backend's own `pg_notify`
//! ([`notify`], bytes in [`bytebase_signal_client::wire`], spelled as
//! `bytebase_signal.wire_format` says: [`settings`]). Both belong to the caller's
//! transaction: at commit PostgreSQL delivers the notification to every listening replica and the
//! log row becomes visible to `bytebase_signal_replay_after` (each row records its transaction id,
//! so a listener asks for exactly what committed since its last read) and `bytebase_signal_replay`
//! (by time). Listeners read the log at every heartbeat and after reconnecting, so a lost
//! notification is recovered. On rollback neither exists. When the server-wide notification
//! queue is nearly full, a logged signal is sent without NOTIFY ([`queue`]), so that the caller's
//! commit cannot fail with it.
//!
//! Every function is `SECURITY DEFINER` with a pinned `search_path` (the log table is not
//! writable by callers) and EXECUTE is revoked from PUBLIC: an operator grants the send functions
//! to the application's role and the two replay functions to the listeners' role.

use bytebase_signal_client::validate::{
    validate_approval_input_version, validate_project, validate_uid, validate_uids, RunUid,
};
use bytebase_signal_client::wire::{SignalKind, WireFormat};
use pgrx::prelude::*;

mod compat;
mod error;
mod log;
mod notify;
mod queue;
mod settings;

::pgrx::pg_module_magic!(name, version);

/// Registers the settings when a backend loads the library (at the first call of any function).
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
}

/// Cancels one task run on whichever replica runs it, at commit.
#[pg_extern(name = "bytebase_cancel_task_run", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_task_run(uid: Option<i64>) {
    cancel_one(SignalKind::TaskRun, uid, None);
}

/// Cancels one plan check run on whichever replica runs it, at commit.
#[pg_extern(name = "bytebase_cancel_plan_check_run", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_plan_check_run(uid: Option<i64>) {
    cancel_one(SignalKind::PlanCheckRun, uid, None);
}

/// Cancels several task runs at commit; returns how many distinct runs were signalled.
#[pg_extern(name = "bytebase_cancel_task_runs", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_task_runs(uids: Option<Array<'_, i64>>) -> i32 {
    cancel_many(SignalKind::TaskRun, uids, None)
}

/// Cancels several plan check runs at commit; returns how many distinct runs were signalled.
#[pg_extern(name = "bytebase_cancel_plan_check_runs", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_plan_check_runs(uids: Option<Array<'_, i64>>) -> i32 {
    cancel_many(SignalKind::PlanCheckRun, uids, None)
}

/// Cancels one task run of `project` (run ids are unique per project upstream), at commit.
#[pg_extern(name = "bytebase_cancel_task_run", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_task_run_in_project(uid: Option<i64>, project: Option<&str>) {
    cancel_one(SignalKind::TaskRun, uid, Some(Scope { project, approval_input_version: None }));
}

/// Cancels one plan check run of `project`, at commit; `approval_input_version` names the plan's
/// approval input version the run checks, if the caller knows it.
#[pg_extern(name = "bytebase_cancel_plan_check_run", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_plan_check_run_in_project(
    uid: Option<i64>,
    project: Option<&str>,
    approval_input_version: default!(Option<i64>, NULL),
) {
    cancel_one(SignalKind::PlanCheckRun, uid, Some(Scope { project, approval_input_version }));
}

/// Cancels several task runs of `project` at commit; returns how many distinct runs were
/// signalled.
#[pg_extern(name = "bytebase_cancel_task_runs", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_task_runs_in_project(uids: Option<Array<'_, i64>>, project: Option<&str>) -> i32 {
    cancel_many(SignalKind::TaskRun, uids, Some(Scope { project, approval_input_version: None }))
}

/// Cancels several plan check runs of `project` at commit; returns how many distinct runs were
/// signalled.
#[pg_extern(name = "bytebase_cancel_plan_check_runs", volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn cancel_plan_check_runs_in_project(
    uids: Option<Array<'_, i64>>,
    project: Option<&str>,
    approval_input_version: default!(Option<i64>, NULL),
) -> i32 {
    cancel_many(SignalKind::PlanCheckRun, uids, Some(Scope { project, approval_input_version }))
}

/// Deletes logged signals older than `bytebase_signal.retention`; returns how many. Sending
/// already prunes as it goes; this is for operators (e.g. after lowering the retention).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, @extschema@, pg_temp)]
fn bytebase_signal_prune() -> i64 {
    log::prune_all()
}

/// The project-scoped arguments of the two- and three-argument send functions, as called.
#[derive(Clone, Copy)]
struct Scope<'a> {
    project: Option<&'a str>,
    approval_input_version: Option<i64>,
}

/// A signal's optional fields after validation (both `None` for the one-argument forms).
#[derive(Clone, Copy, Default)]
pub(crate) struct Context<'a> {
    pub(crate) project: Option<&'a str>,
    pub(crate) approval_input_version: Option<i64>,
}

impl<'a> Scope<'a> {
    /// Validates the scope's arguments for `function`, raising the first bad one as an ERROR.
    fn validate(self, function: &'static str) -> Context<'a> {
        let project =
            validate_project(function, "project", self.project).unwrap_or_else(|e| error::raise(&e));
        let approval_input_version =
            validate_approval_input_version(function, "approval_input_version", self.approval_input_version)
                .unwrap_or_else(|e| error::raise(&e));
        Context { project: Some(project), approval_input_version }
    }
}

fn cancel_one(kind: SignalKind, uid: Option<i64>, scope: Option<Scope<'_>>) {
    cancel_one_as(kind, uid, scope, settings::durable());
}

fn cancel_many(kind: SignalKind, uids: Option<Array<'_, i64>>, scope: Option<Scope<'_>>) -> i32 {
    cancel_many_as(kind, uids, scope, settings::durable())
}

/// Validates and sends one signal; `logged` says whether it also goes into the log.
fn cancel_one_as(kind: SignalKind, uid: Option<i64>, scope: Option<Scope<'_>>, logged: bool) {
    let function = kind.cancel_function();
    let uid = validate_uid(function, "uid", uid).unwrap_or_else(|e| error::raise(&e));
    let context = scope.map(|s| s.validate(function)).unwrap_or_default();
    send(kind, &[uid], context, logged);
}

/// Validates and sends a batch; returns how many distinct runs were signalled.
fn cancel_many_as(
    kind: SignalKind,
    uids: Option<Array<'_, i64>>,
    scope: Option<Scope<'_>>,
    logged: bool,
) -> i32 {
    let function = kind.batch_cancel_function();
    // Validate the whole batch first: a bad element must not leave earlier ones queued in a
    // caller's savepoint-protected transaction.
    let uids =
        validate_uids(function, "uids", uids.as_ref().map(|a| a.iter())).unwrap_or_else(|e| error::raise(&e));
    let context = scope.map(|s| s.validate(function)).unwrap_or_default();
    send(kind, &uids, context, logged);
    // An array cannot hold more than MaxAllocSize / 8 elements, far below i32::MAX.
    i32::try_from(uids.len()).expect("array length fits in an integer")
}

/// Logs (if asked) and queues one signal per uid, all in the caller's transaction. A logged
/// signal goes without NOTIFY when the notification queue is too full ([`queue`]): the listeners
/// read it from the log, and the caller's commit does not fail with the queue.
fn send(kind: SignalKind, uids: &[RunUid], context: Context<'_>, logged: bool) {
    let format = settings::wire_format();
    if logged {
        log::record(kind, uids, context);
        // protojson is for upstream Go replicas, which do not read the log: they keep their NOTIFY.
        if format == WireFormat::Seed && queue::too_full_to_notify(uids.len()) {
            return;
        }
    }
    for &uid in uids {
        notify::send(format, kind, uid, context);
    }
}

// The SQL that is not a #[pg_extern]'s, in files: the log table first, then (once the functions
// exist) the replay functions, the privileges and the comments. The pure-SQL edition restates
// them; client/tests/sql_sources.rs keeps the two in step (sql/README.md).
extension_sql_file!("../sql/extension/log_table.sql", name = "signal_log", bootstrap);
extension_sql_file!("../sql/extension/finalize.sql", name = "finalize_functions_and_privileges", finalize);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use bytebase_signal_client::wire::SignalKind;
    use pgrx::prelude::*;

    /// Runs `sql` inside a PL/pgSQL exception block (a subtransaction, so the test's transaction
    /// stays usable) and returns the SQLSTATE and message it raised, or `None` if it succeeded.
    fn error_of(sql: &str) -> Option<(String, String)> {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.error_of(stmt text, OUT code text, OUT message text)
             LANGUAGE plpgsql AS $$
             BEGIN
                 EXECUTE stmt;
             EXCEPTION WHEN OTHERS THEN
                 code := SQLSTATE;
                 message := SQLERRM;
             END $$",
        )
        .expect("helper function is created");
        let (code, message) = Spi::get_two_with_args::<String, String>(
            "SELECT code, message FROM pg_temp.error_of($1)",
            &[sql.into()],
        )
        .expect("helper function runs");
        code.map(|code| (code, message.unwrap_or_default()))
    }

    fn assert_error(sql: &str, sqlstate: &str, message_part: &str) {
        match error_of(sql) {
            Some((code, message)) => {
                assert_eq!(code, sqlstate, "{sql}: {message}");
                assert!(message.contains(message_part), "{sql}: {message:?} lacks {message_part:?}");
            }
            None => panic!("{sql}: succeeded, expected SQLSTATE {sqlstate}"),
        }
    }

    #[pg_test]
    fn single_forms_reject_null_with_22004() {
        for kind in SignalKind::ALL {
            let f = kind.cancel_function();
            assert_error(&format!("SELECT {f}(NULL)"), "22004", &format!("{f}(uid): uid must not be NULL"));
        }
    }

    #[pg_test]
    fn single_forms_reject_non_positive_uids_with_22023() {
        for kind in SignalKind::ALL {
            let f = kind.cancel_function();
            for bad in ["0", "-1", "-9223372036854775808"] {
                assert_error(
                    &format!("SELECT {f}({bad})"),
                    "22023",
                    &format!("{f}(uid): uid must be a positive run id, got {bad}"),
                );
            }
        }
    }

    #[pg_test]
    fn single_forms_accept_positive_uids() {
        for kind in SignalKind::ALL {
            let f = kind.cancel_function();
            for good in ["1", "42", "9223372036854775807"] {
                assert_eq!(error_of(&format!("SELECT {f}({good})")), None, "{f}({good})");
            }
        }
    }

    #[pg_test]
    fn batch_forms_reject_a_null_array_with_22004() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(&format!("SELECT {f}(NULL)"), "22004", &format!("{f}(uids): uids must not be NULL"));
        }
    }

    #[pg_test]
    fn batch_forms_reject_null_elements_with_22004() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(&format!("SELECT {f}('{{NULL}}')"), "22004", "uids[1] must not be NULL");
            assert_error(&format!("SELECT {f}('{{1,NULL,3}}')"), "22004", "uids[2] must not be NULL");
        }
    }

    #[pg_test]
    fn batch_forms_reject_non_positive_elements_with_22023() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(
                &format!("SELECT {f}('{{0}}')"),
                "22023",
                "uids[1] must be a positive run id, got 0",
            );
            assert_error(
                &format!("SELECT {f}('{{9223372036854775807,-9223372036854775808}}')"),
                "22023",
                "uids[2] must be a positive run id, got -9223372036854775808",
            );
        }
    }

    #[pg_test]
    fn batch_forms_report_the_first_bad_element_of_a_mixed_array() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            assert_error(&format!("SELECT {f}('{{5,NULL,-1}}')"), "22004", "uids[2] must not be NULL");
            assert_error(
                &format!("SELECT {f}('{{5,-1,NULL}}')"),
                "22023",
                "uids[2] must be a positive run id, got -1",
            );
        }
    }

    #[pg_test]
    fn batch_forms_count_distinct_uids() {
        for kind in SignalKind::ALL {
            let f = kind.batch_cancel_function();
            for (array, expected) in
                [("{}", 0), ("{7}", 1), ("{3,1,3,2,1}", 3), ("{9223372036854775807,1}", 2)]
            {
                let got =
                    Spi::get_one::<i32>(&format!("SELECT {f}('{array}')")).expect("batch call succeeds");
                assert_eq!(got, Some(expected), "{f}('{array}')");
            }
        }
    }

    #[pg_test]
    fn project_scoped_forms_reject_a_null_empty_or_long_project_and_a_negative_version() {
        for kind in SignalKind::ALL {
            for (f, uid) in [(kind.cancel_function(), "1"), (kind.batch_cancel_function(), "'{1}'")] {
                assert_error(
                    &format!("SELECT {f}({uid}, NULL)"),
                    "22004",
                    &format!("{f}(project): project must not be NULL"),
                );
                assert_error(
                    &format!("SELECT {f}({uid}, '')"),
                    "22023",
                    &format!("{f}(project): project must not be empty"),
                );
                assert_error(
                    &format!("SELECT {f}({uid}, repeat('p', 1025))"),
                    "22023",
                    "project must be at most 1024 bytes, got 1025",
                );
                assert_eq!(error_of(&format!("SELECT {f}({uid}, repeat('p', 1024))")), None);
            }
            // The uid is checked first, as in the one-argument forms.
            let f = kind.cancel_function();
            assert_error(
                &format!("SELECT {f}(0, NULL)"),
                "22023",
                &format!("{f}(uid): uid must be a positive run id, got 0"),
            );
        }
        for f in ["bytebase_cancel_plan_check_run(1", "bytebase_cancel_plan_check_runs('{1}'"] {
            assert_error(
                &format!("SELECT {f}, 'p', -1)"),
                "22023",
                "(approval_input_version): approval_input_version must not be negative, got -1",
            );
            assert_eq!(error_of(&format!("SELECT {f}, 'p', 0)")), None);
            assert_eq!(error_of(&format!("SELECT {f}, 'p', NULL)")), None);
        }
    }

    #[pg_test]
    fn project_scoped_sends_log_the_project_and_version() {
        Spi::run("SELECT bytebase_cancel_task_run(1, 'proj-a')").unwrap();
        Spi::run("SELECT bytebase_cancel_plan_check_run(2, 'proj-b', 3)").unwrap();
        Spi::run("SELECT bytebase_cancel_plan_check_runs('{4,4,5}', 'proj-c')").unwrap();
        Spi::run("SELECT bytebase_cancel_task_run(6)").unwrap();
        let rows = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(concat_ws(':', type, uid, coalesce(project, '-'), coalesce(approval_input_version::text, '-')) ORDER BY id)
               FROM bytebase_signal_replay(now() - interval '1 minute')",
        )
        .unwrap()
        .unwrap_or_default();
        assert_eq!(
            rows,
            [
                "cancel_task_run:1:proj-a:-",
                "cancel_plan_check_run:2:proj-b:3",
                "cancel_plan_check_run:4:proj-c:-",
                "cancel_plan_check_run:5:proj-c:-",
                "cancel_task_run:6:-:-",
            ]
        );
    }

    #[pg_test]
    fn wire_format_defaults_to_seed_and_takes_protojson() {
        let show = || Spi::get_one::<String>("SHOW bytebase_signal.wire_format").unwrap();
        assert_eq!(show().as_deref(), Some("seed"));
        Spi::run("SET LOCAL bytebase_signal.wire_format = 'PROTOJSON'").unwrap();
        assert_eq!(show().as_deref(), Some("protojson"));
        assert_error("SET bytebase_signal.wire_format = 'json'", "22023", "bytebase_signal.wire_format");
        assert_eq!(error_of("SELECT bytebase_cancel_task_run(123, 'proj-a')"), None);
    }

    /// Every send function, by SQL signature.
    const SEND_FUNCTIONS: [&str; 8] = [
        "bytebase_cancel_task_run(bigint)",
        "bytebase_cancel_plan_check_run(bigint)",
        "bytebase_cancel_task_runs(bigint[])",
        "bytebase_cancel_plan_check_runs(bigint[])",
        "bytebase_cancel_task_run(bigint, text)",
        "bytebase_cancel_plan_check_run(bigint, text, bigint)",
        "bytebase_cancel_task_runs(bigint[], text)",
        "bytebase_cancel_plan_check_runs(bigint[], text, bigint)",
    ];

    #[pg_test]
    fn functions_are_volatile_parallel_unsafe_non_strict_and_commented() {
        for sig in SEND_FUNCTIONS {
            let row = Spi::get_three_with_args::<String, String, bool>(
                "SELECT provolatile::text, proparallel::text, proisstrict FROM pg_proc WHERE oid = $1::regprocedure",
                &[sig.into()],
            )
            .expect("function exists");
            // Non-strict, so that a NULL argument reaches our check instead of returning NULL.
            assert_eq!(row, (Some("v".into()), Some("u".into()), Some(false)), "{sig}");
            let comment = Spi::get_one_with_args::<String>(
                "SELECT obj_description($1::regprocedure, 'pg_proc')",
                &[sig.into()],
            )
            .expect("comment query runs");
            assert!(comment.is_some_and(|c| c.contains("bytebase_signal")), "{sig} has no comment");
        }
    }

    /// The log as `type:uid` strings in insertion order.
    fn logged() -> Vec<String> {
        Spi::get_one::<Vec<String>>(
            "SELECT coalesce(array_agg(type || ':' || uid ORDER BY id), '{}') FROM bytebase_signal_log",
        )
        .expect("log query runs")
        .unwrap_or_default()
    }

    #[pg_test]
    fn sends_log_one_row_per_signal_with_the_sending_role() {
        Spi::run("SELECT bytebase_cancel_task_run(42)").unwrap();
        Spi::run("SELECT bytebase_cancel_plan_check_runs('{3,1,3}')").unwrap();
        Spi::run("SELECT bytebase_cancel_task_runs('{}')").unwrap();
        assert_eq!(logged(), ["cancel_task_run:42", "cancel_plan_check_run:3", "cancel_plan_check_run:1"]);
        let odd = Spi::get_one::<i64>(
            "SELECT count(*) FROM bytebase_signal_log
              WHERE sent_by <> current_user OR created_at NOT BETWEEN now() AND clock_timestamp()",
        )
        .unwrap();
        assert_eq!(odd, Some(0), "every row names the caller and the time of the call");
    }

    #[pg_test]
    fn durable_off_sends_without_logging() {
        Spi::run("SET LOCAL bytebase_signal.durable = off").unwrap();
        Spi::run("SELECT bytebase_cancel_task_run(1)").unwrap();
        Spi::run("SELECT bytebase_cancel_task_runs('{2,3}')").unwrap();
        assert_eq!(logged(), Vec::<String>::new());
        Spi::run("SET LOCAL bytebase_signal.durable = on").unwrap();
        Spi::run("SELECT bytebase_cancel_task_run(4)").unwrap();
        assert_eq!(logged(), ["cancel_task_run:4"]);
    }

    #[pg_test]
    fn settings_have_their_documented_defaults_and_units() {
        let show = |name: &str| Spi::get_one::<String>(&format!("SHOW {name}")).unwrap();
        assert_eq!(show("bytebase_signal.durable").as_deref(), Some("on"));
        assert_eq!(show("bytebase_signal.retention").as_deref(), Some("1h"));
        Spi::run("SET LOCAL bytebase_signal.retention = '90min'").unwrap();
        assert_eq!(show("bytebase_signal.retention").as_deref(), Some("90min"));
        assert_error("SET bytebase_signal.retention = '0'", "22023", "bytebase_signal.retention");
        assert_eq!(show("bytebase_signal.notify_queue_limit").as_deref(), Some("0.5"));
        Spi::run("SET LOCAL bytebase_signal.notify_queue_limit = 0.9").unwrap();
        assert_eq!(show("bytebase_signal.notify_queue_limit").as_deref(), Some("0.9"));
        assert_error(
            "SET bytebase_signal.notify_queue_limit = 1.5",
            "22023",
            "1.5 is outside the valid range for parameter \"bytebase_signal.notify_queue_limit\" (0 .. 1)",
        );
    }

    #[pg_test]
    fn each_logged_row_records_its_transaction() {
        Spi::run("SELECT bytebase_cancel_task_runs('{11,12}')").unwrap();
        let same = Spi::get_one::<bool>(
            "SELECT bool_and(xid = pg_current_xact_id()) AND count(*) = 2 FROM bytebase_signal_log WHERE uid IN (11, 12)",
        )
        .unwrap();
        assert_eq!(same, Some(true), "the sending transaction's id, not a subtransaction's");
    }

    #[pg_test]
    fn replay_after_returns_what_the_snapshot_had_not_seen_committed() {
        Spi::run("SELECT bytebase_cancel_task_run(21)").unwrap();
        // This transaction is in progress in a snapshot taken now by anyone else; a snapshot that
        // lists it in xip (or has it at or above xmax) has not seen it committed.
        let rows = |snapshot: &str| {
            Spi::get_one::<Vec<i64>>(&format!(
                "SELECT coalesce(array_agg(uid ORDER BY created_at, id), '{{}}') FROM bytebase_signal_replay_after({snapshot})"
            ))
            .unwrap()
            .unwrap_or_default()
        };
        let in_progress =
            "(pg_current_xact_id()::text || ':' || pg_current_xact_id()::text || ':')::pg_snapshot";
        assert_eq!(rows(in_progress), [21], "xmax = our xid: not seen");
        let after = "((pg_current_xact_id()::text::bigint + 1)::text || ':' || (pg_current_xact_id()::text::bigint + 1)::text || ':')::pg_snapshot";
        assert_eq!(rows(after), Vec::<i64>::new(), "xmin beyond our xid: seen committed");
        assert_error(
            "SELECT * FROM bytebase_signal_replay_after(NULL)",
            "22004",
            "bytebase_signal_replay_after(after): after must not be NULL",
        );
    }

    #[pg_test]
    fn at_the_queue_limit_a_send_still_succeeds_with_the_log_on_and_off() {
        // The queue is empty (usage 0): a limit of 0 is reached by any send. Whether the NOTIFY
        // went out (and the WARNING) is only seen after commit: the end-to-end tests
        // (tests/tests/queue.rs, the conformance suite) check that; here, that the sends succeed
        // and log as they should.
        Spi::run("SET LOCAL bytebase_signal.notify_queue_limit = 0").unwrap();
        Spi::run("SELECT bytebase_cancel_task_run(31)").unwrap();
        assert!(logged().contains(&"cancel_task_run:31".to_owned()), "logged");
        Spi::run("SET LOCAL bytebase_signal.durable = off").unwrap();
        Spi::run("SELECT bytebase_cancel_task_run(32)").unwrap();
        assert!(!logged().contains(&"cancel_task_run:32".to_owned()));
    }

    #[pg_test]
    fn replay_returns_what_was_logged_since_a_time_oldest_first() {
        Spi::run("SELECT bytebase_cancel_task_run(5), bytebase_cancel_plan_check_run(6)").unwrap();
        let replayed = |since: &str| {
            Spi::get_one::<Vec<String>>(&format!(
                "SELECT coalesce(array_agg(type || ':' || uid ORDER BY created_at, id), '{{}}')
                   FROM bytebase_signal_replay({since})"
            ))
            .unwrap()
            .unwrap_or_default()
        };
        assert_eq!(replayed("now() - interval '1 minute'"), ["cancel_task_run:5", "cancel_plan_check_run:6"]);
        assert_eq!(replayed("clock_timestamp()"), Vec::<String>::new());
        assert_error(
            "SELECT * FROM bytebase_signal_replay(NULL)",
            "22004",
            "bytebase_signal_replay(since): since must not be NULL",
        );
    }

    #[pg_test]
    fn every_64th_logged_row_prunes_up_to_128_expired_rows_and_prune_takes_the_rest() {
        // Other tests used the identity sequence (sequences ignore rollbacks): start from 1.
        Spi::run("ALTER TABLE bytebase_signal_log ALTER COLUMN id RESTART WITH 1").unwrap();
        Spi::run(
            "INSERT INTO bytebase_signal_log (type, uid, created_at, sent_by)
             SELECT 'cancel_task_run', g, now() - interval '2 hours', current_user
               FROM generate_series(1, 150) AS g",
        )
        .unwrap();
        let expired = || {
            Spi::get_one::<i64>(
                "SELECT count(*) FROM bytebase_signal_log WHERE created_at < now() - interval '1 hour'",
            )
            .unwrap()
        };
        // Ids 151..=163: no multiple of 64 among them, so no pruning.
        Spi::run("SELECT bytebase_cancel_task_runs(ARRAY(SELECT generate_series(1001, 1013)::bigint))")
            .unwrap();
        assert_eq!(expired(), Some(150));
        // 64 more rows always include a multiple of 64.
        Spi::run("SELECT bytebase_cancel_task_runs(ARRAY(SELECT generate_series(2001, 2064)::bigint))")
            .unwrap();
        assert_eq!(expired(), Some(22), "that send deletes at most 128 expired rows");
        assert_eq!(Spi::get_one::<i64>("SELECT bytebase_signal_prune()").unwrap(), Some(22));
        assert_eq!(logged().len(), 13 + 64, "rows within the retention stay");
        Spi::run("SET LOCAL bytebase_signal.retention = '1s'").unwrap();
        Spi::run("UPDATE bytebase_signal_log SET created_at = created_at - interval '2 seconds'").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT bytebase_signal_prune()").unwrap(), Some(77));
    }

    #[pg_test]
    fn every_function_is_security_definer_pinned_and_not_granted_to_public() {
        Spi::run("CREATE ROLE bytebase_signal_test_sender").unwrap();
        for sig in SEND_FUNCTIONS.into_iter().chain([
            "bytebase_signal_prune()",
            "bytebase_signal_replay(timestamptz)",
            "bytebase_signal_replay_after(pg_snapshot)",
        ]) {
            let row = Spi::get_three_with_args::<bool, String, bool>(
                "SELECT prosecdef, array_to_string(proconfig, ';'),
                        has_function_privilege('bytebase_signal_test_sender', oid, 'EXECUTE')
                   FROM pg_proc WHERE oid = $1::regprocedure",
                &[sig.into()],
            )
            .expect("function exists");
            let (definer, config, granted) = row;
            assert_eq!(definer, Some(true), "{sig} is SECURITY DEFINER");
            let search_path =
                config.as_deref().and_then(|c| c.split(';').find(|s| s.starts_with("search_path=")));
            assert!(
                search_path
                    .is_some_and(|c| c.starts_with("search_path=pg_catalog, ") && c.ends_with(", pg_temp")),
                "{sig} pins search_path: {config:?}"
            );
            assert_eq!(granted, Some(false), "{sig} is not executable by PUBLIC");
        }
        let table_granted = Spi::get_one::<bool>(
            "SELECT has_table_privilege('bytebase_signal_test_sender', 'bytebase_signal_log', 'SELECT')",
        )
        .unwrap();
        assert_eq!(table_granted, Some(false), "the log is not readable by PUBLIC");
    }

    #[pg_test]
    fn functions_belong_to_the_extension_and_its_schema() {
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p
               JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
               JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'bytebase_signal'
              WHERE p.proname LIKE 'bytebase_cancel_%' AND p.pronamespace = e.extnamespace",
        )
        .expect("catalog query runs");
        assert_eq!(n, Some(8));
    }
}

/// This module is required by `cargo pgrx test` invocations.
/// It must be visible at the root of your extension crate.
#[cfg(test)]
pub mod pg_test {
    /// One-off initialisation when the pg_test framework starts.
    pub fn setup(_options: Vec<&str>) {}

    /// postgresql.conf settings the tests need.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
